//! `grove app` for ConPaaS applications: deploying a manifest, each service's nodes
//! (`grove app service`), and the manager's actions a manager's partition runs
//! (`grove app conpaas-action`, hidden).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Subcommand;
use grove_api::apps::{AppService, AppView, conpaas_keys};
use grove_client::Client;
use grove_recipes::conpaas::ManagerConfig;

use crate::client::{Connection, print_json, print_lines};

#[derive(Debug, Subcommand)]
#[expect(
    clippy::enum_variant_names,
    reason = "the commands are named as ConPaaS's: add-nodes, remove-nodes, list-nodes"
)]
pub(crate) enum ServiceCommand {
    /// Add nodes of a role to a service (its manager's `add_nodes`).
    AddNodes(Nodes),
    /// Remove nodes of a role from a service (its manager's `remove_nodes`): the
    /// balancers leave them out first.
    RemoveNodes(Nodes),
    /// A service's nodes by role, with their addresses.
    ListNodes {
        app: String,
        service: String,
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TypeCommand {
    /// Every service type a manifest may name and the release its services run.
    List {
        #[command(flatten)]
        connection: Connection,
    },
    /// Register the release a service type runs (the admin): a manager as software type
    /// `manager`, its agents as one software type per role.
    Add {
        name: String,
        release: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Forget the release registered for a type (Grove's own again, where it ships one).
    Remove {
        name: String,
        #[command(flatten)]
        connection: Connection,
    },
}

pub(crate) fn app_type(command: TypeCommand) -> anyhow::Result<ExitCode> {
    let (types, json) = match command {
        TypeCommand::List { connection } => {
            (connection.client()?.list_app_types()?, connection.json)
        }
        TypeCommand::Add {
            name,
            release,
            connection,
        } => (
            vec![connection.client()?.set_app_type(&name, Some(&release))?],
            connection.json,
        ),
        TypeCommand::Remove { name, connection } => (
            vec![connection.client()?.set_app_type(&name, None)?],
            connection.json,
        ),
    };
    if json {
        return print_json(&types).map(|()| ExitCode::SUCCESS);
    }
    let lines: Vec<String> = types
        .iter()
        .map(|t| {
            format!(
                "{}\t{}{}",
                t.name,
                t.release.as_deref().unwrap_or("-"),
                if t.builtin { "\t(Grove's)" } else { "" }
            )
        })
        .collect();
    print_lines(&lines).map(|()| ExitCode::SUCCESS)
}

/// Nodes to add or remove.
#[derive(Debug, clap::Args)]
pub(crate) struct Nodes {
    app: String,
    service: String,
    #[arg(long)]
    role: String,
    #[arg(long, default_value_t = 1)]
    count: u32,
    /// Return once the service has its new nodes, each serving.
    #[arg(long)]
    wait: bool,
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    #[command(flatten)]
    connection: Connection,
}

/// `grove app deploy MANIFEST.json`.
pub(crate) fn deploy(
    path: &Path,
    name: Option<&str>,
    project: Option<&str>,
    wait: Option<Duration>,
    connection: &Connection,
) -> anyhow::Result<ExitCode> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    // Checked here first: a broken manifest needs no master to be refused. A type this
    // Grove does not know may be one the cloud's admin registered: the master says.
    let manifest_text = String::from_utf8_lossy(&text).into_owned();
    let mut report = grove_conpaas::manifest::check(&manifest_text);
    let unknown_types_only = report.diagnostics.iter().all(|d| {
        d.level != grove_conpaas::manifest::Level::Error
            || d.code == grove_conpaas::manifest::Code::MANIFEST_UNKNOWN_SERVICE_TYPE
    });
    // Without a master to ask, the types are this Grove's: its verdict stands.
    if !report.valid
        && unknown_types_only
        && let Ok(client) = connection.client()
        && let Ok(types) = client.list_app_types()
    {
        let extra: Vec<String> = types.into_iter().map(|t| t.name).collect();
        report = grove_conpaas::manifest::check_with(&manifest_text, &extra);
    }
    if !report.valid {
        let errors: Vec<String> = report
            .diagnostics
            .iter()
            .filter(|d| d.level == grove_conpaas::manifest::Level::Error)
            .map(|d| format!("{}: {d}", path.display()))
            .collect();
        bail!("the manifest is not valid:\n{}", errors.join("\n"));
    }
    let client = connection.client()?;
    let mut view = client.deploy_manifest(text, name, project)?;
    if let Some(timeout) = wait {
        view = wait_ready(&client, &view.name, timeout, None)?;
    }
    show(&view, connection.json)
}

/// Waits until every service is ready (its manager started, every agent published, the
/// balancers updated) and its `url`, if it has one, answers; with `roles`, until that
/// service has exactly those nodes by role, each with its address.
pub(crate) fn wait_ready(
    client: &Client,
    name: &str,
    timeout: Duration,
    roles: Option<(&str, &BTreeMap<String, usize>)>,
) -> anyhow::Result<AppView> {
    let deadline = Instant::now() + timeout;
    let counted = |s: &AppService| match roles {
        Some((service, roles)) if s.name == service => {
            let has: BTreeMap<String, usize> = s
                .nodes
                .iter()
                .map(|(role, nodes)| (role.clone(), nodes.len()))
                .filter(|(_, n)| *n > 0)
                .collect();
            has == *roles && s.nodes.values().flatten().all(|n| !n.ends_with(" -"))
        }
        _ => true,
    };
    loop {
        let view = client.show_app(name)?;
        let waiting: Vec<String> = view
            .services
            .iter()
            .filter(|s| {
                !s.ready
                    || !counted(s)
                    || !answers(s.connection.get("url").and_then(|u| u.as_str()))
            })
            .map(
                |s| match (&s.error, s.connection.get(conpaas_keys::FAILING)) {
                    (None, Some(failing)) => format!(
                        "{} (failing agents: {})",
                        s.name,
                        failing.as_str().unwrap_or_default()
                    ),
                    (Some(e), _) => {
                        format!("{} ({}: {e})", s.name, s.state.as_deref().unwrap_or("-"))
                    }
                    (None, None) => format!(
                        "{} ({})",
                        s.name,
                        s.state.as_deref().unwrap_or("not reported")
                    ),
                },
            )
            .collect();
        if waiting.is_empty() {
            return Ok(view);
        }
        if Instant::now() >= deadline {
            bail!(
                "application {name}: not ready after {}s: {}",
                timeout.as_secs(),
                waiting.join(", ")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether a service's `url` answers other than with a server error (none: yes).
fn answers(url: Option<&str>) -> bool {
    let Some(url) = url else {
        return true;
    };
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .http_status_as_error(false)
        .build()
        .new_agent();
    agent
        .get(url)
        .call()
        .is_ok_and(|r| r.status().as_u16() < 500)
}

/// A ConPaaS application's services, one a line.
pub(crate) fn show(view: &AppView, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        return print_json(view).map(|()| ExitCode::SUCCESS);
    }
    let mut lines = vec![format!("application {}", view.name)];
    for s in &view.services {
        let mut line = format!(
            "{}\t{}\t{}{}",
            s.name,
            s.kind,
            s.state.as_deref().unwrap_or("-"),
            if s.ready { " ready" } else { "" }
        );
        if let Some(url) = s.connection.get("url").and_then(|u| u.as_str()) {
            line.push_str(&format!("\t{url}"));
        }
        for (role, nodes) in &s.nodes {
            line.push_str(&format!("\t{role}: {}", nodes.len()));
        }
        if let Some(error) = &s.error {
            line.push_str(&format!("\terror {error}"));
        }
        if let Some(failing) = s
            .connection
            .get(conpaas_keys::FAILING)
            .and_then(|f| f.as_str())
        {
            line.push_str(&format!("\tfailing {failing}"));
        }
        lines.push(line);
    }
    print_lines(&lines).map(|()| ExitCode::SUCCESS)
}

/// The manager instance of a service.
fn manager(client: &Client, app: &str, service: &str) -> anyhow::Result<i64> {
    let view = client.show_app(app)?;
    view.services
        .iter()
        .find(|s| s.name == service)
        .map(|s| s.instance)
        .ok_or_else(|| {
            let names: Vec<&str> = view.services.iter().map(|s| s.name.as_str()).collect();
            anyhow!(
                "application {app} has no service {service:?} (its services: {})",
                names.join(", ")
            )
        })
}

fn run_manager_action(
    client: &Client,
    app: &str,
    service: &str,
    name: &str,
    parameters: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let instance = manager(client, app, service)?;
    let parameters = parameters.as_object().cloned().unwrap_or_default();
    let action =
        crate::action::run_action(client, instance, name, parameters, Duration::from_secs(600))?;
    match action.state {
        grove_api::actions::ActionState::Succeeded => Ok(action.result.unwrap_or_default()),
        grove_api::actions::ActionState::Failed => bail!(
            "{name} on service {service} of {app}: {}",
            action.error.as_deref().unwrap_or("failed")
        ),
        grove_api::actions::ActionState::Pending => {
            bail!("{name} on service {service} of {app}: still pending")
        }
    }
}

pub(crate) fn service(command: ServiceCommand) -> anyhow::Result<ExitCode> {
    let (action, nodes) = match command {
        ServiceCommand::AddNodes(nodes) => ("add_nodes", nodes),
        ServiceCommand::RemoveNodes(nodes) => ("remove_nodes", nodes),
        ServiceCommand::ListNodes {
            app,
            service,
            connection,
        } => {
            let nodes = Nodes {
                app,
                service,
                role: String::new(),
                count: 0,
                wait: false,
                timeout: 0,
                connection,
            };
            ("list_nodes", nodes)
        }
    };
    let Nodes {
        app,
        service,
        role,
        count,
        wait,
        timeout,
        connection,
    } = nodes;
    let parameters = match action {
        "list_nodes" => serde_json::json!({}),
        _ => serde_json::json!({"role": role, "count": count}),
    };
    let client = connection.client()?;
    let result = run_manager_action(&client, &app, &service, action, parameters)?;
    let wait = wait.then(|| Duration::from_secs(timeout));
    if let Some(timeout) = wait {
        let roles: BTreeMap<String, usize> = result["roles"]
            .as_object()
            .map(|o| {
                o.iter()
                    .filter_map(|(role, n)| {
                        Some((role.clone(), usize::try_from(n.as_u64()?).ok()?))
                    })
                    .filter(|(_, n)| *n > 0)
                    .collect()
            })
            .unwrap_or_default();
        wait_ready(&client, &app, timeout, Some((&service, &roles)))?;
    }
    if connection.json {
        return print_json(&result).map(|()| ExitCode::SUCCESS);
    }
    let mut lines = Vec::new();
    if let Some(nodes) = result["nodes"].as_array() {
        for node in nodes {
            let mut line = format!(
                "{}\t{}\t{}\t{}",
                node["title"].as_str().unwrap_or("-"),
                node["role"].as_str().unwrap_or("-"),
                node["address"].as_str().unwrap_or("-"),
                node["state"].as_str().unwrap_or("-"),
            );
            for key in ["script", "error"] {
                if let Some(value) = node[key].as_str() {
                    line.push_str(&format!("\t{key} {value}"));
                }
            }
            lines.push(line);
        }
    }
    print_lines(&lines).map(|()| ExitCode::SUCCESS)
}

/// `grove app conpaas-action --config FILE NAME`: a manager's action, run by its node in
/// the manager's partition as the partition's user; the parameters on standard input,
/// the result on standard output.
pub(crate) fn action(config: &Path, name: &str) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("cannot read {}", config.display()))?;
    let config: ManagerConfig = serde_json::from_str(&text)
        .with_context(|| format!("{} is no manager's configuration", "manager.json"))?;
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("cannot read the parameters")?;
    let parameters: grove_api::Parameters = if input.trim().is_empty() {
        grove_api::Parameters::new()
    } else {
        serde_json::from_str(&input).context("the parameters are no JSON object")?
    };
    let client = config.connection.client()?;
    let result =
        grove_recipes::conpaas::act(&client, &config, name, &parameters).map_err(|e| anyhow!(e))?;
    print_json(&result).map(|()| ExitCode::SUCCESS)
}
