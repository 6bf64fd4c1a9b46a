//! Opening a store: migrations, and a store written by a newer Grove.

use grove_store::{SqliteStore, StoreError};
use sqlx::Connection;

#[tokio::test]
async fn a_store_from_a_newer_grove_is_refused_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("master.sqlite");
    drop(
        SqliteStore::open(&path)
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

    let error = SqliteStore::open(&path).await.expect_err("refused");
    assert!(
        matches!(error, StoreError::Newer { found: 99, .. }),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "the store at {} is at schema version 99, newer than this Grove's 2: run a newer Grove",
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

/// A store from before labels (schema 1) is migrated at open; its computers are kept and
/// have no labels.
#[tokio::test]
async fn a_store_from_before_labels_is_migrated_and_keeps_its_computers() {
    use grove_store::Store;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("master.sqlite");
    let store = SqliteStore::open(&path).await.expect("creates");
    let admin = store
        .ensure_admin(vec![1; 32])
        .await
        .expect("admin")
        .expect("created");
    store
        .create_computer("COMP-1".to_owned(), admin, vec![2; 32], Default::default())
        .await
        .expect("computer");
    drop(store);
    // Back to schema 1: what an older Grove left.
    let url = format!("sqlite://{}", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("connect");
    for statement in [
        "ALTER TABLE computers DROP COLUMN labels",
        "PRAGMA user_version = 1",
    ] {
        sqlx::query(statement)
            .execute(&mut conn)
            .await
            .expect("downgrade");
    }
    conn.close().await.expect("close");

    let store = SqliteStore::open(&path).await.expect("migrates");
    let computers = store.computers(None).await.expect("computers");
    assert_eq!(computers.len(), 1);
    assert_eq!(computers[0].reference, "COMP-1");
    assert!(computers[0].labels.is_empty());
}
