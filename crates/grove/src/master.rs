//! `grove master`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub(crate) struct MasterArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "GROVE_LISTEN")]
    listen: SocketAddr,
    /// Where the store, the master key and the admin token live.
    #[arg(long, env = "GROVE_DATA_DIR")]
    data_dir: PathBuf,
    /// Where the desired state is kept: `sqlite:PATH` or `postgres://USER@HOST/DATABASE`
    /// (several masters may share one PostgreSQL database). Default: SQLite in the data
    /// directory.
    #[arg(long, env = "GROVE_STORE")]
    store: Option<grove_store::Location>,
    /// How new instances are placed: simple (least loaded computer), chance (any that
    /// fits), zone (spread each user's instances across zones) or pack (fullest first).
    #[arg(long, default_value = "simple", env = "GROVE_PLACEMENT")]
    placement: grove_store::Policy,
    /// Connections served at once (also bounded by the open file limit); more wait.
    #[arg(long, default_value_t = grove_master::Limits::default().max_connections)]
    max_connections: usize,
    /// Seconds a client has to send a request's headers; idle connections close after it.
    #[arg(long, default_value_t = grove_master::Limits::default().header_read_timeout.as_secs())]
    header_timeout_seconds: u64,
    /// The CA certificate (PEM) to issue certificates with, instead of the one the master
    /// makes at first start (give --ca-key too).
    #[arg(long, requires = "ca_key", env = "GROVE_CA_CERT_FILE")]
    ca_cert: Option<PathBuf>,
    /// The key of --ca-cert (PEM).
    #[arg(long, requires = "ca_cert", env = "GROVE_CA_KEY_FILE")]
    ca_key: Option<PathBuf>,
    /// A DNS name or address clients reach this master by, for its server certificate
    /// (repeatable; localhost, loopback, the host name and the listen address are in).
    #[arg(long = "tls-name")]
    tls_names: Vec<String>,
    /// Also listen here for clients with a certificate of this master's CA only (nodes,
    /// partitions, users given one): a client without one fails the TLS handshake.
    #[arg(long, value_name = "ADDR", env = "GROVE_MTLS_LISTEN")]
    mtls_listen: Option<std::net::SocketAddr>,
    /// Serve plain HTTP instead of HTTPS: only on a loopback address, behind a TLS proxy.
    #[arg(long, conflicts_with_all = ["ca_cert", "tls_names", "mtls_listen"])]
    insecure_http: bool,
    /// Print where the master listens and its admin token's file as one JSON object.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: MasterArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let config = grove_master::MasterConfig {
            listen: args.listen,
            data_dir: args.data_dir,
            store: args.store,
            placement: args.placement,
            limits: grove_master::Limits {
                header_read_timeout: std::time::Duration::from_secs(
                    args.header_timeout_seconds.max(1),
                ),
                max_connections: args.max_connections.max(1),
            },
            transport: if args.insecure_http {
                grove_master::Transport::Http
            } else {
                grove_master::Transport::Https(grove_master::TlsOptions {
                    ca: args.ca_cert.zip(args.ca_key),
                    names: args.tls_names,
                    mtls_listen: args.mtls_listen,
                })
            },
        };
        let master = grove_master::start(&config).await?;
        if args.json {
            let started = serde_json::json!({
                "url": master.url(),
                "mtls_url": master.mtls_url(),
                "admin_token": master.admin_token_path,
                "store": master.store,
                "ca_certificate": master.ca.as_ref().map(|(path, _)| path),
                "ca_fingerprint": master.ca.as_ref().map(|(_, fingerprint)| fingerprint),
            });
            #[allow(clippy::print_stdout)]
            {
                println!("{started}");
            }
        } else {
            eprintln!("master listening on {}", master.url());
            eprintln!("web console: {}/", master.url());
            if let Some(url) = master.mtls_url() {
                eprintln!("client certificates required on {url}");
            }
            eprintln!("admin token: {}", master.admin_token_path.display());
            eprintln!("store: {}", master.store);
            match &master.ca {
                Some((path, fingerprint)) => {
                    eprintln!("CA certificate: {}", path.display());
                    #[allow(clippy::print_stdout)]
                    {
                        println!("CA fingerprint: {fingerprint}");
                    }
                }
                None => tracing::warn!(
                    "serving plain HTTP (--insecure-http): run this master behind a TLS proxy"
                ),
            }
        }
        shutdown_signal().await;
        tracing::info!("stopping");
        master.stop().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
