//! The client commands, with SlapOS's verbs: supply, remove, request, service, computer,
//! user. Each prints people's text, or JSON with `--json`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use grove_api as api;
use grove_client::Client;
use serde::Deserialize;

/// Where the master is and who is asking.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Connection {
    /// The master's URL (else GROVE_MASTER_URL, else the client configuration file).
    #[arg(long, env = "GROVE_MASTER_URL", global = true)]
    master_url: Option<String>,
    /// A user's or the admin's token (else GROVE_TOKEN, else the configuration file).
    #[arg(long, env = "GROVE_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// The master's CA certificate (PEM): trust the master only if this CA signed its
    /// certificate (else GROVE_CA_CERT, else the configuration file, else the system's roots).
    #[arg(long, env = "GROVE_CA_CERT", global = true)]
    ca_cert: Option<PathBuf>,
    /// A client certificate (PEM) to authenticate with instead of a token (from `grove
    /// user certificate`); give --key too.
    #[arg(long, env = "GROVE_CERT", requires = "key", global = true)]
    certificate: Option<PathBuf>,
    /// The key of --certificate (PEM).
    #[arg(long, env = "GROVE_KEY", requires = "certificate", global = true)]
    key: Option<PathBuf>,
    /// Machine-readable output on stdout.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

/// `client.toml`: what `grove up` writes in its data directory, and what a user may keep
/// in `~/.config/grove/client.toml`.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientFile {
    /// One URL, or several (an array, or a comma list) for a cloud of several masters.
    #[serde(deserialize_with = "grove_api::masters::deserialize_list")]
    pub(crate) master_url: String,
    pub(crate) token: String,
    /// The master's CA certificate (PEM file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ca_cert: Option<PathBuf>,
}

/// A client of `url` with `token`, trusting the CA in `ca_cert` when given.
pub(crate) fn client_for(url: &str, token: &str, ca_cert: Option<&Path>) -> anyhow::Result<Client> {
    client_with(url, Some(token), ca_cert, None)
}

/// A client of `url` with a token, a client certificate and its key, or both, trusting
/// the CA in `ca_cert` when given (the files are read now).
fn client_with(
    url: &str,
    token: Option<&str>,
    ca_cert: Option<&Path>,
    certificate: Option<(&Path, &Path)>,
) -> anyhow::Result<Client> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    };
    let certificate = match certificate {
        Some((certificate, key)) => Some((read(certificate)?, read(key)?)),
        None => None,
    };
    let identity = grove_client::Identity {
        token: token.map(|t| t.trim().to_owned()),
        ca_pem: ca_cert.map(read).transpose()?,
        certificate,
    };
    Ok(Client::new(url, &identity)?)
}

fn client_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Ok(path) = std::env::var("GROVE_CLIENT_CONFIG") {
        files.push(PathBuf::from(path));
    }
    if let Some(config) = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
    {
        files.push(config.join("grove/client.toml"));
    }
    files.push(crate::up::default_data_dir().join("client.toml"));
    files
}

impl Connection {
    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        if let (Some(url), Some(certificate), Some(key)) =
            (&self.master_url, &self.certificate, &self.key)
        {
            return client_with(
                url,
                self.token.as_deref(),
                self.ca_cert.as_deref(),
                Some((certificate, key)),
            );
        }
        if let (Some(url), Some(token)) = (&self.master_url, &self.token) {
            return client_for(url, token, self.ca_cert.as_deref());
        }
        for path in client_files() {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let file: ClientFile = toml::from_str(&text)
                .with_context(|| format!("{} is not a client configuration", path.display()))?;
            let url = self.master_url.clone().unwrap_or(file.master_url);
            let token = self.token.clone().unwrap_or(file.token);
            let ca_cert = self.ca_cert.clone().or(file.ca_cert);
            return client_for(&url, &token, ca_cert.as_deref());
        }
        bail!(
            "no master given: pass --master-url and --token, set GROVE_MASTER_URL and \
             GROVE_TOKEN, or start one with `grove up`"
        )
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct SupplyArgs {
    /// The software release: a URL, or a path to its software.cfg.
    software_release: String,
    /// The computer's reference.
    computer: String,
    /// As a project-admin of this project, on a computer dedicated to it.
    #[arg(long, env = "GROVE_PROJECT")]
    project: Option<String>,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, clap::Args)]
pub(crate) struct RequestArgs {
    /// The instance's title: requesting it again updates it.
    title: String,
    /// The software release: a URL, or a path to its software.cfg.
    software_release: String,
    #[arg(long = "type", default_value = "default")]
    software_type: String,
    #[arg(long, default_value = "started", value_parser = ["started", "stopped", "destroyed"])]
    state: String,
    /// A shared instance (a slave in SlapOS): hosted by an instance of this release.
    #[arg(long)]
    shared: bool,
    /// An instance parameter, KEY=VALUE (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// Parameters as a JSON object in a file.
    #[arg(long)]
    params_file: Option<PathBuf>,
    /// A placement filter, KEY=VALUE: computer_guid (the computer), instance_guid (the host
    /// of a shared instance), or a label the computer must carry (zone=eu-1).
    #[arg(long = "sla", value_name = "KEY=VALUE")]
    sla: Vec<String>,
    /// The project the instance belongs to (you must be a member or project-admin of it).
    #[arg(long, env = "GROVE_PROJECT")]
    project: Option<String>,
    /// Return once the instance has published its connection parameters.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// How long --wait lets the instance stay in error before failing (a parent is in
    /// error until its children publish).
    #[arg(long, default_value_t = 15)]
    error_grace: u64,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ServiceCommand {
    /// Every instance you may see (yours and your projects'), or a project's.
    List {
        /// Only this project's instances.
        #[arg(long, env = "GROVE_PROJECT")]
        project: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
    /// One instance, by title (yours, or with `--project` the project's).
    Info {
        title: String,
        #[arg(long, env = "GROVE_PROJECT")]
        project: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
    /// An instance's latest usage samples, newest first: CPU, memory, disk, restarts.
    Usage {
        title: String,
        #[arg(long, env = "GROVE_PROJECT")]
        project: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
    /// An instance's latest actions (`grove action`), newest first.
    Actions {
        title: String,
        #[arg(long, env = "GROVE_PROJECT")]
        project: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ComputerCommand {
    /// Every computer you may see.
    List {
        #[command(flatten)]
        connection: Connection,
    },
    /// One computer: its labels, partitions and software.
    Info {
        reference: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Revoke the certificate of a computer's node (the admin or its owner): the master
    /// refuses it from the next request on; the node joins again with a new join token.
    Revoke {
        reference: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Dedicate a computer to a project (the cloud admin): it then takes that project's
    /// instances only; `--shared` shares it again. Instances already there stay.
    Dedicate {
        reference: String,
        #[arg(required_unless_present = "shared", conflicts_with = "shared")]
        project: Option<String>,
        #[arg(long)]
        shared: bool,
        #[command(flatten)]
        connection: Connection,
    },
    /// Set labels of a computer (admin only): `KEY=VALUE` sets, `KEY=` removes; prints
    /// the labels it has then.
    Label {
        reference: String,
        #[arg(required = true)]
        labels: Vec<String>,
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum UserCommand {
    /// Create a user and print its token (admin only); with `--bundle DIR`, also issue
    /// its client certificate there (as `user certificate` does).
    Create {
        name: String,
        /// Also write `NAME.pem`, `NAME.key` and `ca.pem` (0600) in this directory.
        #[arg(long, value_name = "DIR")]
        bundle: Option<PathBuf>,
        #[command(flatten)]
        connection: Connection,
    },
    /// Issue a client certificate for a user (the admin, or the user themself) and write
    /// `NAME.pem`, `NAME.key` and `ca.pem` (0600) in a directory; the user's previous
    /// certificate is refused from then on.
    Certificate {
        name: String,
        /// Where the files go.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        #[command(flatten)]
        connection: Connection,
    },
}

/// A software release named by a local path becomes that file's absolute path.
fn release_url(text: &str) -> anyhow::Result<String> {
    if grove_profile::is_url(text) || Path::new(text).is_absolute() {
        return Ok(text.to_owned());
    }
    let path = std::fs::canonicalize(text)
        .with_context(|| format!("software release {text}: not a URL, and no such file"))?;
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("{} is not UTF-8", path.display()))
}

pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

pub(crate) fn print_lines(lines: &[String]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

pub(crate) fn supply(args: SupplyArgs, state: api::SupplyState) -> anyhow::Result<ExitCode> {
    let client = args.connection.client()?;
    let supply = api::Supply {
        software_release: release_url(&args.software_release)?,
        state,
        project: args.project.clone(),
    };
    client.supply(&args.computer, &supply)?;
    if args.connection.json {
        print_json(&supply)?;
    } else {
        let verb = match state {
            api::SupplyState::Available => "supplied to",
            api::SupplyState::Destroyed => "removed from",
        };
        eprintln!("{} {verb} {}", supply.software_release, args.computer);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn key_values(pairs: &[String], what: &str) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| anyhow!("{what} {pair:?}: KEY=VALUE expected"))
        })
        .collect()
}

pub(crate) fn request(args: RequestArgs) -> anyhow::Result<ExitCode> {
    let client = args.connection.client()?;
    let mut parameters = api::Parameters::new();
    if let Some(file) = &args.params_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        parameters = serde_json::from_str(&text)
            .with_context(|| format!("{}: a JSON object expected", file.display()))?;
    }
    for (key, value) in key_values(&args.params, "--param")? {
        parameters.insert(key, serde_json::Value::String(value));
    }
    let request = api::InstanceRequest {
        title: args.title.clone(),
        software_release: release_url(&args.software_release)?,
        software_type: args.software_type,
        parameters,
        state: api::RequestedState::parse(&args.state)
            .ok_or_else(|| anyhow!("unknown state {}", args.state))?,
        shared: args.shared,
        sla: key_values(&args.sla, "--sla")?,
        project: args.project.clone(),
    };
    let instance = request_instance(&client, &request)?;
    let connection = if args.wait && request.state == api::RequestedState::Started {
        let progress = !args.connection.json && std::io::stderr().is_terminal();
        let wait = Wait {
            timeout: Duration::from_secs(args.timeout),
            error_grace: Duration::from_secs(args.error_grace),
            progress,
        };
        wait_for_connection(&client, &instance, &wait)?.connection
    } else {
        instance.connection
    };
    if args.connection.json {
        print_json(&connection)?;
    } else {
        print_lines(&connection_lines(&connection))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn request_instance(
    client: &Client,
    request: &api::InstanceRequest,
) -> anyhow::Result<api::Instance> {
    Ok(client.request_instance(request)?)
}

pub(crate) fn connection_lines(connection: &api::Parameters) -> Vec<String> {
    connection
        .iter()
        .map(|(key, value)| match value {
            serde_json::Value::String(text) => format!("{key} = {text}"),
            other => format!("{key} = {other}"),
        })
        .collect()
}

enum SoftwareProgress {
    Building,
    Failed(String),
}

/// Where the instance's software release is on its computer, when the caller may see the
/// computer (its owner, the admin); none once it is available or when it cannot be read.
fn software_state(client: &Client, instance: &api::Instance) -> Option<SoftwareProgress> {
    let computer = instance.computer.as_deref()?;
    let computer = client.show_computer(computer).ok()?;
    let software = computer
        .software
        .into_iter()
        .find(|s| s.software_release == instance.software_release)?;
    match software.reported_state {
        Some(api::SoftwareState::Error) => {
            Some(SoftwareProgress::Failed(software.error.unwrap_or_default()))
        }
        Some(api::SoftwareState::Available) => None,
        _ => Some(SoftwareProgress::Building),
    }
}

/// How to wait for an instance.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wait {
    pub(crate) timeout: Duration,
    /// How long the instance may stay in error before the wait fails: a parent is in error
    /// while its children have not published yet.
    pub(crate) error_grace: Duration,
    /// Show the instance's progress on stderr.
    pub(crate) progress: bool,
}

/// Polls the instance until it has published connection parameters and reported started
/// after processing this request.
pub(crate) fn wait_for_connection(
    client: &Client,
    requested: &api::Instance,
    wait: &Wait,
) -> anyhow::Result<api::Instance> {
    let id = requested.id;
    let Wait {
        timeout,
        error_grace,
        progress,
    } = *wait;
    let start = Instant::now();
    let mut error_since: Option<Instant> = None;
    let mut shown = String::new();
    loop {
        let instance = client.show_instance(id)?;
        // Published, its services up (the promises passed), and the report is about this
        // request: a changed instance keeps its old parameters until the node processed it.
        let current = instance
            .reported_timestamp
            .is_some_and(|t| t >= requested.timestamp);
        // A shared instance has no state of its own: its host publishes for it.
        let ready = if instance.shared {
            !instance.connection.is_empty()
        } else {
            !instance.connection.is_empty()
                && instance.reported_state == Some(api::ReportedState::Started)
                && current
        };
        if ready {
            if progress {
                eprintln!();
            }
            return Ok(instance);
        }
        let status = match (&instance.reported_state, &instance.error) {
            (Some(api::ReportedState::Error), Some(error)) => {
                let since = *error_since.get_or_insert_with(Instant::now);
                if since.elapsed() > error_grace {
                    bail!("instance {} failed: {error}", instance.title);
                }
                format!("error (retrying): {}", error.lines().next().unwrap_or(""))
            }
            (state, _) => {
                error_since = None;
                match (state, &instance.partition) {
                    (_, None) => "waiting for a partition".to_owned(),
                    (None, Some(p)) => match software_state(client, &instance) {
                        Some(SoftwareProgress::Failed(error)) => {
                            bail!(
                                "the software release {} failed to build on {}: {error}",
                                instance.software_release,
                                instance.computer.as_deref().unwrap_or("its computer")
                            );
                        }
                        Some(SoftwareProgress::Building) => {
                            format!("building the software release for {p}")
                        }
                        None => format!("deploying in {p}"),
                    },
                    (Some(s), Some(p)) => format!("{} in {p}", s.as_str()),
                }
            }
        };
        if progress && status != shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\r\x1b[K{} [{:.1}s] {status}",
                instance.title,
                start.elapsed().as_secs_f64()
            );
            let _ = err.flush();
            shown = status;
        }
        if start.elapsed() > timeout {
            bail!(
                "instance {} has published nothing after {} s (last: {shown})",
                instance.title,
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn instances(client: &Client, project: Option<&str>) -> anyhow::Result<Vec<api::Instance>> {
    let mut list = client.list_instances()?;
    if let Some(project) = project {
        list.retain(|i| i.project.as_deref() == Some(project));
    }
    Ok(list)
}

/// The instance of that title: the project's with `project`, else the caller's own.
pub(crate) fn titled(
    client: &Client,
    title: &str,
    project: Option<&str>,
) -> anyhow::Result<api::Instance> {
    client
        .list_instances()?
        .into_iter()
        .find(|i| i.title == title && i.project.as_deref() == project)
        .ok_or_else(|| match project {
            Some(project) => anyhow!("no instance titled {title} in project {project}"),
            None => anyhow!("no instance titled {title} (of a project? give --project)"),
        })
}

pub(crate) fn service(command: ServiceCommand) -> anyhow::Result<ExitCode> {
    match command {
        ServiceCommand::List {
            project,
            connection,
        } => {
            let list = instances(&connection.client()?, project.as_deref())?;
            if connection.json {
                return print_json(&list).map(|()| ExitCode::SUCCESS);
            }
            let mut lines = vec![format!(
                "{:<24} {:<10} {:<10} {:<22} {}",
                "TITLE", "REQUESTED", "REPORTED", "WHERE", "SOFTWARE RELEASE"
            )];
            for i in &list {
                let place = match (&i.computer, &i.partition) {
                    (Some(c), Some(p)) => format!("{c}/{p}"),
                    _ => "-".to_owned(),
                };
                lines.push(format!(
                    "{:<24} {:<10} {:<10} {:<22} {}",
                    i.title,
                    i.requested_state.as_str(),
                    i.reported_state.map_or("-", |s| s.as_str()),
                    place,
                    i.software_release
                ));
            }
            print_lines(&lines)?;
        }
        ServiceCommand::Actions {
            title,
            project,
            connection,
        } => {
            let client = connection.client()?;
            let instance = titled(&client, &title, project.as_deref())?;
            let actions = client.list_actions(instance.id)?;
            if connection.json {
                return print_json(&actions).map(|()| ExitCode::SUCCESS);
            }
            let mut lines = vec![format!(
                "{:<8} {:<20} {:<10} {}",
                "ID", "NAME", "STATE", "ERROR"
            )];
            for a in &actions {
                lines.push(format!(
                    "{:<8} {:<20} {:<10} {}",
                    a.id,
                    a.name,
                    a.state.as_str(),
                    a.error.as_deref().unwrap_or("")
                ));
            }
            print_lines(&lines)?;
        }
        ServiceCommand::Usage {
            title,
            project,
            connection,
        } => {
            let client = connection.client()?;
            let instance = titled(&client, &title, project.as_deref())?;
            let samples = client.instance_usage(instance.id)?;
            if connection.json {
                return print_json(&samples).map(|()| ExitCode::SUCCESS);
            }
            let mut lines = vec![format!(
                "{:<20} {:>12} {:>10} {:>10} {:>10} {:>8}",
                "AT", "CPU SECONDS", "MEMORY", "PEAK", "DISK", "RESTARTS"
            )];
            for s in &samples {
                lines.push(format!(
                    "{:<20} {:>12.2} {:>10} {:>10} {:>10} {:>8}",
                    s.at,
                    s.cpu_seconds,
                    grove_api::units::format_bytes(s.memory_bytes),
                    grove_api::units::format_bytes(s.memory_peak_bytes),
                    grove_api::units::format_bytes(s.disk_bytes),
                    s.restarts
                ));
            }
            print_lines(&lines)?;
        }
        ServiceCommand::Info {
            title,
            project,
            connection,
        } => {
            let instance = titled(&connection.client()?, &title, project.as_deref())?;
            if connection.json {
                return print_json(&instance).map(|()| ExitCode::SUCCESS);
            }
            let mut lines = vec![
                format!("title: {}", instance.title),
                format!("id: {}", instance.id),
                format!("software release: {}", instance.software_release),
                format!("software type: {}", instance.software_type),
                format!("requested state: {}", instance.requested_state.as_str()),
                format!(
                    "reported state: {}",
                    instance.reported_state.map_or("-", |s| s.as_str())
                ),
            ];
            if let (Some(c), Some(p)) = (&instance.computer, &instance.partition) {
                lines.push(format!("runs in: {c}/{p}"));
            }
            if let Some(error) = &instance.error {
                lines.push(format!("error: {error}"));
            }
            lines.push(format!(
                "parameters: {}",
                serde_json::Value::Object(instance.parameters.clone())
            ));
            lines.push("connection:".to_owned());
            lines.extend(
                connection_lines(&instance.connection)
                    .into_iter()
                    .map(|l| format!("  {l}")),
            );
            print_lines(&lines)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn computer(command: ComputerCommand) -> anyhow::Result<ExitCode> {
    match command {
        ComputerCommand::List { connection } => {
            let list = connection.client()?.list_computers()?;
            if connection.json {
                return print_json(&list).map(|()| ExitCode::SUCCESS);
            }
            let mut lines = vec![format!(
                "{:<20} {:<12} {:>10} {:>5} {:>9}",
                "REFERENCE", "OWNER", "PARTITIONS", "FREE", "SOFTWARE"
            )];
            for c in &list {
                let free = c.partitions.iter().filter(|p| p.instance.is_none()).count();
                lines.push(format!(
                    "{:<20} {:<12} {:>10} {:>5} {:>9}",
                    c.reference,
                    c.owner,
                    c.partitions.len(),
                    free,
                    c.software.len()
                ));
            }
            print_lines(&lines)?;
        }
        ComputerCommand::Info {
            reference,
            connection,
        } => {
            let computer = connection.client()?.show_computer(&reference)?;
            if connection.json {
                return print_json(&computer).map(|()| ExitCode::SUCCESS);
            }
            let labels: Vec<String> = computer
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let mut lines = vec![
                format!("reference: {}", computer.reference),
                format!("owner: {}", computer.owner),
                format!("labels: {}", labels.join(" ")),
                format!(
                    "project: {}",
                    computer.project.as_deref().unwrap_or("none (shared)")
                ),
            ];
            let (cores, bytes) = (
                grove_api::units::format_cores,
                grove_api::units::format_bytes,
            );
            let allocated = computer.allocated;
            lines.push(match computer.capacity {
                Some(c) => format!(
                    "capacity: {} of {} cores, {} of {} memory, {} of {} disk allocated; sizes {}",
                    cores(allocated.millicores),
                    cores(c.millicores),
                    bytes(allocated.memory),
                    bytes(c.memory),
                    bytes(allocated.disk),
                    bytes(c.disk),
                    if c.enforced {
                        "enforced"
                    } else {
                        "not enforced"
                    }
                ),
                None => "capacity: not reported by its node".to_owned(),
            });
            lines.push("partitions:".to_owned());
            for p in &computer.partitions {
                lines.push(format!(
                    "  {} {} {}",
                    p.reference,
                    p.addresses.join(","),
                    p.instance
                        .map_or("free".to_owned(), |i| format!("instance {i}"))
                ));
            }
            lines.push("software:".to_owned());
            for s in &computer.software {
                lines.push(format!(
                    "  {} requested {} reported {}{}",
                    s.software_release,
                    s.requested_state.as_str(),
                    s.reported_state.map_or("-", |r| r.as_str()),
                    s.error
                        .as_deref()
                        .map(|e| format!(": {}", e.lines().last().unwrap_or("")))
                        .unwrap_or_default()
                ));
            }
            print_lines(&lines)?;
        }
        ComputerCommand::Revoke {
            reference,
            connection,
        } => {
            let client = connection.client()?;
            client.revoke_certificate(&reference)?;
            if connection.json {
                print_json(&serde_json::json!({ "revoked": reference }))?;
            } else {
                eprintln!("the certificate of {reference}'s node is revoked");
            }
        }
        ComputerCommand::Dedicate {
            reference,
            project,
            shared: _,
            connection,
        } => {
            connection
                .client()?
                .dedicate_computer(&reference, project.as_deref())?;
            if connection.json {
                print_json(&serde_json::json!({ "computer": reference, "project": project }))?;
            }
        }
        ComputerCommand::Label {
            reference,
            labels,
            connection,
        } => {
            let changes = key_values(&labels, "label")?;
            let client = connection.client()?;
            let computer = client.show_computer(&reference)?;
            let mut merged = computer.labels;
            for (key, value) in changes {
                if value.is_empty() {
                    merged.remove(&key);
                } else {
                    merged.insert(key, value);
                }
            }
            let body = api::Labels { labels: merged };
            client.set_computer_labels(&reference, &body)?;
            if connection.json {
                print_json(&body.labels)?;
            } else {
                let lines: Vec<String> = body
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                print_lines(&lines)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Issues `name`'s client certificate and writes the bundle in `out` (0600); what was
/// written, as `--json` shows it.
fn write_bundle(client: &Client, name: &str, out: &Path) -> anyhow::Result<serde_json::Value> {
    let bundle = client.issue_user_certificate(name)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let files = [
        (format!("{name}.pem"), &bundle.certificate),
        (format!("{name}.key"), &bundle.key),
        ("ca.pem".to_owned(), &bundle.ca),
    ];
    for (file, text) in &files {
        crate::node::write_private(&out.join(file), text)?;
    }
    Ok(serde_json::json!({
        "certificate": out.join(format!("{name}.pem")),
        "key": out.join(format!("{name}.key")),
        "ca": out.join("ca.pem"),
        "expires_at": bundle.expires_at,
    }))
}

fn bundle_written(name: &str, out: &Path) -> String {
    format!(
        "wrote {name}.pem, {name}.key and ca.pem in {}; use them with --certificate, --key \
         and --ca-cert",
        out.display()
    )
}

pub(crate) fn user(command: UserCommand) -> anyhow::Result<ExitCode> {
    match command {
        UserCommand::Create {
            name,
            bundle,
            connection,
        } => {
            let client = connection.client()?;
            let credentials = client.create_user(&name)?;
            let written = match &bundle {
                Some(out) => Some(write_bundle(&client, &name, out)?),
                None => None,
            };
            if connection.json {
                let mut shown = serde_json::to_value(&credentials)?;
                if let Some(written) = written {
                    shown["bundle"] = written;
                }
                print_json(&shown)?;
            } else {
                print_lines(&[credentials.token])?;
                if let Some(out) = &bundle {
                    eprintln!("{}", bundle_written(&name, out));
                }
            }
        }
        UserCommand::Certificate {
            name,
            out,
            connection,
        } => {
            let written = write_bundle(&connection.client()?, &name, &out)?;
            if connection.json {
                print_json(&written)?;
            } else {
                eprintln!("{}", bundle_written(&name, &out));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
