//! The graph: components and facets made from the blocks of graph files, and what each
//! component inherits (exports, imports, installer, children) through `extends` and its
//! facets.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::dsl::{self, Block};
use crate::vars::{self, ExportEntry};

/// Where a block was declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub file: String,
    pub line: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Component {
    pub name: String,
    pub installer: Option<String>,
    pub extends: Option<String>,
    pub facets: Vec<String>,
    pub children: Vec<String>,
    pub exports: Vec<ExportDecl>,
    pub imports: Vec<ImportDecl>,
    #[serde(skip)]
    pub origin: Origin,
}

#[derive(Debug, Clone, Serialize)]
pub struct Facet {
    pub name: String,
    pub extends: Vec<String>,
    pub children: Vec<String>,
    pub exports: Vec<ExportDecl>,
    #[serde(skip)]
    pub origin: Origin,
}

/// An exported variable as declared, with the line of its `exports:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportDecl {
    pub name: String,
    pub value: Option<String>,
    pub random: Option<String>,
    #[serde(skip)]
    pub line: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportDecl {
    pub name: String,
    pub optional: bool,
    pub external: bool,
    #[serde(skip)]
    pub line: u32,
}

impl ImportDecl {
    pub fn prefix(&self) -> &str {
        vars::import_prefix(&self.name)
    }

    pub fn is_wildcard(&self) -> bool {
        self.name.ends_with(".*")
    }
}

/// A variable a component exports once everything it inherits is resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exported {
    /// Qualified: `Tomcat.port`.
    pub name: String,
    pub value: Option<String>,
    pub random: Option<String>,
}

impl Exported {
    /// The name without its qualifier: `port`.
    pub fn local(&self) -> &str {
        self.name.rsplit_once('.').map_or(&self.name, |(_, l)| l)
    }
}

/// Components and facets by name.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Graph {
    pub components: BTreeMap<String, Component>,
    pub facets: BTreeMap<String, Facet>,
    /// Containment, resolved once the graph is complete.
    #[serde(skip)]
    cache: std::sync::OnceLock<Containment>,
}

/// What may be deployed on what, facets expanded.
#[derive(Debug, Clone, Default)]
struct Containment {
    /// Component → the components that may be deployed on it.
    children: BTreeMap<String, BTreeSet<String>>,
    /// Facet → the components that carry it.
    carriers: BTreeMap<String, BTreeSet<String>>,
    /// Component → itself and the components that extend it, directly or not: a child
    /// named by its component may be of any of them.
    extenders: BTreeMap<String, BTreeSet<String>>,
    roots: Vec<String>,
}

/// Reads the parsed blocks of a component or facet into declarations. Values have been
/// checked (`check::blocks`); what does not read is left out here.
pub(crate) fn declarations(properties: &[dsl::Property]) -> Declared {
    let mut declared = Declared::default();
    for p in properties {
        let value = p.trimmed();
        match p.name.as_str() {
            "installer" => declared.installer = Some(value.to_owned()),
            "extends" => declared
                .extends
                .extend(vars::list(value).into_iter().map(str::to_owned)),
            "facets" => declared
                .facets
                .extend(vars::list(value).into_iter().map(str::to_owned)),
            "children" => declared
                .children
                .extend(vars::list(value).into_iter().map(str::to_owned)),
            "exports" => {
                let (entries, _) = vars::exports(value);
                declared.exports.extend(entries.into_iter().map(
                    |ExportEntry {
                         name,
                         value,
                         random,
                     }| {
                        ExportDecl {
                            name,
                            value,
                            random,
                            line: p.line,
                        }
                    },
                ));
            }
            "imports" => {
                let (entries, _) = vars::imports(value);
                declared
                    .imports
                    .extend(entries.into_iter().map(|e| ImportDecl {
                        name: e.name,
                        optional: e.optional,
                        external: e.external,
                        line: p.line,
                    }));
            }
            _ => {}
        }
    }
    declared.extends.retain(|e| !e.is_empty());
    declared.facets.retain(|e| !e.is_empty());
    declared.children.retain(|e| !e.is_empty());
    declared
}

#[derive(Debug, Default)]
pub(crate) struct Declared {
    pub(crate) installer: Option<String>,
    pub(crate) extends: Vec<String>,
    pub(crate) facets: Vec<String>,
    pub(crate) children: Vec<String>,
    pub(crate) exports: Vec<ExportDecl>,
    pub(crate) imports: Vec<ImportDecl>,
}

impl Graph {
    /// Adds the components and facets of parsed files (duplicates are the caller's to
    /// report: the first definition stays).
    pub(crate) fn add(&mut self, file: &str, blocks: &[Block]) {
        self.cache = std::sync::OnceLock::new();
        for block in blocks {
            match block {
                Block::Component(h) => {
                    let d = declarations(&h.properties);
                    self.components.entry(h.name.clone()).or_insert(Component {
                        name: h.name.clone(),
                        installer: d.installer,
                        extends: d.extends.into_iter().next(),
                        facets: d.facets,
                        children: d.children,
                        exports: d.exports,
                        imports: d.imports,
                        origin: Origin {
                            file: file.to_owned(),
                            line: h.line,
                        },
                    });
                }
                Block::Facet(h) => {
                    let d = declarations(&h.properties);
                    self.facets.entry(h.name.clone()).or_insert(Facet {
                        name: h.name.clone(),
                        extends: d.extends,
                        children: d.children,
                        exports: d.exports,
                        origin: Origin {
                            file: file.to_owned(),
                            line: h.line,
                        },
                    });
                }
                Block::Import(_) | Block::Instance(_) => {}
            }
        }
    }

    /// The component and its super-components, itself first, stopping at a cycle or a
    /// missing one.
    pub fn lineage(&self, name: &str) -> Vec<&Component> {
        let mut out: Vec<&Component> = Vec::new();
        let mut current = self.components.get(name);
        while let Some(c) = current {
            if out.iter().any(|o| o.name == c.name) {
                break;
            }
            out.push(c);
            current = c.extends.as_deref().and_then(|n| self.components.get(n));
        }
        out
    }

    /// The facet and every facet it extends, directly or not (each once).
    pub fn facet_closure(&self, names: &[String]) -> Vec<&Facet> {
        let mut out: Vec<&Facet> = Vec::new();
        let mut pending: Vec<&str> = names.iter().map(String::as_str).rev().collect();
        while let Some(n) = pending.pop() {
            let Some(f) = self.facets.get(n) else {
                continue;
            };
            if out.iter().any(|o| o.name == f.name) {
                continue;
            }
            out.push(f);
            pending.extend(f.extends.iter().map(String::as_str).rev());
        }
        out
    }

    /// Every facet a component carries: its own, its super-components', and those they
    /// extend.
    pub fn facets_of(&self, component: &str) -> Vec<&Facet> {
        let names: Vec<String> = self
            .lineage(component)
            .iter()
            .flat_map(|c| c.facets.iter().cloned())
            .collect();
        self.facet_closure(&names)
    }

    /// The installer: the first one up the `extends` chain.
    pub fn installer(&self, component: &str) -> Option<&str> {
        self.lineage(component)
            .into_iter()
            .find_map(|c| c.installer.as_deref())
    }

    /// The exports, resolved: facets' first, then the super-components' (the farthest
    /// first), then the component's own; a later value overrides an earlier one in place.
    pub fn exports(&self, component: &str) -> Vec<Exported> {
        let mut out: Vec<Exported> = Vec::new();
        let mut put = |qualifier: &str, decl: &ExportDecl| {
            let name = if decl.name.contains('.') {
                decl.name.clone()
            } else {
                format!("{qualifier}.{}", decl.name)
            };
            let exported = Exported {
                name,
                value: decl.value.clone(),
                random: decl.random.clone(),
            };
            match out.iter_mut().find(|e| e.name == exported.name) {
                Some(slot) => *slot = exported,
                None => out.push(exported),
            }
        };
        let facets = self.facets_of(component);
        for facet in facets.iter().rev() {
            for decl in &facet.exports {
                put(&facet.name, decl);
            }
        }
        let lineage = self.lineage(component);
        for c in lineage.iter().rev() {
            for decl in &c.exports {
                put(&c.name, decl);
            }
        }
        out
    }

    /// The imports, from the farthest super-component down to the component.
    pub fn imports(&self, component: &str) -> Vec<ImportDecl> {
        let mut out: Vec<ImportDecl> = Vec::new();
        for c in self.lineage(component).iter().rev() {
            for decl in &c.imports {
                out.retain(|o| o.name != decl.name);
                out.push(decl.clone());
            }
        }
        out
    }

    fn containment(&self) -> &Containment {
        self.cache.get_or_init(|| {
            let mut carriers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for c in self.components.keys() {
                for f in self.facets_of(c) {
                    carriers
                        .entry(f.name.clone())
                        .or_default()
                        .insert(c.clone());
                }
            }
            let mut extenders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for c in self.components.keys() {
                for ancestor in self.lineage(c) {
                    extenders
                        .entry(ancestor.name.clone())
                        .or_default()
                        .insert(c.clone());
                }
            }
            let expand = |name: &str| -> BTreeSet<String> {
                match extenders.get(name) {
                    Some(set) => set.clone(),
                    None => carriers.get(name).cloned().unwrap_or_default(),
                }
            };
            let children: BTreeMap<String, BTreeSet<String>> = self
                .components
                .keys()
                .map(|c| {
                    let set = self
                        .declared_children(c)
                        .into_iter()
                        .flat_map(expand)
                        .collect();
                    (c.clone(), set)
                })
                .collect();
            let mut named: BTreeSet<&String> = children.values().flatten().collect();
            let facet_children: BTreeSet<String> = self
                .facets
                .values()
                .flat_map(|f| f.children.iter().flat_map(|n| expand(n)))
                .collect();
            named.extend(facet_children.iter());
            let roots = self
                .components
                .keys()
                .filter(|c| !named.contains(c))
                .cloned()
                .collect();
            Containment {
                children,
                carriers,
                extenders,
                roots,
            }
        })
    }

    /// The components a child name stands for: the component and those that extend it,
    /// or for a facet, every component that carries it (and those that extend them).
    pub fn expand_child(&self, name: &str) -> BTreeSet<&str> {
        let containment = self.containment();
        containment
            .extenders
            .get(name)
            .or_else(|| containment.carriers.get(name))
            .map(|set| set.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// The names a component lists as children, its own, its super-components' and its
    /// facets'.
    fn declared_children(&self, component: &str) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for c in self.lineage(component) {
            names.extend(c.children.iter().map(String::as_str));
        }
        for f in self.facets_of(component) {
            names.extend(f.children.iter().map(String::as_str));
        }
        names
    }

    /// The components that may be deployed on this one.
    pub fn children(&self, component: &str) -> &BTreeSet<String> {
        static NONE: BTreeSet<String> = BTreeSet::new();
        self.containment().children.get(component).unwrap_or(&NONE)
    }

    /// The components no component lists as a child, nor any facet: what instances at
    /// the root may be.
    pub fn roots(&self) -> Vec<&str> {
        self.containment()
            .roots
            .iter()
            .map(String::as_str)
            .collect()
    }
}
