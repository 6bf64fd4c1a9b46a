//! The DSL of graph and instance files, read line by line as Roboconf reads it: one block
//! or one property a line, `{` on the declaration's line, `}` first on its own, `;` at the
//! end of properties and imports, `#` starting a comment anywhere. The parser keeps each
//! block's line, reports every problem it meets and recovers at the next line; it never
//! panics.

use crate::diagnostic::{Code, Diagnostics};

/// What a file holds, inferred from its blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Components or facets (imports allowed).
    Graph,
    /// Instances (imports allowed).
    Instances,
    /// Imports only.
    Aggregator,
    /// Comments and blank lines only.
    Empty,
    /// Instances beside components or facets: an error.
    Mixed,
}

impl FileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Graph => "graph",
            FileKind::Instances => "instances",
            FileKind::Aggregator => "aggregator",
            FileKind::Empty => "empty",
            FileKind::Mixed => "mixed",
        }
    }
}

/// A parsed file: its blocks in order.
#[derive(Debug, Clone, Default)]
pub struct File {
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone)]
pub enum Block {
    Import(Import),
    Component(Holder),
    Facet(Holder),
    Instance(InstanceBlock),
}

/// `import path;`: a path from the `graph/` or `instances/` folder.
#[derive(Debug, Clone)]
pub struct Import {
    pub path: String,
    pub line: u32,
}

/// A component or a facet.
#[derive(Debug, Clone)]
pub struct Holder {
    pub name: String,
    pub line: u32,
    pub properties: Vec<Property>,
}

/// `instance of Component { ... }`, with the instances nested in it.
#[derive(Debug, Clone)]
pub struct InstanceBlock {
    pub component: String,
    pub line: u32,
    pub properties: Vec<Property>,
    pub children: Vec<InstanceBlock>,
}

/// `name: value;`. The value is what stands between the colon and the final `;`, blanks
/// at its start dropped (those at its end count in instance names with `count`).
#[derive(Debug, Clone)]
pub struct Property {
    pub name: String,
    pub value: String,
    pub line: u32,
}

impl Property {
    /// The value without its surrounding blanks.
    pub fn trimmed(&self) -> &str {
        self.value.trim()
    }
}

impl File {
    pub fn kind(&self) -> FileKind {
        let holders = self
            .blocks
            .iter()
            .any(|b| matches!(b, Block::Component(_) | Block::Facet(_)));
        let instances = self.blocks.iter().any(|b| matches!(b, Block::Instance(_)));
        match (holders, instances) {
            (true, true) => FileKind::Mixed,
            (true, false) => FileKind::Graph,
            (false, true) => FileKind::Instances,
            (false, false) if self.blocks.is_empty() => FileKind::Empty,
            (false, false) => FileKind::Aggregator,
        }
    }

    pub fn imports(&self) -> impl Iterator<Item = &Import> {
        self.blocks.iter().filter_map(|b| match b {
            Block::Import(i) => Some(i),
            _ => None,
        })
    }
}

/// An open block while its lines are read.
enum Open {
    Component(Holder),
    Facet(Holder),
    Instance(InstanceBlock),
}

impl Open {
    fn line(&self) -> u32 {
        match self {
            Open::Component(h) | Open::Facet(h) => h.line,
            Open::Instance(i) => i.line,
        }
    }

    fn properties(&mut self) -> &mut Vec<Property> {
        match self {
            Open::Component(h) | Open::Facet(h) => &mut h.properties,
            Open::Instance(i) => &mut i.properties,
        }
    }

    fn describe(&self) -> String {
        match self {
            Open::Component(h) => format!("component {:?}", h.name),
            Open::Facet(h) => format!("facet {:?}", h.name),
            Open::Instance(i) => format!("instance of {:?}", i.component),
        }
    }
}

/// The text after a case-insensitive keyword followed by a blank, or `None`.
fn after_keyword<'a>(text: &'a str, keyword: &str) -> Option<&'a str> {
    let rest = crate::vars::strip_prefix_ci(text, keyword)?;
    rest.starts_with([' ', '\t']).then(|| rest.trim_start())
}

/// `instance of X ...`: the text after `of`.
fn after_instance_of(text: &str) -> Option<&str> {
    after_keyword(after_keyword(text, "instance")?, "of")
}

/// The part of a line before its comment. The search for `#` ignores quotes, as
/// Roboconf's does.
fn uncommented(line: &str) -> &str {
    line.split_once('#').map_or(line, |(code, _)| code)
}

/// Whether a declaration without its `{` looks like one: a name and nothing else.
fn looks_like_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Reads a file. `file` names it in diagnostics.
pub fn parse(text: &str, file: &str, out: &mut Diagnostics) -> File {
    let mut parsed = File::default();
    let mut stack: Vec<Open> = Vec::new();
    let mut last_line = 0u32;
    for (index, raw) in text.split('\n').enumerate() {
        let line = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let raw = raw.trim_end_matches('\r');
        if !raw.trim().is_empty() {
            last_line = line;
        }
        let code = uncommented(raw).trim();
        if code.is_empty() {
            continue;
        }
        match stack.last_mut() {
            None => top_level(code, file, line, &mut parsed, &mut stack, out),
            Some(open) => {
                if let Some(rest) = code.strip_prefix('}') {
                    if !rest.trim().is_empty() {
                        out.at(
                            Code::P_C_C_BRACKET_EXTRA_CHARACTERS,
                            file,
                            line,
                            format!(
                                "only a comment may follow the closing brace, not {:?}",
                                rest.trim()
                            ),
                        );
                    }
                    close(&mut stack, &mut parsed);
                } else if let (Open::Instance(_), Some(rest)) = (&*open, after_instance_of(code)) {
                    open_instance(rest, file, line, &mut stack, out);
                } else if let Some(property) = property(code, file, line, out) {
                    open.properties().push(property);
                } else {
                    let (code_, what) = match open {
                        Open::Instance(_) => (
                            Code::P_INVALID_PROPERTY_OR_INSTANCE,
                            "a property (`name: value;`), an `instance of` block or `}`",
                        ),
                        _ => (
                            Code::P_INVALID_PROPERTY,
                            "a property (`name: value;`) or `}`",
                        ),
                    };
                    out.at(
                        code_,
                        file,
                        line,
                        format!("expected {what} in {}, found {code:?}", open.describe()),
                    );
                }
            }
        }
    }
    if let Some(open) = stack.last() {
        out.at(
            Code::P_C_C_BRACKET_MISSING,
            file,
            last_line.max(1),
            format!(
                "the {} opened on line {} is not closed by `}}`",
                open.describe(),
                open.line()
            ),
        );
        while !stack.is_empty() {
            close(&mut stack, &mut parsed);
        }
    }
    parsed
}

/// `instance of X {`: opens the instance block.
fn open_instance(rest: &str, file: &str, line: u32, stack: &mut Vec<Open>, out: &mut Diagnostics) {
    if let Some(component) = declaration(rest, "instance of", file, line, out) {
        stack.push(Open::Instance(InstanceBlock {
            component,
            line,
            properties: Vec::new(),
            children: Vec::new(),
        }));
    }
}

fn close(stack: &mut Vec<Open>, parsed: &mut File) {
    let Some(open) = stack.pop() else { return };
    match (open, stack.last_mut()) {
        (Open::Instance(child), Some(Open::Instance(parent))) => parent.children.push(child),
        (Open::Instance(i), _) => parsed.blocks.push(Block::Instance(i)),
        (Open::Component(h), _) => parsed.blocks.push(Block::Component(h)),
        (Open::Facet(h), _) => parsed.blocks.push(Block::Facet(h)),
    }
}

fn top_level(
    code: &str,
    file: &str,
    line: u32,
    parsed: &mut File,
    stack: &mut Vec<Open>,
    out: &mut Diagnostics,
) {
    if let Some(rest) = after_keyword(code, "import") {
        match rest.split_once(';') {
            None => out.at(
                Code::P_IMPORT_ENDS_WITH_SEMI_COLON,
                file,
                line,
                format!("the import of {rest:?} must end with `;`"),
            ),
            Some((path, after)) => {
                if !after.trim().is_empty() {
                    out.at(
                        Code::P_ONE_BLOCK_PER_LINE,
                        file,
                        line,
                        format!("one block a line: {:?} follows the import", after.trim()),
                    );
                }
                parsed.blocks.push(Block::Import(Import {
                    path: path.trim().to_owned(),
                    line,
                }));
            }
        }
    } else if let Some(rest) = after_keyword(code, "facet") {
        if let Some(name) = declaration(rest, "facet", file, line, out) {
            stack.push(Open::Facet(Holder {
                name,
                line,
                properties: Vec::new(),
            }));
        }
    } else if let Some(rest) = after_instance_of(code) {
        open_instance(rest, file, line, stack, out);
    } else if code.contains('{') || looks_like_name(code) {
        if let Some(name) = declaration(code, "component", file, line, out) {
            stack.push(Open::Component(Holder {
                name,
                line,
                properties: Vec::new(),
            }));
        }
    } else {
        out.at(
            Code::P_UNRECOGNIZED_BLOCK,
            file,
            line,
            format!("expected an import, a component, a facet or an instance, found {code:?}"),
        );
    }
}

/// The name of a declaration (`Name {`). Without its `{`, a declaration that is only a
/// name is reported and opened all the same, so that its properties and `}` read as
/// they were meant.
fn declaration(
    text: &str,
    what: &str,
    file: &str,
    line: u32,
    out: &mut Diagnostics,
) -> Option<String> {
    match text.split_once('{') {
        Some((name, rest)) => {
            if !rest.trim().is_empty() {
                out.at(
                    Code::P_O_C_BRACKET_EXTRA_CHARACTERS,
                    file,
                    line,
                    format!(
                        "nothing but a comment may follow the `{{` of {what} {:?}: found {:?}",
                        name.trim(),
                        rest.trim()
                    ),
                );
            }
            Some(name.trim().to_owned())
        }
        None if looks_like_name(text) => {
            out.at(
                Code::P_O_C_BRACKET_MISSING,
                file,
                line,
                format!("{what} {text:?} must be followed by `{{` on the same line"),
            );
            Some(text.to_owned())
        }
        None => {
            out.at(
                Code::P_UNRECOGNIZED_BLOCK,
                file,
                line,
                format!("{what} {text:?} is not a name followed by `{{`"),
            );
            None
        }
    }
}

/// `name: value;`, or `None` when the line is no property at all.
fn property(code: &str, file: &str, line: u32, out: &mut Diagnostics) -> Option<Property> {
    let (name, value) = code.split_once(':')?;
    let name = name.trim_end();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    let value = value.trim_start();
    // `;` inside double quotes belongs to the value.
    let mut quoted = false;
    let mut ends = Vec::new();
    for (at, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => ends.push(at),
            _ => {}
        }
    }
    let value = match ends.first() {
        None => {
            out.at(
                Code::P_PROPERTY_ENDS_WITH_SEMI_COLON,
                file,
                line,
                format!("property {name:?} must end with `;`"),
            );
            value
        }
        Some(&end) => {
            if ends.len() > 1 || !value[end + 1..].trim().is_empty() {
                out.at(
                    Code::P_ONE_BLOCK_PER_LINE,
                    file,
                    line,
                    format!(
                        "one property a line: {:?} follows property {name:?}",
                        value[end + 1..].trim()
                    ),
                );
            }
            &value[..end]
        }
    };
    Some(Property {
        name: name.to_owned(),
        value: value.to_owned(),
        line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(text: &str) -> Vec<(String, Option<u32>)> {
        let mut out = Diagnostics::default();
        parse(text, "f", &mut out);
        out.0
            .into_iter()
            .map(|d| (d.code.to_string(), d.line))
            .collect()
    }

    #[test]
    fn nested_instances_and_keywords_in_any_case() {
        let mut out = Diagnostics::default();
        let file = parse(
            "insTance of VM {\n name: vm;\n  instance OF Tomcat {\n   name: t; # c\n  }\n}\n",
            "f",
            &mut out,
        );
        assert!(out.0.is_empty(), "{:?}", out.0);
        let Block::Instance(vm) = &file.blocks[0] else {
            panic!("{file:?}")
        };
        assert_eq!(vm.children[0].component, "Tomcat");
        assert_eq!(vm.children[0].properties[0].trimmed(), "t");
        assert_eq!(file.kind(), FileKind::Instances);
    }

    #[test]
    fn quoted_semicolons_belong_to_the_value() {
        let mut out = Diagnostics::default();
        let file = parse("A {\n exports: x = \"a;b\";\n}\n", "f", &mut out);
        assert!(out.0.is_empty(), "{:?}", out.0);
        let Block::Component(a) = &file.blocks[0] else {
            panic!()
        };
        assert_eq!(a.properties[0].value, "x = \"a;b\"");
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        assert_eq!(
            codes("A\n installer: x\n} extra\nimport b.graph\nB {\n"),
            vec![
                ("P_O_C_BRACKET_MISSING".to_owned(), Some(1)),
                ("P_PROPERTY_ENDS_WITH_SEMI_COLON".to_owned(), Some(2)),
                ("P_C_C_BRACKET_EXTRA_CHARACTERS".to_owned(), Some(3)),
                ("P_IMPORT_ENDS_WITH_SEMI_COLON".to_owned(), Some(4)),
                ("P_C_C_BRACKET_MISSING".to_owned(), Some(5)),
            ]
        );
    }
}
