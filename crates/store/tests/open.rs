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
            "the store at {} is at schema version 99, newer than this Grove's 1: run a newer Grove",
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
