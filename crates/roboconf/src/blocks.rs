//! The checks of each parsed block on its own (`PM_` codes): names, the properties a
//! block may have, and what their values must look like.

use std::collections::BTreeSet;

use crate::diagnostic::{Code, Diagnostics};
use crate::dsl::{Block, File, Holder, InstanceBlock, Property};
use crate::vars::{self, ExportProblem, ImportProblem};

const COMPONENT_PROPERTIES: [&str; 6] = [
    "installer",
    "children",
    "exports",
    "imports",
    "facets",
    "extends",
];
const FACET_PROPERTIES: [&str; 3] = ["children", "exports", "extends"];
/// The properties an instance reads itself; any other overrides an export.
const INSTANCE_RESERVED: [&str; 5] = [
    "name",
    "count",
    "channels",
    "instance-data",
    "instance-state",
];

/// Checks every block of a file.
pub fn check(file: &File, path: &str, out: &mut Diagnostics) {
    for block in &file.blocks {
        match block {
            Block::Import(i) => {
                if i.path.is_empty() {
                    out.at(
                        Code::PM_EMPTY_IMPORT_LOCATION,
                        path,
                        i.line,
                        "an import needs a file to import",
                    );
                }
            }
            Block::Component(h) => holder(h, "component", &COMPONENT_PROPERTIES, path, out),
            Block::Facet(h) => holder(h, "facet", &FACET_PROPERTIES, path, out),
            Block::Instance(i) => instance(i, path, out),
        }
    }
}

fn name(name: &str, what: &str, line: u32, path: &str, out: &mut Diagnostics) {
    if name.is_empty() {
        let code = if what == "facet" {
            Code::PM_EMPTY_FACET_NAME
        } else {
            Code::PM_EMPTY_COMPONENT_NAME
        };
        out.at(code, path, line, format!("a {what} needs a name"));
    } else if name.contains('.') {
        out.at(
            Code::PM_DOT_IS_NOT_ALLOWED,
            path,
            line,
            format!(
                "{what} {name:?}: a dot is not allowed in a {what}'s name (it qualifies variables)"
            ),
        );
    } else if !vars::is_id(name) {
        out.at(
            Code::PM_INVALID_NAME,
            path,
            line,
            format!("{what} {name:?}: a name starts with a letter or `_` and holds letters, digits, `_`, `-` and `.`"),
        );
    }
}

fn holder(h: &Holder, what: &str, allowed: &[&str], path: &str, out: &mut Diagnostics) {
    name(&h.name, what, h.line, path, out);
    let mut seen = BTreeSet::new();
    for p in &h.properties {
        if !allowed.contains(&p.name.as_str()) {
            out.at(
                Code::PM_PROPERTY_NOT_APPLIABLE,
                path,
                p.line,
                format!(
                    "{what} {:?} may not have property {:?} (it may have {})",
                    h.name,
                    p.name,
                    allowed.join(", ")
                ),
            );
            continue;
        }
        if !matches!(p.name.as_str(), "exports" | "imports") && !seen.insert(p.name.as_str()) {
            out.at(
                Code::PM_DUPLICATE_PROPERTY,
                path,
                p.line,
                format!("{what} {:?} has property {:?} twice", h.name, p.name),
            );
        }
        value(p, what, &h.name, path, out);
    }
}

fn value(p: &Property, what: &str, holder: &str, path: &str, out: &mut Diagnostics) {
    let value = p.trimmed();
    if value.is_empty() {
        out.at(
            Code::PM_EMPTY_PROPERTY_VALUE,
            path,
            p.line,
            format!("property {:?} of {what} {holder:?} has no value", p.name),
        );
        return;
    }
    match p.name.as_str() {
        "installer" if !vars::is_flex_id(value) => {
            out.at(
                Code::PM_INVALID_INSTALLER_NAME,
                path,
                p.line,
                format!("{value:?} is not an installer's name"),
            );
        }
        "children" | "facets" | "extends" => {
            for item in vars::list(value) {
                if item.is_empty() {
                    out.at(
                        Code::PM_EMPTY_REFERENCED_NAME,
                        path,
                        p.line,
                        format!(
                            "property {:?} of {what} {holder:?} has an empty item",
                            p.name
                        ),
                    );
                } else if !vars::is_id(item) {
                    let code = if p.name == "children" {
                        Code::PM_INVALID_CHILD_NAME
                    } else {
                        Code::PM_INVALID_NAME
                    };
                    out.at(
                        code,
                        path,
                        p.line,
                        format!("{item:?} in {:?} is not a component or facet name", p.name),
                    );
                }
            }
            if p.name == "extends" && what == "component" && vars::list(value).len() > 1 {
                out.at(
                    Code::PM_INVALID_NAME,
                    path,
                    p.line,
                    format!("component {holder:?} extends one component, not {value:?}"),
                );
            }
        }
        "exports" => {
            let (_, problems) = vars::exports(value);
            for problem in problems {
                let (code, message) = match problem {
                    ExportProblem::ComplexValue(entry) => (
                        Code::PM_INVALID_EXPORT_COMPLEX_VALUE,
                        format!(
                            "{entry:?}: a quoted value stands alone between `=` and the next comma"
                        ),
                    ),
                    ExportProblem::InvalidName(name) => (
                        Code::PM_INVALID_EXPORTED_VAR_NAME,
                        format!("{name:?} is not a variable name"),
                    ),
                    ExportProblem::External(name) => (
                        Code::PM_EXTERNAL_IS_KEYWORD_FOR_IMPORTS,
                        format!("{name:?}: `external` marks imports, not exports"),
                    ),
                    ExportProblem::EmptyName => (
                        Code::PM_EMPTY_VARIABLE_NAME,
                        "an exported variable has no name".to_owned(),
                    ),
                };
                out.at(code, path, p.line, message);
            }
        }
        "imports" => {
            let (_, problems) = vars::imports(value);
            for problem in problems {
                let (code, message) = match problem {
                    ImportProblem::EmptyName => (
                        Code::PM_EMPTY_VARIABLE_NAME,
                        "an imported variable has no name".to_owned(),
                    ),
                    ImportProblem::Incomplete(name) => (
                        Code::PM_INCOMPLETE_IMPORTED_VAR_NAME,
                        format!("{name:?}: an import is `Prefix.variable` or `Prefix.*`"),
                    ),
                    ImportProblem::Invalid(name) => (
                        Code::PM_INVALID_IMPORTED_VAR_NAME,
                        format!("{name:?} is not a variable name"),
                    ),
                };
                out.at(code, path, p.line, message);
            }
        }
        _ => {}
    }
}

fn instance(i: &InstanceBlock, path: &str, out: &mut Diagnostics) {
    if i.component.is_empty() {
        out.at(
            Code::PM_EMPTY_COMPONENT_NAME,
            path,
            i.line,
            "`instance of` needs a component",
        );
    } else if !vars::is_id(&i.component) {
        out.at(
            Code::PM_INVALID_NAME,
            path,
            i.line,
            format!("{:?} is not a component's name", i.component),
        );
    }
    let mut seen = BTreeSet::new();
    for p in &i.properties {
        if INSTANCE_RESERVED.contains(&p.name.as_str()) && !seen.insert(p.name.as_str()) {
            out.at(
                Code::PM_DUPLICATE_PROPERTY,
                path,
                p.line,
                format!(
                    "an instance of {:?} has property {:?} twice",
                    i.component, p.name
                ),
            );
        }
    }
    match i.properties.iter().find(|p| p.name == "name") {
        None => out.at(
            Code::PM_MISSING_INSTANCE_NAME,
            path,
            i.line,
            format!("this instance of {:?} has no `name`", i.component),
        ),
        Some(p) if !vars::is_flex_id(p.trimmed()) => out.at(
            Code::PM_INVALID_INSTANCE_NAME,
            path,
            p.line,
            format!(
                "{:?} is not an instance name (letters, digits, `_`, `-`, `.` and spaces)",
                p.trimmed()
            ),
        ),
        Some(_) => {}
    }
    if let Some(p) = i.properties.iter().find(|p| p.name == "count") {
        match valid_count(p.trimmed()) {
            Some(n) => {
                if n == 1 {
                    out.at(
                        Code::PM_USELESS_INSTANCE_COUNT,
                        path,
                        p.line,
                        "count 1 is the default",
                    );
                }
            }
            None => out.at(
                Code::PM_INVALID_INSTANCE_COUNT,
                path,
                p.line,
                format!(
                    "count {:?}: a whole number from 1 to {}",
                    p.trimmed(),
                    crate::instances::MAX_INSTANCES
                ),
            ),
        }
    }
    for child in &i.children {
        instance(child, path, out);
    }
}

/// The count of an instance block, when it reads (1 otherwise).
pub(crate) fn count(i: &InstanceBlock) -> u32 {
    i.properties
        .iter()
        .find(|p| p.name == "count")
        .and_then(|p| valid_count(p.trimmed()))
        .unwrap_or(1)
}

/// A count that reads: a whole number from 1 to [`crate::instances::MAX_INSTANCES`].
fn valid_count(text: &str) -> Option<u32> {
    text.parse::<u32>()
        .ok()
        .filter(|n| *n >= 1 && *n as usize <= crate::instances::MAX_INSTANCES)
}
