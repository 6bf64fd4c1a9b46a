//! What TLS costs beside plain HTTP, and how long a node takes to join: a real master on
//! loopback (SQLite), ureq clients. Results go to BENCHMARKS.md.
//!
//! `cargo bench -p grove-master --bench tls` (`GROVE_BENCH_ROUNDS`, default 200).

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::time::{Duration, Instant};

use grove_master::{MasterConfig, RunningMaster, TlsOptions, Transport};

fn rounds() -> usize {
    std::env::var("GROVE_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200)
}

fn agent(ca: Option<&str>, identity: Option<(&str, &str)>) -> ureq::Agent {
    use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
    let mut tls = TlsConfig::builder();
    if let Some(ca) = ca {
        tls = tls.root_certs(RootCerts::new_with_certs(&[Certificate::from_pem(
            ca.as_bytes(),
        )
        .expect("ca")]));
    }
    if let Some((certificate, key)) = identity {
        tls = tls.client_cert(Some(ClientCert::new_with_certs(
            &[Certificate::from_pem(certificate.as_bytes()).expect("certificate")],
            PrivateKey::from_pem(key.as_bytes()).expect("key"),
        )));
    }
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(tls.build())
        .build()
        .into()
}

fn post<T: serde::de::DeserializeOwned>(
    agent: &ureq::Agent,
    url: &str,
    token: Option<&str>,
    body: &impl serde::Serialize,
) -> T {
    let mut request = agent.post(url).header("Content-Type", "application/json");
    if let Some(token) = token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let text = request
        .send(serde_json::to_string(body).expect("json"))
        .expect("answer")
        .body_mut()
        .read_to_string()
        .expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
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
        let url = format!("{base}/v1/health");
        let times = (0..rounds())
            .map(|_| {
                let agent = agent(ca, None);
                let started = Instant::now();
                let status = agent.get(&url).call().expect("answer").status();
                assert_eq!(status, 200);
                started.elapsed()
            })
            .collect();
        summary(what, times);
    }

    // Joining: a join token made, a key and request made on the node, the certificate
    // signed, and the node's first desired-state read with it.
    let admin_agent = agent(Some(&ca), None);
    let times = (0..rounds().min(100))
        .map(|i| {
            let started = Instant::now();
            let token: grove_api::JoinToken = post(
                &admin_agent,
                &format!("{}/v1/join-tokens", https.url()),
                Some(&admin),
                &grove_api::NewJoinToken {
                    ttl_seconds: None,
                    labels: Default::default(),
                },
            );
            let name = format!("node-{i}");
            let (key, csr) =
                grove_pki::request(&grove_pki::Identity::Computer(name.clone())).expect("csr");
            let joined: grove_api::Joined = post(
                &agent(Some(&ca), None),
                &format!("{}/v1/join", https.url()),
                None,
                &grove_api::JoinRequest {
                    token: token.token,
                    reference: name.clone(),
                    csr,
                },
            );
            let node = agent(Some(&ca), Some((&joined.certificate, &key)));
            let status = node
                .get(&format!("{}/v1/computers/{name}/desired", https.url()))
                .call()
                .expect("desired")
                .status();
            assert_eq!(status, 200);
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
