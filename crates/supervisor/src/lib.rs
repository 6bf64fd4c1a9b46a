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
use tokio::sync::{mpsc, oneshot};

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Unique within the supervisor, e.g. `slappart3/redis`.
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub cwd: PathBuf,
    pub env: BTreeMap<OsString, OsString>,
    /// Where stdout and stderr are appended.
    pub log: LogFile,
    /// Run as this uid and gid (the partition's user, when the agent runs as root).
    pub user: Option<(u32, u32)>,
}

/// A service's log: a path below a directory that the service's user may control (its
/// partition). The supervisor, which may be root, opens and rotates it without following
/// a link or leaving that directory ([`grove_confine::Tree`]).
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

struct Entry {
    spec: ServiceSpec,
    status: Arc<Mutex<Status>>,
    stop: mpsc::Sender<oneshot::Sender<()>>,
}

/// Supervises services. Dropping it leaves the processes running: call [`Supervisor::stop_all`].
#[derive(Default)]
pub struct Supervisor {
    policy: Policy,
    services: BTreeMap<String, Entry>,
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
        }
    }

    /// Starts supervising a service (it starts at once).
    pub fn start(&mut self, spec: ServiceSpec) -> Result<(), SupervisorError> {
        if self.services.contains_key(&spec.name) {
            return Err(SupervisorError::Duplicate(spec.name));
        }
        // Refused at once when the partition planted a link or a FIFO there.
        drop(open_log(&spec)?);
        let status = Arc::new(Mutex::new(Status {
            name: spec.name.clone(),
            state: State::Backoff,
            pid: None,
            since: None,
            restarts: 0,
            last_exit: None,
        }));
        let (stop, stop_rx) = mpsc::channel(1);
        tokio::spawn(run_service(
            spec.clone(),
            self.policy,
            Arc::clone(&status),
            stop_rx,
        ));
        self.services
            .insert(spec.name.clone(), Entry { spec, status, stop });
        Ok(())
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
        if entry.stop.send(done).await.is_ok() {
            let _ = wait.await;
        }
        Ok(())
    }

    /// Stops every service, all at once.
    pub async fn stop_all(&mut self) {
        let entries = std::mem::take(&mut self.services);
        let mut waits = Vec::new();
        for (_, entry) in entries {
            let (done, wait) = oneshot::channel();
            if entry.stop.send(done).await.is_ok() {
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

/// One service's life: start, wait, restart with backoff, until told to stop.
async fn run_service(
    spec: ServiceSpec,
    policy: Policy,
    status: Arc<Mutex<Status>>,
    mut stop: mpsc::Receiver<oneshot::Sender<()>>,
) {
    let mut backoff = policy.first_backoff;
    loop {
        let started = Instant::now();
        // The service writes its log itself (stdout and stderr, in order): it goes on
        // logging, and running, while the supervisor is away.
        let child = open_log(&spec)
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|log| {
                let mut command = command(&spec);
                command.stdout(log.try_clone()?).stderr(log);
                command.spawn()
            });
        let mut child = match child {
            Ok(child) => child,
            Err(e) => {
                tracing::warn!(service = %spec.name, error = %e, "cannot start service");
                {
                    let mut s = lock(&status);
                    s.state = State::Failed;
                    s.pid = None;
                    s.last_exit = Some(format!("cannot start {}: {e}", spec.program.display()));
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    done = stop.recv() => {
                        lock(&status).state = State::Stopped;
                        if let Some(done) = done { let _ = done.send(()); }
                        return;
                    }
                }
                backoff = next_backoff(backoff, &policy);
                lock(&status).restarts += 1;
                continue;
            }
        };
        let pid = child.id();
        {
            let mut s = lock(&status);
            s.state = State::Running;
            s.pid = pid;
            s.since = Some(SystemTime::now());
        }
        tracing::info!(service = %spec.name, pid, "service started");
        let mut log_check = tokio::time::interval(policy.log_check);
        let ended = loop {
            tokio::select! {
                exit = child.wait() => break Ended::Exited(exit),
                done = stop.recv() => break Ended::Stop(done),
                _ = log_check.tick() => {
                    if let Err(e) = rotate_if_large(&spec, policy.max_log_bytes) {
                        tracing::warn!(service = %spec.name, error = %e, "cannot rotate a service log");
                    }
                }
            }
        };
        match ended {
            Ended::Exited(exit) => {
                let text = match exit {
                    Ok(code) => code.to_string(),
                    Err(e) => format!("cannot wait: {e}"),
                };
                // Whatever it left behind in its group goes with it.
                if let Some(pid) = pid {
                    signal_group(pid, Signal::SIGKILL);
                }
                if started.elapsed() >= policy.stable_after {
                    backoff = policy.first_backoff;
                }
                tracing::warn!(service = %spec.name, exit = %text, delay = ?backoff, "service exited; restarting");
                {
                    let mut s = lock(&status);
                    s.state = State::Backoff;
                    s.pid = None;
                    s.last_exit = Some(text);
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    done = stop.recv() => {
                        lock(&status).state = State::Stopped;
                        if let Some(done) = done { let _ = done.send(()); }
                        return;
                    }
                }
                backoff = next_backoff(backoff, &policy);
                lock(&status).restarts += 1;
            }
            Ended::Stop(done) => {
                if let Some(pid) = pid {
                    signal_group(pid, Signal::SIGTERM);
                    if tokio::time::timeout(policy.stop_timeout, child.wait())
                        .await
                        .is_err()
                    {
                        tracing::warn!(service = %spec.name, "service ignored SIGTERM; killing it");
                    }
                    signal_group(pid, Signal::SIGKILL);
                    let _ = child.wait().await;
                }
                {
                    let mut s = lock(&status);
                    s.state = State::Stopped;
                    s.pid = None;
                }
                tracing::info!(service = %spec.name, "service stopped");
                if let Some(done) = done {
                    let _ = done.send(());
                }
                return;
            }
        }
    }
}

fn signal_group(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        // The group may be gone already: that is the goal.
        let _ = killpg(Pid::from_raw(pid), signal);
    }
}

/// How a service's run ended.
enum Ended {
    Exited(std::io::Result<std::process::ExitStatus>),
    Stop(Option<oneshot::Sender<()>>),
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
