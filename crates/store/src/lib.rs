//! The master's durable store.
//!
//! [`Store`] is what the master needs of a store; [`Db`] implements it on SQLite (the
//! embedded default) or PostgreSQL (several masters on one database). The rules of the
//! desired state live once, in [`rules`], over the transaction interface of `tx.rs`; the
//! backends differ only in their dialect (`backend.rs`): how to connect, migrate, lock
//! and tell other masters what changed.
//!
//! A mutation returns only once it is durable. Concurrent mutations are queued to one
//! writer that applies all the waiting ones in one transaction, each in its own savepoint,
//! and commits once (group commit, `writer.rs`).

mod actions;
mod apps;
mod backend;
mod ledger;
mod reads;
mod rules;
pub mod scratch;
mod tx;
mod writer;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;

pub use apps::{ApplicationRow, CONPAAS, NewApplication, ROBOCONF, RootRow};
pub use backend::Location;
pub use grove_api as api;
pub use grove_scheduler::Policy;
pub use writer::Db;

/// A quota's amount as people read it: cores from thousandths, bytes with a unit.
fn amount(quota: &str, value: u64) -> String {
    match quota {
        "cores" => api::units::format_cores(value),
        "memory" | "disk" => api::units::format_bytes(value),
        _ => value.to_string(),
    }
}

/// Store errors. Messages are lowercase fragments.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("no capacity: {0}")]
    NoCapacity(String),
    #[error("invalid: {0}")]
    Invalid(String),
    /// A credential the store keeps (a join token) is unknown, spent or expired.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// A request over one of its project's quotas: which, what is held, the limit.
    #[error(
        "quota exceeded: project {project:?} holds {} {quota} of {}{}",
        amount(quota, *usage),
        amount(quota, *limit),
        if *adds > 1 { format!(", and this instance needs {} more", amount(quota, *adds)) } else { String::new() }
    )]
    QuotaExceeded {
        project: String,
        /// instances, partitions, shared, cores, memory or disk.
        quota: &'static str,
        usage: u64,
        limit: u64,
        /// What the refused instance would have added.
        adds: u64,
    },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot open the store at {location}: {source}")]
    Open {
        location: String,
        source: sqlx::Error,
    },
    #[error("{0:?} is not a store location: sqlite:PATH or postgres://USER@HOST/DATABASE")]
    BadLocation(String),
    #[error("the store is shut down")]
    Closed,
    #[error(
        "the store at {location} is at schema version {found}, newer than this Grove's {known}: \
         run a newer Grove"
    )]
    Newer {
        location: String,
        found: i64,
        known: usize,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub location: Location,
    /// How new instances are placed.
    pub placement: Policy,
}

impl StoreConfig {
    /// SQLite at `path`, the default placement.
    pub fn sqlite(path: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            location: Location::Sqlite(path.into()),
            placement: Policy::Simple,
        }
    }
}

/// A principal holding a token: the admin or a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalRow {
    pub id: i64,
    pub admin: bool,
    pub name: String,
    pub token_hash: Vec<u8>,
    /// The serial of the client certificate the principal holds, if any.
    pub certificate_serial: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputerRow {
    pub id: i64,
    pub reference: String,
    pub owner_id: i64,
    pub token_hash: Vec<u8>,
    pub revision: i64,
    /// The serial of the certificate its node holds (none: no certificate is accepted).
    pub certificate_serial: Option<String>,
    /// The project it is dedicated to.
    pub project_id: Option<i64>,
}

/// An hour of an instance's ledger: what it consumed in that hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerRow {
    /// The hour's first second, since the epoch.
    pub hour: i64,
    /// Seconds it held its partition.
    pub partition_seconds: i64,
    pub cpu_ms: i64,
    pub memory_byte_seconds: i64,
    /// The most memory used in the hour (of the span: the most of its hours).
    pub memory_peak_bytes: i64,
    pub disk_byte_seconds: i64,
}

/// What one instance of a project used in a span, with what its prices depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceUse {
    pub title: String,
    pub software_release: String,
    /// The size it was given.
    pub size: Option<String>,
    /// The sums of its ledger's hours in the span (`hour` is the span's start).
    pub used: LedgerRow,
}

/// A project as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRow {
    pub id: i64,
    pub name: String,
    pub quota: api::Quota,
    /// What its use may cost in all (a decimal string); none: no limit.
    pub credit: Option<String>,
}

/// Who requests an instance: a user, or an instance requesting a child as itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requester {
    User(i64),
    Instance(i64),
    /// A member of a project (or the cloud admin) for the project: the instance is the
    /// project's, and its title is the project's too.
    Project {
        project: i64,
        user: i64,
    },
}

/// What a mutation changed, for the change stream: computed by the rules, once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changed {
    /// Computers whose desired state has a new revision: their nodes wake.
    pub computers: Vec<i64>,
    /// Computers whose desired state document changed without a new revision (a reported
    /// software state, published parameters): cached copies are stale.
    pub documents: Vec<i64>,
    /// Roboconf applications that changed: their root partitions' long polls wake.
    pub applications: Vec<i64>,
    /// Instance actions that ended: whoever waits for them wakes.
    pub actions: Vec<i64>,
}

impl Changed {
    pub(crate) fn computer(&mut self, id: i64) {
        if !self.computers.contains(&id) {
            self.computers.push(id);
        }
    }

    pub(crate) fn document(&mut self, id: i64) {
        if !self.documents.contains(&id) {
            self.documents.push(id);
        }
    }

    pub(crate) fn application(&mut self, id: i64) {
        if !self.applications.contains(&id) {
            self.applications.push(id);
        }
    }

    pub(crate) fn action(&mut self, id: i64) {
        if !self.actions.contains(&id) {
            self.actions.push(id);
        }
    }

    pub(crate) fn merge(&mut self, other: &Changed) {
        for id in &other.computers {
            self.computer(*id);
        }
        for id in &other.documents {
            self.document(*id);
        }
        for id in &other.applications {
            self.application(*id);
        }
        for id in &other.actions {
            self.action(*id);
        }
    }
}

/// A change another master made, or word that some may have been missed (the connection
/// that carries them was lost): then every cached document is stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Elsewhere {
    Changed(Changed),
    Lost,
}

/// The master's store. Every mutation is durable when its future resolves.
pub trait Store: Send + Sync + 'static {
    /// Creates the admin if there is none; its id when it was created.
    fn ensure_admin(&self, token_hash: Vec<u8>)
    -> impl Future<Output = Result<Option<i64>>> + Send;
    /// The key partition tokens derive from: `proposed` if the store had none, else the
    /// one every master sharing this store uses.
    fn master_key(&self, proposed: String) -> impl Future<Output = Result<String>> + Send;
    /// The certificate authority every master sharing the store uses (PEM certificate and
    /// key, as one JSON text): the stored one, or `proposed` stored.
    fn certificate_authority(
        &self,
        proposed: String,
    ) -> impl Future<Output = Result<String>> + Send;
    /// A join token (its hash) for computers `owner` will own, with these labels.
    fn create_join_token(
        &self,
        owner: i64,
        hash: Vec<u8>,
        labels: BTreeMap<String, String>,
        expires_at: i64,
    ) -> impl Future<Output = Result<i64>> + Send;
    /// Spends a join token on a new computer `reference` whose node holds the
    /// certificate `serial`; the computer's id.
    fn join(
        &self,
        hash: Vec<u8>,
        reference: String,
        serial: String,
        now: i64,
    ) -> impl Future<Output = Result<i64>> + Send;
    /// The certificate a computer's node holds from now on (`None`: revoked).
    fn set_certificate(
        &self,
        computer: i64,
        serial: Option<String>,
    ) -> impl Future<Output = Result<()>> + Send;
    fn create_user(
        &self,
        name: String,
        token_hash: Vec<u8>,
    ) -> impl Future<Output = Result<i64>> + Send;
    fn principal(&self, id: i64) -> impl Future<Output = Result<Option<PrincipalRow>>> + Send;
    fn principal_by_name(
        &self,
        name: String,
    ) -> impl Future<Output = Result<Option<PrincipalRow>>> + Send;
    /// The client certificate a user or the admin holds from now on (`None`: revoked).
    fn set_user_certificate(
        &self,
        principal: i64,
        serial: Option<String>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Replaces a computer's labels.
    fn set_labels(
        &self,
        computer_id: i64,
        labels: BTreeMap<String, String>,
    ) -> impl Future<Output = Result<()>> + Send;

    fn create_computer(
        &self,
        reference: String,
        owner_id: i64,
        token_hash: Vec<u8>,
        labels: BTreeMap<String, String>,
    ) -> impl Future<Output = Result<i64>> + Send;
    fn computer(&self, id: i64) -> impl Future<Output = Result<Option<ComputerRow>>> + Send;
    fn computer_by_reference(
        &self,
        reference: String,
    ) -> impl Future<Output = Result<Option<ComputerRow>>> + Send;
    fn computers(
        &self,
        owner: Option<i64>,
    ) -> impl Future<Output = Result<Vec<api::Computer>>> + Send;
    /// One computer as `computers` shows it.
    fn computer_view(&self, id: i64) -> impl Future<Output = Result<Option<api::Computer>>> + Send;
    fn declare_partitions(
        &self,
        computer_id: i64,
        partitions: Vec<api::PartitionDeclaration>,
    ) -> impl Future<Output = Result<Changed>> + Send;
    fn supply(
        &self,
        computer_id: i64,
        supply: api::Supply,
    ) -> impl Future<Output = Result<Changed>> + Send;
    fn report_software(
        &self,
        computer_id: i64,
        report: api::SoftwareReport,
    ) -> impl Future<Output = Result<Changed>> + Send;

    fn request(
        &self,
        owner_id: i64,
        requester: Requester,
        request: api::InstanceRequest,
    ) -> impl Future<Output = Result<(api::Instance, Changed)>> + Send;
    fn instance(&self, id: i64) -> impl Future<Output = Result<Option<api::Instance>>> + Send;
    /// The user an instance belongs to.
    fn instance_owner(&self, id: i64) -> impl Future<Output = Result<Option<i64>>> + Send;
    /// The serial of the certificate an instance's partition holds (`None`: no such
    /// instance; `Some(None)`: none).
    fn instance_certificate(
        &self,
        id: i64,
    ) -> impl Future<Output = Result<Option<Option<String>>>> + Send;
    /// The certificate an instance's partition holds from now on (`None`: revoked); a
    /// destroyed instance's partition gets none (`Conflict`).
    fn set_instance_certificate(
        &self,
        id: i64,
        serial: Option<String>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Every instance (`None`), or what a user sees: their own outside projects and those
    /// of the projects they are a member of.
    fn instances(
        &self,
        owner: Option<i64>,
    ) -> impl Future<Output = Result<Vec<api::Instance>>> + Send;

    // Projects.
    fn create_project(&self, name: String) -> impl Future<Output = Result<i64>> + Send;
    /// Refused (`Conflict`) while the project holds instances not destroyed.
    fn delete_project(&self, project: i64) -> impl Future<Output = Result<()>> + Send;
    /// Gives a user a role in a project, or (`None`) removes them.
    fn set_member(
        &self,
        project: i64,
        principal: i64,
        role: Option<api::Role>,
    ) -> impl Future<Output = Result<()>> + Send;
    fn set_quota(&self, project: i64, quota: api::Quota)
    -> impl Future<Output = Result<()>> + Send;
    /// Sets a project's credit (a decimal string the master checked), or none.
    fn set_credit(
        &self,
        project: i64,
        credit: Option<String>,
    ) -> impl Future<Output = Result<()>> + Send;
    fn project_by_name(
        &self,
        name: String,
    ) -> impl Future<Output = Result<Option<ProjectRow>>> + Send;
    /// Every project (`None`), or those the principal is a member of.
    fn projects(&self, member: Option<i64>)
    -> impl Future<Output = Result<Vec<ProjectRow>>> + Send;
    fn members(&self, project: i64) -> impl Future<Output = Result<Vec<api::Member>>> + Send;
    fn role(
        &self,
        project: i64,
        principal: i64,
    ) -> impl Future<Output = Result<Option<api::Role>>> + Send;
    fn project_usage(&self, project: i64) -> impl Future<Output = Result<api::QuotaUsage>> + Send;

    // Sizes and capacity.
    /// Refused (`Conflict`) when a size of that name exists.
    fn create_size(&self, size: api::Size) -> impl Future<Output = Result<()>> + Send;
    /// The instances given it keep what they were given.
    fn delete_size(&self, name: String) -> impl Future<Output = Result<()>> + Send;
    fn sizes(&self) -> impl Future<Output = Result<Vec<api::Size>>> + Send;
    /// What a computer gives its partitions in all, as its node measured it.
    fn set_capacity(
        &self,
        computer_id: i64,
        capacity: api::Capacity,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Dedicates a computer to a project (it takes that project's instances only), or
    /// (`None`) shares it again; instances already there stay.
    fn dedicate_computer(
        &self,
        computer_id: i64,
        project: Option<i64>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// An instance's ledger for the hours in `[from, to)` (seconds since the epoch).
    fn ledger(
        &self,
        instance: i64,
        from: i64,
        to: i64,
    ) -> impl Future<Output = Result<Vec<LedgerRow>>> + Send;
    /// What each instance of a project used in `[from, to)`: title and sums (`hour` is
    /// `from`).
    fn project_ledger(
        &self,
        project: i64,
        from: i64,
        to: i64,
    ) -> impl Future<Output = Result<Vec<InstanceUse>>> + Send;
    /// The first and last hours of a project's ledger, if it has any.
    fn project_ledger_span(
        &self,
        project: i64,
    ) -> impl Future<Output = Result<Option<(i64, i64)>>> + Send;
    /// The price list as the cloud admin last set it (JSON), if ever.
    fn prices(&self) -> impl Future<Output = Result<Option<String>>> + Send;
    fn set_prices(&self, json: String) -> impl Future<Output = Result<()>> + Send;
    fn report_instance(
        &self,
        instance_id: i64,
        report: api::StateReport,
    ) -> impl Future<Output = Result<Changed>> + Send;
    fn publish(
        &self,
        instance_id: i64,
        parameters: api::Parameters,
    ) -> impl Future<Output = Result<Changed>> + Send;
    fn set_children(
        &self,
        parent_id: i64,
        titles: Vec<String>,
    ) -> impl Future<Output = Result<Changed>> + Send;

    /// Records usage samples, each against the instance its partition holds now.
    fn record_usage(
        &self,
        computer_id: i64,
        report: api::UsageReport,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The latest usage samples of an instance, newest first.
    fn usage(
        &self,
        instance_id: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<api::UsageSample>>> + Send;

    /// The desired state of a computer; partition tokens are left empty for the caller.
    fn desired_state(
        &self,
        computer_id: i64,
    ) -> impl Future<Output = Result<api::DesiredState>> + Send;

    // Roboconf applications.
    /// Stores a new application with its root instances; its id.
    fn create_application(&self, new: NewApplication) -> impl Future<Output = Result<i64>> + Send;
    fn application(
        &self,
        name: String,
    ) -> impl Future<Output = Result<Option<ApplicationRow>>> + Send;
    /// Every application (`None`), or those a user owns or is a member of the project of.
    fn applications(
        &self,
        member: Option<i64>,
    ) -> impl Future<Output = Result<Vec<ApplicationRow>>> + Send;
    fn application_archive(&self, id: i64) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
    fn application_roots(&self, id: i64) -> impl Future<Output = Result<Vec<RootRow>>> + Send;
    /// The application and root instance a Grove instance is the partition of.
    fn application_of_instance(
        &self,
        instance: i64,
    ) -> impl Future<Output = Result<Option<(ApplicationRow, String)>>> + Send;
    /// Replaces an application's model and root instances if it is still at
    /// `generation` (else `Conflict`); the new generation.
    fn update_application(
        &self,
        id: i64,
        generation: i64,
        model: String,
        roots: Vec<String>,
    ) -> impl Future<Output = Result<i64>> + Send;
    /// The Grove instance a root instance's partition is.
    fn set_application_root(
        &self,
        id: i64,
        root: String,
        instance: i64,
    ) -> impl Future<Output = Result<()>> + Send;
    /// What a root's partition reports of its subtree; the new generation.
    fn report_application(
        &self,
        id: i64,
        root: String,
        report: String,
    ) -> impl Future<Output = Result<i64>> + Send;
    fn delete_application(&self, id: i64) -> impl Future<Output = Result<()>> + Send;

    /// The releases the admin registered for ConPaaS service types, by type.
    fn app_types(&self) -> impl Future<Output = Result<BTreeMap<String, String>>> + Send;
    /// Registers the release of a ConPaaS service type (none: removes it).
    fn set_app_type(
        &self,
        name: String,
        release: Option<String>,
    ) -> impl Future<Output = Result<()>> + Send;

    // Instance actions.
    /// Asks an instance for an action (refused, `Conflict`, for a destroyed or shared
    /// instance, or one without a partition); its id and what changed.
    fn request_action(
        &self,
        instance: i64,
        name: String,
        parameters: api::Parameters,
    ) -> impl Future<Output = Result<(i64, Changed)>> + Send;
    fn action(&self, id: i64) -> impl Future<Output = Result<Option<api::actions::Action>>> + Send;
    /// An instance's latest actions, newest first.
    fn actions_of(
        &self,
        instance: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<api::actions::Action>>> + Send;
    /// How an action ended (nothing changes for one that ended already).
    fn finish_action(
        &self,
        id: i64,
        outcome: api::actions::ActionOutcome,
    ) -> impl Future<Output = Result<Changed>> + Send;

    /// How many mutations each transaction of the writer took (its group commits).
    fn batch_sizes(&self) -> std::sync::Arc<grove_metrics::Histogram>;

    /// What other masters sharing this store change, as they commit it (nothing on a
    /// store only one master uses).
    fn elsewhere(&self) -> tokio::sync::broadcast::Receiver<Elsewhere>;
}
