//! `grove node status`: the running agent answers on a Unix socket in the instance root
//! with the status of every service, as one JSON array.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::{Agent, NodeError};

/// One service, as `grove node status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub partition: String,
    pub service: String,
    /// running, backoff, failed or stopped.
    pub state: String,
    pub pid: Option<u32>,
    /// Seconds since the epoch at which the current run started.
    pub since: Option<u64>,
    pub restarts: u32,
    pub last_exit: Option<String>,
}

impl From<grove_supervisor::Status> for ServiceStatus {
    fn from(status: grove_supervisor::Status) -> ServiceStatus {
        let (partition, service) = status
            .name
            .split_once('/')
            .map(|(p, s)| (p.to_owned(), s.to_owned()))
            .unwrap_or_else(|| (String::new(), status.name.clone()));
        let state = match status.state {
            grove_supervisor::State::Running => "running",
            grove_supervisor::State::Backoff => "backoff",
            grove_supervisor::State::Failed => "failed",
            grove_supervisor::State::Stopped => "stopped",
        };
        ServiceStatus {
            partition,
            service,
            state: state.to_owned(),
            pid: status.pid,
            since: status
                .since
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
            restarts: status.restarts,
            last_exit: status.last_exit,
        }
    }
}

/// Listens on the agent's status socket (only its owner may connect).
pub(crate) fn serve(agent: Agent) -> Result<tokio::task::JoinHandle<()>, NodeError> {
    let path = agent.config().status_socket();
    let _ = std::fs::remove_file(&path);
    let io = |source| NodeError::Io {
        path: path.clone(),
        source,
    };
    let listener = tokio::net::UnixListener::bind(&path).map_err(io)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let statuses = agent.service_status().await;
            let body = serde_json::to_vec(&statuses).unwrap_or_default();
            let _ = stream.write_all(&body).await;
            let _ = stream.shutdown().await;
        }
    }))
}

/// Asks the agent running with this socket for its services.
pub fn query_status(socket: &Path) -> Result<Vec<ServiceStatus>, NodeError> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket).map_err(|e| {
        NodeError::Failed(format!(
            "cannot reach the node agent at {} (is `grove node` running, and may you \
             connect to it?): {e}",
            socket.display()
        ))
    })?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| NodeError::Failed(e.to_string()))?;
    let mut body = Vec::new();
    stream
        .read_to_end(&mut body)
        .map_err(|e| NodeError::Failed(format!("cannot read the agent's answer: {e}")))?;
    serde_json::from_slice(&body)
        .map_err(|e| NodeError::Failed(format!("the agent's answer is not understood: {e}")))
}
