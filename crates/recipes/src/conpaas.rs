//! `grove:conpaas`: the one part of the releases Grove ships for ConPaaS's service types
//! (`grove_api::apps::BUILTIN_RELEASES`). What it does depends on the instance's software
//! type:
//!
//! - `manager`: the service's manager. Its parameters are the service's
//!   [`Spec`]; the node counts by role live in the partition (`var/conpaas/roles.json`,
//!   changed by the `add_nodes` and `remove_nodes` actions). [`reconcile`] requests one
//!   agent per node (a child instance of the same release, the role as software type),
//!   then the balancers with the addresses the others published, and publishes the
//!   service's `url`, its `nodes` and whether it is `ready`. Its actions are
//!   executables in `etc/action/` that run `grove app conpaas-action` ([`act`]).
//! - a role: an agent. A PHP service's `web` (or `backend`) node serves the code
//!   archive with nginx and php-fpm; its `proxy` balances over the web nodes with nginx.
//!
//! Every server runs as the partition's user, its files below the partition.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use grove_api as api;
use grove_api::apps::conpaas_keys;
use grove_conpaas::autoscale;
use grove_conpaas::mysql;
use grove_conpaas::php::{self, Dirs};
use grove_conpaas::service::{self, Agent, Spec};
use grove_profile::Resolved;
use serde::{Deserialize, Serialize};

use crate::builtin::{shell_quote, write_file};
use crate::slap::{Connection, Master, Partition};
use crate::{Context, Options, Recipe, Registry};

/// What the manager's actions read: how to reach the master as the manager, and which
/// service it is.
pub const MANAGER_CONFIG: &str = "etc/conpaas/manager.json";
/// The node counts by role, as the manager's actions leave them.
const ROLES: &str = "var/conpaas/roles.json";
/// What the actions changed of a service: its password, its dump, its code.
const SETTINGS: &str = "var/conpaas/settings.json";
/// The service as the manager was given it (its parameters), before any action.
const GIVEN: &str = "var/conpaas/given.json";
/// The manager's actions.
pub const ACTIONS: &[&str] = &[
    "add_nodes",
    "remove_nodes",
    "list_nodes",
    "get_node_info",
    "set_password",
    "load_dump",
    "run",
    "interrupt",
    "cleanup",
    "on_autoscaling",
    "off_autoscaling",
    "get_logs",
    "upload_code_version",
    "list_code_versions",
    "enable_code",
    "delete_code_version",
];
/// The members of a generic service as its agents were last told (`{role: [address]}`).
const MEMBERS: &str = "var/conpaas/members.json";

/// What the actions changed of a service, over its manifest's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dump: Option<String>,
    /// A generic service's last script asked for, and its serial: `run 3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    autoscaling: Option<autoscale::Policy>,
    /// Code versions uploaded after the manifest's (archive URLs; `code-2` is the first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    versions: Vec<String>,
    /// The code version enabled, when not the manifest's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enabled: Option<String>,
}

impl Settings {
    /// Every code version by its id: the manifest's archive is `code-1`.
    fn code_versions(&self, manifest: Option<&String>) -> Vec<(String, String)> {
        manifest
            .into_iter()
            .chain(&self.versions)
            .enumerate()
            .map(|(n, url)| (format!("code-{}", n + 1), url.clone()))
            .collect()
    }
}

fn read_settings(directory: &Path) -> Result<Settings, String> {
    let path = directory.join(SETTINGS);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// The service as its manifest asked for it, with what the actions changed since.
fn with_settings(directory: &Path, mut spec: Spec) -> Result<Spec, String> {
    let settings = read_settings(directory)?;
    if settings.password.is_some() {
        spec.password = settings.password;
    }
    if settings.dump.is_some() {
        spec.dump = settings.dump.clone();
    }
    if let Some(enabled) = &settings.enabled {
        spec.archive = Some(enabled.clone());
    }
    Ok(spec)
}
/// Roles that balance over the others.
const BALANCERS: &[&str] = &["proxy", "glb"];
/// How long `remove_nodes` waits for the balancers to leave the nodes out.
const DRAIN: Duration = Duration::from_secs(30);

/// What a manager's action needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagerConfig {
    pub connection: Connection,
    pub instance: i64,
    pub release: String,
    pub spec: Spec,
    /// The manager's partition.
    pub directory: PathBuf,
}

pub(crate) fn register(registry: &mut Registry) {
    registry.add("grove:conpaas", Box::new(ConPaaS));
}

struct ConPaaS;

impl Recipe for ConPaaS {
    fn install(
        &self,
        ctx: &Context<'_>,
        _: &Options<'_>,
        _: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        run(ctx)?;
        Ok(Vec::new())
    }

    // Every run does it all again: the agents' addresses and the counts change
    // between runs, never the part's options.
    fn update(&self, ctx: &Context<'_>, _: &Options<'_>, _: &Resolved) -> Result<(), String> {
        run(ctx)
    }
}

fn run(ctx: &Context<'_>) -> Result<(), String> {
    let partition = ctx
        .partition
        .ok_or("grove:conpaas runs in a partition only")?;
    let instance = &partition.instance;
    let kind = service::builtin_kind(&instance.software_release).ok_or_else(|| {
        format!(
            "{} is no ConPaaS release Grove ships",
            instance.software_release
        )
    })?;
    if instance.software_type == service::MANAGER {
        return manager(ctx, partition);
    }
    agent_actions(ctx)?;
    match (kind, instance.software_type.as_str()) {
        ("php", "web" | "backend") => php_web(ctx, partition),
        ("php", "proxy") => php_proxy(ctx, partition),
        ("mysql", "mysql") => mysql_node(ctx, partition),
        ("mysql", "glb") => mysql_glb(ctx, partition),
        ("generic", "master" | "node") => generic_node(ctx, partition),
        (kind, role) => Err(format!(
            "the {role} agent of a {kind} service is not available on this node yet"
        )),
    }
}

// The manager.

/// A secret made once and kept in the partition (`var/conpaas/NAME`, private).
fn kept_secret(ctx: &Context<'_>, name: &str) -> Result<String, String> {
    let path = ctx.inside(&Path::new("var/conpaas").join(name))?;
    if let Ok(text) = std::fs::read_to_string(&path)
        && !text.trim().is_empty()
    {
        return Ok(text.trim().to_owned());
    }
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| "the system random source failed".to_owned())?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_file(&path, secret.as_bytes(), 0o600)?;
    Ok(secret)
}

fn read_roles(path: &Path) -> Result<Option<BTreeMap<String, u32>>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn write_roles(path: &Path, roles: &BTreeMap<String, u32>) -> Result<(), String> {
    let text = serde_json::to_vec_pretty(roles).map_err(|e| e.to_string())?;
    Ok(write_file(path, &text, 0o600)?)
}

fn manager(ctx: &Context<'_>, partition: &Partition<'_>) -> Result<(), String> {
    let instance = &partition.instance;
    let given = Spec::from_parameters(&instance.parameters)?;
    let given_text = serde_json::to_string_pretty(&given).map_err(|e| e.to_string())?;
    write_changed(&ctx.inside(Path::new(GIVEN))?, &given_text, 0o600)?;
    let spec = with_settings(&ctx.directory, given)?;
    let roles_path = ctx.inside(Path::new(ROLES))?;
    let roles = match read_roles(&roles_path)? {
        Some(roles) => roles,
        None => {
            write_roles(&roles_path, &spec.roles)?;
            spec.roles.clone()
        }
    };
    let mut spec = spec;
    if spec.kind == "mysql" && spec.password.is_none() {
        spec.password = Some(kept_secret(ctx, "password")?);
    }
    let config = ManagerConfig {
        connection: partition.connection.clone(),
        instance: instance.id,
        release: instance.software_release.clone(),
        spec: spec.clone(),
        directory: ctx.directory.clone(),
    };
    let config_path = ctx.inside(Path::new(MANAGER_CONFIG))?;
    let text = serde_json::to_vec_pretty(&config).map_err(|e| e.to_string())?;
    write_file(&config_path, &text, 0o600)?;
    // The binary running this profile is `grove`.
    let grove = std::env::current_exe().map_err(|e| format!("cannot find grove: {e}"))?;
    for name in ACTIONS {
        let path = ctx.inside(&Path::new(api::actions::ACTION_DIR).join(name))?;
        let script = format!(
            "#!/bin/sh\nexec {} app conpaas-action --config {} {name}\n",
            shell_quote(&grove.display().to_string()),
            shell_quote(&config_path.display().to_string()),
        );
        write_file(&path, script.as_bytes(), 0o700)?;
    }
    let state = instance.requested_state;
    let (scaled, status) = autoscale(ctx, &config, partition, &roles)?;
    let mut outcome = reconcile(partition.master, &config, &scaled, state)?;
    if scaled != roles {
        write_roles(&roles_path, &scaled)?;
        if service::agents(&scaled).len() < service::agents(&roles).len() {
            outcome = drain_and_destroy(partition.master, &config, &roles, &scaled)?;
        }
    }
    if let Some(status) = status {
        outcome
            .published
            .insert(conpaas_keys::AUTOSCALING.to_owned(), status.into());
    }
    if let Ok(mut requested) = partition.requested.lock() {
        requested.extend(outcome.nodes.iter().map(|n| n.title.clone()));
    }
    partition
        .master
        .publish(
            instance.id,
            &api::Publish {
                parameters: outcome.published,
                shared_instance: None,
            },
        )
        .map_err(|e| format!("cannot publish: {e}"))
}

/// When the service scales itself: the last change, seconds since the epoch.
const AUTOSCALED: &str = "var/conpaas/autoscaled";

fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One step of the autoscaler, at each run of the manager: the response time of the
/// policy's page through the service's URL (the median of five requests), the decision,
/// the counts it leads to, and what to say of it.
fn autoscale(
    ctx: &Context<'_>,
    config: &ManagerConfig,
    partition: &Partition<'_>,
    roles: &BTreeMap<String, u32>,
) -> Result<(BTreeMap<String, u32>, Option<String>), String> {
    let Some(policy) = read_settings(&config.directory)?.autoscaling else {
        return Ok((roles.clone(), None));
    };
    let Some(url) = text(&partition.instance.connection, conpaas_keys::URL) else {
        return Ok((
            roles.clone(),
            Some("waiting for the service's url".to_owned()),
        ));
    };
    let page = format!("{}{}", url.trim_end_matches('/'), policy.path);
    let mut times: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            // A failing page counts with the time it took to fail.
            let _ = ctx.fetcher.download(&page, &mut std::io::sink());
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let measured = times[times.len() / 2];
    let marker = ctx.inside(Path::new(AUTOSCALED))?;
    let now = now_seconds();
    let since = std::fs::read_to_string(&marker)
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .map(|last| now.saturating_sub(last));
    let count = roles.get(&policy.role).copied().unwrap_or(0);
    let decision = autoscale::decide(&policy, count, measured, since);
    let kind = &config.spec.kind;
    let scaled = match decision {
        autoscale::Decision::Up => service::add_nodes(kind, roles, &policy.role, 1),
        autoscale::Decision::Down => service::remove_nodes(kind, roles, &policy.role, 1),
        autoscale::Decision::Stay => Ok(roles.clone()),
    }
    .map_err(|e| format!("autoscaling: {e}"))?;
    if decision != autoscale::Decision::Stay {
        write_file(&marker, now.to_string().as_bytes(), 0o600)?;
        tracing::info!(role = %policy.role, ?decision, measured, "autoscaling");
    }
    let status = format!(
        "{} {}..{}: {count} nodes, {measured:.0} ms for {} ms",
        policy.role, policy.min, policy.max, policy.response_time
    );
    Ok((scaled, Some(status)))
}

/// An agent as the manager sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub title: String,
    pub role: String,
    pub instance: i64,
    /// `ip:port` (a generic agent: `ip`), once it published it.
    pub address: Option<String>,
    pub state: Option<String>,
    /// A generic agent's last script and how it ended (`run 3: exit status: 0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// Why its last deployment failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a reconciliation found.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub nodes: Vec<Node>,
    /// What the manager publishes.
    pub published: api::Parameters,
}

fn text(parameters: &api::Parameters, key: &str) -> Option<String> {
    parameters
        .get(key)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

/// The parameters of an agent: what of the service it runs, and `extra`.
fn agent_parameters(spec: &Spec, role: &str, extra: &[(&str, String)]) -> api::Parameters {
    let mut out = api::Parameters::new();
    let mut put = |key: &str, value: Option<&String>| {
        if let Some(value) = value {
            out.insert(key.to_owned(), serde_json::Value::String(value.clone()));
        }
    };
    put("application", Some(&spec.application));
    put("service", Some(&spec.service));
    put("role", Some(&role.to_owned()));
    put("archive", spec.archive.as_ref());
    put("startupscript", spec.startupscript.as_ref());
    put("dump", spec.dump.as_ref());
    put("password", spec.password.as_ref());
    for (key, value) in extra {
        out.insert((*key).to_owned(), serde_json::Value::String(value.clone()));
    }
    out
}

fn request_agent(
    master: &dyn Master,
    config: &ManagerConfig,
    agent: &Agent,
    parameters: api::Parameters,
    state: api::RequestedState,
) -> Result<api::Instance, String> {
    master
        .request(&api::InstanceRequest {
            title: agent.title.clone(),
            software_release: config.release.clone(),
            software_type: agent.role.clone(),
            parameters,
            state,
            shared: false,
            sla: BTreeMap::new(),
            project: None,
        })
        .map_err(|e| format!("cannot request agent {}: {e}", agent.title))
}

fn node_of(agent: &Agent, child: &api::Instance) -> Node {
    Node {
        title: agent.title.clone(),
        role: agent.role.clone(),
        instance: child.id,
        address: text(&child.connection, "address"),
        state: child.reported_state.map(|s| s.as_str().to_owned()),
        script: text(&child.connection, "script"),
        error: (child.reported_state == Some(api::ReportedState::Error))
            .then(|| child.error.clone())
            .flatten(),
    }
}

/// Requests every agent of `roles` (the balancers last, with the addresses of the
/// others), and says what the manager publishes: `nodes`, `ready` (every agent
/// published, every balancer took the addresses it was given) and `url`.
pub fn reconcile(
    master: &dyn Master,
    config: &ManagerConfig,
    roles: &BTreeMap<String, u32>,
    state: api::RequestedState,
) -> Result<Outcome, String> {
    let spec = &config.spec;
    let mut extra = links(master, spec)?;
    let agents = service::agents(roles);
    let (balancers, workers): (Vec<&Agent>, Vec<&Agent>) = agents
        .iter()
        .partition(|a| BALANCERS.contains(&a.role.as_str()));
    // A generic service's agents are told who the members are, and which script to run.
    let members_path = config.directory.join(MEMBERS);
    let generic = spec.kind == "generic";
    if generic {
        let told = std::fs::read_to_string(&members_path).unwrap_or_else(|_| "{}".to_owned());
        extra.push(("members", told));
        if let Some(command) = read_settings(&config.directory)?.command {
            extra.push(("command", command));
        }
    }
    let mut nodes = Vec::new();
    for agent in &workers {
        let child = request_agent(
            master,
            config,
            agent,
            agent_parameters(spec, &agent.role, &extra),
            state,
        )?;
        nodes.push(node_of(agent, &child));
    }
    if generic {
        let mut members: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for node in &nodes {
            if let Some(address) = &node.address {
                members.entry(&node.role).or_default().push(address);
            }
        }
        let members = serde_json::to_string(&members).map_err(|e| e.to_string())?;
        if extra.iter().all(|(k, v)| *k != "members" || *v != members) {
            // Told again with who is there now: each agent's notify.sh runs.
            write_file(&members_path, members.as_bytes(), 0o600)?;
            extra.retain(|(k, _)| *k != "members");
            extra.push(("members", members));
            nodes.clear();
            for agent in &workers {
                let child = request_agent(
                    master,
                    config,
                    agent,
                    agent_parameters(spec, &agent.role, &extra),
                    state,
                )?;
                nodes.push(node_of(agent, &child));
            }
        }
    }
    let mut backends: Vec<String> = nodes.iter().filter_map(|n| n.address.clone()).collect();
    backends.sort();
    let backends = backends.join(" ");
    let mut ready = nodes.iter().all(|n| n.address.is_some());
    let mut url = None;
    for agent in &balancers {
        let child = request_agent(
            master,
            config,
            agent,
            agent_parameters(spec, &agent.role, &[("backends", backends.clone())]),
            state,
        )?;
        ready &= text(&child.connection, "backends").as_deref() == Some(backends.as_str());
        if url.is_none() {
            url = text(&child.connection, conpaas_keys::URL);
        }
        nodes.push(node_of(agent, &child));
    }
    let mut by_role: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for node in &nodes {
        by_role.entry(node.role.clone()).or_default().push(format!(
            "{} {}",
            node.title,
            node.address.as_deref().unwrap_or("-")
        ));
    }
    let mut published = api::Parameters::new();
    let failing: BTreeMap<&str, &str> = nodes
        .iter()
        .filter_map(|n| Some((n.title.as_str(), n.error.as_deref()?)))
        .collect();
    if !failing.is_empty() {
        let text = serde_json::to_string(&failing).map_err(|e| e.to_string())?;
        published.insert(conpaas_keys::FAILING.to_owned(), text.into());
    }
    let nodes_text = serde_json::to_string(&by_role).map_err(|e| e.to_string())?;
    published.insert(conpaas_keys::NODES.to_owned(), nodes_text.into());
    published.insert(
        conpaas_keys::READY.to_owned(),
        (if ready { "true" } else { "false" }).into(),
    );
    if let Some(url) = url {
        published.insert(conpaas_keys::URL.to_owned(), url.into());
    }
    if spec.kind == "mysql" {
        // Clients connect through the balancer when there is one, else to the first node.
        let address = nodes
            .iter()
            .filter(|n| n.role == "glb")
            .chain(nodes.iter().filter(|n| n.role == "mysql"))
            .find_map(|n| n.address.clone());
        if let Some(address) = address {
            published.insert("address".to_owned(), address.into());
        }
        published.insert("user".to_owned(), mysql::USER.into());
        if let Some(password) = &spec.password {
            published.insert("password".to_owned(), password.clone().into());
        }
    }
    Ok(Outcome { nodes, published })
}

/// What a web service's nodes are told of the application's MySQL service (its address,
/// user and password, as ConPaaS gave `MYSQL_IP` to PHP): read from the application,
/// which a manager's partition may read.
fn links(master: &dyn Master, spec: &Spec) -> Result<Vec<(&'static str, String)>, String> {
    if !matches!(spec.kind.as_str(), "php" | "java") {
        return Ok(Vec::new());
    }
    let view = master
        .application(&spec.application)
        .map_err(|e| format!("cannot read application {}: {e}", spec.application))?;
    let Some(database) = view.services.iter().find(|s| s.kind == "mysql") else {
        return Ok(Vec::new());
    };
    let value = |key: &str| text(&database.connection, key);
    let mut out = Vec::new();
    if let Some((host, port)) = value("address").as_deref().and_then(|a| a.rsplit_once(':')) {
        out.push(("mysql_host", host.to_owned()));
        out.push(("mysql_port", port.to_owned()));
    }
    if let Some(user) = value("user") {
        out.push(("mysql_user", user));
    }
    if let Some(password) = value("password") {
        out.push(("mysql_password", password));
    }
    Ok(out)
}

/// Runs a manager's action (`grove app conpaas-action`) and answers its result.
pub fn act(
    master: &dyn Master,
    config: &ManagerConfig,
    name: &str,
    parameters: &api::Parameters,
) -> Result<serde_json::Value, String> {
    let roles_path = config.directory.join(ROLES);
    let roles = read_roles(&roles_path)?.unwrap_or_else(|| config.spec.roles.clone());
    let config = &ManagerConfig {
        spec: with_settings(&config.directory, config.spec.clone())?,
        ..config.clone()
    };
    let started = api::RequestedState::Started;
    let listed = |outcome: &Outcome, roles: &BTreeMap<String, u32>| serde_json::json!({ "roles": roles, "nodes": outcome.nodes });
    match name {
        "list_nodes" => {
            let outcome = reconcile(master, config, &roles, started)?;
            Ok(listed(&outcome, &roles))
        }
        "get_node_info" => {
            let title = text(parameters, "node").ok_or("get_node_info needs --param node=TITLE")?;
            let outcome = reconcile(master, config, &roles, started)?;
            let node = outcome
                .nodes
                .iter()
                .find(|n| n.title == title)
                .ok_or_else(|| format!("the service has no node {title:?}"))?;
            serde_json::to_value(node).map_err(|e| e.to_string())
        }
        "add_nodes" | "remove_nodes" => {
            let role = text(parameters, "role").ok_or("give the role: --param role=ROLE")?;
            let count = match parameters.get("count") {
                None => 1,
                Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(0),
                Some(serde_json::Value::String(s)) => s
                    .parse()
                    .map_err(|_| format!("count {s:?} is not a number of nodes"))?,
                Some(other) => return Err(format!("count {other} is not a number of nodes")),
            };
            let count = u32::try_from(count).map_err(|_| format!("count {count}: too many"))?;
            let kind = &config.spec.kind;
            let new = if name == "add_nodes" {
                service::add_nodes(kind, &roles, &role, count)
            } else {
                service::remove_nodes(kind, &roles, &role, count)
            }
            .map_err(|e| e.to_string())?;
            write_roles(&roles_path, &new)?;
            let mut outcome = reconcile(master, config, &new, started)?;
            if name == "remove_nodes" {
                outcome = drain_and_destroy(master, config, &roles, &new)?;
            }
            // Published now, so that the service shows its new nodes at once.
            master
                .publish(
                    config.instance,
                    &api::Publish {
                        parameters: outcome.published.clone(),
                        shared_instance: None,
                    },
                )
                .map_err(|e| format!("cannot publish: {e}"))?;
            Ok(listed(&outcome, &new))
        }
        "get_logs" => {
            // Each agent's own `get_logs` action, which only its manager may run.
            let outcome = reconcile(master, config, &roles, started)?;
            let only = text(parameters, "node");
            let mut logs = serde_json::Map::new();
            for node in outcome
                .nodes
                .iter()
                .filter(|n| only.as_ref().is_none_or(|o| *o == n.title))
            {
                let asked = master.action(
                    node.instance,
                    &api::actions::ActionRequest {
                        name: "get_logs".to_owned(),
                        parameters: api::Parameters::new(),
                        wait: Some(30),
                    },
                );
                let value = match asked {
                    Ok(action) => match (action.result, action.error) {
                        (Some(result), _) => result,
                        (None, Some(error)) => serde_json::json!({ "error": error }),
                        (None, None) => serde_json::json!({ "error": "no answer yet" }),
                    },
                    Err(e) => serde_json::json!({ "error": e.to_string() }),
                };
                logs.insert(node.title.clone(), value);
            }
            if let Some(only) = only
                && logs.is_empty()
            {
                return Err(format!("the service has no node {only:?}"));
            }
            Ok(serde_json::Value::Object(logs))
        }
        "upload_code_version" | "list_code_versions" | "enable_code" | "delete_code_version" => {
            code_versions(master, config, &roles, name, parameters)
        }
        "on_autoscaling" | "off_autoscaling" => {
            let mut settings = read_settings(&config.directory)?;
            settings.autoscaling = if name == "on_autoscaling" {
                let policy = policy_of(parameters, &config.spec.kind)?;
                Some(policy)
            } else {
                None
            };
            let path = config.directory.join(SETTINGS);
            let text = serde_json::to_vec_pretty(&settings).map_err(|e| e.to_string())?;
            write_file(&path, &text, 0o600)?;
            Ok(serde_json::json!({ "autoscaling": settings.autoscaling }))
        }
        "run" | "interrupt" | "cleanup" => {
            if config.spec.kind != "generic" {
                return Err(format!(
                    "{name} is an action of a generic service's manager"
                ));
            }
            let mut settings = read_settings(&config.directory)?;
            let serial = settings
                .command
                .as_deref()
                .and_then(|c| c.rsplit_once(' '))
                .and_then(|(_, n)| n.parse::<u64>().ok())
                .unwrap_or(0);
            settings.command = Some(format!("{name} {}", serial + 1));
            let path = config.directory.join(SETTINGS);
            let text = serde_json::to_vec_pretty(&settings).map_err(|e| e.to_string())?;
            write_file(&path, &text, 0o600)?;
            // Each agent runs the script on its next run, which the new parameters start.
            let outcome = reconcile(master, config, &roles, started)?;
            Ok(listed(&outcome, &roles))
        }
        "set_password" | "load_dump" => {
            if config.spec.kind != "mysql" {
                return Err(format!("{name} is an action of a mysql service's manager"));
            }
            let (key, what) = if name == "set_password" {
                ("password", "the new password: --param password=SECRET")
            } else {
                ("dump", "the dump's URL: --param dump=URL")
            };
            let value = text(parameters, key)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("give {what}"))?;
            let mut settings = read_settings(&config.directory)?;
            if name == "set_password" {
                settings.password = Some(value);
            } else {
                settings.dump = Some(value);
            }
            let path = config.directory.join(SETTINGS);
            let text = serde_json::to_vec_pretty(&settings).map_err(|e| e.to_string())?;
            write_file(&path, &text, 0o600)?;
            let config = ManagerConfig {
                spec: with_settings(&config.directory, config.spec.clone())?,
                ..config.clone()
            };
            // Each node applies it on its next run, which the new parameters start.
            let outcome = reconcile(master, &config, &roles, started)?;
            master
                .publish(
                    config.instance,
                    &api::Publish {
                        parameters: outcome.published.clone(),
                        shared_instance: None,
                    },
                )
                .map_err(|e| format!("cannot publish: {e}"))?;
            Ok(listed(&outcome, &roles))
        }
        other => Err(format!("a manager has no action {other:?}")),
    }
}

/// The code versions' actions: upload (an archive's URL), list, enable, delete.
fn code_versions(
    master: &dyn Master,
    config: &ManagerConfig,
    roles: &BTreeMap<String, u32>,
    name: &str,
    parameters: &api::Parameters,
) -> Result<serde_json::Value, String> {
    if !matches!(config.spec.kind.as_str(), "php" | "java" | "generic") {
        return Err(format!(
            "a {} service has no code versions",
            config.spec.kind
        ));
    }
    let mut settings = read_settings(&config.directory)?;
    // The manifest's archive, as the manager was given it.
    let manifest = given(&config.directory)?.and_then(|s| s.archive);
    let version = || text(parameters, "version").ok_or("give the version: --param version=code-N");
    let changed = match name {
        "upload_code_version" => {
            let url = text(parameters, "url")
                .filter(|u| !u.trim().is_empty())
                .ok_or("give the archive's URL: --param url=URL")?;
            settings.versions.push(url);
            false
        }
        "enable_code" => {
            let id = version()?;
            let url = settings
                .code_versions(manifest.as_ref())
                .into_iter()
                .find(|(v, _)| *v == id)
                .map(|(_, url)| url)
                .ok_or_else(|| format!("the service has no code version {id:?}"))?;
            settings.enabled = Some(url);
            true
        }
        "delete_code_version" => {
            let id = version()?;
            let versions = settings.code_versions(manifest.as_ref());
            let Some(position) = versions.iter().position(|(v, _)| *v == id) else {
                return Err(format!("the service has no code version {id:?}"));
            };
            let active = settings.enabled.as_ref().or(manifest.as_ref());
            if active == Some(&versions[position].1) {
                return Err(format!("{id} is enabled: enable another first"));
            }
            if position == 0 && manifest.is_some() {
                return Err(format!("{id} is the manifest's: it stays"));
            }
            settings
                .versions
                .remove(position - usize::from(manifest.is_some()));
            false
        }
        _ => false,
    };
    let path = config.directory.join(SETTINGS);
    let text = serde_json::to_vec_pretty(&settings).map_err(|e| e.to_string())?;
    write_file(&path, &text, 0o600)?;
    if changed {
        // The nodes unpack and serve it on their next run, which this starts.
        let config = ManagerConfig {
            spec: with_settings(&config.directory, config.spec.clone())?,
            ..config.clone()
        };
        reconcile(master, &config, roles, api::RequestedState::Started)?;
    }
    let active = settings.enabled.as_ref().or(manifest.as_ref());
    let listed: Vec<serde_json::Value> = settings
        .code_versions(manifest.as_ref())
        .into_iter()
        .map(|(id, url)| {
            serde_json::json!({"version": id, "active": Some(&url) == active, "url": url})
        })
        .collect();
    Ok(serde_json::json!({ "versions": listed }))
}

/// The service as the manager was given it, before any action (none before its first
/// run).
fn given(directory: &Path) -> Result<Option<Spec>, String> {
    let path = directory.join(GIVEN);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// An autoscaling policy from an action's parameters (numbers as numbers or strings).
fn policy_of(parameters: &api::Parameters, kind: &str) -> Result<autoscale::Policy, String> {
    let number = |key: &str| -> Result<Option<f64>, String> {
        match parameters.get(key) {
            None => Ok(None),
            Some(serde_json::Value::Number(n)) => Ok(n.as_f64()),
            Some(serde_json::Value::String(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| format!("{key} {s:?} is not a number")),
            Some(other) => Err(format!("{key} {other} is not a number")),
        }
    };
    let whole = |key: &str, default: u64| -> Result<u64, String> {
        match number(key)? {
            None => Ok(default),
            Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= 1e9 => Ok(n as u64),
            Some(n) => Err(format!("{key} {n} is not a whole number")),
        }
    };
    let role = text(parameters, "role").ok_or("give the role: --param role=ROLE")?;
    service::add_nodes(kind, &BTreeMap::new(), &role, 1).map_err(|e| e.to_string())?;
    let count = |key: &str| -> Result<u32, String> {
        u32::try_from(whole(key, 1)?).map_err(|_| format!("{key}: too many"))
    };
    let policy = autoscale::Policy {
        min: count("min")?,
        max: count("max")?,
        response_time: number("response_time")?
            .ok_or("give the response time aimed at: --param response_time=MS")?,
        path: text(parameters, "path").unwrap_or_else(|| "/".to_owned()),
        cool_down: whole("cool_down", 60)?,
        role,
    };
    policy.check().map_err(|e| e.to_string())?;
    Ok(policy)
}

/// Waits until every balancer took the new set of addresses (so that no request goes to
/// a node about to leave), then destroys the nodes that left.
fn drain_and_destroy(
    master: &dyn Master,
    config: &ManagerConfig,
    before: &BTreeMap<String, u32>,
    after: &BTreeMap<String, u32>,
) -> Result<Outcome, String> {
    let deadline = Instant::now() + DRAIN;
    let outcome = loop {
        let outcome = reconcile(master, config, after, api::RequestedState::Started)?;
        let taken = outcome
            .published
            .get(conpaas_keys::READY)
            .and_then(|v| v.as_str())
            == Some("true");
        if taken || Instant::now() >= deadline {
            break outcome;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let kept = service::agents(after);
    for agent in service::agents(before) {
        if !kept.contains(&agent) {
            request_agent(
                master,
                config,
                &agent,
                agent_parameters(&config.spec, &agent.role, &[]),
                api::RequestedState::Destroyed,
            )?;
        }
    }
    Ok(outcome)
}

// The agents.

/// The logs an agent's `get_logs` gives: the end of each.
const LOG_TAIL: u64 = 4000;

/// An agent's actions (its manager's only): `get_logs`.
fn agent_actions(ctx: &Context<'_>) -> Result<(), String> {
    let grove = std::env::current_exe().map_err(|e| format!("cannot find grove: {e}"))?;
    let path = ctx.inside(&Path::new(api::actions::ACTION_DIR).join("get_logs"))?;
    let script = format!(
        "#!/bin/sh\nexec {} app conpaas-logs --dir {}\n",
        shell_quote(&grove.display().to_string()),
        shell_quote(&ctx.directory.display().to_string()),
    );
    write_changed(&path, &script, 0o700)?;
    Ok(())
}

/// The end of each log of an agent's partition (`var/log/`, and its services' output in
/// `.grove/log/`), by path below the partition; run as the partition's user.
pub fn logs(directory: &Path) -> serde_json::Value {
    use std::io::{Read as _, Seek as _};
    let mut out = serde_json::Map::new();
    for dir in ["var/log", ".grove/log"] {
        let Ok(entries) = std::fs::read_dir(directory.join(dir)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let Ok(mut file) = std::fs::File::open(&path) else {
                continue;
            };
            let length = file.metadata().map_or(0, |m| m.len());
            let _ = file.seek(std::io::SeekFrom::Start(length.saturating_sub(LOG_TAIL)));
            let mut bytes = Vec::new();
            let _ = file.take(LOG_TAIL).read_to_end(&mut bytes);
            let name = path
                .strip_prefix(directory)
                .map_or_else(|_| path.display().to_string(), |p| p.display().to_string());
            out.insert(name, String::from_utf8_lossy(&bytes).into_owned().into());
        }
    }
    serde_json::Value::Object(out)
}

/// The partition's IPv4 address, which its servers listen on.
fn ipv4(partition: &Partition<'_>) -> Result<String, String> {
    partition
        .addresses
        .iter()
        .find(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
        .cloned()
        .ok_or_else(|| format!("partition {} has no IPv4 address", partition.reference))
}

/// A free port on `ip` in `range`, kept in the partition so that it stays the same.
fn kept_port(
    ctx: &Context<'_>,
    name: &str,
    ip: &str,
    range: std::ops::RangeInclusive<u16>,
) -> Result<u16, String> {
    let path = ctx.inside(&Path::new("var/conpaas").join(format!("{name}.port")))?;
    if let Some(port) = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| t.trim().parse::<u16>().ok())
        .filter(|p| range.contains(p))
    {
        return Ok(port);
    }
    let (first, last) = (*range.start(), *range.end());
    let port = range
        .into_iter()
        .find(|p| std::net::TcpListener::bind((ip, *p)).is_ok())
        .ok_or_else(|| format!("no free port on {ip} between {first} and {last}"))?;
    write_file(&path, port.to_string().as_bytes(), 0o600)?;
    Ok(port)
}

/// Where the system's programs are, in the order the services' `PATH` has them.
const PROGRAM_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// A program of the system: the first of `names`, or the newest `prefix*` (php-fpm8.2).
fn program(names: &[&str], prefix: Option<&str>, package: &str) -> Result<PathBuf, String> {
    for dir in PROGRAM_DIRS {
        for name in names {
            let path = Path::new(dir).join(name);
            if path.is_file() {
                return Ok(path);
            }
        }
    }
    if let Some(prefix) = prefix {
        for dir in PROGRAM_DIRS {
            let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .map(|e| e.path())
                .collect();
            found.sort();
            if let Some(path) = found.pop() {
                return Ok(path);
            }
        }
    }
    Err(format!(
        "{} is not installed on this node (Debian's package: {package})",
        names.first().copied().unwrap_or_default()
    ))
}

/// Writes `text` at `path` unless it is there already; whether it changed.
fn write_changed(path: &Path, text: &str, mode: u32) -> Result<bool, String> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    write_file(path, text.as_bytes(), mode)?;
    Ok(true)
}

/// Tells a running server (its pid in `pid_file`) to read its configuration again.
fn reload(pid_file: &Path, signal: nix::sys::signal::Signal) {
    let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .filter(|p| *p > 1)
    else {
        return;
    };
    if let Err(e) = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal) {
        tracing::debug!(pid, error = %e, "no server to reload");
    }
}

/// The directories an agent's servers use, made.
struct AgentDirs {
    run: PathBuf,
    tmp: PathBuf,
    log: PathBuf,
    etc: PathBuf,
}

impl AgentDirs {
    fn make(ctx: &Context<'_>) -> Result<AgentDirs, String> {
        let dirs = AgentDirs {
            run: ctx.inside(Path::new("var/run"))?,
            tmp: ctx.inside(Path::new("tmp/nginx"))?,
            log: ctx.inside(Path::new("var/log"))?,
            etc: ctx.inside(Path::new("etc/conpaas"))?,
        };
        let state = ctx.inside(Path::new("var/conpaas"))?;
        for dir in [&dirs.run, &dirs.tmp, &dirs.log, &dirs.etc, &state] {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        Ok(dirs)
    }

    fn php(&self) -> Dirs<'_> {
        Dirs {
            run: &self.run,
            tmp: &self.tmp,
            log: &self.log,
        }
    }
}

fn service(ctx: &Context<'_>, name: &str, command: &str) -> Result<(), String> {
    let path = ctx.inside(&Path::new("etc/service").join(name))?;
    write_changed(&path, &format!("#!/bin/sh\nexec {command}\n"), 0o700)?;
    Ok(())
}

fn nginx_service(ctx: &Context<'_>, conf: &Path) -> Result<(), String> {
    let nginx = program(&["nginx"], None, "nginx")?;
    service(
        ctx,
        "nginx",
        &format!(
            "{} -p {} -c {} -e stderr -g 'daemon off;'",
            shell_quote(&nginx.display().to_string()),
            shell_quote(&ctx.directory.display().to_string()),
            shell_quote(&conf.display().to_string()),
        ),
    )
}

fn publish(partition: &Partition<'_>, values: &[(&str, String)]) -> Result<(), String> {
    let parameters = values
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String(v.clone())))
        .collect();
    partition
        .master
        .publish(
            partition.instance.id,
            &api::Publish {
                parameters,
                shared_instance: None,
            },
        )
        .map_err(|e| format!("cannot publish: {e}"))
}

fn short_hash(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The code a web node serves: the archive at `url` unpacked once into
/// `srv/code-<hash>` (a code version), or a placeholder page without one.
fn code_version(ctx: &Context<'_>, url: Option<&str>) -> Result<PathBuf, String> {
    let Some(url) = url else {
        let dir = ctx.inside(Path::new("srv/code-default"))?;
        write_changed(
            &dir.join("index.php"),
            "<?php echo \"This ConPaaS service has no code yet.\\n\";\n",
            0o644,
        )?;
        return Ok(dir);
    };
    let dir = ctx.inside(&Path::new("srv").join(format!("code-{}", short_hash(url))))?;
    if dir.is_dir() {
        return Ok(dir);
    }
    let archive = ctx.inside(Path::new("var/conpaas/code.download"))?;
    let staging = ctx.inside(Path::new("srv/.code.new"))?;
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)
        .map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    {
        let mut file = std::fs::File::create(&archive)
            .map_err(|e| format!("cannot write {}: {e}", archive.display()))?;
        ctx.fetcher
            .download(url, &mut file)
            .map_err(|e| format!("cannot download the code archive {url}: {e}"))?;
    }
    let unpacked = crate::download::unpack(&archive, &staging);
    let _ = std::fs::remove_file(&archive);
    unpacked.map_err(|e| format!("the code archive {url}: {e}"))?;
    std::fs::rename(&staging, &dir).map_err(|e| format!("cannot keep the code: {e}"))?;
    Ok(dir)
}

/// Runs the service's startup script once per script URL, in the partition.
fn startup_script(ctx: &Context<'_>, url: &str) -> Result<(), String> {
    let done =
        ctx.inside(&Path::new("var/conpaas").join(format!("startup-{}.done", short_hash(url))))?;
    if done.is_file() {
        return Ok(());
    }
    let script = ctx.inside(Path::new("var/conpaas/startup.sh"))?;
    {
        let mut file = std::fs::File::create(&script)
            .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
        ctx.fetcher
            .download(url, &mut file)
            .map_err(|e| format!("cannot download the startup script {url}: {e}"))?;
    }
    let output = std::process::Command::new("/bin/sh")
        .arg(&script)
        .current_dir(&ctx.directory)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the startup script: {e}"))?;
    let log = ctx.inside(Path::new("var/log/startup.log"))?;
    let mut text = output.stdout;
    text.extend_from_slice(&output.stderr);
    write_file(&log, &text, 0o600)?;
    if !output.status.success() {
        return Err(format!(
            "the startup script {url} failed ({}): see {}",
            output.status,
            log.display()
        ));
    }
    write_file(&done, b"", 0o600)?;
    Ok(())
}

/// A PHP web node: nginx serving the code, `.php` through php-fpm.
fn php_web(ctx: &Context<'_>, partition: &Partition<'_>) -> Result<(), String> {
    let parameters = &partition.instance.parameters;
    let fpm = program(&["php-fpm"], Some("php-fpm"), "php-fpm")?;
    let ip = ipv4(partition)?;
    let port = kept_port(ctx, "web", &ip, 8000..=8999)?;
    let dirs = AgentDirs::make(ctx)?;
    let code = code_version(ctx, text(parameters, "archive").as_deref())?;
    if let Some(url) = text(parameters, "startupscript") {
        startup_script(ctx, &url)?;
    }
    let socket = dirs.run.join("php-fpm.sock");
    let listen = format!("{ip}:{port}");
    let nginx_conf = dirs.etc.join("nginx.conf");
    let fpm_conf = dirs.etc.join("php-fpm.conf");
    let mut env = vec![
        (
            "CONPAAS_SERVICE".to_owned(),
            text(parameters, "service").unwrap_or_default(),
        ),
        (
            "CONPAAS_ROLE".to_owned(),
            partition.instance.software_type.clone(),
        ),
    ];
    for (key, name) in [
        ("mysql_host", "MYSQL_IP"),
        ("mysql_port", "MYSQL_PORT"),
        ("mysql_user", "MYSQL_USER"),
        ("mysql_password", "MYSQL_PASSWORD"),
    ] {
        if let Some(value) = text(parameters, key) {
            env.push((name.to_owned(), value));
        }
    }
    let nginx_changed = write_changed(
        &nginx_conf,
        &php::web_nginx(&listen, &code, &socket, &dirs.php()),
        0o600,
    )?;
    let fpm_changed = write_changed(
        &fpm_conf,
        &php::fpm_config(&socket, &dirs.php(), &env),
        0o600,
    )?;
    nginx_service(ctx, &nginx_conf)?;
    service(
        ctx,
        "php-fpm",
        &format!(
            "{} -F -y {} -p {}",
            shell_quote(&fpm.display().to_string()),
            shell_quote(&fpm_conf.display().to_string()),
            shell_quote(&ctx.directory.display().to_string()),
        ),
    )?;
    if nginx_changed {
        reload(
            &dirs.run.join("nginx.pid"),
            nix::sys::signal::Signal::SIGHUP,
        );
    }
    if fpm_changed {
        reload(
            &dirs.run.join("php-fpm.pid"),
            nix::sys::signal::Signal::SIGUSR2,
        );
    }
    publish(
        partition,
        &[
            ("address", listen.clone()),
            ("url", format!("http://{listen}/")),
        ],
    )
}

/// A PHP service's proxy: nginx balancing over the web nodes the manager gives.
fn php_proxy(ctx: &Context<'_>, partition: &Partition<'_>) -> Result<(), String> {
    let parameters = &partition.instance.parameters;
    let mut backends = Vec::new();
    for backend in text(parameters, "backends")
        .unwrap_or_default()
        .split_whitespace()
    {
        // Only addresses reach nginx's configuration.
        let address: std::net::SocketAddr = backend
            .parse()
            .map_err(|_| format!("backend {backend:?} is not an address and port"))?;
        backends.push(address.to_string());
    }
    let ip = ipv4(partition)?;
    let port = kept_port(ctx, "proxy", &ip, 8080..=8999)?;
    let dirs = AgentDirs::make(ctx)?;
    let listen = format!("{ip}:{port}");
    let conf = dirs.etc.join("nginx.conf");
    let changed = write_changed(
        &conf,
        &php::proxy_nginx(&listen, &backends, &dirs.php()),
        0o600,
    )?;
    nginx_service(ctx, &conf)?;
    if changed {
        reload(
            &dirs.run.join("nginx.pid"),
            nix::sys::signal::Signal::SIGHUP,
        );
    }
    publish(
        partition,
        &[
            ("address", listen.clone()),
            ("url", format!("http://{listen}/")),
            ("backends", backends.join(" ")),
        ],
    )
}

/// Runs a program as the partition's user (this profile's), its output kept in `log`.
fn run_logged(
    ctx: &Context<'_>,
    command: &mut std::process::Command,
    input: Option<&Path>,
    log: &str,
    what: &str,
) -> Result<(), String> {
    let log = ctx.inside(&Path::new("var/log").join(log))?;
    command.current_dir(&ctx.directory);
    command.stdin(match input {
        Some(path) => std::fs::File::open(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .into(),
        None => std::process::Stdio::null(),
    });
    let output = command
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let mut text = output.stdout;
    text.extend_from_slice(&output.stderr);
    write_file(&log, &text, 0o600)?;
    if output.status.success() {
        Ok(())
    } else {
        let said = String::from_utf8_lossy(&text);
        let last = said
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        Err(format!("{what} failed ({}): {last}", output.status))
    }
}

/// A MySQL node: MariaDB with the service's password set and its dump loaded, each once
/// (again when it changes). On the first run the server is not started yet: the
/// statements go to a temporary one, without network, stopped before the service starts.
fn mysql_node(ctx: &Context<'_>, partition: &Partition<'_>) -> Result<(), String> {
    let parameters = &partition.instance.parameters;
    let server = program(&["mariadbd", "mysqld"], None, "mariadb-server")?;
    let install = program(
        &["mariadb-install-db", "mysql_install_db"],
        None,
        "mariadb-server",
    )?;
    let client = program(&["mariadb", "mysql"], None, "mariadb-client")?;
    let ip = ipv4(partition)?;
    let port = kept_port(ctx, "mysql", &ip, 3306..=3399)?;
    let dirs = AgentDirs::make(ctx)?;
    let data = ctx.inside(Path::new("srv/mysql"))?;
    if !data.is_dir() {
        // Made aside and kept only once complete, so that a failure is tried again whole.
        let staging = ctx.inside(Path::new("srv/.mysql.new"))?;
        let _ = std::fs::remove_dir_all(&staging);
        // The partition's user administers its server through the socket.
        let uid = nix::unistd::getuid();
        let user = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map_or_else(|| uid.to_string(), |u| u.name);
        let mut command = std::process::Command::new(&install);
        command
            .arg("--no-defaults")
            .arg(format!("--user={user}"))
            .arg(format!("--datadir={}", staging.display()))
            .arg("--auth-root-authentication-method=socket")
            .arg("--skip-test-db");
        run_logged(
            ctx,
            &mut command,
            None,
            "mysql-install.log",
            "mariadb-install-db",
        )?;
        std::fs::rename(&staging, &data)
            .map_err(|e| format!("cannot keep the new database: {e}"))?;
    }
    let socket = dirs.run.join("mysqld.sock");
    let common = |socket: &Path, pid: &str| {
        vec![
            "--no-defaults".to_owned(),
            format!("--datadir={}", data.display()),
            format!("--socket={}", socket.display()),
            format!("--pid-file={}", dirs.run.join(pid).display()),
            format!("--log-error={}", dirs.log.join("mysqld.log").display()),
            "--skip-name-resolve".to_owned(),
        ]
    };
    let mut args = common(&socket, "mysqld.pid");
    args.push(format!("--bind-address={ip}"));
    args.push(format!("--port={port}"));
    let quoted: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
    service(
        ctx,
        "mariadb",
        &format!(
            "{} {}",
            shell_quote(&server.display().to_string()),
            quoted.join(" ")
        ),
    )?;
    // What is to apply: the password, the dump, each unless applied already.
    let mut steps: Vec<(PathBuf, PathBuf, String)> = Vec::new();
    let password = text(parameters, "password").unwrap_or_default();
    if !password.is_empty() {
        let done = ctx.inside(
            &Path::new("var/conpaas").join(format!("password-{}.done", short_hash(&password))),
        )?;
        if !done.is_file() {
            let sql = ctx.inside(Path::new("var/conpaas/password.sql"))?;
            write_file(&sql, mysql::password_sql(&password).as_bytes(), 0o600)?;
            steps.push((sql, done, "setting the password".to_owned()));
        }
    }
    if let Some(url) = text(parameters, "dump") {
        let done =
            ctx.inside(&Path::new("var/conpaas").join(format!("dump-{}.done", short_hash(&url))))?;
        if !done.is_file() {
            let dump = ctx.inside(Path::new("var/conpaas/dump.sql"))?;
            let mut file = std::fs::File::create(&dump)
                .map_err(|e| format!("cannot write {}: {e}", dump.display()))?;
            ctx.fetcher
                .download(&url, &mut file)
                .map_err(|e| format!("cannot download the dump {url}: {e}"))?;
            steps.push((dump, done, format!("loading the dump {url}")));
        }
    }
    if !steps.is_empty() {
        apply_sql(ctx, &server, &client, &socket, &common, &steps)?;
    }
    publish(partition, &[("address", format!("{ip}:{port}"))])
}

/// Runs each file of `steps` in MariaDB (the running server, else a temporary one) and
/// marks it done.
fn apply_sql(
    ctx: &Context<'_>,
    server: &Path,
    client: &Path,
    socket: &Path,
    common: &dyn Fn(&Path, &str) -> Vec<String>,
    steps: &[(PathBuf, PathBuf, String)],
) -> Result<(), String> {
    let ask = |target: &Path| {
        let mut command = std::process::Command::new(client);
        command
            .arg("--no-defaults")
            .arg(format!("--socket={}", target.display()));
        command
    };
    let live = socket.exists()
        && run_logged(
            ctx,
            ask(socket).args(["-e", "SELECT 1"]),
            None,
            "mysql-ping.log",
            "mariadb",
        )
        .is_ok();
    let temporary = if live {
        None
    } else {
        let setup_socket = socket.with_file_name("mysqld-setup.sock");
        let mut args = common(&setup_socket, "mysqld-setup.pid");
        args.push("--skip-networking".to_owned());
        let child = std::process::Command::new(server)
            .args(&args)
            .current_dir(&ctx.directory)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start MariaDB: {e}"))?;
        Some((child, setup_socket))
    };
    let target = temporary
        .as_ref()
        .map_or_else(|| socket.to_owned(), |(_, s)| s.clone());
    let applied = (|| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !target.exists() {
            if Instant::now() >= deadline {
                return Err("MariaDB did not start: see var/log/mysqld.log".to_owned());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for (sql, done, what) in steps {
            run_logged(ctx, &mut ask(&target), Some(sql), "mysql-setup.log", what)?;
            write_file(done, b"", 0o600)?;
        }
        Ok(())
    })();
    if let Some((mut child, _)) = temporary {
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = child.wait();
    }
    applied
}

/// A MySQL service's balancer: HAProxy in TCP mode over the MySQL nodes.
fn mysql_glb(ctx: &Context<'_>, partition: &Partition<'_>) -> Result<(), String> {
    let parameters = &partition.instance.parameters;
    let mut backends = Vec::new();
    for backend in text(parameters, "backends")
        .unwrap_or_default()
        .split_whitespace()
    {
        let address: std::net::SocketAddr = backend
            .parse()
            .map_err(|_| format!("backend {backend:?} is not an address and port"))?;
        backends.push(address.to_string());
    }
    let haproxy = program(&["haproxy"], None, "haproxy")?;
    let ip = ipv4(partition)?;
    let port = kept_port(ctx, "glb", &ip, 3306..=3399)?;
    let dirs = AgentDirs::make(ctx)?;
    let listen = format!("{ip}:{port}");
    let conf = dirs.etc.join("haproxy.cfg");
    let pid = dirs.run.join("haproxy.pid");
    let text = mysql::glb_haproxy(&listen, &backends, &pid);
    write_changed(&conf, &text, 0o600)?;
    // A new configuration restarts HAProxy: its wrapper names the configuration's hash.
    service(
        ctx,
        "haproxy",
        &format!(
            "{} -db -f {} # {}",
            shell_quote(&haproxy.display().to_string()),
            shell_quote(&conf.display().to_string()),
            short_hash(&text)
        ),
    )?;
    publish(
        partition,
        &[("address", listen), ("backends", backends.join(" "))],
    )
}

/// Runs `name` of a generic service's code (`init.sh`, `notify.sh`, `run.sh`...) if the
/// code has it, in the code's directory, its output appended to `var/log/scripts.log`;
/// how it ended.
fn generic_script(
    ctx: &Context<'_>,
    code: &Path,
    name: &str,
    env: &[(&str, String)],
) -> Result<Option<String>, String> {
    let script = code.join(name);
    if !script.is_file() {
        return Ok(None);
    }
    let mut command = std::process::Command::new("/bin/sh");
    command.arg(&script).current_dir(code);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {name}: {e}"))?;
    let log = ctx.inside(Path::new("var/log/scripts.log"))?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    use std::io::Write as _;
    let _ = writeln!(file, "== {name}: {}", output.status);
    let _ = file.write_all(&output.stdout);
    let _ = file.write_all(&output.stderr);
    Ok(Some(output.status.to_string()))
}

/// A generic service's agent (`master` or `node`): the code archive as a code version,
/// ConPaaS's scripts run as ConPaaS ran them: `init.sh` once per code version,
/// `notify.sh` whenever the members change (`$CONPAAS_AGENTS`, a JSON file of the
/// members' addresses by role), `run.sh`, `interrupt.sh`, `cleanup.sh` when the manager
/// asks.
fn generic_node(ctx: &Context<'_>, partition: &Partition<'_>) -> Result<(), String> {
    let parameters = &partition.instance.parameters;
    let ip = ipv4(partition)?;
    AgentDirs::make(ctx)?;
    let code = code_version(ctx, text(parameters, "archive").as_deref())?;
    let agents = ctx.inside(Path::new("var/conpaas/agents.json"))?;
    let env = [
        ("CONPAAS_AGENTS", agents.display().to_string()),
        ("CONPAAS_ROLE", partition.instance.software_type.clone()),
        ("CONPAAS_IP", ip.clone()),
        ("HOME", ctx.directory.display().to_string()),
    ];
    let version = code
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let initialised = ctx.inside(&Path::new("var/conpaas").join(format!("init-{version}.done")))?;
    if !initialised.is_file() {
        generic_script(ctx, &code, "init.sh", &env)?;
        write_file(&initialised, b"", 0o600)?;
    }
    let members = text(parameters, "members").unwrap_or_else(|| "{}".to_owned());
    // Told once the manager knows who the members are, again whenever they change.
    if write_changed(&agents, &members, 0o644)? && members != "{}" {
        generic_script(ctx, &code, "notify.sh", &env)?;
    }
    let mut script =
        std::fs::read_to_string(ctx.inside(Path::new("var/conpaas/script"))?).unwrap_or_default();
    if let Some(command) = text(parameters, "command") {
        let done = ctx.inside(Path::new("var/conpaas/command"))?;
        let last = std::fs::read_to_string(&done).unwrap_or_default();
        if last != command {
            let name = command.split(' ').next().unwrap_or_default();
            if matches!(name, "run" | "interrupt" | "cleanup") {
                let ended = generic_script(ctx, &code, &format!("{name}.sh"), &env)?
                    .unwrap_or_else(|| format!("no {name}.sh"));
                script = format!("{command}: {ended}");
                write_file(
                    &ctx.inside(Path::new("var/conpaas/script"))?,
                    script.as_bytes(),
                    0o600,
                )?;
            }
            write_file(&done, command.as_bytes(), 0o600)?;
        }
    }
    let mut values = vec![("address", ip)];
    if !script.is_empty() {
        values.push(("script", script));
    }
    publish(partition, &values)
}
