//! The node's certificate, renewed by the node itself past half of its life: a new key
//! made here, a request signed by the master, both files replaced whole, and the client
//! switched to them. The master refuses the old certificate from then on.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::{Agent, Config, NodeError};

/// How often the agent looks at its certificate's age.
const CHECK_EVERY: Duration = Duration::from_secs(3600);

fn read(path: &Path) -> Result<String, NodeError> {
    std::fs::read_to_string(path).map_err(|source| NodeError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes `text` to `path` through a 0600 file beside it, renamed over it.
fn replace_private(path: &Path, text: &str) -> Result<(), NodeError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| NodeError::Io {
        path: path.to_owned(),
        source,
    };
    let temporary = path.with_extension("new");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&temporary, path).map_err(io)
}

/// When the node's certificate ends, and whether it is due for renewal; `None` for a
/// node without a certificate (it has a token).
pub fn certificate_state(config: &Config) -> Result<Option<(SystemTime, bool)>, NodeError> {
    let Some(path) = &config.certificate else {
        return Ok(None);
    };
    let pem = read(path)?;
    let bad = |e: grove_pki::PkiError| NodeError::Config {
        path: path.clone(),
        message: e.to_string(),
    };
    let der = grove_pki::certificates_der(&pem, "the node certificate")
        .map_err(bad)?
        .remove(0);
    let presented = grove_pki::presented(&der).map_err(bad)?;
    Ok(Some((
        presented.not_after,
        presented.due_for_renewal(SystemTime::now()),
    )))
}

impl Agent {
    /// Renews the node's certificate now; when the new one ends.
    pub fn renew_certificate(&self) -> Result<SystemTime, NodeError> {
        let config = &self.shared.config;
        let (Some(certificate), Some(key)) = (&config.certificate, &config.key) else {
            return Err(NodeError::Failed(
                "this node has no certificate to renew (it authenticates with a token)".to_owned(),
            ));
        };
        let (new_key, csr) =
            grove_pki::request(&grove_pki::Identity::Computer(config.computer.clone()))
                .map_err(|e| NodeError::Failed(e.to_string()))?;
        let renewed = self
            .shared
            .client
            .renew_certificate(&config.computer, &csr)?;
        // The key first: a certificate never sits beside a key that is not its own for
        // longer than the rename between them.
        replace_private(key, &new_key)?;
        replace_private(certificate, &renewed.certificate)?;
        self.shared.client.set_identity(&config.identity()?)?;
        tracing::info!(expires_at = renewed.expires_at, "node certificate renewed");
        Ok(SystemTime::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(renewed.expires_at).unwrap_or(0)))
    }

    /// Renews the certificate whenever it is past half of its life.
    pub(crate) async fn renew_when_due(self) {
        loop {
            let due = certificate_state(&self.shared.config).map(|s| s.is_some_and(|(_, due)| due));
            match due {
                Ok(true) => {
                    let agent = self.clone();
                    match tokio::task::spawn_blocking(move || agent.renew_certificate()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "cannot renew the node certificate yet")
                        }
                        Err(e) => tracing::warn!(error = %e, "the renewal task failed"),
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the node certificate"),
            }
            tokio::time::sleep(CHECK_EVERY).await;
        }
    }
}
