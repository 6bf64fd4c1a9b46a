//! The conformance suite: one file per case under `tests/cases`, checked by one function.
//!
//! A case file holds the profile files and the expectations:
//!
//! ```text
//! # what the case shows (a `# dialect: slapos` line marks cases where SlapOS's fork
//! # differs from upstream zc.buildout)
//! ==> buildout.cfg <==
//! [s]
//! x = 1
//! ==> args <==
//! s:y=2
//! ==> expect <==
//! s:x = "1"          the resolved value, as a JSON string
//! s:z absent         no such option
//! [t] absent         no such section
//! parts = a b        the install order
//! error: text        some error contains the text
//! warning: text      some warning contains the text
//!
//! Every diagnostic must be expected by an `error:` or `warning:` line.
//! ```
//!
//! Files are served from memory: `buildout.cfg` is `/case/buildout.cfg`, and a file named
//! by a URL is served at that URL.

use std::collections::HashMap;
use std::path::Path;

use grove_profile::{Environment, LoadOptions};

const ROOT: &str = "/case";

#[derive(Default)]
struct Case {
    files: HashMap<String, String>,
    args: Vec<String>,
    expect: Vec<String>,
}

fn read_case(text: &str) -> Result<Case, String> {
    let mut case = Case::default();
    let mut current: Option<(String, Vec<&str>)> = None;
    let finish = |case: &mut Case, block: Option<(String, Vec<&str>)>| {
        let Some((name, lines)) = block else { return };
        match name.as_str() {
            "args" => {
                case.args = lines
                    .iter()
                    .filter(|l| !l.is_empty())
                    .map(|l| (*l).to_owned())
                    .collect()
            }
            "expect" => {
                case.expect = lines
                    .iter()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| (*l).to_owned())
                    .collect()
            }
            _ => {
                let location = if grove_profile::is_url(&name) || name.starts_with('/') {
                    name.clone()
                } else {
                    format!("{ROOT}/{name}")
                };
                let mut body = lines.join("\n");
                body.push('\n');
                case.files.insert(location, body);
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
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line);
        }
    }
    let block = current.take();
    finish(&mut case, block);
    if case.expect.is_empty() {
        return Err("the case has no ==> expect <== block".to_owned());
    }
    Ok(case)
}

/// A fixed environment, so that conditions give the same answer on every machine.
fn environment() -> Environment {
    Environment {
        python_version: (3, 11, 7),
        sys_platform: "linux".to_owned(),
        os_name: "posix".to_owned(),
        machine: "x86_64".to_owned(),
        system: "Linux".to_owned(),
        release: "6.1.0".to_owned(),
        pointer_bits: 64,
        little_endian: true,
        executable: "/usr/bin/python3".to_owned(),
    }
}

fn check(path: &Path, text: String) -> datatest_stable::Result<()> {
    let case = read_case(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let assignments = case
        .args
        .iter()
        .map(|a| a.parse())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad args: {e}"))?;
    let options = LoadOptions {
        env: environment(),
        assignments,
        cwd: Some(ROOT.to_owned()),
    };
    let (resolved, mut messages) =
        match grove_profile::load(&format!("{ROOT}/buildout.cfg"), &case.files, &options) {
            Ok(profile) => {
                let resolved = profile.resolve();
                let messages: Vec<String> = resolved
                    .diagnostics
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                (Some(resolved), messages)
            }
            Err(d) => (None, vec![d.to_string()]),
        };
    let mut failures = Vec::new();
    let mut expected_diagnostics = Vec::new();
    for line in &case.expect {
        if let Some(fragment) = line.strip_prefix("error: ") {
            expected_diagnostics.push(fragment.to_owned());
            if !messages
                .iter()
                .any(|m| m.contains(fragment) && !m.contains("warning: "))
            {
                failures.push(format!("no error contains {fragment:?}"));
            }
            continue;
        }
        if let Some(fragment) = line.strip_prefix("warning: ") {
            let fragment = format!("warning: {fragment}");
            if !messages.iter().any(|m| m.contains(&fragment)) {
                failures.push(format!("no warning contains {fragment:?}"));
            }
            expected_diagnostics.push(fragment);
            continue;
        }
        let Some(resolved) = &resolved else { continue };
        if let Some(parts) = line.strip_prefix("parts = ") {
            let expected: Vec<&str> = parts.split_whitespace().collect();
            if resolved.parts != expected {
                failures.push(format!(
                    "parts: expected {expected:?}, got {:?}",
                    resolved.parts
                ));
            }
        } else if let Some(section) = line
            .strip_prefix('[')
            .and_then(|l| l.strip_suffix("] absent"))
        {
            if resolved.sections.contains_key(section) {
                failures.push(format!("section [{section}] should be absent"));
            }
        } else if let Some(target) = line.strip_suffix(" absent") {
            let (s, o) = target
                .split_once(':')
                .ok_or_else(|| format!("bad expect line {line:?}"))?;
            if let Some(v) = resolved.text(s, o) {
                failures.push(format!("{s}:{o} should be absent, is {v:?}"));
            }
        } else {
            let (target, json) = line
                .split_once(" = ")
                .ok_or_else(|| format!("bad expect line {line:?}"))?;
            let (s, o) = target
                .split_once(':')
                .ok_or_else(|| format!("bad expect line {line:?}"))?;
            let expected: String = parse_json_string(json)
                .ok_or_else(|| format!("bad JSON string in expect line {line:?}"))?;
            match resolved.text(s, o) {
                Some(v) if v == expected => {}
                Some(v) => failures.push(format!("{s}:{o}: expected {expected:?}, got {v:?}")),
                None => failures.push(format!("{s}:{o}: expected {expected:?}, but it is missing")),
            }
        }
    }
    for message in &messages {
        if !expected_diagnostics
            .iter()
            .any(|e| message.contains(e.as_str()))
        {
            failures.push(format!("unexpected diagnostic: {message}"));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        messages.insert(0, String::new());
        Err(format!(
            "{}:\n{}\ndiagnostics:{}",
            path.display(),
            failures.join("\n"),
            messages.join("\n  ")
        )
        .into())
    }
}

/// Reads a JSON string literal (the escapes JSON allows).
fn parse_json_string(text: &str) -> Option<String> {
    let inner = text.trim().strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            '/' => out.push('/'),
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

datatest_stable::harness! {
    { test = check, root = "tests/cases", pattern = r"\.test$" },
}
