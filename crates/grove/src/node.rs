//! `grove node ...`: register a computer, run the agent or one of its passes, look at the
//! services it supervises.

use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use grove_node::{Agent, AgentOptions, Config, Host};

use crate::client::print_json;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct NodeArgs {
    /// The agent's configuration file.
    #[arg(
        long,
        env = "GROVE_NODE_CONFIG",
        default_value = "/etc/grove/node.toml",
        global = true
    )]
    config: PathBuf,
    /// Print what the command did as JSON on standard output (for scripts).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Option<NodeCommand>,
}

#[derive(Debug, clap::Subcommand)]
enum NodeCommand {
    /// Register this computer at a master and write the agent's configuration.
    Register(RegisterArgs),
    /// Make a one-time join token for a new node (printed on stdout).
    JoinToken(JoinTokenArgs),
    /// Join a master with a join token: make this node's key, get its certificate, pin
    /// the master's CA and write the agent's configuration.
    Join(JoinArgs),
    /// Renew this node's certificate now (the agent renews it by itself past half of
    /// its life).
    Renew,
    /// Format the partitions and declare them to the master, once.
    Format,
    /// Install and remove software releases, once.
    Software,
    /// Deploy the instances, once; their services stop when the pass ends (the daemon,
    /// `grove node`, is what keeps them running).
    Instance,
    /// Send one usage report.
    Report,
    /// List the services the running agent supervises.
    Status,
    /// Print a service's log, then follow it.
    Tail {
        partition: String,
        service: String,
        /// Lines to print before following.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        /// Print and exit instead of following.
        #[arg(long)]
        no_follow: bool,
    },
    /// Run one instance profile as the caller (the agent runs this as a partition's user,
    /// with the job on standard input).
    #[command(hide = true)]
    RunInstance,
    /// Build one software release as the caller (the agent runs this as the build user,
    /// with the job on standard input).
    #[command(hide = true)]
    BuildSoftware,
}

#[derive(Debug, clap::Args)]
struct RegisterArgs {
    /// The computer's reference.
    name: String,
    #[arg(long, env = "GROVE_MASTER_URL")]
    master_url: String,
    /// A user's or the admin's token.
    #[arg(long, env = "GROVE_TOKEN", hide_env_values = true)]
    token: String,
    /// The master's CA certificate (PEM), for a master serving HTTPS.
    #[arg(long, env = "GROVE_CA_CERT")]
    ca_cert: Option<PathBuf>,
    #[arg(long, default_value_t = 10)]
    partitions: u32,
    #[arg(long)]
    software_root: Option<PathBuf>,
    #[arg(long)]
    instance_root: Option<PathBuf>,
    /// A label of this computer, `KEY=VALUE` (`zone=eu-1`); repeat for more.
    #[arg(long = "label")]
    labels: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct JoinTokenArgs {
    #[arg(long, env = "GROVE_MASTER_URL")]
    master_url: String,
    /// A user's or the admin's token; the joining computer is theirs.
    #[arg(long, env = "GROVE_TOKEN", hide_env_values = true)]
    token: String,
    /// The master's CA certificate (PEM).
    #[arg(long, env = "GROVE_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// How long the token may be used: seconds, or a number with s, m, h or d.
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    ttl: Duration,
    /// A label the joining computer gets, `KEY=VALUE`; repeat for more.
    #[arg(long = "label")]
    labels: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct JoinArgs {
    /// The master's URL (https://...).
    url: String,
    /// The computer's reference (default: this machine's host name).
    name: Option<String>,
    /// The join token `grove node join-token` printed.
    #[arg(long, env = "GROVE_JOIN_TOKEN", hide_env_values = true)]
    token: String,
    /// The SHA-256 fingerprint of the master's CA (64 hex digits, as `grove master`
    /// prints it): the master is refused unless its CA has it.
    #[arg(long)]
    ca_fingerprint: String,
    /// The URL the node talks to the master at once joined, when it differs from the one
    /// it joins at: a listener that requires client certificates (`grove master
    /// --mtls-listen`), or a comma list of masters.
    #[arg(long)]
    node_url: Option<String>,
    #[arg(long, default_value_t = 10)]
    partitions: u32,
    #[arg(long)]
    software_root: Option<PathBuf>,
    #[arg(long)]
    instance_root: Option<PathBuf>,
}

/// `90`, `90s`, `15m`, `1h`, `7d`.
fn parse_ttl(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: a number of seconds, or with s, m, h or d"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit is s, m, h or d")),
    };
    Ok(Duration::from_secs(number.saturating_mul(scale)))
}

pub(crate) fn run(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    match args.command {
        None => daemon(&args.config),
        Some(NodeCommand::Register(register_args)) => register(&args.config, register_args, json),
        Some(NodeCommand::JoinToken(token_args)) => join_token(token_args, json),
        Some(NodeCommand::Join(join_args)) => join(&args.config, join_args, json),
        Some(NodeCommand::Renew) => renew(&args.config, json),
        Some(NodeCommand::Format) => pass(&args.config, Pass::Format, json),
        Some(NodeCommand::Software) => pass(&args.config, Pass::Software, json),
        Some(NodeCommand::Instance) => pass(&args.config, Pass::Instance, json),
        Some(NodeCommand::Report) => pass(&args.config, Pass::Report, json),
        Some(NodeCommand::Status) => status(&args.config, json),
        Some(NodeCommand::Tail {
            partition,
            service,
            lines,
            no_follow,
        }) => tail(&args.config, &partition, &service, lines, !no_follow, json),
        Some(NodeCommand::RunInstance) => helper(run_instance),
        Some(NodeCommand::BuildSoftware) => helper(build_software),
    }
}

fn register(path: &Path, args: RegisterArgs, json: bool) -> anyhow::Result<ExitCode> {
    if path.exists() {
        bail!(
            "{} exists: this node is registered already (remove the file to register again)",
            path.display()
        );
    }
    // Everything is checked before the master is asked: a refused setting registers
    // nothing.
    let mut config = Config::new(&args.master_url, &args.name, "");
    config.partitions = args.partitions;
    if let Some(root) = args.software_root {
        config.software_root = root;
    }
    if let Some(root) = args.instance_root {
        config.instance_root = root;
    }
    config.validate()?;
    let client = crate::client::client_for(&args.master_url, &args.token, args.ca_cert.as_deref())?;
    // Absolute: the agent may run from another directory.
    config.ca_certificate = args
        .ca_cert
        .as_deref()
        .map(|path| {
            std::fs::canonicalize(path)
                .with_context(|| format!("the CA certificate {}", path.display()))
        })
        .transpose()?;
    let credentials = client
        .register_computer(&grove_api::NewComputer {
            reference: args.name.clone(),
            labels: crate::client::key_values(&args.labels, "label")?,
        })
        .with_context(|| format!("cannot register {}", args.name))?;
    config.token = credentials.token;
    write_config(path, &config)?;
    if json {
        print_json(&serde_json::json!({
            "computer": args.name,
            "master_url": args.master_url,
            "config": path,
        }))?;
    } else {
        eprintln!(
            "registered {} at {}; configuration written to {}",
            args.name,
            args.master_url,
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn join_token(args: JoinTokenArgs, json: bool) -> anyhow::Result<ExitCode> {
    let client = crate::client::client_for(&args.master_url, &args.token, args.ca_cert.as_deref())?;
    let request = grove_api::NewJoinToken {
        ttl_seconds: Some(args.ttl.as_secs()),
        labels: crate::client::key_values(&args.labels, "label")?,
    };
    let token = client.create_join_token(&request)?;
    if json {
        print_json(&token)?;
    } else {
        #[allow(clippy::print_stdout)]
        {
            println!("{}", token.token);
        }
        eprintln!(
            "valid once, until {} (seconds since the epoch); the master's CA fingerprint: {}",
            token.expires_at, token.ca_fingerprint
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn renew(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    let agent = agent(config, false)?;
    let expires = agent.renew_certificate()?;
    let expires_at = expires
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if json {
        print_json(&serde_json::json!({ "expires_at": expires_at }))?;
    } else {
        eprintln!("certificate renewed; it expires at {expires_at} (seconds since the epoch)");
    }
    Ok(ExitCode::SUCCESS)
}

/// The fingerprint as `grove master` prints it: 64 hex digits, colons and case ignored.
fn normalize_fingerprint(text: &str) -> anyhow::Result<String> {
    let hex: String = text
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("--ca-fingerprint {text:?}: 64 hex digits, as `grove master` prints it");
    }
    Ok(hex)
}

fn join(path: &Path, args: JoinArgs, json: bool) -> anyhow::Result<ExitCode> {
    if path.exists() {
        bail!(
            "{} exists: this node has joined already (remove the file to join again)",
            path.display()
        );
    }
    let pinned = normalize_fingerprint(&args.ca_fingerprint)?;
    let name = match args.name {
        Some(name) => name,
        None => nix::unistd::gethostname()
            .context("cannot read the host name; give the computer's name")?
            .to_string_lossy()
            .into_owned(),
    };
    let mut config = Config::new(args.node_url.as_deref().unwrap_or(&args.url), &name, "");
    config.partitions = args.partitions;
    if let Some(root) = args.software_root {
        config.software_root = root;
    }
    if let Some(root) = args.instance_root {
        config.instance_root = root;
    }
    config.validate()?;
    // The CA is read without trust, then trusted only if it is the pinned one; every
    // later call verifies the master's certificate against it.
    let shown = grove_client::Client::unverified(&args.url)
        .ca_certificate()
        .with_context(|| format!("cannot read the CA of {}", args.url))?;
    let ders = grove_pki::certificates_der(&shown.certificate, "the master's CA")?;
    let actual = ders
        .first()
        .map(|der| grove_pki::fingerprint(der))
        .unwrap_or_default();
    if actual != pinned {
        bail!(
            "refusing the master at {}: its CA's fingerprint is {actual}, not the pinned {pinned}",
            args.url
        );
    }
    let (key, csr) = grove_pki::request(&grove_pki::Identity::Computer(name.clone()))?;
    let client = grove_client::Client::new(
        &args.url,
        &grove_client::Identity {
            token: None,
            ca_pem: Some(shown.certificate.clone()),
            certificate: None,
        },
    )?;
    let joined = client
        .join(&grove_api::JoinRequest {
            token: args.token.trim().to_owned(),
            reference: name.clone(),
            csr,
        })
        .with_context(|| format!("cannot join {} as {name}", args.url))?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let files = [
        ("ca.pem", shown.certificate.as_str()),
        ("node.pem", joined.certificate.as_str()),
        ("node.key", key.as_str()),
    ];
    for (file, text) in files {
        write_private(&dir.join(file), text)?;
    }
    config.ca_certificate = Some(dir.join("ca.pem"));
    config.certificate = Some(dir.join("node.pem"));
    config.key = Some(dir.join("node.key"));
    write_config(path, &config)?;
    if json {
        print_json(&serde_json::json!({
            "computer": name,
            "master_url": args.url,
            "config": path,
            "certificate_expires_at": joined.expires_at,
        }))?;
    } else {
        eprintln!(
            "joined {} as {name}; configuration written to {}",
            args.url,
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Written readable by its owner only: it holds the node's token.
pub(crate) fn write_config(path: &Path, config: &Config) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_private(path, &config.to_toml())
}

/// A file readable by its owner only (0600 from its creation).
pub(crate) fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The agent; `keep_services`: whether its services keep running when it stops (the
/// daemon's way, so that a restart or an upgrade interrupts none).
pub(crate) fn agent(config: Config, keep_services: bool) -> anyhow::Result<Agent> {
    let options = AgentOptions {
        runner: std::env::current_exe().ok(),
        keep_services,
        ..AgentOptions::default()
    };
    Ok(Agent::new(config, options, Arc::new(Host))?)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("cannot start the async runtime")
}

fn daemon(path: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    let agent = agent(config, true)?;
    let runtime = runtime()?;
    let code = runtime.block_on(async {
        tracing::info!(computer = %agent.config().computer, master = %agent.config().master_url, "node agent starting");
        agent.run(crate::master::shutdown_signal()).await?;
        tracing::info!("node agent stopped");
        anyhow::Ok(ExitCode::SUCCESS)
    });
    // A long poll may still hold a blocking thread: do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

enum Pass {
    Format,
    Software,
    Instance,
    Report,
}

/// Prints one JSON document on standard output.
fn pass(path: &Path, pass: Pass, json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    let agent = agent(config, false)?;
    runtime()?.block_on(async {
        let failures = match pass {
            Pass::Format => {
                let slots = agent.format().await?;
                if json {
                    print_json(&slots)?;
                } else {
                    eprintln!("{} partitions formatted and declared", slots.len());
                }
                return Ok(ExitCode::SUCCESS);
            }
            Pass::Software => agent.once(true).await?,
            Pass::Instance => {
                let failures = agent.once(false).await?;
                agent.stop_services().await;
                failures
            }
            Pass::Report => {
                agent.report_usage().await?;
                Vec::new()
            }
        };
        if json {
            print_json(&serde_json::json!({ "failed": failures }))?;
        }
        if failures.is_empty() {
            Ok(ExitCode::SUCCESS)
        } else {
            eprintln!("failed: {}", failures.join(", "));
            Ok(ExitCode::from(crate::EXIT_FAILURE))
        }
    })
}

fn status(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    let services = grove_node::query_status(&config.status_socket())?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &services)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<14} {:<24} {:<8} {:>8} {:>10} {:>8}",
        "PARTITION", "SERVICE", "STATE", "PID", "UPTIME", "RESTARTS"
    )?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for s in services {
        let pid = s.pid.map_or("-".to_owned(), |p| p.to_string());
        let uptime = s
            .since
            .filter(|_| s.state == "running")
            .map_or("-".to_owned(), |t| human(now.saturating_sub(t)));
        writeln!(
            out,
            "{:<14} {:<24} {:<8} {:>8} {:>10} {:>8}",
            s.partition, s.service, s.state, pid, uptime, s.restarts
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn human(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// Writes one line of a log: as it is, or as a JSON object per line.
fn write_line(out: &mut impl Write, line: &str, json: bool) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, &serde_json::json!({ "line": line }))?;
        writeln!(out)?;
    } else {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn tail(
    path: &Path,
    partition: &str,
    service: &str,
    lines: usize,
    follow: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    if [partition, service]
        .iter()
        .any(|p| p.is_empty() || p.contains('/') || *p == "..")
    {
        bail!("partition and service are names, not paths");
    }
    let log = config.service_log(partition, service);
    // The partition's user controls the log's directory: nothing there is followed.
    let tree = grove_confine::Tree::open(&log.root, None)?;
    let open = || tree.open_file(&log.relative);
    let mut file = open().with_context(|| format!("no log for {partition}/{service}"))?;
    let mut text = String::new();
    file.read_to_string(&mut text)
        .with_context(|| format!("cannot read {}", log.path().display()))?;
    let mut out = std::io::stdout().lock();
    let all: Vec<&str> = text.lines().collect();
    for line in &all[all.len().saturating_sub(lines)..] {
        write_line(&mut out, line, json)?;
    }
    out.flush()?;
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    let mut position = text.len() as u64;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let length = open().map(|f| f.metadata().map_or(0, |m| m.len()));
        if length.unwrap_or(0) < position {
            // Rotated: start over with the new file.
            file = open()?;
            position = 0;
        }
        file.seek(SeekFrom::Start(position))?;
        let mut reader = std::io::BufReader::new(&file);
        let mut line = String::new();
        while reader.read_line(&mut line)? > 0 {
            position += line.len() as u64;
            write_line(&mut out, line.trim_end_matches('\n'), json)?;
            line.clear();
        }
        out.flush()?;
    }
}

/// The child side of work the agent hands to an unprivileged user: a job on stdin, the
/// outcome on stdout, errors on stderr; nothing it started is left when it answers.
fn helper(
    work: fn(&[u8]) -> anyhow::Result<Result<serde_json::Value, String>>,
) -> anyhow::Result<ExitCode> {
    grove_node::helper::contain()?;
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .context("cannot read the job")?;
    let outcome = work(&input);
    grove_node::helper::end_descendants();
    match outcome? {
        Ok(answer) => {
            serde_json::to_writer(std::io::stdout().lock(), &answer)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(message) => {
            eprintln!("{message}");
            Ok(ExitCode::from(crate::EXIT_FAILURE))
        }
    }
}

fn run_instance(input: &[u8]) -> anyhow::Result<Result<serde_json::Value, String>> {
    let job: grove_node::instance::Job =
        serde_json::from_slice(input).context("the job is not understood")?;
    let fetcher = grove_fetch::Fetcher::new(Duration::from_secs(60));
    let registry = grove_recipes::Registry::builtin();
    Ok(grove_node::instance::run(&job, &fetcher, &registry)
        .and_then(|outcome| serde_json::to_value(outcome).map_err(|e| e.to_string())))
}

fn build_software(input: &[u8]) -> anyhow::Result<Result<serde_json::Value, String>> {
    let job: grove_node::software::BuildJob =
        serde_json::from_slice(input).context("the job is not understood")?;
    let fetcher = grove_fetch::Fetcher::new(Duration::from_secs(60));
    let registry = grove_recipes::Registry::builtin();
    Ok(
        grove_node::software::install_software(&job.root, &job.url, &fetcher, &registry)
            .map(|dir| serde_json::json!({ "directory": dir })),
    )
}
