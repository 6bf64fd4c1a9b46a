//! The command language (`commands/*.commands`): one instruction a line (`\` continues
//! it), keywords in any case, `#` lines are comments, `$(NAME)` variables. Parsing gives
//! instructions with their lines (`CMD_` codes for what does not read); [`check`] runs
//! a file against the application's instances as they would be after each instruction.

use std::collections::{BTreeMap, BTreeSet};

use crate::diagnostic::{Code, Diagnostics};
use crate::graph::Graph;
use crate::vars;

/// The stable states an instance can be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    NotDeployed,
    DeployedStopped,
    DeployedStarted,
}

/// What a bulk instruction or a delete applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// An instance and its descendants.
    Path(String),
    /// Every instance of a component.
    Component(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bulk {
    DeployAndStart,
    Stop,
    Undeploy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    Define {
        name: String,
        value: String,
    },
    Create {
        component: String,
        name: String,
        parent: Option<String>,
    },
    Replicate {
        path: String,
        name: String,
    },
    Rename {
        path: String,
        name: String,
    },
    Associate {
        path: String,
        target: String,
    },
    ChangeState {
        path: String,
        state: Wanted,
    },
    Bulk {
        action: Bulk,
        targets: Targets,
    },
    Delete {
        targets: Targets,
    },
    Write {
        append: bool,
        text: String,
        file: String,
    },
    Execute {
        command: String,
    },
    Email {
        to: Vec<String>,
        message: String,
    },
}

/// An instruction and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub instruction: Instruction,
    pub line: u32,
}

/// The variables Roboconf makes without a `define`.
const PREDEFINED: [&str; 6] = [
    "NANO_TIME",
    "MILLI_TIME",
    "UUID",
    "SMART_INDEX",
    "FORMATTED_TIME",
    "EXISTING_INDEX",
];

/// `text` split on a case-insensitive keyword standing as a word: before, after.
fn split_word<'a>(text: &'a str, word: &str) -> Option<(&'a str, &'a str)> {
    // Padded with a blank on each side, the keyword's leading blank in the padded text
    // sits where the keyword starts in `text`.
    let padded = format!(" {} ", text.to_ascii_lowercase());
    let at = padded.find(&format!(" {word} "))?;
    let before = text.get(..at)?;
    let after = text.get(at + word.len()..)?;
    Some((before.trim(), after.trim()))
}

/// The lines of a file, `\` continuations joined, comments and blanks dropped.
fn logical_lines(text: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(u32, String)> = None;
    for (index, raw) in text.split('\n').enumerate() {
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let raw = raw.trim_end_matches('\r');
        let (start, mut joined) = pending.take().unwrap_or((number, String::new()));
        let trimmed = raw.trim();
        if joined.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                joined.push_str(head.trim());
                joined.push(' ');
                pending = Some((start, joined));
            }
            None => {
                joined.push_str(trimmed);
                out.push((start, joined.trim().to_owned()));
            }
        }
    }
    if let Some((start, joined)) = pending {
        out.push((start, joined.trim().to_owned()));
    }
    out
}

fn state(text: &str) -> Result<Wanted, Code> {
    let normal = text
        .split_whitespace()
        .map(|w| {
            if w.eq_ignore_ascii_case("and") {
                "_"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join("")
        .to_ascii_uppercase();
    match normal.as_str() {
        "NOT_DEPLOYED" => Ok(Wanted::NotDeployed),
        "DEPLOYED_STOPPED" => Ok(Wanted::DeployedStopped),
        "DEPLOYED_STARTED" => Ok(Wanted::DeployedStarted),
        "DEPLOYING"
        | "STARTING"
        | "STOPPING"
        | "UNDEPLOYING"
        | "UNRESOLVED"
        | "PROBLEM"
        | "WAITING_FOR_ANCESTOR" => Err(Code::CMD_INSTABLE_INSTANCE_STATUS),
        _ => Err(Code::CMD_INVALID_INSTANCE_STATUS),
    }
}

fn targets(text: &str) -> Targets {
    match vars::strip_prefix_ci(text, "instances of ") {
        Some(component) => Targets::Component(component.trim().to_owned()),
        None => Targets::Path(text.trim().to_owned()),
    }
}

/// Reads a commands file.
pub fn parse(text: &str, file: &str, out: &mut Diagnostics) -> Vec<Line> {
    let mut lines = Vec::new();
    for (line, text) in logical_lines(text) {
        match instruction(&text) {
            Ok(instruction) => lines.push(Line { instruction, line }),
            Err((code, message)) => out.at(code, file, line, message),
        }
    }
    lines
}

type Problem = (Code, String);

fn instruction(text: &str) -> Result<Instruction, Problem> {
    let (first, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let rest = rest.trim();
    let invalid = |what: &str| {
        (
            Code::CMD_INVALID_SYNTAX,
            format!("expected {what}, found {text:?}"),
        )
    };
    match first.to_ascii_lowercase().as_str() {
        "define" => {
            let (name, value) = rest
                .split_once('=')
                .ok_or_else(|| invalid("`define NAME = VALUE`"))?;
            let name = name.trim();
            if name.is_empty() {
                return Err((
                    Code::CMD_EMPTY_VARIABLE_NAME,
                    "`define` needs a variable name".to_owned(),
                ));
            }
            let value = value.trim();
            if value.contains("$(SMART_INDEX)") && value.contains("$(EXISTING_INDEX") {
                return Err((
                    Code::CMD_NO_MIX_FOR_PATTERNS,
                    "one definition uses $(SMART_INDEX) or $(EXISTING_INDEX ...), not both"
                        .to_owned(),
                ));
            }
            if let Some(at) = value.find("$(EXISTING_INDEX") {
                let inner = value[at + 2..].split_once(')').map_or("", |(i, _)| i);
                let words: Vec<&str> = inner.split_whitespace().skip(1).collect();
                let ok = match words[..] {
                    [m] => m.eq_ignore_ascii_case("MIN") || m.eq_ignore_ascii_case("MAX"),
                    [m, op, n] => {
                        (m.eq_ignore_ascii_case("MIN") || m.eq_ignore_ascii_case("MAX"))
                            && matches!(op, "<" | ">")
                            && n.parse::<u32>().is_ok()
                    }
                    _ => false,
                };
                if !ok {
                    return Err((
                        Code::CMD_INVALID_INDEX_PATTERN,
                        format!("{inner:?}: $(EXISTING_INDEX MIN|MAX [< or > N])"),
                    ));
                }
            }
            Ok(Instruction::Define {
                name: name.to_owned(),
                value: value.to_owned(),
            })
        }
        "create" => {
            let (component, rest) = match split_word(rest, "as") {
                Some(parts) => parts,
                None if rest.is_empty() => {
                    return Err((
                        Code::CMD_MISSING_COMPONENT_NAME,
                        "`create` needs a component".to_owned(),
                    ));
                }
                None => {
                    return Err((
                        Code::CMD_MISSING_INSTANCE_NAME,
                        "`create COMPONENT as NAME`: the name is missing".to_owned(),
                    ));
                }
            };
            if component.is_empty() {
                return Err((
                    Code::CMD_MISSING_COMPONENT_NAME,
                    "`create` needs a component".to_owned(),
                ));
            }
            let (name, parent) = match split_word(rest, "under") {
                Some((name, parent)) => (name, Some(parent.to_owned())),
                None => (rest, None),
            };
            if name.is_empty() {
                return Err((
                    Code::CMD_MISSING_INSTANCE_NAME,
                    "`create COMPONENT as NAME`: the name is missing".to_owned(),
                ));
            }
            if parent.as_deref() == Some("") {
                return Err((
                    Code::CMD_MISSING_PARENT_INSTANCE,
                    "`under` needs the parent's path".to_owned(),
                ));
            }
            Ok(Instruction::Create {
                component: component.to_owned(),
                name: name.to_owned(),
                parent,
            })
        }
        "replicate" | "rename" => {
            let (path, name) = split_word(rest, "as")
                .ok_or_else(|| invalid(&format!("`{first} /PATH as NAME`")))?;
            if name.is_empty() {
                return Err((
                    Code::CMD_MISSING_INSTANCE_NAME,
                    format!("`{first}` needs a new name"),
                ));
            }
            let (path, name) = (path.to_owned(), name.to_owned());
            Ok(if first.eq_ignore_ascii_case("replicate") {
                Instruction::Replicate { path, name }
            } else {
                Instruction::Rename { path, name }
            })
        }
        "associate" => {
            let (path, target) =
                split_word(rest, "with").ok_or_else(|| invalid("`associate /PATH with TARGET`"))?;
            if target.is_empty() {
                return Err((
                    Code::CMD_INVALID_TARGET_ID,
                    "`associate` needs a target id".to_owned(),
                ));
            }
            Ok(Instruction::Associate {
                path: path.to_owned(),
                target: target.to_owned(),
            })
        }
        "change" => {
            let rest = vars::strip_prefix_ci(rest, "status of ")
                .ok_or_else(|| invalid("`change status of /PATH to STATE`"))?;
            let (path, wanted) = split_word(rest, "to")
                .ok_or_else(|| invalid("`change status of /PATH to STATE`"))?;
            let state = state(wanted).map_err(|code| (code, format!("{wanted:?} is not a state to ask for (NOT_DEPLOYED, DEPLOYED_STOPPED, DEPLOYED_STARTED)")))?;
            Ok(Instruction::ChangeState {
                path: path.to_owned(),
                state,
            })
        }
        "deploy" | "stop" | "undeploy" => {
            let (action, rest) = match first.to_ascii_lowercase().as_str() {
                "deploy" => (
                    Bulk::DeployAndStart,
                    vars::strip_prefix_ci(rest, "and start all ")
                        .ok_or_else(|| invalid("`deploy and start all TARGET`"))?,
                ),
                "stop" => (
                    Bulk::Stop,
                    vars::strip_prefix_ci(rest, "all ")
                        .ok_or_else(|| invalid("`stop all TARGET`"))?,
                ),
                _ => (
                    Bulk::Undeploy,
                    vars::strip_prefix_ci(rest, "all ")
                        .ok_or_else(|| invalid("`undeploy all TARGET`"))?,
                ),
            };
            Ok(Instruction::Bulk {
                action,
                targets: targets(rest),
            })
        }
        "delete" => {
            let rest = vars::strip_prefix_ci(rest, "all ").unwrap_or(rest);
            if rest.is_empty() {
                return Err(invalid(
                    "`delete /PATH` or `delete all instances of COMPONENT`",
                ));
            }
            Ok(Instruction::Delete {
                targets: targets(rest),
            })
        }
        "write" | "append" => {
            let (text_part, file) = if let Some(file) = vars::strip_prefix_ci(rest, "into ") {
                ("", file)
            } else {
                split_word(rest, "into")
                    .ok_or_else(|| invalid(&format!("`{first} TEXT into FILE`")))?
            };
            if file.trim().is_empty() {
                return Err((
                    Code::CMD_MISSING_TARGET_FILE,
                    format!("`{first}` needs a file after `into`"),
                ));
            }
            Ok(Instruction::Write {
                append: first.eq_ignore_ascii_case("append"),
                text: text_part.to_owned(),
                file: file.trim().to_owned(),
            })
        }
        "execute" => {
            if rest.is_empty() {
                return Err((
                    Code::CMD_MISSING_COMMAND_NAME,
                    "`execute` needs a commands file's name".to_owned(),
                ));
            }
            Ok(Instruction::Execute {
                command: rest.strip_suffix(".commands").unwrap_or(rest).to_owned(),
            })
        }
        "email" => {
            let (to, message) = if let Some(message) = vars::strip_prefix_ci(rest, "with ") {
                ("", message)
            } else if rest.eq_ignore_ascii_case("with") {
                ("", "")
            } else {
                split_word(rest, "with").unwrap_or((rest, ""))
            };
            if message.trim().is_empty() {
                return Err((
                    Code::CMD_EMAIL_NO_MESSAGE,
                    "`email [TO] with MESSAGE`: the message is missing".to_owned(),
                ));
            }
            Ok(Instruction::Email {
                to: vars::list(to)
                    .into_iter()
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect(),
                message: message.replace("@n@", "\n"),
            })
        }
        _ => Err((
            Code::CMD_UNRECOGNIZED_INSTRUCTION,
            format!(
                "{first:?} is no instruction (define, create, replicate, rename, associate, change status of, deploy and start all, stop all, undeploy all, delete, write, append, execute, email)"
            ),
        )),
    }
}

/// Whether a text still holds a variable (its value known only when the command runs).
fn dynamic(text: &str) -> bool {
    text.contains("$(")
}

/// The instances as the commands go: path → component.
type Paths = BTreeMap<String, String>;

/// Checks each commands file of an application against its graph and its instances
/// (`instances`: path → component): variables defined before use, components that
/// exist, instances that exist when they are named, `execute` of files that exist and do
/// not loop. `files`: name (without `.commands`) → text.
pub fn check(
    files: &BTreeMap<String, String>,
    graph: &Graph,
    instances: &Paths,
    out: &mut Diagnostics,
) {
    let mut parsed: BTreeMap<&str, Vec<Line>> = BTreeMap::new();
    for (name, text) in files {
        let shown = format!("commands/{name}.commands");
        let lines = parse(text, &shown, out);
        if lines.is_empty()
            && !out
                .0
                .iter()
                .any(|d| d.file.as_deref() == Some(shown.as_str()))
        {
            out.push(crate::Diagnostic::new(
                Code::CMD_NO_INSTRUCTION,
                Some(&shown),
                None,
                "the file holds no instruction",
            ));
        }
        parsed.insert(name, lines);
    }
    for (name, lines) in &parsed {
        let shown = format!("commands/{name}.commands");
        let mut paths = instances.clone();
        let mut defined: BTreeSet<String> = PREDEFINED.iter().map(|s| (*s).to_owned()).collect();
        for line in lines {
            against(
                line,
                &shown,
                graph,
                &mut paths,
                &mut defined,
                &parsed,
                name,
                out,
            );
        }
    }
}

/// The variables a text uses: `$(NAME ...)`'s first word.
fn used(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("$(") {
        let after = &rest[at + 2..];
        let Some((inner, next)) = after.split_once(')') else {
            break;
        };
        out.push(inner.split_whitespace().next().unwrap_or(""));
        rest = next;
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn against(
    line: &Line,
    file: &str,
    graph: &Graph,
    paths: &mut Paths,
    defined: &mut BTreeSet<String>,
    parsed: &BTreeMap<&str, Vec<Line>>,
    name: &str,
    out: &mut Diagnostics,
) {
    let at = line.line;
    let texts: Vec<&str> = match &line.instruction {
        Instruction::Define { value, .. } => vec![value],
        Instruction::Create {
            component,
            name,
            parent,
        } => {
            let mut v = vec![component.as_str(), name.as_str()];
            v.extend(parent.as_deref());
            v
        }
        Instruction::Replicate { path, name } | Instruction::Rename { path, name } => {
            vec![path, name]
        }
        Instruction::Associate { path, target } => vec![path, target],
        Instruction::ChangeState { path, .. } => vec![path],
        Instruction::Bulk { targets, .. } | Instruction::Delete { targets } => match targets {
            Targets::Path(p) | Targets::Component(p) => vec![p],
        },
        Instruction::Write { text, file, .. } => vec![text, file],
        Instruction::Execute { command } => vec![command],
        Instruction::Email { message, .. } => vec![message],
    };
    for text in &texts {
        for variable in used(text) {
            if !defined.contains(variable) {
                out.at(
                    Code::CMD_UNRESOLVED_VARIABLE,
                    file,
                    at,
                    format!("$({variable}) is not defined before this line"),
                );
            }
        }
    }
    let exists = |paths: &Paths, path: &str, out: &mut Diagnostics| -> Option<String> {
        if dynamic(path) {
            return None;
        }
        match paths.get(path) {
            Some(c) => Some(c.clone()),
            None => {
                out.at(
                    Code::CMD_NO_MATCHING_INSTANCE,
                    file,
                    at,
                    format!("no instance {path:?}"),
                );
                None
            }
        }
    };
    let valid_name = |name: &str, out: &mut Diagnostics| -> bool {
        if dynamic(name) || vars::is_flex_id(name) {
            return true;
        }
        out.at(
            Code::CMD_INVALID_INSTANCE_NAME,
            file,
            at,
            format!("{name:?} is not an instance name"),
        );
        false
    };
    match &line.instruction {
        Instruction::Define { name, .. } => {
            defined.insert(name.clone());
        }
        Instruction::Create {
            component,
            name,
            parent,
        } => {
            if !dynamic(component) && !graph.components.contains_key(component) {
                out.at(
                    Code::CMD_INEXISTING_COMPONENT,
                    file,
                    at,
                    format!("no component {component:?}"),
                );
                return;
            }
            if !valid_name(name, out) {
                return;
            }
            let parent_component = match parent {
                None => None,
                Some(p) if dynamic(p) => return,
                Some(p) => match paths.get(p) {
                    Some(c) => Some((p.clone(), c.clone())),
                    None => {
                        out.at(
                            Code::CMD_MISSING_PARENT_INSTANCE,
                            file,
                            at,
                            format!("no parent instance {p:?}"),
                        );
                        return;
                    }
                },
            };
            if dynamic(component) {
                return;
            }
            let roots = graph.roots();
            let path = match &parent_component {
                None => {
                    if !roots.contains(&component.as_str()) {
                        out.at(
                            Code::CMD_NOT_A_ROOT_INSTANCE,
                            file,
                            at,
                            format!("an instance of {component:?} needs a parent: it is no root component"),
                        );
                        return;
                    }
                    format!("/{name}")
                }
                Some((p, c)) => {
                    if roots.contains(&component.as_str())
                        && !graph.children(c).contains(component.as_str())
                    {
                        out.at(
                            Code::CMD_CANNOT_HAVE_ANY_PARENT,
                            file,
                            at,
                            format!(
                                "{component:?} is a root component: its instances have no parent"
                            ),
                        );
                        return;
                    }
                    if !graph.children(c).contains(component.as_str()) {
                        out.at(
                            Code::CMD_NOT_AN_ACCEPTABLE_PARENT,
                            file,
                            at,
                            format!(
                                "an instance of {component:?} may not be deployed on {p:?} ({c})"
                            ),
                        );
                        return;
                    }
                    format!("{p}/{name}")
                }
            };
            if dynamic(&path) {
                return;
            }
            if paths.contains_key(&path) {
                out.at(
                    Code::CMD_CONFLICTING_INSTANCE_NAME,
                    file,
                    at,
                    format!("instance {path:?} exists already"),
                );
                return;
            }
            paths.insert(path, component.clone());
        }
        Instruction::Replicate { path, name } => {
            let Some(component) = exists(paths, path, out) else {
                return;
            };
            if path.matches('/').count() != 1 {
                out.at(
                    Code::CMD_NOT_A_ROOT_INSTANCE,
                    file,
                    at,
                    format!("only root instances are replicated, not {path:?}"),
                );
                return;
            }
            if !valid_name(name, out) || dynamic(name) {
                return;
            }
            let copy = format!("/{name}");
            if paths.contains_key(&copy) {
                out.at(
                    Code::CMD_CONFLICTING_INSTANCE_NAME,
                    file,
                    at,
                    format!("instance {copy:?} exists already"),
                );
                return;
            }
            let below: Vec<(String, String)> = paths
                .iter()
                .filter_map(|(p, c)| {
                    p.strip_prefix(&format!("{path}/"))
                        .map(|rest| (format!("{copy}/{rest}"), c.clone()))
                })
                .collect();
            paths.insert(copy, component);
            paths.extend(below);
        }
        Instruction::Rename { path, name } => {
            if exists(paths, path, out).is_none() || !valid_name(name, out) || dynamic(name) {
                return;
            }
            let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
            let renamed = format!("{parent}/{name}");
            if paths.contains_key(&renamed) {
                out.at(
                    Code::CMD_CONFLICTING_INSTANCE_NAME,
                    file,
                    at,
                    format!("instance {renamed:?} exists already"),
                );
                return;
            }
            let moved: Vec<(String, String)> = paths
                .iter()
                .filter(|(p, _)| *p == path || p.starts_with(&format!("{path}/")))
                .map(|(p, c)| (format!("{renamed}{}", &p[path.len()..]), c.clone()))
                .collect();
            paths.retain(|p, _| !(p == path || p.starts_with(&format!("{path}/"))));
            paths.extend(moved);
        }
        Instruction::Associate { path, .. } => {
            if let Some(component) = exists(paths, path, out)
                && !graph
                    .installer(&component)
                    .is_some_and(|i| i.eq_ignore_ascii_case("target"))
            {
                out.at(
                    Code::CMD_NOT_A_SCOPED_INSTANCE,
                    file,
                    at,
                    format!("{path:?} is no machine (its installer is not `target`)"),
                );
            }
        }
        Instruction::ChangeState { path, .. } => {
            exists(paths, path, out);
        }
        Instruction::Bulk { targets, .. } | Instruction::Delete { targets } => match targets {
            Targets::Path(p) => {
                if exists(paths, p, out).is_some()
                    && matches!(line.instruction, Instruction::Delete { .. })
                {
                    paths.retain(|q, _| !(q == p || q.starts_with(&format!("{p}/"))));
                }
            }
            Targets::Component(c) => {
                if !dynamic(c) && !graph.components.contains_key(c) {
                    out.at(
                        Code::CMD_INEXISTING_COMPONENT,
                        file,
                        at,
                        format!("no component {c:?}"),
                    );
                }
            }
        },
        Instruction::Write { .. } | Instruction::Email { .. } => {}
        Instruction::Execute { command } => {
            if dynamic(command) {
                return;
            }
            if command == name {
                out.at(
                    Code::CMD_LOOPING_COMMAND,
                    file,
                    at,
                    format!("{name} executes itself"),
                );
            } else if !parsed.contains_key(command.as_str()) {
                out.at(
                    Code::CMD_INEXISTING_COMMAND,
                    file,
                    at,
                    format!("no commands file commands/{command}.commands"),
                );
            } else if reaches(parsed, command, name) {
                out.at(
                    Code::CMD_NASTY_LOOPING_COMMAND,
                    file,
                    at,
                    format!(
                        "{command} executes {name} again, directly or not: the commands would loop"
                    ),
                );
            }
        }
    }
}

/// Whether executing `from` executes `to`, through any chain of `execute`.
fn reaches(parsed: &BTreeMap<&str, Vec<Line>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut pending = vec![from.to_owned()];
    while let Some(file) = pending.pop() {
        if !seen.insert(file.clone()) {
            continue;
        }
        for line in parsed.get(file.as_str()).into_iter().flatten() {
            if let Instruction::Execute { command } = &line.instruction {
                if command == to {
                    return true;
                }
                pending.push(command.clone());
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<Instruction, Code> {
        instruction(text).map_err(|(c, _)| c)
    }

    #[test]
    fn instructions_read_in_any_case() {
        assert_eq!(
            one("CREATE Tomcat AS t 1 UNDER /vm 1"),
            Ok(Instruction::Create {
                component: "Tomcat".into(),
                name: "t 1".into(),
                parent: Some("/vm 1".into())
            })
        );
        assert_eq!(
            one("change status of /vm/t to DEPLOYED and STARTED"),
            Ok(Instruction::ChangeState {
                path: "/vm/t".into(),
                state: Wanted::DeployedStarted
            })
        );
        assert_eq!(
            one("Deploy and start all instances of VM"),
            Ok(Instruction::Bulk {
                action: Bulk::DeployAndStart,
                targets: Targets::Component("VM".into())
            })
        );
        assert_eq!(
            one("write into /tmp/x"),
            Ok(Instruction::Write {
                append: false,
                text: String::new(),
                file: "/tmp/x".into()
            })
        );
        assert_eq!(
            one("execute scale.commands"),
            Ok(Instruction::Execute {
                command: "scale".into()
            })
        );
    }

    #[test]
    fn what_does_not_read() {
        assert_eq!(one("launch /vm"), Err(Code::CMD_UNRECOGNIZED_INSTRUCTION));
        assert_eq!(
            one("change status of /vm to STARTING"),
            Err(Code::CMD_INSTABLE_INSTANCE_STATUS)
        );
        assert_eq!(
            one("change status of /vm to UP"),
            Err(Code::CMD_INVALID_INSTANCE_STATUS)
        );
        assert_eq!(one("email a@b.c with "), Err(Code::CMD_EMAIL_NO_MESSAGE));
        assert_eq!(one("define = 3"), Err(Code::CMD_EMPTY_VARIABLE_NAME));
        assert_eq!(
            one("define x = vm $(EXISTING_INDEX MIDDLE)"),
            Err(Code::CMD_INVALID_INDEX_PATTERN)
        );
        assert_eq!(
            one("define x = $(SMART_INDEX) $(EXISTING_INDEX MIN)"),
            Err(Code::CMD_NO_MIX_FOR_PATTERNS)
        );
        assert_eq!(one("create VM as"), Err(Code::CMD_MISSING_INSTANCE_NAME));
        assert_eq!(
            one("append some text into "),
            Err(Code::CMD_MISSING_TARGET_FILE)
        );
        assert_eq!(one("rename /vm"), Err(Code::CMD_INVALID_SYNTAX));
        assert_eq!(one("execute"), Err(Code::CMD_MISSING_COMMAND_NAME));
    }

    #[test]
    fn continued_lines_start_where_they_start() {
        let mut out = Diagnostics::default();
        let lines = parse(
            "# c\n\ncreate VM \\\n  as vm 1\nstop all /vm 1\n",
            "f",
            &mut out,
        );
        assert!(out.0.is_empty());
        assert_eq!(lines.iter().map(|l| l.line).collect::<Vec<_>>(), vec![3, 5]);
    }
}
