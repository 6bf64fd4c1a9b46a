//! Instances: the tree the instance files describe, `count` expanded, each instance's
//! exports with its overrides, checked against the graph.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::blocks;
use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::dsl::{Block, InstanceBlock};
use crate::graph::{Exported, Graph};

/// At most this many instances come out of one application's files.
pub const MAX_INSTANCES: usize = 100_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// `/vm 1/tomcat`.
    pub path: String,
    pub name: String,
    pub component: String,
    /// Overridden exports, by qualified name.
    pub overrides: BTreeMap<String, String>,
    /// Properties that override nothing: passed to recipes as they are.
    pub raw: BTreeMap<String, String>,
    /// `data.KEY: value`.
    pub data: BTreeMap<String, String>,
    #[serde(skip)]
    pub file: String,
    #[serde(skip)]
    pub line: u32,
    /// What reading the overrides found, said by the validation (its stage).
    #[serde(skip)]
    pub(crate) notes: Vec<Diagnostic>,
}

/// The parent of an instance's path; `None` for a root instance.
pub fn parent_path(path: &str) -> Option<&str> {
    match path.rsplit_once('/') {
        Some(("", _)) | None => None,
        Some((parent, _)) => Some(parent),
    }
}

/// The path of the root instance above an instance (itself for a root): `/vm 1` for
/// `/vm 1/tomcat`.
pub fn root_path(path: &str) -> &str {
    path.get(1..)
        .and_then(|rest| rest.find('/'))
        .map_or(path, |at| &path[..at + 1])
}

impl Instance {
    /// The parent's path; `None` for a root instance.
    pub fn parent(&self) -> Option<&str> {
        parent_path(&self.path)
    }

    /// The instance's exports: the component's, its overrides applied.
    pub fn exports(&self, graph: &Graph) -> Vec<Exported> {
        let mut exports = graph.exports(&self.component);
        for e in &mut exports {
            if let Some(v) = self.overrides.get(&e.name) {
                e.value = Some(v.clone());
            }
        }
        exports
    }
}

/// A value wholly in double quotes loses them.
fn unquoted(value: &str) -> &str {
    let v = value.trim();
    match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner,
        None => v,
    }
}

/// Builds the instance tree from parsed instance files; `graph` must be valid.
pub fn convert(
    files: &[(String, Vec<Block>)],
    graph: &Graph,
    out: &mut Diagnostics,
) -> Vec<Instance> {
    let mut made: Vec<Instance> = Vec::new();
    // Explicit paths, to tell a clash of explicit instances from one made by `count`.
    let mut explicit: BTreeMap<String, Vec<(String, u32)>> = BTreeMap::new();
    for (file, blocks) in files {
        for block in blocks {
            if let Block::Instance(i) = block {
                collect_explicit(i, "", file, &mut explicit);
            }
        }
    }
    for (path, origins) in &explicit {
        if origins.len() > 1 {
            for (file, line) in origins {
                out.push(Diagnostic::new(
                    Code::CO_ALREADY_DEFINED_INSTANCE,
                    Some(file),
                    Some(*line),
                    format!("instance {path:?} is defined {} times", origins.len()),
                ));
            }
        }
    }
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for (file, blocks) in files {
        for block in blocks {
            if let Block::Instance(i) = block {
                expand(i, "", file, graph, &explicit, &mut seen, &mut made, out);
            }
        }
    }
    made
}

fn name_of(i: &InstanceBlock) -> Option<&str> {
    i.properties
        .iter()
        .find(|p| p.name == "name")
        .map(|p| p.value.as_str())
}

fn collect_explicit(
    i: &InstanceBlock,
    parent: &str,
    file: &str,
    out: &mut BTreeMap<String, Vec<(String, u32)>>,
) {
    let Some(name) = name_of(i) else { return };
    if blocks::count(i) > 1 {
        return;
    }
    let path = format!("{parent}/{}", name.trim());
    out.entry(path.clone())
        .or_default()
        .push((file.to_owned(), i.line));
    for child in &i.children {
        collect_explicit(child, &path, file, out);
    }
}

#[allow(clippy::too_many_arguments)]
fn expand(
    i: &InstanceBlock,
    parent: &str,
    file: &str,
    graph: &Graph,
    explicit: &BTreeMap<String, Vec<(String, u32)>>,
    seen: &mut BTreeSet<String>,
    made: &mut Vec<Instance>,
    out: &mut Diagnostics,
) {
    let Some(raw_name) = name_of(i) else { return };
    if !graph.components.contains_key(&i.component) {
        // Once for the block, however many parents `count` made.
        let said = out.0.iter().any(|d| {
            d.code == Code::CO_INEXISTING_COMPONENT
                && d.line == Some(i.line)
                && d.file.as_deref() == Some(file)
        });
        if said {
            return;
        }
        out.at(
            Code::CO_INEXISTING_COMPONENT,
            file,
            i.line,
            format!(
                "instance {:?} is of component {:?}, which the graph does not define",
                raw_name.trim(),
                i.component
            ),
        );
        return;
    }
    let count = blocks::count(i);
    // `name: vm ;` with `count: 3` makes `vm 1`, `vm 2`, `vm 3`: the name as written,
    // then the index padded to the width of the count.
    let stem = raw_name.trim_start();
    let stem = match stem.trim_end() {
        t if t.len() < stem.len() => format!("{t} "),
        t => t.to_owned(),
    };
    let width = count.to_string().len();
    for n in 1..=count {
        let name = if count > 1 {
            format!("{stem}{n:0width$}")
        } else {
            raw_name.trim().to_owned()
        };
        if made.len() >= MAX_INSTANCES {
            out.at(
                Code::PM_INVALID_INSTANCE_COUNT,
                file,
                i.line,
                format!("more than {MAX_INSTANCES} instances: lower the counts"),
            );
            return;
        }
        let path = format!("{parent}/{name}");
        if count > 1 && explicit.contains_key(&path) {
            out.at(
                Code::CO_CONFLICTING_INFERRED_INSTANCE,
                file,
                i.line,
                format!("count makes instance {path:?}, which is also defined on its own"),
            );
            continue;
        }
        if !seen.insert(path.clone()) {
            // Reported once per definition above.
            continue;
        }
        let mut instance = Instance {
            path: path.clone(),
            name,
            component: i.component.clone(),
            overrides: BTreeMap::new(),
            raw: BTreeMap::new(),
            data: BTreeMap::new(),
            file: file.to_owned(),
            line: i.line,
            notes: Vec::new(),
        };
        overrides(i, graph, &mut instance, file);
        made.push(instance);
        for child in &i.children {
            expand(child, &path, file, graph, explicit, seen, made, out);
        }
    }
}

/// The properties of an instance block that are not its own: overridden exports, data,
/// or raw properties.
fn overrides(i: &InstanceBlock, graph: &Graph, instance: &mut Instance, file: &str) {
    let out = &mut instance.notes;
    let exports = graph.exports(&i.component);
    for p in &i.properties {
        if matches!(
            p.name.as_str(),
            "name" | "count" | "channels" | "instance-data" | "instance-state"
        ) {
            continue;
        }
        let value = unquoted(&p.value).to_owned();
        if let Some(key) = p.name.strip_prefix("data.") {
            instance.data.insert(key.to_owned(), value);
            continue;
        }
        let matching: Vec<&Exported> = if p.name.contains('.') {
            exports.iter().filter(|e| e.name == p.name).collect()
        } else {
            exports.iter().filter(|e| e.local() == p.name).collect()
        };
        match matching.len() {
            0 => {
                out.push(Diagnostic::new(
                    Code::RM_MAGIC_INSTANCE_VARIABLE,
                    Some(file),
                    Some(p.line),
                    format!(
                        "{:?} overrides no export of {:?}: it is passed to the recipes as it is",
                        p.name, i.component
                    ),
                ));
                instance.raw.insert(p.name.clone(), value);
            }
            n => {
                if n > 1 {
                    out.push(
                        Diagnostic::new(
                            Code::RM_AMBIGUOUS_OVERRIDING,
                            Some(file),
                            Some(p.line),
                            format!(
                                "{:?} overrides {n} exports of {:?}: qualify it",
                                p.name, i.component
                            ),
                        )
                        .with_detail(
                            matching
                                .iter()
                                .map(|e| e.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                        ),
                    );
                }
                for e in matching {
                    instance.overrides.insert(e.name.clone(), value.clone());
                }
            }
        }
    }
}

/// Checks the tree against the graph: parents, and a value for every export.
pub fn validate(instances: &[Instance], graph: &Graph, out: &mut Diagnostics) {
    let by_path: BTreeMap<&str, &Instance> =
        instances.iter().map(|i| (i.path.as_str(), i)).collect();
    let roots: BTreeSet<&str> = graph.roots().into_iter().collect();
    for i in instances {
        out.0.extend(i.notes.iter().cloned());
        match i.parent() {
            None => {
                if !roots.contains(i.component.as_str()) {
                    out.at(
                        Code::RM_MISSING_INSTANCE_PARENT,
                        &i.file,
                        i.line,
                        format!(
                            "instance {:?} of {:?} needs a parent: {:?} is no root component",
                            i.path, i.component, i.component
                        ),
                    );
                }
            }
            Some(parent) => {
                if let Some(p) = by_path.get(parent)
                    && !graph.children(&p.component).contains(i.component.as_str())
                {
                    out.at(
                        Code::RM_INVALID_INSTANCE_PARENT,
                        &i.file,
                        i.line,
                        format!(
                            "an instance of {:?} may not be deployed on one of {:?}",
                            i.component, p.component
                        ),
                    );
                }
            }
        }
        for e in i.exports(graph) {
            if e.value.is_none() && e.random.is_none() && e.local() != "ip" {
                out.at(
                    Code::RM_MISSING_VARIABLE_VALUE,
                    &i.file,
                    i.line,
                    format!("instance {:?} exports {} without a value: give it one in the graph or here", i.path, e.name),
                );
            }
        }
    }
}
