//! The transaction interface the rules are written against: one small, typed statement a
//! method, the same SQL on every backend. Nothing here decides anything; `rules/` does.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use grove_api as api;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::backend::Backend;
use crate::reads::{INSTANCE_BY_ID, row_to_instance};
use crate::{Result, StoreError};

mod extended;
pub(crate) mod ledger;
pub(crate) mod projects;
pub(crate) mod sizes;

/// Instance timestamps: microseconds since the epoch, strictly increasing across the
/// masters that share a store (the last one given is kept in the store's `clock` row).
#[derive(Debug, Default)]
pub(crate) struct Clock {
    last: i64,
}

impl Clock {
    pub(crate) fn next(&mut self) -> i64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        self.last = now.max(self.last + 1);
        self.last
    }
}

pub(crate) fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T, empty: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| empty.to_owned())
}

/// An instance as the rules see it: its API form and the computer it is on.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub(crate) instance: api::Instance,
    pub(crate) computer_id: Option<i64>,
    pub(crate) project_id: Option<i64>,
}

/// A new instance row.
#[derive(Debug)]
pub(crate) struct NewInstance<'a> {
    pub(crate) owner: i64,
    pub(crate) requester: &'a str,
    pub(crate) parent: Option<i64>,
    pub(crate) root: Option<i64>,
    /// The project it belongs to (a child: its parent's).
    pub(crate) project: Option<i64>,
    pub(crate) request: &'a api::InstanceRequest,
    pub(crate) state: api::RequestedState,
    pub(crate) timestamp: i64,
    /// The size it is given (the SLA's `size`, resolved).
    pub(crate) size: Option<&'a api::Size>,
}

/// What the placement query narrows candidates to before the scheduler sees them.
#[derive(Debug)]
pub(crate) struct Narrow<'a> {
    pub(crate) owner: i64,
    pub(crate) software_release: &'a str,
    pub(crate) computer_guid: Option<&'a str>,
    /// Only computers with the release supplied and a free partition.
    pub(crate) fit_only: bool,
    /// Order by used partitions, fewest first (`Some(false)`) or most first.
    pub(crate) most_used_first: Option<bool>,
    /// Count the owner's instances on each computer.
    pub(crate) count_owner: bool,
    pub(crate) limit: Option<i64>,
    /// The instance's project: computers dedicated to it are candidates too.
    pub(crate) project: Option<i64>,
    /// With `fit_only`, only computers with room for this size.
    pub(crate) needs: Option<api::Resources>,
}

/// One open write transaction.
#[derive(Debug)]
pub(crate) struct Tx<'c> {
    pub(crate) conn: &'c mut AnyConnection,
    pub(crate) clock: &'c mut Clock,
    pub(crate) backend: Backend,
}

/// The fast path of the `simple` and `pack` policies: a user's new instance is placed and
/// inserted in one statement, on the computer the policy's order puts first, unless the
/// title exists. The order is the one [`Tx::candidates`] gives the scheduler.
macro_rules! insert_first_fit {
    ($order:literal, $on:literal) => {
        concat!(
            "INSERT INTO instances (owner_id, requester, title, software_release, software_type, \
             parameters, requested_state, shared, sla, timestamp, computer_id, partition_reference) \
             SELECT $1, $2, $3, $4, $5, $6, $7, 0, $8, $9, cap.id, cap.partition FROM (\
             SELECT c.id, (SELECT f.reference FROM partitions f WHERE f.computer_id = c.id \
             AND f.instance_id IS NULL ORDER BY length(f.reference), f.reference LIMIT 1) AS partition \
             FROM computers c JOIN principals p ON p.id = c.owner_id \
             WHERE (c.owner_id = $1 OR p.kind = 'admin') AND c.project_id IS NULL ",
            $on,
            " AND c.free_partitions > 0 AND EXISTS (SELECT 1 FROM software s WHERE \
             s.computer_id = c.id AND s.url = $4 AND s.requested_state = 'available') \
             ORDER BY ",
            $order,
            " LIMIT 1) AS cap WHERE cap.partition IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM instances WHERE requester = $2 AND title = $3) \
             RETURNING id, computer_id, partition_reference, \
             (SELECT reference FROM computers WHERE id = computer_id)"
        )
    };
}

/// What taking a partition does to its computer: a new revision, one partition fewer free
/// and one more used (every statement that takes a partition sets this).
macro_rules! taken {
    () => {
        "revision = revision + 1, free_partitions = free_partitions - 1, \
         used_partitions = used_partitions + 1"
    };
}

/// The fast path's statement for a backend, with the SLA's computer (`$10`) or without.
fn first_fit_sql(backend: Backend, on_computer: bool, most_used_first: bool) -> &'static str {
    // PostgreSQL: data-modifying `WITH` clauses, one statement.
    macro_rules! occupying {
        ($insert:expr) => {
            concat!(
                "WITH ins AS (",
                $insert,
                "), taken AS (UPDATE partitions SET instance_id = ins.id FROM ins \
                 WHERE partitions.computer_id = ins.computer_id \
                 AND partitions.reference = ins.partition_reference), \
                 counted AS (UPDATE computers SET ",
                taken!(),
                " FROM ins WHERE computers.id = ins.computer_id) SELECT * FROM ins"
            )
        };
    }
    // SQLite runs the statements of one query in turn: the partition is taken and the
    // computer counted only when the one before changed a row (`changes()`), for the
    // instance just inserted (`last_insert_rowid()`).
    macro_rules! then_occupying {
        ($insert:expr) => {
            concat!(
                $insert,
                "; UPDATE partitions SET instance_id = last_insert_rowid() \
                 WHERE changes() = 1 AND (computer_id, reference) = \
                 (SELECT computer_id, partition_reference FROM instances \
                 WHERE id = last_insert_rowid()); \
                 UPDATE computers SET ",
                taken!(),
                " WHERE changes() = 1 AND id = \
                 (SELECT computer_id FROM instances WHERE id = last_insert_rowid())"
            )
        };
    }
    // One text with the computer and one without, rather than `$10 IS NULL OR ...`:
    // PostgreSQL then keeps one generic plan for each instead of planning every
    // placement anew (half its time), and neither plan scans for a reference.
    macro_rules! by_order {
        ($occupying:ident, $on:literal) => {
            if most_used_first {
                $occupying!(insert_first_fit!(
                    "c.used_partitions DESC, c.reference",
                    $on
                ))
            } else {
                $occupying!(insert_first_fit!("c.used_partitions, c.reference", $on))
            }
        };
    }
    match (backend, on_computer) {
        (Backend::Sqlite, true) => by_order!(then_occupying, "AND c.reference = $10"),
        (Backend::Sqlite, false) => by_order!(then_occupying, ""),
        (Backend::Postgres, true) => by_order!(occupying, "AND c.reference = $10"),
        (Backend::Postgres, false) => by_order!(occupying, ""),
    }
}

/// The name of the writer's session function that runs the fast path for a batch.
macro_rules! first_fits {
    () => {
        "pg_temp.grove_first_fits"
    };
}
const FIRST_FITS: &str = first_fits!();
const FIRST_FITS_CALL: &str = concat!("SELECT * FROM ", first_fits!(), "($1)");

/// The session function that places a batch on PostgreSQL: the fast path's own statements
/// (the same text, parameters read from the batch's JSON rows), one request after the
/// other, so that each sees the partitions the ones before took. A temporary function
/// belongs to its session alone: nothing in the schema, no version shared between masters.
fn first_fits_function() -> String {
    // The statements' parameters, highest first so that `$1` does not match `$10`.
    const FIELDS: [(&str, &str); 15] = [
        ("$15", "v_disk"),
        ("$14", "v_memory"),
        ("$13", "v_millicores"),
        ("$12", "r.size"),
        ("$11", "r.project"),
        ("$10", "r.computer"),
        ("$9", "r.ts"),
        ("$8", "r.sla"),
        ("$7", "r.state"),
        ("$6", "r.parameters"),
        ("$5", "r.type"),
        ("$4", "r.release"),
        ("$3", "r.title"),
        ("$2", "r.requester"),
        ("$1", "r.owner"),
    ];
    let fields = |mut sql: String| {
        for (parameter, field) in FIELDS {
            sql = sql.replace(parameter, field);
        }
        sql
    };
    let statement = |on_computer, most_used_first| {
        let sql = fields(first_fit_sql(Backend::Postgres, on_computer, most_used_first).to_owned());
        format!("{sql} INTO o_id, o_computer, o_partition, o_reference;")
    };
    // One branch for each variant of the extended fast path.
    let extended: String = extended::Variant::ALL
        .iter()
        .map(|variant| {
            let sql = fields(extended::text(Backend::Postgres, *variant).to_owned());
            format!(
                "ELSIF r.extended AND (r.project IS NOT NULL) = {} AND (r.size IS NOT NULL) = {} \
                 AND (r.computer IS NOT NULL) = {} AND r.most_used = {} THEN {sql} \
                 INTO o_id, o_computer, o_partition, o_reference; ",
                variant.project, variant.sized, variant.on_computer, variant.most_used_first
            )
        })
        .collect();
    format!(
        "CREATE OR REPLACE FUNCTION {FIRST_FITS}(batch text) \
         RETURNS TABLE (o_ord bigint, o_id bigint, o_computer bigint, o_partition text, \
         o_reference text) LANGUAGE plpgsql \
         SET plan_cache_mode = force_generic_plan AS $grove$ \
         #variable_conflict use_column\n\
         DECLARE r record; v_millicores bigint; v_memory bigint; \
         v_disk bigint; \
         BEGIN \
         FOR r IN SELECT * FROM json_to_recordset(batch::json) AS x(ord bigint, owner bigint, \
         requester text, title text, release text, type text, parameters text, state text, \
         sla text, ts bigint, computer text, most_used boolean, extended boolean, \
         project bigint, size text) \
         ORDER BY x.ord LOOP \
         v_millicores := 0; v_memory := 0; v_disk := 0; \
         IF r.size IS NOT NULL THEN \
         SELECT s.millicores, s.memory, s.disk INTO v_millicores, v_memory, v_disk \
         FROM sizes s WHERE s.name = r.size; \
         CONTINUE WHEN NOT FOUND; \
         END IF; \
         IF FALSE THEN NULL; {extended}\
         ELSIF r.computer IS NULL AND NOT r.most_used THEN {} \
         ELSIF r.computer IS NULL THEN {} \
         ELSIF NOT r.most_used THEN {} \
         ELSE {} END IF; \
         IF FOUND THEN o_ord := r.ord; RETURN NEXT; END IF; \
         END LOOP; \
         END $grove$",
        statement(false, false),
        statement(false, true),
        statement(true, false),
        statement(true, true),
    )
}

/// Readies a connection that will be the writer's: on PostgreSQL, its session function.
pub(crate) async fn prepare_writer(conn: &mut AnyConnection, backend: Backend) -> Result<()> {
    if backend == Backend::Postgres {
        sqlx::raw_sql(sqlx::AssertSqlSafe(first_fits_function()))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Who holds a certificate the store names by its serial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holder {
    /// A user or the admin.
    Principal,
    /// A computer's node.
    Computer,
    /// An instance's partition.
    Instance,
}

/// One request of a batch for the fast path.
#[derive(Debug)]
pub(crate) struct FirstFitAsk<'a> {
    pub(crate) new: NewInstance<'a>,
    /// The SLA's `size`: on SQLite also resolved in `new.size`; on PostgreSQL the
    /// session function reads it (an unknown size is not placed).
    pub(crate) size_name: Option<&'a str>,
    pub(crate) computer_guid: Option<&'a str>,
    pub(crate) most_used_first: bool,
}

/// A join token as the rules see it.
#[derive(Debug)]
pub(crate) struct JoinToken {
    pub(crate) id: i64,
    pub(crate) owner: i64,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) expires_at: i64,
    pub(crate) used: bool,
}

/// Where the fast path put an instance.
#[derive(Debug)]
pub(crate) struct FirstFit {
    pub(crate) id: i64,
    pub(crate) computer: i64,
    pub(crate) partition: String,
    pub(crate) reference: String,
    /// The project's name, for an instance in one.
    pub(crate) project: Option<String>,
}

impl FirstFit {
    /// Read from a fast path's answer: id, computer, partition and computer reference,
    /// from column `first` on.
    pub(crate) fn from_row(row: &sqlx::any::AnyRow, first: usize) -> Result<FirstFit> {
        Ok(FirstFit {
            id: row.try_get(first)?,
            computer: row.try_get(first + 1)?,
            partition: row.try_get(first + 2)?,
            reference: row.try_get(first + 3)?,
            project: None,
        })
    }
}

impl Tx<'_> {
    pub(crate) fn timestamp(&mut self) -> i64 {
        self.clock.next()
    }

    // Principals.

    pub(crate) async fn admin_exists(&mut self) -> Result<bool> {
        Ok(
            sqlx::query("SELECT id FROM principals WHERE kind = 'admin'")
                .fetch_optional(&mut *self.conn)
                .await?
                .is_some(),
        )
    }

    pub(crate) async fn insert_principal(
        &mut self,
        kind: &str,
        name: &str,
        token_hash: Vec<u8>,
    ) -> Result<i64> {
        let result = sqlx::query(
            "INSERT INTO principals (kind, name, token_hash, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING id",
        )
        .bind(kind)
        .bind(name)
        .bind(token_hash)
        .bind(now_seconds())
        .fetch_one(&mut *self.conn)
        .await;
        match result {
            Ok(row) => Ok(row.try_get(0)?),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "a user named {name:?} exists"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn setting(&mut self, name: &str) -> Result<Option<String>> {
        Ok(sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *self.conn)
            .await?
            .map(|row| row.try_get(0))
            .transpose()?)
    }

    /// Sets a setting, replacing what it was.
    pub(crate) async fn set_setting(&mut self, name: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    // Join tokens.

    pub(crate) async fn insert_join_token(
        &mut self,
        owner: i64,
        hash: &[u8],
        labels: &BTreeMap<String, String>,
        expires_at: i64,
    ) -> Result<i64> {
        Ok(sqlx::query(
            "INSERT INTO join_tokens (token_hash, owner_id, labels, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(hash)
        .bind(owner)
        .bind(to_json(labels, "{}"))
        .bind(now_seconds())
        .bind(expires_at)
        .fetch_one(&mut *self.conn)
        .await?
        .try_get(0)?)
    }

    pub(crate) async fn join_token(&mut self, hash: &[u8]) -> Result<Option<JoinToken>> {
        let Some(row) = sqlx::query(
            "SELECT id, owner_id, labels, expires_at, used_at \
             FROM join_tokens WHERE token_hash = $1",
        )
        .bind(hash)
        .fetch_optional(&mut *self.conn)
        .await?
        else {
            return Ok(None);
        };
        let labels: String = row.try_get("labels")?;
        Ok(Some(JoinToken {
            id: row.try_get("id")?,
            owner: row.try_get("owner_id")?,
            labels: serde_json::from_str(&labels).unwrap_or_default(),
            expires_at: row.try_get("expires_at")?,
            used: row.try_get::<Option<i64>, _>("used_at")?.is_some(),
        }))
    }

    pub(crate) async fn spend_join_token(
        &mut self,
        id: i64,
        now: i64,
        computer: i64,
    ) -> Result<()> {
        sqlx::query("UPDATE join_tokens SET used_at = $2, computer_id = $3 WHERE id = $1")
            .bind(id)
            .bind(now)
            .bind(computer)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    /// Records the serial of the certificate a holder now has (none: revoked).
    pub(crate) async fn set_certificate_serial(
        &mut self,
        holder: Holder,
        id: i64,
        serial: Option<&str>,
    ) -> Result<()> {
        let (sql, what) = match holder {
            Holder::Principal => (
                "UPDATE principals SET certificate_serial = $2 WHERE id = $1",
                "principal",
            ),
            Holder::Computer => (
                "UPDATE computers SET certificate_serial = $2 WHERE id = $1",
                "computer",
            ),
            Holder::Instance => (
                "UPDATE instances SET certificate_serial = $2 WHERE id = $1",
                "instance",
            ),
        };
        let done = sqlx::query(sql)
            .bind(id)
            .bind(serial)
            .execute(&mut *self.conn)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("no {what} {id}")));
        }
        Ok(())
    }

    // Computers.

    pub(crate) async fn insert_computer(
        &mut self,
        reference: &str,
        owner: i64,
        token_hash: Vec<u8>,
        labels: &BTreeMap<String, String>,
    ) -> Result<i64> {
        let result = sqlx::query(
            "INSERT INTO computers (reference, owner_id, token_hash, created_at, labels) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(reference)
        .bind(owner)
        .bind(token_hash)
        .bind(now_seconds())
        .bind(to_json(labels, "{}"))
        .fetch_one(&mut *self.conn)
        .await;
        match result {
            Ok(row) => Ok(row.try_get(0)?),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "a computer {reference:?} is registered"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn set_labels(
        &mut self,
        computer: i64,
        labels: &BTreeMap<String, String>,
    ) -> Result<()> {
        sqlx::query("UPDATE computers SET labels = $1 WHERE id = $2")
            .bind(to_json(labels, "{}"))
            .bind(computer)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    /// A new revision of a computer's desired state, with its partitions taken (`used`)
    /// or freed (`-used`) and declared (`free`).
    pub(crate) async fn bump(&mut self, computer: i64, free: i64, used: i64) -> Result<()> {
        sqlx::query(
            "UPDATE computers SET revision = revision + 1, free_partitions = free_partitions + $2, \
             used_partitions = used_partitions + $3 WHERE id = $1",
        )
        .bind(computer)
        .bind(free)
        .bind(used)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    // Partitions.

    pub(crate) async fn partition_exists(
        &mut self,
        computer: i64,
        reference: &str,
    ) -> Result<bool> {
        Ok(
            sqlx::query("SELECT 1 FROM partitions WHERE computer_id = $1 AND reference = $2")
                .bind(computer)
                .bind(reference)
                .fetch_optional(&mut *self.conn)
                .await?
                .is_some(),
        )
    }

    /// Declares a partition, or gives a declared one its new addresses.
    pub(crate) async fn put_partition(
        &mut self,
        computer: i64,
        reference: &str,
        addresses: &[String],
        declared: bool,
    ) -> Result<()> {
        let sql = if declared {
            "UPDATE partitions SET addresses = $3 WHERE computer_id = $1 AND reference = $2"
        } else {
            "INSERT INTO partitions (computer_id, reference, addresses) VALUES ($1, $2, $3)"
        };
        sqlx::query(sql)
            .bind(computer)
            .bind(reference)
            .bind(to_json(&addresses, "[]"))
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    /// The first free partition of a computer, in natural order.
    pub(crate) async fn free_partition(&mut self, computer: i64) -> Result<Option<String>> {
        Ok(sqlx::query(
            "SELECT reference FROM partitions WHERE computer_id = $1 AND instance_id IS NULL \
             ORDER BY length(reference), reference LIMIT 1",
        )
        .bind(computer)
        .fetch_optional(&mut *self.conn)
        .await?
        .map(|row| row.try_get(0))
        .transpose()?)
    }

    /// Frees the partition an instance holds; the computer it was on.
    pub(crate) async fn free_partition_of(&mut self, instance: i64) -> Result<Option<i64>> {
        Ok(sqlx::query(
            "UPDATE partitions SET instance_id = NULL WHERE instance_id = $1 RETURNING computer_id",
        )
        .bind(instance)
        .fetch_optional(&mut *self.conn)
        .await?
        .map(|row| row.try_get(0))
        .transpose()?)
    }

    /// The fast path of `simple` (`most_used_first` false) and `pack`: places, inserts
    /// and occupies the partition in one round trip. `None` when the title exists or nothing fits
    /// (the general path finds out which).
    pub(crate) async fn insert_first_fit(
        &mut self,
        new: &NewInstance<'_>,
        computer_guid: Option<&str>,
        most_used_first: bool,
    ) -> Result<Option<FirstFit>> {
        let sql = first_fit_sql(self.backend, computer_guid.is_some(), most_used_first);
        let request = new.request;
        let query = sqlx::query(sql)
            .bind(new.owner)
            .bind(new.requester)
            .bind(&request.title)
            .bind(&request.software_release)
            .bind(&request.software_type)
            .bind(to_json(&request.parameters, "{}"))
            .bind(new.state.as_str())
            .bind(to_json(&request.sla, "{}"))
            .bind(new.timestamp);
        let query = match computer_guid {
            Some(reference) => query.bind(reference),
            None => query,
        };
        // Every statement runs to its end; only the insert returns a row.
        let row = query.fetch_all(&mut *self.conn).await?;
        let Some(row) = row.first() else {
            return Ok(None);
        };
        FirstFit::from_row(row, 0).map(Some)
    }

    /// The fast path for several new instances, each placed as if after the one before.
    /// On PostgreSQL the whole batch is one round trip (the writer's session function
    /// [`FIRST_FITS`]); on SQLite, in the process, one statement each.
    /// Only the asks `fast` says are tried; the others answer `None`. An ask in a project
    /// or of a size goes through `insert_first_fit_extended`, alone.
    pub(crate) async fn insert_first_fits(
        &mut self,
        batch: &[FirstFitAsk<'_>],
        fast: &[bool],
    ) -> Result<Vec<Option<FirstFit>>> {
        let extended = |ask: &FirstFitAsk<'_>| ask.new.project.is_some() || ask.size_name.is_some();
        if self.backend == Backend::Sqlite {
            let mut out = Vec::with_capacity(batch.len());
            for (ask, fast) in batch.iter().zip(fast) {
                let fit = if !fast {
                    None
                } else if extended(ask) {
                    self.insert_first_fit_extended(&ask.new, ask.computer_guid, ask.most_used_first)
                        .await?
                } else {
                    self.insert_first_fit(&ask.new, ask.computer_guid, ask.most_used_first)
                        .await?
                };
                out.push(fit);
            }
            return Ok(out);
        }
        let asks: Vec<serde_json::Value> = batch
            .iter()
            .enumerate()
            .zip(fast)
            .filter(|(_, fast)| **fast)
            .map(|((ord, ask), _)| {
                let request = ask.new.request;
                serde_json::json!({
                    "ord": ord,
                    "owner": ask.new.owner,
                    "requester": ask.new.requester,
                    "title": request.title,
                    "release": request.software_release,
                    "type": request.software_type,
                    "parameters": to_json(&request.parameters, "{}"),
                    "state": ask.new.state.as_str(),
                    "sla": to_json(&request.sla, "{}"),
                    "ts": ask.new.timestamp,
                    "computer": ask.computer_guid,
                    "most_used": ask.most_used_first,
                    "extended": extended(ask),
                    "project": ask.new.project,
                    "size": ask.size_name,
                })
            })
            .collect();
        let rows = sqlx::query(FIRST_FITS_CALL)
            .bind(serde_json::Value::Array(asks).to_string())
            .fetch_all(&mut *self.conn)
            .await?;
        let mut out: Vec<Option<FirstFit>> = batch.iter().map(|_| None).collect();
        for row in rows {
            let ord: i64 = row.try_get(0)?;
            let slot = usize::try_from(ord)
                .ok()
                .and_then(|ord| out.get_mut(ord))
                .ok_or_else(|| {
                    StoreError::Database(sqlx::Error::Protocol(format!(
                        "the batch placement answered for request {ord} of {}",
                        batch.len()
                    )))
                })?;
            *slot = Some(FirstFit::from_row(&row, 1)?);
        }
        Ok(out)
    }

    /// Gives a partition to an instance: the partition taken, the computer's counters and
    /// a new revision, in one round trip.
    pub(crate) async fn occupy(
        &mut self,
        computer: i64,
        partition: &str,
        instance: i64,
    ) -> Result<()> {
        macro_rules! take {
            () => {
                "UPDATE partitions SET instance_id = $3 WHERE computer_id = $1 AND reference = $2"
            };
        }
        macro_rules! count {
            () => {
                concat!("UPDATE computers SET ", taken!(), " WHERE id = $1")
            };
        }
        // SQLite runs several statements of one query; PostgreSQL writes several tables
        // from one statement.
        let sql = match self.backend {
            Backend::Sqlite => concat!(take!(), "; ", count!()),
            Backend::Postgres => concat!("WITH taken AS (", take!(), ") ", count!()),
        };
        sqlx::query(sql)
            .bind(computer)
            .bind(partition)
            .bind(instance)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    /// The computers that might take an instance, as the scheduler needs them.
    pub(crate) async fn candidates(
        &mut self,
        narrow: &Narrow<'_>,
    ) -> Result<Vec<grove_scheduler::Candidate>> {
        let mut sql = String::from(
            "SELECT c.id, c.reference, c.owner_id, p.kind, c.labels, c.free_partitions, \
             c.used_partitions, EXISTS (SELECT 1 FROM software s WHERE s.computer_id = c.id \
             AND s.url = $1 AND s.requested_state = 'available') AS supplied, ",
        );
        sql.push_str(if narrow.count_owner {
            "(SELECT count(*) FROM instances i WHERE i.computer_id = c.id AND i.owner_id = $2 \
             AND i.shared = 0), "
        } else {
            "0, "
        });
        sql.push_str(
            "c.project_id, c.capacity_millicores - c.allocated_millicores, \
             c.capacity_memory - c.allocated_memory, c.capacity_disk - c.allocated_disk ",
        );
        sql.push_str(
            "FROM computers c JOIN principals p ON p.id = c.owner_id \
             WHERE ((c.project_id IS NULL AND (c.owner_id = $2 OR p.kind = 'admin')) \
             OR c.project_id = $4) AND ($3 IS NULL OR c.reference = $3) ",
        );
        let mut next = 5;
        if narrow.fit_only {
            sql.push_str(
                "AND c.free_partitions > 0 AND EXISTS (SELECT 1 FROM software s WHERE \
                 s.computer_id = c.id AND s.url = $1 AND s.requested_state = 'available') ",
            );
            if narrow.needs.is_some() {
                sql.push_str(
                    "AND c.capacity_millicores - c.allocated_millicores >= $5 \
                     AND c.capacity_memory - c.allocated_memory >= $6 \
                     AND c.capacity_disk - c.allocated_disk >= $7 ",
                );
                next = 8;
            }
        }
        match narrow.most_used_first {
            Some(false) => sql.push_str("ORDER BY c.used_partitions, c.reference "),
            Some(true) => sql.push_str("ORDER BY c.used_partitions DESC, c.reference "),
            None => {}
        }
        if narrow.limit.is_some() {
            sql.push_str(&format!("LIMIT ${next}"));
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(narrow.software_release)
            .bind(narrow.owner)
            .bind(narrow.computer_guid)
            .bind(narrow.project);
        if narrow.fit_only
            && let Some(needs) = narrow.needs
        {
            query = query
                .bind(sizes::stored(needs.millicores))
                .bind(sizes::stored(needs.memory))
                .bind(sizes::stored(needs.disk));
        }
        if let Some(limit) = narrow.limit {
            query = query.bind(limit);
        }
        let rows = query.fetch_all(&mut *self.conn).await?;
        rows.iter().map(candidate).collect()
    }

    // Software.

    pub(crate) async fn upsert_software(
        &mut self,
        computer: i64,
        url: &str,
        state: api::SupplyState,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO software (computer_id, url, requested_state) VALUES ($1, $2, $3) \
             ON CONFLICT (computer_id, url) DO UPDATE SET requested_state = excluded.requested_state",
        )
        .bind(computer)
        .bind(url)
        .bind(state.as_str())
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    pub(crate) async fn software_requested(
        &mut self,
        computer: i64,
        url: &str,
    ) -> Result<Option<String>> {
        Ok(
            sqlx::query("SELECT requested_state FROM software WHERE computer_id = $1 AND url = $2")
                .bind(computer)
                .bind(url)
                .fetch_optional(&mut *self.conn)
                .await?
                .map(|row| row.try_get(0))
                .transpose()?,
        )
    }

    pub(crate) async fn delete_software(&mut self, computer: i64, url: &str) -> Result<()> {
        sqlx::query("DELETE FROM software WHERE computer_id = $1 AND url = $2")
            .bind(computer)
            .bind(url)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    pub(crate) async fn set_software_report(
        &mut self,
        computer: i64,
        report: &api::SoftwareReport,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE software SET reported_state = $3, error = $4 WHERE computer_id = $1 AND url = $2",
        )
        .bind(computer)
        .bind(&report.software_release)
        .bind(report.state.as_str())
        .bind(&report.error)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    // Instances.

    pub(crate) async fn instance(&mut self, id: i64) -> Result<Option<Loaded>> {
        let row = sqlx::query(INSTANCE_BY_ID)
            .bind(id)
            .fetch_optional(&mut *self.conn)
            .await?;
        row.map(|row| {
            Ok(Loaded {
                computer_id: row.try_get("computer_id")?,
                project_id: row.try_get("project_id")?,
                instance: row_to_instance(&row)?,
            })
        })
        .transpose()
    }

    /// An instance that must exist.
    pub(crate) async fn existing(&mut self, id: i64) -> Result<Loaded> {
        self.instance(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("instance {id}")))
    }

    pub(crate) async fn requested_state(&mut self, id: i64) -> Result<Option<String>> {
        Ok(
            sqlx::query("SELECT requested_state FROM instances WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *self.conn)
                .await?
                .map(|row| row.try_get(0))
                .transpose()?,
        )
    }

    /// The instance a requester knows by this title.
    pub(crate) async fn identify(&mut self, requester: &str, title: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query("SELECT id FROM instances WHERE requester = $1 AND title = $2")
                .bind(requester)
                .bind(title)
                .fetch_optional(&mut *self.conn)
                .await?
                .map(|row| row.try_get(0))
                .transpose()?,
        )
    }

    pub(crate) async fn insert_instance(&mut self, new: &NewInstance<'_>) -> Result<i64> {
        let request = new.request;
        let row = sqlx::query(
            "INSERT INTO instances (owner_id, requester, title, parent_id, root_id, \
             software_release, software_type, parameters, requested_state, shared, sla, timestamp, \
             project_id, size, size_millicores, size_memory, size_disk) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
             RETURNING id",
        )
        .bind(new.owner)
        .bind(new.requester)
        .bind(&request.title)
        .bind(new.parent)
        .bind(new.root)
        .bind(&request.software_release)
        .bind(&request.software_type)
        .bind(to_json(&request.parameters, "{}"))
        .bind(new.state.as_str())
        .bind(i64::from(request.shared))
        .bind(to_json(&request.sla, "{}"))
        .bind(new.timestamp)
        .bind(new.project)
        .bind(new.size.map(|s| s.name.as_str()))
        .bind(new.size.map(|s| sizes::stored(s.millicores)))
        .bind(new.size.map(|s| sizes::stored(s.memory)))
        .bind(new.size.map(|s| sizes::stored(s.disk)))
        .fetch_one(&mut *self.conn)
        .await?;
        let id = row.try_get(0)?;
        if new.project.is_some() {
            self.hold_new(id).await?;
        }
        Ok(id)
    }

    /// Requests an existing instance again with new values.
    pub(crate) async fn update_request(
        &mut self,
        id: i64,
        request: &api::InstanceRequest,
        state: api::RequestedState,
    ) -> Result<()> {
        self.hold_change(id, state).await?;
        let timestamp = self.clock.next();
        sqlx::query(
            "UPDATE instances SET software_release = $1, software_type = $2, parameters = $3, \
             requested_state = $4, sla = $5, timestamp = $6 WHERE id = $7",
        )
        .bind(&request.software_release)
        .bind(&request.software_type)
        .bind(to_json(&request.parameters, "{}"))
        .bind(state.as_str())
        .bind(to_json(&request.sla, "{}"))
        .bind(timestamp)
        .bind(id)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    pub(crate) async fn set_requested_state(
        &mut self,
        id: i64,
        state: api::RequestedState,
    ) -> Result<()> {
        self.hold_change(id, state).await?;
        sqlx::query("UPDATE instances SET requested_state = $1 WHERE id = $2")
            .bind(state.as_str())
            .bind(id)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    /// A new timestamp for an instance; the computer it is on.
    pub(crate) async fn retimestamp(&mut self, id: i64) -> Result<Option<i64>> {
        let timestamp = self.clock.next();
        let row =
            sqlx::query("UPDATE instances SET timestamp = $1 WHERE id = $2 RETURNING computer_id")
                .bind(timestamp)
                .bind(id)
                .fetch_optional(&mut *self.conn)
                .await?;
        Ok(row.map(|row| row.try_get(0)).transpose()?.flatten())
    }

    /// The instances a parent requested: id, title, requested state.
    pub(crate) async fn children(&mut self, parent: i64) -> Result<Vec<(i64, String, String)>> {
        let rows = sqlx::query(
            "SELECT id, title, requested_state FROM instances WHERE parent_id = $1 ORDER BY id",
        )
        .bind(parent)
        .fetch_all(&mut *self.conn)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
            .collect()
    }

    /// Puts an instance on a computer: in its own partition, or served by a host.
    pub(crate) async fn place(
        &mut self,
        id: i64,
        computer: i64,
        partition: &str,
        host: Option<i64>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE instances SET computer_id = $1, partition_reference = $2, host_instance_id = $3 \
             WHERE id = $4",
        )
        .bind(computer)
        .bind(partition)
        .bind(host)
        .bind(id)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    /// Takes an instance, and the shared instances it hosts, off their computer.
    pub(crate) async fn unplace(&mut self, id: i64) -> Result<()> {
        sqlx::query(
            "UPDATE instances SET computer_id = NULL, partition_reference = NULL, \
             host_instance_id = NULL WHERE id = $1 OR host_instance_id = $1",
        )
        .bind(id)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    /// A started instance of the same release and type that may serve a shared one:
    /// id, computer, partition.
    pub(crate) async fn host_for(
        &mut self,
        owner: i64,
        shared: &api::Instance,
        computer_guid: Option<&str>,
        host: Option<i64>,
    ) -> Result<Option<(i64, i64, String)>> {
        let row = sqlx::query(
            "SELECT i.id, i.computer_id, i.partition_reference FROM instances i \
             JOIN computers c ON c.id = i.computer_id JOIN principals p ON p.id = i.owner_id \
             WHERE i.software_release = $1 AND i.software_type = $2 AND i.shared = 0 \
             AND i.requested_state = 'started' AND i.id != $3 \
             AND ($4 IS NULL OR c.reference = $4) AND ($5 IS NULL OR i.id = $5) \
             AND (i.owner_id = $6 OR p.kind = 'admin') ORDER BY i.id LIMIT 1",
        )
        .bind(&shared.software_release)
        .bind(&shared.software_type)
        .bind(shared.id)
        .bind(computer_guid)
        .bind(host)
        .bind(owner)
        .fetch_optional(&mut *self.conn)
        .await?;
        row.map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
            .transpose()
    }

    pub(crate) async fn set_report(&mut self, id: i64, report: &api::StateReport) -> Result<()> {
        sqlx::query(
            "UPDATE instances SET reported_state = $1, error = $2, reported_timestamp = $3 \
             WHERE id = $4",
        )
        .bind(report.state.as_str())
        .bind(&report.error)
        .bind(report.timestamp)
        .bind(id)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    pub(crate) async fn set_connection(
        &mut self,
        id: i64,
        parameters: &api::Parameters,
    ) -> Result<()> {
        sqlx::query("UPDATE instances SET connection = $1 WHERE id = $2")
            .bind(to_json(parameters, "{}"))
            .bind(id)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    // Usage.

    /// Records a sample against the instance the partition holds; false when the computer
    /// has no such partition.
    /// Records a partition's sample; `Err(NotFound)`-worthy `None` when the computer has
    /// no such partition, `Some(None)` when it was recorded before (or the partition holds
    /// no instance), `Some(Some(instance))` when it is new.
    pub(crate) async fn insert_usage(
        &mut self,
        computer: i64,
        sample: &api::PartitionUsage,
        at: i64,
    ) -> Result<Option<Option<i64>>> {
        let Some(row) = sqlx::query(
            "SELECT instance_id FROM partitions WHERE computer_id = $1 AND reference = $2",
        )
        .bind(computer)
        .bind(&sample.reference)
        .fetch_optional(&mut *self.conn)
        .await?
        else {
            return Ok(None);
        };
        let instance: Option<i64> = row.try_get(0)?;
        let inserted = sqlx::query(
            "INSERT INTO usage (computer_id, instance_id, partition_reference, cpu_seconds, \
             memory_bytes, restarts, at, memory_peak_bytes, disk_bytes) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (instance_id, at) DO NOTHING",
        )
        .bind(computer)
        .bind(instance)
        .bind(&sample.reference)
        .bind(sample.cpu_seconds)
        .bind(sizes::stored(sample.memory_bytes))
        .bind(i64::from(sample.restarts))
        .bind(at)
        .bind(sizes::stored(sample.memory_peak_bytes))
        .bind(sizes::stored(sample.disk_bytes))
        .execute(&mut *self.conn)
        .await?;
        Ok(Some(instance.filter(|_| inserted.rows_affected() > 0)))
    }
}

fn candidate(row: &AnyRow) -> Result<grove_scheduler::Candidate> {
    let labels: String = row.try_get(4)?;
    let count = |index: usize| -> Result<u32> {
        Ok(u32::try_from(row.try_get::<i64, _>(index)?.max(0)).unwrap_or(u32::MAX))
    };
    Ok(grove_scheduler::Candidate {
        id: row.try_get(0)?,
        reference: row.try_get(1)?,
        owner: row.try_get(2)?,
        shared: row.try_get::<String, _>(3)? == "admin",
        labels: serde_json::from_str(&labels).unwrap_or_default(),
        free_partitions: count(5)?,
        used_partitions: count(6)?,
        supplied: flag(row, 7)?,
        requester_instances: count(8)?,
        project: row.try_get(9)?,
        room: match (
            row.try_get::<Option<i64>, _>(10)?,
            row.try_get::<Option<i64>, _>(11)?,
            row.try_get::<Option<i64>, _>(12)?,
        ) {
            (Some(millicores), Some(memory), Some(disk)) => Some(grove_scheduler::Room {
                millicores: sizes::count(millicores),
                memory: sizes::count(memory),
                disk: sizes::count(disk),
            }),
            _ => None,
        },
    })
}

/// A boolean column: SQLite gives an integer, PostgreSQL a boolean.
fn flag(row: &AnyRow, index: usize) -> Result<bool> {
    match row.try_get::<bool, _>(index) {
        Ok(value) => Ok(value),
        Err(_) => Ok(row.try_get::<i64, _>(index)? != 0),
    }
}

impl Clock {
    /// The last timestamp the store gave, which another master may have moved on.
    pub(crate) fn catch_up(&mut self, stored: i64) {
        self.last = self.last.max(stored);
    }

    pub(crate) fn last(&self) -> i64 {
        self.last
    }
}
