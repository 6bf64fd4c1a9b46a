//! `grove app`: Roboconf applications, and ConPaaS's (`conpaas.rs`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Subcommand;
use grove_api::apps::{AppView, NewAppInstance};
use grove_roboconf::check::{self, Folder};
use grove_roboconf::tree::Tree;
use grove_roboconf::{Level, Report};

use crate::client::{Connection, key_values, print_json, print_lines};

#[derive(Debug, Subcommand)]
pub(crate) enum AppCommand {
    /// Check an application (a folder or a ZIP), a recipe or one graph or instances
    /// file, as Roboconf checks them, or a ConPaaS manifest (a `.json` file). Exit 0 when
    /// valid, 1 on an error, 2 when the check could not run.
    Check {
        /// The application's folder or ZIP; a recipe with --recipe; or one DSL file.
        path: PathBuf,
        /// Check an instances file against this graph file.
        #[arg(long)]
        graph: Option<PathBuf>,
        /// PATH is a reusable recipe: graph files, no descriptor.
        #[arg(long)]
        recipe: bool,
        /// Print one JSON object: validity, kind, diagnostics, model.
        #[arg(long)]
        json: bool,
    },
    /// Store an application (a folder or a ZIP) at the master and deploy it: each root
    /// instance becomes a Grove instance, the rest is deployed in its partition.
    Deploy {
        path: PathBuf,
        /// The application's name (the descriptor's by default).
        #[arg(long)]
        name: Option<String>,
        /// The project the application belongs to.
        #[arg(long, env = "GROVE_PROJECT")]
        project: Option<String>,
        /// Return once every instance is started.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits, in seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        #[command(flatten)]
        connection: Connection,
    },
    /// The applications you may see.
    List {
        #[command(flatten)]
        connection: Connection,
    },
    /// An application's instance tree: states, exports and each import resolved or
    /// missing.
    Show {
        name: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Add, remove or change the state of an instance.
    #[command(subcommand)]
    Instance(InstanceCommand),
    /// Run a commands file of the application (`commands/NAME.commands`).
    Command {
        app: String,
        name: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Bind APP's external imports under PREFIX to OTHER_APP, which publishes variables
    /// under that prefix (its descriptor's exports-prefix); --unbind undoes it.
    Bind {
        app: String,
        prefix: String,
        other_app: String,
        #[arg(long)]
        unbind: bool,
        #[command(flatten)]
        connection: Connection,
    },
    /// Undeploy every instance but the partitions.
    Undeploy {
        name: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Forget an undeployed application; its partitions are destroyed.
    Delete {
        name: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// A ConPaaS service's nodes: add, remove, list (its manager's actions).
    #[command(subcommand)]
    Service(crate::conpaas::ServiceCommand),
    /// ConPaaS service types and the releases they run.
    #[command(subcommand)]
    Type(crate::conpaas::TypeCommand),
    /// Run a ConPaaS manager's action (what the manager's `etc/action/` executables run).
    #[command(hide = true)]
    ConpaasAction {
        #[arg(long)]
        config: PathBuf,
        name: String,
    },
    /// Print the end of a ConPaaS agent's logs (its `get_logs` action).
    #[command(hide = true)]
    ConpaasLogs {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Run a root instance's partition (the service the built-in release installs).
    #[command(hide = true)]
    Agent {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum InstanceCommand {
    /// A new instance of COMPONENT named NAME under PARENT_PATH (`/` for a root
    /// instance).
    Add {
        app: String,
        parent_path: String,
        component: String,
        name: String,
        /// An exported variable's value (`port=8080`) or another property (repeatable).
        #[arg(long = "prop", value_name = "KEY=VALUE")]
        props: Vec<String>,
        #[command(flatten)]
        connection: Connection,
    },
    /// Undeploy an instance and its descendants, then forget them.
    Remove {
        app: String,
        path: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// What is wanted of an instance: not_deployed, deployed_stopped, deployed_started.
    State {
        app: String,
        path: String,
        state: String,
        #[command(flatten)]
        connection: Connection,
    },
}

/// The check could not run: a path that does not read.
const EXIT_UNCHECKED: u8 = 2;

pub(crate) fn run(command: AppCommand) -> anyhow::Result<ExitCode> {
    match command {
        AppCommand::Check {
            path,
            graph: None,
            recipe: false,
            json,
        } if is_manifest(&path) => match read_text(&path) {
            Ok(text) => {
                let report = grove_conpaas::manifest::check(&text);
                print_manifest(&path, &report, json)?;
                Ok(verdict(report.valid))
            }
            Err(error) => Ok(unchecked(&error)),
        },
        AppCommand::Check {
            path,
            graph,
            recipe,
            json,
        } => match checked(&path, graph.as_deref(), recipe) {
            Ok(report) => {
                print(&report, json)?;
                Ok(verdict(report.valid))
            }
            Err(error) => Ok(unchecked(&error)),
        },
        AppCommand::Deploy {
            path,
            name,
            project,
            wait,
            timeout,
            connection,
        } => {
            if is_manifest(&path) {
                let wait = wait.then(|| Duration::from_secs(timeout));
                return crate::conpaas::deploy(
                    &path,
                    name.as_deref(),
                    project.as_deref(),
                    wait,
                    &connection,
                );
            }
            let tree = read_tree(&path)?;
            let archive = tree
                .to_zip()
                .with_context(|| format!("cannot archive {}", path.display()))?;
            let client = connection.client()?;
            let mut view = client.deploy_app(archive, name.as_deref(), project.as_deref())?;
            if wait {
                view = wait_started(&client, &view.name, Duration::from_secs(timeout))?;
            }
            show(&view, connection.json)
        }
        AppCommand::List { connection } => {
            let apps = connection.client()?.list_apps()?;
            if connection.json {
                return print_json(&apps).map(|()| ExitCode::SUCCESS);
            }
            let lines: Vec<String> = apps
                .iter()
                .map(|a| {
                    format!(
                        "{}\t{} {}\t{}/{} started{}",
                        a.name,
                        a.descriptor,
                        a.version,
                        a.started,
                        a.instances,
                        a.project
                            .as_ref()
                            .map(|p| format!("\tproject {p}"))
                            .unwrap_or_default()
                    )
                })
                .collect();
            print_lines(&lines).map(|()| ExitCode::SUCCESS)
        }
        AppCommand::Show { name, connection } => {
            show(&connection.client()?.show_app(&name)?, connection.json)
        }
        AppCommand::Instance(command) => instance(command),
        AppCommand::Command {
            app,
            name,
            connection,
        } => show(
            &connection.client()?.run_app_command(&app, &name)?,
            connection.json,
        ),
        AppCommand::Bind {
            app,
            prefix,
            other_app,
            unbind,
            connection,
        } => show(
            &connection
                .client()?
                .bind_app(&app, &prefix, &other_app, unbind)?,
            connection.json,
        ),
        AppCommand::Undeploy { name, connection } => {
            show(&connection.client()?.undeploy_app(&name)?, connection.json)
        }
        AppCommand::Delete { name, connection } => {
            connection.client()?.delete_app(&name)?;
            if connection.json {
                return print_json(&serde_json::json!({ "deleted": name }))
                    .map(|()| ExitCode::SUCCESS);
            }
            print_lines(&[format!("application {name} deleted")]).map(|()| ExitCode::SUCCESS)
        }
        AppCommand::Service(command) => crate::conpaas::service(command),
        AppCommand::Type(command) => crate::conpaas::app_type(command),
        AppCommand::ConpaasAction { config, name } => crate::conpaas::action(&config, &name),
        AppCommand::ConpaasLogs { dir } => {
            print_json(&grove_recipes::conpaas::logs(&dir)).map(|()| ExitCode::SUCCESS)
        }
        AppCommand::Agent { config, dir } => {
            grove_node::roboconf::run(&config, &dir)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn instance(command: InstanceCommand) -> anyhow::Result<ExitCode> {
    let (view, json) = match command {
        InstanceCommand::Add {
            app,
            parent_path,
            component,
            name,
            props,
            connection,
        } => {
            let instance = NewAppInstance {
                parent: parent_path,
                component,
                name,
                properties: key_values(&props, "--prop")?,
            };
            (
                connection.client()?.add_app_instance(&app, &instance)?,
                connection.json,
            )
        }
        InstanceCommand::Remove {
            app,
            path,
            connection,
        } => (
            connection.client()?.remove_app_instance(&app, &path)?,
            connection.json,
        ),
        InstanceCommand::State {
            app,
            path,
            state,
            connection,
        } => (
            connection
                .client()?
                .set_app_instance_state(&app, &path, &state)?,
            connection.json,
        ),
    };
    show(&view, json)
}

/// Waits until every instance wanted started is started; fails on a script's error
/// that stays, or at the timeout, saying which instances are not there yet.
fn wait_started(
    client: &grove_client::Client,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<AppView> {
    let deadline = Instant::now() + timeout;
    loop {
        let view = client.show_app(name)?;
        let waiting: Vec<String> = view
            .instances
            .iter()
            .filter(|i| i.wanted == "deployed_started" && i.state != "deployed_started")
            .map(|i| match &i.error {
                Some(e) => format!("{} ({}: {e})", i.path, i.state),
                None => format!("{} ({})", i.path, i.state),
            })
            .collect();
        if waiting.is_empty() {
            return Ok(view);
        }
        if Instant::now() >= deadline {
            bail!(
                "application {name}: not started after {}s: {}",
                timeout.as_secs(),
                waiting.join(", ")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// An application's instances, one a line: path, component, state (and what is wanted
/// when it differs), exports, imports, what is missing, the last error.
fn show(view: &AppView, json: bool) -> anyhow::Result<ExitCode> {
    if !view.services.is_empty() {
        return crate::conpaas::show(view, json);
    }
    if json {
        return print_json(view).map(|()| ExitCode::SUCCESS);
    }
    let mut lines = vec![format!("application {}", view.name)];
    for i in &view.instances {
        let mut line = format!("{}\t{}\t{}", i.path, i.component, i.state);
        if i.wanted != i.state {
            line.push_str(&format!(" (wanted {})", i.wanted));
        }
        let exports: Vec<String> = i.exports.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if !exports.is_empty() {
            line.push_str(&format!("\texports {}", exports.join(" ")));
        }
        for (prefix, list) in &i.imports {
            let from: Vec<&str> = list.iter().map(|x| x.path.as_str()).collect();
            line.push_str(&format!("\timports {prefix} from [{}]", from.join(", ")));
        }
        if !i.missing.is_empty() {
            line.push_str(&format!("\tmissing {}", i.missing.join(", ")));
        }
        if let Some(error) = &i.error {
            line.push_str(&format!("\terror {error}"));
        }
        lines.push(line);
    }
    print_lines(&lines).map(|()| ExitCode::SUCCESS)
}

/// A check's exit: 0 valid, 1 an error.
fn verdict(valid: bool) -> ExitCode {
    if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_FAILURE)
    }
}

/// The check could not run (exit 2), saying why.
fn unchecked(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", crate::error_message(error));
    ExitCode::from(EXIT_UNCHECKED)
}

/// A ConPaaS manifest: a `.json` file.
fn is_manifest(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        && !path.is_dir()
}

fn print_manifest(
    path: &Path,
    report: &grove_conpaas::manifest::Report,
    json: bool,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, report)?;
        writeln!(out)?;
        return Ok(());
    }
    for d in &report.diagnostics {
        writeln!(out, "{}: {d}", path.display())?;
    }
    let errors = report
        .diagnostics
        .iter()
        .filter(|d| d.level == grove_conpaas::manifest::Level::Error)
        .count();
    let warnings = report.diagnostics.len() - errors;
    let verdict = if report.valid { "valid" } else { "invalid" };
    writeln!(
        out,
        "manifest: {verdict} ({errors} errors, {warnings} warnings)"
    )?;
    if let Some(plan) = &report.plan {
        let types: Vec<&str> = plan.services.iter().map(|s| s.kind.as_str()).collect();
        writeln!(
            out,
            "{}: {} services ({})",
            plan.application,
            plan.services.len(),
            types.join(", ")
        )?;
    }
    Ok(())
}

/// Reads an application from a folder or a ZIP.
pub(crate) fn read_tree(path: &Path) -> anyhow::Result<Tree> {
    let meta = std::fs::metadata(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(if meta.is_dir() {
        Tree::from_dir(path)?
    } else {
        Tree::from_zip(path)?
    })
}

fn is_zip(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && magic == *b"PK\x03\x04"
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The file's name and the folder its imports resolve from.
fn split(path: &Path) -> (String, Folder) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_owned);
    (name, Folder(folder))
}

fn checked(path: &Path, graph: Option<&Path>, recipe: bool) -> anyhow::Result<Report> {
    let meta = std::fs::metadata(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if recipe {
        return Ok(check::recipe(&read_tree(path)?));
    }
    if meta.is_dir() || is_zip(path) {
        if graph.is_some() {
            anyhow::bail!("--graph checks one instances file, not an application");
        }
        return Ok(check::application(read_tree(path)?).0);
    }
    let text = read_text(path)?;
    let (name, folder) = split(path);
    match graph {
        None => Ok(check::file(&name, &text, &folder, None)),
        Some(graph) => {
            let graph_text = read_text(graph)?;
            let (graph_name, graph_folder) = split(graph);
            Ok(check::file(
                &name,
                &text,
                &folder,
                Some((&graph_name, &graph_text, &graph_folder)),
            ))
        }
    }
}

fn print(report: &Report, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, report)?;
        writeln!(out)?;
        return Ok(());
    }
    for d in &report.diagnostics {
        writeln!(out, "{d}")?;
    }
    let errors = report
        .diagnostics
        .iter()
        .filter(|d| d.level == Level::Error)
        .count();
    let warnings = report.diagnostics.len() - errors;
    let kind = serde_json::to_value(report.kind)?;
    let kind = kind.as_str().unwrap_or_default();
    if report.valid {
        write!(out, "{kind}: valid")?;
    } else {
        write!(out, "{kind}: invalid")?;
    }
    writeln!(out, " ({errors} errors, {warnings} warnings)")?;
    if let Some(model) = &report.model
        && report.valid
    {
        if let Some(name) = &model.name {
            writeln!(
                out,
                "{name} {}",
                model.version.as_deref().unwrap_or_default()
            )?;
        }
        writeln!(
            out,
            "{} components ({} at the root), {} facets, {} instances",
            model.components.len(),
            model.root_components.len(),
            model.facets.len(),
            model.instances.len()
        )?;
    }
    Ok(())
}
