//! The hourly ledger kept from usage reports, on both backends: reports that come late,
//! twice or out of order leave the same ledger as the same reports in order, and a known
//! set of reports gives known hours.

mod common;

use common::{cloud, postgres};
use grove_store::{Db, LedgerRow, Location, Requester, Store, api};

const T: i64 = 1_798_000_000 - 1_798_000_000 % 3600;

/// A store with one instance placed on C1's `slappart0`: the store, C1's id, the
/// instance's id.
async fn store(location: Location) -> (Db, i64, i64) {
    let (store, admin, computer) = cloud(location, 1).await;
    let (instance, _) = store
        .request(
            admin,
            Requester::User(admin),
            api::InstanceRequest::new("web", "sr.cfg"),
        )
        .await
        .expect("placed");
    (store, computer, instance.id)
}

/// A report of slappart0 measured at `T + at`.
fn report(at: i64, cpu_seconds: f64, memory_bytes: u64) -> api::UsageReport {
    api::UsageReport {
        partitions: vec![api::PartitionUsage {
            reference: "slappart0".to_owned(),
            cpu_seconds,
            memory_bytes,
            restarts: 0,
            memory_peak_bytes: 0,
            disk_bytes: 0,
        }],
        at: Some(T + at),
    }
}

async fn ledger(store: &Db, instance: i64) -> Vec<LedgerRow> {
    store
        .ledger(instance, T - 3600, T + 10 * 3600)
        .await
        .expect("ledger")
}

#[tokio::test]
async fn late_repeated_and_shuffled_reports_keep_the_same_exact_ledger() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Every minute for two hours and a half, CPU growing 0.5 s a minute, memory 1 MiB.
    let reports: Vec<api::UsageReport> = (0..=150)
        .map(|m| {
            report(
                m * 60,
                f64::from(u32::try_from(m).expect("small")) * 0.5,
                1 << 20,
            )
        })
        .collect();
    for (name, location) in [
        (
            "sqlite",
            Location::Sqlite(dir.path().join("in-order.sqlite")),
        ),
        ("postgres", postgres().await),
    ] {
        let (in_order, computer, instance) = store(location).await;
        for r in &reports {
            in_order
                .record_usage(computer, r.clone())
                .await
                .expect("report");
        }
        let expected = ledger(&in_order, instance).await;
        let hour = |h: i64, seconds: i64, cpu_ms: i64| LedgerRow {
            hour: T + h * 3600,
            partition_seconds: seconds,
            cpu_ms,
            memory_byte_seconds: seconds * (1 << 20),
            memory_peak_bytes: 1 << 20,
            disk_byte_seconds: 0,
        };
        assert_eq!(
            expected,
            [
                hour(0, 3600, 30_000),
                hour(1, 3600, 30_000),
                hour(2, 1800, 15_000)
            ],
            "{name}: known reports give known hours"
        );

        // The same reports shuffled, some twice, the first ones last (late).
        let other = match name {
            "sqlite" => Location::Sqlite(dir.path().join("shuffled.sqlite")),
            _ => postgres().await,
        };
        let (shuffled, computer, instance) = store(other).await;
        let mut order: Vec<usize> = (0..reports.len()).collect();
        order.reverse();
        order.rotate_left(40);
        order.extend([3, 77, 150, 0]);
        for i in order {
            shuffled
                .record_usage(computer, reports[i].clone())
                .await
                .expect("report");
        }
        assert_eq!(
            ledger(&shuffled, instance).await,
            expected,
            "{name}: the order and repeats of reports change nothing"
        );
        // A time the ledger cannot count is refused; the store goes on.
        let mut far = report(0, 1.0, 1);
        far.at = Some(i64::MAX);
        let refused = shuffled
            .record_usage(computer, far)
            .await
            .expect_err("refused");
        assert!(
            matches!(refused, grove_store::StoreError::Invalid(_)),
            "{refused}"
        );
        shuffled
            .record_usage(computer, report(151 * 60, 76.0, 1 << 20))
            .await
            .expect("the writer is alive");
    }
}
