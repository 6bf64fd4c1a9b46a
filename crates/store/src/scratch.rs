//! Fresh PostgreSQL databases for tests and benchmarks: each gets a database of its own on
//! the server `GROVE_TEST_POSTGRES` names (a role that may create databases), so that
//! suites run side by side. `.ci/run` starts that server; without it, the caller fails
//! with this module's message rather than skipping.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection, PgConnection};

use crate::{Location, Result, StoreError};

/// The variable naming the server.
pub const POSTGRES_ENV: &str = "GROVE_TEST_POSTGRES";
/// What `.ci/run` sets up.
pub const POSTGRES_DEFAULT: &str = "postgres://grove:grove@127.0.0.1:5432/postgres";

/// The server tests use.
pub fn server_url() -> String {
    std::env::var(POSTGRES_ENV).unwrap_or_else(|_| POSTGRES_DEFAULT.to_owned())
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (before_query, query) = match rest.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap_or_default();
    let mut out = format!("{scheme}://{authority}/{database}");
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Creates an empty database and gives its location.
pub async fn database() -> Result<Location> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let server = server_url();
    let shown = Location::Postgres(server.clone()).to_string();
    let unreachable = |source| StoreError::Open {
        location: format!(
            "{shown} (the PostgreSQL server for tests, from {POSTGRES_ENV}; .ci/run starts one)"
        ),
        source,
    };
    let mut conn = PgConnection::connect(&server).await.map_err(unreachable)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!(
        "grove_test_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .map_err(unreachable)?;
    conn.close().await.map_err(unreachable)?;
    Ok(Location::Postgres(with_database(&server, &name)))
}

/// Drops a database [`database`] made (benchmarks do, so that the next run does not
/// share the disk with the last one's autovacuum).
pub async fn drop_database(location: &Location) -> Result<()> {
    let Location::Postgres(url) = location else {
        return Ok(());
    };
    let name = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').nth(1))
        .and_then(|tail| tail.split('?').next())
        .filter(|name| {
            name.starts_with("grove_test_")
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
        .ok_or_else(|| StoreError::BadLocation(location.to_string()))?;
    let mut conn = PgConnection::connect(&server_url()).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_database_is_replaced() {
        for (url, expected) in [
            ("postgres://u:p@h:5432/postgres", "postgres://u:p@h:5432/x"),
            ("postgres://u@h", "postgres://u@h/x"),
            (
                "postgres://u@/db?host=/run/postgresql",
                "postgres://u@/x?host=/run/postgresql",
            ),
        ] {
            assert_eq!(super::with_database(url, "x"), expected);
        }
    }
}
