//! What the agent keeps on disk, in `<instance_root>/.grove-agent/` (root's, 0700): the
//! last desired state the master sent, what it deployed successfully in each partition,
//! and (through the supervisor's [`Records`]) which process runs each service. A restarted
//! agent starts from there: it adopts the services still running and, while the master
//! cannot be reached, starts the ones that are gone from what it deployed last.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use grove_api as api;
use grove_supervisor::Records;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A deployment that succeeded: which instance, at which timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Deployed {
    pub(crate) instance: i64,
    pub(crate) timestamp: i64,
}

/// The agent's directory of state.
#[derive(Debug, Clone)]
pub(crate) struct State {
    dir: PathBuf,
}

impl State {
    pub(crate) fn new(instance_root: &Path) -> State {
        State {
            dir: instance_root.join(".grove-agent"),
        }
    }

    pub(crate) fn records(&self) -> Records {
        Records::new(&self.dir.join("services"))
    }

    fn read<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        let path = self.dir.join(name);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the agent's state");
                return None;
            }
        };
        serde_json::from_slice(&bytes)
            .inspect_err(|e| tracing::warn!(path = %path.display(), error = %e, "unreadable agent state; ignored"))
            .ok()
    }

    /// Written whole, readable by root only (the desired state holds partition tokens),
    /// synced: it is what the agent starts from after a reboot.
    fn write<T: Serialize>(&self, name: &str, value: &T) {
        let written = serde_json::to_vec(value)
            .map_err(std::io::Error::other)
            .and_then(|bytes| grove_confine::write_private(&self.dir, name, &bytes, true));
        if let Err(e) = written {
            tracing::warn!(path = %self.dir.join(name).display(), error = %e, "cannot keep the agent's state");
        }
    }

    pub(crate) fn desired(&self) -> Option<api::DesiredState> {
        self.read("desired.json")
    }

    pub(crate) fn keep_desired(&self, desired: &api::DesiredState) {
        self.write("desired.json", desired);
    }

    pub(crate) fn deployed(&self) -> HashMap<String, Deployed> {
        self.read("deployed.json").unwrap_or_default()
    }

    pub(crate) fn keep_deployed(&self, deployed: &HashMap<String, Deployed>) {
        self.write("deployed.json", deployed);
    }

    /// The partitions' certificates and keys.
    pub(crate) fn certificates(&self) -> crate::certificates::Certificates {
        self.read("partition-certificates.json").unwrap_or_default()
    }

    pub(crate) fn keep_certificates(&self, certificates: &crate::certificates::Certificates) {
        self.write("partition-certificates.json", certificates);
    }
}
