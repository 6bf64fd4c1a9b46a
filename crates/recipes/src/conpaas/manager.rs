//! A service's manager: its agents requested by role, what it publishes, its actions
//! and the autoscaler's step; what the actions change is kept in the partition.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use grove_api as api;
use grove_api::apps::conpaas_keys;
use grove_conpaas::autoscale;
use grove_conpaas::mysql;
use grove_conpaas::service::{self, Agent, Spec};
use serde::{Deserialize, Serialize};

use crate::Context;
use crate::builtin::{arg, grove_script, write_file};
use crate::slap::{Master, Partition};

use super::agents::write_changed;
use super::{MANAGER_CONFIG, ManagerConfig, text};

/// The node counts by role, as the manager's actions leave them.
pub(super) const ROLES: &str = "var/conpaas/roles.json";
/// What the actions changed of a service: its password, its dump, its code.
pub(super) const SETTINGS: &str = "var/conpaas/settings.json";
/// The service as the manager was given it (its parameters), before any action.
pub(super) const GIVEN: &str = "var/conpaas/given.json";
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
pub(super) const MEMBERS: &str = "var/conpaas/members.json";

/// What the actions changed of a service, over its manifest's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Settings {
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

pub(super) fn read_settings(directory: &Path) -> Result<Settings, String> {
    let path = directory.join(SETTINGS);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// The service as its manifest asked for it, with what the actions changed since.
pub(super) fn with_settings(directory: &Path, mut spec: Spec) -> Result<Spec, String> {
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
pub(super) const BALANCERS: &[&str] = &["proxy", "glb"];
/// How long `remove_nodes` waits for the balancers to leave the nodes out.
pub(super) const DRAIN: Duration = Duration::from_secs(30);

/// A secret made once and kept in the partition (`var/conpaas/NAME`, private).
pub(super) fn kept_secret(ctx: &Context<'_>, name: &str) -> Result<String, String> {
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

pub(super) fn read_roles(path: &Path) -> Result<Option<BTreeMap<String, u32>>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

pub(super) fn write_roles(path: &Path, roles: &BTreeMap<String, u32>) -> Result<(), String> {
    let text = serde_json::to_vec_pretty(roles).map_err(|e| e.to_string())?;
    Ok(write_file(path, &text, 0o600)?)
}

pub(super) fn deploy(ctx: &Context<'_>, partition: &Partition<'_>) -> Result<(), String> {
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
    for name in ACTIONS {
        let path = ctx.inside(&Path::new(api::actions::ACTION_DIR).join(name))?;
        let script = grove_script(&[
            "app",
            "conpaas-action",
            "--config",
            &arg(&config_path),
            name,
        ])?;
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
    publish_outcome(partition.master, instance.id, &outcome)
}

/// Publishes what a reconciliation found, as the manager.
fn publish_outcome(master: &dyn Master, instance: i64, outcome: &Outcome) -> Result<(), String> {
    master
        .publish(
            instance,
            &api::Publish {
                parameters: outcome.published.clone(),
                shared_instance: None,
            },
        )
        .map_err(|e| format!("cannot publish: {e}"))
}

/// Keeps what the actions changed of the service.
fn write_settings(directory: &Path, settings: &Settings) -> Result<(), String> {
    let text = serde_json::to_vec_pretty(settings).map_err(|e| e.to_string())?;
    Ok(write_file(&directory.join(SETTINGS), &text, 0o600)?)
}

/// The manager's configuration with the service as the actions left it.
fn settled(config: &ManagerConfig) -> Result<ManagerConfig, String> {
    Ok(ManagerConfig {
        spec: with_settings(&config.directory, config.spec.clone())?,
        ..config.clone()
    })
}

/// When the service scales itself: the last change, seconds since the epoch.
pub(super) const AUTOSCALED: &str = "var/conpaas/autoscaled";

pub(super) fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One step of the autoscaler, at each run of the manager: the response time of the
/// policy's page through the service's URL (the median of five requests), the decision,
/// the counts it leads to, and what to say of it.
pub(super) fn autoscale(
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

/// The parameters of an agent: what of the service it runs, and `extra`.
pub(super) fn agent_parameters(
    spec: &Spec,
    role: &str,
    extra: &[(&str, String)],
) -> api::Parameters {
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

pub(super) fn request_agent(
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

pub(super) fn node_of(agent: &Agent, child: &api::Instance) -> Node {
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
    // Only agents that started (their servers answer their promises) are balanced over;
    // their reports wake the manager.
    let serving = |n: &Node| n.state.as_deref() == Some("started");
    let mut backends: Vec<String> = nodes
        .iter()
        .filter(|n| serving(n))
        .filter_map(|n| n.address.clone())
        .collect();
    backends.sort();
    let backends = backends.join(" ");
    let mut ready = nodes.iter().all(|n| n.address.is_some() && serving(n));
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
pub(super) fn links(
    master: &dyn Master,
    spec: &Spec,
) -> Result<Vec<(&'static str, String)>, String> {
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
    let config = &settled(config)?;
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
            publish_outcome(master, config.instance, &outcome)?;
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
            write_settings(&config.directory, &settings)?;
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
            write_settings(&config.directory, &settings)?;
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
            write_settings(&config.directory, &settings)?;
            let config = settled(config)?;
            // Each node applies it on its next run, which the new parameters start.
            let outcome = reconcile(master, &config, &roles, started)?;
            publish_outcome(master, config.instance, &outcome)?;
            Ok(listed(&outcome, &roles))
        }
        other => Err(format!("a manager has no action {other:?}")),
    }
}

/// The code versions' actions: upload (an archive's URL), list, enable, delete.
pub(super) fn code_versions(
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
    write_settings(&config.directory, &settings)?;
    if changed {
        // The nodes unpack and serve it on their next run, which this starts.
        let config = settled(config)?;
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
pub(super) fn given(directory: &Path) -> Result<Option<Spec>, String> {
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
pub(super) fn policy_of(
    parameters: &api::Parameters,
    kind: &str,
) -> Result<autoscale::Policy, String> {
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
pub(super) fn drain_and_destroy(
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
