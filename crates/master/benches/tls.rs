//! What TLS costs beside plain HTTP, and how long a node takes to join: a real master on
//! loopback (SQLite), `grove-client` clients. Results go to BENCHMARKS.md.
//!
//! `cargo bench -p grove-master --bench tls` (`GROVE_BENCH_ROUNDS`, default 200).

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::time::{Duration, Instant};

use grove_client::{Client, Identity};
use grove_master::{MasterConfig, RunningMaster, TlsOptions, Transport};

fn rounds() -> usize {
    std::env::var("GROVE_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200)
}

fn client(
    url: &str,
    ca: Option<&str>,
    token: Option<&str>,
    certificate: Option<(&str, &str)>,
) -> Client {
    Client::new(
        url,
        &Identity {
            token: token.map(str::to_owned),
            ca_pem: ca.map(str::to_owned),
            certificate: certificate.map(|(c, k)| (c.to_owned(), k.to_owned())),
        },
    )
    .expect("client")
}

fn summary(what: &str, mut times: Vec<Duration>) {
    times.sort();
    let at = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    let mean = times.iter().sum::<Duration>() / u32::try_from(times.len()).expect("count");
    println!(
        "{what}: mean {mean:.2?}, p50 {:.2?}, p99 {:.2?} ({} rounds)",
        at(0.5),
        at(0.99),
        times.len()
    );
}

fn start(runtime: &tokio::runtime::Runtime, dir: &std::path::Path, tls: bool) -> RunningMaster {
    let mut config = MasterConfig::new("127.0.0.1:0".parse().expect("addr"), dir.to_owned());
    if tls {
        config.transport = Transport::Https(TlsOptions::default());
    }
    runtime
        .block_on(grove_master::start(&config))
        .expect("master")
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = start(&runtime, &dir.path().join("plain"), false);
    let https = start(&runtime, &dir.path().join("https"), true);
    let ca = std::fs::read_to_string(&https.ca.as_ref().expect("https").0).expect("ca.pem");
    let admin = std::fs::read_to_string(&https.admin_token_path)
        .expect("token")
        .trim()
        .to_owned();

    // A new connection for every request: what a handshake adds.
    for (what, base, ca) in [
        (
            "new connection + GET /v1/health, plain HTTP",
            plain.url(),
            None,
        ),
        (
            "new connection + GET /v1/health, TLS 1.3",
            https.url(),
            Some(ca.as_str()),
        ),
    ] {
        let times = (0..rounds())
            .map(|_| {
                // A new client: nothing is kept from the round before.
                let fresh = client(&base, ca, None, None);
                let started = Instant::now();
                fresh.health().expect("answer");
                started.elapsed()
            })
            .collect();
        summary(what, times);
    }

    // Joining: a join token made, a key and request made on the node, the certificate
    // signed, and the node's first desired-state read with it.
    let url = https.url();
    let admin_client = client(&url, Some(&ca), Some(&admin), None);
    let times = (0..rounds().min(100))
        .map(|i| {
            let started = Instant::now();
            let token = admin_client
                .create_join_token(&grove_api::NewJoinToken {
                    ttl_seconds: None,
                    labels: Default::default(),
                })
                .expect("join token");
            let name = format!("node-{i}");
            let (key, csr) =
                grove_pki::request(&grove_pki::Identity::Computer(name.clone())).expect("csr");
            let joined = client(&url, Some(&ca), None, None)
                .join(&grove_api::JoinRequest {
                    token: token.token,
                    reference: name.clone(),
                    csr,
                })
                .expect("joined");
            client(&url, Some(&ca), None, Some((&joined.certificate, &key)))
                .desired(&name, None, Duration::ZERO)
                .expect("desired");
            started.elapsed()
        })
        .collect();
    summary(
        "join (token, key and request, certificate, first desired-state read)",
        times,
    );
    runtime.block_on(plain.stop());
    runtime.block_on(https.stop());
}
