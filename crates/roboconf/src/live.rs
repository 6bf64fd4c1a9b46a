//! The master's view of a deployed application: from the model, what is wanted of each
//! instance and what the partitions report, what each root instance's partition must be
//! told ([`desired`]: its subtree with every export and import resolved), and the random
//! ports ([`assign_ports`]). Pure: the master stores, the partitions run.

use std::collections::{BTreeMap, BTreeSet};

use crate::graph::Graph;
use crate::instances::{Instance, root_path};
use crate::lifecycle::{self, State, Wanted};
use crate::runtime::Desired;

/// Random ports are taken from this range, lowest free first, per root instance (the
/// partition their instances share).
pub const PORTS: std::ops::RangeInclusive<u16> = 10_000..=65_500;

/// A variable of an instance: (path, qualified name).
pub type Variable = (String, String);

/// The ports every random export gets, keeping those already given: the lowest free
/// port of [`PORTS`] in the instance's root, none of `forbidden`.
pub fn assign_ports(
    graph: &Graph,
    instances: &[Instance],
    given: &BTreeMap<Variable, u16>,
    forbidden: &BTreeSet<u16>,
) -> BTreeMap<Variable, u16> {
    let mut out: BTreeMap<Variable, u16> = BTreeMap::new();
    let mut used: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
    let wanted: Vec<Variable> = instances
        .iter()
        .flat_map(|i| {
            i.exports(graph)
                .into_iter()
                .filter(|e| e.random.is_some())
                .map(|e| (i.path.clone(), e.name))
                .collect::<Vec<_>>()
        })
        .collect();
    for variable in &wanted {
        if let Some(port) = given.get(variable) {
            out.insert(variable.clone(), *port);
            used.entry(root_path(&variable.0).to_owned())
                .or_default()
                .insert(*port);
        }
    }
    for variable in wanted {
        if out.contains_key(&variable) {
            continue;
        }
        let taken = used.entry(root_path(&variable.0).to_owned()).or_default();
        if let Some(port) = PORTS
            .clone()
            .find(|p| !taken.contains(p) && !forbidden.contains(p))
        {
            taken.insert(port);
            out.insert(variable, port);
        }
    }
    out
}

/// What is known of a deployed application's instances.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// What is wanted of each instance (absent: not deployed).
    pub wanted: BTreeMap<String, Wanted>,
    /// What the partitions report (absent: not deployed).
    pub states: BTreeMap<String, State>,
    /// Each root instance's address.
    pub addresses: BTreeMap<String, String>,
    pub ports: BTreeMap<Variable, u16>,
}

/// Each root instance's subtree as its partition must bring it about, by root path:
/// exports with their values, imports from the instances reported started.
pub fn desired(
    graph: &Graph,
    instances: &[Instance],
    known: &Known,
) -> BTreeMap<String, Vec<Desired>> {
    desired_with(graph, instances, known, &BTreeMap::new())
}

/// As [`desired`], with the exporters of the applications bound to external imports,
/// by prefix.
pub fn desired_with(
    graph: &Graph,
    instances: &[Instance],
    known: &Known,
    external: &BTreeMap<String, Vec<lifecycle::Import>>,
) -> BTreeMap<String, Vec<Desired>> {
    let exports: BTreeMap<&str, BTreeMap<String, String>> = instances
        .iter()
        .map(|i| {
            (
                i.path.as_str(),
                lifecycle::exports(graph, i, &known.addresses, &known.ports),
            )
        })
        .collect();
    let started: BTreeMap<String, BTreeMap<String, String>> = instances
        .iter()
        .filter(|i| known.states.get(&i.path) == Some(&State::DeployedStarted))
        .map(|i| {
            (
                i.path.clone(),
                exports.get(i.path.as_str()).cloned().unwrap_or_default(),
            )
        })
        .collect();
    let mut out: BTreeMap<String, Vec<Desired>> = BTreeMap::new();
    for i in instances {
        let root = root_path(&i.path).to_owned();
        out.entry(root).or_default().push(Desired {
            path: i.path.clone(),
            name: i.name.clone(),
            component: i.component.clone(),
            installer: graph
                .installer(&i.component)
                .unwrap_or("logger")
                .to_ascii_lowercase(),
            wanted: known
                .wanted
                .get(&i.path)
                .copied()
                .unwrap_or(Wanted::NotDeployed),
            exports: exports.get(i.path.as_str()).cloned().unwrap_or_default(),
            imports: lifecycle::resolve(graph, i, &started, external),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Application;
    use crate::tree::Tree;

    fn app() -> Application {
        let tree = Tree::of([
            (
                "descriptor/application.properties",
                "name = lb\nversion = 1.0\ndsl-id = roboconf-1.0\ngraph-entry-point = g.graph\ninstance-entry-point = i.instances\n",
            ),
            (
                "graph/g.graph",
                "VM {\n installer: target;\n exports: ip;\n children: Lb, Backend;\n}\n\
                 Lb {\n installer: script;\n exports: random[port] http;\n imports: Backend.* (optional);\n}\n\
                 Backend {\n installer: script;\n exports: ip, random[port] port, random[port] admin;\n}\n",
            ),
            (
                "instances/i.instances",
                "instance of VM {\n name: front;\n instance of Lb {\n  name: lb;\n }\n}\n\
                 instance of VM {\n name: back ;\n count: 2;\n instance of Backend {\n  name: app;\n }\n}\n",
            ),
        ]);
        let (report, app) = crate::check::application(tree);
        app.unwrap_or_else(|| panic!("{:?}", report.diagnostics))
    }

    fn var(path: &str, name: &str) -> Variable {
        (path.to_owned(), name.to_owned())
    }

    #[test]
    fn random_ports_are_the_lowest_free_per_root_and_stay() {
        let app = app();
        let ports = assign_ports(
            &app.graph,
            &app.instances,
            &BTreeMap::new(),
            &BTreeSet::from([10_001]),
        );
        assert_eq!(ports[&var("/front/lb", "Lb.http")], 10_000);
        // Two variables in one root, in the order declared: 10000 and, 10001 being
        // forbidden, 10002; each root has its own.
        assert_eq!(ports[&var("/back 1/app", "Backend.port")], 10_000);
        assert_eq!(ports[&var("/back 1/app", "Backend.admin")], 10_002);
        assert_eq!(ports[&var("/back 2/app", "Backend.port")], 10_000);
        // Given ones stay; new ones fill around them.
        let given = BTreeMap::from([(var("/back 1/app", "Backend.port"), 10_000)]);
        let ports = assign_ports(&app.graph, &app.instances, &given, &BTreeSet::new());
        assert_eq!(ports[&var("/back 1/app", "Backend.port")], 10_000);
        assert_eq!(ports[&var("/back 1/app", "Backend.admin")], 10_001);
    }

    #[test]
    fn each_root_is_told_its_subtree_with_imports_from_started_instances() {
        let app = app();
        let mut known = Known {
            wanted: app
                .instances
                .iter()
                .map(|i| (i.path.clone(), Wanted::DeployedStarted))
                .collect(),
            addresses: BTreeMap::from([
                ("/front".to_owned(), "10.0.0.1".to_owned()),
                ("/back 1".to_owned(), "10.0.0.2".to_owned()),
                ("/back 2".to_owned(), "10.0.0.3".to_owned()),
            ]),
            ..Known::default()
        };
        known.ports = assign_ports(
            &app.graph,
            &app.instances,
            &BTreeMap::new(),
            &BTreeSet::new(),
        );
        let told = desired(&app.graph, &app.instances, &known);
        assert_eq!(
            told.keys().collect::<Vec<_>>(),
            vec!["/back 1", "/back 2", "/front"]
        );
        let lb = told["/front"]
            .iter()
            .find(|d| d.path == "/front/lb")
            .expect("lb");
        assert_eq!(lb.installer, "script");
        assert_eq!(lb.exports.get("Lb.http").map(String::as_str), Some("10000"));
        // No backend started yet: the optional import is empty, the balancer resolved.
        assert!(lb.imports.resolved && lb.imports.by_prefix["Backend"].is_empty());
        // One backend reports started: the balancer is told about it.
        known
            .states
            .insert("/back 2/app".to_owned(), State::DeployedStarted);
        let told = desired(&app.graph, &app.instances, &known);
        let lb = told["/front"]
            .iter()
            .find(|d| d.path == "/front/lb")
            .expect("lb");
        let backends = &lb.imports.by_prefix["Backend"];
        assert_eq!(backends.len(), 1);
        assert_eq!(backends[0].path, "/back 2/app");
        assert_eq!(
            backends[0].values.get("Backend.ip").map(String::as_str),
            Some("10.0.0.3")
        );
        assert_eq!(
            backends[0].values.get("Backend.port").map(String::as_str),
            Some("10000")
        );
        assert_eq!(
            backends[0].values.get("Backend.admin").map(String::as_str),
            Some("10001")
        );
        // The root itself is in its subtree, as a target.
        let root = told["/back 1"]
            .iter()
            .find(|d| d.path == "/back 1")
            .expect("root");
        assert_eq!(root.installer, "target");
    }
}
