//! `grove node ...`: register a computer, run the agent or one of its passes, look at the
//! services it supervises.

use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use grove_node::{Agent, AgentOptions, Config, Host};

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

pub(crate) fn run(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    match args.command {
        None => daemon(&args.config),
        Some(NodeCommand::Register(register_args)) => register(&args.config, register_args, json),
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
    let client = grove_node::Client::new(&args.master_url, &args.token);
    let credentials = client
        .register(
            &args.name,
            crate::client::key_values(&args.labels, "label")?,
        )
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

/// Written readable by its owner only: it holds the node's token.
pub(crate) fn write_config(path: &Path, config: &Config) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(config.to_toml().as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The agent; `keep_services`: whether its services keep running when it stops (the
/// daemon's way, so that a restart or an upgrade interrupts none).
pub(crate) fn agent(config: Config, keep_services: bool) -> Agent {
    let options = AgentOptions {
        runner: std::env::current_exe().ok(),
        keep_services,
        ..AgentOptions::default()
    };
    Agent::new(config, options, Arc::new(Host))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("cannot start the async runtime")
}

fn daemon(path: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    let agent = agent(config, true);
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
fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn pass(path: &Path, pass: Pass, json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    let agent = agent(config, false);
    runtime()?.block_on(async {
        let failures = match pass {
            Pass::Format => {
                let slots = agent.format().await?;
                if json {
                    print_json(&serde_json::to_value(&slots)?)?;
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
