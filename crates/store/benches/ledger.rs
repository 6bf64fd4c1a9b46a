//! Usage and billing at the store, without HTTP: usage reports ingested (each new sample
//! recounting its hours of the ledger), and the invoice of a project of 1,000 instances for
//! a month (its ledger's sums, then the arithmetic). SQLite, or PostgreSQL with
//! `GROVE_BENCH_STORE=postgres`. Results go to BENCHMARKS.md.
//!
//! `cargo bench -p grove-store --bench ledger` (`GROVE_BENCH_SECONDS`, default 5).

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use grove_store::{Db, Location, Policy, Requester, Store, StoreConfig, api};
use sqlx::Connection;

const COMPUTERS: usize = 10;
const PER_COMPUTER: usize = 100;
/// 2026-11-01 00:00 UTC.
const NOVEMBER: i64 = 1_793_491_200;

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::var("GROVE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().expect("tempdir");
    let location = if std::env::var("GROVE_BENCH_STORE").as_deref() == Ok("postgres") {
        grove_store::scratch::database()
            .await
            .unwrap_or_else(|e| panic!("GROVE_BENCH_STORE=postgres: {e}"))
    } else {
        Location::Sqlite(dir.path().join("store.sqlite"))
    };
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
    let project = store.create_project("p".to_owned()).await.expect("project");
    let mut computers = Vec::new();
    for c in 0..COMPUTERS {
        let id = store
            .create_computer(format!("C{c}"), admin, vec![2; 32], Default::default())
            .await
            .expect("computer");
        let partitions = (0..PER_COMPUTER)
            .map(|i| api::PartitionDeclaration {
                reference: format!("slappart{i}"),
                addresses: vec![],
            })
            .collect();
        store
            .declare_partitions(id, partitions)
            .await
            .expect("partitions");
        store
            .supply(
                id,
                api::Supply {
                    software_release: "sr.cfg".to_owned(),
                    state: api::SupplyState::Available,
                    project: None,
                },
            )
            .await
            .expect("supply");
        computers.push(id);
    }
    let mut instances = Vec::new();
    for i in 0..COMPUTERS * PER_COMPUTER {
        let (instance, _) = store
            .request(
                admin,
                Requester::Project {
                    project,
                    user: admin,
                },
                api::InstanceRequest::new(format!("i{i}"), "sr.cfg"),
            )
            .await
            .expect("placed");
        instances.push(instance.id);
    }

    // Ingestion: each computer reports its 100 partitions a minute apart, as fast as the
    // store takes it, ten computers at once.
    let started = Instant::now();
    let stop = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for &computer in &computers {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut reports = 0u64;
            while Instant::now() < stop {
                let minute = i64::try_from(reports).expect("count");
                let partitions = (0..PER_COMPUTER)
                    .map(|i| api::PartitionUsage {
                        reference: format!("slappart{i}"),
                        cpu_seconds: 0.5 * f64::from(u32::try_from(reports).unwrap_or(0)),
                        memory_bytes: 1 << 28,
                        restarts: 0,
                        memory_peak_bytes: 0,
                        disk_bytes: 0,
                    })
                    .collect();
                store
                    .record_usage(
                        computer,
                        api::UsageReport {
                            partitions,
                            at: Some(NOVEMBER - 86_400 + minute * 60),
                        },
                    )
                    .await
                    .expect("report");
                reports += 1;
            }
            reports
        }));
    }
    let mut reports = 0;
    for task in tasks {
        reports += task.await.expect("reporter");
    }
    let samples = reports * PER_COMPUTER as u64;
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    let rate = samples as f64 / started.elapsed().as_secs_f64();
    println!(
        "({location}) usage samples ingested: {rate:.0}/s ({reports} reports of {PER_COMPUTER} partitions, 10 computers at once)"
    );

    // A month of ledger for 1,000 instances (720 hours each), written directly, then the
    // invoice: the sums by instance and the arithmetic.
    let url = match &location {
        Location::Postgres(url) => url.clone(),
        Location::Sqlite(path) => format!("sqlite://{}", path.display()),
    };
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&url).await.expect("connect");
    sqlx::raw_sql("BEGIN")
        .execute(&mut conn)
        .await
        .expect("begin");
    for &instance in &instances {
        let mut sql = String::from(
            "INSERT INTO ledger (instance_id, hour, partition_seconds, cpu_ms, memory_byte_seconds) VALUES ",
        );
        for h in 0..720 {
            if h > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "({instance}, {}, 3600, 180000, {})",
                NOVEMBER + h * 3600,
                3600_i64 << 28
            ));
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .expect("ledger");
    }
    sqlx::raw_sql("COMMIT")
        .execute(&mut conn)
        .await
        .expect("commit");
    let prices = grove_billing::PriceList::parse(&api::Prices {
        currency: "EUR".to_owned(),
        partition_hour: "0.015".to_owned(),
        cpu_hour: "0.04".to_owned(),
        memory_gib_hour: "0.005".to_owned(),
        disk_gib_month: None,
        size_hour: Default::default(),
        release_partition_hour: Default::default(),
    })
    .expect("prices");
    let month = grove_billing::Month::parse("2026-11").expect("month");
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let (from, to) = month.bounds();
        let used: Vec<grove_billing::Item> = store
            .project_ledger(project, from, to)
            .await
            .expect("ledger")
            .into_iter()
            .map(|instance| grove_billing::Item {
                title: instance.title,
                software_release: instance.software_release,
                size: instance.size,
                used: grove_billing::Used {
                    partition_seconds: instance.used.partition_seconds,
                    cpu_ms: instance.used.cpu_ms,
                    memory_byte_seconds: instance.used.memory_byte_seconds,
                    disk_byte_seconds: instance.used.disk_byte_seconds,
                },
            })
            .collect();
        let invoice = grove_billing::invoice("p", month, &prices, &used);
        assert_eq!(invoice.lines.len(), 3000);
        times.push(started.elapsed());
    }
    times.sort();
    println!(
        "invoice of a project of 1000 instances for a month (720,000 ledger hours): median {:.1?}, max {:.1?} (5 runs)",
        times[2], times[4]
    );
    if matches!(location, Location::Postgres(_)) {
        grove_store::scratch::drop_database(&location)
            .await
            .expect("drop");
    }
}
