//! Cross-master wake-up: two masters on one PostgreSQL database; a node long-polls master
//! A while instances are requested on master B, one at a time. Measured: from sending the
//! request to B until the long poll on A answers with the new revision. Results go to
//! BENCHMARKS.md.
//!
//! `cargo bench -p grove-master --bench wakeup` (needs the server `GROVE_TEST_POSTGRES`
//! names; `GROVE_BENCH_REQUESTS`, default 500).

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn send(agent: &ureq::Agent, method: &str, url: &str, token: &str, body: Option<&Value>) -> Value {
    try_send(agent, method, url, token, body).expect("the master answers")
}

fn try_send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    token: &str,
    body: Option<&Value>,
) -> Option<Value> {
    let auth = format!("Bearer {token}");
    let mut response = match (method, body) {
        ("POST", Some(body)) => agent
            .post(url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(body.to_string()),
        ("PUT", Some(body)) => agent
            .put(url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(body.to_string()),
        _ => agent.get(url).header("Authorization", &auth).call(),
    }
    .ok()?;
    let text = response.body_mut().read_to_string().ok()?;
    Some(serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn main() {
    let requests: usize = std::env::var("GROVE_BENCH_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = runtime
        .block_on(grove_store::scratch::database())
        .unwrap_or_else(|e| panic!("this benchmark needs PostgreSQL: {e}"));
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let start = |dir: &tempfile::TempDir| {
        let mut config = grove_master::MasterConfig::new(
            "127.0.0.1:0".parse().expect("addr"),
            dir.path().to_owned(),
        );
        config.store = Some(store.clone());
        runtime
            .block_on(grove_master::start(&config))
            .expect("master")
    };
    let master_a = start(&dir_a);
    let master_b = start(&dir_b);
    let (a, b) = (master_a.url(), master_b.url());
    let admin = std::fs::read_to_string(&master_a.admin_token_path)
        .expect("token")
        .trim()
        .to_owned();
    let client = agent();
    let created = send(
        &client,
        "POST",
        &format!("{b}/v1/computers"),
        &admin,
        Some(&json!({"reference": "NODE"})),
    );
    let node = created["token"].as_str().expect("node token").to_owned();
    let partitions: Vec<Value> = (0..requests)
        .map(|i| json!({"reference": format!("slappart{i}")}))
        .collect();
    send(
        &client,
        "PUT",
        &format!("{b}/v1/computers/NODE/partitions"),
        &node,
        Some(&json!(partitions)),
    );
    send(
        &client,
        "POST",
        &format!("{b}/v1/computers/NODE/supply"),
        &admin,
        Some(&json!({"software_release": "sr.cfg"})),
    );

    // The node: long polls on A, reporting each new revision.
    let (seen, revisions) = mpsc::channel::<(i64, Instant)>();
    let poll_url = format!("{a}/v1/computers/NODE/desired");
    std::thread::spawn(move || {
        let agent = agent();
        let mut after = 0;
        loop {
            // The masters stop at the end: so does the node.
            let Some(document) = try_send(
                &agent,
                "GET",
                &format!("{poll_url}?after={after}&wait=30"),
                &node,
                None,
            ) else {
                return;
            };
            let revision = document["revision"].as_i64().expect("revision");
            if revision > after {
                after = revision;
                if seen.send((revision, Instant::now())).is_err() {
                    return;
                }
            }
        }
    });
    let (mut current, _) = revisions.recv().expect("the first document");
    let mut latencies = Vec::with_capacity(requests);
    let mut answers = Vec::with_capacity(requests);
    for i in 0..requests {
        let sent = Instant::now();
        let body = json!({"title": format!("i{i}"), "software_release": "sr.cfg"});
        send(
            &client,
            "POST",
            &format!("{b}/v1/instances"),
            &admin,
            Some(&body),
        );
        answers.push(sent.elapsed());
        loop {
            let (revision, at) = revisions.recv().expect("the node hears of it");
            if revision > current {
                current = revision;
                latencies.push(at - sent);
                break;
            }
        }
    }
    for (what, mut times) in [
        (
            "cross-master wake-up (request on B until the long poll on A answers)",
            latencies,
        ),
        ("the request's own answer from B (durable)", answers),
    ] {
        times.sort_unstable();
        let pick = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "{what}, {requests} requests one at a time: p50 {:.2?}, p99 {:.2?}, max {:.2?}",
            pick(0.5),
            pick(0.99),
            times[times.len() - 1]
        );
    }
    runtime.block_on(master_a.stop());
    runtime.block_on(master_b.stop());
    runtime
        .block_on(grove_store::scratch::drop_database(&store))
        .expect("drop the bench's database");
}
