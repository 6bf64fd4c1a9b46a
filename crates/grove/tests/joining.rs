//! A master serving HTTPS with its own CA; nodes join it with one-time join tokens,
//! pinning the CA's fingerprint, and from then on authenticate with their certificate.
//! Outcomes of the attacks: a wrong fingerprint, a spent or expired token, no credentials,
//! a node's certificate used for another computer, plain HTTP.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use grove_client::{Client, ClientError, Identity};

mod common;
use common::{Daemon, Place, eventually, example, free_port, get, grove, text};

struct Https<'p> {
    place: &'p Place,
    listen: String,
    ca: PathBuf,
    fingerprint: String,
    admin: String,
}

impl<'p> Https<'p> {
    fn start(place: &'p Place) -> (Https<'p>, Daemon) {
        let listen = format!("127.0.0.1:{}", free_port());
        let mut command = grove();
        command
            .args(["master", "--listen", &listen, "--data-dir"])
            .arg(place.path().join("master"));
        let daemon = Daemon::spawn(command, place.path().join("master.log"));
        let line = daemon.line(Duration::from_secs(60));
        let fingerprint = line
            .strip_prefix("CA fingerprint: ")
            .unwrap_or_else(|| panic!("the master prints its CA fingerprint first: {line:?}"))
            .to_owned();
        let ca = place.path().join("master/ca.pem");
        let pem = std::fs::read_to_string(&ca).expect("ca.pem");
        let der = grove_pki::certificates_der(&pem, "ca.pem")
            .expect("PEM")
            .remove(0);
        assert_eq!(
            grove_pki::fingerprint(&der),
            fingerprint,
            "the printed fingerprint is ca.pem's"
        );
        let key_mode = std::fs::metadata(place.path().join("master/ca.key"))
            .expect("ca.key")
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600, "the CA key is private");
        let admin = std::fs::read_to_string(place.path().join("master/admin.token"))
            .expect("admin token")
            .trim()
            .to_owned();
        let https = Https {
            place,
            listen,
            ca,
            fingerprint,
            admin,
        };
        (https, daemon)
    }

    fn url(&self) -> String {
        format!("https://{}", self.listen)
    }

    /// A client command as the admin over HTTPS, trusting the master's CA.
    fn cli(&self, args: &[&str]) -> Output {
        grove()
            .args(args)
            .env("GROVE_MASTER_URL", self.url())
            .env("GROVE_TOKEN", &self.admin)
            .env("GROVE_CA_CERT", &self.ca)
            .output()
            .expect("runs")
    }

    fn join_token(&self, extra: &[&str]) -> String {
        let mut args = vec!["node", "join-token"];
        args.extend_from_slice(extra);
        let output = self.cli(&args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    }

    fn join(&self, name: &str, token: &str, fingerprint: &str) -> (Output, PathBuf) {
        self.join_in(name, name, token, fingerprint)
    }

    /// Joins as `name` with the configuration in directory `dir` of the place.
    fn join_in(&self, dir: &str, name: &str, token: &str, fingerprint: &str) -> (Output, PathBuf) {
        let config = self.place.path().join(format!("{dir}/node.toml"));
        let output = grove()
            .args(["node", "join", &self.url(), name, "--partitions", "2"])
            .args([
                "--token",
                token,
                "--ca-fingerprint",
                fingerprint,
                "--config",
            ])
            .arg(&config)
            .arg("--software-root")
            .arg(self.place.path().join("software"))
            .arg("--instance-root")
            .arg(self.place.path().join("instance"))
            .env_remove("GROVE_MASTER_URL")
            .env_remove("GROVE_TOKEN")
            .output()
            .expect("runs");
        (output, config)
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A client of the master trusting its CA, with a client certificate if given.
fn agent(url: &str, ca: &Path, identity: Option<(&Path, &Path)>) -> Client {
    let read = |path: &Path| std::fs::read_to_string(path).expect("readable");
    Client::new(
        url,
        &Identity {
            token: None,
            ca_pem: Some(read(ca)),
            certificate: identity.map(|(certificate, key)| (read(certificate), read(key))),
        },
    )
    .expect("client")
}

/// The HTTP status of an answer: 200 for success.
fn status<T>(answer: Result<T, ClientError>) -> u16 {
    match answer {
        Ok(_) => 200,
        Err(e) => e.status().unwrap_or_else(|| panic!("no answer: {e}")),
    }
}

#[test]
fn nodes_join_with_one_time_tokens_and_act_by_certificate_only_for_their_computer() {
    let place = Place::new(19);
    let (master, daemon) = Https::start(&place);
    let token = master.join_token(&["--ttl", "10m", "--label", "zone=eu-1"]);
    assert!(token.starts_with("gj1."), "{token}");

    // A wrong fingerprint: the node refuses the master, writes nothing, spends nothing.
    let wrong = "00".repeat(32);
    let (refused, config) = master.join("node-1", &token, &wrong);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("refusing the master"),
        "{}",
        stderr(&refused)
    );
    assert!(!config.exists());

    // The right one (colons and case as an operator may copy it).
    let spelled = master
        .fingerprint
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let (joined, config) = master.join("node-1", &token, &spelled);
    assert!(joined.status.success(), "{}", stderr(&joined));
    let dir = config.parent().expect("dir").to_owned();
    for file in ["node.toml", "node.key", "node.pem", "ca.pem"] {
        let mode = std::fs::metadata(dir.join(file))
            .expect(file)
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    let listed = master.cli(&["computer", "list", "--json"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.contains("node-1") && listed.contains("eu-1"),
        "{listed}"
    );

    // A name already taken is refused and spends nothing: the same token joins as
    // another name afterwards.
    let spare = master.join_token(&[]);
    let (taken, _) = master.join_in("elsewhere", "node-1", &spare, &master.fingerprint);
    assert_eq!(taken.status.code(), Some(1));
    assert!(stderr(&taken).contains("registered"), "{}", stderr(&taken));
    let (joined_3, _) = master.join("node-3", &spare, &master.fingerprint);
    assert!(joined_3.status.success(), "{}", stderr(&joined_3));

    // A join token works once, and not after it expires.
    let (reused, _) = master.join("node-9", &token, &master.fingerprint);
    assert_eq!(reused.status.code(), Some(1));
    assert!(
        stderr(&reused).contains("used already"),
        "{}",
        stderr(&reused)
    );
    let short = master.join_token(&["--ttl", "1s"]);
    std::thread::sleep(Duration::from_millis(2100));
    let (expired, _) = master.join("node-9", &short, &master.fingerprint);
    assert_eq!(expired.status.code(), Some(1));
    assert!(stderr(&expired).contains("expired"), "{}", stderr(&expired));

    // Certificates: no credentials at all is refused; node-1's certificate reads node-1's
    // desired state and not node-2's.
    let second = master.join_token(&[]);
    let (joined_2, _) = master.join("node-2", &second, &master.fingerprint);
    assert!(joined_2.status.success(), "{}", stderr(&joined_2));
    let anonymous = agent(&master.url(), &master.ca, None);
    assert_eq!(
        status(anonymous.desired("node-1", None, Duration::ZERO)),
        401
    );
    let node_1 = agent(
        &master.url(),
        &master.ca,
        Some((&dir.join("node.pem"), &dir.join("node.key"))),
    );
    assert_eq!(status(node_1.desired("node-1", None, Duration::ZERO)), 200);
    assert_eq!(status(node_1.desired("node-2", None, Duration::ZERO)), 403);
    // A certificate of another CA does not pass the handshake.
    let stranger_dir = place.path().join("stranger");
    std::fs::create_dir_all(&stranger_dir).expect("dir");
    let stranger_ca =
        grove_pki::Ca::create("stranger", std::time::SystemTime::now(), &ring_rng()).expect("ca");
    let issued = stranger_ca
        .issue_client(
            &grove_pki::Identity::Computer("node-1".to_owned()),
            std::time::SystemTime::now(),
            Duration::from_secs(600),
            &ring_rng(),
        )
        .expect("issued");
    std::fs::write(stranger_dir.join("c.pem"), &issued.certificate_pem).expect("write");
    std::fs::write(stranger_dir.join("c.key"), &issued.key_pem).expect("write");
    let stranger = agent(
        &master.url(),
        &master.ca,
        Some((&stranger_dir.join("c.pem"), &stranger_dir.join("c.key"))),
    );
    assert!(
        matches!(
            stranger.desired("node-1", None, Duration::ZERO),
            Err(ClientError::Unreachable { .. })
        ),
        "the handshake fails"
    );
    // Renewal: the node's new certificate works, its old one is refused at once.
    let old = place.path().join("old");
    std::fs::create_dir_all(&old).expect("dir");
    std::fs::copy(dir.join("node.pem"), old.join("node.pem")).expect("copy");
    std::fs::copy(dir.join("node.key"), old.join("node.key")).expect("copy");
    let renewed = grove()
        .args(["node", "renew", "--json", "--config"])
        .arg(&config)
        .output()
        .expect("runs");
    assert!(renewed.status.success(), "{}", stderr(&renewed));
    let renewed_agent = agent(
        &master.url(),
        &master.ca,
        Some((&dir.join("node.pem"), &dir.join("node.key"))),
    );
    assert_eq!(
        status(renewed_agent.desired("node-1", None, Duration::ZERO)),
        200
    );
    let old_agent = agent(
        &master.url(),
        &master.ca,
        Some((&old.join("node.pem"), &old.join("node.key"))),
    );
    assert_eq!(
        status(old_agent.desired("node-1", None, Duration::ZERO)),
        401
    );
    // Revocation: node-2's certificate is refused from the next request on.
    let dir_2 = place.path().join("node-2");
    let node_2 = agent(
        &master.url(),
        &master.ca,
        Some((&dir_2.join("node.pem"), &dir_2.join("node.key"))),
    );
    assert_eq!(status(node_2.desired("node-2", None, Duration::ZERO)), 200);
    let revoked = master.cli(&["computer", "revoke", "node-2"]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    assert_eq!(status(node_2.desired("node-2", None, Duration::ZERO)), 401);
    // A user with a client certificate instead of a token: sees what is theirs, may not
    // do the admin's work, and a new certificate makes the old one refused.
    let bundle = place.path().join("alice");
    let created = master.cli(&[
        "user",
        "create",
        "alice",
        "--bundle",
        bundle.to_str().expect("utf-8"),
    ]);
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(
        String::from_utf8_lossy(&created.stdout).starts_with("g1.u."),
        "the token too"
    );
    let issue = || {
        let issued = master.cli(&[
            "user",
            "certificate",
            "alice",
            "--out",
            bundle.to_str().expect("utf-8"),
        ]);
        assert!(issued.status.success(), "{}", stderr(&issued));
    };
    for file in ["alice.pem", "alice.key", "ca.pem"] {
        let mode = std::fs::metadata(bundle.join(file))
            .expect(file)
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    let as_alice = |args: &[&str]| {
        grove()
            .args(args)
            .env("GROVE_MASTER_URL", master.url())
            .env_remove("GROVE_TOKEN")
            .env("GROVE_CA_CERT", bundle.join("ca.pem"))
            .env("GROVE_CERT", bundle.join("alice.pem"))
            .env("GROVE_KEY", bundle.join("alice.key"))
            .output()
            .expect("runs")
    };
    let mine = as_alice(&["computer", "list", "--json"]);
    assert!(mine.status.success(), "{}", stderr(&mine));
    let mine: serde_json::Value = serde_json::from_slice(&mine.stdout).expect("json");
    assert_eq!(mine, serde_json::json!([]), "alice owns no computer");
    let not_admin = as_alice(&["user", "create", "mallory"]);
    assert!(!not_admin.status.success());
    assert!(stderr(&not_admin).contains("403"), "{}", stderr(&not_admin));
    std::fs::copy(bundle.join("alice.pem"), old.join("alice.pem")).expect("copy");
    std::fs::copy(bundle.join("alice.key"), old.join("alice.key")).expect("copy");
    issue();
    let new_alice = agent(
        &master.url(),
        &master.ca,
        Some((&bundle.join("alice.pem"), &bundle.join("alice.key"))),
    );
    assert_eq!(status(new_alice.list_instances()), 200);
    let old_alice = agent(
        &master.url(),
        &master.ca,
        Some((&old.join("alice.pem"), &old.join("alice.key"))),
    );
    assert_eq!(status(old_alice.list_instances()), 401);
    // Plain HTTP gets no API answer from the HTTPS port.
    assert_eq!(get(&format!("http://{}/v1/health", master.listen)), None);

    // The joined node deploys over mutual TLS: it formats and declares its partitions,
    // then runs.
    let mut format = grove();
    format
        .args(["node", "format", "--json", "--config"])
        .arg(&config);
    place.node_env(&mut format);
    let formatted = format.output().expect("runs");
    assert!(formatted.status.success(), "{}", stderr(&formatted));
    let mut command = grove();
    command.arg("node").arg("--config").arg(&config);
    place.node_env(&mut command);
    let node = Daemon::spawn(command, place.path().join("node.log"));
    let sr = example("hello");
    let supplied = master.cli(&["supply", &sr, "node-1"]);
    assert!(supplied.status.success(), "{}", stderr(&supplied));
    let requested = master.cli(&[
        "request",
        "hello",
        &sr,
        "--wait",
        "--param",
        "name=tls",
        "--sla",
        "computer_guid=node-1",
        "--json",
    ]);
    assert!(requested.status.success(), "{}", stderr(&requested));
    let answer: serde_json::Value = serde_json::from_slice(&requested.stdout).expect("json");
    let url = text(&answer, "url");
    let page = eventually("the service to answer", || get(&url));
    assert_eq!(page, "Hello tls!\n");
    node.stop();
    daemon.stop();
}

fn ring_rng() -> ring::rand::SystemRandom {
    ring::rand::SystemRandom::new()
}
