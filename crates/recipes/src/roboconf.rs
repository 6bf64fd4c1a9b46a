//! `grove:roboconf-agent`: the one part of the built-in release of Roboconf root
//! instances. It writes, in the partition, what `grove app agent` needs to reach the
//! master as the partition (private to the partition's user) and the service that runs
//! it, with the `grove` binary running this profile.

use std::path::{Path, PathBuf};

use grove_profile::Resolved;
use serde::{Deserialize, Serialize};

use crate::builtin::{arg, grove_script, write_file};
use crate::slap::Connection;
use crate::{Context, Options, Recipe, Registry};

/// Where the agent's configuration is written, below the partition.
pub const CONFIG: &str = "etc/roboconf/agent.json";
/// The service that runs the agent.
pub const SERVICE: &str = "etc/service/roboconf-agent";

/// What `grove app agent` reads: how to reach the master, and the partition's address
/// (the root instance's `ip`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentConfig {
    pub connection: Connection,
    pub address: Option<String>,
}

pub(crate) fn register(registry: &mut Registry) {
    registry.add("grove:roboconf-agent", Box::new(RoboconfAgent));
}

struct RoboconfAgent;

impl Recipe for RoboconfAgent {
    fn install(
        &self,
        ctx: &Context<'_>,
        _: &Options<'_>,
        _: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        let partition = ctx
            .partition
            .ok_or("grove:roboconf-agent runs in a partition only")?;
        let config = AgentConfig {
            connection: partition.connection.clone(),
            address: partition.addresses.first().cloned(),
        };
        let text = serde_json::to_vec_pretty(&config).map_err(|e| e.to_string())?;
        let config_path = ctx.inside(Path::new(CONFIG))?;
        write_file(&config_path, &text, 0o600)?;
        let service = ctx.inside(Path::new(SERVICE))?;
        let script = grove_script(&[
            "app",
            "agent",
            "--config",
            &arg(&config_path),
            "--dir",
            &arg(&ctx.directory),
        ])?;
        write_file(&service, script.as_bytes(), 0o700)?;
        Ok(vec![config_path, service])
    }
}
