//! Native supervision of services, as the node agent runs them in partitions.
//!
//! Each service runs in its own process group (optionally as a partition's user), with
//! stdout and stderr appended to a log file it holds itself (so it keeps running, and
//! logging, when the supervisor dies), copied aside and emptied when it grows too large. A service that exits
//! is started again after a delay that doubles from 1 s up to 60 s, and returns to 1 s once a
//! run has lasted a minute. Stopping sends SIGTERM to the whole group, then SIGKILL after a
//! grace period, so that no grandchild outlives its service.
//!
//! One task per service owns its process; the [`Supervisor`] talks to it over a channel and
//! reads its status from a shared cell.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

mod process;
mod record;

use process::Proc;
pub use process::{AdoptError, start_time};
pub use record::{Record, Records};

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// Unique within the supervisor, e.g. `slappart3/redis`.
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub cwd: PathBuf,
    /// Recorded as pairs: JSON keys must be text, these may not be.
    #[serde(with = "pairs")]
    pub env: BTreeMap<OsString, OsString>,
    /// Where stdout and stderr are appended.
    pub log: LogFile,
    /// Run as this uid and gid (the partition's user, when the agent runs as root).
    pub user: Option<(u32, u32)>,
    /// What the caller considers this service's version (the agent: a digest of its
    /// launcher). Part of the spec, so that a changed launcher is a different service.
    pub revision: String,
    /// Control groups the process joins before it runs: their `cgroup.procs` files (the
    /// partition's size, enforced by the kernel).
    #[serde(default)]
    pub cgroups: Vec<PathBuf>,
}

mod pairs {
    use std::collections::BTreeMap;
    use std::ffi::OsString;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(
        map: &BTreeMap<OsString, OsString>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        map.iter().collect::<Vec<_>>().serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<OsString, OsString>, D::Error> {
        Ok(Vec::<(OsString, OsString)>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

/// A service's log: a path below a directory that the service's user may control (its
/// partition). The supervisor, which may be root, opens and rotates it without following
/// a link or leaving that directory ([`grove_confine::Tree`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogFile {
    pub root: PathBuf,
    pub relative: PathBuf,
}

impl LogFile {
    pub fn path(&self) -> PathBuf {
        self.root.join(&self.relative)
    }
}

/// How services are restarted, stopped and logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// A run this long resets the backoff.
    pub stable_after: Duration,
    /// How long SIGTERM has before SIGKILL.
    pub stop_timeout: Duration,
    /// A log file larger than this is copied to `<log>.1` and emptied.
    pub max_log_bytes: u64,
    /// How often log sizes are checked.
    pub log_check: Duration,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            stable_after: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(10),
            max_log_bytes: 10 * 1024 * 1024,
            log_check: Duration::from_secs(10),
        }
    }
}

/// Where a service is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Running,
    /// Exited; waiting to be started again.
    Backoff,
    /// Could not be started (missing program, permission); retried with backoff.
    Failed,
    Stopped,
}

/// A service's status, as `grove node status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub name: String,
    pub state: State,
    pub pid: Option<u32>,
    /// When the current run started.
    pub since: Option<SystemTime>,
    pub restarts: u32,
    /// The last exit status or start error.
    pub last_exit: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("a service named {0} is already supervised")]
    Duplicate(String),
    #[error("no service named {0}")]
    Unknown(String),
    #[error("cannot open the log: {0}")]
    Log(#[from] grove_confine::ConfineError),
    #[error("cannot adopt {name} (pid {pid}): {source}")]
    Adopt {
        name: String,
        pid: u32,
        source: AdoptError,
    },
}

/// How a service's task begins: with its log opened for a first start, or with a process
/// adopted from a previous supervisor.
enum Start {
    Log(std::fs::File),
    Adopted(Proc),
}

/// What a service's task is told.
#[derive(Debug)]
enum Order {
    /// Stop the process (its whole group) and forget its record.
    Stop(oneshot::Sender<()>),
    /// Leave the process running, unsupervised, with its record, for a later supervisor
    /// to adopt.
    Detach(oneshot::Sender<()>),
}

struct Entry {
    spec: ServiceSpec,
    status: Arc<Mutex<Status>>,
    orders: mpsc::Sender<Order>,
}

/// Supervises services. Dropping it leaves the processes running: call
/// [`Supervisor::stop_all`] or [`Supervisor::detach_all`].
#[derive(Default)]
pub struct Supervisor {
    policy: Policy,
    services: BTreeMap<String, Entry>,
    /// Where each running service's pid is recorded, so that another supervisor (the next
    /// agent) can adopt it.
    records: Option<Records>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("services", &self.services.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Supervisor {
    pub fn new(policy: Policy) -> Supervisor {
        Supervisor {
            policy,
            services: BTreeMap::new(),
            records: None,
        }
    }

    /// Records each running service's pid in `records`, for a later supervisor to adopt.
    pub fn with_records(mut self, records: Records) -> Supervisor {
        self.records = Some(records);
        self
    }

    /// Starts supervising a service (it starts at once).
    pub fn start(&mut self, spec: ServiceSpec) -> Result<(), SupervisorError> {
        if self.services.contains_key(&spec.name) {
            return Err(SupervisorError::Duplicate(spec.name));
        }
        // Refused at once when the partition planted a link or a FIFO there; otherwise
        // the first run gets this very file.
        let log = open_log(&spec)?;
        self.launch(spec, Start::Log(log));
        Ok(())
    }

    /// Takes over a service that a previous supervisor started and left running: the
    /// process `record.pid`, if it is still the one recorded (same start time). It is
    /// then supervised as if started here: restarted when it exits, stopped on demand.
    pub fn adopt(&mut self, record: &Record) -> Result<(), SupervisorError> {
        let spec = record.spec.clone();
        if self.services.contains_key(&spec.name) {
            return Err(SupervisorError::Duplicate(spec.name));
        }
        let adopted = Proc::adopt(record.pid, record.start_time).map_err(|source| {
            SupervisorError::Adopt {
                name: spec.name.clone(),
                pid: record.pid,
                source,
            }
        })?;
        tracing::info!(service = %spec.name, pid = record.pid, "service adopted");
        self.launch(spec, Start::Adopted(adopted));
        Ok(())
    }

    fn launch(&mut self, spec: ServiceSpec, start: Start) {
        let adopted = match &start {
            Start::Adopted(process) => Some(process),
            Start::Log(_) => None,
        };
        // An adopted process is running already: say so from the start.
        let status = Arc::new(Mutex::new(Status {
            name: spec.name.clone(),
            state: if adopted.is_some() {
                State::Running
            } else {
                State::Backoff
            },
            pid: adopted.and_then(Proc::pid),
            since: adopted.map(Proc::since),
            restarts: 0,
            last_exit: None,
        }));
        let (orders, orders_rx) = mpsc::channel(1);
        let task = Task {
            spec: spec.clone(),
            policy: self.policy,
            status: Arc::clone(&status),
            orders: orders_rx,
            records: self.records.clone(),
        };
        tokio::spawn(task.run(start));
        self.services.insert(
            spec.name.clone(),
            Entry {
                spec,
                status,
                orders,
            },
        );
    }

    /// Whether a service with this name is supervised with this exact spec.
    pub fn runs(&self, spec: &ServiceSpec) -> bool {
        self.services
            .get(&spec.name)
            .is_some_and(|e| e.spec == *spec)
    }

    /// Stops a service (SIGTERM to its group, SIGKILL after the grace period) and forgets it.
    pub async fn stop(&mut self, name: &str) -> Result<(), SupervisorError> {
        let entry = self
            .services
            .remove(name)
            .ok_or_else(|| SupervisorError::Unknown(name.to_owned()))?;
        let (done, wait) = oneshot::channel();
        if entry.orders.send(Order::Stop(done)).await.is_ok() {
            let _ = wait.await;
        }
        Ok(())
    }

    /// Stops every service, all at once.
    pub async fn stop_all(&mut self) {
        self.order_all(Order::Stop).await;
    }

    /// Stops supervising every service but leaves them running, each with its record: an
    /// agent that restarts or is upgraded adopts them.
    pub async fn detach_all(&mut self) {
        self.order_all(Order::Detach).await;
    }

    async fn order_all(&mut self, order: fn(oneshot::Sender<()>) -> Order) {
        let entries = std::mem::take(&mut self.services);
        let mut waits = Vec::new();
        for (_, entry) in entries {
            let (done, wait) = oneshot::channel();
            if entry.orders.send(order(done)).await.is_ok() {
                waits.push(wait);
            }
        }
        for wait in waits {
            let _ = wait.await;
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.services.keys().cloned().collect()
    }

    /// One service's status.
    pub fn status_of(&self, name: &str) -> Option<Status> {
        self.services.get(name).map(|e| lock(&e.status).clone())
    }

    pub fn status(&self) -> Vec<Status> {
        self.services
            .values()
            .map(|e| lock(&e.status).clone())
            .collect()
    }
}

/// The next delay: doubled, capped.
fn next_backoff(current: Duration, policy: &Policy) -> Duration {
    (current * 2).min(policy.max_backoff)
}

fn command(spec: &ServiceSpec) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(&spec.program);
    command
        .args(&spec.args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(&spec.env)
        .stdin(Stdio::null())
        // Its own process group, so that signals reach everything it starts.
        .process_group(0)
        .kill_on_drop(false);
    if let Some((uid, gid)) = spec.user {
        command.uid(uid).gid(gid);
    }
    command
}

/// Makes the process join `cgroups` between fork and exec, so that nothing it runs is
/// ever outside them. The files are opened here, by the supervisor (root): the kernel
/// checks the opener's rights, and the child writes after it took the service's user.
fn join_cgroups(command: &mut tokio::process::Command, cgroups: &[PathBuf]) -> Result<(), String> {
    if cgroups.is_empty() {
        return Ok(());
    }
    let files: Vec<std::fs::File> = cgroups
        .iter()
        .map(|path| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| format!("cannot join the control group {}: {e}", path.display()))
        })
        .collect::<Result<_, _>>()?;
    let join = move || -> std::io::Result<()> {
        for file in &files {
            rustix::io::write(file, b"0")?;
        }
        Ok(())
    };
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: it makes one write(2) per descriptor opened
    // before the fork, and allocates nothing.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(join);
    }
    Ok(())
}

/// One service's task: it owns the process.
struct Task {
    spec: ServiceSpec,
    policy: Policy,
    status: Arc<Mutex<Status>>,
    orders: mpsc::Receiver<Order>,
    records: Option<Records>,
}

impl Task {
    fn set(&self, change: impl FnOnce(&mut Status)) {
        change(&mut lock(&self.status));
    }

    /// Starts the process, its log (opened by name, confined, unless given) as its stdout
    /// and stderr.
    fn spawn(&self, log: Option<std::fs::File>) -> Result<Proc, String> {
        let log = match log {
            Some(log) => log,
            None => open_log(&self.spec).map_err(|e| e.to_string())?,
        };
        let mut command = command(&self.spec);
        join_cgroups(&mut command, &self.spec.cgroups)?;
        let child = log
            .try_clone()
            .and_then(|out| {
                command.stdout(out).stderr(log);
                command.spawn()
            })
            .map_err(|e| format!("cannot start {}: {e}", self.spec.program.display()))?;
        Ok(Proc::Child(child))
    }

    fn record(&self, process: &Proc) {
        let (Some(records), Some(pid)) = (&self.records, process.pid()) else {
            return;
        };
        let Some(start_time) = start_time(pid) else {
            return;
        };
        let record = Record {
            spec: self.spec.clone(),
            pid,
            start_time,
        };
        if let Err(e) = records.write(&record) {
            tracing::warn!(service = %self.spec.name, error = %e, "cannot record the service's pid");
        }
    }

    fn forget(&self) {
        if let Some(records) = &self.records
            && let Err(e) = records.remove(&self.spec.name)
        {
            tracing::warn!(service = %self.spec.name, error = %e, "cannot remove the service's record");
        }
    }

    /// Waits out a delay; `Err` with the order that came meanwhile, or with none when
    /// the supervisor is gone.
    async fn pause(&mut self, delay: std::time::Duration) -> Result<(), Option<Order>> {
        tokio::select! {
            () = tokio::time::sleep(delay) => Ok(()),
            order = self.orders.recv() => Err(order),
        }
    }

    /// Ends the task without a process running: told to, or because the supervisor is
    /// gone (`None`, as a detach with no one to answer).
    fn finish(&self, order: Option<Order>) {
        self.set(|s| {
            s.state = State::Stopped;
            s.pid = None;
        });
        match order {
            Some(Order::Stop(done)) => {
                self.forget();
                let _ = done.send(());
            }
            Some(Order::Detach(done)) => {
                let _ = done.send(());
            }
            None => {}
        }
    }

    /// One service's life: start (or adopt), wait, restart with backoff, until told to
    /// stop or to detach.
    async fn run(mut self, start: Start) {
        let policy = self.policy;
        let mut backoff = policy.first_backoff;
        let mut start = Some(start);
        loop {
            let started = Instant::now();
            // The service writes its log itself (stdout and stderr, in order): it goes on
            // logging, and running, while the supervisor is away.
            let spawned = match start.take() {
                Some(Start::Adopted(process)) => Ok(process),
                Some(Start::Log(log)) => self.spawn(Some(log)),
                None => self.spawn(None),
            };
            let mut process = match spawned {
                Ok(process) => process,
                Err(e) => {
                    tracing::warn!(service = %self.spec.name, error = %e, "cannot start service");
                    self.set(|s| {
                        s.state = State::Failed;
                        s.pid = None;
                        s.last_exit = Some(e);
                    });
                    if let Err(order) = self.pause(backoff).await {
                        return self.finish(order);
                    }
                    backoff = next_backoff(backoff, &policy);
                    self.set(|s| s.restarts += 1);
                    continue;
                }
            };
            let pid = process.pid();
            self.record(&process);
            let since = process.since();
            self.set(|s| {
                s.state = State::Running;
                s.pid = pid;
                s.since = Some(since);
            });
            tracing::info!(service = %self.spec.name, pid, "service running");
            let mut log_check = tokio::time::interval(policy.log_check);
            let ended = loop {
                tokio::select! {
                    exit = process.wait() => break Ok(exit),
                    order = self.orders.recv() => break Err(order),
                    _ = log_check.tick() => {
                        if let Err(e) = rotate_if_large(&self.spec, policy.max_log_bytes) {
                            tracing::warn!(service = %self.spec.name, error = %e, "cannot rotate a service log");
                        }
                    }
                }
            };
            match ended {
                Ok(text) => {
                    // Whatever it left behind in its group goes with it.
                    if let Some(pid) = pid {
                        signal_group(pid, Signal::SIGKILL);
                    }
                    if started.elapsed() >= policy.stable_after {
                        backoff = policy.first_backoff;
                    }
                    tracing::warn!(service = %self.spec.name, exit = %text, delay = ?backoff, "service exited; restarting");
                    self.set(|s| {
                        s.state = State::Backoff;
                        s.pid = None;
                        s.last_exit = Some(text);
                    });
                    if let Err(order) = self.pause(backoff).await {
                        return self.finish(order);
                    }
                    backoff = next_backoff(backoff, &policy);
                    self.set(|s| s.restarts += 1);
                }
                Err(Some(Order::Stop(done))) => {
                    process.stop(policy.stop_timeout, &self.spec.name).await;
                    tracing::info!(service = %self.spec.name, "service stopped");
                    return self.finish(Some(Order::Stop(done)));
                }
                // Told to detach, or the supervisor is gone: the process stays, with its
                // record, for the next supervisor.
                Err(detach) => {
                    tracing::info!(service = %self.spec.name, pid, "service left running");
                    self.set(|s| s.state = State::Stopped);
                    if let Some(Order::Detach(done)) = detach {
                        let _ = done.send(());
                    }
                    return;
                }
            }
        }
    }
}

pub(crate) fn signal_group(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        // The group may be gone already: that is the goal.
        let _ = killpg(Pid::from_raw(pid), signal);
    }
}

/// The log's tree: the service's own directory, given to its user.
fn log_tree(spec: &ServiceSpec) -> Result<grove_confine::Tree, grove_confine::ConfineError> {
    let owner = spec
        .user
        .map(|(uid, gid)| grove_confine::Owner { uid, gid });
    grove_confine::Tree::open(&spec.log.root, owner)
}

/// Opens the log for appending, creating its directory and itself (for the service's user)
/// when missing.
fn open_log(spec: &ServiceSpec) -> Result<std::fs::File, grove_confine::ConfineError> {
    let tree = log_tree(spec)?;
    let (dir, name) = split(&spec.log.relative);
    let dir = match dir {
        Some(dir) => tree.create_dir_all(dir, 0o750)?,
        None => tree,
    };
    dir.append(name, 0o640)
}

fn split(relative: &Path) -> (Option<&Path>, &Path) {
    let name = relative.file_name().map_or(relative, Path::new);
    let dir = relative.parent().filter(|p| !p.as_os_str().is_empty());
    (dir, name)
}

/// Copies a log grown past `max_bytes` to `<log>.1` and empties it. The service keeps its
/// descriptor (opened for appending), so its next write lands at the start of the emptied
/// file; what it writes between the copy and the truncation is lost.
fn rotate_if_large(spec: &ServiceSpec, max_bytes: u64) -> Result<(), grove_confine::ConfineError> {
    let tree = log_tree(spec)?;
    let log = &spec.log.relative;
    let size = match tree.open_file(log) {
        Ok(file) => file.metadata().map_or(0, |m| m.len()),
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    };
    if size <= max_bytes {
        return Ok(());
    }
    let mut rotated = log.as_os_str().to_owned();
    rotated.push(".1");
    tree.copy(log, Path::new(&rotated), max_bytes.saturating_mul(2), 0o640)?;
    tree.truncate(log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = Policy::default();
        let mut delay = policy.first_backoff;
        let mut seen = vec![delay.as_secs()];
        for _ in 0..7 {
            delay = next_backoff(delay, &policy);
            seen.push(delay.as_secs());
        }
        assert_eq!(seen, vec![1, 2, 4, 8, 16, 32, 60, 60]);
    }
}
