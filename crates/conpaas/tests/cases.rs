//! The manifest checker's cases: one file per case under `tests/cases`, one function.
//!
//! ```text
//! # what the case shows
//! ==> manifest.json <==
//! { "Application": "app", "Services": [ ... ] }
//! ==> expect <==
//! error MANIFEST_UNKNOWN_SERVICE_TYPE Services[0].Type:3     AT:LINE, `-` for none
//! warning MANIFEST_UNKNOWN_ROLE Services[0].StartupInstances.db:5
//! plan {"application":"app","services":[...]}                 compact JSON, optional
//! ```
//!
//! Every diagnostic must be expected, in any order; a case without errors must give a
//! plan, and one with errors none. The case files together must use every code.

use std::path::Path;

use grove_conpaas::manifest::{self, Code, Level};

fn blocks(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line
            .strip_prefix("==> ")
            .and_then(|l| l.strip_suffix(" <=="))
        {
            out.push((name.to_owned(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

fn check(path: &Path, text: String) -> datatest_stable::Result<()> {
    let blocks = blocks(&text);
    let get = |name: &str| {
        blocks
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.clone())
            .ok_or_else(|| format!("{}: no `{name}` block", path.display()))
    };
    let manifest = get("manifest.json")?;
    let expect = get("expect")?;
    let report = manifest::check(manifest.strip_suffix('\n').unwrap_or(&manifest));
    let mut said: Vec<String> = report
        .diagnostics
        .iter()
        .map(|d| {
            let level = match d.level {
                Level::Error => "error",
                Level::Warning => "warning",
            };
            format!(
                "{level} {} {}:{}",
                d.code.name(),
                d.at.as_deref().unwrap_or("-"),
                d.line.map_or("-".to_owned(), |l| l.to_string())
            )
        })
        .collect();
    let mut expected: Vec<String> = expect
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("plan "))
        .map(str::to_owned)
        .collect();
    said.sort();
    expected.sort();
    if said != expected {
        return Err(format!(
            "{}: diagnostics differ\n said: {said:#?}\n expected: {expected:#?}\n{:#?}",
            path.display(),
            report.diagnostics
        )
        .into());
    }
    let errors = report.diagnostics.iter().any(|d| d.level == Level::Error);
    if report.valid == errors || report.plan.is_some() == errors {
        return Err(format!("{}: valid and plan must follow the errors", path.display()).into());
    }
    if let Some(plan) = expect.lines().find_map(|l| l.trim().strip_prefix("plan ")) {
        let got = serde_json::to_value(&report.plan)?;
        let want: serde_json::Value = serde_json::from_str(plan)?;
        if got != want {
            return Err(format!("{}: plan {got}, expected {want}", path.display()).into());
        }
    }
    Ok(())
}

/// Every code Grove emits appears in a case.
fn every_code_has_a_case(_: &Path, _: String) -> datatest_stable::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut all = String::new();
    for entry in std::fs::read_dir(dir)? {
        all.push_str(&std::fs::read_to_string(entry?.path())?);
    }
    let missing: Vec<&str> = Code::ALL
        .iter()
        .map(|c| c.name())
        .filter(|name| !all.contains(&format!(" {name} ")))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("codes without a case: {missing:?}").into())
    }
}

datatest_stable::harness! {
    { test = check, root = "tests/cases", pattern = r"\.case$" },
    { test = every_code_has_a_case, root = "tests/cases", pattern = r"a01_.*\.case$" },
}
