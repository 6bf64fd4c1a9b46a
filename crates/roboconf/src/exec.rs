//! Running a commands file (`commands/NAME.commands`) against a deployed application:
//! each instruction changes the master's model ([`Deployment`]) as Roboconf's deployment
//! manager changes its own; the partitions then bring the instances about. Pure: the time
//! and the random identifiers `$(NANO_TIME)` and `$(UUID)` come from a [`Context`].
//!
//! Grove runs no instruction that would act on the master's host (`write`, `append`,
//! `email`): they are refused, naming the file and line, before anything changes.

use std::collections::BTreeMap;

use crate::commands::{self, Bulk, Instruction, Line, Targets};
use crate::deploy::{DeployError, Deployment};
use crate::graph::Graph;
use crate::lifecycle::Wanted;

/// How deep `execute` may nest: files calling each other are refused by the checks, this
/// bounds what slipped through.
const MAX_DEPTH: usize = 16;

/// Why a commands file did not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("commands/{file}.commands, line {line}: {message}")]
pub struct CommandError {
    pub file: String,
    pub line: u32,
    pub message: String,
}

/// What the commands see of the world.
pub trait Context {
    /// Nanoseconds since the epoch.
    fn nanos(&self) -> u128;
    /// A random identifier.
    fn uuid(&self) -> String;
}

/// Runs commands file `name` (from `files`: name → text) on `deployment`. On an error
/// the deployment may hold the instructions before it: the caller keeps it or not.
pub fn run(
    name: &str,
    files: &BTreeMap<String, String>,
    graph: &Graph,
    deployment: &mut Deployment,
    context: &dyn Context,
) -> Result<usize, CommandError> {
    run_file(name, files, graph, deployment, context, 0)
}

fn run_file(
    name: &str,
    files: &BTreeMap<String, String>,
    graph: &Graph,
    deployment: &mut Deployment,
    context: &dyn Context,
    depth: usize,
) -> Result<usize, CommandError> {
    let error = |line: u32, message: String| CommandError {
        file: name.to_owned(),
        line,
        message,
    };
    let text = files
        .get(name)
        .ok_or_else(|| error(0, format!("no commands file {name:?}")))?;
    if depth > MAX_DEPTH {
        return Err(error(
            0,
            format!("`execute` nests deeper than {MAX_DEPTH} files"),
        ));
    }
    let mut diagnostics = crate::Diagnostics::default();
    let lines = commands::parse(text, &format!("commands/{name}.commands"), &mut diagnostics);
    if let Some(d) = diagnostics.0.first() {
        return Err(error(d.line.unwrap_or(0), d.message.clone()));
    }
    let mut variables: BTreeMap<String, String> = BTreeMap::new();
    let mut done = 0;
    for Line { instruction, line } in lines {
        let at = |e: DeployError| error(line, e.to_string());
        let expand = |text: &str, variables: &BTreeMap<String, String>| {
            expand(text, variables, context).map_err(|m| error(line, m))
        };
        match instruction {
            Instruction::Define { name: var, value } => {
                let value =
                    define(&value, &variables, deployment, context).map_err(|m| error(line, m))?;
                variables.insert(var, value);
            }
            Instruction::Create {
                component,
                name: instance,
                parent,
            } => {
                let parent = match parent {
                    Some(p) => expand(&p, &variables)?,
                    None => "/".to_owned(),
                };
                let instance = expand(&instance, &variables)?;
                let component = expand(&component, &variables)?;
                // As Roboconf: a new instance is not deployed until asked.
                let path = deployment
                    .add(graph, &parent, &component, &instance, &BTreeMap::new())
                    .map_err(at)?;
                deployment
                    .set_wanted(&path, Wanted::NotDeployed)
                    .map_err(at)?;
            }
            Instruction::Replicate { path, name: copy } => {
                let path = expand(&path, &variables)?;
                let copy = expand(&copy, &variables)?;
                deployment.replicate(graph, &path, &copy).map_err(at)?;
            }
            Instruction::ChangeState { path, state } => {
                let path = expand(&path, &variables)?;
                deployment.set_wanted(&path, wanted(state)).map_err(at)?;
            }
            Instruction::Bulk { action, targets } => {
                for path in selected(deployment, &targets, &variables, &expand)? {
                    let wanted = match action {
                        Bulk::DeployAndStart => Wanted::DeployedStarted,
                        Bulk::Stop => Wanted::DeployedStopped,
                        Bulk::Undeploy => Wanted::NotDeployed,
                    };
                    deployment.set_tree(&path, wanted).map_err(at)?;
                }
            }
            Instruction::Delete { targets } => {
                for path in selected(deployment, &targets, &variables, &expand)? {
                    deployment.remove(&path).map_err(at)?;
                }
            }
            Instruction::Execute { command } => {
                let command = expand(&command, &variables)?;
                let command = command.trim_end_matches(".commands");
                done += run_file(command, files, graph, deployment, context, depth + 1)?;
            }
            // Only Grove's target exists: every instance is associated with it.
            Instruction::Associate { .. } => {}
            Instruction::Rename { path, .. } => {
                return Err(error(
                    line,
                    format!("`rename` is not run by Grove: remove {path:?} and create it anew"),
                ));
            }
            Instruction::Write { file, .. } => {
                return Err(error(
                    line,
                    format!(
                        "`write` and `append` are not run by Grove (into {file:?}): commands act on instances only"
                    ),
                ));
            }
            Instruction::Email { .. } => {
                return Err(error(line, "`email` is not run by Grove".to_owned()));
            }
        }
        done += 1;
    }
    Ok(done)
}

fn wanted(state: commands::Wanted) -> Wanted {
    match state {
        commands::Wanted::NotDeployed => Wanted::NotDeployed,
        commands::Wanted::DeployedStopped => Wanted::DeployedStopped,
        commands::Wanted::DeployedStarted => Wanted::DeployedStarted,
    }
}

/// `$(NAME)` expansion with a line's errors.
type Expand<'a> = dyn Fn(&str, &BTreeMap<String, String>) -> Result<String, CommandError> + 'a;

/// The instances a bulk instruction or a delete names: a path, or every instance of a
/// component (each with its descendants, by the caller).
fn selected(
    deployment: &Deployment,
    targets: &Targets,
    variables: &BTreeMap<String, String>,
    expand: &Expand<'_>,
) -> Result<Vec<String>, CommandError> {
    Ok(match targets {
        Targets::Path(path) => vec![expand(path, variables)?],
        Targets::Component(component) => {
            let component = expand(component, variables)?;
            deployment
                .instances()
                .iter()
                .filter(|i| i.component == component)
                .map(|i| i.path.clone())
                .collect()
        }
    })
}

/// `$(NAME)` replaced by the variables defined and the time and random ones.
fn expand(
    text: &str,
    variables: &BTreeMap<String, String>,
    context: &dyn Context,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("$(") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let (inner, next) = after
            .split_once(')')
            .ok_or_else(|| format!("{text:?}: `$(` without `)`"))?;
        let name = inner.trim();
        let value = match name {
            "NANO_TIME" => context.nanos().to_string(),
            "MILLI_TIME" => (context.nanos() / 1_000_000).to_string(),
            "UUID" => context.uuid(),
            _ => variables
                .get(name)
                .cloned()
                .ok_or_else(|| format!("$({name}) is not defined"))?,
        };
        out.push_str(&value);
        rest = next;
    }
    out.push_str(rest);
    Ok(out)
}

/// A definition's value: `$(SMART_INDEX)` is the lowest index from 1 that names no root
/// instance; `$(EXISTING_INDEX MIN|MAX [< or > N])` the lowest or highest that names one.
fn define(
    value: &str,
    variables: &BTreeMap<String, String>,
    deployment: &Deployment,
    context: &dyn Context,
) -> Result<String, String> {
    let roots: Vec<String> = deployment
        .roots()
        .iter()
        .map(|r| r.trim_start_matches('/').to_owned())
        .collect();
    if let Some((before, after)) = value.split_once("$(SMART_INDEX)") {
        let before = expand(before, variables, context)?;
        let after = expand(after, variables, context)?;
        let index = (1u64..)
            .find(|n| !roots.contains(&format!("{before}{n}{after}")))
            .unwrap_or(1);
        return Ok(format!("{before}{index}{after}"));
    }
    if let Some(at) = value.find("$(EXISTING_INDEX") {
        let (inner, after) = value[at + 2..]
            .split_once(')')
            .ok_or_else(|| format!("{value:?}: `$(` without `)`"))?;
        let before = expand(&value[..at], variables, context)?;
        let after = expand(after, variables, context)?;
        let words: Vec<&str> = inner.split_whitespace().skip(1).collect();
        let indexes = roots.iter().filter_map(|r| {
            r.strip_prefix(&before)?
                .strip_suffix(&after)?
                .parse::<u64>()
                .ok()
        });
        let bound = |n: &u64| match words[..] {
            [_, "<", limit] => limit.parse::<u64>().is_ok_and(|l| *n < l),
            [_, ">", limit] => limit.parse::<u64>().is_ok_and(|l| *n > l),
            _ => true,
        };
        let kept = indexes.filter(bound);
        let chosen = if words.first().is_some_and(|w| w.eq_ignore_ascii_case("MAX")) {
            kept.max()
        } else {
            kept.min()
        };
        let index = chosen.ok_or_else(|| {
            format!("no root instance matches {value:?}: $(EXISTING_INDEX) needs one")
        })?;
        return Ok(format!("{before}{index}{after}"));
    }
    expand(value, variables, context)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Tree;

    struct Fixed;

    impl Context for Fixed {
        fn nanos(&self) -> u128 {
            1_700_000_000_123_456_789
        }

        fn uuid(&self) -> String {
            "0f0e".to_owned()
        }
    }

    fn app() -> crate::check::Application {
        let tree = Tree::of([
            (
                "descriptor/application.properties",
                "name = a\nversion = 1.0\ndsl-id = roboconf-1.0\ngraph-entry-point = g.graph\ninstance-entry-point = i.instances\n",
            ),
            (
                "graph/g.graph",
                "VM {\n installer: target;\n children: Lb, Back;\n}\n\
                 Lb {\n installer: script;\n imports: Back.ip (optional);\n}\n\
                 Back {\n installer: script;\n exports: ip, random[port] port;\n}\n",
            ),
            (
                "graph/VM/target.properties",
                "id = p\nname = p\nhandler = grove\n",
            ),
            (
                "instances/i.instances",
                "instance of VM {\n name: lb;\n instance of Lb {\n  name: lb;\n }\n}\n\
                 instance of VM {\n name: back ;\n count: 2;\n instance of Back {\n  name: app;\n }\n}\n",
            ),
        ]);
        let (report, app) = crate::check::application(tree);
        app.unwrap_or_else(|| panic!("{:?}", report.diagnostics))
    }

    /// Runs `text` as `commands/main.commands` (beside `other`) on a fresh deployment:
    /// each instance's path and wanted state after, or the error.
    fn check(text: &str, other: &str) -> Result<Vec<(String, String)>, String> {
        let app = app();
        let mut d = Deployment::new(&app);
        let files = BTreeMap::from([
            ("main".to_owned(), text.to_owned()),
            ("other".to_owned(), other.to_owned()),
        ]);
        run("main", &files, &app.graph, &mut d, &Fixed).map_err(|e| e.to_string())?;
        Ok(d.view(&app.graph, &BTreeMap::new(), &BTreeMap::new())
            .into_iter()
            .map(|i| (i.path, i.wanted))
            .collect())
    }

    fn wanted(all: &[(String, String)], path: &str) -> Option<String> {
        all.iter().find(|(p, _)| p == path).map(|(_, w)| w.clone())
    }

    #[test]
    fn commands_change_the_model_as_roboconf_does() {
        // Scaling out: the next free index, a copy of a backend's partition, started.
        let scaled = check(
            "define vm = back $(SMART_INDEX)\nreplicate /back 1 as $(vm)\ndeploy and start all /$(vm)\n",
            "",
        )
        .expect("runs");
        assert_eq!(
            wanted(&scaled, "/back 3/app").as_deref(),
            Some("deployed_started")
        );
        assert_eq!(
            wanted(&scaled, "/back 3").as_deref(),
            Some("deployed_started")
        );
        // Scaling in: the highest index, undeployed, then removed.
        let shrunk = check(
            "define vm = back $(EXISTING_INDEX MAX)\nundeploy all /$(vm)\ndelete /$(vm)\n",
            "",
        )
        .expect("runs");
        assert_eq!(
            wanted(&shrunk, "/back 2/app").as_deref(),
            Some("not_deployed")
        );
        assert_eq!(
            wanted(&shrunk, "/back 1/app").as_deref(),
            Some("deployed_started")
        );
        // Created instances wait to be asked; states by path and by component.
        let created = check(
            "create VM as extra\ncreate Back as b under /extra\nchange status of /extra/b to DEPLOYED and STARTED\nstop all instances of Lb\n",
            "",
        )
        .expect("runs");
        assert_eq!(wanted(&created, "/extra").as_deref(), Some("not_deployed"));
        assert_eq!(
            wanted(&created, "/extra/b").as_deref(),
            Some("deployed_started")
        );
        assert_eq!(
            wanted(&created, "/lb/lb").as_deref(),
            Some("deployed_stopped")
        );
        // Another file, run in place; names from the time and random identifiers.
        let executed = check(
            "execute other\ncreate VM as t$(MILLI_TIME)-$(UUID)\n",
            "create VM as from-other\n",
        )
        .expect("runs");
        assert!(wanted(&executed, "/from-other").is_some());
        assert!(wanted(&executed, "/t1700000000123-0f0e").is_some());
    }

    #[test]
    fn what_grove_does_not_run_is_refused_with_its_line() {
        for (text, expected) in [
            (
                "write hello into /etc/passwd\n",
                "line 1: `write` and `append` are not run",
            ),
            (
                "# mail\nemail admin@example.org with hi\n",
                "line 2: `email` is not run",
            ),
            ("rename /lb as balancer\n", "`rename` is not run by Grove"),
            (
                "change status of /nowhere to DEPLOYED_STARTED\n",
                "line 1: no instance \"/nowhere\"",
            ),
            (
                "create Lb as x under /back 1/app\n",
                "cannot be deployed on",
            ),
            (
                "replicate /lb/lb as copy\n",
                "only root instances are replicated",
            ),
            (
                "define x = $(EXISTING_INDEX MAX)\n",
                "no root instance matches",
            ),
            ("execute main\n", "nests deeper than"),
            ("execute nothing\n", "no commands file \"nothing\""),
        ] {
            let error = check(text, "").expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
