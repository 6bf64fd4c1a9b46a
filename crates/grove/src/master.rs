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
}

pub(crate) fn run(args: MasterArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let config = grove_master::MasterConfig {
            listen: args.listen,
            data_dir: args.data_dir,
        };
        let master = grove_master::start(&config).await?;
        eprintln!("master listening on {}", master.url());
        eprintln!("admin token: {}", master.admin_token_path.display());
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
