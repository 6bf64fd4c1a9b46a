//! Grove's wire types: the JSON the master, the node agent and the client exchange under
//! `/v1`. This is the API boundary: serialization derives live here and nowhere else, and a
//! change here is a change of the protocol.

pub mod actions;
pub mod apps;
pub mod endpoints;
pub mod masters;
pub mod units;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Instance and connection parameters: a JSON object.
pub type Parameters = serde_json::Map<String, serde_json::Value>;

/// What a user (or a parent instance) wants of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestedState {
    Started,
    Stopped,
    Destroyed,
}

impl RequestedState {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestedState::Started => "started",
            RequestedState::Stopped => "stopped",
            RequestedState::Destroyed => "destroyed",
        }
    }

    pub fn parse(text: &str) -> Option<RequestedState> {
        Some(match text {
            "started" => RequestedState::Started,
            "stopped" => RequestedState::Stopped,
            "destroyed" => RequestedState::Destroyed,
            _ => return None,
        })
    }
}

/// What a node did with an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportedState {
    Started,
    Stopped,
    Destroyed,
    Error,
}

impl ReportedState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportedState::Started => "started",
            ReportedState::Stopped => "stopped",
            ReportedState::Destroyed => "destroyed",
            ReportedState::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<ReportedState> {
        Some(match text {
            "started" => ReportedState::Started,
            "stopped" => ReportedState::Stopped,
            "destroyed" => ReportedState::Destroyed,
            "error" => ReportedState::Error,
            _ => return None,
        })
    }
}

/// Whether a node should have a software release installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SupplyState {
    Available,
    Destroyed,
}

impl SupplyState {
    pub fn as_str(self) -> &'static str {
        match self {
            SupplyState::Available => "available",
            SupplyState::Destroyed => "destroyed",
        }
    }

    pub fn parse(text: &str) -> Option<SupplyState> {
        Some(match text {
            "available" => SupplyState::Available,
            "destroyed" => SupplyState::Destroyed,
            _ => return None,
        })
    }
}

/// What a node did with a software release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SoftwareState {
    Building,
    Available,
    Destroyed,
    Error,
}

impl SoftwareState {
    pub fn as_str(self) -> &'static str {
        match self {
            SoftwareState::Building => "building",
            SoftwareState::Available => "available",
            SoftwareState::Destroyed => "destroyed",
            SoftwareState::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<SoftwareState> {
        Some(match text {
            "building" => SoftwareState::Building,
            "available" => SoftwareState::Available,
            "destroyed" => SoftwareState::Destroyed,
            "error" => SoftwareState::Error,
            _ => return None,
        })
    }
}

fn default_software_type() -> String {
    "default".to_owned()
}

fn started() -> RequestedState {
    RequestedState::Started
}

/// `POST /v1/instances`: request an instance, or update the one with this title.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceRequest {
    pub title: String,
    pub software_release: String,
    #[serde(default = "default_software_type")]
    pub software_type: String,
    #[serde(default)]
    pub parameters: Parameters,
    #[serde(default = "started")]
    pub state: RequestedState,
    #[serde(default)]
    pub shared: bool,
    /// Placement filters: `computer_guid` (a computer reference), `instance_guid` (for a
    /// shared instance: the host instance's id).
    #[serde(default)]
    pub sla: BTreeMap<String, String>,
    /// The project the instance belongs to (by name); none: the requesting user's own.
    /// A child instance is in its parent's project.
    #[serde(default)]
    pub project: Option<String>,
}

impl InstanceRequest {
    /// A request for a started, unshared instance of the default software type, with no
    /// parameters and no SLA.
    pub fn new(title: impl Into<String>, software_release: impl Into<String>) -> InstanceRequest {
        InstanceRequest {
            title: title.into(),
            software_release: software_release.into(),
            software_type: default_software_type(),
            parameters: Parameters::new(),
            state: RequestedState::Started,
            shared: false,
            sla: BTreeMap::new(),
            project: None,
        }
    }
}

/// An instance as the master knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub id: i64,
    pub title: String,
    pub software_release: String,
    pub software_type: String,
    pub parameters: Parameters,
    pub requested_state: RequestedState,
    pub shared: bool,
    pub sla: BTreeMap<String, String>,
    /// The project it belongs to, if any.
    #[serde(default)]
    pub project: Option<String>,
    /// The computer and partition it runs in (the host's, for a shared instance).
    pub computer: Option<String>,
    pub partition: Option<String>,
    /// For a shared instance, the instance hosting it.
    pub host_instance: Option<i64>,
    /// The instance that requested this one; none for a user's request.
    pub parent: Option<i64>,
    pub root: i64,
    pub reported_state: Option<ReportedState>,
    pub error: Option<String>,
    pub connection: Parameters,
    /// Changes whenever what is requested of the instance changes.
    pub timestamp: i64,
    /// The timestamp the node had processed when it last reported: the report is about
    /// the current request once it reaches `timestamp`.
    pub reported_timestamp: Option<i64>,
}

/// `POST /v1/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
}

/// `POST /v1/join-tokens`: a one-time token a new node joins with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewJoinToken {
    /// How long the token may be used, in seconds (default one hour).
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// Labels the joining computer gets.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A join token, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinToken {
    pub token: String,
    /// Seconds since the epoch after which it is refused.
    pub expires_at: i64,
    /// The fingerprint of the master's CA, which the joining node pins.
    pub ca_fingerprint: String,
}

/// `POST /v1/join`: a node joins with a join token and a certificate request; its key
/// never leaves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub token: String,
    /// The computer's reference.
    pub reference: String,
    /// A PEM certificate signing request.
    pub csr: String,
}

/// What a joined node gets: its certificate (PEM), naming its computer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    pub reference: String,
    pub certificate: String,
    /// Seconds since the epoch when it expires (the node renews it before).
    pub expires_at: i64,
}

/// `POST /v1/computers/{reference}/certificate`: a node renews its certificate with a
/// request for a new key (the answer is a [`Joined`]; the old certificate is refused from
/// then on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateRequest {
    pub csr: String,
}

/// `POST /v1/instances/{id}/certificate` (a [`CertificateRequest`], from the node of the
/// instance's computer): the certificate the instance's partition acts with; the one it
/// held before is refused from then on, and any once the instance is destroyed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionCertificate {
    pub instance: i64,
    pub certificate: String,
    /// Seconds since the epoch when it expires (the node asks for a new one before).
    pub expires_at: i64,
}

/// `POST /v1/users/{name}/certificate`: a client certificate for a user or the admin,
/// with its key and the master's CA (PEM), shown once; the user's previous certificate is
/// refused from then on. Tokens keep working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateBundle {
    pub name: String,
    pub certificate: String,
    pub key: String,
    pub ca: String,
    pub expires_at: i64,
}

/// `GET /v1/ca`: the master's CA certificate (PEM) and its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaCertificate {
    pub certificate: String,
    pub fingerprint: String,
}

/// A created principal and its token, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub id: i64,
    pub name: String,
    pub token: String,
}

/// `POST /v1/computers`: register a computer (what `grove node register` calls).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewComputer {
    pub reference: String,
    /// `zone=...` and free-form `key=value` labels that placement can ask for.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A member's role in a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Reads the project's instances.
    Reader,
    /// Also requests, changes and destroys them.
    Member,
    /// Also manages the project's members.
    ProjectAdmin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Member => "member",
            Role::ProjectAdmin => "project-admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Some(match text {
            "reader" => Role::Reader,
            "member" => Role::Member,
            "project-admin" => Role::ProjectAdmin,
            _ => return None,
        })
    }
}

/// `POST /v1/projects` (the cloud admin): a new project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    pub name: String,
}

/// `PUT /v1/projects/{name}/members` (the cloud admin or a project-admin): gives a user a
/// role in the project, or (`role` null) removes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    pub user: String,
    pub role: Option<Role>,
}

/// `PUT /v1/projects/{name}/quota` (the cloud admin): the most the project may hold;
/// a limit left out is none. Replaced whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Instances, shared or not, that are not destroyed.
    #[serde(default)]
    pub instances: Option<u64>,
    /// Instances with a partition of their own (not shared).
    #[serde(default)]
    pub partitions: Option<u64>,
    /// Shared instances.
    #[serde(default)]
    pub shared: Option<u64>,
    /// Thousandths of a CPU core, summed over the sizes of the instances held.
    #[serde(default)]
    pub millicores: Option<u64>,
    /// Bytes of memory, summed over the sizes held.
    #[serde(default)]
    pub memory: Option<u64>,
    /// Bytes of disk, summed over the sizes held.
    #[serde(default)]
    pub disk: Option<u64>,
}

/// What a project holds, counted as its quota counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaUsage {
    pub instances: u64,
    pub partitions: u64,
    pub shared: u64,
    #[serde(default)]
    pub millicores: u64,
    #[serde(default)]
    pub memory: u64,
    #[serde(default)]
    pub disk: u64,
}

/// What a size reserves: CPU in thousandths of a core, memory and disk in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub millicores: u64,
    pub memory: u64,
    pub disk: u64,
}

impl Resources {
    /// Whether `self` holds `other` in every resource.
    pub fn holds(&self, other: &Resources) -> bool {
        self.millicores >= other.millicores
            && self.memory >= other.memory
            && self.disk >= other.disk
    }
}

/// A size (Nova's flavor), defined by the cloud admin (`POST /v1/sizes`) and asked for by
/// a request's SLA (`size=NAME`): what the instance's partition is given, counted against
/// its computer's capacity and its project's quota, and enforced by the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Size {
    pub name: String,
    pub millicores: u64,
    pub memory: u64,
    pub disk: u64,
}

impl Size {
    pub fn resources(&self) -> Resources {
        Resources {
            millicores: self.millicores,
            memory: self.memory,
            disk: self.disk,
        }
    }
}

/// `PUT /v1/computers/{reference}/project` (the cloud admin): dedicates the computer to a
/// project, or (`project` null) shares it again. Instances already there stay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dedication {
    pub project: Option<String>,
}

/// `PUT /v1/computers/{reference}/capacity` (its node): what the computer gives its
/// partitions in all, and whether the node enforces each partition's size with the
/// kernel's controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    pub millicores: u64,
    pub memory: u64,
    pub disk: u64,
    /// The node limits each partition's CPU and memory (cgroups).
    pub enforced: bool,
}

impl Capacity {
    pub fn resources(&self) -> Resources {
        Resources {
            millicores: self.millicores,
            memory: self.memory,
            disk: self.disk,
        }
    }
}

/// A project's member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub user: String,
    pub role: Role,
}

/// A project as its members and the cloud admin see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub name: String,
    pub members: Vec<Member>,
    pub quota: Quota,
    pub usage: QuotaUsage,
    /// What its use may cost in all (decimal); none: no limit.
    #[serde(default)]
    pub credit: Option<String>,
    /// The credit less what its use cost so far at the current prices; none without a
    /// credit. At zero or less, the project's requests are refused (402), but destroying.
    #[serde(default)]
    pub balance: Option<String>,
}

/// `GET /v1/projects/{name}/estimate`: what a project's use cost month by month, at the
/// current prices (the months it used anything, oldest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Estimate {
    pub project: String,
    pub currency: String,
    pub months: Vec<MonthTotal>,
}

/// One month of an estimate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthTotal {
    /// YYYY-MM.
    pub month: String,
    pub total: String,
}

/// `PUT /v1/projects/{name}/credit` (the cloud admin): what the project's use may cost in
/// all, a decimal string; null: no limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credit {
    pub amount: Option<String>,
}

/// `PUT /v1/billing/prices` (the cloud admin): what each unit of use costs, as decimal
/// numbers written as strings (`"0.012"`), never floats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    /// A currency code, shown on invoices (`EUR`).
    pub currency: String,
    /// An hour of a partition held.
    pub partition_hour: String,
    /// An hour of one CPU's time.
    pub cpu_hour: String,
    /// An hour of a GiB of memory.
    pub memory_gib_hour: String,
    /// A month (730 hours) of a GiB of a partition's disk; none: free.
    #[serde(default)]
    pub disk_gib_month: Option<String>,
    /// An hour of an instance of a size, by size name (beside its partition-hours).
    #[serde(default)]
    pub size_hour: BTreeMap<String, String>,
    /// The price of a partition-hour for the instances of a software release, by its
    /// URL, instead of `partition_hour`.
    #[serde(default)]
    pub release_partition_hour: BTreeMap<String, String>,
}

/// A line of an invoice: one instance, one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLine {
    /// The instance's title.
    pub instance: String,
    /// `partition-hours`, `cpu-hours`, `memory-gib-hours`, `disk-gib-months` or
    /// `size-hours (NAME)`.
    pub resource: String,
    /// Decimal, to six places.
    pub quantity: String,
    pub unit_price: String,
    /// `quantity x unit_price`, rounded half away from zero to the cent.
    pub amount: String,
}

/// `GET /v1/projects/{name}/invoice?month=YYYY-MM`: a project's use in a month (UTC) at
/// the current prices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub project: String,
    pub month: String,
    pub currency: String,
    pub lines: Vec<InvoiceLine>,
    /// The sum of the lines' amounts.
    pub total: String,
}

/// `PUT /v1/computers/{reference}/labels`: a computer's labels, replaced whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Labels {
    pub labels: BTreeMap<String, String>,
}

/// A computer as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Computer {
    pub reference: String,
    pub owner: String,
    pub labels: BTreeMap<String, String>,
    pub partitions: Vec<PartitionInfo>,
    pub software: Vec<SoftwareInstallation>,
    pub revision: i64,
    /// What its node reported it gives its partitions; none before it did.
    #[serde(default)]
    pub capacity: Option<Capacity>,
    /// The sizes of the instances placed there, summed.
    #[serde(default)]
    pub allocated: Resources,
    /// The project it is dedicated to (it takes that project's instances only); none:
    /// shared as its owner's computers are.
    #[serde(default)]
    pub project: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    pub reference: String,
    pub addresses: Vec<String>,
    pub instance: Option<i64>,
}

/// `PUT /v1/computers/{reference}/partitions`: the node declares its formatted partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionDeclaration {
    pub reference: String,
    #[serde(default)]
    pub addresses: Vec<String>,
}

/// `POST /v1/computers/{reference}/supply`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Supply {
    pub software_release: String,
    #[serde(default = "available")]
    pub state: SupplyState,
    /// Supplying as a project-admin of this project, on a computer dedicated to it (the
    /// cloud admin and the computer's owner need not say).
    #[serde(default)]
    pub project: Option<String>,
}

fn available() -> SupplyState {
    SupplyState::Available
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoftwareInstallation {
    pub software_release: String,
    pub requested_state: SupplyState,
    pub reported_state: Option<SoftwareState>,
    pub error: Option<String>,
}

/// `PUT /v1/computers/{reference}/software`: the node reports on a software release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoftwareReport {
    pub software_release: String,
    pub state: SoftwareState,
    #[serde(default)]
    pub error: Option<String>,
}

/// `PUT /v1/instances/{id}/state`: the node reports what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateReport {
    pub state: ReportedState,
    #[serde(default)]
    pub error: Option<String>,
    /// The instance timestamp the node processed.
    #[serde(default)]
    pub timestamp: Option<i64>,
}

/// `PUT /v1/instances/{id}/connection`: an instance publishes its connection parameters,
/// for itself or (a host) for one of its shared instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    pub parameters: Parameters,
    #[serde(default)]
    pub shared_instance: Option<i64>,
}

/// `PUT /v1/instances/{id}/children`: the titles a parent requested in its last run; the
/// others it had requested before are destroyed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Children {
    pub titles: Vec<String>,
}

/// `POST /v1/computers/{reference}/usage`: what each partition consumed, measured by the
/// node (cumulative CPU time, current memory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageReport {
    pub partitions: Vec<PartitionUsage>,
    /// When the node measured it, seconds since the epoch (default: when the master
    /// receives it). A report sent again with the same time is counted once.
    #[serde(default)]
    pub at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionUsage {
    pub reference: String,
    pub cpu_seconds: f64,
    pub memory_bytes: u64,
    /// How many times the partition's services were restarted since the agent started.
    #[serde(default)]
    pub restarts: u32,
    /// The most memory used since the node's last report (its control group's peak where
    /// sizes are enforced, else `memory_bytes`).
    #[serde(default)]
    pub memory_peak_bytes: u64,
    /// The bytes of the partition's files.
    #[serde(default)]
    pub disk_bytes: u64,
}

/// One usage sample of an instance (`GET /v1/instances/{id}/usage`, newest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageSample {
    pub computer: String,
    pub partition: String,
    pub cpu_seconds: f64,
    pub memory_bytes: u64,
    /// Seconds since the epoch.
    pub at: i64,
    pub restarts: u32,
    #[serde(default)]
    pub memory_peak_bytes: u64,
    #[serde(default)]
    pub disk_bytes: u64,
}

/// A shared instance as its host's partition sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedInstance {
    pub id: i64,
    pub title: String,
    pub software_type: String,
    pub parameters: Parameters,
    pub requested_state: RequestedState,
    pub timestamp: i64,
}

/// Everything a node needs to run one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionState {
    pub reference: String,
    pub addresses: Vec<String>,
    pub instance: Option<PartitionInstance>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionInstance {
    pub id: i64,
    pub title: String,
    pub root_title: String,
    pub software_release: String,
    pub software_type: String,
    pub requested_state: RequestedState,
    pub parameters: Parameters,
    pub connection: Parameters,
    pub shared_instances: Vec<SharedInstance>,
    pub timestamp: i64,
    /// The partition's own credentials, for the instance to publish and request as itself.
    pub token: String,
    /// The size the partition is given (its node enforces it); none: unlimited.
    #[serde(default)]
    pub size: Option<Size>,
    /// The actions asked of the instance that its node has not reported yet.
    #[serde(default)]
    pub actions: Vec<actions::PendingAction>,
}

/// `GET /v1/computers/{reference}/desired`: the desired state of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredState {
    pub computer: String,
    pub revision: i64,
    pub software: Vec<SoftwareInstallation>,
    pub partitions: Vec<PartitionState>,
}

/// Errors: a stable machine-readable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// The stable error codes.
pub mod codes {
    pub const BAD_REQUEST: &str = "bad_request";
    pub const UNAUTHORIZED: &str = "unauthorized";
    pub const FORBIDDEN: &str = "forbidden";
    pub const NOT_FOUND: &str = "not_found";
    pub const CONFLICT: &str = "conflict";
    pub const NO_CAPACITY: &str = "no_capacity";
    pub const QUOTA_EXCEEDED: &str = "quota_exceeded";
    pub const INSUFFICIENT_CREDIT: &str = "insufficient_credit";
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    pub const INTERNAL: &str = "internal";

    /// Every code, as `openapi.json` lists them.
    pub const ALL: &[&str] = &[
        BAD_REQUEST,
        UNAUTHORIZED,
        FORBIDDEN,
        NOT_FOUND,
        CONFLICT,
        NO_CAPACITY,
        QUOTA_EXCEEDED,
        INSUFFICIENT_CREDIT,
        PAYLOAD_TOO_LARGE,
        INTERNAL,
    ];
}
