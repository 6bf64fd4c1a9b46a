//! Load on a real master over loopback HTTP (keep-alive clients on their own threads; the
//! master on a one-worker runtime, so on one core). Results go to BENCHMARKS.md.
//!
//! `cargo bench -p grove-master --bench api` (set `GROVE_BENCH_SECONDS`, default 5,
//! `GROVE_BENCH_COMPUTERS`, default 10000, `GROVE_BENCH_STORE=postgres` for a fresh
//! database on the server `GROVE_TEST_POSTGRES` names, default SQLite, and
//! `GROVE_BENCH_PLACEMENT`, default simple; `GROVE_BENCH_TLS=1` for HTTPS with the
//! master's own CA, tokens over TLS).

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::time::{Duration, Instant};

use serde_json::{Value, json};

const SR: &str = "https://example.test/bench/software.cfg";

/// The master's CA certificate when it serves HTTPS (`GROVE_BENCH_TLS=1`).
static CA: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn agent() -> ureq::Agent {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(ca) = CA.get() {
        let ca = ureq::tls::Certificate::from_pem(ca.as_bytes()).expect("CA");
        tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&[ca]));
    }
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .tls_config(tls.build())
        .build()
        .into()
}

struct Client {
    agent: ureq::Agent,
    base: String,
    auth: String,
}

impl Client {
    fn new(base: &str, token: &str) -> Client {
        Client {
            agent: agent(),
            base: base.to_owned(),
            auth: format!("Bearer {token}"),
        }
    }

    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut response = match (method, body) {
            ("GET", _) => self
                .agent
                .get(&url)
                .header("Authorization", &self.auth)
                .call(),
            ("PUT", Some(b)) => self
                .agent
                .put(&url)
                .header("Authorization", &self.auth)
                .header("Content-Type", "application/json")
                .send(b.to_string()),
            (_, b) => self
                .agent
                .post(&url)
                .header("Authorization", &self.auth)
                .header("Content-Type", "application/json")
                .send(b.map(Value::to_string).unwrap_or_default()),
        }
        .expect("the master answers");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index"
    )]
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Runs `threads` clients doing `op` until `seconds` pass; returns the rate and latencies.
fn load(threads: usize, seconds: u64, op: impl Fn(usize, usize) + Sync) -> (f64, Vec<Duration>) {
    let stop = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut latencies: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let op = &op;
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    let mut i = 0;
                    while Instant::now() < stop {
                        let start = Instant::now();
                        op(t, i);
                        mine.push(start.elapsed());
                        i += 1;
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("client thread"))
            .collect()
    });
    latencies.sort_unstable();
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
    (rate, latencies)
}

fn report(what: &str, rate: f64, latencies: &[Duration]) {
    println!(
        "{what}: {rate:.0}/s, p50 {:.2?}, p99 {:.2?}",
        percentile(latencies, 0.5),
        percentile(latencies, 0.99)
    );
}

/// Runs wrk (one thread, 8 connections) against `url`; with `post_body_prefix`, each request
/// is a POST of an instance request with a fresh title. Prints requests/s and latencies.
fn wrk(what: &str, seconds: u64, token: &str, url: &str, post: Option<(&str, &str)>) {
    let mut command = std::process::Command::new("wrk");
    command.args(["-t1", "-c8", &format!("-d{seconds}s"), "--latency", "-H"]);
    command.arg(format!("Authorization: Bearer {token}"));
    let script;
    if let Some((prefix, software)) = post {
        script = tempfile::NamedTempFile::new().expect("script");
        let lua = format!(
            "local n = 0\n\
             wrk.method = \"POST\"\n\
             wrk.headers[\"Content-Type\"] = \"application/json\"\n\
             request = function()\n\
               n = n + 1\n\
               local body = '{{\"title\": \"{prefix}' .. n .. '\", \"software_release\": \"{software}\"}}'\n\
               return wrk.format(nil, nil, nil, body)\n\
             end\n\
             response = function(status, headers, body)\n\
               if status ~= 200 then print(\"status \" .. status .. \" \" .. body) end\n\
             end\n"
        );
        std::fs::write(script.path(), lua).expect("write script");
        command.arg("-s").arg(script.path());
    }
    command.arg(url);
    match command.output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let pick = |prefix: &str| {
                text.lines()
                    .find(|l| l.trim_start().starts_with(prefix))
                    .map(|l| l.trim().to_owned())
                    .unwrap_or_default()
            };
            let failures = text.lines().filter(|l| l.starts_with("status ")).count();
            println!(
                "{what} with wrk (1 thread, 8 connections): {} | {} | {} | non-200: {failures}",
                pick("Requests/sec:"),
                pick("50%"),
                pick("99%")
            );
        }
        _ => println!("({what}: wrk not found; install Debian's wrk for the lighter client)"),
    }
}

fn main() {
    let seconds: u64 = std::env::var("GROVE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let computers: usize = std::env::var("GROVE_BENCH_COMPUTERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut config = grove_master::MasterConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        dir.path().to_owned(),
    );
    if std::env::var("GROVE_BENCH_STORE").as_deref() == Ok("postgres") {
        let location = runtime
            .block_on(grove_store::scratch::database())
            .unwrap_or_else(|e| panic!("GROVE_BENCH_STORE=postgres: {e}"));
        config.store = Some(location);
    }
    if let Ok(policy) = std::env::var("GROVE_BENCH_PLACEMENT") {
        config.placement = policy.parse().expect("GROVE_BENCH_PLACEMENT");
    }
    let tls = std::env::var("GROVE_BENCH_TLS").as_deref() == Ok("1");
    if tls {
        config.transport = grove_master::Transport::Https(grove_master::TlsOptions::default());
    }
    println!(
        "(transport: {}, store: {}, placement: {})",
        if tls { "https" } else { "http" },
        config
            .store
            .as_ref()
            .map_or("sqlite".to_owned(), ToString::to_string),
        config.placement
    );
    let master = runtime
        .block_on(grove_master::start(&config))
        .expect("master");
    if let Some((path, _)) = &master.ca {
        CA.set(std::fs::read_to_string(path).expect("ca.pem"))
            .expect("set once");
    }
    let base = master.url();
    let admin = std::fs::read_to_string(&master.admin_token_path)
        .expect("token")
        .trim()
        .to_owned();
    let admin_client = Client::new(&base, &admin);

    // A node with 10 partitions, all in use.
    let (_, created) = admin_client.send(
        "POST",
        "/v1/computers",
        Some(&json!({"reference": "NODE-0"})),
    );
    let node_token = created["token"].as_str().expect("token").to_owned();
    let node = Client::new(&base, &node_token);
    let parts: Vec<Value> = (0..10)
        .map(|i| json!({"reference": format!("slappart{i}")}))
        .collect();
    node.send(
        "PUT",
        "/v1/computers/NODE-0/partitions",
        Some(&json!(parts)),
    );
    admin_client.send(
        "POST",
        "/v1/computers/NODE-0/supply",
        Some(&json!({"software_release": SR})),
    );
    for i in 0..10 {
        let body =
            json!({"title": format!("seed{i}"), "software_release": SR, "parameters": {"i": i}});
        admin_client.send("POST", "/v1/instances", Some(&body));
    }
    let clients: Vec<Client> = (0..8).map(|_| Client::new(&base, &node_token)).collect();
    let url = format!("{base}/v1/computers/NODE-0/desired");
    let (rate, lat) = load(8, seconds, |t, _| {
        // Read the body but do not parse it: the client's work is not what is measured.
        let client = &clients[t];
        let mut response = client
            .agent
            .get(&url)
            .header("Authorization", &client.auth)
            .call()
            .expect("answer");
        assert_eq!(response.status().as_u16(), 200);
        let body = response.body_mut().read_to_vec().expect("body");
        assert!(body.len() > 100);
    });
    report(
        "desired-state reads, node of 10 partitions, 8 keep-alive clients, master on 1 core",
        rate,
        &lat,
    );
    // The same with wrk, a client light enough not to compete with the master for the CPU.
    wrk("desired-state reads", seconds, &node_token, &url, None);

    // Durable requests: each a new instance on a big node (allocation, insert, commit).
    let (_, created) =
        admin_client.send("POST", "/v1/computers", Some(&json!({"reference": "BIG"})));
    let big = Client::new(&base, created["token"].as_str().expect("token"));
    for chunk in 0..20 {
        let parts: Vec<Value> = (0..5_000)
            .map(|i| json!({"reference": format!("p{chunk}-{i}")}))
            .collect();
        let (status, reply) = big.send("PUT", "/v1/computers/BIG/partitions", Some(&json!(parts)));
        assert_eq!(status, 204, "{reply}");
    }
    admin_client.send(
        "POST",
        "/v1/computers/BIG/supply",
        Some(&json!({"software_release": "big.cfg"})),
    );
    let users: Vec<Client> = (0..8).map(|_| Client::new(&base, &admin)).collect();
    let (rate, lat) = load(8, seconds, |t, i| {
        let body = json!({"title": format!("r{t}-{i}"), "software_release": "big.cfg", "parameters": {"n": i}});
        let (status, reply) = users[t].send("POST", "/v1/instances", Some(&body));
        assert_eq!(status, 200, "{reply}");
    });
    report("durable requests, 8 concurrent clients", rate, &lat);
    let instances = format!("{base}/v1/instances");
    wrk(
        "durable requests",
        seconds,
        &admin,
        &instances,
        Some(("wrk-r", "big.cfg")),
    );

    // Placements among many computers: register them, then request.
    let setup = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..8 {
            let (base, admin) = (&base, &admin);
            scope.spawn(move || {
                let user = Client::new(base, admin);
                for c in (t..computers).step_by(8) {
                    let reference = format!("C{c}");
                    let (_, created) = user.send(
                        "POST",
                        "/v1/computers",
                        Some(&json!({"reference": reference})),
                    );
                    let node = Client::new(base, created["token"].as_str().expect("token"));
                    let parts: Vec<Value> = (0..10)
                        .map(|i| json!({"reference": format!("slappart{i}")}))
                        .collect();
                    node.send(
                        "PUT",
                        &format!("/v1/computers/{reference}/partitions"),
                        Some(&json!(parts)),
                    );
                    let supply = json!({"software_release": "fleet.cfg"});
                    user.send(
                        "POST",
                        &format!("/v1/computers/{reference}/supply"),
                        Some(&supply),
                    );
                }
            });
        }
    });
    println!(
        "(registered {computers} computers of 10 partitions in {:.1?})",
        setup.elapsed()
    );
    if let Some(grove_store::Location::Postgres(url)) = &config.store {
        runtime.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
            sqlx::raw_sql(grove_store::scratch::ANALYZE_BULK_LOAD)
                .execute(&mut conn)
                .await
                .expect("analyze");
        });
        println!("(analyzed)");
    }
    let (rate, lat) = load(8, seconds, |t, i| {
        let body = json!({"title": format!("f{t}-{i}"), "software_release": "fleet.cfg"});
        let (status, reply) = users[t].send("POST", "/v1/instances", Some(&body));
        assert_eq!(status, 200, "{reply}");
    });
    report(
        &format!("placements among {computers} computers of 10 partitions"),
        rate,
        &lat,
    );
    wrk(
        "placements",
        seconds,
        &admin,
        &instances,
        Some(("wrk-f", "fleet.cfg")),
    );
    runtime.block_on(master.stop());
    if let Some(location) = &config.store {
        runtime
            .block_on(grove_store::scratch::drop_database(location))
            .expect("drop the bench's database");
    }
}
