//! A deployed application as the master keeps it ([`Deployment`], stored as JSON beside
//! the archive): the instance tree as it is now (the instance files', then what users
//! added and removed), what is wanted of each instance, the ports given. With what the
//! root partitions report it gives each root its subtree ([`Deployment::targets`]) and
//! users their view ([`Deployment::view`]). Pure: the master stores and serves it.

use std::collections::{BTreeMap, BTreeSet};

use grove_api::apps as wire;
use serde::{Deserialize, Serialize};

use crate::check::Application;
use crate::graph::Graph;
use crate::instances::{Instance, root_path};
use crate::lifecycle::{State, Wanted};
use crate::live::{self, Known};
use crate::runtime::Desired;

/// The only target handler Grove runs: a root instance is a Grove partition.
pub const HANDLER: &str = "grove";
/// The installers a partition runs.
pub const INSTALLERS: &[&str] = &["script", "logger"];

/// Why an application, or a change to it, is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeployError {
    #[error(
        "component {component:?} uses the target handler {handler:?} ({file}): Grove runs `handler = grove` only"
    )]
    Handler {
        component: String,
        handler: String,
        file: String,
    },
    #[error(
        "component {component:?} uses the installer {installer:?}: Grove runs script and logger below a target"
    )]
    Installer {
        component: String,
        installer: String,
    },
    #[error("component {component:?} is a root instance's but not a target: a root is a partition")]
    RootNotTarget { component: String },
    #[error("component {component:?} is a target with no target properties")]
    NoTarget { component: String },
    #[error("no instance {0:?}")]
    NoInstance(String),
    #[error("an instance {0:?} exists")]
    Exists(String),
    #[error("no component {0:?} in the graph")]
    NoComponent(String),
    #[error("component {component:?} cannot be deployed on {parent:?} ({parent_component})")]
    NotAChild {
        parent: String,
        parent_component: String,
        component: String,
    },
    #[error("component {0:?} cannot be a root instance: the graph's roots are {1}")]
    NotARoot(String, String),
    #[error("{0:?} is not a root instance: only root instances are replicated")]
    NotRootToReplicate(String),
    #[error("{0}")]
    Command(String),
    #[error("instance name {0:?}: a non-empty name without `/`")]
    BadName(String),
    #[error("state {0:?}: not_deployed, deployed_stopped or deployed_started")]
    BadState(String),
    #[error("the model does not read: {0}")]
    Corrupt(String),
}

/// A random port given to an instance's export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Port {
    path: String,
    variable: String,
    port: u16,
}

/// What the master keeps of a deployed application.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// The descriptor's name and version.
    pub descriptor: (String, String),
    /// SHA-256 of the archive, hex: the partitions fetch it again when it changes.
    pub archive: String,
    /// The project it belongs to, by name.
    pub project: Option<String>,
    instances: Vec<Instance>,
    wanted: BTreeMap<String, Wanted>,
    ports: Vec<Port>,
    /// Instances removed, kept until their partition reports them not deployed.
    removing: BTreeSet<String>,
    /// The applications bound to each external import prefix.
    #[serde(default)]
    pub bindings: BTreeMap<String, BTreeSet<String>>,
}

/// The exporters of bound applications, by external import prefix.
pub type External = BTreeMap<String, Vec<crate::lifecycle::Import>>;

/// What a root partition last reported, as the master reads it back.
pub type Reports = BTreeMap<String, wire::AppReport>;

/// The placement of a root component's partition from its target properties
/// (`grove.computer`, `grove.zone`, `grove.size`, `grove.label.KEY`) as an SLA, or why
/// Grove cannot run the component.
pub fn placement(
    app: &Application,
    component: &str,
) -> Result<BTreeMap<String, String>, DeployError> {
    let dir = format!("graph/{component}");
    let mut files: Vec<&str> = app
        .tree
        .files_in(&dir)
        .filter(|n| n.ends_with(".properties"))
        .collect();
    files.sort_unstable();
    let Some(first) = files.first() else {
        return Err(DeployError::NoTarget {
            component: component.to_owned(),
        });
    };
    let file = format!("{dir}/{first}");
    let mut ignored = crate::Diagnostics::default();
    let props =
        crate::project::target_properties(&app.tree, &file, &mut ignored).unwrap_or_default();
    let handler = props.get("handler").map(|h| h.trim()).unwrap_or_default();
    if handler != HANDLER {
        return Err(DeployError::Handler {
            component: component.to_owned(),
            handler: handler.to_owned(),
            file,
        });
    }
    let mut sla = BTreeMap::new();
    for (key, value) in &props {
        let value = value.trim().to_owned();
        match key.as_str() {
            "grove.computer" => sla.insert("computer_guid".to_owned(), value),
            "grove.zone" => sla.insert("zone".to_owned(), value),
            "grove.size" => sla.insert("size".to_owned(), value),
            other => match other.strip_prefix("grove.label.") {
                Some(label) => sla.insert(label.to_owned(), value),
                None => None,
            },
        };
    }
    Ok(sla)
}

/// Every reason Grove cannot run an application Roboconf accepts: another target
/// handler, another installer, a root instance that is not a target.
pub fn refusals(app: &Application) -> Vec<DeployError> {
    let mut out = Vec::new();
    let mut components: Vec<&String> = app.graph.components.keys().collect();
    components.sort_unstable();
    for name in components {
        let installer = app
            .graph
            .installer(name)
            .unwrap_or("logger")
            .to_ascii_lowercase();
        if installer == "target" {
            if let Err(e) = placement(app, name) {
                out.push(e);
            }
        } else if !INSTALLERS.contains(&installer.as_str()) {
            out.push(DeployError::Installer {
                component: name.clone(),
                installer,
            });
        }
    }
    for i in app.instances.iter().filter(|i| i.parent().is_none()) {
        if !is_target(&app.graph, &i.component)
            && !out.iter().any(|e| matches!(e, DeployError::RootNotTarget { component } if *component == i.component))
        {
            out.push(DeployError::RootNotTarget {
                component: i.component.clone(),
            });
        }
    }
    out
}

fn is_target(graph: &Graph, component: &str) -> bool {
    graph
        .installer(component)
        .is_some_and(|i| i.eq_ignore_ascii_case("target"))
}

/// A state a user may ask for.
pub fn wanted(text: &str) -> Result<Wanted, DeployError> {
    match text.parse::<State>() {
        Ok(State::NotDeployed) => Ok(Wanted::NotDeployed),
        Ok(State::DeployedStopped) => Ok(Wanted::DeployedStopped),
        Ok(State::DeployedStarted) => Ok(Wanted::DeployedStarted),
        _ => Err(DeployError::BadState(text.to_owned())),
    }
}

fn wanted_str(wanted: Wanted) -> &'static str {
    match wanted {
        Wanted::NotDeployed => "not_deployed",
        Wanted::DeployedStopped => "deployed_stopped",
        Wanted::DeployedStarted => "deployed_started",
    }
}

fn below(path: &str, ancestor: &str) -> bool {
    path == ancestor
        || path
            .strip_prefix(ancestor)
            .is_some_and(|rest| rest.starts_with('/'))
}

impl Deployment {
    /// The application's instances, each wanted started, their random ports given.
    pub fn new(app: &Application) -> Deployment {
        let mut deployment = Deployment {
            descriptor: (
                app.descriptor.name.clone().unwrap_or_default(),
                app.descriptor.version.clone().unwrap_or_default(),
            ),
            instances: app.instances.clone(),
            wanted: app
                .instances
                .iter()
                .map(|i| (i.path.clone(), Wanted::DeployedStarted))
                .collect(),
            ..Deployment::default()
        };
        deployment.give_ports(&app.graph);
        deployment
    }

    pub fn from_json(text: &str) -> Result<Deployment, DeployError> {
        serde_json::from_str(text).map_err(|e| DeployError::Corrupt(e.to_string()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn give_ports(&mut self, graph: &Graph) {
        let given = self
            .ports
            .iter()
            .map(|p| ((p.path.clone(), p.variable.clone()), p.port))
            .collect();
        self.ports = live::assign_ports(graph, &self.instances, &given, &BTreeSet::new())
            .into_iter()
            .map(|((path, variable), port)| Port {
                path,
                variable,
                port,
            })
            .collect();
    }

    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    /// The root instances, each a Grove instance.
    pub fn roots(&self) -> Vec<String> {
        self.instances
            .iter()
            .filter(|i| i.parent().is_none())
            .map(|i| i.path.clone())
            .collect()
    }

    fn find(&self, path: &str) -> Result<&Instance, DeployError> {
        self.instances
            .iter()
            .find(|i| i.path == path)
            .ok_or_else(|| DeployError::NoInstance(path.to_owned()))
    }

    /// Adds an instance under `parent` (`/` for a root), wanted started; its path.
    pub fn add(
        &mut self,
        graph: &Graph,
        parent: &str,
        component: &str,
        name: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<String, DeployError> {
        let name = name.trim();
        if name.is_empty() || name.contains('/') {
            return Err(DeployError::BadName(name.to_owned()));
        }
        if !graph.components.contains_key(component) {
            return Err(DeployError::NoComponent(component.to_owned()));
        }
        let path = if parent == "/" || parent.is_empty() {
            let roots = graph.roots();
            if !roots.contains(&component) {
                return Err(DeployError::NotARoot(
                    component.to_owned(),
                    roots.join(", "),
                ));
            }
            format!("/{name}")
        } else {
            let above = self.find(parent)?;
            if !graph.children(&above.component).contains(component) {
                return Err(DeployError::NotAChild {
                    parent: parent.to_owned(),
                    parent_component: above.component.clone(),
                    component: component.to_owned(),
                });
            }
            format!("{parent}/{name}")
        };
        if self.instances.iter().any(|i| i.path == path) {
            return Err(DeployError::Exists(path));
        }
        let exported = graph.exports(component);
        let mut instance = Instance {
            path: path.clone(),
            name: name.to_owned(),
            component: component.to_owned(),
            ..Instance::default()
        };
        for (key, value) in properties {
            let export = exported
                .iter()
                .find(|e| e.name == *key || (!key.contains('.') && e.local() == key));
            match export {
                Some(e) => instance.overrides.insert(e.name.clone(), value.clone()),
                None => instance.raw.insert(key.clone(), value.clone()),
            };
        }
        self.instances.push(instance);
        self.wanted.insert(path.clone(), Wanted::DeployedStarted);
        self.give_ports(graph);
        Ok(path)
    }

    /// Removes an instance and its descendants: each is undeployed, then forgotten once
    /// its partition says so ([`Deployment::settle`]).
    pub fn remove(&mut self, path: &str) -> Result<(), DeployError> {
        self.find(path)?;
        for i in &self.instances {
            if below(&i.path, path) {
                self.wanted.insert(i.path.clone(), Wanted::NotDeployed);
                self.removing.insert(i.path.clone());
            }
        }
        Ok(())
    }

    /// What is wanted of an instance: not deployed takes its descendants along.
    pub fn set_wanted(&mut self, path: &str, wanted: Wanted) -> Result<(), DeployError> {
        self.find(path)?;
        if self.removing.contains(path) {
            return Err(DeployError::NoInstance(path.to_owned()));
        }
        let paths: Vec<String> = self
            .instances
            .iter()
            .filter(|i| i.path == path || (wanted == Wanted::NotDeployed && below(&i.path, path)))
            .map(|i| i.path.clone())
            .collect();
        for p in paths {
            self.wanted.insert(p, wanted);
        }
        Ok(())
    }

    /// An instance and its descendants wanted in one state (Roboconf's bulk actions).
    pub fn set_tree(&mut self, path: &str, wanted: Wanted) -> Result<(), DeployError> {
        self.find(path)?;
        let paths: Vec<String> = self
            .instances
            .iter()
            .filter(|i| below(&i.path, path) && !self.removing.contains(&i.path))
            .map(|i| i.path.clone())
            .collect();
        for p in paths {
            self.wanted.insert(p, wanted);
        }
        Ok(())
    }

    /// A copy of a root instance and its descendants as root `name`, not deployed
    /// (Roboconf's `replicate`); their overrides go along, their random ports are new.
    pub fn replicate(
        &mut self,
        graph: &Graph,
        path: &str,
        name: &str,
    ) -> Result<String, DeployError> {
        let root = self.find(path)?;
        if root.parent().is_some() {
            return Err(DeployError::NotRootToReplicate(path.to_owned()));
        }
        let name = name.trim();
        if name.is_empty() || name.contains('/') {
            return Err(DeployError::BadName(name.to_owned()));
        }
        let copy_root = format!("/{name}");
        if self.instances.iter().any(|i| i.path == copy_root) {
            return Err(DeployError::Exists(copy_root));
        }
        let copies: Vec<Instance> = self
            .instances
            .iter()
            .filter(|i| below(&i.path, path) && !self.removing.contains(&i.path))
            .map(|i| {
                let mut copy = i.clone();
                copy.path = format!("{copy_root}{}", &i.path[path.len()..]);
                if copy.path == copy_root {
                    copy.name = name.to_owned();
                }
                copy
            })
            .collect();
        for copy in copies {
            self.wanted.insert(copy.path.clone(), Wanted::NotDeployed);
            self.instances.push(copy);
        }
        self.give_ports(graph);
        Ok(copy_root)
    }

    /// Every instance but the roots (the partitions) wanted not deployed.
    pub fn undeploy(&mut self) {
        for i in &self.instances {
            if i.parent().is_some() {
                self.wanted.insert(i.path.clone(), Wanted::NotDeployed);
            }
        }
    }

    /// Whether every instance but the roots is reported not deployed.
    pub fn is_undeployed(&self, reports: &Reports) -> bool {
        let states = states(reports);
        self.instances
            .iter()
            .filter(|i| i.parent().is_some())
            .all(|i| states.get(&i.path).is_none_or(|s| *s == State::NotDeployed))
    }

    /// Forgets the removed instances their partitions report not deployed; the removed
    /// roots whose whole subtree is gone (their Grove instances may go). Whether
    /// anything changed.
    pub fn settle(&mut self, reports: &Reports) -> (bool, Vec<String>) {
        let states = states(reports);
        let gone = |path: &str| states.get(path).is_none_or(|s| *s == State::NotDeployed);
        let before = self.instances.len();
        let removing = self.removing.clone();
        let mut roots = Vec::new();
        self.instances.retain(|i| {
            if !removing.contains(&i.path) {
                return true;
            }
            if i.parent().is_some() {
                return !gone(&i.path);
            }
            // A root goes with the last of its subtree.
            let rest = removing
                .iter()
                .any(|p| p != &i.path && below(p, &i.path) && !gone(p));
            if rest {
                true
            } else {
                roots.push(i.path.clone());
                false
            }
        });
        let kept: BTreeSet<String> = self.instances.iter().map(|i| i.path.clone()).collect();
        self.removing.retain(|p| kept.contains(p));
        self.wanted.retain(|p, _| kept.contains(p));
        self.ports.retain(|p| kept.contains(&p.path));
        (self.instances.len() != before, roots)
    }

    fn known(&self, reports: &Reports) -> Known {
        Known {
            wanted: self.wanted.clone(),
            states: states(reports),
            addresses: reports
                .iter()
                .filter_map(|(root, r)| r.address.clone().map(|a| (root.clone(), a)))
                .collect(),
            ports: self
                .ports
                .iter()
                .map(|p| ((p.path.clone(), p.variable.clone()), p.port))
                .collect(),
        }
    }

    /// Each root's subtree as its partition must bring it about.
    pub fn targets(
        &self,
        graph: &Graph,
        reports: &Reports,
        external: &External,
    ) -> BTreeMap<String, Vec<Desired>> {
        live::desired_with(graph, &self.instances, &self.known(reports), external)
    }

    /// What this application gives the applications bound to it: each started instance
    /// with the variables the descriptor publishes (`published`: variable → `PREFIX.alias`),
    /// named `APPLICATION:PATH`.
    pub fn published(
        &self,
        application: &str,
        graph: &Graph,
        reports: &Reports,
        published: &BTreeMap<String, String>,
    ) -> Vec<crate::lifecycle::Import> {
        let known = self.known(reports);
        self.instances
            .iter()
            .filter(|i| known.states.get(&i.path) == Some(&State::DeployedStarted))
            .filter_map(|i| {
                let exports = crate::lifecycle::exports(graph, i, &known.addresses, &known.ports);
                let values: BTreeMap<String, String> = published
                    .iter()
                    .filter_map(|(variable, name)| {
                        exports.get(variable).map(|v| (name.clone(), v.clone()))
                    })
                    .collect();
                (!values.is_empty()).then(|| crate::lifecycle::Import {
                    path: format!("{application}:{}", i.path),
                    values,
                })
            })
            .collect()
    }

    /// The instances as users see them: states reported, exports, imports resolved.
    pub fn view(
        &self,
        graph: &Graph,
        reports: &Reports,
        external: &External,
    ) -> Vec<wire::AppInstance> {
        let known = self.known(reports);
        let errors: BTreeMap<&str, &str> = reports
            .values()
            .flat_map(|r| r.instances.iter())
            .filter_map(|(p, o)| o.error.as_deref().map(|e| (p.as_str(), e)))
            .collect();
        let mut out: Vec<wire::AppInstance> =
            live::desired_with(graph, &self.instances, &known, external)
                .into_values()
                .flatten()
                .map(|d| wire::AppInstance {
                    state: known
                        .states
                        .get(&d.path)
                        .copied()
                        .unwrap_or(State::NotDeployed)
                        .as_str()
                        .to_owned(),
                    wanted: wanted_str(d.wanted).to_owned(),
                    error: errors.get(d.path.as_str()).map(|e| (*e).to_owned()),
                    imports: wire_imports(&d.imports.by_prefix),
                    missing: d.imports.missing.clone(),
                    exports: d.exports,
                    path: d.path,
                    component: d.component,
                })
                .collect();
        let order: BTreeMap<&str, usize> = self
            .instances
            .iter()
            .enumerate()
            .map(|(n, i)| (i.path.as_str(), n))
            .collect();
        out.sort_by_key(|i| order.get(i.path.as_str()).copied().unwrap_or(usize::MAX));
        out
    }
}

/// Every instance's reported state, from every root's report. A root's own state is the
/// root's: its partition runs.
fn states(reports: &Reports) -> BTreeMap<String, State> {
    let mut out = BTreeMap::new();
    for (root, report) in reports {
        for (path, observed) in &report.instances {
            // A partition speaks for its own subtree only.
            if root_path(path) != root {
                continue;
            }
            if let Ok(state) = observed.state.parse::<State>() {
                out.insert(path.clone(), state);
            }
        }
    }
    out
}

fn wire_imports(
    by_prefix: &BTreeMap<String, Vec<crate::lifecycle::Import>>,
) -> BTreeMap<String, Vec<wire::AppImport>> {
    by_prefix
        .iter()
        .map(|(prefix, list)| {
            let list = list
                .iter()
                .map(|i| wire::AppImport {
                    path: i.path.clone(),
                    values: i.values.clone(),
                })
                .collect();
            (prefix.clone(), list)
        })
        .collect()
}

/// The wire form of what a root's partition is told.
pub fn to_wire(d: &Desired) -> wire::AppTarget {
    wire::AppTarget {
        path: d.path.clone(),
        name: d.name.clone(),
        component: d.component.clone(),
        installer: d.installer.clone(),
        wanted: wanted_str(d.wanted).to_owned(),
        exports: d.exports.clone(),
        imports: wire::AppImports {
            by_prefix: wire_imports(&d.imports.by_prefix),
            resolved: d.imports.resolved,
            missing: d.imports.missing.clone(),
        },
    }
}

/// What a partition is told, read back; `None` for a state that is not one.
pub fn from_wire(t: &wire::AppTarget) -> Option<Desired> {
    Some(Desired {
        path: t.path.clone(),
        name: t.name.clone(),
        component: t.component.clone(),
        installer: t.installer.clone(),
        wanted: wanted(&t.wanted).ok()?,
        exports: t.exports.clone(),
        imports: crate::lifecycle::Imports {
            by_prefix: t
                .imports
                .by_prefix
                .iter()
                .map(|(k, list)| {
                    (
                        k.clone(),
                        list.iter()
                            .map(|i| crate::lifecycle::Import {
                                path: i.path.clone(),
                                values: i.values.clone(),
                            })
                            .collect(),
                    )
                })
                .collect(),
            resolved: t.imports.resolved,
            missing: t.imports.missing.clone(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Tree;

    fn application(target: &str, installer: &str) -> Application {
        let graph = format!(
            "VM {{\n installer: target;\n exports: ip;\n children: Web, Db;\n}}\n\
             Db {{\n installer: script;\n exports: ip, random[port] port;\n}}\n\
             Web {{\n installer: {installer};\n exports: ip, port = 80;\n imports: Db.ip, Db.port;\n}}\n"
        );
        let tree = Tree::of([
            (
                "descriptor/application.properties",
                "name = a\nversion = 1.0\ndsl-id = roboconf-1.0\ngraph-entry-point = g.graph\ninstance-entry-point = i.instances\n",
            ),
            ("graph/g.graph", graph.as_str()),
            ("graph/VM/target.properties", target),
            (
                "instances/i.instances",
                "instance of VM {\n name: one;\n instance of Db {\n  name: db;\n }\n}\n\
                 instance of VM {\n name: two;\n instance of Web {\n  name: web;\n }\n}\n",
            ),
        ]);
        let (report, app) = crate::check::application(tree);
        app.unwrap_or_else(|| panic!("{:?}", report.diagnostics))
    }

    fn grove_app() -> Application {
        application(
            "id = p\nname = p\nhandler = grove\ngrove.computer = C1\ngrove.size = small\ngrove.label.disk = ssd\n",
            "script",
        )
    }

    fn report(root: &str, address: &str, states: &[(&str, &str)]) -> (String, wire::AppReport) {
        (
            root.to_owned(),
            wire::AppReport {
                address: Some(address.to_owned()),
                instances: states
                    .iter()
                    .map(|(p, s)| {
                        (
                            (*p).to_owned(),
                            wire::AppObserved {
                                state: (*s).to_owned(),
                                error: None,
                            },
                        )
                    })
                    .collect(),
            },
        )
    }

    #[test]
    fn the_target_places_the_partition_and_other_handlers_and_installers_are_refused() {
        let app = grove_app();
        let sla = placement(&app, "VM").expect("placed");
        assert_eq!(
            sla,
            BTreeMap::from([
                ("computer_guid".to_owned(), "C1".to_owned()),
                ("disk".to_owned(), "ssd".to_owned()),
                ("size".to_owned(), "small".to_owned()),
            ])
        );
        assert!(refusals(&app).is_empty());
        let docker = application("id = p\nname = p\nhandler = docker\n", "puppet");
        let refused: Vec<String> = refusals(&docker).iter().map(ToString::to_string).collect();
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(
            refused[0].contains("handler \"docker\"")
                && refused[0].contains("graph/VM/target.properties"),
            "{refused:?}"
        );
        assert!(refused[1].contains("installer \"puppet\""), "{refused:?}");
    }

    #[test]
    fn instances_are_added_where_the_graph_allows_and_ports_are_given() {
        let app = grove_app();
        let mut d = Deployment::new(&app);
        assert_eq!(d.roots(), vec!["/one", "/two"]);
        let none = BTreeMap::new();
        for (parent, component, name, expected) in [
            ("/one", "Db", "db2", Ok("/one/db2")),
            ("/", "VM", "three", Ok("/three")),
            ("/", "Db", "x", Err("cannot be a root instance")),
            (
                "/one/db",
                "Web",
                "x",
                Err("cannot be deployed on \"/one/db\""),
            ),
            ("/nowhere", "Db", "x", Err("no instance \"/nowhere\"")),
            ("/one", "Cache", "x", Err("no component \"Cache\"")),
            ("/one", "Db", "db", Err("an instance \"/one/db\" exists")),
            ("/one", "Db", "a/b", Err("instance name")),
        ] {
            match (d.add(&app.graph, parent, component, name, &none), expected) {
                (Ok(path), Ok(want)) => assert_eq!(path, want),
                (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{e}"),
                (got, want) => panic!("{parent} {component} {name}: {got:?}, expected {want:?}"),
            }
        }
        assert_eq!(d.roots(), vec!["/one", "/two", "/three"]);
        // Each random port is the lowest free in its root, kept across changes.
        let reports = Reports::new();
        let targets = d.targets(&app.graph, &reports, &External::new());
        let port = |root: &str, path: &str| {
            targets[root]
                .iter()
                .find(|t| t.path == path)
                .and_then(|t| t.exports.get("Db.port").cloned())
        };
        assert_eq!(port("/one", "/one/db").as_deref(), Some("10000"));
        assert_eq!(port("/one", "/one/db2").as_deref(), Some("10001"));
        // An override by the variable's local name.
        let path = d
            .add(
                &app.graph,
                "/two",
                "Web",
                "web2",
                &BTreeMap::from([
                    ("port".to_owned(), "8080".to_owned()),
                    ("colour".to_owned(), "red".to_owned()),
                ]),
            )
            .expect("added");
        let web2 = d.instances().iter().find(|i| i.path == path).expect("web2");
        assert_eq!(
            web2.overrides.get("Web.port").map(String::as_str),
            Some("8080")
        );
        assert_eq!(web2.raw.get("colour").map(String::as_str), Some("red"));
    }

    #[test]
    fn imports_resolve_from_reported_started_exporters_with_their_root_address() {
        let app = grove_app();
        let d = Deployment::new(&app);
        let web = |reports: &Reports| {
            d.targets(&app.graph, reports, &External::new())["/two"]
                .iter()
                .find(|t| t.path == "/two/web")
                .cloned()
                .expect("web")
        };
        assert!(!web(&Reports::new()).imports.resolved);
        let reports: Reports = [
            report(
                "/one",
                "10.0.0.1",
                &[
                    ("/one", "deployed_started"),
                    ("/one/db", "deployed_started"),
                ],
            ),
            // A partition speaks for its own subtree only.
            report("/two", "10.0.0.2", &[("/one/db", "not_deployed")]),
        ]
        .into();
        let told = web(&reports);
        assert!(told.imports.resolved);
        let db = &told.imports.by_prefix["Db"][0];
        assert_eq!(db.values["Db.ip"], "10.0.0.1");
        assert_eq!(db.values["Db.port"], "10000");
        let view = d.view(&app.graph, &reports, &External::new());
        let states: Vec<(&str, &str)> = view
            .iter()
            .map(|i| (i.path.as_str(), i.state.as_str()))
            .collect();
        assert_eq!(
            states,
            vec![
                ("/one", "deployed_started"),
                ("/one/db", "deployed_started"),
                ("/two", "not_deployed"),
                ("/two/web", "not_deployed")
            ]
        );
    }

    #[test]
    fn removed_instances_go_once_reported_gone_and_a_root_last() {
        let app = grove_app();
        let mut d = Deployment::new(&app);
        d.remove("/one").expect("removed");
        let view = d.view(&app.graph, &Reports::new(), &External::new());
        let wanted: Vec<(&str, &str)> = view
            .iter()
            .map(|i| {
                (
                    i.path.as_str(),
                    if i.wanted == "not_deployed" {
                        "gone"
                    } else {
                        "kept"
                    },
                )
            })
            .collect();
        assert_eq!(
            wanted,
            vec![
                ("/one", "gone"),
                ("/one/db", "gone"),
                ("/two", "kept"),
                ("/two/web", "kept")
            ]
        );
        // The database still runs: nothing goes.
        let running: Reports = [report(
            "/one",
            "10.0.0.1",
            &[("/one/db", "deployed_started")],
        )]
        .into();
        assert_eq!(d.settle(&running), (false, vec![]));
        // Reported undeployed: it goes, and its root with it.
        let gone: Reports = [report("/one", "10.0.0.1", &[("/one/db", "not_deployed")])].into();
        assert_eq!(d.settle(&gone), (true, vec!["/one".to_owned()]));
        assert_eq!(d.roots(), vec!["/two"]);
        assert!(d.set_wanted("/one/db", Wanted::DeployedStarted).is_err());
    }

    #[test]
    fn stopping_wants_one_instance_and_undeploying_its_descendants_too() {
        let app = grove_app();
        let mut d = Deployment::new(&app);
        d.set_wanted("/one", Wanted::NotDeployed).expect("set");
        d.set_wanted("/two/web", Wanted::DeployedStopped)
            .expect("set");
        let wanted: BTreeMap<String, String> = d
            .view(&app.graph, &Reports::new(), &External::new())
            .into_iter()
            .map(|i| (i.path, i.wanted))
            .collect();
        assert_eq!(wanted["/one"], "not_deployed");
        assert_eq!(wanted["/one/db"], "not_deployed");
        assert_eq!(wanted["/two"], "deployed_started");
        assert_eq!(wanted["/two/web"], "deployed_stopped");
        assert!(matches!(
            wanted_state("starting"),
            Err(DeployError::BadState(_))
        ));
        // Undeployed: every instance but the partitions; reported so, it may go.
        d.undeploy();
        let running: Reports = [report(
            "/two",
            "10.0.0.2",
            &[("/two/web", "deployed_stopped")],
        )]
        .into();
        assert!(!d.is_undeployed(&running));
        let stopped: Reports = [report(
            "/two",
            "10.0.0.2",
            &[("/two", "deployed_started"), ("/two/web", "not_deployed")],
        )]
        .into();
        assert!(d.is_undeployed(&stopped));
    }

    fn wanted_state(text: &str) -> Result<Wanted, DeployError> {
        wanted(text)
    }

    #[test]
    fn the_model_survives_its_json() {
        let d = Deployment::new(&grove_app());
        // Where each instance was written is not kept: the rest is.
        let again = Deployment::from_json(&d.to_json()).expect("reads");
        assert_eq!(again.to_json(), d.to_json());
        assert_eq!(again.roots(), d.roots());
        assert!(matches!(
            Deployment::from_json("{"),
            Err(DeployError::Corrupt(_))
        ));
    }
}
