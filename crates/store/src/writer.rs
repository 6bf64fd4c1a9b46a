//! [`Db`]: the store the master uses, on either backend. One writer connection fed by a
//! queue (group commit), a pool of readers beside it, and on PostgreSQL a listener for
//! what other masters commit.

use std::collections::BTreeMap;

use grove_api as api;
use grove_scheduler::SeededDice;
use sqlx::{AnyConnection, Connection, Row};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::backend::{Backend, CHANNEL, RECONNECT, Target, exec};
use crate::reads::Reads;
use crate::rules::{self, Answer, Op, Placement};
use crate::tx::{Clock, Tx};
use crate::{
    Changed, ComputerRow, Elsewhere, PrincipalRow, Requester, Result, Store, StoreConfig,
    StoreError,
};

/// The setting that holds the price list.
const PRICES: &str = "prices";

/// The most mutations one transaction takes.
const MAX_BATCH: usize = 512;

/// The store. Cloning it is cheap: clones share the writer and the readers.
#[derive(Debug, Clone)]
pub struct Db {
    writer: mpsc::Sender<Job>,
    reads: Reads,
    elsewhere: broadcast::Sender<Elsewhere>,
    /// How many mutations each transaction of the writer took.
    batches: std::sync::Arc<grove_metrics::Histogram>,
}

struct Job {
    op: Op,
    reply: oneshot::Sender<Result<(Answer, Changed)>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

/// The writer's side: its connection, the clock, the placement, and who it is when it
/// tells other masters what changed.
struct Writer {
    target: Target,
    conn: Option<AnyConnection>,
    clock: Clock,
    placement: Placement,
    origin: u64,
    since_vacuum: usize,
    batches: std::sync::Arc<grove_metrics::Histogram>,
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // Without the OS random source, the time is seed enough for dice and an origin tag.
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos());
        return u64::try_from(now % u128::from(u64::MAX)).unwrap_or(1);
    }
    u64::from_le_bytes(bytes)
}

impl Db {
    /// Opens (creating if needed) the store, migrates it and starts its writer.
    pub async fn open(config: &StoreConfig) -> Result<Db> {
        let target = Target::new(&config.location)?;
        let mut conn = target.connect().await.map_err(|e| target.open_error(e))?;
        target.migrate(&mut conn).await?;
        crate::tx::prepare_writer(&mut conn, target.backend).await?;
        let readers = target.readers().await.map_err(|e| target.open_error(e))?;
        let origin = random_u64();
        let (elsewhere, _) = broadcast::channel(1024);
        if let Some(url) = target.listener_url() {
            let listener = sqlx::postgres::PgListener::connect(&url)
                .await
                .map_err(|e| target.open_error(e))?;
            tokio::spawn(listen(listener, origin, elsewhere.clone()));
        }
        let (writer, queue) = mpsc::channel(4096);
        let batches = std::sync::Arc::new(grove_metrics::Histogram::new(grove_metrics::SIZES));
        let state = Writer {
            target,
            conn: Some(conn),
            clock: Clock::default(),
            placement: Placement {
                policy: config.placement,
                dice: SeededDice::new(random_u64()),
            },
            origin,
            since_vacuum: 0,
            batches: std::sync::Arc::clone(&batches),
        };
        // The writer has a thread of its own, so that the requests it serializes do not
        // wait behind the HTTP work of the runtime that serves them.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| state.target.open_error(sqlx::Error::Io(e)))?;
        let location = state.target.location.to_string();
        std::thread::Builder::new()
            .name("grove-store-writer".to_owned())
            .spawn(move || runtime.block_on(write_loop(state, queue)))
            .map_err(|e| StoreError::Open {
                location,
                source: sqlx::Error::Io(e),
            })?;
        Ok(Db {
            writer,
            reads: Reads { pool: readers },
            elsewhere,
            batches,
        })
    }

    async fn write(&self, op: Op) -> Result<(Answer, Changed)> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Job { op, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn changed(&self, op: Op) -> Result<Changed> {
        self.write(op).await.map(|(_, changed)| changed)
    }

    async fn shared(&self, name: &'static str, proposed: String) -> Result<String> {
        match self.write(Op::Shared(name, proposed)).await? {
            (Answer::Key(value), _) => Ok(value),
            (other, _) => Err(unexpected(&other)),
        }
    }

    async fn created(&self, op: Op) -> Result<i64> {
        match self.write(op).await? {
            (Answer::Created(id), _) => Ok(id),
            (other, _) => Err(unexpected(&other)),
        }
    }
}

fn unexpected(answer: &Answer) -> StoreError {
    StoreError::Database(sqlx::Error::Protocol(format!(
        "the writer answered {answer:?} to a request it does not answer so"
    )))
}

/// Tells this master what the others commit: notifications on [`CHANNEL`], each
/// `origin;computers;documents` with comma-separated ids. When the connection drops,
/// some may have been missed: that is said too, and the listener connects again.
async fn listen(
    mut listener: sqlx::postgres::PgListener,
    origin: u64,
    out: broadcast::Sender<Elsewhere>,
) {
    if let Err(e) = listener.listen(CHANNEL).await {
        tracing::error!(error = %e, "cannot listen for other masters' changes");
    }
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                if let Some(changed) = parse_notice(notification.payload(), origin) {
                    let _ = out.send(Elsewhere::Changed(changed));
                }
            }
            Ok(None) => {
                tracing::warn!("lost the connection that carries other masters' changes");
                let _ = out.send(Elsewhere::Lost);
            }
            Err(e) => {
                tracing::warn!(error = %e, "listening for other masters' changes");
                let _ = out.send(Elsewhere::Lost);
                tokio::time::sleep(RECONNECT).await;
            }
        }
    }
}

fn ids(text: &str) -> Vec<i64> {
    text.split(',').filter_map(|id| id.parse().ok()).collect()
}

fn parse_notice(payload: &str, origin: u64) -> Option<Changed> {
    let mut parts = payload.split(';');
    let from: u64 = parts.next()?.parse().ok()?;
    if from == origin {
        return None;
    }
    Some(Changed {
        computers: ids(parts.next().unwrap_or_default()),
        documents: ids(parts.next().unwrap_or_default()),
        applications: ids(parts.next().unwrap_or_default()),
        actions: ids(parts.next().unwrap_or_default()),
    })
}

/// Notices for a change, small enough for PostgreSQL's payload limit. A batch that wrote
/// something but changed no one's desired state (a report, a sample of usage) still sends
/// a bare notice: other masters' consoles show what was written.
fn notices(origin: u64, changed: &Changed, wrote: bool) -> Vec<String> {
    const PER_NOTICE: usize = 400;
    let join = |ids: &[i64]| ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let mut out = Vec::new();
    for chunk in changed.computers.chunks(PER_NOTICE) {
        out.push(format!("{origin};{};", join(chunk)));
    }
    for chunk in changed.documents.chunks(PER_NOTICE) {
        out.push(format!("{origin};;{}", join(chunk)));
    }
    for chunk in changed.applications.chunks(PER_NOTICE) {
        out.push(format!("{origin};;;{}", join(chunk)));
    }
    for chunk in changed.actions.chunks(PER_NOTICE) {
        out.push(format!("{origin};;;;{}", join(chunk)));
    }
    if out.is_empty() && wrote {
        out.push(format!("{origin};;;;"));
    }
    out
}

/// The writer: takes every waiting mutation, applies them in one transaction, commits
/// once, then answers.
///
/// A batch is first applied as is; if one of its mutations fails (no capacity, a
/// conflict), the transaction is rolled back and the batch applied again with a savepoint
/// around each mutation, so that the failing one alone is undone.
async fn write_loop(mut writer: Writer, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let ops: Vec<Op> = batch.iter().map(|job| job.op.clone()).collect();
        #[expect(
            clippy::cast_precision_loss,
            reason = "a batch holds at most MAX_BATCH"
        )]
        writer.batches.observe(ops.len() as f64);
        match guarded(&mut writer, &ops).await {
            Some(results) => answer(&mut writer, batch, results).await,
            // A rule panicked: the batch's transaction is gone with its connection. Each
            // mutation runs again alone, so that only the one that panics fails.
            None => {
                tracing::error!("a rule panicked in a batch: its mutations run again one by one");
                for job in batch {
                    let op = [job.op.clone()];
                    match guarded(&mut writer, &op).await {
                        Some(results) => answer(&mut writer, vec![job], results).await,
                        None => {
                            // Not the mutation itself: it may carry secrets (the CA).
                            tracing::error!("a rule panicked on a mutation; it is refused");
                            let _ =
                                job.reply
                                    .send(Err(StoreError::Database(sqlx::Error::Protocol(
                                        "the store failed on this request; see the master's log"
                                            .to_owned(),
                                    ))));
                        }
                    }
                }
            }
        }
    }
}

/// Runs a batch (again with savepoints if one of its mutations fails); `None` when a rule
/// panicked, after which the writer connects anew (a transaction left open mid-way is
/// rolled back when its connection goes).
async fn guarded(writer: &mut Writer, ops: &[Op]) -> Option<sqlx::Result<Results>> {
    use futures_util::FutureExt;
    let outcome = std::panic::AssertUnwindSafe(results_of(writer, ops))
        .catch_unwind()
        .await;
    match outcome {
        Ok(results) => Some(results),
        Err(_) => {
            writer.conn = None;
            None
        }
    }
}

async fn results_of(writer: &mut Writer, ops: &[Op]) -> sqlx::Result<Results> {
    match writer.run_batch(ops, false).await {
        Ok(Some(results)) => Ok(results),
        Ok(None) => match writer.run_batch(ops, true).await {
            Ok(Some(results)) => Ok(results),
            Ok(None) => Err(sqlx::Error::Protocol(
                "a savepoint did not isolate a failure".to_owned(),
            )),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// Answers each job of a batch that ran.
async fn answer(writer: &mut Writer, batch: Vec<Job>, results: sqlx::Result<Results>) {
    match results {
        Ok(results) => {
            let done = batch.len();
            for (job, result) in batch.into_iter().zip(results) {
                let _ = job.reply.send(result);
            }
            writer.tidy(done).await;
        }
        Err(e) => {
            tracing::error!(error = %e, "store transaction failed");
            for job in batch {
                let _ = job
                    .reply
                    .send(Err(StoreError::Database(sqlx::Error::Protocol(
                        e.to_string(),
                    ))));
            }
            writer.check_connection().await;
        }
    }
}

type Results = Vec<Result<(Answer, Changed)>>;

/// Mutations between two vacuums of the computers table on PostgreSQL.
const VACUUM_EVERY: usize = 300;

impl Writer {
    /// On PostgreSQL, every placement moves its computer in the least-loaded index, and
    /// the scans that place walk over the dead entries until a vacuum: autovacuum comes
    /// once a minute at best, so the writer vacuums that small table itself, between
    /// batches, every [`VACUUM_EVERY`] mutations.
    async fn tidy(&mut self, done: usize) {
        if self.target.backend != Backend::Postgres {
            return;
        }
        self.since_vacuum += done;
        if self.since_vacuum < VACUUM_EVERY {
            return;
        }
        self.since_vacuum = 0;
        if let Some(conn) = self.conn.as_mut()
            && let Err(e) = exec(conn, "VACUUM computers").await
        {
            tracing::warn!(error = %e, "cannot vacuum the computers table");
        }
    }

    /// After a failed batch: a connection that no longer answers is replaced.
    async fn check_connection(&mut self) {
        if let Some(conn) = self.conn.as_mut()
            && conn.ping().await.is_ok()
        {
            return;
        }
        self.conn = None;
        let connected = match self.target.connect().await {
            Ok(mut conn) => crate::tx::prepare_writer(&mut conn, self.target.backend)
                .await
                .map(|()| conn)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match connected {
            Ok(conn) => {
                tracing::info!("the store's writer connected again");
                self.conn = Some(conn);
            }
            Err(e) => {
                tracing::error!(error = %e, "the store's writer cannot connect");
                tokio::time::sleep(RECONNECT).await;
            }
        }
    }

    /// Applies `ops` in one committed transaction and returns each result; `None` when,
    /// without savepoints, one of them failed (the transaction is then rolled back).
    async fn run_batch(&mut self, ops: &[Op], savepoints: bool) -> sqlx::Result<Option<Results>> {
        if self.conn.is_none() {
            self.check_connection().await;
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(sqlx::Error::PoolTimedOut);
        };
        let backend = self.target.backend;
        if let Some(stored) = backend.begin(conn).await? {
            self.clock.catch_up(stored);
        }
        let outcome = apply_all(
            conn,
            &mut self.clock,
            &mut self.placement,
            ops,
            savepoints,
            backend,
            self.origin,
        )
        .await;
        match outcome {
            Ok(Some((results, closing))) => match commit(conn, closing).await {
                Ok(()) => Ok(Some(results)),
                Err(e) => {
                    let _ = exec(conn, "ROLLBACK").await;
                    Err(e)
                }
            },
            Ok(None) => {
                exec(conn, "ROLLBACK").await?;
                Ok(None)
            }
            Err(e) => {
                let _ = exec(conn, "ROLLBACK").await;
                Err(e)
            }
        }
    }
}

/// Runs the batch inside the open transaction: the clock from the store, each op (in a
/// savepoint if asked); returns the results and what closes the batch before its commit:
/// the clock back, and on PostgreSQL the notices for other masters (delivered when the
/// transaction commits).
async fn apply_all(
    conn: &mut AnyConnection,
    clock: &mut Clock,
    placement: &mut Placement,
    ops: &[Op],
    savepoints: bool,
    backend: Backend,
    origin: u64,
) -> sqlx::Result<Option<(Results, String)>> {
    // A SQLite file has one writer: its clock is read once. (On PostgreSQL, where other
    // masters move it, `begin` read it.)
    if backend == Backend::Sqlite && clock.last() == 0 {
        let stored: i64 = sqlx::query("SELECT last FROM clock WHERE id = 1")
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        clock.catch_up(stored);
    }
    let mut results = Vec::with_capacity(ops.len());
    let mut all = Changed::default();
    let mut next = 0;
    while next < ops.len() {
        // Users' new instances that arrived together are placed together (one round trip
        // on PostgreSQL). With savepoints, where each mutation must be undone alone, one
        // at a time.
        let run = if savepoints {
            0
        } else {
            rules::first_fit_run(placement, &ops[next..])
        };
        if run >= 2 {
            let mut tx = Tx {
                conn: &mut *conn,
                clock: &mut *clock,
                backend,
            };
            let Ok(outcomes) = rules::first_fits(&mut tx, placement, &ops[next..next + run]).await
            else {
                return Ok(None);
            };
            for outcome in outcomes {
                let Ok((answer, changed)) = outcome else {
                    return Ok(None);
                };
                all.merge(&changed);
                results.push(Ok((answer, changed)));
            }
            next += run;
            continue;
        }
        let op = &ops[next];
        next += 1;
        if savepoints {
            exec(conn, "SAVEPOINT op").await?;
        }
        let result = {
            let mut tx = Tx {
                conn: &mut *conn,
                clock: &mut *clock,
                backend,
            };
            rules::apply(&mut tx, placement, op.clone()).await
        };
        match (&result, savepoints) {
            (Err(_), true) => {
                exec(conn, "ROLLBACK TO op").await?;
                exec(conn, "RELEASE op").await?;
            }
            (Ok(_), true) => exec(conn, "RELEASE op").await?,
            (Err(_), false) => return Ok(None),
            (Ok(_), false) => {}
        }
        if let Ok((_, changed)) = &result {
            all.merge(changed);
        }
        results.push(result);
    }
    let mut closing = format!("UPDATE clock SET last = {} WHERE id = 1; ", clock.last());
    if backend == Backend::Postgres {
        // Usage samples come often and no page follows them live (the master's console
        // leaves them out the same way: `console::shown`).
        let wrote = ops
            .iter()
            .zip(&results)
            .any(|(op, result)| result.is_ok() && !matches!(op, Op::Usage(..)));
        for notice in notices(origin, &all, wrote) {
            closing.push_str(&format!("SELECT pg_notify('{CHANNEL}', '{notice}'); "));
        }
    }
    Ok(Some((results, closing)))
}

/// Ends the batch: the clock written back, the notices sent and the commit, in one round
/// trip (statements without parameters: what they carry is numbers, `;` and `,`).
async fn commit(conn: &mut AnyConnection, mut closing: String) -> sqlx::Result<()> {
    debug_assert!(
        closing
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " _=;,'()".contains(c)),
        "{closing}"
    );
    closing.push_str("COMMIT");
    sqlx::raw_sql(sqlx::AssertSqlSafe(closing))
        .execute(conn)
        .await
        .map(|_| ())
}

impl Store for Db {
    async fn ensure_admin(&self, token_hash: Vec<u8>) -> Result<Option<i64>> {
        match self.write(Op::EnsureAdmin(token_hash)).await? {
            (Answer::Created(id), _) => Ok(Some(id)),
            _ => Ok(None),
        }
    }

    async fn master_key(&self, proposed: String) -> Result<String> {
        self.shared("master_key", proposed).await
    }

    async fn certificate_authority(&self, proposed: String) -> Result<String> {
        self.shared("certificate_authority", proposed).await
    }

    async fn create_join_token(
        &self,
        owner: i64,
        hash: Vec<u8>,
        labels: BTreeMap<String, String>,
        expires_at: i64,
    ) -> Result<i64> {
        self.created(Op::CreateJoinToken {
            owner,
            hash,
            labels,
            expires_at,
        })
        .await
    }

    async fn join(
        &self,
        hash: Vec<u8>,
        reference: String,
        serial: String,
        now: i64,
    ) -> Result<i64> {
        self.created(Op::Join {
            hash,
            reference,
            serial,
            now,
        })
        .await
    }

    async fn set_certificate(&self, computer: i64, serial: Option<String>) -> Result<()> {
        self.write(Op::SetCertificate(computer, serial)).await?;
        Ok(())
    }

    async fn create_user(&self, name: String, token_hash: Vec<u8>) -> Result<i64> {
        self.created(Op::CreateUser(name, token_hash)).await
    }

    async fn principal(&self, id: i64) -> Result<Option<PrincipalRow>> {
        self.reads.principal(id).await
    }

    async fn principal_by_name(&self, name: String) -> Result<Option<PrincipalRow>> {
        self.reads.principal_by_name(&name).await
    }

    async fn set_user_certificate(&self, principal: i64, serial: Option<String>) -> Result<()> {
        self.write(Op::SetUserCertificate(principal, serial))
            .await?;
        Ok(())
    }

    async fn set_labels(&self, computer_id: i64, labels: BTreeMap<String, String>) -> Result<()> {
        self.changed(Op::SetLabels(computer_id, labels))
            .await
            .map(|_| ())
    }

    async fn create_computer(
        &self,
        reference: String,
        owner_id: i64,
        token_hash: Vec<u8>,
        labels: BTreeMap<String, String>,
    ) -> Result<i64> {
        self.created(Op::CreateComputer(reference, owner_id, token_hash, labels))
            .await
    }

    async fn computer(&self, id: i64) -> Result<Option<ComputerRow>> {
        self.reads.computer(id).await
    }

    async fn computer_by_reference(&self, reference: String) -> Result<Option<ComputerRow>> {
        self.reads.computer_by_reference(&reference).await
    }

    async fn computers(&self, owner: Option<i64>) -> Result<Vec<api::Computer>> {
        self.reads.computers(owner).await
    }

    async fn computer_view(&self, id: i64) -> Result<Option<api::Computer>> {
        self.reads.computer_view(id).await
    }

    async fn declare_partitions(
        &self,
        computer_id: i64,
        partitions: Vec<api::PartitionDeclaration>,
    ) -> Result<Changed> {
        self.changed(Op::DeclarePartitions(computer_id, partitions))
            .await
    }

    async fn supply(&self, computer_id: i64, supply: api::Supply) -> Result<Changed> {
        self.changed(Op::Supply(computer_id, supply)).await
    }

    async fn report_software(
        &self,
        computer_id: i64,
        report: api::SoftwareReport,
    ) -> Result<Changed> {
        self.changed(Op::ReportSoftware(computer_id, report)).await
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
            (Answer::Instance(instance), changed) => Ok((*instance, changed)),
            (other, _) => Err(unexpected(&other)),
        }
    }

    async fn instance(&self, id: i64) -> Result<Option<api::Instance>> {
        self.reads.instance(id).await
    }

    async fn instance_owner(&self, id: i64) -> Result<Option<i64>> {
        self.reads.instance_owner(id).await
    }

    async fn instance_certificate(&self, id: i64) -> Result<Option<Option<String>>> {
        self.reads.instance_certificate(id).await
    }

    async fn set_instance_certificate(&self, id: i64, serial: Option<String>) -> Result<()> {
        self.write(Op::SetInstanceCertificate(id, serial)).await?;
        Ok(())
    }

    async fn instances(&self, owner: Option<i64>) -> Result<Vec<api::Instance>> {
        self.reads.instances(owner).await
    }

    async fn create_project(&self, name: String) -> Result<i64> {
        self.created(Op::CreateProject(name)).await
    }

    async fn delete_project(&self, project: i64) -> Result<()> {
        self.changed(Op::DeleteProject(project)).await.map(|_| ())
    }

    async fn set_member(
        &self,
        project: i64,
        principal: i64,
        role: Option<api::Role>,
    ) -> Result<()> {
        self.changed(Op::SetMember(project, principal, role))
            .await
            .map(|_| ())
    }

    async fn set_quota(&self, project: i64, quota: api::Quota) -> Result<()> {
        self.changed(Op::SetQuota(project, quota)).await.map(|_| ())
    }

    async fn set_credit(&self, project: i64, credit: Option<String>) -> Result<()> {
        self.changed(Op::SetCredit(project, credit))
            .await
            .map(|_| ())
    }

    async fn project_by_name(&self, name: String) -> Result<Option<crate::ProjectRow>> {
        self.reads.project_by_name(&name).await
    }

    async fn projects(&self, member: Option<i64>) -> Result<Vec<crate::ProjectRow>> {
        self.reads.projects(member).await
    }

    async fn members(&self, project: i64) -> Result<Vec<api::Member>> {
        self.reads.members(project).await
    }

    async fn role(&self, project: i64, principal: i64) -> Result<Option<api::Role>> {
        self.reads.role(project, principal).await
    }

    async fn project_usage(&self, project: i64) -> Result<api::QuotaUsage> {
        self.reads.project_usage(project).await
    }

    async fn create_size(&self, size: api::Size) -> Result<()> {
        self.changed(Op::CreateSize(size)).await.map(|_| ())
    }

    async fn delete_size(&self, name: String) -> Result<()> {
        self.changed(Op::DeleteSize(name)).await.map(|_| ())
    }

    async fn sizes(&self) -> Result<Vec<api::Size>> {
        self.reads.sizes().await
    }

    async fn set_capacity(&self, computer_id: i64, capacity: api::Capacity) -> Result<()> {
        self.changed(Op::SetCapacity(computer_id, capacity))
            .await
            .map(|_| ())
    }

    async fn dedicate_computer(&self, computer_id: i64, project: Option<i64>) -> Result<()> {
        self.changed(Op::DedicateComputer(computer_id, project))
            .await
            .map(|_| ())
    }

    async fn ledger(&self, instance: i64, from: i64, to: i64) -> Result<Vec<crate::LedgerRow>> {
        self.reads.ledger(instance, from, to).await
    }

    async fn project_ledger(
        &self,
        project: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<crate::InstanceUse>> {
        self.reads.project_ledger(project, from, to).await
    }

    async fn project_ledger_span(&self, project: i64) -> Result<Option<(i64, i64)>> {
        self.reads.project_ledger_span(project).await
    }

    async fn prices(&self) -> Result<Option<String>> {
        self.reads.setting(PRICES).await
    }

    async fn set_prices(&self, json: String) -> Result<()> {
        self.write(Op::SetSetting(PRICES, json)).await.map(|_| ())
    }

    async fn create_application(&self, new: crate::NewApplication) -> Result<i64> {
        self.created(Op::CreateApplication(new)).await
    }

    async fn application(&self, name: String) -> Result<Option<crate::ApplicationRow>> {
        self.reads.application(&name).await
    }

    async fn applications(&self, member: Option<i64>) -> Result<Vec<crate::ApplicationRow>> {
        self.reads.applications(member).await
    }

    async fn application_archive(&self, id: i64) -> Result<Option<Vec<u8>>> {
        self.reads.application_archive(id).await
    }

    async fn application_roots(&self, id: i64) -> Result<Vec<crate::RootRow>> {
        self.reads.application_roots(id).await
    }

    async fn application_of_instance(
        &self,
        instance: i64,
    ) -> Result<Option<(crate::ApplicationRow, String)>> {
        self.reads.application_of_instance(instance).await
    }

    async fn update_application(
        &self,
        id: i64,
        generation: i64,
        model: String,
        roots: Vec<String>,
    ) -> Result<i64> {
        self.created(Op::UpdateApplication {
            id,
            generation,
            model,
            roots,
        })
        .await
    }

    async fn set_application_root(&self, id: i64, root: String, instance: i64) -> Result<()> {
        self.write(Op::SetApplicationRoot { id, root, instance })
            .await
            .map(|_| ())
    }

    async fn report_application(&self, id: i64, root: String, report: String) -> Result<i64> {
        self.created(Op::ReportApplication { id, root, report })
            .await
    }

    async fn delete_application(&self, id: i64) -> Result<()> {
        self.write(Op::DeleteApplication(id)).await.map(|_| ())
    }

    async fn app_types(&self) -> Result<BTreeMap<String, String>> {
        Ok(match self.reads.setting(rules::APP_TYPES).await? {
            Some(text) => serde_json::from_str(&text).unwrap_or_default(),
            None => BTreeMap::new(),
        })
    }

    async fn set_app_type(&self, name: String, release: Option<String>) -> Result<()> {
        self.write(Op::SetAppType(name, release)).await.map(|_| ())
    }

    fn batch_sizes(&self) -> std::sync::Arc<grove_metrics::Histogram> {
        std::sync::Arc::clone(&self.batches)
    }

    async fn request_action(
        &self,
        instance: i64,
        name: String,
        parameters: api::Parameters,
    ) -> Result<(i64, Changed)> {
        let op = Op::RequestAction {
            instance,
            name,
            parameters,
        };
        match self.write(op).await? {
            (Answer::Created(id), changed) => Ok((id, changed)),
            (other, _) => Err(unexpected(&other)),
        }
    }

    async fn action(&self, id: i64) -> Result<Option<api::actions::Action>> {
        self.reads.action(id).await
    }

    async fn actions_of(&self, instance: i64, limit: u32) -> Result<Vec<api::actions::Action>> {
        self.reads.actions_of(instance, limit).await
    }

    async fn finish_action(
        &self,
        id: i64,
        outcome: api::actions::ActionOutcome,
    ) -> Result<Changed> {
        self.changed(Op::FinishAction(id, outcome)).await
    }

    async fn report_instance(&self, instance_id: i64, report: api::StateReport) -> Result<Changed> {
        self.changed(Op::ReportInstance(instance_id, report)).await
    }

    async fn publish(&self, instance_id: i64, parameters: api::Parameters) -> Result<Changed> {
        self.changed(Op::Publish(instance_id, parameters)).await
    }

    async fn set_children(&self, parent_id: i64, titles: Vec<String>) -> Result<Changed> {
        self.changed(Op::SetChildren(parent_id, titles)).await
    }

    async fn record_usage(&self, computer_id: i64, report: api::UsageReport) -> Result<()> {
        self.changed(Op::Usage(computer_id, report))
            .await
            .map(|_| ())
    }

    async fn usage(&self, instance_id: i64, limit: u32) -> Result<Vec<api::UsageSample>> {
        self.reads.usage(instance_id, limit).await
    }

    async fn desired_state(&self, computer_id: i64) -> Result<api::DesiredState> {
        self.reads.desired_state(computer_id).await
    }

    fn elsewhere(&self) -> broadcast::Receiver<Elsewhere> {
        self.elsewhere.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_and_skip_their_origin() {
        let changed = Changed {
            computers: vec![1, 2],
            documents: vec![3],
            applications: vec![4],
            actions: vec![5],
        };
        let sent = notices(7, &changed, true);
        assert_eq!(sent, ["7;1,2;", "7;;3", "7;;;4", "7;;;;5"]);
        let bare = notices(7, &Changed::default(), true);
        assert_eq!(bare, ["7;;;;"], "a write that changed no desired state");
        assert_eq!(parse_notice(&bare[0], 8), Some(Changed::default()));
        assert!(
            notices(7, &Changed::default(), false).is_empty(),
            "nothing written"
        );
        assert_eq!(parse_notice(&sent[0], 7), None);
        assert_eq!(
            parse_notice(&sent[0], 8),
            Some(Changed {
                computers: vec![1, 2],
                ..Changed::default()
            })
        );
        assert_eq!(
            parse_notice(&sent[1], 8),
            Some(Changed {
                documents: vec![3],
                ..Changed::default()
            })
        );
        assert_eq!(
            parse_notice(&sent[2], 8),
            Some(Changed {
                applications: vec![4],
                ..Changed::default()
            })
        );
        assert_eq!(
            parse_notice(&sent[3], 8),
            Some(Changed {
                actions: vec![5],
                ..Changed::default()
            })
        );
        assert_eq!(parse_notice("garbage", 8), None);
        let many = Changed {
            computers: (0..1000).collect(),
            ..Changed::default()
        };
        let sent = notices(1, &many, true);
        assert_eq!(sent.len(), 3);
        assert!(sent.iter().all(|n| n.len() < 8000));
    }

    /// A rule that panics fails its own request only: the batch's other mutations are
    /// applied, and the writer goes on serving.
    #[tokio::test]
    async fn a_panicking_rule_fails_its_request_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&crate::StoreConfig {
            location: crate::Location::Sqlite(dir.path().join("s.sqlite")),
            placement: grove_scheduler::Policy::Simple,
        })
        .await
        .expect("opens");
        // Sent together, so that they may share a batch.
        let (panicked, admin, user) = tokio::join!(
            db.write(Op::Panic),
            db.write(Op::EnsureAdmin(vec![1; 32])),
            db.write(Op::CreateUser("alice".to_owned(), vec![2; 32])),
        );
        assert!(panicked.is_err(), "the panicking request fails");
        assert!(matches!(admin, Ok((Answer::Created(_), _))), "{admin:?}");
        assert!(matches!(user, Ok((Answer::Created(_), _))), "{user:?}");
        let bob = db.create_user("bob".to_owned(), vec![3; 32]).await;
        assert!(bob.is_ok(), "the writer goes on: {bob:?}");
        assert!(
            db.principal_by_name("alice".to_owned())
                .await
                .expect("read")
                .is_some(),
            "alice's request, beside the panic, was applied"
        );
    }

    /// A writer on a fresh store, without its thread: the test hands it batches.
    async fn bare_writer(location: &crate::Location) -> Writer {
        let target = Target::new(location).expect("location");
        let mut conn = target.connect().await.expect("connect");
        target.migrate(&mut conn).await.expect("migrate");
        crate::tx::prepare_writer(&mut conn, target.backend)
            .await
            .expect("prepare");
        Writer {
            target,
            conn: Some(conn),
            clock: Clock::default(),
            placement: Placement {
                policy: grove_scheduler::Policy::Simple,
                dice: SeededDice::new(1),
            },
            origin: 1,
            since_vacuum: 0,
            batches: std::sync::Arc::new(grove_metrics::Histogram::new(grove_metrics::SIZES)),
        }
    }

    async fn run(writer: &mut Writer, ops: &[Op]) -> Vec<(Answer, Changed)> {
        writer
            .run_batch(ops, false)
            .await
            .expect("the batch runs")
            .expect("nothing in the batch fails")
            .into_iter()
            .map(|result| result.expect("applied"))
            .collect()
    }

    fn ask(title: &str, computer: Option<&str>) -> Op {
        Op::Request(
            1,
            Requester::User(1),
            api::InstanceRequest {
                title: title.to_owned(),
                software_release: "https://sr/x.cfg".to_owned(),
                software_type: "default".to_owned(),
                parameters: [("p".to_owned(), format!("'{title}\"$1").into())]
                    .into_iter()
                    .collect(),
                state: api::RequestedState::Started,
                shared: false,
                sla: computer
                    .map(|c| [("computer_guid".to_owned(), c.to_owned())].into())
                    .unwrap_or_default(),
                project: None,
            },
        )
    }

    /// Where each request went: (title, computer, partition), and what changed.
    fn placements(answers: &[(Answer, Changed)]) -> Vec<(String, String, String, Vec<i64>)> {
        answers
            .iter()
            .map(|(answer, changed)| match answer {
                Answer::Instance(i) => (
                    i.title.clone(),
                    i.computer.clone().unwrap_or_default(),
                    i.partition.clone().unwrap_or_default(),
                    changed.computers.clone(),
                ),
                other => panic!("not an instance: {other:?}"),
            })
            .collect()
    }

    /// Users' requests that arrive together are placed in one go (one statement on
    /// PostgreSQL): each as if it came after the one before, a title asked twice is one
    /// instance, and the counters agree with the partitions taken, on both backends.
    #[tokio::test]
    async fn requests_placed_together_land_as_one_after_the_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let batch = [
            ask("a", None),
            ask("b", None),
            ask("a", None),
            ask("c", Some("C2")),
            ask("d", None),
            ask("e", None),
            ask("f", None),
        ];
        let mut seen = Vec::new();
        for (n, location) in [
            crate::Location::Sqlite(dir.path().join("one.sqlite")),
            crate::Location::Sqlite(dir.path().join("together.sqlite")),
            crate::scratch::database()
                .await
                .expect("this test needs PostgreSQL"),
            crate::scratch::database()
                .await
                .expect("this test needs PostgreSQL"),
        ]
        .into_iter()
        .enumerate()
        {
            let mut writer = bare_writer(&location).await;
            let mut setup = vec![Op::EnsureAdmin(vec![1; 32])];
            for (c, computer) in ["C1", "C2"].into_iter().enumerate() {
                let id = i64::try_from(c).expect("small") + 1;
                setup.push(Op::CreateComputer(
                    computer.to_owned(),
                    1,
                    vec![2; 32],
                    BTreeMap::new(),
                ));
                setup.push(Op::DeclarePartitions(
                    id,
                    (0..3)
                        .map(|i| api::PartitionDeclaration {
                            reference: format!("slappart{i}"),
                            addresses: vec![],
                        })
                        .collect(),
                ));
                setup.push(Op::Supply(
                    id,
                    api::Supply {
                        software_release: "https://sr/x.cfg".to_owned(),
                        state: api::SupplyState::Available,
                        project: None,
                    },
                ));
            }
            run(&mut writer, &setup).await;
            // Even: one request a batch; odd: all in one batch.
            let answers = if n % 2 == 0 {
                let mut answers = Vec::new();
                for op in &batch {
                    answers.extend(run(&mut writer, std::slice::from_ref(op)).await);
                }
                answers
            } else {
                run(&mut writer, &batch).await
            };
            let got = placements(&answers);
            let (Answer::Instance(a), Answer::Instance(again)) = (&answers[0].0, &answers[2].0)
            else {
                unreachable!("checked above")
            };
            assert_eq!(
                a.id, again.id,
                "{location}: a title asked twice is one instance"
            );
            assert_eq!(
                a.parameters.get("p").and_then(|v| v.as_str()),
                Some("'a\"$1"),
                "{location}: parameters kept as given"
            );
            seen.push((location.to_string(), got));
            // Six partitions, six instances: the next finds none, so the counters agree.
            let full = writer
                .run_batch(&[ask("g", None)], false)
                .await
                .expect("runs");
            assert!(full.is_none(), "{location}: no room for a seventh");
        }
        let expected: Vec<(String, String, String, Vec<i64>)> = [
            ("a", "C1", "slappart0", vec![1]),
            ("b", "C2", "slappart0", vec![2]),
            ("a", "C1", "slappart0", vec![]),
            ("c", "C2", "slappart1", vec![2]),
            ("d", "C1", "slappart1", vec![1]),
            ("e", "C1", "slappart2", vec![1]),
            ("f", "C2", "slappart2", vec![2]),
        ]
        .into_iter()
        .map(|(t, c, p, ch)| (t.to_owned(), c.to_owned(), p.to_owned(), ch))
        .collect();
        for (location, got) in &seen {
            assert_eq!(got, &expected, "{location}");
        }
    }
}
