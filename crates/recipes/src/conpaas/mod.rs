//! `grove:conpaas`: the one part of the releases Grove ships for ConPaaS's service types
//! (`grove_api::apps::BUILTIN_RELEASES`). What it does depends on the instance's software
//! type:
//!
//! - `manager`: the service's manager. Its parameters are the service's
//!   [`Spec`]; the node counts by role live in the partition (`var/conpaas/roles.json`,
//!   changed by the `add_nodes` and `remove_nodes` actions). [`reconcile`] requests one
//!   agent per node (a child instance of the same release, the role as software type),
//!   then the balancers with the addresses the others published, and publishes the
//!   service's `url`, its `nodes` and whether it is `ready`. Its actions are
//!   executables in `etc/action/` that run `grove app conpaas-action` ([`act`]).
//! - a role: an agent. A PHP service's `web` (or `backend`) node serves the code
//!   archive with nginx and php-fpm; its `proxy` balances over the web nodes with nginx.
//!
//! Every server runs as the partition's user, its files below the partition.

use std::path::PathBuf;

use grove_api as api;
use grove_conpaas::service::{self, Spec};
use grove_profile::Resolved;
use serde::{Deserialize, Serialize};

use crate::slap::Connection;
use crate::{Context, Options, Recipe, Registry};

mod agents;
mod generic;
mod manager;
mod mysql;
mod php;

use agents::agent_actions;
use generic::generic_node;
use mysql::{mysql_glb, mysql_node};
use php::{php_proxy, php_web};

pub use agents::logs;
pub use manager::{ACTIONS, Node, Outcome, act, reconcile};

/// What the manager's actions read: how to reach the master as the manager, and which
/// service it is.
pub const MANAGER_CONFIG: &str = "etc/conpaas/manager.json";

/// What a manager's action needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagerConfig {
    pub connection: Connection,
    pub instance: i64,
    pub release: String,
    pub spec: Spec,
    /// The manager's partition.
    pub directory: PathBuf,
}

pub(crate) fn register(registry: &mut Registry) {
    registry.add("grove:conpaas", Box::new(ConPaaS));
}

struct ConPaaS;

impl Recipe for ConPaaS {
    fn install(
        &self,
        ctx: &Context<'_>,
        _: &Options<'_>,
        _: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        run(ctx)?;
        Ok(Vec::new())
    }

    // Every run does it all again: the agents' addresses and the counts change
    // between runs, never the part's options.
    fn update(&self, ctx: &Context<'_>, _: &Options<'_>, _: &Resolved) -> Result<(), String> {
        run(ctx)
    }
}

fn run(ctx: &Context<'_>) -> Result<(), String> {
    let partition = ctx
        .partition
        .ok_or("grove:conpaas runs in a partition only")?;
    let instance = &partition.instance;
    let kind = service::builtin_kind(&instance.software_release).ok_or_else(|| {
        format!(
            "{} is no ConPaaS release Grove ships",
            instance.software_release
        )
    })?;
    if instance.software_type == service::MANAGER {
        return manager::deploy(ctx, partition);
    }
    agent_actions(ctx)?;
    match (kind, instance.software_type.as_str()) {
        ("php", "web" | "backend") => php_web(ctx, partition),
        ("php", "proxy") => php_proxy(ctx, partition),
        ("mysql", "mysql") => mysql_node(ctx, partition),
        ("mysql", "glb") => mysql_glb(ctx, partition),
        ("generic", "master" | "node") => generic_node(ctx, partition),
        (kind, role) => Err(format!(
            "the {role} agent of a {kind} service is not available on this node yet"
        )),
    }
}

pub(super) fn text(parameters: &api::Parameters, key: &str) -> Option<String> {
    parameters
        .get(key)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}
