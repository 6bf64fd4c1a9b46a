//! Roboconf applications on the wire: what users deploy and read back, and what a root
//! instance's partition is told and reports. States are Roboconf's, written in snake case
//! (`deployed_started`); variables are qualified (`Tomcat.port`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The software release of a Roboconf root instance: built into every node, supplied on
/// every computer. Its partition runs `grove app agent`, which deploys the root's
/// subtree with the components' installers.
pub const ROBOCONF_RELEASE: &str = "grove:roboconf";

/// The software releases of ConPaaS's service types Grove ships: a manager (software
/// type `manager`) and its agents (one software type per role).
pub const CONPAAS_PHP_RELEASE: &str = "grove:conpaas-php";
pub const CONPAAS_MYSQL_RELEASE: &str = "grove:conpaas-mysql";
pub const CONPAAS_GENERIC_RELEASE: &str = "grove:conpaas-generic";

/// Every release built into every node, supplied on every computer.
pub const BUILTIN_RELEASES: &[&str] = &[
    ROBOCONF_RELEASE,
    CONPAAS_PHP_RELEASE,
    CONPAAS_MYSQL_RELEASE,
    CONPAAS_GENERIC_RELEASE,
];

/// An application as `GET /v1/apps` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSummary {
    pub name: String,
    /// The descriptor's application name and version.
    pub descriptor: String,
    pub version: String,
    pub project: Option<String>,
    pub instances: usize,
    /// How many are `deployed_started`.
    pub started: usize,
}

/// An import as an instance sees it: the exporter and the values it gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppImport {
    pub path: String,
    pub values: BTreeMap<String, String>,
}

/// One instance of an application, as `GET /v1/apps/{name}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppInstance {
    pub path: String,
    pub component: String,
    /// What its partition last reported (`not_deployed` before).
    pub state: String,
    /// What is asked of it: `not_deployed`, `deployed_stopped` or `deployed_started`.
    pub wanted: String,
    pub exports: BTreeMap<String, String>,
    /// Each import prefix and the started exporters it resolves to.
    pub imports: BTreeMap<String, Vec<AppImport>>,
    /// The mandatory import prefixes without a started exporter.
    #[serde(default)]
    pub missing: Vec<String>,
    /// The last script's failure, if it failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// `GET /v1/apps/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppView {
    pub name: String,
    pub project: Option<String>,
    /// The applications bound to each external import prefix.
    #[serde(default)]
    pub bindings: BTreeMap<String, Vec<String>>,
    /// The Grove instance of each root instance, by root path (of a ConPaaS application:
    /// each service's manager, by service name).
    pub roots: BTreeMap<String, i64>,
    pub instances: Vec<AppInstance>,
    /// A ConPaaS application's services.
    #[serde(default)]
    pub services: Vec<AppService>,
}

/// A service of a ConPaaS application: its manager instance and what it published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppService {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The manager's Grove instance.
    pub instance: i64,
    /// What the manager's node last reported (`started`, `error`...).
    pub state: Option<String>,
    pub error: Option<String>,
    /// Every agent the manager asked for has started and published.
    pub ready: bool,
    /// The agents by role, each as `title address`.
    pub nodes: BTreeMap<String, Vec<String>>,
    /// The manager's connection parameters (`url` for a web service's proxy).
    pub connection: crate::Parameters,
}

/// A ConPaaS service type and the release it runs (`GET /v1/apps/types`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppType {
    pub name: String,
    /// The release its services run; none: manifests of this type are refused.
    pub release: Option<String>,
    /// Whether the release is the one Grove ships (not one the admin registered).
    pub builtin: bool,
}

/// `PUT /v1/apps/types/{name}`: the release a type runs (none: Grove's own again, or
/// none at all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppTypeRelease {
    pub release: Option<String>,
}

/// Where a ConPaaS manager publishes what `AppService` shows.
pub mod conpaas_keys {
    /// `true` once every agent asked for has published.
    pub const READY: &str = "ready";
    /// The agents by role, as JSON (`{"web": ["web-1 10.0.0.2:8000"]}`).
    pub const NODES: &str = "nodes";
    /// A web service's entry point.
    pub const URL: &str = "url";
    /// What the autoscaler last measured and decided.
    pub const AUTOSCALING: &str = "autoscaling";
    /// The agents whose last deployment failed, with why, as JSON (`{"web-2": "..."}`).
    pub const FAILING: &str = "failing";
}

/// `POST /v1/apps/{name}/instances`: a new instance under `parent` (`/` for a root).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAppInstance {
    pub parent: String,
    pub component: String,
    pub name: String,
    /// Overridden exports (`port` or `Tomcat.port`) and other properties.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// `PUT /v1/apps/{name}/state`: what is wanted of an instance (and, for
/// `not_deployed`, of its descendants; for a start, of its ancestors).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppInstanceState {
    pub path: String,
    pub state: String,
}

/// What a root partition's instance resolves an import prefix to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppImports {
    pub by_prefix: BTreeMap<String, Vec<AppImport>>,
    /// Every mandatory import has a started exporter.
    pub resolved: bool,
    #[serde(default)]
    pub missing: Vec<String>,
}

/// One instance of a root's subtree, as its partition must bring it about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppTarget {
    pub path: String,
    pub name: String,
    pub component: String,
    /// `target` (the root: the partition itself), `script` or `logger`.
    pub installer: String,
    pub wanted: String,
    pub exports: BTreeMap<String, String>,
    pub imports: AppImports,
}

/// `GET /v1/apps/partition`: what the calling root partition must run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppPartition {
    pub application: String,
    pub root: String,
    /// Grows with every change of the application; `?after=` waits for a larger one.
    pub generation: i64,
    /// SHA-256 of the application's archive (hex): fetch it again when this changes.
    pub archive: String,
    pub instances: Vec<AppTarget>,
}

/// What a root partition holds of an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppObserved {
    pub state: String,
    #[serde(default)]
    pub error: Option<String>,
}

/// `PUT /v1/apps/partition/report`: the states of a root's subtree, and the root's
/// address (its exports' `ip`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppReport {
    pub address: Option<String>,
    pub instances: BTreeMap<String, AppObserved>,
}

/// `POST /v1/apps/{name}/commands`: runs a commands file of the application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppCommand {
    /// The file's name in `commands/`, without `.commands`.
    pub command: String,
}

/// An event a probe raised on an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppEvent {
    pub instance: String,
    pub event: String,
    /// What the probe saw.
    pub cause: String,
}

/// `POST /v1/apps/partition/events`: what the probes of a root's subtree raised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppEvents {
    pub events: Vec<AppEvent>,
}

/// What the autonomic rules did with events: the commands files run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppReaction {
    pub commands: Vec<String>,
}

/// `PUT /v1/apps/{name}/bindings`: binds an external import prefix of the application to
/// another application (or, with `unbind`, undoes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppBinding {
    pub prefix: String,
    pub application: String,
    #[serde(default)]
    pub unbind: bool,
}
