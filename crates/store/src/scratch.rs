//! Fresh PostgreSQL databases for tests and benchmarks: each gets a database of its own on
//! the server `GROVE_TEST_POSTGRES` names (a role that may create databases), so that
//! suites run side by side. `.ci/run` starts that server; without it, the caller fails
//! with this module's message rather than skipping.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection, PgConnection};

use crate::{Location, Result, StoreError};

/// The variable naming the server.
pub const POSTGRES_ENV: &str = "GROVE_TEST_POSTGRES";
/// What autovacuum does within its minute after a bench's bulk load of computers, and an
/// operator at once. Only the loaded tables: statistics saying `instances` is empty would
/// make the foreign-key checks into it, planned once per connection, scan the whole table
/// until `instances` is analyzed again (a fresh cloud's autovacuum analyzes it after its
/// first fifty instances).
pub const ANALYZE_BULK_LOAD: &str = "ANALYZE principals, computers, partitions, software";

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
    if on_this_machine(&server) {
        drop_leftovers(&mut conn).await;
    }
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

/// Whether the server runs here, so that a database's process id says whether its test
/// still runs.
fn on_this_machine(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = host.rsplit_once(':').map_or(host, |(host, _)| host);
    matches!(host, "" | "127.0.0.1" | "localhost" | "[::1]")
}

/// Drops the databases of test processes that have ended (their process id is gone), one
/// process at a time (the others go on without waiting). A failure leaves them for later.
async fn drop_leftovers(conn: &mut PgConnection) {
    const CLEANING: i64 = 0x6772_6f76_6502;
    let locked: bool = match sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(CLEANING)
        .fetch_one(&mut *conn)
        .await
    {
        Ok(locked) => locked,
        Err(_) => return,
    };
    if !locked {
        return;
    }
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'grove\\_test\\_%'")
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default();
    for name in names {
        let pid = name
            .split('_')
            .nth(2)
            .and_then(|pid| pid.parse::<u32>().ok());
        let ended = pid.is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists());
        let safe = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if ended && safe {
            let dropped = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut *conn)
            .await;
            if let Err(e) = dropped {
                tracing::debug!(database = %name, error = %e, "a leftover test database stays");
            }
        }
    }
    let _unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(CLEANING)
        .execute(&mut *conn)
        .await;
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
    fn servers_here_and_elsewhere() {
        for (url, here) in [
            ("postgres://grove:grove@127.0.0.1:5432/postgres", true),
            ("postgres://grove@localhost/postgres", true),
            ("postgres://grove@/postgres?host=/run/postgresql", true),
            ("postgres://grove@db.example:5432/postgres", false),
        ] {
            assert_eq!(super::on_this_machine(url), here, "{url}");
        }
    }

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
