//! The life cycle of instances, as data: Roboconf's states, what each instance imports
//! from the others ([`resolve`]), and the next step towards what is wanted ([`plan`]), a
//! pure function of the instance's state, its parent's and its imports. The master and
//! the node run the steps; the rules are here, tested from tables.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::graph::Graph;
use crate::instances::Instance;

/// Roboconf's instance states, written as Grove's API writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    NotDeployed,
    Deploying,
    DeployedStopped,
    Unresolved,
    WaitingForAncestor,
    Starting,
    DeployedStarted,
    Stopping,
    Undeploying,
    Problem,
}

impl State {
    pub const ALL: [State; 10] = [
        State::NotDeployed,
        State::Deploying,
        State::DeployedStopped,
        State::Unresolved,
        State::WaitingForAncestor,
        State::Starting,
        State::DeployedStarted,
        State::Stopping,
        State::Undeploying,
        State::Problem,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::NotDeployed => "not_deployed",
            State::Deploying => "deploying",
            State::DeployedStopped => "deployed_stopped",
            State::Unresolved => "unresolved",
            State::WaitingForAncestor => "waiting_for_ancestor",
            State::Starting => "starting",
            State::DeployedStarted => "deployed_started",
            State::Stopping => "stopping",
            State::Undeploying => "undeploying",
            State::Problem => "problem",
        }
    }

    /// A step is under way: nothing else is planned until it ends.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            State::Deploying | State::Starting | State::Stopping | State::Undeploying
        )
    }

    /// Deployed, started or not: children may be deployed on it.
    pub fn is_deployed(self) -> bool {
        matches!(
            self,
            State::DeployedStopped
                | State::Unresolved
                | State::WaitingForAncestor
                | State::DeployedStarted
        )
    }
}

impl std::str::FromStr for State {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let normal = s.trim().to_ascii_lowercase().replace([' ', '-'], "_");
        State::ALL
            .into_iter()
            .find(|state| state.as_str() == normal)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("no instance state {0:?} (not_deployed, deployed_stopped, deployed_started, ...)")]
pub struct UnknownState(pub String);

/// What is asked of an instance: one of the three stable states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Wanted {
    NotDeployed,
    DeployedStopped,
    DeployedStarted,
}

/// The next step for an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Run `deploy`: deploying, then deployed and stopped (not deployed on failure).
    Deploy,
    /// Run `start`: starting, then started (the state before on failure).
    Start,
    /// Run `stop`, ending in this state (deployed and stopped, unresolved when an import
    /// went away, waiting when the parent stopped).
    Stop(State),
    /// Run `undeploy`: undeploying, then not deployed.
    Undeploy,
    /// No script: the state changes (to unresolved, waiting for an ancestor, or stopped).
    Become(State),
}

/// What [`plan`] looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub state: State,
    pub wanted: Wanted,
    /// The parent's state; `None` for a root instance (its machine is there).
    pub parent: Option<State>,
    /// Every mandatory import has a started exporter.
    pub resolved: bool,
}

/// The next step towards what is wanted, or `None` when there is nothing to do now (it
/// is there, a step is under way, or it waits for its parent).
pub fn plan(f: Facts) -> Option<Step> {
    use State::*;
    if f.state.is_transient() {
        return None;
    }
    let parent_started = f.parent.is_none_or(|p| p == DeployedStarted);
    let parent_deployed = f.parent.is_none_or(State::is_deployed);
    match f.wanted {
        Wanted::NotDeployed => match f.state {
            NotDeployed => None,
            DeployedStarted => Some(Stop(DeployedStopped)),
            DeployedStopped | Unresolved | WaitingForAncestor | Problem => Some(Undeploy),
            Deploying | Starting | Stopping | Undeploying => None,
        },
        Wanted::DeployedStopped => match f.state {
            NotDeployed if parent_deployed => Some(Deploy),
            NotDeployed => None,
            DeployedStarted => Some(Stop(DeployedStopped)),
            Unresolved | WaitingForAncestor => Some(Become(DeployedStopped)),
            DeployedStopped | Problem => None,
            Deploying | Starting | Stopping | Undeploying => None,
        },
        Wanted::DeployedStarted => match f.state {
            NotDeployed if parent_deployed => Some(Deploy),
            NotDeployed => None,
            DeployedStarted if !parent_started => Some(Stop(WaitingForAncestor)),
            DeployedStarted if !f.resolved => Some(Stop(Unresolved)),
            DeployedStarted => None,
            DeployedStopped | Unresolved | WaitingForAncestor if !parent_started => {
                (f.state != WaitingForAncestor).then_some(Become(WaitingForAncestor))
            }
            DeployedStopped | WaitingForAncestor if !f.resolved => Some(Become(Unresolved)),
            Unresolved if !f.resolved => None,
            DeployedStopped | Unresolved | WaitingForAncestor => Some(Start),
            Problem => None,
            Deploying | Starting | Stopping | Undeploying => None,
        },
    }
}

use Step::*;

/// One exporter an instance imports from: its path and the variables it gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Import {
    pub path: String,
    pub values: BTreeMap<String, String>,
}

/// What an instance imports, by prefix (a component or a facet), from started exporters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Imports {
    pub by_prefix: BTreeMap<String, Vec<Import>>,
    /// Every prefix with a mandatory variable has an exporter.
    pub resolved: bool,
    /// Prefixes with a mandatory variable and no exporter.
    pub missing: Vec<String>,
}

/// Each instance's exports with their values: the component's, the instance's
/// overrides, `ip` from its root instance's address (`addresses`: root path → address),
/// random ports as assigned (`ports`: (path, variable) → port).
pub fn exports(
    graph: &Graph,
    instance: &Instance,
    addresses: &BTreeMap<String, String>,
    ports: &BTreeMap<(String, String), u16>,
) -> BTreeMap<String, String> {
    let root = crate::instances::root_path(&instance.path).to_owned();
    let mut out = BTreeMap::new();
    for e in instance.exports(graph) {
        let value = if e.local() == "ip" && e.value.is_none() {
            addresses.get(&root).cloned()
        } else if e.random.is_some() {
            ports
                .get(&(instance.path.clone(), e.name.clone()))
                .map(u16::to_string)
        } else {
            e.value.clone().map(|v| meta(&v, instance))
        };
        if let Some(v) = value {
            out.insert(e.name.clone(), v);
        }
    }
    out
}

/// `$(ROBOCONF_...)` meta-variables in an export's value, for this instance.
fn meta(value: &str, instance: &Instance) -> String {
    if !value.contains("$(ROBOCONF_") {
        return value.to_owned();
    }
    let clean = clean_path(&instance.path);
    let reversed = clean_reversed_path(&instance.path);
    value
        .replace("$(ROBOCONF_INSTANCE_NAME)", &instance.name)
        .replace("$(ROBOCONF_INSTANCE_PATH)", &instance.path)
        .replace("$(ROBOCONF_CLEAN_INSTANCE_PATH)", &clean)
        .replace("$(ROBOCONF_CLEAN_REVERSED_INSTANCE_PATH)", &reversed)
        .replace("$(ROBOCONF_COMPONENT_NAME)", &instance.component)
}

/// [`clean_path`] of the path's segments in reverse order.
pub fn clean_reversed_path(path: &str) -> String {
    let mut parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    parts.reverse();
    clean_path(&parts.join("/"))
}

/// A path without its leading `/`, other non-word characters as `_`.
pub fn clean_path(path: &str) -> String {
    path.trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// What one instance imports: for each prefix it imports, every other started instance
/// whose exports carry that prefix, with the variables it imports (all of the prefix's
/// for `Prefix.*`). `started`: path → its exports, for the started instances only.
/// `external`: for an `external` import's prefix, the started exporters of the
/// applications bound to it (their published variables).
pub fn resolve(
    graph: &Graph,
    instance: &Instance,
    started: &BTreeMap<String, BTreeMap<String, String>>,
    external: &BTreeMap<String, Vec<Import>>,
) -> Imports {
    let mut by_prefix: BTreeMap<String, Vec<Import>> = BTreeMap::new();
    let mut mandatory: BTreeMap<String, bool> = BTreeMap::new();
    let imports = graph.imports(&instance.component);
    for import in imports.iter().filter(|i| !i.external) {
        let m = mandatory.entry(import.prefix().to_owned()).or_default();
        *m |= !import.optional;
    }
    let mut externals: BTreeMap<String, bool> = BTreeMap::new();
    for import in imports.iter().filter(|i| i.external) {
        let m = externals.entry(import.prefix().to_owned()).or_default();
        *m |= !import.optional;
    }
    for prefix in externals.keys() {
        let wanted: Vec<&str> = imports
            .iter()
            .filter(|i| i.external && i.prefix() == prefix)
            .map(|i| i.name.as_str())
            .collect();
        let found = external
            .get(prefix)
            .into_iter()
            .flatten()
            .map(|i| Import {
                path: i.path.clone(),
                values: i
                    .values
                    .iter()
                    .filter(|(k, _)| wanted.iter().any(|w| *w == k.as_str() || w.ends_with(".*")))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            })
            .collect();
        by_prefix.insert(prefix.clone(), found);
    }
    for (prefix, m) in externals {
        let slot = mandatory.entry(prefix).or_default();
        *slot |= m;
    }
    let internal: Vec<String> = mandatory
        .keys()
        .filter(|p| !by_prefix.contains_key(*p))
        .cloned()
        .collect();
    for prefix in &internal {
        let wanted: Vec<&str> = imports
            .iter()
            .filter(|i| !i.external && i.prefix() == prefix)
            .map(|i| i.name.as_str())
            .collect();
        let dotted = format!("{prefix}.");
        let mut found = Vec::new();
        for (path, values) in started {
            if *path == instance.path || !values.keys().any(|k| k.starts_with(&dotted)) {
                continue;
            }
            let values: BTreeMap<String, String> = values
                .iter()
                .filter(|(k, _)| {
                    k.starts_with(&dotted)
                        && wanted
                            .iter()
                            .any(|w| *w == k.as_str() || (w.ends_with(".*")))
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            found.push(Import {
                path: path.clone(),
                values,
            });
        }
        by_prefix.insert(prefix.clone(), found);
    }
    let missing: Vec<String> = mandatory
        .iter()
        .filter(|(prefix, m)| **m && by_prefix.get(*prefix).is_none_or(Vec::is_empty))
        .map(|(p, _)| p.clone())
        .collect();
    Imports {
        resolved: missing.is_empty(),
        by_prefix,
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::*;

    /// A row of the planner's table: state, wanted, parent, resolved, and the step.
    type Row = (State, Wanted, Option<State>, bool, Option<Step>);

    /// One row: state, wanted, parent, resolved → step.
    fn row(state: State, wanted: Wanted, parent: Option<State>, resolved: bool) -> Option<Step> {
        plan(Facts {
            state,
            wanted,
            parent,
            resolved,
        })
    }

    #[test]
    fn the_planner_from_a_table() {
        use Wanted as W;
        let started = Some(DeployedStarted);
        let stopped = Some(DeployedStopped);
        let table: &[Row] = &[
            // Deploying and starting, parents first.
            (NotDeployed, W::DeployedStarted, None, true, Some(Deploy)),
            (
                NotDeployed,
                W::DeployedStarted,
                Some(NotDeployed),
                true,
                None,
            ),
            (NotDeployed, W::DeployedStarted, Some(Deploying), true, None),
            (NotDeployed, W::DeployedStarted, stopped, true, Some(Deploy)),
            (
                DeployedStopped,
                W::DeployedStarted,
                started,
                true,
                Some(Start),
            ),
            (DeployedStopped, W::DeployedStarted, None, true, Some(Start)),
            // The parent is not started: wait for it.
            (
                DeployedStopped,
                W::DeployedStarted,
                stopped,
                true,
                Some(Become(WaitingForAncestor)),
            ),
            (WaitingForAncestor, W::DeployedStarted, stopped, true, None),
            (
                WaitingForAncestor,
                W::DeployedStarted,
                started,
                true,
                Some(Start),
            ),
            // Imports missing: unresolved until an exporter starts.
            (
                DeployedStopped,
                W::DeployedStarted,
                started,
                false,
                Some(Become(Unresolved)),
            ),
            (
                WaitingForAncestor,
                W::DeployedStarted,
                started,
                false,
                Some(Become(Unresolved)),
            ),
            (Unresolved, W::DeployedStarted, started, false, None),
            (Unresolved, W::DeployedStarted, started, true, Some(Start)),
            // Started: an import lost stops it, unresolved; its parent stopping stops it.
            (DeployedStarted, W::DeployedStarted, started, true, None),
            (
                DeployedStarted,
                W::DeployedStarted,
                started,
                false,
                Some(Stop(Unresolved)),
            ),
            (
                DeployedStarted,
                W::DeployedStarted,
                stopped,
                true,
                Some(Stop(WaitingForAncestor)),
            ),
            // Stopping.
            (
                DeployedStarted,
                W::DeployedStopped,
                started,
                true,
                Some(Stop(DeployedStopped)),
            ),
            (
                Unresolved,
                W::DeployedStopped,
                started,
                false,
                Some(Become(DeployedStopped)),
            ),
            (
                WaitingForAncestor,
                W::DeployedStopped,
                stopped,
                true,
                Some(Become(DeployedStopped)),
            ),
            (DeployedStopped, W::DeployedStopped, started, true, None),
            (NotDeployed, W::DeployedStopped, started, true, Some(Deploy)),
            // Undeploying: stop first.
            (
                DeployedStarted,
                W::NotDeployed,
                started,
                true,
                Some(Stop(DeployedStopped)),
            ),
            (
                DeployedStopped,
                W::NotDeployed,
                started,
                true,
                Some(Undeploy),
            ),
            (Unresolved, W::NotDeployed, started, false, Some(Undeploy)),
            (
                WaitingForAncestor,
                W::NotDeployed,
                stopped,
                true,
                Some(Undeploy),
            ),
            (Problem, W::NotDeployed, None, true, Some(Undeploy)),
            (NotDeployed, W::NotDeployed, None, true, None),
            // A step under way: nothing more until it ends.
            (Deploying, W::DeployedStarted, None, true, None),
            (Starting, W::NotDeployed, None, true, None),
            (Stopping, W::DeployedStarted, None, true, None),
            (Undeploying, W::DeployedStarted, None, true, None),
        ];
        for (state, wanted, parent, resolved, step) in table {
            assert_eq!(
                row(*state, *wanted, *parent, *resolved),
                *step,
                "{state:?} wanted {wanted:?}, parent {parent:?}, resolved {resolved}"
            );
        }
    }

    #[test]
    fn states_read_as_written_in_any_case() {
        assert_eq!(
            "deployed_started".parse::<State>().ok(),
            Some(DeployedStarted)
        );
        assert_eq!(
            "DEPLOYED_STOPPED".parse::<State>().ok(),
            Some(DeployedStopped)
        );
        assert_eq!("not deployed".parse::<State>().ok(), Some(NotDeployed));
        assert!("running".parse::<State>().is_err());
        for state in State::ALL {
            assert_eq!(state.as_str().parse::<State>().ok(), Some(state));
            let json = serde_json::to_string(&state).expect("json");
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
    }

    fn app() -> (Graph, Vec<Instance>) {
        let tree = crate::tree::Tree::of([
            (
                "descriptor/application.properties",
                "name = a\nversion = 1.0\ndsl-id = roboconf-1.0\ngraph-entry-point = g.graph\ninstance-entry-point = i.instances\n",
            ),
            (
                "graph/g.graph",
                "VM {\n installer: target;\n children: Db, Web, Lb;\n}\n\
                 Db {\n installer: script;\n exports: ip, port = 5432, user = $(ROBOCONF_INSTANCE_NAME), random[port] admin;\n}\n\
                 Web {\n installer: script;\n exports: ip, port = 8080;\n imports: Db.port, Db.ip;\n}\n\
                 Lb {\n installer: script;\n imports: Web.* (optional), Db.user;\n}\n",
            ),
            (
                "instances/i.instances",
                "instance of VM {\n name: vm1;\n instance of Db {\n  name: db;\n }\n instance of Web {\n  name: web;\n }\n}\n\
                 instance of VM {\n name: vm2;\n instance of Web {\n  name: web;\n  port: 9090;\n }\n instance of Lb {\n  name: lb;\n }\n}\n",
            ),
        ]);
        let (report, app) = crate::check::application(tree);
        let app = app.unwrap_or_else(|| panic!("{:?}", report.diagnostics));
        (app.graph, app.instances)
    }

    #[test]
    fn exports_take_overrides_addresses_ports_and_meta_variables() {
        let (graph, instances) = app();
        let addresses = BTreeMap::from([("/vm1".to_owned(), "10.0.0.1".to_owned())]);
        let ports = BTreeMap::from([(("/vm1/db".to_owned(), "Db.admin".to_owned()), 10000)]);
        let db = instances.iter().find(|i| i.path == "/vm1/db").expect("db");
        let got = exports(&graph, db, &addresses, &ports);
        let want: BTreeMap<String, String> = [
            ("Db.admin", "10000"),
            ("Db.ip", "10.0.0.1"),
            ("Db.port", "5432"),
            ("Db.user", "db"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(got, want);
        let web2 = instances
            .iter()
            .find(|i| i.path == "/vm2/web")
            .expect("web");
        // Its machine has no address yet: no `ip`.
        assert_eq!(
            exports(&graph, web2, &addresses, &ports)
                .get("Web.port")
                .map(String::as_str),
            Some("9090")
        );
        assert_eq!(clean_path("/vm 1/my-db"), "vm_1_my_db");
    }

    #[test]
    fn imports_come_from_started_exporters_by_prefix() {
        let (graph, instances) = app();
        let find = |p: &str| instances.iter().find(|i| i.path == p).expect("instance");
        let values = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        // Nothing started: the web servers are unresolved, the balancer too (Db.user).
        let none = BTreeMap::new();
        let web = resolve(&graph, find("/vm1/web"), &none, &BTreeMap::new());
        assert!(!web.resolved);
        assert_eq!(web.missing, vec!["Db".to_owned()]);
        // The database started: web servers resolve and get only what they import.
        let mut started = BTreeMap::from([(
            "/vm1/db".to_owned(),
            values(&[
                ("Db.ip", "10.0.0.1"),
                ("Db.port", "5432"),
                ("Db.user", "db"),
            ]),
        )]);
        let web = resolve(&graph, find("/vm1/web"), &started, &BTreeMap::new());
        assert!(web.resolved);
        assert_eq!(
            web.by_prefix["Db"],
            vec![Import {
                path: "/vm1/db".into(),
                values: values(&[("Db.ip", "10.0.0.1"), ("Db.port", "5432")])
            }]
        );
        // The balancer: Web.* is optional, Db.user mandatory.
        let lb = resolve(&graph, find("/vm2/lb"), &started, &BTreeMap::new());
        assert!(lb.resolved);
        assert!(lb.by_prefix["Web"].is_empty());
        started.insert(
            "/vm1/web".into(),
            values(&[("Web.ip", "10.0.0.1"), ("Web.port", "8080")]),
        );
        started.insert("/vm2/web".into(), values(&[("Web.port", "9090")]));
        let lb = resolve(&graph, find("/vm2/lb"), &started, &BTreeMap::new());
        assert_eq!(
            lb.by_prefix["Web"]
                .iter()
                .map(|i| i.path.as_str())
                .collect::<Vec<_>>(),
            vec!["/vm1/web", "/vm2/web"]
        );
        assert_eq!(lb.by_prefix["Web"][0].values.len(), 2);
    }
}
