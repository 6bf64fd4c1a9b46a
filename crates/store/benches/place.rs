//! The store alone, without HTTP: placements among many computers by concurrent callers,
//! on SQLite and, with `GROVE_BENCH_STORE=postgres`, PostgreSQL. What the master's own
//! bench measures minus the HTTP server and its clients. Results go to BENCHMARKS.md.
//!
//! `cargo bench -p grove-store --bench place` (`GROVE_BENCH_SECONDS`, default 5,
//! `GROVE_BENCH_COMPUTERS`, default 10000, `GROVE_BENCH_CALLERS`, default 8).

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use grove_store::{Db, Location, Policy, Requester, Store, StoreConfig, api};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let seconds = setting("GROVE_BENCH_SECONDS", 5) as u64;
    let computers = setting("GROVE_BENCH_COMPUTERS", 10_000);
    let callers = setting("GROVE_BENCH_CALLERS", 8);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let location = if std::env::var("GROVE_BENCH_STORE").as_deref() == Ok("postgres") {
        runtime
            .block_on(grove_store::scratch::database())
            .unwrap_or_else(|e| panic!("GROVE_BENCH_STORE=postgres: {e}"))
    } else {
        Location::Sqlite(dir.path().join("store.sqlite"))
    };
    runtime.block_on(async {
        let store = Arc::new(
            Db::open(&StoreConfig {
                location: location.clone(),
                placement: Policy::Simple,
            })
            .await
            .expect("store"),
        );
        let admin = store
            .ensure_admin(vec![1; 32])
            .await
            .expect("admin")
            .expect("made");
        let setup = Instant::now();
        let mut tasks = Vec::new();
        for t in 0..callers {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                for c in (t..computers).step_by(callers) {
                    let id = store
                        .create_computer(format!("C{c}"), admin, vec![2; 32], Default::default())
                        .await
                        .expect("computer");
                    let partitions = (0..10)
                        .map(|i| api::PartitionDeclaration {
                            reference: format!("slappart{i}"),
                            addresses: vec![],
                        })
                        .collect();
                    store.declare_partitions(id, partitions).await.expect("partitions");
                    let supply = api::Supply {
                        software_release: "fleet.cfg".to_owned(),
                        state: api::SupplyState::Available,
                        project: None,
                    };
                    store.supply(id, supply).await.expect("supply");
                }
            }));
        }
        for task in tasks {
            task.await.expect("setup");
        }
        println!(
            "({location}: registered {computers} computers of 10 partitions in {:.1?})",
            setup.elapsed()
        );
        if let Location::Postgres(url) = &location {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
            sqlx::raw_sql(grove_store::scratch::ANALYZE_BULK_LOAD)
                .execute(&mut conn)
                .await
                .expect("analyze");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for t in 0..callers {
            let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let request = api::InstanceRequest::new(format!("f{t}-{i}"), "fleet.cfg".to_owned());
                    let sent = Instant::now();
                    store
                        .request(admin, Requester::User(admin), request)
                        .await
                        .expect("placed");
                    latencies.push(sent.elapsed());
                    i += 1;
                }
                latencies
            }));
        }
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.expect("callers"));
        }
        let elapsed = started.elapsed().as_secs_f64();
        latencies.sort_unstable();
        let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "placements among {computers} computers, {callers} callers, the store alone: {:.0}/s, p50 {:.2?}, p99 {:.2?}",
            latencies.len() as f64 / elapsed,
            pick(0.5),
            pick(0.99)
        );
    });
    runtime
        .block_on(grove_store::scratch::drop_database(&location))
        .expect("drop the bench's database");
}
