//! The graph's conversion checks (`CO_`: what the files name must exist, once) and its
//! validation as a model (`RM_`: installers, roots, cycles, variables), run only when
//! the conversion found nothing.

use std::collections::{BTreeMap, BTreeSet};

use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::dsl::Block;
use crate::graph::{Graph, Origin};

fn at(out: &mut Diagnostics, code: Code, origin: &Origin, message: impl Into<String>) {
    out.push(Diagnostic::new(
        code,
        Some(&origin.file),
        Some(origin.line),
        message,
    ));
}

/// Builds the graph from the parsed graph files, reporting names defined twice and
/// names that refer to nothing.
pub fn convert(files: &[(String, Vec<Block>)], out: &mut Diagnostics) -> Graph {
    let mut graph = Graph::default();
    // Every definition of each name, to report all of them.
    let mut components: BTreeMap<&str, Vec<Origin>> = BTreeMap::new();
    let mut facets: BTreeMap<&str, Vec<Origin>> = BTreeMap::new();
    for (file, blocks) in files {
        graph.add(file, blocks);
        for block in blocks {
            let origin = |line| Origin {
                file: file.clone(),
                line,
            };
            match block {
                Block::Component(h) => components.entry(&h.name).or_default().push(origin(h.line)),
                Block::Facet(h) => facets.entry(&h.name).or_default().push(origin(h.line)),
                _ => {}
            }
        }
    }
    for (name, origins) in &components {
        if origins.len() > 1 {
            for o in origins {
                at(
                    out,
                    Code::CO_ALREADY_DEFINED_COMPONENT,
                    o,
                    format!("component {name:?} is defined {} times", origins.len()),
                );
            }
        }
        if let Some(f) = facets.get(name) {
            for o in origins.iter().chain(f) {
                at(
                    out,
                    Code::CO_CONFLICTING_NAME,
                    o,
                    format!("{name:?} names both a component and a facet"),
                );
            }
        }
    }
    for (name, origins) in &facets {
        if origins.len() > 1 {
            for o in origins {
                at(
                    out,
                    Code::CO_ALREADY_DEFINED_FACET,
                    o,
                    format!("facet {name:?} is defined {} times", origins.len()),
                );
            }
        }
    }
    for c in graph.components.values() {
        if let Some(parent) = &c.extends
            && !graph.components.contains_key(parent)
        {
            at(
                out,
                Code::CO_INEXISTING_COMPONENT,
                &c.origin,
                format!(
                    "component {:?} extends {parent:?}, which is no component",
                    c.name
                ),
            );
        }
        for f in &c.facets {
            if !graph.facets.contains_key(f) {
                at(
                    out,
                    Code::CO_INEXISTING_FACET,
                    &c.origin,
                    format!("component {:?} has facet {f:?}, which is no facet", c.name),
                );
            }
        }
        missing_children(&graph, "component", &c.name, &c.children, &c.origin, out);
    }
    for f in graph.facets.values() {
        for e in &f.extends {
            if !graph.facets.contains_key(e) {
                at(
                    out,
                    Code::CO_INEXISTING_FACET,
                    &f.origin,
                    format!("facet {:?} extends {e:?}, which is no facet", f.name),
                );
            }
        }
        missing_children(&graph, "facet", &f.name, &f.children, &f.origin, out);
    }
    graph
}

fn missing_children(
    graph: &Graph,
    what: &str,
    name: &str,
    children: &[String],
    origin: &Origin,
    out: &mut Diagnostics,
) {
    for child in children {
        if !graph.components.contains_key(child) && !graph.facets.contains_key(child) {
            at(
                out,
                Code::CO_INEXISTING_CHILD,
                origin,
                format!("{what} {name:?} lists child {child:?}, which is no component or facet"),
            );
        }
    }
}

/// Validates a converted graph. `recipe`: a reusable recipe, whose components may all be
/// children of another application's (no root rules).
pub fn graph(graph: &Graph, recipe: bool, out: &mut Diagnostics) {
    cycles(graph, out);
    if out.has_errors() {
        // The rules below walk `extends` and children.
        return;
    }
    // Without cycles, some component is no other's child: there is always a root.
    let roots: BTreeSet<&str> = graph.roots().into_iter().collect();
    // Every exported name, qualified, for the imports to find.
    let exported: BTreeMap<&str, Vec<String>> = graph
        .components
        .keys()
        .map(|c| {
            (
                c.as_str(),
                graph.exports(c).into_iter().map(|e| e.name).collect(),
            )
        })
        .collect();
    let all_exported: BTreeSet<&str> = exported.values().flatten().map(String::as_str).collect();
    for c in graph.components.values() {
        let installer = graph.installer(&c.name);
        // (The installer's name was checked with its block.)
        if installer.is_none() {
            at(
                out,
                Code::RM_EMPTY_COMPONENT_INSTALLER,
                &c.origin,
                format!("component {:?} has no installer (nor inherits one)", c.name),
            );
        }
        if !recipe
            && roots.contains(c.name.as_str())
            && installer.is_some_and(|i| !i.eq_ignore_ascii_case("target"))
        {
            at(
                out,
                Code::RM_ROOT_INSTALLER_MUST_BE_TARGET,
                &c.origin,
                format!(
                    "component {:?} is a root (no component lists it as a child): its installer must be `target`",
                    c.name
                ),
            );
        }
        for decl in &c.exports {
            if let Some(kind) = &decl.random {
                let origin = Origin {
                    file: c.origin.file.clone(),
                    line: decl.line,
                };
                if kind != "port" {
                    at(
                        out,
                        Code::RM_INVALID_RANDOM_KIND,
                        &origin,
                        format!(
                            "random[{kind}] {}: the only random kind is `port`",
                            decl.name
                        ),
                    );
                }
                if decl.value.is_some() {
                    at(
                        out,
                        Code::RM_NO_VALUE_FOR_RANDOM,
                        &origin,
                        format!(
                            "random variable {} takes no value: the master assigns one",
                            decl.name
                        ),
                    );
                }
            }
        }
        let own: &[String] = exported.get(c.name.as_str()).map_or(&[], Vec::as_slice);
        for import in &c.imports {
            if import.external {
                continue;
            }
            let origin = Origin {
                file: c.origin.file.clone(),
                line: import.line,
            };
            let found = if import.is_wildcard() {
                let prefix = format!("{}.", import.prefix());
                all_exported.iter().any(|e| e.starts_with(&prefix))
            } else {
                all_exported.contains(import.name.as_str())
            };
            if !found {
                let code = if graph.facets.contains_key(import.prefix()) {
                    Code::RM_UNRESOLVABLE_FACET_VARIABLE
                } else {
                    Code::RM_UNRESOLVABLE_VARIABLE
                };
                at(
                    out,
                    code,
                    &origin,
                    format!(
                        "component {:?} imports {}, which no component exports",
                        c.name, import.name
                    ),
                );
            } else if !import.optional {
                let prefix = format!("{}.", import.prefix());
                let exports_it = if import.is_wildcard() {
                    own.iter().any(|e| e.starts_with(&prefix))
                } else {
                    own.contains(&import.name)
                };
                if exports_it {
                    at(
                        out,
                        Code::RM_COMPONENT_IMPORTS_EXPORTS,
                        &origin,
                        format!(
                            "component {:?} imports {}, which it exports itself: mark the import `(optional)`",
                            c.name, import.name
                        ),
                    );
                }
            }
        }
    }
    // Facets that no component carries.
    let carried: BTreeSet<&str> = graph
        .components
        .keys()
        .flat_map(|c| graph.facets_of(c).into_iter().map(|f| f.name.as_str()))
        .collect();
    for f in graph.facets.values() {
        if !carried.contains(f.name.as_str()) {
            let code = if f.children.is_empty() {
                Code::RM_ORPHAN_FACET
            } else {
                Code::RM_ORPHAN_FACET_WITH_CHILDREN
            };
            at(
                out,
                code,
                &f.origin,
                format!("no component has facet {:?}", f.name),
            );
        }
    }
    if !recipe {
        // What can be reached from the roots.
        let mut reached: BTreeSet<&str> = roots.clone();
        let mut pending: Vec<&str> = roots.iter().copied().collect();
        while let Some(c) = pending.pop() {
            for child in graph.children(c) {
                if reached.insert(child.as_str()) {
                    pending.push(child.as_str());
                }
            }
        }
        for c in graph.components.values() {
            if !reached.contains(c.name.as_str()) {
                at(
                    out,
                    Code::RM_UNREACHABLE_COMPONENT,
                    &c.origin,
                    format!(
                        "component {:?} is no root and no reachable component's child",
                        c.name
                    ),
                );
            }
        }
    }
}

/// Cycles in `extends` (components, facets) and in containment.
fn cycles(graph: &Graph, out: &mut Diagnostics) {
    for c in graph.components.values() {
        let mut seen = BTreeSet::from([c.name.as_str()]);
        let mut next = c.extends.as_deref();
        while let Some(n) = next {
            if n == c.name {
                at(
                    out,
                    Code::RM_CYCLE_IN_COMPONENTS_INHERITANCE,
                    &c.origin,
                    format!(
                        "component {:?} extends itself through {}",
                        c.name,
                        seen.iter().copied().collect::<Vec<_>>().join(", ")
                    ),
                );
                break;
            }
            if !seen.insert(n) {
                break;
            }
            next = graph.components.get(n).and_then(|p| p.extends.as_deref());
        }
    }
    for f in graph.facets.values() {
        let mut seen = BTreeSet::new();
        let mut pending: Vec<&str> = f.extends.iter().map(String::as_str).collect();
        while let Some(n) = pending.pop() {
            if n == f.name {
                at(
                    out,
                    Code::RM_CYCLE_IN_FACETS_INHERITANCE,
                    &f.origin,
                    format!("facet {:?} extends itself", f.name),
                );
                break;
            }
            if seen.insert(n)
                && let Some(e) = graph.facets.get(n)
            {
                pending.extend(e.extends.iter().map(String::as_str));
            }
        }
    }
    if out.has_errors() {
        return;
    }
    // Containment: a component that is its own descendant.
    for c in graph.components.values() {
        let mut seen = BTreeSet::new();
        let mut pending: Vec<&str> = graph.children(&c.name).iter().map(String::as_str).collect();
        while let Some(n) = pending.pop() {
            if n == c.name {
                at(
                    out,
                    Code::RM_CYCLE_IN_COMPONENTS,
                    &c.origin,
                    format!("component {:?} may be deployed inside itself", c.name),
                );
                break;
            }
            if seen.insert(n) {
                pending.extend(graph.children(n).iter().map(String::as_str));
            }
        }
    }
}
