//! The console over real HTTP, as a browser would speak to it: sessions, CSRF, the
//! Content-Security-Policy, other sites' requests, live events. The pages themselves are
//! driven in Chromium by `crates/grove/tests/console.rs`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use grove_api as api;
use grove_client::{Client, Identity};
use grove_master::{MasterConfig, RunningMaster};

struct Console {
    runtime: tokio::runtime::Runtime,
    master: Option<RunningMaster>,
    _dir: tempfile::TempDir,
    url: String,
    admin: String,
    agent: ureq::Agent,
}

/// An answer: status, headers (name lowercased) and body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Console {
    fn start() -> Console {
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let config = MasterConfig::new("127.0.0.1:0".parse().expect("addr"), dir.path().to_owned());
        let master = runtime
            .block_on(grove_master::start(&config))
            .expect("master starts");
        let admin = std::fs::read_to_string(&master.admin_token_path)
            .expect("admin token")
            .trim()
            .to_owned();
        Console {
            url: master.url(),
            runtime,
            master: Some(master),
            _dir: dir,
            admin,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .build()
                .into(),
        }
    }

    fn answer(mut response: ureq::http::Response<ureq::Body>) -> Answer {
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        Answer {
            status: response.status().as_u16(),
            headers,
            body: response.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    fn get(&self, path: &str, cookie: Option<&str>) -> Answer {
        let mut request = self.agent.get(format!("{}{path}", self.url));
        if let Some(cookie) = cookie {
            request = request.header("Cookie", cookie);
        }
        Console::answer(request.call().expect("answer"))
    }

    fn post(
        &self,
        path: &str,
        cookie: Option<&str>,
        headers: &[(&str, &str)],
        form: &[(&str, &str)],
    ) -> Answer {
        let mut request = self.agent.post(format!("{}{path}", self.url));
        if let Some(cookie) = cookie {
            request = request.header("Cookie", cookie);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        Console::answer(request.send_form(form.iter().copied()).expect("answer"))
    }

    /// Signs in with `token`: the session cookie (`grove_session=...`).
    fn sign_in(&self, token: &str) -> String {
        let answer = self.post(
            "/login",
            None,
            &[],
            &[("token", token), ("next", "/services")],
        );
        assert_eq!(answer.status, 303, "{}", answer.body);
        assert_eq!(answer.header("location"), Some("/services"));
        let set = answer.header("set-cookie").expect("a session cookie");
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        assert!(!set.contains("Secure"), "plain HTTP on loopback: {set}");
        set.split(';').next().expect("name=value").to_owned()
    }

    /// The CSRF token a page of this session carries.
    fn csrf(&self, cookie: &str) -> String {
        let page = self.get("/services", Some(cookie));
        let at = page
            .body
            .find("data-csrf=\"")
            .expect("the page carries its token")
            + 11;
        page.body[at..at + 64].to_owned()
    }

    fn api(&self, token: &str) -> Client {
        Client::new(&self.url, &Identity::token(token)).expect("client")
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Some(master) = self.master.take() {
            self.runtime.block_on(master.stop());
        }
    }
}

#[test]
fn pages_need_a_session_signed_by_the_master() {
    let c = Console::start();
    let signed_out = c.get("/services?q=x", None);
    assert_eq!(signed_out.status, 303);
    assert_eq!(
        signed_out.header("location"),
        Some("/login?next=/services%3Fq%3Dx")
    );
    let login = c.get("/login", None);
    assert_eq!(login.status, 200);
    let csp = login.header("content-security-policy").expect("a CSP");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");

    let wrong = c.post("/login", None, &[], &[("token", "g1.u.1.wrong")]);
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("invalid token"));
    let cookie = c.sign_in(&c.admin);
    let page = c.get("/services", Some(&cookie));
    assert_eq!(page.status, 200);
    assert_eq!(page.header("cache-control"), Some("no-store"));

    // A cookie altered in any field is no session.
    let value = cookie.trim_start_matches("grove_session=");
    let fields: Vec<&str> = value.split('.').collect();
    for forged in [
        format!("grove_session=2.{}.{}.{}", fields[1], fields[2], fields[3]),
        format!(
            "grove_session={}.{}.{}.{}",
            fields[0],
            fields[1].replacen('1', "2", 1),
            fields[2],
            fields[3]
        ),
        format!("grove_session={}.{}.c.{}", fields[0], fields[1], fields[3]),
        format!(
            "grove_session={}.{}.{}.{}",
            fields[0],
            fields[1],
            fields[2],
            "0".repeat(64)
        ),
    ] {
        assert_eq!(c.get("/services", Some(&forged)).status, 303, "{forged}");
    }
    // A partition's or a node's token is not a user's.
    let node = c
        .api(&c.admin)
        .register_computer(&api::NewComputer {
            reference: "n1".to_owned(),
            labels: Default::default(),
        })
        .expect("register");
    assert_eq!(
        c.post("/login", None, &[], &[("token", &node.token)])
            .status,
        401
    );
    // Only a path of this site after signing in.
    let away = c.post(
        "/login",
        None,
        &[],
        &[("token", &c.admin), ("next", "//evil.example/")],
    );
    assert_eq!(away.header("location"), Some("/services"));
}

#[test]
fn forms_need_this_sessions_token_and_this_site() {
    let c = Console::start();
    let admin = c.api(&c.admin);
    let bob = admin.create_user("bob").expect("bob");
    let cookie = c.sign_in(&c.admin);
    let csrf = c.csrf(&cookie);
    let bob_cookie = c.sign_in(&bob.token);
    let bob_csrf = c.csrf(&bob_cookie);
    assert_ne!(csrf, bob_csrf);
    let request = |cookie: &str, headers: &[(&str, &str)], csrf: Option<&str>| {
        let mut form = vec![
            ("title", "web"),
            ("software_release", "https://example.test/sr.cfg"),
        ];
        if let Some(csrf) = csrf {
            form.push(("_csrf", csrf));
        }
        c.post("/services", Some(cookie), headers, &form)
    };
    assert_eq!(request(&cookie, &[], None).status, 403, "no token");
    assert_eq!(
        request(&cookie, &[], Some(&bob_csrf)).status,
        403,
        "another session's"
    );
    assert_eq!(
        request(&cookie, &[("Origin", "http://evil.example")], Some(&csrf)).status,
        403,
        "another site"
    );
    assert_eq!(
        request(&cookie, &[("Sec-Fetch-Site", "cross-site")], Some(&csrf)).status,
        403,
        "another site, as the browser says"
    );
    assert!(
        admin.list_instances().expect("list").is_empty(),
        "nothing was requested"
    );
    // With its token, the form is a request (no computer: the API's refusal, shown).
    let refused = request(&cookie, &[], Some(&csrf));
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("no computer") || refused.body.contains("capacity"),
        "{}",
        refused.body
    );
    // Signing out ends nothing but the cookie's presence (it needs the token too).
    assert_eq!(c.post("/logout", Some(&cookie), &[], &[]).status, 403);
    let out = c.post("/logout", Some(&cookie), &[], &[("_csrf", &csrf)]);
    assert_eq!(out.status, 303);
    assert!(
        out.header("set-cookie")
            .is_some_and(|s| s.contains("Max-Age=0"))
    );
}

#[test]
fn the_profile_editor_resolves_only_the_text_sent() {
    let c = Console::start();
    let cookie = c.sign_in(&c.admin);
    let csrf = c.csrf(&cookie);
    let check = |text: &str, token: &str| {
        let body = serde_json::json!({ "text": text }).to_string();
        let response = c
            .agent
            .post(format!("{}/profiles/check", c.url))
            .header("Cookie", &cookie)
            .header("X-CSRF-Token", token)
            .header("Content-Type", "application/json")
            .send(body)
            .expect("answer");
        Console::answer(response)
    };
    assert_eq!(check("[buildout]\n", "wrong").status, 403);
    let answer = check(
        "[buildout]\nparts = a\n[a]\nrecipe = r\nx = ${:y}-${missing:z}\ny = 1\n",
        &csrf,
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let checked: serde_json::Value = serde_json::from_str(&answer.body).expect("json");
    assert_eq!(checked["diagnostics"][0]["severity"], "error");
    assert_eq!(checked["diagnostics"][0]["section"], "a");
    let passwd = check("[buildout]\nextends = /etc/passwd\n", &csrf);
    assert!(!passwd.body.contains("root:"), "{}", passwd.body);
}

/// The stream says `change` when something changes, without saying what.
#[test]
fn live_pages_hear_of_changes() {
    let c = Console::start();
    let cookie = c.sign_in(&c.admin);
    let address = c.url.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(stream, "GET /events HTTP/1.1\r\nHost: {address}\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n").expect("write");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("head");
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    // A change: a user created, a computer registered.
    c.api(&c.admin)
        .register_computer(&api::NewComputer {
            reference: "n1".to_owned(),
            labels: Default::default(),
        })
        .expect("register");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = String::new();
    while !seen.contains("event: change") {
        assert!(Instant::now() < deadline, "no change event: {seen:?}");
        let mut byte = [0u8; 256];
        let n = reader.read(&mut byte).expect("the stream goes on");
        seen.push_str(&String::from_utf8_lossy(&byte[..n]));
    }
    // Signed out, there is no stream.
    assert_eq!(c.get("/events", None).status, 303);
}
