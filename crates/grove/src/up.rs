//! `grove up`: a master and a node in one process, on loopback, with everything under one
//! data directory. Stopping keeps the state; the next `grove up` resumes every instance.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use grove_api as api;
use grove_client::{Client, Identity};
use grove_node::Config;

/// The computer `grove up` registers for itself.
pub(crate) const LOCAL_COMPUTER: &str = "local";

#[derive(Debug, clap::Args)]
pub(crate) struct UpArgs {
    /// Where the store, the software and the partitions live (default: /var/lib/grove as
    /// root, else ~/.local/share/grove).
    #[arg(long, env = "GROVE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address of the master's API.
    #[arg(long, default_value = "127.0.0.1:8080", env = "GROVE_LISTEN")]
    listen: SocketAddr,
    /// Supply and request examples/NAME, and print its connection parameters.
    #[arg(long, value_name = "NAME")]
    example: Option<String>,
    /// Partitions of the local node (can grow between runs, never shrink).
    #[arg(long, default_value_t = 10)]
    partitions: u32,
    /// Print the example's connection parameters as one JSON object.
    #[arg(long)]
    json: bool,
}

pub(crate) fn default_data_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/grove");
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("grove")
}

/// `examples/NAME/software.cfg`, from the current directory or the source tree grove was
/// built from.
fn example_release(name: &str) -> anyhow::Result<String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("example {name:?}: a name such as hello or redis");
    }
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for base in [PathBuf::from("examples"), built_from] {
        let candidate = base.join(name).join("software.cfg");
        if candidate.is_file() {
            let path = candidate
                .canonicalize()
                .with_context(|| format!("cannot resolve {}", candidate.display()))?;
            return path
                .to_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("{} is not UTF-8", path.display()));
        }
    }
    bail!("no example named {name} (looked for examples/{name}/software.cfg)")
}

/// The node's configuration: registered once, then kept (with the master's address of
/// this run).
fn node_config(
    data_dir: &Path,
    master_url: &str,
    admin: &str,
    partitions: u32,
) -> anyhow::Result<Config> {
    let path = data_dir.join("node.toml");
    let mut config = if path.exists() {
        Config::load(&path)?
    } else {
        let credentials = Client::new(master_url, &Identity::token(admin))?
            .register_computer(&api::NewComputer {
                reference: LOCAL_COMPUTER.to_owned(),
                labels: Default::default(),
            })
            .context("cannot register the local node")?;
        let mut config = Config::new(master_url, LOCAL_COMPUTER, &credentials.token);
        config.software_root = data_dir.join("software");
        config.instance_root = data_dir.join("instance");
        config
    };
    config
        .apply_env(std::env::vars())
        .map_err(|message| anyhow!("{}: {message}", path.display()))?;
    config.master_url = master_url.to_owned();
    config.partitions = config.partitions.max(partitions);
    crate::node::write_config(&path, &config)?;
    Ok(config)
}

pub(crate) fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let data_dir = data_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", data_dir.display()))?;
    let example = args.example.as_deref().map(example_release).transpose()?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let code = runtime.block_on(async {
        let master = grove_master::start(&grove_master::MasterConfig::new(
            args.listen,
            data_dir.join("master"),
        ))
        .await?;
        let url = master.url();
        let admin = std::fs::read_to_string(&master.admin_token_path)
            .with_context(|| format!("cannot read {}", master.admin_token_path.display()))?
            .trim()
            .to_owned();
        let config = {
            let (dir, url, admin) = (data_dir.clone(), url.clone(), admin.clone());
            tokio::task::spawn_blocking(move || node_config(&dir, &url, &admin, args.partitions))
                .await??
        };
        eprintln!("grove is up: master {url}");
        eprintln!("admin token: {}", master.admin_token_path.display());
        eprintln!("web console: {url}/ (sign in with the admin token)");
        eprintln!(
            "node {LOCAL_COMPUTER}: {} partitions under {}",
            config.partitions,
            config.instance_root.display()
        );
        let agent = crate::node::agent(config, false)?;
        // Partitions are declared before anything is requested of them.
        agent.format().await?;
        write_client_file(&data_dir, &url, &admin)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = {
            let agent = agent.clone();
            tokio::spawn(async move {
                agent
                    .run(async {
                        let _ = stopped.await;
                    })
                    .await
            })
        };
        if let Some(release) = example {
            let name = args.example.clone().unwrap_or_default();
            let client = Client::new(&url, &Identity::token(&admin))?;
            let json = args.json;
            let shown =
                tokio::task::spawn_blocking(move || deploy_example(&client, &name, &release, json))
                    .await?;
            if let Err(e) = shown {
                eprintln!("error: {e:#}");
            }
        }
        eprintln!(
            "press Ctrl-C to stop (state is kept in {})",
            data_dir.display()
        );
        crate::master::shutdown_signal().await;
        eprintln!("stopping");
        let _ = stop.send(());
        match running.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("error: the node agent stopped: {e}"),
            Err(e) => eprintln!("error: the node agent failed: {e}"),
        }
        master.stop().await;
        anyhow::Ok(ExitCode::SUCCESS)
    });
    // A long poll may still hold a blocking thread: do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

/// Lets the client commands find this master without flags.
fn write_client_file(data_dir: &Path, url: &str, admin: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join("client.toml");
    let text = toml::to_string(&crate::client::ClientFile {
        ca_cert: None,
        master_url: url.to_owned(),
        token: admin.to_owned(),
    })?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn deploy_example(client: &Client, name: &str, release: &str, json: bool) -> anyhow::Result<()> {
    let supply = api::Supply {
        software_release: release.to_owned(),
        state: api::SupplyState::Available,
        project: None,
    };
    client.supply(LOCAL_COMPUTER, &supply)?;
    let request = api::InstanceRequest {
        title: name.to_owned(),
        software_release: release.to_owned(),
        software_type: "default".to_owned(),
        parameters: api::Parameters::new(),
        state: api::RequestedState::Started,
        shared: false,
        sla: [("computer_guid".to_owned(), LOCAL_COMPUTER.to_owned())].into(),
        project: None,
    };
    let instance = crate::client::request_instance(client, &request)?;
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let wait = crate::client::Wait {
        timeout: Duration::from_secs(600),
        error_grace: Duration::from_secs(60),
        progress,
    };
    let instance = crate::client::wait_for_connection(client, &instance, &wait)?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, &instance.connection)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{name} is ready:")?;
        for line in crate::client::connection_lines(&instance.connection) {
            writeln!(out, "  {line}")?;
        }
    }
    out.flush()?;
    Ok(())
}
