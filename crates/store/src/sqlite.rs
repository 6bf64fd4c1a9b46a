//! [`Store`] on SQLite: one writer connection fed by a queue (group commit), a pool of
//! readers beside it (WAL lets them read while the writer writes).

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use grove_api as api;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, Row};
use tokio::sync::{mpsc, oneshot};

use crate::{Changed, ComputerRow, PrincipalRow, Requester, Result, Store, StoreError};

/// The most mutations one transaction takes.
const MAX_BATCH: usize = 512;

fn labels_json(labels: &BTreeMap<String, String>) -> String {
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".to_owned())
}

/// Embedded migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_initial.sql"),
    include_str!("../migrations/0002_labels.sql"),
];

/// The SQLite store. Cloning it is cheap: clones share the writer and the readers.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: mpsc::Sender<Job>,
    readers: SqlitePool,
}

#[derive(Clone)]
enum Op {
    EnsureAdmin(Vec<u8>),
    CreateUser(String, Vec<u8>),
    CreateComputer(String, i64, Vec<u8>, BTreeMap<String, String>),
    SetLabels(i64, BTreeMap<String, String>),
    DeclarePartitions(i64, Vec<api::PartitionDeclaration>),
    Supply(i64, api::Supply),
    ReportSoftware(i64, api::SoftwareReport),
    Request(i64, Requester, api::InstanceRequest),
    ReportInstance(i64, api::StateReport),
    Publish(i64, api::Parameters),
    SetChildren(i64, Vec<String>),
    Usage(i64, api::UsageReport),
}

enum Outcome {
    Nothing,
    Id(i64),
    Changed(Changed),
    Instance(Box<api::Instance>, Changed),
}

struct Job {
    op: Op,
    reply: oneshot::Sender<Result<Outcome>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

/// Instance timestamps: microseconds since the epoch, strictly increasing.
struct Clock {
    last: i64,
}

impl Clock {
    fn next(&mut self) -> i64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        self.last = now.max(self.last + 1);
        self.last
    }
}

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and starts its writer.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        let open_error = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(open_error)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // A commit is on disk when it returns: acknowledged means durable.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .map_err(open_error)?;
        migrate(&mut conn).await.map_err(|e| match e {
            StoreError::Newer { found, known, .. } => StoreError::Newer {
                path: path.display().to_string(),
                found,
                known,
            },
            other => other,
        })?;
        let last: i64 = sqlx::query("SELECT COALESCE(MAX(timestamp), 0) FROM instances")
            .fetch_one(&mut conn)
            .await?
            .try_get(0)?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .map_err(open_error)?;
        let (writer, queue) = mpsc::channel(4096);
        // The writer has a thread of its own, so that the requests it serializes do not
        // wait behind the HTTP work of the runtime that serves them.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                source: sqlx::Error::Io(e),
            })?;
        std::thread::Builder::new()
            .name("grove-store-writer".to_owned())
            .spawn(move || runtime.block_on(write_loop(conn, queue, Clock { last })))
            .map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                source: sqlx::Error::Io(e),
            })?;
        Ok(SqliteStore { writer, readers })
    }

    async fn write(&self, op: Op) -> Result<Outcome> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Job { op, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn write_changed(&self, op: Op) -> Result<Changed> {
        match self.write(op).await? {
            Outcome::Changed(c) => Ok(c),
            _ => Ok(Changed::default()),
        }
    }
}

async fn migrate(conn: &mut SqliteConnection) -> Result<()> {
    let version: i64 = sqlx::query("PRAGMA user_version")
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    let done = usize::try_from(version).unwrap_or(0);
    if done > MIGRATIONS.len() {
        return Err(StoreError::Newer {
            path: String::new(),
            found: version,
            known: MIGRATIONS.len(),
        });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(done) {
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
    Ok(())
}

async fn exec(
    conn: &mut SqliteConnection,
    sql: &'static str,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query(sql).execute(conn).await.map(|_| ())
}

/// The writer: takes every waiting mutation, applies them in one transaction, commits
/// once, then answers.
///
/// A batch is first applied as is; if one of its mutations fails (no capacity, a
/// conflict), the transaction is rolled back and the batch applied again with a savepoint
/// around each mutation, so that the failing one alone is undone.
async fn write_loop(mut conn: SqliteConnection, mut queue: mpsc::Receiver<Job>, mut clock: Clock) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let ops: Vec<Op> = batch.iter().map(|job| job.op.clone()).collect();
        let results = match run_batch(&mut conn, &ops, &mut clock, false).await {
            Ok(Some(results)) => Ok(results),
            Ok(None) => match run_batch(&mut conn, &ops, &mut clock, true).await {
                Ok(Some(results)) => Ok(results),
                Ok(None) => Err(sqlx::Error::Protocol(
                    "a savepoint did not isolate a failure".to_owned(),
                )),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match results {
            Ok(results) => {
                for (job, result) in batch.into_iter().zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store transaction failed");
                for job in batch {
                    let _ = job.reply.send(Err(StoreError::Database(clone_error(&e))));
                }
            }
        }
    }
}

/// Applies `ops` in one committed transaction and returns each result; `None` when, without
/// savepoints, one of them failed (the transaction is then rolled back).
async fn run_batch(
    conn: &mut SqliteConnection,
    ops: &[Op],
    clock: &mut Clock,
    savepoints: bool,
) -> std::result::Result<Option<Vec<Result<Outcome>>>, sqlx::Error> {
    exec(conn, "BEGIN IMMEDIATE").await?;
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        if savepoints && let Err(e) = exec(conn, "SAVEPOINT op").await {
            let _ = exec(conn, "ROLLBACK").await;
            return Err(e);
        }
        let result = apply(conn, op.clone(), clock).await;
        if savepoints {
            let cleanup = if result.is_err() {
                match exec(conn, "ROLLBACK TO op").await {
                    Ok(()) => exec(conn, "RELEASE op").await,
                    Err(e) => Err(e),
                }
            } else {
                exec(conn, "RELEASE op").await
            };
            if let Err(e) = cleanup {
                let _ = exec(conn, "ROLLBACK").await;
                return Err(e);
            }
        } else if result.is_err() {
            exec(conn, "ROLLBACK").await?;
            return Ok(None);
        }
        results.push(result);
    }
    if let Err(e) = exec(conn, "COMMIT").await {
        let _ = exec(conn, "ROLLBACK").await;
        return Err(e);
    }
    Ok(Some(results))
}

fn clone_error(e: &sqlx::Error) -> sqlx::Error {
    sqlx::Error::Protocol(e.to_string())
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

async fn apply(conn: &mut SqliteConnection, op: Op, clock: &mut Clock) -> Result<Outcome> {
    match op {
        Op::EnsureAdmin(hash) => {
            let exists = sqlx::query("SELECT id FROM principals WHERE kind = 'admin'")
                .fetch_optional(&mut *conn)
                .await?
                .is_some();
            if exists {
                return Ok(Outcome::Nothing);
            }
            let created = sqlx::query("INSERT INTO principals (kind, name, token_hash, created_at) VALUES ('admin', 'admin', ?, ?)")
                .bind(hash)
                .bind(now_seconds())
                .execute(&mut *conn)
                .await?;
            Ok(Outcome::Id(created.last_insert_rowid()))
        }
        Op::CreateUser(name, hash) => {
            let result = sqlx::query("INSERT INTO principals (kind, name, token_hash, created_at) VALUES ('user', ?, ?, ?)")
                .bind(&name)
                .bind(hash)
                .bind(now_seconds())
                .execute(&mut *conn)
                .await;
            match result {
                Ok(r) => Ok(Outcome::Id(r.last_insert_rowid())),
                Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                    "a user named {name:?} exists"
                ))),
                Err(e) => Err(e.into()),
            }
        }
        Op::CreateComputer(reference, owner, hash, labels) => {
            let result = sqlx::query("INSERT INTO computers (reference, owner_id, token_hash, created_at, labels) VALUES (?, ?, ?, ?, ?)")
                .bind(&reference)
                .bind(owner)
                .bind(hash)
                .bind(now_seconds())
                .bind(labels_json(&labels))
                .execute(&mut *conn)
                .await;
            match result {
                Ok(r) => Ok(Outcome::Id(r.last_insert_rowid())),
                Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                    "a computer {reference:?} is registered"
                ))),
                Err(e) => Err(e.into()),
            }
        }
        Op::SetLabels(computer, labels) => {
            sqlx::query("UPDATE computers SET labels = ? WHERE id = ?")
                .bind(labels_json(&labels))
                .bind(computer)
                .execute(&mut *conn)
                .await?;
            Ok(Outcome::Nothing)
        }
        Op::DeclarePartitions(computer, partitions) => {
            for p in &partitions {
                let addresses =
                    serde_json::to_string(&p.addresses).unwrap_or_else(|_| "[]".to_owned());
                sqlx::query(
                    "INSERT INTO partitions (computer_id, reference, addresses) VALUES (?, ?, ?) \
                     ON CONFLICT (computer_id, reference) DO UPDATE SET addresses = excluded.addresses",
                )
                .bind(computer)
                .bind(&p.reference)
                .bind(addresses)
                .execute(&mut *conn)
                .await?;
            }
            bump(conn, computer).await?;
            Ok(Outcome::Changed(Changed {
                computers: vec![computer],
            }))
        }
        Op::Supply(computer, supply) => {
            sqlx::query(
                "INSERT INTO software (computer_id, url, requested_state) VALUES (?, ?, ?) \
                 ON CONFLICT (computer_id, url) DO UPDATE SET requested_state = excluded.requested_state",
            )
            .bind(computer)
            .bind(&supply.software_release)
            .bind(supply.state.as_str())
            .execute(&mut *conn)
            .await?;
            bump(conn, computer).await?;
            Ok(Outcome::Changed(Changed {
                computers: vec![computer],
            }))
        }
        Op::ReportSoftware(computer, report) => {
            let row = sqlx::query(
                "SELECT requested_state FROM software WHERE computer_id = ? AND url = ?",
            )
            .bind(computer)
            .bind(&report.software_release)
            .fetch_optional(&mut *conn)
            .await?;
            let Some(row) = row else {
                return Err(StoreError::NotFound(format!(
                    "software release {} is not supplied to this computer",
                    report.software_release
                )));
            };
            let requested: String = row.try_get(0)?;
            if report.state == api::SoftwareState::Destroyed && requested == "destroyed" {
                sqlx::query("DELETE FROM software WHERE computer_id = ? AND url = ?")
                    .bind(computer)
                    .bind(&report.software_release)
                    .execute(&mut *conn)
                    .await?;
            } else {
                sqlx::query("UPDATE software SET reported_state = ?, error = ? WHERE computer_id = ? AND url = ?")
                    .bind(report.state.as_str())
                    .bind(&report.error)
                    .bind(computer)
                    .bind(&report.software_release)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(Outcome::Changed(Changed::default()))
        }
        Op::Request(owner, requester, request) => {
            let (instance, changed) =
                request_instance(conn, clock, owner, requester, request).await?;
            Ok(Outcome::Instance(Box::new(instance), changed))
        }
        Op::ReportInstance(id, report) => report_instance(conn, id, report)
            .await
            .map(Outcome::Changed),
        Op::Publish(id, parameters) => publish(conn, clock, id, parameters)
            .await
            .map(Outcome::Changed),
        Op::SetChildren(parent, titles) => set_children(conn, clock, parent, titles)
            .await
            .map(Outcome::Changed),
        Op::Usage(computer, report) => record_usage(conn, computer, report).await,
    }
}

async fn record_usage(
    conn: &mut SqliteConnection,
    computer: i64,
    report: api::UsageReport,
) -> Result<Outcome> {
    let at = now_seconds();
    for p in &report.partitions {
        let memory = i64::try_from(p.memory_bytes).unwrap_or(i64::MAX);
        let inserted = sqlx::query(
            "INSERT INTO usage (computer_id, instance_id, partition_reference, cpu_seconds, \
             memory_bytes, restarts, at) SELECT computer_id, instance_id, reference, ?, ?, ?, ? \
             FROM partitions WHERE computer_id = ? AND reference = ?",
        )
        .bind(p.cpu_seconds)
        .bind(memory)
        .bind(i64::from(p.restarts))
        .bind(at)
        .bind(computer)
        .bind(&p.reference)
        .execute(&mut *conn)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "partition {} of this computer",
                p.reference
            )));
        }
    }
    Ok(Outcome::Nothing)
}

async fn bump(conn: &mut SqliteConnection, computer: i64) -> Result<()> {
    sqlx::query("UPDATE computers SET revision = revision + 1 WHERE id = ?")
        .bind(computer)
        .execute(conn)
        .await?;
    Ok(())
}

fn json_object(text: &str) -> api::Parameters {
    serde_json::from_str(text).unwrap_or_default()
}

fn row_to_instance(row: &SqliteRow) -> Result<api::Instance> {
    let requested: String = row.try_get("requested_state")?;
    let reported: Option<String> = row.try_get("reported_state")?;
    let sla: String = row.try_get("sla")?;
    let id: i64 = row.try_get("id")?;
    Ok(api::Instance {
        id,
        title: row.try_get("title")?,
        software_release: row.try_get("software_release")?,
        software_type: row.try_get("software_type")?,
        parameters: json_object(&row.try_get::<String, _>("parameters")?),
        requested_state: api::RequestedState::parse(&requested)
            .unwrap_or(api::RequestedState::Destroyed),
        shared: row.try_get::<i64, _>("shared")? != 0,
        sla: serde_json::from_str(&sla).unwrap_or_default(),
        computer: row.try_get("computer")?,
        partition: row.try_get("partition_reference")?,
        host_instance: row.try_get("host_instance_id")?,
        parent: row.try_get("parent_id")?,
        root: row.try_get::<Option<i64>, _>("root_id")?.unwrap_or(id),
        reported_state: reported.as_deref().and_then(api::ReportedState::parse),
        error: row.try_get("error")?,
        connection: json_object(&row.try_get::<String, _>("connection")?),
        timestamp: row.try_get("timestamp")?,
        reported_timestamp: row.try_get("reported_timestamp")?,
    })
}

async fn load_instance(
    conn: &mut SqliteConnection,
    id: i64,
) -> Result<Option<(api::Instance, Option<i64>)>> {
    let row = sqlx::query(INSTANCE_BY_ID)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    match row {
        Some(row) => {
            let computer_id: Option<i64> = row.try_get("computer_id")?;
            Ok(Some((row_to_instance(&row)?, computer_id)))
        }
        None => Ok(None),
    }
}

/// One instance with its computer's reference, as `row_to_instance` reads it.
/// The instance columns `row_to_instance` reads, with the computer's reference (a macro,
/// so that queries can be built from it at compile time).
macro_rules! select_instances {
    () => {
        "SELECT i.id, i.title, i.software_release, i.software_type, i.parameters, \
         i.requested_state, i.shared, i.sla, c.reference AS computer, i.partition_reference, \
         i.host_instance_id, i.parent_id, i.root_id, i.reported_state, i.error, i.connection, \
         i.timestamp, i.computer_id, i.reported_timestamp FROM instances i LEFT JOIN computers c ON c.id = i.computer_id "
    };
}

const INSTANCE_BY_ID: &str = concat!(select_instances!(), "WHERE i.id = ?");

/// A computer with a free partition for a software release: computer id, partition,
/// computer reference. Parameters: `?1` the release, `?2` the `computer_guid` filter or
/// NULL, `?3` the owner. A user's instances go to the user's own computers and to the
/// admin's, which are the cloud's shared capacity.
macro_rules! capacity {
    () => {
        "SELECT s.computer_id AS computer_id, (SELECT p.reference FROM partitions p \
         INDEXED BY partitions_free WHERE p.computer_id = s.computer_id AND p.instance_id IS NULL \
         LIMIT 1) AS partition, c.reference AS reference \
         FROM software s INDEXED BY software_capacity JOIN computers c ON c.id = s.computer_id \
         WHERE s.url = ?1 AND s.requested_state = 'available' AND s.has_free = 1 \
         AND (?2 IS NULL OR c.reference = ?2) \
         AND (c.owner_id = ?3 OR c.owner_id IN (SELECT id FROM principals WHERE kind = 'admin')) \
         LIMIT 1"
    };
}

const SLA_KEYS: &[&str] = &["computer_guid", "instance_guid"];

async fn request_instance(
    conn: &mut SqliteConnection,
    clock: &mut Clock,
    owner: i64,
    requester: Requester,
    request: api::InstanceRequest,
) -> Result<(api::Instance, Changed)> {
    if request.title.trim().is_empty() {
        return Err(StoreError::Invalid("title is empty".to_owned()));
    }
    if request.software_release.trim().is_empty() {
        return Err(StoreError::Invalid("software_release is empty".to_owned()));
    }
    if let Some(key) = request.sla.keys().find(|k| !SLA_KEYS.contains(&k.as_str())) {
        return Err(StoreError::Invalid(format!(
            "unknown sla key {key:?}; known keys: {}",
            SLA_KEYS.join(", ")
        )));
    }
    let (requester_key, parent) = match requester {
        Requester::User(id) => (format!("user:{id}"), None),
        Requester::Instance(id) => {
            let Some((parent, _)) = load_instance(conn, id).await? else {
                return Err(StoreError::NotFound(format!("instance {id}")));
            };
            (format!("instance:{id}"), Some(parent))
        }
    };
    // A child of a root that is not started takes the root's state.
    let mut state = request.state;
    if let Some(parent) = &parent {
        let root_state: String = sqlx::query("SELECT requested_state FROM instances WHERE id = ?")
            .bind(parent.root)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        if let Some(root_state) = api::RequestedState::parse(&root_state)
            && root_state != api::RequestedState::Started
        {
            state = root_state;
        }
    }
    let parameters = serde_json::to_string(&request.parameters).unwrap_or_else(|_| "{}".to_owned());
    let sla = serde_json::to_string(&request.sla).unwrap_or_else(|_| "{}".to_owned());
    // The common case, a user's new instance, is one statement: placed and inserted unless
    // the title exists (the `instances_placed` trigger takes the partition). When nothing
    // is inserted, the general path below finds out why.
    if parent.is_none() && !request.shared && state != api::RequestedState::Destroyed {
        let timestamp = clock.next();
        let inserted = sqlx::query(concat!(
            "INSERT INTO instances (owner_id, requester, title, software_release, software_type, \
             parameters, requested_state, shared, sla, timestamp, computer_id, partition_reference) \
             SELECT ?3, ?4, ?5, ?1, ?6, ?7, ?8, 0, ?9, ?10, cap.computer_id, cap.partition FROM (",
            capacity!(),
            ") AS cap WHERE cap.partition IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM instances WHERE requester = ?4 AND title = ?5) \
             RETURNING id, computer_id, partition_reference, \
             (SELECT reference FROM computers WHERE id = computer_id)"
        ))
        .bind(&request.software_release)
        .bind(request.sla.get("computer_guid"))
        .bind(owner)
        .bind(&requester_key)
        .bind(&request.title)
        .bind(&request.software_type)
        .bind(&parameters)
        .bind(state.as_str())
        .bind(&sla)
        .bind(timestamp)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = inserted {
            let id: i64 = row.try_get(0)?;
            let computer: i64 = row.try_get(1)?;
            let changed = Changed {
                computers: vec![computer],
            };
            let instance = api::Instance {
                id,
                title: request.title,
                software_release: request.software_release,
                software_type: request.software_type,
                parameters: request.parameters,
                requested_state: state,
                shared: false,
                sla: request.sla,
                computer: Some(row.try_get(3)?),
                partition: Some(row.try_get(2)?),
                host_instance: None,
                parent: None,
                root: id,
                reported_state: None,
                error: None,
                connection: api::Parameters::new(),
                timestamp,
                reported_timestamp: None,
            };
            return Ok((instance, changed));
        }
    }
    // One statement finds both the instance if it exists and, in case it does not, where
    // a new one would go.
    let found = sqlx::query(concat!(
        "SELECT (SELECT id FROM instances WHERE requester = ?4 AND title = ?5), \
         cap.computer_id, cap.partition, cap.reference FROM (SELECT 1) AS one LEFT JOIN (",
        capacity!(),
        ") AS cap ON 1"
    ))
    .bind(&request.software_release)
    .bind(request.sla.get("computer_guid"))
    .bind(owner)
    .bind(&requester_key)
    .bind(&request.title)
    .fetch_one(&mut *conn)
    .await?;
    let existing: Option<i64> = found.try_get(0)?;
    let candidate: Option<(i64, String, String)> =
        match (found.try_get(1)?, found.try_get(2)?, found.try_get(3)?) {
            (Some(computer), Some(partition), Some(reference)) => {
                Some((computer, partition, reference))
            }
            _ => None,
        };
    let mut changed = Changed::default();
    let id = match existing {
        Some(id) => {
            let Some((current, computer)) = load_instance(conn, id).await? else {
                return Err(StoreError::NotFound(format!("instance {id}")));
            };
            if current.shared != request.shared {
                return Err(StoreError::Conflict(format!(
                    "instance {:?} is {}shared; request it again the same way",
                    request.title,
                    if current.shared { "" } else { "not " }
                )));
            }
            let differs = current.software_release != request.software_release
                || current.software_type != request.software_type
                || current.parameters != request.parameters
                || current.requested_state != state
                || current.sla != request.sla;
            if differs {
                sqlx::query(
                    "UPDATE instances SET software_release = ?, software_type = ?, parameters = ?, \
                     requested_state = ?, sla = ?, timestamp = ? WHERE id = ?",
                )
                .bind(&request.software_release)
                .bind(&request.software_type)
                .bind(&parameters)
                .bind(state.as_str())
                .bind(&sla)
                .bind(clock.next())
                .bind(id)
                .execute(&mut *conn)
                .await?;
                if let Some(computer) = computer {
                    bump(conn, computer).await?;
                    changed.computers.push(computer);
                }
                if let Some(host) = current.host_instance {
                    touch(conn, clock, host, &mut changed).await?;
                }
                if state != api::RequestedState::Started && current.requested_state != state {
                    propagate(conn, clock, id, state, &mut changed).await?;
                }
            }
            id
        }
        None => {
            if state == api::RequestedState::Destroyed {
                return Err(StoreError::NotFound(format!(
                    "no instance {:?} to destroy",
                    request.title
                )));
            }
            // A root's root_id stays NULL: it is its own root.
            let root = parent.as_ref().map(|p| p.root);
            // Place first, so that the instance is inserted where it runs.
            let placement = if request.shared {
                None
            } else {
                Some(
                    candidate
                        .ok_or_else(|| no_capacity(&request.software_release, &request.sla))?,
                )
            };
            let timestamp = clock.next();
            let result = sqlx::query(
                "INSERT INTO instances (owner_id, requester, title, parent_id, root_id, software_release, \
                 software_type, parameters, requested_state, shared, sla, timestamp, computer_id, \
                 partition_reference) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(owner)
            .bind(&requester_key)
            .bind(&request.title)
            .bind(parent.as_ref().map(|p| p.id))
            .bind(root)
            .bind(&request.software_release)
            .bind(&request.software_type)
            .bind(&parameters)
            .bind(state.as_str())
            .bind(i64::from(request.shared))
            .bind(&sla)
            .bind(timestamp)
            .bind(placement.as_ref().map(|p| p.0))
            .bind(placement.as_ref().map(|p| p.1.as_str()))
            .execute(&mut *conn)
            .await?;
            let id = result.last_insert_rowid();
            if let Some((computer, partition, reference)) = placement {
                // The `instances_placed` trigger took the partition; the revision follows.
                changed.computers.push(computer);
                let instance = api::Instance {
                    id,
                    title: request.title,
                    software_release: request.software_release,
                    software_type: request.software_type,
                    parameters: request.parameters,
                    requested_state: state,
                    shared: false,
                    sla: request.sla,
                    computer: Some(reference),
                    partition: Some(partition),
                    host_instance: None,
                    parent: parent.as_ref().map(|p| p.id),
                    root: root.unwrap_or(id),
                    reported_state: None,
                    error: None,
                    connection: api::Parameters::new(),
                    timestamp,
                    reported_timestamp: None,
                };
                return Ok((instance, changed));
            }
            id
        }
    };
    let Some((current, computer)) = load_instance(conn, id).await? else {
        return Err(StoreError::NotFound(format!("instance {id}")));
    };
    if state != api::RequestedState::Destroyed && computer.is_none() {
        if current.shared {
            attach_to_host(conn, clock, owner, &current, &mut changed).await?;
        } else {
            allocate(conn, owner, &current, &mut changed).await?;
        }
    }
    let Some((instance, _)) = load_instance(conn, id).await? else {
        return Err(StoreError::NotFound(format!("instance {id}")));
    };
    changed.computers.sort_unstable();
    changed.computers.dedup();
    Ok((instance, changed))
}

/// A free partition on a computer that has the software release supplied and matches the
/// filters: computer id, partition reference, computer reference.
async fn find_partition(
    conn: &mut SqliteConnection,
    owner: i64,
    software_release: &str,
    sla: &BTreeMap<String, String>,
) -> Result<(i64, String, String)> {
    let row = sqlx::query(capacity!())
        .bind(software_release)
        .bind(sla.get("computer_guid"))
        .bind(owner)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Err(no_capacity(software_release, sla));
    };
    Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
}

fn no_capacity(software_release: &str, sla: &BTreeMap<String, String>) -> StoreError {
    let where_ = sla
        .get("computer_guid")
        .map(|c| format!(" on computer {c:?}"))
        .unwrap_or_default();
    StoreError::NoCapacity(format!(
        "no free partition{where_} with {software_release} supplied"
    ))
}

/// Gives the partition to the instance.
async fn take_partition(
    conn: &mut SqliteConnection,
    instance: i64,
    computer: i64,
    partition: &str,
    changed: &mut Changed,
) -> Result<()> {
    sqlx::query("UPDATE partitions SET instance_id = ? WHERE computer_id = ? AND reference = ?")
        .bind(instance)
        .bind(computer)
        .bind(partition)
        .execute(&mut *conn)
        .await?;
    // The revision is bumped by the `partitions_revision` trigger.
    changed.computers.push(computer);
    Ok(())
}

/// Allocates a partition to an existing instance that has none.
async fn allocate(
    conn: &mut SqliteConnection,
    owner: i64,
    instance: &api::Instance,
    changed: &mut Changed,
) -> Result<()> {
    let (computer, partition, _) =
        find_partition(conn, owner, &instance.software_release, &instance.sla).await?;
    sqlx::query("UPDATE instances SET computer_id = ?, partition_reference = ? WHERE id = ?")
        .bind(computer)
        .bind(&partition)
        .bind(instance.id)
        .execute(&mut *conn)
        .await?;
    take_partition(conn, instance.id, computer, &partition, changed).await
}

/// A shared instance gets no partition: it is attached to a started instance of the same
/// software release and type, which serves it.
async fn attach_to_host(
    conn: &mut SqliteConnection,
    clock: &mut Clock,
    owner: i64,
    instance: &api::Instance,
    changed: &mut Changed,
) -> Result<()> {
    let computer_filter = instance.sla.get("computer_guid").cloned();
    let host_filter = match instance.sla.get("instance_guid") {
        Some(text) => Some(text.parse::<i64>().map_err(|_| {
            StoreError::Invalid(format!("sla instance_guid {text:?} is not an instance id"))
        })?),
        None => None,
    };
    let row = sqlx::query(
        "SELECT i.id, i.computer_id, i.partition_reference FROM instances i \
         JOIN computers c ON c.id = i.computer_id \
         WHERE i.software_release = ? AND i.software_type = ? AND i.shared = 0 \
         AND i.requested_state = 'started' AND i.id != ? \
         AND (? IS NULL OR c.reference = ?) AND (? IS NULL OR i.id = ?) \
         AND (i.owner_id = ? OR i.owner_id IN (SELECT id FROM principals WHERE kind = 'admin')) \
         ORDER BY i.id LIMIT 1",
    )
    .bind(&instance.software_release)
    .bind(&instance.software_type)
    .bind(instance.id)
    .bind(&computer_filter)
    .bind(&computer_filter)
    .bind(host_filter)
    .bind(host_filter)
    .bind(owner)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Err(StoreError::NoCapacity(format!(
            "no started instance of {} (type {}) to host a shared instance",
            instance.software_release, instance.software_type
        )));
    };
    let host: i64 = row.try_get(0)?;
    let computer: i64 = row.try_get(1)?;
    let partition: String = row.try_get(2)?;
    sqlx::query("UPDATE instances SET host_instance_id = ?, computer_id = ?, partition_reference = ? WHERE id = ?")
        .bind(host)
        .bind(computer)
        .bind(&partition)
        .bind(instance.id)
        .execute(&mut *conn)
        .await?;
    touch(conn, clock, host, changed).await
}

/// Marks an instance as changed: a new timestamp and a new revision of its computer.
async fn touch(
    conn: &mut SqliteConnection,
    clock: &mut Clock,
    id: i64,
    changed: &mut Changed,
) -> Result<()> {
    sqlx::query("UPDATE instances SET timestamp = ? WHERE id = ?")
        .bind(clock.next())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let computer: Option<i64> = sqlx::query("SELECT computer_id FROM instances WHERE id = ?")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    if let Some(computer) = computer {
        bump(conn, computer).await?;
        changed.computers.push(computer);
    }
    Ok(())
}

/// Stopping or destroying an instance stops or destroys everything it requested, down the
/// tree (a stopped instance does not bring back destroyed children).
async fn propagate(
    conn: &mut SqliteConnection,
    clock: &mut Clock,
    id: i64,
    state: api::RequestedState,
    changed: &mut Changed,
) -> Result<()> {
    let mut pending = vec![id];
    while let Some(parent) = pending.pop() {
        let rows = sqlx::query("SELECT id, requested_state FROM instances WHERE parent_id = ?")
            .bind(parent)
            .fetch_all(&mut *conn)
            .await?;
        for row in rows {
            let child: i64 = row.try_get(0)?;
            let current: String = row.try_get(1)?;
            pending.push(child);
            if current == state.as_str() || current == "destroyed" {
                continue;
            }
            sqlx::query("UPDATE instances SET requested_state = ? WHERE id = ?")
                .bind(state.as_str())
                .bind(child)
                .execute(&mut *conn)
                .await?;
            touch(conn, clock, child, changed).await?;
        }
    }
    Ok(())
}

async fn report_instance(
    conn: &mut SqliteConnection,
    id: i64,
    report: api::StateReport,
) -> Result<Changed> {
    let Some((instance, computer)) = load_instance(conn, id).await? else {
        return Err(StoreError::NotFound(format!("instance {id}")));
    };
    sqlx::query(
        "UPDATE instances SET reported_state = ?, error = ?, reported_timestamp = ? WHERE id = ?",
    )
    .bind(report.state.as_str())
    .bind(&report.error)
    .bind(report.timestamp)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    let mut changed = Changed::default();
    // A destroyed partition is free only once its node says it is destroyed.
    if report.state == api::ReportedState::Destroyed
        && instance.requested_state == api::RequestedState::Destroyed
        && !instance.shared
    {
        sqlx::query("UPDATE partitions SET instance_id = NULL WHERE instance_id = ?")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "UPDATE instances SET computer_id = NULL, partition_reference = NULL, host_instance_id = NULL \
             WHERE id = ? OR host_instance_id = ?",
        )
        .bind(id)
        .bind(id)
        .execute(&mut *conn)
        .await?;
        // Freeing the partition bumped the revision (trigger `partitions_revision`).
        if let Some(computer) = computer {
            changed.computers.push(computer);
        }
    }
    Ok(changed)
}

async fn publish(
    conn: &mut SqliteConnection,
    clock: &mut Clock,
    id: i64,
    parameters: api::Parameters,
) -> Result<Changed> {
    let Some((instance, _)) = load_instance(conn, id).await? else {
        return Err(StoreError::NotFound(format!("instance {id}")));
    };
    let mut changed = Changed::default();
    if instance.connection == parameters {
        return Ok(changed);
    }
    let text = serde_json::to_string(&parameters).unwrap_or_else(|_| "{}".to_owned());
    sqlx::query("UPDATE instances SET connection = ? WHERE id = ?")
        .bind(text)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    // The requester reads these: a parent instance runs again with them.
    if let Some(parent) = instance.parent {
        touch(conn, clock, parent, &mut changed).await?;
    }
    Ok(changed)
}

async fn set_children(
    conn: &mut SqliteConnection,
    clock: &mut Clock,
    parent: i64,
    titles: Vec<String>,
) -> Result<Changed> {
    let rows = sqlx::query(
        "SELECT id, title FROM instances WHERE parent_id = ? AND requested_state != 'destroyed'",
    )
    .bind(parent)
    .fetch_all(&mut *conn)
    .await?;
    let mut changed = Changed::default();
    for row in rows {
        let id: i64 = row.try_get(0)?;
        let title: String = row.try_get(1)?;
        if titles.contains(&title) {
            continue;
        }
        sqlx::query("UPDATE instances SET requested_state = 'destroyed' WHERE id = ?")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        touch(conn, clock, id, &mut changed).await?;
        propagate(
            conn,
            clock,
            id,
            api::RequestedState::Destroyed,
            &mut changed,
        )
        .await?;
    }
    Ok(changed)
}

fn computer_row(row: &SqliteRow) -> Result<ComputerRow> {
    Ok(ComputerRow {
        id: row.try_get("id")?,
        reference: row.try_get("reference")?,
        owner_id: row.try_get("owner_id")?,
        token_hash: row.try_get("token_hash")?,
        revision: row.try_get("revision")?,
    })
}

impl SqliteStore {
    async fn software_list(&self, computer: i64) -> Result<Vec<api::SoftwareInstallation>> {
        let rows = sqlx::query(
            "SELECT url, requested_state, reported_state, error FROM software WHERE computer_id = ? ORDER BY url",
        )
        .bind(computer)
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|row| {
                let requested: String = row.try_get(1)?;
                let reported: Option<String> = row.try_get(2)?;
                Ok(api::SoftwareInstallation {
                    software_release: row.try_get(0)?,
                    requested_state: api::SupplyState::parse(&requested)
                        .unwrap_or(api::SupplyState::Destroyed),
                    reported_state: reported.as_deref().and_then(api::SoftwareState::parse),
                    error: row.try_get(3)?,
                })
            })
            .collect()
    }

    async fn partition_list(&self, computer: i64) -> Result<Vec<api::PartitionInfo>> {
        let rows = sqlx::query(
            "SELECT reference, addresses, instance_id FROM partitions WHERE computer_id = ? \
             ORDER BY length(reference), reference",
        )
        .bind(computer)
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|row| {
                let addresses: String = row.try_get(1)?;
                Ok(api::PartitionInfo {
                    reference: row.try_get(0)?,
                    addresses: serde_json::from_str(&addresses).unwrap_or_default(),
                    instance: row.try_get(2)?,
                })
            })
            .collect()
    }
}

impl Store for SqliteStore {
    async fn ensure_admin(&self, token_hash: Vec<u8>) -> Result<Option<i64>> {
        match self.write(Op::EnsureAdmin(token_hash)).await? {
            Outcome::Id(id) => Ok(Some(id)),
            _ => Ok(None),
        }
    }

    async fn create_user(&self, name: String, token_hash: Vec<u8>) -> Result<i64> {
        match self.write(Op::CreateUser(name, token_hash)).await? {
            Outcome::Id(id) => Ok(id),
            _ => Err(StoreError::Closed),
        }
    }

    async fn principal(&self, id: i64) -> Result<Option<PrincipalRow>> {
        let row = sqlx::query("SELECT id, kind, name, token_hash FROM principals WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.readers)
            .await?;
        row.map(|row| {
            let kind: String = row.try_get(1)?;
            Ok(PrincipalRow {
                id: row.try_get(0)?,
                admin: kind == "admin",
                name: row.try_get(2)?,
                token_hash: row.try_get(3)?,
            })
        })
        .transpose()
    }

    async fn create_computer(
        &self,
        reference: String,
        owner_id: i64,
        token_hash: Vec<u8>,
        labels: BTreeMap<String, String>,
    ) -> Result<i64> {
        match self
            .write(Op::CreateComputer(reference, owner_id, token_hash, labels))
            .await?
        {
            Outcome::Id(id) => Ok(id),
            _ => Err(StoreError::Closed),
        }
    }

    async fn set_labels(&self, computer_id: i64, labels: BTreeMap<String, String>) -> Result<()> {
        self.write(Op::SetLabels(computer_id, labels))
            .await
            .map(|_| ())
    }

    async fn computer(&self, id: i64) -> Result<Option<ComputerRow>> {
        let row = sqlx::query(
            "SELECT id, reference, owner_id, token_hash, revision FROM computers WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.readers)
        .await?;
        row.as_ref().map(computer_row).transpose()
    }

    async fn computer_by_reference(&self, reference: String) -> Result<Option<ComputerRow>> {
        let row = sqlx::query("SELECT id, reference, owner_id, token_hash, revision FROM computers WHERE reference = ?")
            .bind(reference)
            .fetch_optional(&self.readers)
            .await?;
        row.as_ref().map(computer_row).transpose()
    }

    async fn computers(&self, owner: Option<i64>) -> Result<Vec<api::Computer>> {
        let rows = sqlx::query(
            "SELECT c.id, c.reference, c.revision, p.name, c.labels FROM computers c JOIN principals p ON p.id = c.owner_id \
             WHERE (? IS NULL OR c.owner_id = ?) ORDER BY c.reference",
        )
        .bind(owner)
        .bind(owner)
        .fetch_all(&self.readers)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get(0)?;
            let labels: String = row.try_get(4)?;
            out.push(api::Computer {
                reference: row.try_get(1)?,
                revision: row.try_get(2)?,
                owner: row.try_get(3)?,
                labels: serde_json::from_str(&labels).unwrap_or_default(),
                partitions: self.partition_list(id).await?,
                software: self.software_list(id).await?,
            });
        }
        Ok(out)
    }

    async fn declare_partitions(
        &self,
        computer_id: i64,
        partitions: Vec<api::PartitionDeclaration>,
    ) -> Result<Changed> {
        self.write_changed(Op::DeclarePartitions(computer_id, partitions))
            .await
    }

    async fn supply(&self, computer_id: i64, supply: api::Supply) -> Result<Changed> {
        self.write_changed(Op::Supply(computer_id, supply)).await
    }

    async fn report_software(&self, computer_id: i64, report: api::SoftwareReport) -> Result<()> {
        self.write(Op::ReportSoftware(computer_id, report))
            .await
            .map(|_| ())
    }

    async fn request(
        &self,
        owner_id: i64,
        requester: Requester,
        request: api::InstanceRequest,
    ) -> Result<(api::Instance, Changed)> {
        match self
            .write(Op::Request(owner_id, requester, request))
            .await?
        {
            Outcome::Instance(instance, changed) => Ok((*instance, changed)),
            _ => Err(StoreError::Closed),
        }
    }

    async fn instance(&self, id: i64) -> Result<Option<api::Instance>> {
        let row = sqlx::query(INSTANCE_BY_ID)
            .bind(id)
            .fetch_optional(&self.readers)
            .await?;
        row.as_ref().map(row_to_instance).transpose()
    }

    async fn instance_owner(&self, id: i64) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT owner_id FROM instances WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.readers)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    async fn instances(&self, owner: Option<i64>) -> Result<Vec<api::Instance>> {
        let rows = sqlx::query(concat!(
            select_instances!(),
            "WHERE (? IS NULL OR i.owner_id = ?) ORDER BY i.id"
        ))
        .bind(owner)
        .bind(owner)
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(row_to_instance).collect()
    }

    async fn report_instance(&self, instance_id: i64, report: api::StateReport) -> Result<Changed> {
        self.write_changed(Op::ReportInstance(instance_id, report))
            .await
    }

    async fn publish(&self, instance_id: i64, parameters: api::Parameters) -> Result<Changed> {
        self.write_changed(Op::Publish(instance_id, parameters))
            .await
    }

    async fn set_children(&self, parent_id: i64, titles: Vec<String>) -> Result<Changed> {
        self.write_changed(Op::SetChildren(parent_id, titles)).await
    }

    async fn record_usage(&self, computer_id: i64, report: api::UsageReport) -> Result<()> {
        self.write(Op::Usage(computer_id, report)).await.map(|_| ())
    }

    async fn usage(&self, instance_id: i64, limit: u32) -> Result<Vec<api::UsageSample>> {
        let rows = sqlx::query(
            "SELECT c.reference, u.partition_reference, u.cpu_seconds, u.memory_bytes, u.at, \
             u.restarts FROM usage u \
             JOIN computers c ON c.id = u.computer_id WHERE u.instance_id = ? ORDER BY u.id DESC LIMIT ?",
        )
        .bind(instance_id)
        .bind(limit)
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(api::UsageSample {
                    computer: row.try_get(0)?,
                    partition: row.try_get(1)?,
                    cpu_seconds: row.try_get(2)?,
                    memory_bytes: u64::try_from(row.try_get::<i64, _>(3)?).unwrap_or(0),
                    at: row.try_get(4)?,
                    restarts: u32::try_from(row.try_get::<i64, _>(5)?).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn desired_state(&self, computer_id: i64) -> Result<api::DesiredState> {
        let Some(computer) = self.computer(computer_id).await? else {
            return Err(StoreError::NotFound(format!("computer {computer_id}")));
        };
        let software = self.software_list(computer_id).await?;
        let rows = sqlx::query(
            "SELECT p.reference AS p_reference, p.addresses, i.id, i.title, i.software_release, i.software_type, \
             i.parameters, i.requested_state, i.connection, i.timestamp, r.title AS root_title \
             FROM partitions p LEFT JOIN instances i ON i.id = p.instance_id \
             LEFT JOIN instances r ON r.id = COALESCE(i.root_id, i.id) \
             WHERE p.computer_id = ? ORDER BY length(p.reference), p.reference",
        )
        .bind(computer_id)
        .fetch_all(&self.readers)
        .await?;
        let shared_rows = sqlx::query(
            "SELECT id, title, software_type, parameters, requested_state, timestamp, host_instance_id \
             FROM instances WHERE computer_id = ? AND shared = 1 AND host_instance_id IS NOT NULL ORDER BY id",
        )
        .bind(computer_id)
        .fetch_all(&self.readers)
        .await?;
        let mut shared: BTreeMap<i64, Vec<api::SharedInstance>> = BTreeMap::new();
        for row in &shared_rows {
            let state: String = row.try_get(4)?;
            shared
                .entry(row.try_get(6)?)
                .or_default()
                .push(api::SharedInstance {
                    id: row.try_get(0)?,
                    title: row.try_get(1)?,
                    software_type: row.try_get(2)?,
                    parameters: json_object(&row.try_get::<String, _>(3)?),
                    requested_state: api::RequestedState::parse(&state)
                        .unwrap_or(api::RequestedState::Destroyed),
                    timestamp: row.try_get(5)?,
                });
        }
        let mut partitions = Vec::with_capacity(rows.len());
        for row in &rows {
            let addresses: String = row.try_get("addresses")?;
            let id: Option<i64> = row.try_get("id")?;
            let instance = match id {
                Some(id) => {
                    let state: String = row.try_get("requested_state")?;
                    Some(api::PartitionInstance {
                        id,
                        title: row.try_get("title")?,
                        root_title: row.try_get("root_title")?,
                        software_release: row.try_get("software_release")?,
                        software_type: row.try_get("software_type")?,
                        requested_state: api::RequestedState::parse(&state)
                            .unwrap_or(api::RequestedState::Destroyed),
                        parameters: json_object(&row.try_get::<String, _>("parameters")?),
                        connection: json_object(&row.try_get::<String, _>("connection")?),
                        shared_instances: shared.remove(&id).unwrap_or_default(),
                        timestamp: row.try_get("timestamp")?,
                        token: String::new(),
                    })
                }
                None => None,
            };
            partitions.push(api::PartitionState {
                reference: row.try_get("p_reference")?,
                addresses: serde_json::from_str(&addresses).unwrap_or_default(),
                instance,
            });
        }
        Ok(api::DesiredState {
            computer: computer.reference,
            revision: computer.revision,
            software,
            partitions,
        })
    }
}
