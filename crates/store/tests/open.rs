//! Opening a store: migrations, and a store written by a newer Grove.

mod common;

use common::postgres;
use grove_store::{Db, StoreConfig, StoreError};
use sqlx::Connection;

#[tokio::test]
async fn a_store_from_a_newer_grove_is_refused_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("master.sqlite");
    drop(
        Db::open(&StoreConfig::sqlite(&path))
            .await
            .expect("creates and migrates"),
    );
    let url = format!("sqlite://{}", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("connect");
    sqlx::query("PRAGMA user_version = 99")
        .execute(&mut conn)
        .await
        .expect("pretend a newer schema");
    conn.close().await.expect("close");

    let error = Db::open(&StoreConfig::sqlite(&path))
        .await
        .expect_err("refused");
    assert!(
        matches!(error, StoreError::Newer { found: 99, .. }),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "the store at sqlite:{} is at schema version 99, newer than this Grove's 14: run a newer Grove",
            path.display()
        )
    );
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("connect");
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut conn)
        .await
        .expect("version");
    assert_eq!(version, 99, "nothing was migrated");
}

/// A store an older Grove left (schema 2: labels, and the rules in triggers) is migrated
/// at open: its computers, instances and partitions are kept, and the counters the rules
/// now keep themselves start from what the partitions hold.
#[tokio::test]
async fn a_store_from_before_the_rules_moved_is_migrated_and_keeps_everything() {
    use grove_store::{Requester, Store, api};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("master.sqlite");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("connect");
    for statement in [
        include_str!("../migrations/sqlite/0001_initial.sql"),
        include_str!("../migrations/sqlite/0002_labels.sql"),
        "PRAGMA user_version = 2",
        "INSERT INTO principals (kind, name, token_hash, created_at) VALUES ('admin', 'admin', x'01', 0)",
        "INSERT INTO computers (reference, owner_id, token_hash, created_at, labels) \
         VALUES ('COMP-1', 1, x'02', 0, '{\"zone\":\"eu-1\"}')",
        "INSERT INTO partitions (computer_id, reference) VALUES (1, 'slappart0'), (1, 'slappart1')",
        "INSERT INTO software (computer_id, url, requested_state) VALUES (1, 'https://sr/a.cfg', 'available')",
        "INSERT INTO instances (owner_id, requester, title, software_release, software_type, \
         parameters, requested_state, shared, sla, computer_id, partition_reference, timestamp) \
         VALUES (1, 'user:1', 'old', 'https://sr/a.cfg', 'default', '{}', 'started', 0, '{}', 1, 'slappart0', 5)",
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .expect("an old store");
    }
    conn.close().await.expect("close");

    let store = Db::open(&StoreConfig::sqlite(&path))
        .await
        .expect("migrates");
    let computers = store.computers(None).await.expect("computers");
    assert_eq!(computers.len(), 1);
    assert_eq!(
        computers[0].labels.get("zone").map(String::as_str),
        Some("eu-1")
    );
    let old = store.instance(1).await.expect("read").expect("kept");
    assert_eq!(old.partition.as_deref(), Some("slappart0"));
    let ask =
        |title: &str| api::InstanceRequest::new(title.to_owned(), "https://sr/a.cfg".to_owned());
    let (new, _) = store
        .request(1, Requester::User(1), ask("new"))
        .await
        .expect("the free partition is found");
    assert_eq!(new.partition.as_deref(), Some("slappart1"));
    assert!(
        new.timestamp > 5,
        "the clock starts after the old timestamps"
    );
    let full = store
        .request(1, Requester::User(1), ask("more"))
        .await
        .expect_err("both partitions are used");
    assert!(matches!(full, StoreError::NoCapacity(_)), "{full}");
}

#[tokio::test]
async fn a_postgres_store_from_a_newer_grove_is_refused_untouched() {
    let location = postgres().await;
    let config = StoreConfig {
        location: location.clone(),
        placement: grove_store::Policy::Simple,
    };
    drop(Db::open(&config).await.expect("creates and migrates"));
    let grove_store::Location::Postgres(url) = &location else {
        unreachable!("a postgres location")
    };
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query("UPDATE grove_schema SET version = 99")
        .execute(&mut conn)
        .await
        .expect("pretend a newer schema");
    let error = Db::open(&config).await.expect_err("refused");
    assert!(
        matches!(error, StoreError::Newer { found: 99, .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .ends_with("newer than this Grove's 12: run a newer Grove"),
        "{error}"
    );
    assert!(
        !error.to_string().contains(":grove@"),
        "no password in {error}"
    );
    let version: i64 = sqlx::query_scalar("SELECT version FROM grove_schema")
        .fetch_one(&mut conn)
        .await
        .expect("version");
    assert_eq!(version, 99, "nothing was migrated");
}

/// Masters sharing a store share its master key: the first one proposed is kept.
#[tokio::test]
async fn the_master_key_is_the_first_one_proposed_on_both_backends() {
    use grove_store::Store;
    let dir = tempfile::tempdir().expect("tempdir");
    for location in [
        grove_store::Location::Sqlite(dir.path().join("master.sqlite")),
        postgres().await,
    ] {
        let config = StoreConfig {
            location: location.clone(),
            placement: grove_store::Policy::Simple,
        };
        let first = Db::open(&config).await.expect("opens");
        let second = Db::open(&config).await.expect("opens beside");
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        assert_eq!(
            first.master_key(a.clone()).await.expect("key"),
            a,
            "{location}"
        );
        assert_eq!(second.master_key(b).await.expect("key"), a, "{location}");
    }
}

/// The counters placement reads (free and used partitions) follow every placement and
/// every freed partition, on both backends: the fast path writes them with
/// dialect-specific statements, the general path with common ones.
#[tokio::test]
async fn capacity_counters_follow_placements_on_both_backends() {
    use grove_store::{Location, Policy, Requester, Store, api};
    let dir = tempfile::tempdir().expect("tempdir");
    for location in [
        Location::Sqlite(dir.path().join("master.sqlite")),
        postgres().await,
    ] {
        for policy in [Policy::Simple, Policy::Chance] {
            let store = Db::open(&StoreConfig {
                location: location.clone(),
                placement: policy,
            })
            .await
            .expect("opens");
            // The first store of the location makes the admin (id 1); the next finds it.
            let admin = store
                .ensure_admin(vec![1; 32])
                .await
                .expect("admin")
                .unwrap_or(1);
            let reference = format!("C-{policy}");
            let computer = store
                .create_computer(reference.clone(), admin, vec![2; 32], Default::default())
                .await
                .expect("computer");
            let partitions = (0..3)
                .map(|i| api::PartitionDeclaration {
                    reference: format!("slappart{i}"),
                    addresses: vec![],
                })
                .collect();
            store
                .declare_partitions(computer, partitions)
                .await
                .expect("partitions");
            let url = format!("https://sr/{policy}.cfg");
            store
                .supply(
                    computer,
                    api::Supply {
                        software_release: url.clone(),
                        state: api::SupplyState::Available,
                        project: None,
                    },
                )
                .await
                .expect("supply");
            let ask = |title: &str, state| api::InstanceRequest {
                title: format!("{policy}-{title}"),
                software_release: url.clone(),
                software_type: "default".to_owned(),
                parameters: Default::default(),
                state,
                shared: false,
                sla: [("computer_guid".to_owned(), reference.clone())].into(),
                project: None,
            };
            let started = api::RequestedState::Started;
            let mut placed = Vec::new();
            for i in 0..3 {
                let (instance, changed) = store
                    .request(
                        admin,
                        Requester::User(admin),
                        ask(&format!("i{i}"), started),
                    )
                    .await
                    .expect("placed");
                assert_eq!(changed.computers, [computer], "{location} {policy}");
                placed.push(instance);
            }
            let parts: Vec<_> = placed
                .iter()
                .map(|i| i.partition.clone().expect("placed"))
                .collect();
            assert_eq!(
                parts,
                ["slappart0", "slappart1", "slappart2"],
                "{location} {policy}"
            );
            let full = store
                .request(admin, Requester::User(admin), ask("i3", started))
                .await
                .expect_err("full");
            assert!(
                matches!(full, StoreError::NoCapacity(_)),
                "{location} {policy}: {full}"
            );
            // One destroyed and reported so: its partition is the one the next takes.
            store
                .request(
                    admin,
                    Requester::User(admin),
                    ask("i1", api::RequestedState::Destroyed),
                )
                .await
                .expect("destroy");
            store
                .report_instance(
                    placed[1].id,
                    api::StateReport {
                        state: api::ReportedState::Destroyed,
                        error: None,
                        timestamp: None,
                    },
                )
                .await
                .expect("report");
            let (again, _) = store
                .request(admin, Requester::User(admin), ask("i3", started))
                .await
                .expect("the freed partition");
            assert_eq!(
                again.partition.as_deref(),
                Some("slappart1"),
                "{location} {policy}"
            );
            let computers = store.computers(None).await.expect("computers");
            let mine = computers
                .iter()
                .find(|c| c.reference == reference)
                .expect("listed");
            let used = mine
                .partitions
                .iter()
                .filter(|p| p.instance.is_some())
                .count();
            assert_eq!(used, 3, "{location} {policy}");
            store
                .request(admin, Requester::User(admin), ask("i4", started))
                .await
                .expect_err("full again: the counters agree with the partitions");
        }
    }
}
