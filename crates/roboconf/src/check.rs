//! `grove app check`: an application, a recipe or one file, read in Roboconf's stages
//! (parsing, block checks, conversion, model validation when the stages before found
//! nothing, the folder's checks), every problem reported.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::descriptor::{self, Descriptor};
use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::dsl::{self, Block, FileKind};
use crate::graph::Graph;
use crate::instances::{self, Instance};
use crate::tree::Tree;
use crate::{blocks, project, validate};

/// What was checked, as the report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Application,
    Recipe,
    Graph,
    Instances,
    Aggregator,
    Empty,
}

/// The model as far as the checks built it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Model {
    pub name: Option<String>,
    pub version: Option<String>,
    pub components: Vec<String>,
    pub root_components: Vec<String>,
    pub facets: Vec<String>,
    /// Full paths, after `count` expansion.
    pub instances: Vec<String>,
    /// Variable → the name other applications import it by.
    pub external_exports: BTreeMap<String, String>,
}

/// What `grove app check` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub valid: bool,
    pub kind: Kind,
    pub diagnostics: Vec<Diagnostic>,
    pub model: Option<Model>,
}

/// A valid application, ready to deploy.
#[derive(Debug, Clone)]
pub struct Application {
    pub descriptor: Descriptor,
    pub graph: Graph,
    pub instances: Vec<Instance>,
    pub external_exports: BTreeMap<String, String>,
    /// Commands files by name (without `.commands`), checked.
    pub commands: BTreeMap<String, String>,
    pub rules: Vec<crate::rules::Rule>,
    pub tree: Tree,
}

/// Reads DSL files by their path from the folder imports resolve from.
pub trait Reader {
    /// The file's text; `None` when there is no such file.
    fn read(&self, path: &str) -> Option<String>;
}

impl Reader for Tree {
    fn read(&self, path: &str) -> Option<String> {
        self.text(path).map(|t| t.into_owned())
    }
}

/// A file's path from a folder, `.` and `..` resolved; `None` when it leaves the folder.
fn join(base: &str, path: &str) -> Option<String> {
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    let floor = parts.len();
    if path.starts_with('/') {
        return None;
    }
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.len() == floor {
                    return None;
                }
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// Parses one file and checks its blocks.
fn parse_file(text: &str, path: &str, out: &mut Diagnostics) -> (Vec<Block>, FileKind) {
    let file = dsl::parse(text, path, out);
    let kind = file.kind();
    match kind {
        FileKind::Mixed => out.push(Diagnostic::new(
            Code::P_INVALID_FILE_TYPE,
            Some(path),
            None,
            "a file holds either components and facets, or instances, not both",
        )),
        FileKind::Empty => out.push(Diagnostic::new(
            Code::P_EMPTY_FILE,
            Some(path),
            None,
            "the file holds nothing but comments and blank lines",
        )),
        _ => {}
    }
    blocks::check(&file, path, out);
    (file.blocks, kind)
}

/// The files entry points reach through its imports, each read once, in the order
/// first reached. `base` is the folder imports resolve from, `shown` what paths are
/// prefixed with in diagnostics.
fn load(
    reader: &dyn Reader,
    base: &str,
    shown: &str,
    entries: &[&str],
    expected: &[FileKind],
    not_code: Code,
    out: &mut Diagnostics,
) -> Vec<(String, Vec<Block>)> {
    let display = |path: &str| {
        if shown.is_empty() {
            path.to_owned()
        } else {
            format!("{shown}/{path}")
        }
    };
    let mut loaded: Vec<(String, Vec<Block>)> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut pending: Vec<(String, Option<(String, u32)>)> = entries
        .iter()
        .rev()
        .map(|e| ((*e).to_owned(), None))
        .collect();
    while let Some((relative, from)) = pending.pop() {
        if !seen.insert(relative.clone()) {
            continue;
        }
        let full = if base.is_empty() {
            relative.clone()
        } else {
            format!("{base}/{relative}")
        };
        let Some(text) = reader.read(&full) else {
            let (file, line) = match &from {
                Some((file, line)) => (Some(file.as_str()), Some(*line)),
                None => (None, None),
            };
            out.push(Diagnostic::new(
                Code::CO_UNREACHABLE_FILE,
                file,
                line,
                format!("{} cannot be read", display(&relative)),
            ));
            continue;
        };
        let path = display(&relative);
        let (blocks, kind) = parse_file(&text, &path, out);
        if !expected.contains(&kind) && kind != FileKind::Mixed {
            out.push(Diagnostic::new(
                not_code,
                Some(&path),
                None,
                format!(
                    "this {} file is read where {} files are expected",
                    kind.as_str(),
                    expected[0].as_str()
                ),
            ));
        }
        let mut imports: Vec<(String, Option<(String, u32)>)> = Vec::new();
        for block in &blocks {
            if let Block::Import(i) = block
                && !i.path.is_empty()
            {
                match join("", &i.path) {
                    Some(target) => imports.push((target, Some((path.clone(), i.line)))),
                    None => out.at(
                        Code::CO_UNREACHABLE_FILE,
                        &path,
                        i.line,
                        format!("{:?} leaves the folder imports are read from", i.path),
                    ),
                }
            }
        }
        // Depth first, in the order written.
        pending.extend(imports.into_iter().rev());
        loaded.push((relative, blocks));
    }
    loaded
        .into_iter()
        .map(|(relative, blocks)| (display(&relative), blocks))
        .collect()
}

const GRAPH_KINDS: [FileKind; 3] = [FileKind::Graph, FileKind::Aggregator, FileKind::Empty];
const INSTANCE_KINDS: [FileKind; 3] = [FileKind::Instances, FileKind::Aggregator, FileKind::Empty];

/// Converts and validates graph files; `None` when an earlier stage found an error.
fn graph_stages(
    files: &[(String, Vec<Block>)],
    recipe: bool,
    out: &mut Diagnostics,
) -> Option<Graph> {
    if out.has_errors() {
        return None;
    }
    let graph = validate::convert(files, out);
    if !out.has_errors() {
        validate::graph(&graph, recipe, out);
    }
    Some(graph)
}

fn instance_stages(
    files: &[(String, Vec<Block>)],
    graph: &Graph,
    out: &mut Diagnostics,
) -> Option<Vec<Instance>> {
    if out.has_errors() {
        return None;
    }
    let made = instances::convert(files, graph, out);
    if !out.has_errors() {
        instances::validate(&made, graph, out);
    }
    Some(made)
}

fn model(graph: Option<&Graph>, made: Option<&[Instance]>) -> Model {
    let mut m = Model::default();
    if let Some(g) = graph {
        m.components = g.components.keys().cloned().collect();
        m.root_components = g.roots().into_iter().map(str::to_owned).collect();
        m.facets = g.facets.keys().cloned().collect();
    }
    if let Some(made) = made {
        m.instances = made.iter().map(|i| i.path.clone()).collect();
    }
    m
}

fn report(kind: Kind, out: Diagnostics, model: Option<Model>) -> Report {
    Report {
        valid: !out.has_errors(),
        kind,
        diagnostics: out.0,
        model,
    }
}

/// Checks an application folder (or a ZIP read into a tree). The application too when
/// it is valid.
pub fn application(tree: Tree) -> (Report, Option<Application>) {
    let mut out = Diagnostics::default();
    if !tree.is_dir("descriptor") {
        out.push(Diagnostic::new(
            Code::PROJ_NO_DESC_DIR,
            None,
            None,
            "an application has a descriptor/ folder (or check a recipe with --recipe)",
        ));
        return (report(Kind::Application, out, None), None);
    }
    let Some(text) = tree.text(descriptor::PATH) else {
        out.push(Diagnostic::new(
            Code::PROJ_NO_DESC_FILE,
            Some(descriptor::PATH),
            None,
            "the descriptor file is missing",
        ));
        return (report(Kind::Application, out, None), None);
    };
    let descriptor = descriptor::read(&text, &mut out);
    let mut m = Model {
        name: descriptor.name.clone(),
        version: descriptor.version.clone(),
        ..Model::default()
    };
    if !tree.is_dir("graph") {
        out.push(Diagnostic::new(
            Code::PROJ_NO_GRAPH_DIR,
            None,
            None,
            "an application has a graph/ folder",
        ));
        return (report(Kind::Application, out, Some(m)), None);
    }
    let Some(gep) = descriptor.graph_entry_point.clone() else {
        return (report(Kind::Application, out, Some(m)), None);
    };
    if !tree.files.contains_key(&format!("graph/{gep}")) {
        out.push(Diagnostic::new(
            Code::PROJ_MISSING_GRAPH_EP,
            Some(descriptor::PATH),
            None,
            format!("the graph's entry point graph/{gep} does not exist"),
        ));
        return (report(Kind::Application, out, Some(m)), None);
    }
    let graph_files = load(
        &tree,
        "graph",
        "graph",
        &[gep.as_str()],
        &GRAPH_KINDS,
        Code::CO_NOT_A_GRAPH,
        &mut out,
    );
    let graph = graph_stages(&graph_files, false, &mut out);
    let mut loaded: BTreeSet<String> = graph_files.iter().map(|(p, _)| p.clone()).collect();
    let mut made = None;
    let mut read = vec!["graph"];
    if let Some(iep) = &descriptor.instance_entry_point {
        if !tree.files.contains_key(&format!("instances/{iep}")) {
            out.push(Diagnostic::new(
                Code::PROJ_MISSING_INSTANCE_EP,
                Some(descriptor::PATH),
                None,
                format!("the instances' entry point instances/{iep} does not exist"),
            ));
        } else if let Some(graph) = graph.as_ref().filter(|_| !out.has_errors()) {
            let files = load(
                &tree,
                "instances",
                "instances",
                &[iep.as_str()],
                &INSTANCE_KINDS,
                Code::CO_NOT_INSTANCES,
                &mut out,
            );
            loaded.extend(files.iter().map(|(p, _)| p.clone()));
            read.push("instances");
            made = instance_stages(&files, graph, &mut out);
        }
    }
    m = Model {
        name: m.name,
        version: m.version,
        ..model(graph.as_ref(), made.as_deref())
    };
    project::files(&tree, &loaded, &read, &mut out);
    if let Some(graph) = &graph {
        project::recipes(&tree, graph, &mut out);
        m.external_exports = project::external_exports(&descriptor, graph, &mut out);
    }
    // The whole application last: its commands and rules, against the model.
    let mut commands = BTreeMap::new();
    let mut rules = Vec::new();
    if let Some(graph) = graph.as_ref().filter(|_| !out.has_errors()) {
        commands = tree
            .files_in("commands")
            .filter_map(|n| n.strip_suffix(".commands"))
            .filter_map(|n| {
                Some((
                    n.to_owned(),
                    tree.text(&format!("commands/{n}.commands"))?.into_owned(),
                ))
            })
            .collect();
        let paths: BTreeMap<String, String> = made
            .iter()
            .flatten()
            .map(|i| (i.path.clone(), i.component.clone()))
            .collect();
        crate::commands::check(&commands, graph, &paths, &mut out);
        rules = self::rules(&tree, &commands, &mut out);
    }
    let application = match (graph, out.has_errors()) {
        (Some(graph), false) => Some(Application {
            descriptor,
            graph,
            instances: made.unwrap_or_default(),
            external_exports: m.external_exports.clone(),
            commands,
            rules,
            tree,
        }),
        _ => None,
    };
    (report(Kind::Application, out, Some(m)), application)
}

/// The autonomic rules, each naming commands files that exist.
fn rules(
    tree: &Tree,
    commands: &BTreeMap<String, String>,
    out: &mut Diagnostics,
) -> Vec<crate::rules::Rule> {
    let mut rules = Vec::new();
    for file in tree
        .files_in("rules.autonomic")
        .filter(|n| n.ends_with(".drl"))
    {
        let path = format!("rules.autonomic/{file}");
        let Some(text) = tree.text(&path) else {
            continue;
        };
        let name = file.strip_suffix(".drl").unwrap_or(file);
        let Some(rule) = crate::rules::parse(&text, name, &path, out) else {
            continue;
        };
        for command in &rule.commands {
            if !commands.contains_key(command) {
                out.push(Diagnostic::new(
                    Code::RULE_UNKNOWN_COMMAND,
                    Some(&path),
                    None,
                    format!(
                        "rule {:?} runs {command}, which is no file commands/{command}.commands",
                        rule.name
                    ),
                ));
            }
        }
        rules.push(rule);
    }
    rules
}

/// Checks a reusable recipe: the graph files in `graph/`, no descriptor, no root rules.
pub fn recipe(tree: &Tree) -> Report {
    let mut out = Diagnostics::default();
    if !tree.is_dir("graph") {
        out.push(Diagnostic::new(
            Code::PROJ_NO_GRAPH_DIR,
            None,
            None,
            "a recipe has a graph/ folder",
        ));
        return report(Kind::Recipe, out, None);
    }
    let entries: Vec<&str> = tree
        .files
        .keys()
        .filter_map(|p| p.strip_prefix("graph/"))
        .filter(|p| p.ends_with(".graph"))
        .collect();
    let files = load(
        tree,
        "graph",
        "graph",
        &entries,
        &GRAPH_KINDS,
        Code::CO_NOT_A_GRAPH,
        &mut out,
    );
    let loaded: BTreeSet<String> = files.iter().map(|(p, _)| p.clone()).collect();
    let graph = graph_stages(&files, true, &mut out);
    project::files(tree, &loaded, &["graph"], &mut out);
    if let Some(graph) = &graph {
        project::recipes(tree, graph, &mut out);
    }
    let m = model(graph.as_ref(), None);
    report(Kind::Recipe, out, Some(m))
}

/// Checks one DSL file; its imports are read by `reader` (its folder). With `graph` (its
/// name, its reader), an instances file is checked against that graph.
pub fn file(
    name: &str,
    text: &str,
    reader: &dyn Reader,
    graph: Option<(&str, &str, &dyn Reader)>,
) -> Report {
    let mut out = Diagnostics::default();
    let probe = dsl::parse(text, name, &mut Diagnostics::default());
    let kind = match probe.kind() {
        FileKind::Graph => Kind::Graph,
        FileKind::Instances => Kind::Instances,
        FileKind::Aggregator => Kind::Aggregator,
        FileKind::Empty => Kind::Empty,
        // The kind of the first block that is no import.
        FileKind::Mixed => match probe.blocks.iter().find(|b| !matches!(b, Block::Import(_))) {
            Some(Block::Instance(_)) => Kind::Instances,
            _ => Kind::Graph,
        },
    };
    let file_kind = probe.kind();
    let instances_like =
        kind == Kind::Instances || (graph.is_some() && file_kind == FileKind::Aggregator);
    // One file held in memory, the files it imports read from its folder.
    let single = |name: &str,
                  text: &str,
                  reader: &dyn Reader,
                  kinds: &[FileKind],
                  not: Code,
                  out: &mut Diagnostics| {
        let memory = Single {
            name,
            text,
            rest: reader,
        };
        load(&memory, "", "", &[name], kinds, not, out)
    };
    if !instances_like {
        // A graph (or an aggregator of graphs, or nothing): the whole graph from here.
        let files = single(
            name,
            text,
            reader,
            &GRAPH_KINDS,
            Code::CO_NOT_A_GRAPH,
            &mut out,
        );
        let g = if matches!(file_kind, FileKind::Graph | FileKind::Aggregator) {
            graph_stages(&files, false, &mut out)
        } else {
            None
        };
        return report(kind, out, g.map(|g| model(Some(&g), None)));
    }
    let Some((graph_name, graph_text, graph_reader)) = graph else {
        // Syntax and block rules only.
        single(
            name,
            text,
            reader,
            &INSTANCE_KINDS,
            Code::CO_NOT_INSTANCES,
            &mut out,
        );
        return report(kind, out, None);
    };
    let graph_files = single(
        graph_name,
        graph_text,
        graph_reader,
        &GRAPH_KINDS,
        Code::CO_NOT_A_GRAPH,
        &mut out,
    );
    let g = graph_stages(&graph_files, false, &mut out);
    let files = single(
        name,
        text,
        reader,
        &INSTANCE_KINDS,
        Code::CO_NOT_INSTANCES,
        &mut out,
    );
    let made = match &g {
        Some(g) => instance_stages(&files, g, &mut out),
        None => None,
    };
    let m = model(g.as_ref(), made.as_deref());
    report(kind, out, Some(m))
}

/// One file held in memory, the others read from its folder.
struct Single<'a> {
    name: &'a str,
    text: &'a str,
    rest: &'a dyn Reader,
}

impl Reader for Single<'_> {
    fn read(&self, path: &str) -> Option<String> {
        if path == self.name {
            Some(self.text.to_owned())
        } else {
            self.rest.read(path)
        }
    }
}

/// A reader of files under a folder on disk, none outside it.
#[derive(Debug)]
pub struct Folder(pub std::path::PathBuf);

impl Reader for Folder {
    fn read(&self, path: &str) -> Option<String> {
        let relative = join("", path)?;
        let bytes = std::fs::read(self.0.join(relative)).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Reads nothing: for a file checked alone.
#[derive(Debug)]
pub struct Nothing;

impl Reader for Nothing {
    fn read(&self, _: &str) -> Option<String> {
        None
    }
}
