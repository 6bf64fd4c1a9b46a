//! The node agent: turns the master's desired state for this computer into installed
//! software and running, supervised instances.
//!
//! One event loop (`events.rs`) owns the agent's memory: it follows the master's change
//! stream (a long poll that returns as soon as the desired state changes), asks the pure
//! planner (`plan.rs`) what is due (a build, a deployment, a retry, a periodic run, a
//! promise check), and starts a task for each piece of work (`work.rs`), whose outcome
//! comes back to it as an event. Profile runs and builds, which block, go to blocking
//! threads; as root they run as unprivileged users (`helper.rs`). When the master cannot
//! be reached nothing is stopped: services keep running and the agent catches up when the
//! master answers again.

mod actions;
mod certificates;
pub mod config;
mod events;
pub mod format;
pub mod helper;
pub mod instance;
pub mod limits;
mod metrics;
pub mod os;
mod plan;
mod procfs;
mod renew;
pub mod roboconf;
pub mod software;
mod stale;
mod state;
mod status;
mod usage;
mod work;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grove_api as api;
use grove_fetch::Fetcher;
use grove_recipes::Registry;
use grove_supervisor::{Policy, Supervisor};

pub use config::Config;
pub use format::Slot;
pub use grove_client::{Client, ClientError, Identity};
pub use os::{Host, Os};
pub use renew::certificate_state;
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

struct Shared {
    config: Config,
    options: AgentOptions,
    client: Client,
    /// The master's CA certificate (PEM), which partitions trust too.
    master_ca: Option<String>,
    fetcher: Fetcher,
    registry: Registry,
    os: Arc<dyn Os>,
    slots: Mutex<Vec<Slot>>,
    /// Who builds software releases, when running as root with isolation.
    build_user: Mutex<Option<(u32, u32)>>,
    supervisor: tokio::sync::Mutex<Supervisor>,
    state: state::State,
    /// Bounds the software builds running at once.
    builds: tokio::sync::Semaphore,
    /// The partitions' certificates, by partition.
    certificates: Mutex<certificates::Certificates>,
    /// How partitions' sizes are enforced.
    limits: Box<dyn limits::Limits>,
    metrics: metrics::Metrics,
}

/// The agent. Cheap to clone: clones share everything but the memory, which its event
/// loop owns.
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

/// The first and the longest delay before work that failed is tried again.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);

impl Agent {
    /// An agent for this configuration; fails when its credentials do not read.
    pub fn new(config: Config, options: AgentOptions, os: Arc<dyn Os>) -> Result<Agent, NodeError> {
        let identity = config.identity()?;
        let client = Client::new(&config.master_url, &identity)?;
        let master_ca = identity.ca_pem;
        let policy = options.policy;
        let state = state::State::new(&config.instance_root);
        let limits = limits::detect(
            std::path::Path::new("/sys/fs/cgroup"),
            config.enforce_sizes && os.is_root(),
        );
        Ok(Agent {
            shared: Arc::new(Shared {
                client,
                master_ca,
                options,
                fetcher: Fetcher::new(Duration::from_secs(60)),
                registry: Registry::builtin(),
                os,
                slots: Mutex::new(Vec::new()),
                build_user: Mutex::new(None),
                supervisor: tokio::sync::Mutex::new(
                    Supervisor::new(policy).with_records(state.records()),
                ),
                certificates: Mutex::new(state.certificates()),
                state,
                builds: tokio::sync::Semaphore::new(config.parallel_builds),
                limits,
                metrics: metrics::Metrics::default(),
                config,
            }),
        })
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    fn slots(&self) -> Vec<Slot> {
        lock(&self.shared.slots).clone()
    }

    fn slot(&self, reference: &str) -> Option<Slot> {
        lock(&self.shared.slots)
            .iter()
            .find(|s| s.reference == reference)
            .cloned()
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
        let declaration: Vec<api::PartitionDeclaration> = self
            .slots()
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
                .declare_partitions(&shared.config.computer, &declaration)?;
            let capacity = limits::capacity(&shared.config, shared.limits.enforced());
            shared
                .client
                .report_capacity(&shared.config.computer, &capacity)
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

    /// Runs the daemon until `shutdown` completes, then stops every service (or, with
    /// `keep_services`, leaves them running for the next agent).
    pub async fn run(
        &self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), NodeError> {
        tokio::pin!(shutdown);
        // Everything here works without the master: services come back after a reboot
        // while it is away, from the last desired state kept on disk.
        self.format_here().await?;
        let mut looper = events::Looper::new(self.clone());
        looper.recall().await;
        let declare = tokio::spawn(self.clone().declare_until_done());
        looper.stop_leftovers().await;
        let status = status::serve(self.clone())?;
        let metrics = match self.shared.config.metrics_listen {
            Some(listen) => Some(metrics::serve(self.clone(), listen).await?),
            None => None,
        };
        let usage = tokio::spawn(usage::report_every(self.clone()));
        let renewal = tokio::spawn(self.clone().renew_when_due());
        let result = looper.follow(&mut shutdown).await;
        status.abort();
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        usage.abort();
        renewal.abort();
        declare.abort();
        let _ = std::fs::remove_file(self.shared.config.status_socket());
        if self.shared.options.keep_services {
            self.shared.supervisor.lock().await.detach_all().await;
        } else {
            self.stop_services().await;
        }
        result
    }

    /// Stops every service (the agent is shutting down, or a one-shot pass ends).
    pub async fn stop_services(&self) {
        self.shared.supervisor.lock().await.stop_all().await;
    }

    /// One pass for scripts: reads the desired state once, then builds (`software`) or
    /// deploys what is due, to the end. Returns what failed.
    pub async fn once(&self, software: bool) -> Result<Vec<String>, NodeError> {
        self.format().await?;
        let mut looper = events::Looper::new(self.clone());
        looper.refresh().await?;
        Ok(looper.pass(software).await)
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
