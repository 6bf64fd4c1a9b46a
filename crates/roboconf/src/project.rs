//! Checks of the application's folder (`PROJ_`, `REC_`): files where they belong and
//! reached, each component's resource folder, its recipes, the descriptor's external
//! exports.

use std::collections::{BTreeMap, BTreeSet};

use crate::descriptor::Descriptor;
use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::graph::Graph;
use crate::tree::Tree;

/// Graph and instance files outside their folder, or in it but never reached from the
/// entry points (`loaded`: the files read; `read`: the folders whose entry point was
/// read, for a file is unreachable only from an entry point that was followed).
pub fn files(tree: &Tree, loaded: &BTreeSet<String>, read: &[&str], out: &mut Diagnostics) {
    for path in tree.files.keys() {
        for (ext, dir) in [(".graph", "graph/"), (".instances", "instances/")] {
            if !path.ends_with(ext) {
                continue;
            }
            if !path.starts_with(dir) {
                out.push(Diagnostic::new(
                    Code::PROJ_INVALID_FILE_LOCATION,
                    Some(path),
                    None,
                    format!("a {ext} file belongs under {dir}: this one is not read"),
                ));
            } else if !loaded.contains(path)
                && read.iter().any(|d| path.starts_with(&format!("{d}/")))
            {
                out.push(Diagnostic::new(
                    Code::PROJ_UNREACHABLE_FILE,
                    Some(path),
                    None,
                    "no import reaches this file from the entry point: it is not read",
                ));
            }
        }
    }
    for (dir, ext, code) in [
        ("commands", ".commands", Code::PROJ_INVALID_COMMAND_EXT),
        ("rules.autonomic", ".drl", Code::PROJ_INVALID_RULE_EXT),
    ] {
        for name in tree.files_in(dir) {
            if !name.ends_with(ext) {
                out.push(Diagnostic::new(
                    code,
                    Some(&format!("{dir}/{name}")),
                    None,
                    format!("files in {dir}/ end with {ext}"),
                ));
            }
        }
    }
}

/// Each component's resource folder `graph/NAME/` and the recipes in it.
pub fn recipes(tree: &Tree, graph: &Graph, out: &mut Diagnostics) {
    for c in graph.components.values() {
        // Recipes are inherited through `extends`: the nearest folder counts.
        let Some(dir) = graph
            .lineage(&c.name)
            .iter()
            .map(|a| format!("graph/{}", a.name))
            .find(|d| tree.is_dir(d))
        else {
            out.push(Diagnostic::new(
                Code::PROJ_NO_RESOURCE_DIRECTORY,
                None,
                None,
                format!(
                    "component {:?} has no folder graph/{}/ for its recipes (nor inherits one)",
                    c.name, c.name
                ),
            ));
            continue;
        };
        let installer = graph
            .installer(&c.name)
            .unwrap_or_default()
            .to_ascii_lowercase();
        match installer.as_str() {
            "script" if !tree.is_dir(&format!("{dir}/scripts")) => out.push(Diagnostic::new(
                Code::REC_SCRIPT_NO_SCRIPTS_DIR,
                Some(&dir),
                None,
                format!(
                    "component {:?} uses the script installer: its scripts go in {dir}/scripts/",
                    c.name
                ),
            )),
            "target" => targets(tree, &dir, &c.name, out),
            _ => {}
        }
    }
}

/// The target definitions of a component: `*.properties` files with an `id` and a
/// `handler`, ids unique.
fn targets(tree: &Tree, dir: &str, component: &str, out: &mut Diagnostics) {
    let names: Vec<&str> = tree
        .files_in(dir)
        .filter(|n| n.ends_with(".properties"))
        .collect();
    if names.is_empty() {
        out.push(Diagnostic::new(
            Code::REC_TARGET_NO_PROPERTIES,
            Some(dir),
            None,
            format!("component {component:?} is a target: {dir}/ needs a target.properties (handler = grove)"),
        ));
        return;
    }
    let mut ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in names {
        let path = format!("{dir}/{name}");
        let Some(props) = target_properties(tree, &path, out) else {
            continue;
        };
        let get = |k: &str| props.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        match get("id") {
            None => out.push(Diagnostic::new(
                Code::REC_TARGET_NO_ID,
                Some(&path),
                None,
                "a target needs an `id`",
            )),
            Some(id) => ids.entry(id.to_owned()).or_default().push(path.clone()),
        }
        if get("handler").is_none() {
            out.push(Diagnostic::new(
                Code::REC_TARGET_NO_HANDLER,
                Some(&path),
                None,
                "a target needs a `handler` (`grove` for Grove's partitions)",
            ));
        }
        if get("name").is_none() {
            out.push(Diagnostic::new(
                Code::REC_TARGET_NO_NAME,
                Some(&path),
                None,
                "a target should have a `name`",
            ));
        }
    }
    for (id, paths) in ids {
        if paths.len() > 1 {
            for path in &paths {
                out.push(Diagnostic::new(
                    Code::REC_TARGET_CONFLICTING_ID,
                    Some(path),
                    None,
                    format!("target id {id:?} is used by {} files", paths.len()),
                ));
            }
        }
    }
}

/// A target file's properties, or `None` (reported) when it does not read.
pub fn target_properties(
    tree: &Tree,
    path: &str,
    out: &mut Diagnostics,
) -> Option<BTreeMap<String, String>> {
    let bytes = tree.files.get(path)?;
    crate::descriptor::properties(
        bytes,
        path,
        Code::REC_TARGET_INVALID_FILE_OR_CONTENT,
        "the target",
        out,
    )
}

/// The descriptor's external exports against the graph: each variable exported by a
/// component, each alias once. The published names, `PREFIX.alias`, by variable.
pub fn external_exports(
    descriptor: &Descriptor,
    graph: &Graph,
    out: &mut Diagnostics,
) -> BTreeMap<String, String> {
    let exported: BTreeSet<String> = graph
        .components
        .keys()
        .flat_map(|c| graph.exports(c).into_iter().map(|e| e.name))
        .collect();
    let prefix = descriptor.exports_prefix.clone().unwrap_or_default();
    let mut published = BTreeMap::new();
    let mut aliases = BTreeSet::new();
    for (variable, alias) in &descriptor.exports {
        let at = Some(crate::descriptor::PATH);
        if !exported.contains(variable) {
            out.push(Diagnostic::new(
                Code::RM_INVALID_EXTERNAL_EXPORT,
                at,
                None,
                format!("external export {variable}: no component exports it"),
            ));
        } else if !aliases.insert(alias.clone()) {
            out.push(Diagnostic::new(
                Code::RM_ALREADY_DEFINED_EXTERNAL_EXPORT,
                at,
                None,
                format!("alias {alias:?} is given to two external exports"),
            ));
        } else {
            published.insert(variable.clone(), format!("{prefix}.{alias}"));
        }
    }
    published
}
