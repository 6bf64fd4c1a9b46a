//! `grove certificate-authority`: a partition's CA service
//! (`slapos.cookbook:certificate_authority` writes the command line): signs the requests
//! left in its requests directory.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use grove_recipes::certificate_authority::Layout;

#[derive(Debug, Args)]
pub(crate) struct CaArgs {
    /// Where the CA's certificate is (`cacert.pem`).
    #[arg(long)]
    ca_dir: PathBuf,
    /// Where its key and the issued keys are.
    #[arg(long)]
    ca_private: PathBuf,
    /// Where the issued certificates are.
    #[arg(long)]
    ca_certs: PathBuf,
    /// The requests directory.
    #[arg(long)]
    requests: PathBuf,
    /// Sign what is pending, print how many (with `--json`, as JSON) and exit.
    #[arg(long)]
    once: bool,
    #[arg(long)]
    json: bool,
}

/// How often the service looks for new requests.
const POLL: Duration = Duration::from_secs(1);

pub(crate) fn run(args: CaArgs) -> anyhow::Result<ExitCode> {
    let layout = Layout {
        ca_dir: args.ca_dir,
        ca_private: args.ca_private,
        ca_certs: args.ca_certs,
        requests: args.requests,
    };
    layout.open_or_create()?;
    if args.once {
        let issued = layout.issue_pending()?;
        if args.json {
            crate::client::print_json(&serde_json::json!({ "issued": issued }))?;
        } else {
            crate::client::print_lines(&[format!("{issued} certificates issued")])?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    tracing::info!(requests = %layout.requests.display(), "certificate authority started");
    loop {
        match layout.issue_pending() {
            Ok(0) => {}
            Ok(issued) => tracing::info!(issued, "certificates issued"),
            // A bad request file must not stop the others: it is logged each round.
            Err(e) => tracing::warn!("{e}"),
        }
        std::thread::sleep(POLL);
    }
}
