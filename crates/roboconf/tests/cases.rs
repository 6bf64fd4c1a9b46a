//! The check's cases: one file per case under `tests/cases`, checked by one function.
//!
//! A case holds the application's files and what the check must say:
//!
//! ```text
//! # what the case shows
//! ==> descriptor/application.properties <==
//! name = app
//! ==> graph/main.graph <==
//! VM {
//! ==> check <==
//! file graph/main.graph          optional: `recipe`, `file PATH [--graph PATH]`;
//!                                an application by default
//! ==> expect <==
//! error P_C_C_BRACKET_MISSING graph/main.graph:1
//! warning PROJ_NO_RESOURCE_DIRECTORY
//! kind application               optional, as the JSON report names it
//! valid                          or `invalid`; optional (errors decide)
//! components A, B                optional model lines, compared whole
//! roots A
//! facets F
//! instances /vm 1, /vm 1/app
//! external VM.config=DEP.c
//! ```
//!
//! Every diagnostic must be expected (level, code, file and line as written), in any order.

use std::path::Path;

use grove_roboconf::check::{self, Reader};
use grove_roboconf::tree::Tree;
use grove_roboconf::{Diagnostic, Report};

#[derive(Default)]
struct Case {
    files: Vec<(String, String)>,
    check: Option<String>,
    expect: Vec<String>,
}

fn read_case(text: &str) -> Case {
    let mut case = Case::default();
    let mut current: Option<(String, Vec<&str>)> = None;
    let finish = |case: &mut Case, block: Option<(String, Vec<&str>)>| {
        let Some((name, lines)) = block else { return };
        match name.as_str() {
            "check" => {
                case.check = lines
                    .iter()
                    .find(|l| !l.trim().is_empty())
                    .map(|l| l.trim().to_owned())
            }
            "expect" => {
                case.expect = lines
                    .iter()
                    .map(|l| l.trim())
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
            _ => {
                let mut body = lines.join("\n");
                body.push('\n');
                case.files.push((name, body));
            }
        }
    };
    for line in text.lines() {
        if let Some(name) = line
            .strip_prefix("==> ")
            .and_then(|l| l.strip_suffix(" <=="))
        {
            let block = current.take();
            finish(&mut case, block);
            current = Some((name.to_owned(), Vec::new()));
        } else if let Some((_, lines)) = &mut current {
            lines.push(line);
        }
    }
    finish(&mut case, current.take());
    case
}

fn shown(d: &Diagnostic) -> String {
    let level = match d.level {
        grove_roboconf::Level::Error => "error",
        grove_roboconf::Level::Warning => "warning",
    };
    let mut s = format!("{level} {}", d.code);
    match (&d.file, d.line) {
        (Some(f), Some(l)) => s.push_str(&format!(" {f}:{l}")),
        (Some(f), None) => s.push_str(&format!(" {f}")),
        _ => {}
    }
    s
}

fn run(case: &Case) -> Report {
    let mut tree = Tree::default();
    for (path, text) in &case.files {
        if path.ends_with('/') {
            tree.dirs.insert(path.trim_end_matches('/').to_owned());
        } else {
            tree.insert(path.clone(), text.as_bytes().to_vec());
        }
    }
    let words: Vec<&str> = case
        .check
        .as_deref()
        .unwrap_or("application")
        .split_whitespace()
        .collect();
    match words[..] {
        ["application"] => check::application(tree).0,
        ["recipe"] => check::recipe(&tree),
        ["file", path] => {
            let text = tree.read(path).unwrap_or_default();
            check::file(path, &text, &tree, None)
        }
        ["file", path, "--graph", graph] => {
            let text = tree.read(path).unwrap_or_default();
            let graph_text = tree.read(graph).unwrap_or_default();
            check::file(path, &text, &tree, Some((graph, &graph_text, &tree)))
        }
        _ => panic!("unknown check {:?}", case.check),
    }
}

fn list(items: &[String]) -> String {
    items.join(", ")
}

fn check(path: &Path, text: String) -> datatest_stable::Result<()> {
    let case = read_case(&text);
    let report = run(&case);
    let mut problems = Vec::new();
    let mut got: Vec<String> = report.diagnostics.iter().map(shown).collect();
    let mut wanted: Vec<String> = case
        .expect
        .iter()
        .filter(|l| l.starts_with("error ") || l.starts_with("warning "))
        .cloned()
        .collect();
    got.sort();
    wanted.sort();
    if got != wanted {
        problems.push(format!(
            "diagnostics differ\n  wanted: {wanted:#?}\n  got:    {got:#?}\n  in full: {:#?}",
            report
                .diagnostics
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        ));
    }
    let model = report.model.clone().unwrap_or_default();
    for line in &case.expect {
        let (key, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let actual = match key {
            "error" | "warning" => continue,
            "valid" | "invalid" => {
                if report.valid != (key == "valid") {
                    problems.push(format!(
                        "expected {key}, the report says valid = {}",
                        report.valid
                    ));
                }
                continue;
            }
            "kind" => serde_json::to_value(report.kind)?
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            "components" => list(&model.components),
            "roots" => list(&model.root_components),
            "facets" => list(&model.facets),
            "instances" => list(&model.instances),
            "external" => model
                .external_exports
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", "),
            other => {
                return Err(format!("{}: unknown expectation {other:?}", path.display()).into());
            }
        };
        if actual != rest {
            problems.push(format!("{key}: wanted {rest:?}, got {actual:?}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}:\n{}", path.display(), problems.join("\n")).into())
    }
}

datatest_stable::harness! {
    { test = check, root = "tests/cases", pattern = r"\.case$" },
}
