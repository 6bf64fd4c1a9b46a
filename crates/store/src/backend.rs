//! What differs between SQLite and PostgreSQL: where the store is, how to connect,
//! migrate and lock, and how other masters hear of a change. The queries themselves are
//! common (`tx.rs`, `reads.rs`), run through sqlx's `Any` driver with `$N` parameters,
//! which both understand.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Connection, Row};

use crate::{Result, StoreError};

/// Where a store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    /// A `postgres://` URL.
    Postgres(String),
}

impl std::str::FromStr for Location {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<Location> {
        if let Some(path) = text.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(StoreError::BadLocation(text.to_owned()));
            }
            return Ok(Location::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(Location::Postgres(text.to_owned()));
        }
        Err(StoreError::BadLocation(text.to_owned()))
    }
}

impl std::fmt::Display for Location {
    /// For messages and logs: a PostgreSQL URL without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Location::Postgres(url) => f.write_str(&without_password(url)),
        }
    }
}

fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// The dialect of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

const SQLITE_MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_initial.sql"),
    include_str!("../migrations/sqlite/0002_labels.sql"),
    include_str!("../migrations/sqlite/0003_rules_in_rust.sql"),
    include_str!("../migrations/sqlite/0004_joining.sql"),
    include_str!("../migrations/sqlite/0005_partition_certificates.sql"),
    include_str!("../migrations/sqlite/0006_projects.sql"),
    include_str!("../migrations/sqlite/0007_ledger.sql"),
    include_str!("../migrations/sqlite/0008_credit.sql"),
    include_str!("../migrations/sqlite/0009_sizes.sql"),
    include_str!("../migrations/sqlite/0010_usage_detail.sql"),
    include_str!("../migrations/sqlite/0011_project_counters.sql"),
    include_str!("../migrations/sqlite/0012_applications.sql"),
    include_str!("../migrations/sqlite/0013_actions.sql"),
    include_str!("../migrations/sqlite/0014_application_kinds.sql"),
];

const POSTGRES_MIGRATIONS: &[&str] = &[
    include_str!("../migrations/postgres/0001_initial.sql"),
    include_str!("../migrations/postgres/0002_joining.sql"),
    include_str!("../migrations/postgres/0003_partition_certificates.sql"),
    include_str!("../migrations/postgres/0004_projects.sql"),
    include_str!("../migrations/postgres/0005_ledger.sql"),
    include_str!("../migrations/postgres/0006_credit.sql"),
    include_str!("../migrations/postgres/0007_sizes.sql"),
    include_str!("../migrations/postgres/0008_usage_detail.sql"),
    include_str!("../migrations/postgres/0009_project_counters.sql"),
    include_str!("../migrations/postgres/0010_applications.sql"),
    include_str!("../migrations/postgres/0011_actions.sql"),
    include_str!("../migrations/postgres/0012_application_kinds.sql"),
];

/// The channel masters sharing a PostgreSQL store tell each other their changes on.
pub(crate) const CHANNEL: &str = "grove_changes";

/// Serializes the writers of every master sharing a PostgreSQL store (an advisory lock
/// held until the transaction ends), as SQLite's `BEGIN IMMEDIATE` does for one file.
const WRITE_LOCK: i64 = 0x6772_6f76_6501;
/// `BEGIN` and [`WRITE_LOCK`] taken (its value, spelled out).
const BEGIN_LOCKED: &str = "BEGIN; SELECT 1 FROM pg_advisory_xact_lock(113741193962753); \
     SELECT last FROM clock WHERE id = 1";

impl Backend {
    pub(crate) fn of(location: &Location) -> Backend {
        match location {
            Location::Sqlite(_) => Backend::Sqlite,
            Location::Postgres(_) => Backend::Postgres,
        }
    }

    fn migrations(self) -> &'static [&'static str] {
        match self {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        }
    }

    /// Starts a write transaction that no other writer runs beside; on PostgreSQL, also
    /// the store's clock as other masters left it (read once the lock is held, by a
    /// statement of its own: each sees what committed before it started).
    pub(crate) async fn begin(self, conn: &mut AnyConnection) -> sqlx::Result<Option<i64>> {
        match self {
            Backend::Sqlite => exec(conn, "BEGIN IMMEDIATE").await.map(|()| None),
            // One round trip: the three statements in one simple query.
            Backend::Postgres => {
                let rows = sqlx::raw_sql(BEGIN_LOCKED).fetch_all(conn).await?;
                let clock = rows.last().ok_or_else(|| {
                    sqlx::Error::Protocol("the store has no clock row".to_owned())
                })?;
                Ok(Some(clock.try_get(0)?))
            }
        }
    }
}

pub(crate) async fn exec(conn: &mut AnyConnection, sql: &'static str) -> sqlx::Result<()> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map(|_| ())
}

/// A PostgreSQL URL whose connections say what they are for (`application_name`, seen in
/// `pg_stat_activity`), unless the operator named them.
fn named(url: &str, name: &str) -> String {
    if url.contains("application_name=") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}application_name={name}")
}

/// A path as a `sqlite://` URL (bytes outside a safe set percent-encoded).
fn sqlite_url(path: &Path, mode: &str) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut url = String::from("sqlite://");
    for &byte in path.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"/._-".contains(&byte) {
            url.push(char::from(byte));
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    url.push_str("?mode=");
    url.push_str(mode);
    url
}

/// How to reach a store, once parsed.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) backend: Backend,
    pub(crate) location: Location,
    writer: AnyConnectOptions,
    readers: AnyConnectOptions,
}

impl Target {
    pub(crate) fn new(location: &Location) -> Result<Target> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of(location);
        let parse = |url: &str| {
            url.parse::<AnyConnectOptions>()
                .map(|o| o.disable_statement_logging())
                .map_err(|source| StoreError::Open {
                    location: location.to_string(),
                    source,
                })
        };
        let (writer, readers) = match location {
            Location::Sqlite(path) => (
                parse(&sqlite_url(path, "rwc"))?,
                parse(&sqlite_url(path, "ro"))?,
            ),
            Location::Postgres(url) => (
                parse(&named(url, "grove-writer"))?,
                parse(&named(url, "grove-reader"))?,
            ),
        };
        Ok(Target {
            backend,
            location: location.clone(),
            writer,
            readers,
        })
    }

    pub(crate) fn open_error(&self, source: sqlx::Error) -> StoreError {
        StoreError::Open {
            location: self.location.to_string(),
            source,
        }
    }

    /// The writer's connection.
    pub(crate) async fn connect(&self) -> sqlx::Result<AnyConnection> {
        let mut conn = AnyConnection::connect_with(&self.writer).await?;
        if self.backend == Backend::Sqlite {
            // A commit is on disk when it returns: acknowledged means durable.
            exec(
                &mut conn,
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000",
            )
            .await?;
        }
        Ok(conn)
    }

    pub(crate) async fn readers(&self) -> sqlx::Result<AnyPool> {
        AnyPoolOptions::new()
            .max_connections(4)
            .connect_with(self.readers.clone())
            .await
    }

    /// Applies the migrations this store lacks; a store from a newer Grove is refused
    /// untouched.
    pub(crate) async fn migrate(&self, conn: &mut AnyConnection) -> Result<()> {
        let migrations = self.backend.migrations();
        let newer = |found: i64| StoreError::Newer {
            location: self.location.to_string(),
            found,
            known: migrations.len(),
        };
        match self.backend {
            Backend::Sqlite => {
                let version: i64 = sqlx::query("PRAGMA user_version")
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get(0)?;
                let done = usize::try_from(version).unwrap_or(0);
                if done > migrations.len() {
                    return Err(newer(version));
                }
                for (index, migration) in migrations.iter().enumerate().skip(done) {
                    let mut tx = conn.begin().await?;
                    sqlx::raw_sql(sqlx::AssertSqlSafe(*migration))
                        .execute(&mut *tx)
                        .await?;
                    let set_version = format!("PRAGMA user_version = {}", index + 1);
                    sqlx::raw_sql(sqlx::AssertSqlSafe(set_version))
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    tracing::info!(migration = index + 1, "store migrated");
                }
            }
            Backend::Postgres => {
                // Masters starting together migrate one after the other.
                let mut tx = conn.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(WRITE_LOCK)
                    .execute(&mut *tx)
                    .await?;
                exec(
                    &mut tx,
                    "CREATE TABLE IF NOT EXISTS grove_schema (version BIGINT NOT NULL)",
                )
                .await?;
                let version: Option<i64> = sqlx::query("SELECT version FROM grove_schema")
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|row| row.try_get(0))
                    .transpose()?;
                let version = version.unwrap_or(0);
                let done = usize::try_from(version).unwrap_or(0);
                if done > migrations.len() {
                    return Err(newer(version));
                }
                for (index, migration) in migrations.iter().enumerate().skip(done) {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(*migration))
                        .execute(&mut *tx)
                        .await?;
                    tracing::info!(migration = index + 1, "store migrated");
                }
                let known = i64::try_from(migrations.len()).unwrap_or(i64::MAX);
                exec(&mut tx, "DELETE FROM grove_schema").await?;
                sqlx::query("INSERT INTO grove_schema (version) VALUES ($1)")
                    .bind(known.max(version))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// The PostgreSQL URL of the listener.
    pub(crate) fn listener_url(&self) -> Option<String> {
        match &self.location {
            Location::Postgres(url) => Some(named(url, "grove-listener")),
            Location::Sqlite(_) => None,
        }
    }
}

/// How long the writer waits before connecting again after losing its connection.
pub(crate) const RECONNECT: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_lock_is_spelled_out_right() {
        assert!(BEGIN_LOCKED.contains(&format!("pg_advisory_xact_lock({WRITE_LOCK})")));
    }

    #[test]
    fn locations_parse_and_hide_passwords() {
        let cases = [
            (
                "sqlite:/var/lib/grove/master.sqlite",
                Some("sqlite:/var/lib/grove/master.sqlite"),
            ),
            ("sqlite:///tmp/a b.sqlite", Some("sqlite:/tmp/a b.sqlite")),
            (
                "postgres://grove:secret@db.example/grove",
                Some("postgres://grove@db.example/grove"),
            ),
            (
                "postgresql://grove@/grove?host=/run/postgresql",
                Some("postgresql://grove@/grove?host=/run/postgresql"),
            ),
            ("sqlite:", None),
            ("mysql://x@y/z", None),
            ("/var/lib/grove/master.sqlite", None),
        ];
        for (text, shown) in cases {
            let parsed = text.parse::<Location>();
            assert_eq!(
                parsed.as_ref().ok().map(ToString::to_string).as_deref(),
                shown,
                "{text}"
            );
        }
    }

    #[test]
    fn sqlite_paths_are_encoded() {
        assert_eq!(
            sqlite_url(Path::new("/tmp/a b?c.sqlite"), "ro"),
            "sqlite:///tmp/a%20b%3Fc.sqlite?mode=ro"
        );
    }
}
