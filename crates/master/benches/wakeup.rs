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

use grove_api as api;
use grove_client::{Client, Identity};

fn client(url: &str, token: &str) -> Client {
    Client::new(url, &Identity::token(token)).expect("client")
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
    let on_b = client(&b, &admin);
    let created = on_b
        .register_computer(&api::NewComputer {
            reference: "NODE".to_owned(),
            labels: Default::default(),
        })
        .expect("register");
    let node = created.token;
    let partitions: Vec<api::PartitionDeclaration> = (0..requests)
        .map(|i| api::PartitionDeclaration {
            reference: format!("slappart{i}"),
            addresses: vec![],
        })
        .collect();
    client(&b, &node)
        .declare_partitions("NODE", &partitions)
        .expect("partitions");
    on_b.supply(
        "NODE",
        &api::Supply {
            software_release: "sr.cfg".to_owned(),
            state: api::SupplyState::Available,
            project: None,
        },
    )
    .expect("supply");

    // The node: long polls on A, reporting each new revision.
    let (seen, revisions) = mpsc::channel::<(i64, Instant)>();
    std::thread::spawn(move || {
        let on_a = client(&a, &node);
        let mut after = 0;
        loop {
            // The masters stop at the end: so does the node.
            let Ok(document) = on_a.desired("NODE", Some(after), Duration::from_secs(30)) else {
                return;
            };
            let revision = document.revision;
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
        on_b.request_instance(&api::InstanceRequest::new(
            format!("i{i}"),
            "sr.cfg".to_owned(),
        ))
        .expect("requested");
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
