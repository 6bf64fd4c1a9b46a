//! The node agent: turns the master's desired state for this computer into installed
//! software and running, supervised instances.
//!
//! One task follows the master's change stream (a long poll that returns as soon as the
//! desired state changes) and reconciles after each answer: software first (bounded
//! parallel builds), then every partition that is due (its timestamp changed, a retry is
//! due, or the periodicity passed). Profile runs, which block, go to blocking threads; as
//! root with isolation they run in `grove node run-instance` as the partition's user.
//! When the master cannot be reached nothing is stopped: services keep running and the
//! agent catches up when the master answers again.

pub mod client;
pub mod config;
pub mod format;
pub mod helper;
pub mod instance;
pub mod os;
mod procfs;
pub mod software;
mod stale;
mod state;
mod status;
mod usage;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use grove_api as api;
use grove_fetch::Fetcher;
use grove_recipes::Registry;
use grove_supervisor::{Policy, Record, ServiceSpec, Supervisor};

pub use client::{Client, ClientError};
pub use config::Config;
pub use format::Slot;
pub use os::{Host, Os};
pub use status::{ServiceStatus, query_status};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("the partition count cannot shrink from {before} to {now}")]
    Shrink { before: u32, now: u32 },
    #[error("{message}")]
    Os { message: String },
    #[error(transparent)]
    Master(#[from] ClientError),
    #[error("{0}")]
    Failed(String),
}

/// What the embedding program decides, beside the configuration file.
#[derive(Debug, Clone, Default)]
pub struct AgentOptions {
    /// The `grove` binary, to run instance profiles as partition users (`grove node
    /// run-instance`); needed only when partitions are isolated.
    pub runner: Option<PathBuf>,
    pub policy: Policy,
    /// When the agent stops, leave the services running (for the next agent to adopt)
    /// instead of stopping them: what `grove node` does, so that an agent restart or
    /// upgrade never interrupts a service.
    pub keep_services: bool,
}

/// A retry of something that failed: when, and the delay after that.
#[derive(Debug, Clone, Copy)]
struct Retry {
    at: Instant,
    backoff: Duration,
}

impl Retry {
    fn after(previous: Option<Retry>, first: Duration, max: Duration) -> Retry {
        let backoff = previous.map_or(first, |r| (r.backoff * 2).min(max));
        Retry {
            at: Instant::now() + backoff,
            backoff,
        }
    }
}

/// What the agent knows it did with a partition.
#[derive(Debug, Clone)]
struct Done {
    instance: i64,
    timestamp: i64,
    state: api::RequestedState,
    at: Instant,
    /// How often it is processed again when nothing changes (none: never).
    periodicity: Option<Duration>,
    /// Set when the last processing failed.
    retry: Option<Retry>,
}

#[derive(Debug, Default)]
struct Memory {
    /// The last desired state the master sent.
    desired: Option<api::DesiredState>,
    /// Software releases that failed to build, with their next attempt.
    software_retry: HashMap<String, Retry>,
    /// Software states reported since the desired state last said otherwise.
    software_reported: HashMap<String, api::SoftwareState>,
    partitions: HashMap<String, Done>,
    /// Services a previous agent left running, not supervised yet: each is adopted when
    /// its partition is deployed with the same service, stopped otherwise.
    adoptable: HashMap<String, Record>,
    /// What was deployed successfully, per partition (also on disk).
    deployed: HashMap<String, state::Deployed>,
    /// Whether the master was unreachable at the last call (to log outages once).
    offline: bool,
    /// Whether the master has answered since the agent started.
    reached: bool,
    /// Work under way (`software <url>`, `partition <reference>`): not started twice.
    busy: HashSet<String>,
}

impl Memory {
    /// Puts off the next attempt on a software release, a little longer each time.
    fn delay_software(&mut self, url: &str, first: Duration, max: Duration) {
        let previous = self.software_retry.get(url).copied();
        self.software_retry
            .insert(url.to_owned(), Retry::after(previous, first, max));
    }
}

struct Shared {
    config: Config,
    options: AgentOptions,
    client: Client,
    fetcher: Fetcher,
    registry: Registry,
    os: Arc<dyn Os>,
    slots: Mutex<Vec<Slot>>,
    /// Who builds software releases, when running as root with isolation.
    build_user: Mutex<Option<(u32, u32)>>,
    supervisor: tokio::sync::Mutex<Supervisor>,
    memory: Mutex<Memory>,
    state: state::State,
    /// Wakes the main loop when a piece of work ends (what it changed may make more due).
    wake: tokio::sync::Notify,
    /// Bounds the software builds running at once.
    builds: tokio::sync::Semaphore,
}

/// The agent. Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct Agent {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("computer", &self.shared.config.computer)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs a blocking closure on the blocking pool; a panic there becomes an error.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(format!("internal error: {e}")))
}

/// How long promises may fail after their services were started, before it counts.
const PROMISE_GRACE: Duration = Duration::from_secs(3);
/// A long poll under way.
type Poll = tokio::task::JoinHandle<Result<api::DesiredState, ClientError>>;

/// The promises could not be run at all: that is a failure too, never a pass.
fn checker_failed(message: String) -> Vec<instance::PromiseFailure> {
    vec![instance::PromiseFailure {
        name: "checker".to_owned(),
        message,
    }]
}

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);
const SOFTWARE_FIRST_RETRY: Duration = Duration::from_secs(10);
const SOFTWARE_MAX_RETRY: Duration = Duration::from_secs(600);
/// How much of a failing build's message goes to the master.
const ERROR_TAIL: usize = 4000;

fn tail(text: &str) -> String {
    if text.len() <= ERROR_TAIL {
        return text.to_owned();
    }
    let mut start = text.len() - ERROR_TAIL;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &text[start..])
}

impl Agent {
    pub fn new(config: Config, options: AgentOptions, os: Arc<dyn Os>) -> Agent {
        let client = Client::new(&config.master_url, &config.token);
        let policy = options.policy;
        let state = state::State::new(&config.instance_root);
        Agent {
            shared: Arc::new(Shared {
                client,
                options,
                fetcher: Fetcher::new(Duration::from_secs(60)),
                registry: Registry::builtin(),
                os,
                slots: Mutex::new(Vec::new()),
                build_user: Mutex::new(None),
                supervisor: tokio::sync::Mutex::new(
                    Supervisor::new(policy).with_records(state.records()),
                ),
                memory: Mutex::new(Memory::default()),
                state,
                wake: tokio::sync::Notify::new(),
                builds: tokio::sync::Semaphore::new(config.parallel_builds),
                config,
            }),
        }
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Formats the partitions and declares them to the master.
    pub async fn format(&self) -> Result<Vec<Slot>, NodeError> {
        let slots = self.format_here().await?;
        self.declare().await?;
        Ok(slots)
    }

    /// Formats the partitions and makes the build user; needs no master.
    async fn format_here(&self) -> Result<Vec<Slot>, NodeError> {
        let shared = Arc::clone(&self.shared);
        let slots = tokio::task::spawn_blocking(move || -> Result<Vec<Slot>, NodeError> {
            let slots = format::format(&shared.config, shared.os.as_ref())?;
            *lock(&shared.build_user) = format::build_user(&shared.config, shared.os.as_ref())?;
            Ok(slots)
        })
        .await
        .map_err(|e| NodeError::Failed(e.to_string()))??;
        *lock(&self.shared.slots) = slots.clone();
        Ok(slots)
    }

    /// Declares the formatted partitions to the master.
    async fn declare(&self) -> Result<(), NodeError> {
        let declaration: Vec<api::PartitionDeclaration> = lock(&self.shared.slots)
            .iter()
            .map(|s| api::PartitionDeclaration {
                reference: s.reference.clone(),
                addresses: s.addresses.clone(),
            })
            .collect();
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            shared
                .client
                .declare_partitions(&shared.config.computer, &declaration)
        })
        .await
        .map_err(|e| NodeError::Failed(e.to_string()))??;
        Ok(())
    }

    /// Declares the partitions, again and again while the master cannot be reached.
    async fn declare_until_done(self) {
        let mut delay = FIRST_RETRY;
        loop {
            match self.declare().await {
                Ok(()) => return,
                Err(e) => tracing::warn!(error = %e, "cannot declare the partitions yet"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_RETRY);
        }
    }

    /// Asks the master for the desired state (newer than what the agent has, waiting up
    /// to `wait`), and remembers it. An unreachable master is not an error here: the last
    /// known state stays.
    async fn refresh(&self, wait: Duration) -> Result<bool, NodeError> {
        let answer = self
            .poll(wait)
            .await
            .map_err(|e| NodeError::Failed(e.to_string()))?;
        self.accept(answer)
    }

    /// One long poll of the change stream, on a blocking thread.
    fn poll(&self, wait: Duration) -> Poll {
        let after = lock(&self.shared.memory)
            .desired
            .as_ref()
            .map(|d| d.revision);
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            shared.client.desired(&shared.config.computer, after, wait)
        })
    }

    /// Takes in what a poll answered.
    fn accept(&self, answer: Result<api::DesiredState, ClientError>) -> Result<bool, NodeError> {
        let mut memory = lock(&self.shared.memory);
        match answer {
            Ok(desired) => {
                memory.reached = true;
                if memory.offline {
                    tracing::info!("the master answers again");
                    memory.offline = false;
                }
                let newer = memory
                    .desired
                    .as_ref()
                    .is_none_or(|d| d.revision != desired.revision);
                if newer {
                    memory.software_reported.clear();
                    self.shared.state.keep_desired(&desired);
                }
                memory.desired = Some(desired);
                Ok(newer)
            }
            Err(ClientError::Unreachable { url, message }) => {
                if !memory.offline {
                    tracing::warn!(%url, %message, "the master is unreachable; services keep running");
                    memory.offline = true;
                }
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Runs the daemon until `shutdown` completes, then stops every service.
    pub async fn run(
        &self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), NodeError> {
        tokio::pin!(shutdown);
        // Everything here works without the master: services come back after a reboot
        // while it is away, from the last desired state kept on disk.
        self.format_here().await?;
        self.recall();
        let declare = tokio::spawn(self.clone().declare_until_done());
        self.find_leftovers().await;
        let status = status::serve(self.clone())?;
        let usage = tokio::spawn(usage::report_every(self.clone()));
        let health = tokio::spawn(self.clone().watch_promises());
        let result = self.follow(&mut shutdown).await;
        status.abort();
        usage.abort();
        health.abort();
        declare.abort();
        let _ = std::fs::remove_file(self.shared.config.status_socket());
        if self.shared.options.keep_services {
            self.shared.supervisor.lock().await.detach_all().await;
        } else {
            self.stop_services().await;
        }
        result
    }

    /// Takes up what the previous agent kept: the desired state, what it deployed, and
    /// the services still running (to adopt).
    fn recall(&self) {
        let state = &self.shared.state;
        let mut adoptable = HashMap::new();
        let records = state.records();
        for record in records.all() {
            if record.is_alive() {
                adoptable.insert(record.spec.name.clone(), record);
            } else {
                let _ = records.remove(&record.spec.name);
            }
        }
        let mut memory = lock(&self.shared.memory);
        if memory.desired.is_none() {
            memory.desired = state.desired();
        }
        memory.deployed = state.deployed();
        tracing::info!(
            services = adoptable.len(),
            "services left running by the previous agent"
        );
        memory.adoptable = adoptable;
    }

    /// Stops what the previous agent left running but did not record (an agent older than
    /// the records, or one killed between a start and its record): it would hold its
    /// ports against the services started now.
    async fn find_leftovers(&self) {
        let partitions: Vec<PathBuf> = lock(&self.shared.slots)
            .iter()
            .map(|s| s.path.clone())
            .collect();
        let adopted: HashSet<u32> = lock(&self.shared.memory)
            .adoptable
            .values()
            .map(|r| r.pid)
            .collect();
        let leftovers: Vec<(u32, PathBuf)> = stale::leftovers(&partitions)
            .into_iter()
            .filter(|(pid, _)| !adopted.contains(pid))
            .collect();
        if !leftovers.is_empty() {
            let grace = self.shared.options.policy.stop_timeout;
            let _ = tokio::task::spawn_blocking(move || stale::stop(&leftovers, grace)).await;
        }
    }

    async fn follow(
        &self,
        shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<(), NodeError> {
        let wait = Duration::from_secs(self.shared.config.poll_wait_seconds.max(1));
        let mut delay = FIRST_RETRY;
        let mut pending: Option<Poll> = None;
        loop {
            // Work runs in its own tasks: a slow build or profile never holds up the
            // change stream or the other partitions.
            self.start_software();
            self.start_instances();
            let poll = pending.get_or_insert_with(|| self.poll(wait));
            let due = self.next_due().map_or_else(
                || tokio::time::Instant::now() + wait,
                tokio::time::Instant::from_std,
            );
            tokio::select! {
                () = shutdown.as_mut() => return Ok(()),
                answer = poll => {
                    pending = None;
                    let answer = answer.map_err(|e| NodeError::Failed(e.to_string()))?;
                    if let Err(e) = self.accept(answer) {
                        tracing::warn!(error = %e, "cannot read the desired state");
                    }
                    if lock(&self.shared.memory).offline {
                        // An unreachable master answers at once: pause before asking again.
                        tokio::select! {
                            () = shutdown.as_mut() => return Ok(()),
                            () = tokio::time::sleep(delay) => {}
                        }
                        delay = (delay * 2).min(Duration::from_secs(10));
                    } else {
                        delay = FIRST_RETRY;
                    }
                }
                () = self.shared.wake.notified() => {}
                () = tokio::time::sleep_until(due) => {}
            }
        }
    }

    /// When the earliest retry or periodic run is due.
    fn next_due(&self) -> Option<Instant> {
        let memory = lock(&self.shared.memory);
        let periodic = memory.partitions.values().filter_map(|d| {
            d.retry
                .map(|r| r.at)
                .or_else(|| d.periodicity.map(|p| d.at + p))
        });
        let software = memory.software_retry.values().map(|r| r.at);
        periodic.chain(software).min()
    }

    /// Marks work as under way; false if it already is.
    fn claim(&self, key: &str) -> bool {
        lock(&self.shared.memory).busy.insert(key.to_owned())
    }

    /// Marks work as done and lets the main loop look again.
    fn release(&self, key: &str) {
        lock(&self.shared.memory).busy.remove(key);
        self.shared.wake.notify_one();
    }

    fn desired(&self) -> Option<api::DesiredState> {
        lock(&self.shared.memory).desired.clone()
    }

    /// Reports to the master; an unreachable master is logged, not fatal.
    async fn report(
        &self,
        what: &'static str,
        call: impl FnOnce(&Client) -> Result<(), ClientError> + Send + 'static,
    ) -> bool {
        let shared = Arc::clone(&self.shared);
        let result = tokio::task::spawn_blocking(move || call(&shared.client)).await;
        match result {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot report {what}");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot report {what}");
                false
            }
        }
    }

    async fn report_software(&self, url: &str, state: api::SoftwareState, error: Option<String>) {
        let computer = self.shared.config.computer.clone();
        let report = api::SoftwareReport {
            software_release: url.to_owned(),
            state,
            error,
        };
        let reported = self
            .report("software state", move |c| {
                c.report_software(&computer, &report)
            })
            .await;
        let mut memory = lock(&self.shared.memory);
        if reported {
            memory.software_reported.insert(url.to_owned(), state);
        } else {
            // Not again at once: the master may be away.
            memory.delay_software(url, FIRST_RETRY, MAX_RETRY);
        }
    }

    /// Starts a task for each software release with something to do: build, report,
    /// remove.
    fn start_software(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let Some(desired) = self.desired() else {
            return Vec::new();
        };
        let mut started = Vec::new();
        for software in desired.software {
            if !self.software_due(&software) {
                continue;
            }
            let key = format!("software {}", software.software_release);
            if !self.claim(&key) {
                continue;
            }
            let agent = self.clone();
            started.push(tokio::spawn(async move {
                {
                    let _permit = agent.shared.builds.acquire().await;
                    agent.one_software(software).await;
                }
                agent.release(&key);
            }));
        }
        started
    }

    fn software_due(&self, software: &api::SoftwareInstallation) -> bool {
        let url = &software.software_release;
        let root = &self.shared.config.software_root;
        let memory = lock(&self.shared.memory);
        if memory
            .software_retry
            .get(url)
            .is_some_and(|r| r.at > Instant::now())
        {
            return false;
        }
        let reported = memory
            .software_reported
            .get(url)
            .copied()
            .or(software.reported_state);
        match software.requested_state {
            api::SupplyState::Available => {
                !software::is_installed(root, url)
                    || reported != Some(api::SoftwareState::Available)
            }
            api::SupplyState::Destroyed => {
                software::software_path(root, url).exists()
                    || reported != Some(api::SoftwareState::Destroyed)
            }
        }
    }

    async fn one_software(&self, software: api::SoftwareInstallation) {
        let url = software.software_release.clone();
        let root = self.shared.config.software_root.clone();
        let reported = lock(&self.shared.memory)
            .software_reported
            .get(&url)
            .copied()
            .or(software.reported_state);
        match software.requested_state {
            api::SupplyState::Available => {
                if software::is_installed(&root, &url) {
                    if reported != Some(api::SoftwareState::Available) {
                        self.report_software(&url, api::SoftwareState::Available, None)
                            .await;
                    }
                    return;
                }
                let due = lock(&self.shared.memory)
                    .software_retry
                    .get(&url)
                    .is_none_or(|r| r.at <= Instant::now());
                if !due {
                    return;
                }
                tracing::info!(software = %url, "building");
                self.report_software(&url, api::SoftwareState::Building, None)
                    .await;
                let shared = Arc::clone(&self.shared);
                let target = url.clone();
                let built = blocking(move || {
                    let user = *lock(&shared.build_user);
                    match (user, &shared.options.runner) {
                        (Some(user), Some(runner)) => {
                            software::build_as(&root, &target, runner, user)
                        }
                        (Some(_), None) => {
                            Err("builds as the build user need the grove binary".to_owned())
                        }
                        (None, _) => software::install_software(
                            &root,
                            &target,
                            &shared.fetcher,
                            &shared.registry,
                        ),
                    }
                })
                .await;
                match built {
                    Ok(_) => {
                        lock(&self.shared.memory).software_retry.remove(&url);
                        self.report_software(&url, api::SoftwareState::Available, None)
                            .await;
                    }
                    Err(message) => {
                        tracing::warn!(software = %url, error = %message, "build failed");
                        lock(&self.shared.memory).delay_software(
                            &url,
                            SOFTWARE_FIRST_RETRY,
                            SOFTWARE_MAX_RETRY,
                        );
                        self.report_software(&url, api::SoftwareState::Error, Some(tail(&message)))
                            .await;
                    }
                }
            }
            api::SupplyState::Destroyed => {
                let present = software::software_path(&root, &url).exists();
                if !present && reported == Some(api::SoftwareState::Destroyed) {
                    return;
                }
                let target = url.clone();
                match blocking(move || software::remove_software(&root, &target)).await {
                    Ok(()) => {
                        self.report_software(&url, api::SoftwareState::Destroyed, None)
                            .await;
                    }
                    Err(message) => tracing::warn!(software = %url, error = %message),
                }
            }
        }
    }

    /// Starts a task for each partition that is due (and whose software is installed).
    fn start_instances(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let Some(desired) = self.desired() else {
            return Vec::new();
        };
        let mut started = Vec::new();
        for partition in desired.partitions {
            let Some(slot) = self.slot(&partition.reference) else {
                continue;
            };
            let key = format!("partition {}", partition.reference);
            match partition.instance {
                Some(instance) => {
                    let waits_for_software = instance.requested_state
                        == api::RequestedState::Started
                        && !software::is_installed(
                            &self.shared.config.software_root,
                            &instance.software_release,
                        );
                    if waits_for_software
                        || !self.due(&partition.reference, &instance)
                        || !self.claim(&key)
                    {
                        continue;
                    }
                    let agent = self.clone();
                    started.push(tokio::spawn(async move {
                        agent.process(slot, instance).await;
                        agent.release(&key);
                    }));
                }
                None => {
                    // Freed at the master: whatever ran there is gone.
                    let known = lock(&self.shared.memory)
                        .partitions
                        .remove(&partition.reference);
                    if known.is_none() || !self.claim(&key) {
                        continue;
                    }
                    let agent = self.clone();
                    started.push(tokio::spawn(async move {
                        agent.end_tenant(&slot).await;
                        agent.forget_deployed(&slot.reference);
                        agent.release(&key);
                    }));
                }
            }
        }
        started
    }

    fn slot(&self, reference: &str) -> Option<Slot> {
        lock(&self.shared.slots)
            .iter()
            .find(|s| s.reference == reference)
            .cloned()
    }

    fn due(&self, reference: &str, instance: &api::PartitionInstance) -> bool {
        let memory = lock(&self.shared.memory);
        let Some(done) = memory.partitions.get(reference) else {
            return true;
        };
        if done.instance != instance.id
            || done.timestamp != instance.timestamp
            || done.state != instance.requested_state
        {
            return true;
        }
        match (done.retry, done.periodicity) {
            (Some(retry), _) => retry.at <= Instant::now(),
            (None, Some(periodicity)) => done.at + periodicity <= Instant::now(),
            (None, None) => false,
        }
    }

    fn remember(&self, reference: &str, instance: &api::PartitionInstance, failed: bool) {
        let periodicity = self.periodicity(instance);
        let mut memory = lock(&self.shared.memory);
        let previous = memory
            .partitions
            .get(reference)
            .filter(|d| d.instance == instance.id)
            .and_then(|d| d.retry);
        let retry = failed.then(|| Retry::after(previous, FIRST_RETRY, MAX_RETRY));
        memory.partitions.insert(
            reference.to_owned(),
            Done {
                instance: instance.id,
                timestamp: instance.timestamp,
                state: instance.requested_state,
                at: Instant::now(),
                periodicity,
                retry,
            },
        );
    }

    /// The configured periodicity, unless the software release ships a `periodicity` file
    /// (seconds; negative: only when something changed).
    fn periodicity(&self, instance: &api::PartitionInstance) -> Option<Duration> {
        let config = &self.shared.config;
        // The release's build user wrote it: read without following anything.
        let dir = software::software_path(&config.software_root, &instance.software_release);
        let text = grove_confine::Tree::open(&dir, None)
            .and_then(|tree| tree.read(std::path::Path::new("periodicity"), 64))
            .ok()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
        match text.map(|t| t.trim().parse::<i64>()) {
            Some(Ok(seconds)) => u64::try_from(seconds).ok().map(Duration::from_secs),
            _ => Some(config.periodicity()),
        }
    }

    async fn report_state(
        &self,
        instance: &api::PartitionInstance,
        state: api::ReportedState,
        error: Option<String>,
    ) -> bool {
        let id = instance.id;
        let report = api::StateReport {
            state,
            error,
            timestamp: Some(instance.timestamp),
        };
        self.report("instance state", move |c| c.report_state(id, &report))
            .await
    }

    async fn process(&self, slot: Slot, instance: api::PartitionInstance) {
        let reference = slot.reference.clone();
        tracing::info!(partition = %reference, instance = instance.id, state = instance.requested_state.as_str(), "processing");
        let ok = match instance.requested_state {
            api::RequestedState::Started => self.deploy(&slot, &instance).await,
            api::RequestedState::Stopped => {
                self.stop_partition(&reference).await;
                self.report_state(&instance, api::ReportedState::Stopped, None)
                    .await
            }
            api::RequestedState::Destroyed => self.destroy(&slot, &instance).await,
        };
        self.remember(&reference, &instance, !ok);
    }

    /// Runs the profile, starts the services, checks the promises, reports.
    async fn deploy(&self, slot: &Slot, instance: &api::PartitionInstance) -> bool {
        let config = &self.shared.config;
        let software_dir =
            software::software_path(&config.software_root, &instance.software_release);
        if !software_dir.join(software::COMPLETED).is_file() {
            tracing::debug!(partition = %slot.reference, "its software release is not installed yet");
            // Counted as a failure, to be looked at again soon.
            return false;
        }
        // Without the master, a partition deployed before gets its services back as they
        // were (a profile run would need the master); it is deployed again, fully, once
        // the master answers.
        let unreachable = {
            let memory = lock(&self.shared.memory);
            (memory.offline || !memory.reached)
                && memory.deployed.get(&slot.reference)
                    == Some(&state::Deployed {
                        instance: instance.id,
                        timestamp: instance.timestamp,
                    })
        };
        if unreachable {
            if let Err(message) = self.sync_services(slot).await {
                tracing::warn!(partition = %slot.reference, error = %message, "cannot start the services");
            }
            return false;
        }
        let job = instance::Job {
            computer: config.computer.clone(),
            partition: slot.reference.clone(),
            path: slot.path.clone(),
            addresses: slot.addresses.clone(),
            software_dir,
            master_url: config.master_url.clone(),
            instance: instance.clone(),
        };
        let shared = Arc::clone(&self.shared);
        let user = slot.ids();
        let outcome = blocking(move || match (user, &shared.options.runner) {
            (Some((uid, gid)), Some(runner)) => instance::run_as(&job, runner, uid, gid),
            (Some(_), None) => {
                Err("isolated partitions need the grove binary to run profiles".to_owned())
            }
            (None, _) => instance::run(&job, &shared.fetcher, &shared.registry),
        })
        .await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(message) => {
                tracing::warn!(partition = %slot.reference, error = %message, "instance profile failed");
                self.report_state(instance, api::ReportedState::Error, Some(tail(&message)))
                    .await;
                return false;
            }
        };
        let id = instance.id;
        let children = api::Children {
            titles: outcome.children,
        };
        if !self
            .report("children", move |c| c.set_children(id, &children))
            .await
        {
            return false;
        }
        let started = match self.sync_services(slot).await {
            Ok(started) => started,
            Err(message) => {
                self.report_state(instance, api::ReportedState::Error, Some(message))
                    .await;
                return false;
            }
        };
        let path = slot.path.clone();
        let user = slot.ids();
        let timeout = config.promise_timeout();
        // Services started just now get a moment to come up before a failure counts.
        let grace = if started {
            PROMISE_GRACE
        } else {
            Duration::ZERO
        };
        let failures = blocking(move || {
            let deadline = Instant::now() + grace;
            loop {
                let failures = instance::check_promises(&path, user, timeout);
                if failures.is_empty() || Instant::now() >= deadline {
                    return Ok(failures);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .await
        .unwrap_or_else(checker_failed);
        if failures.is_empty() {
            self.keep_deployed(&slot.reference, instance);
            self.report_state(instance, api::ReportedState::Started, None)
                .await
        } else {
            let message = instance::failures_text(&failures);
            tracing::warn!(partition = %slot.reference, error = %message, "promises failed");
            self.report_state(instance, api::ReportedState::Error, Some(tail(&message)))
                .await;
            false
        }
    }

    /// Starts what `etc/service` and `etc/run` hold, restarts what changed, stops the rest.
    /// A service the previous agent left running with the same spec is adopted, not
    /// started again. Returns whether anything was started.
    async fn sync_services(&self, slot: &Slot) -> Result<bool, String> {
        let config = &self.shared.config;
        let prefix = format!("{}/", slot.reference);
        let tree = slot.tree().map_err(|e| e.to_string())?;
        let found = instance::services(&tree).map_err(|e| e.to_string())?;
        let mut wanted = BTreeMap::new();
        for launcher in found {
            let env: BTreeMap<OsString, OsString> = [
                ("PATH", instance::SERVICE_PATH.into()),
                ("HOME", slot.path.clone().into_os_string()),
                ("LANG", "C.UTF-8".into()),
            ]
            .into_iter()
            .map(|(k, v): (&str, OsString)| (OsString::from(k), v))
            .collect();
            let spec = ServiceSpec {
                name: format!("{prefix}{}", launcher.name),
                program: launcher.path,
                args: Vec::new(),
                cwd: slot.path.clone(),
                env,
                log: config.service_log(&slot.reference, &launcher.name),
                user: slot.ids(),
                revision: launcher.digest,
            };
            wanted.insert(spec.name.clone(), spec);
        }
        let mut supervisor = self.shared.supervisor.lock().await;
        for name in supervisor.names() {
            if !name.starts_with(&prefix) {
                continue;
            }
            if wanted.get(&name).is_some_and(|spec| supervisor.runs(spec)) {
                wanted.remove(&name);
            } else {
                tracing::info!(service = %name, "stopping");
                let _ = supervisor.stop(&name).await;
            }
        }
        // What the previous agent left in this partition: adopted if still wanted as is,
        // stopped otherwise.
        let left: Vec<Record> = {
            let mut memory = lock(&self.shared.memory);
            let names: Vec<String> = memory
                .adoptable
                .keys()
                .filter(|n| n.starts_with(&prefix))
                .cloned()
                .collect();
            names
                .iter()
                .filter_map(|n| memory.adoptable.remove(n))
                .collect()
        };
        for record in left {
            let name = record.spec.name.clone();
            if wanted.get(&name) == Some(&record.spec) && supervisor.adopt(&record).is_ok() {
                wanted.remove(&name);
            } else {
                stop_left(&mut supervisor, &record).await;
            }
        }
        let started = !wanted.is_empty();
        for (name, spec) in wanted {
            tracing::info!(service = %name, "starting");
            supervisor
                .start(spec)
                .map_err(|e| format!("cannot start {name}: {e}"))?;
        }
        Ok(started)
    }

    /// Stops the partition's services, those the previous agent left running included.
    async fn stop_partition(&self, reference: &str) {
        let prefix = format!("{reference}/");
        let mut supervisor = self.shared.supervisor.lock().await;
        for name in supervisor.names() {
            if name.starts_with(&prefix) {
                let _ = supervisor.stop(&name).await;
            }
        }
        let left: Vec<Record> = {
            let mut memory = lock(&self.shared.memory);
            let names: Vec<String> = memory
                .adoptable
                .keys()
                .filter(|n| n.starts_with(&prefix))
                .cloned()
                .collect();
            names
                .iter()
                .filter_map(|n| memory.adoptable.remove(n))
                .collect()
        };
        for record in left {
            stop_left(&mut supervisor, &record).await;
        }
    }

    fn forget_deployed(&self, reference: &str) {
        let mut memory = lock(&self.shared.memory);
        if memory.deployed.remove(reference).is_some() {
            self.shared.state.keep_deployed(&memory.deployed);
        }
    }

    fn keep_deployed(&self, reference: &str, instance: &api::PartitionInstance) {
        let mut memory = lock(&self.shared.memory);
        let deployed = state::Deployed {
            instance: instance.id,
            timestamp: instance.timestamp,
        };
        if memory.deployed.insert(reference.to_owned(), deployed) != Some(deployed) {
            self.shared.state.keep_deployed(&memory.deployed);
        }
    }

    /// Ends every process of the partition's tenant, supervised or not.
    async fn end_tenant(&self, slot: &Slot) {
        self.stop_partition(&slot.reference).await;
        let tenant = match slot.ids() {
            Some((uid, _)) => stale::Tenant::User(uid),
            None => stale::Tenant::Directory(slot.path.clone()),
        };
        let grace = self.shared.options.policy.stop_timeout;
        let _ = tokio::task::spawn_blocking(move || stale::end_tenant(&tenant, grace)).await;
    }

    async fn destroy(&self, slot: &Slot, instance: &api::PartitionInstance) -> bool {
        // Nothing of this tenant may meet the next one.
        self.end_tenant(slot).await;
        self.forget_deployed(&slot.reference);
        let path = slot.path.clone();
        let user = slot.ids();
        let timeout = self.shared.config.promise_timeout();
        if let Err(message) = blocking(move || instance::wipe(&path, user, timeout)).await {
            tracing::warn!(partition = %slot.reference, error = %message, "cannot wipe");
            return false;
        }
        self.report_state(instance, api::ReportedState::Destroyed, None)
            .await
    }

    /// Checks the promises of every started, idle partition at the promise interval: a
    /// failure is reported as the instance's error and the partition is deployed again
    /// (which reports started once its promises pass).
    async fn watch_promises(self) {
        let mut tick = tokio::time::interval(self.shared.config.promise_interval());
        tick.tick().await;
        loop {
            tick.tick().await;
            let healthy: Vec<(Slot, api::PartitionInstance)> = {
                let memory = lock(&self.shared.memory);
                let Some(desired) = &memory.desired else {
                    continue;
                };
                desired
                    .partitions
                    .iter()
                    .filter_map(|p| Some((p.reference.clone(), p.instance.clone()?)))
                    .filter(|(reference, instance)| {
                        instance.requested_state == api::RequestedState::Started
                            && !memory.busy.contains(&format!("partition {reference}"))
                            && memory.partitions.get(reference).is_some_and(|d| {
                                d.retry.is_none()
                                    && d.instance == instance.id
                                    && d.timestamp == instance.timestamp
                            })
                    })
                    .filter_map(|(reference, instance)| Some((self.slot(&reference)?, instance)))
                    .collect()
            };
            for (slot, instance) in healthy {
                let (path, user) = (slot.path.clone(), slot.ids());
                let timeout = self.shared.config.promise_timeout();
                let failures = blocking(move || Ok(instance::check_promises(&path, user, timeout)))
                    .await
                    .unwrap_or_else(checker_failed);
                if failures.is_empty() {
                    continue;
                }
                let message = instance::failures_text(&failures);
                tracing::warn!(partition = %slot.reference, error = %message, "a promise failed");
                self.report_state(&instance, api::ReportedState::Error, Some(tail(&message)))
                    .await;
                // Deployed again soon: a service restarted, a profile run again.
                self.remember(&slot.reference, &instance, true);
                self.shared.wake.notify_one();
            }
        }
    }

    /// Stops every service (the agent is shutting down, or a one-shot pass ends).
    pub async fn stop_services(&self) {
        self.shared.supervisor.lock().await.stop_all().await;
    }

    /// One pass for scripts: read the desired state once, then the software or instance
    /// pass.
    pub async fn once(&self, software: bool, instances: bool) -> Result<(), NodeError> {
        self.format().await?;
        self.refresh(Duration::ZERO).await?;
        if lock(&self.shared.memory).offline {
            return Err(NodeError::Failed(format!(
                "cannot reach the master at {}",
                self.shared.config.master_url
            )));
        }
        if software {
            for task in self.start_software() {
                let _ = task.await;
            }
        }
        if instances {
            for task in self.start_instances() {
                let _ = task.await;
            }
        }
        Ok(())
    }

    /// Whether the last pass left any partition or software release failed.
    pub fn failures(&self) -> Vec<String> {
        let memory = lock(&self.shared.memory);
        let mut failed: Vec<String> = memory
            .partitions
            .iter()
            .filter(|(_, d)| d.retry.is_some())
            .map(|(p, _)| p.clone())
            .chain(memory.software_retry.keys().cloned())
            .collect();
        failed.sort();
        failed
    }

    /// Sends one usage report now: of this agent's services, or, when it supervises none
    /// (a one-shot `grove node report`), of the services of the agent running with the
    /// same configuration.
    pub async fn report_usage(&self) -> Result<(), NodeError> {
        let mut statuses = self.service_status().await;
        if statuses.is_empty() {
            statuses = query_status(&self.shared.config.status_socket())?;
        }
        usage::report_once(self, &statuses).await
    }

    /// Every supervised service's status.
    pub async fn service_status(&self) -> Vec<ServiceStatus> {
        let statuses = self.shared.supervisor.lock().await.status();
        statuses.into_iter().map(ServiceStatus::from).collect()
    }
}

/// Stops a service the previous agent left running (through the supervisor, which tells
/// it apart from a later process with the same pid) and forgets its record.
async fn stop_left(supervisor: &mut Supervisor, record: &Record) {
    tracing::info!(service = %record.spec.name, pid = record.pid, "stopping a service left by the previous agent");
    match supervisor.adopt(record) {
        Ok(()) => {
            let _ = supervisor.stop(&record.spec.name).await;
        }
        Err(e) => tracing::info!(error = %e, "already gone"),
    }
}
