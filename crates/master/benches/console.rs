//! The web console's cost: the bytes of the first page a browser loads, and the server's
//! time to render the services page over 1,000 instances and the computers page over
//! 1,000 computers (a real master on loopback HTTP, one worker thread, SQLite; each page
//! fetched as a signed-in admin, so the time includes the in-process API calls it
//! makes). Results go to BENCHMARKS.md.
//!
//! `cargo bench -p grove-master --bench console` (`GROVE_BENCH_ROUNDS`, default 200).

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::time::{Duration, Instant};

use grove_api as api;
use grove_client::{Client, Identity};

const SR: &str = "https://example.test/bench/software.cfg";
const COUNT: usize = 1000;

fn new_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

/// Fetches `path` with the session cookie; the body's length.
fn fetch(agent: &ureq::Agent, base: &str, path: &str, cookie: &str) -> usize {
    let mut response = agent
        .get(format!("{base}{path}"))
        .header("Cookie", cookie)
        .call()
        .expect("answer");
    let status = response.status();
    let body = response.body_mut().read_to_vec().expect("body");
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    body.len()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index"
    )]
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn time(rounds: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        f();
        times.push(start.elapsed());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

fn main() {
    let rounds: usize = std::env::var("GROVE_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let config = grove_master::MasterConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        dir.path().to_owned(),
    );
    let master = runtime
        .block_on(grove_master::start(&config))
        .expect("master");
    let base = master.url();
    let admin = std::fs::read_to_string(&master.admin_token_path)
        .expect("token")
        .trim()
        .to_owned();
    let client = Client::new(&base, &Identity::token(&admin)).expect("client");

    // One computer holding 1,000 instances, and 999 more with two partitions each.
    let node = client
        .register_computer(&api::NewComputer {
            reference: "big".to_owned(),
            labels: Default::default(),
        })
        .expect("register");
    let node_client = Client::new(&base, &Identity::token(&node.token)).expect("client");
    let partitions = |prefix: &str, count: usize| -> Vec<api::PartitionDeclaration> {
        (0..count)
            .map(|i| api::PartitionDeclaration {
                reference: format!("{prefix}{i}"),
                addresses: vec![format!("10.0.{}.{}", i / 250, i % 250 + 1)],
            })
            .collect()
    };
    node_client
        .declare_partitions("big", &partitions("slappart", COUNT))
        .expect("partitions");
    client
        .supply(
            "big",
            &api::Supply {
                software_release: SR.to_owned(),
                state: api::SupplyState::Available,
                project: None,
            },
        )
        .expect("supply");
    for i in 0..COUNT {
        let mut request = api::InstanceRequest::new(format!("service-{i}"), SR);
        request
            .parameters
            .insert("name".to_owned(), format!("user {i}").into());
        client.request_instance(&request).expect("request");
    }
    for i in 1..COUNT {
        let reference = format!("node-{i}");
        let created = client
            .register_computer(&api::NewComputer {
                reference: reference.clone(),
                labels: [("zone".to_owned(), format!("z{}", i % 3))].into(),
            })
            .expect("register");
        Client::new(&base, &Identity::token(&created.token))
            .expect("client")
            .declare_partitions(&reference, &partitions("slappart", 2))
            .expect("partitions");
    }

    let agent = new_agent();
    let mut login = agent
        .post(format!("{base}/login"))
        .send_form([("token", admin.as_str()), ("next", "/services")])
        .expect("sign in");
    assert_eq!(login.status(), 303);
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let _ = login.body_mut().read_to_vec();

    // What a browser loads first: the sign-in page and what it links to.
    let signed_out = new_agent();
    let mut first = 0;
    for path in ["/login", "/assets/console.css", "/assets/favicon.svg"] {
        let mut response = signed_out
            .get(format!("{base}{path}"))
            .call()
            .expect("answer");
        first += response.body_mut().read_to_vec().expect("body").len();
    }
    let services_bytes = fetch(&agent, &base, "/services", &cookie);
    let assets: usize = [
        "/assets/console.css",
        "/assets/console.js",
        "/assets/favicon.svg",
    ]
    .iter()
    .map(|p| fetch(&agent, &base, p, &cookie))
    .sum();
    println!("first page (sign-in, its stylesheet and icon): {first} bytes, uncompressed");
    println!(
        "services page: {services_bytes} bytes of HTML (50 of {COUNT} rows), {assets} bytes of assets (cached an hour)"
    );

    for (what, path) in [
        ("services page, 1,000 instances (page 1 of 20)", "/services"),
        (
            "services page, 1,000 instances, filtered",
            "/services?q=service-99",
        ),
        ("a service's page", "/services/500"),
        ("computers page, 1,000 computers (all rows)", "/computers"),
    ] {
        let bytes = fetch(&agent, &base, path, &cookie);
        let (p50, p99) = time(rounds, || {
            fetch(&agent, &base, path, &cookie);
        });
        println!("{what}: p50 {p50:.2?}, p99 {p99:.2?} ({bytes} bytes)");
    }
    // What the pages ask the API for, alone.
    for (what, path) in [
        ("GET /v1/instances (1,000)", "/v1/instances"),
        ("GET /v1/computers (1,000)", "/v1/computers"),
        (
            "GET /v1/computers/big (1,000 partitions)",
            "/v1/computers/big",
        ),
    ] {
        let bearer = format!("Bearer {admin}");
        let (p50, p99) = time(rounds.min(50), || {
            let mut response = agent
                .get(format!("{base}{path}"))
                .header("Authorization", &bearer)
                .call()
                .expect("answer");
            let _ = response.body_mut().read_to_vec();
        });
        println!("{what}: p50 {p50:.2?}, p99 {p99:.2?}");
    }
    runtime.block_on(master.stop());
}
