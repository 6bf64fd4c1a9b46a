//! `grove profile resolve|query|annotate|check`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use grove_profile::{Assignment, Diagnostic, LoadOptions, Profile, Resolved};

#[derive(Debug, Subcommand)]
pub(crate) enum ProfileCommand {
    /// Print every section and option after substitution, sorted.
    Resolve {
        /// The profile: a path or an http(s) URL.
        file: String,
        /// Assignments `section:option=value` (also `+=` and `-=`), applied last.
        assignments: Vec<String>,
        /// Print one JSON object `{"section": {"option": "value"}}`.
        #[arg(long)]
        json: bool,
        /// Print the sections that resolved even when others have errors (the exit
        /// status is still 1).
        #[arg(long)]
        keep_going: bool,
    },
    /// Print one resolved value.
    Query {
        /// `section:option`, or `option` for the `buildout` section.
        target: String,
        file: String,
        assignments: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print each raw option with where its value came from.
    Annotate {
        file: String,
        assignments: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print every diagnostic as `file:line: message`; fail if there is any error.
    Check {
        file: String,
        assignments: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(command: ProfileCommand) -> anyhow::Result<ExitCode> {
    match command {
        ProfileCommand::Resolve {
            file,
            assignments,
            json,
            keep_going,
        } => {
            let profile = load(&file, &assignments)?;
            let resolved = plan(&file, &profile)?;
            let failed = report(&resolved.diagnostics);
            if failed && !keep_going {
                return Ok(ExitCode::from(crate::EXIT_FAILURE));
            }
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer(&mut out, &resolved.texts())?;
                writeln!(out)?;
            } else {
                write_sections(&mut out, &resolved)?;
            }
            Ok(if failed {
                ExitCode::from(crate::EXIT_FAILURE)
            } else {
                ExitCode::SUCCESS
            })
        }
        ProfileCommand::Query {
            target,
            file,
            assignments,
            json,
        } => {
            let (section, option) = match target.split(':').collect::<Vec<_>>()[..] {
                [option] => ("buildout", option),
                [section, option] => (section, option),
                _ => anyhow::bail!("invalid option {target:?}: expected section:option"),
            };
            let profile = load(&file, &assignments)?;
            let resolved = plan(&file, &profile)?;
            let Some(values) = resolved.sections.get(section) else {
                report(&resolved.diagnostics);
                anyhow::bail!("section not found: {section}");
            };
            let Some(value) = values.get(option) else {
                anyhow::bail!("key not found: {section}:{option}");
            };
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer(&mut out, &value.as_text())?;
                writeln!(out)?;
            } else {
                writeln!(out, "{value}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ProfileCommand::Annotate {
            file,
            assignments,
            json,
        } => {
            let profile = load(&file, &assignments)?;
            report(&profile.diagnostics);
            if json {
                let list: Vec<serde_json::Value> = profile
                    .annotations()
                    .into_iter()
                    .map(|a| {
                        serde_json::json!({
                            "section": a.section,
                            "option": a.option,
                            "value": a.value,
                            "steps": a.steps.iter().map(|(op, source)| {
                                serde_json::json!({ "operator": op, "source": source })
                            }).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                let mut out = std::io::stdout().lock();
                serde_json::to_writer_pretty(&mut out, &list)?;
                writeln!(out)?;
            } else {
                write!(std::io::stdout().lock(), "{}", profile.annotate())?;
            }
            Ok(if profile.diagnostics.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(crate::EXIT_FAILURE)
            })
        }
        ProfileCommand::Check {
            file,
            assignments,
            json,
        } => {
            let profile = load(&file, &assignments)?;
            let resolved = plan(&file, &profile)?;
            let mut out = std::io::stdout().lock();
            if json {
                let list: Vec<_> = resolved.diagnostics.iter().map(diagnostic_json).collect();
                serde_json::to_writer(&mut out, &list)?;
                writeln!(out)?;
            } else {
                for d in &resolved.diagnostics {
                    writeln!(out, "{d}")?;
                }
            }
            Ok(if resolved.diagnostics.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(crate::EXIT_FAILURE)
            })
        }
    }
}

/// Resolves as an installation in the profile's directory would see it before running
/// anything: the options Grove's recipes compute from the profile (`location`,
/// `target`) are there (`grove_recipes::plan`).
fn plan(file: &str, profile: &Profile) -> anyhow::Result<grove_profile::Resolved> {
    let directory = if grove_profile::is_url(file) {
        std::env::current_dir().context("cannot read the current directory")?
    } else {
        std::path::absolute(file)
            .with_context(|| format!("bad path {file}"))?
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default()
    };
    let fetcher = grove_fetch::Fetcher::default();
    let ctx = grove_recipes::Context {
        directory,
        fetcher: &fetcher,
        partition: None,
        shared_parts: Vec::new(),
    };
    Ok(grove_recipes::plan(
        profile,
        &grove_recipes::Registry::builtin(),
        &ctx,
    ))
}

fn load(file: &str, assignments: &[String]) -> anyhow::Result<Profile> {
    let assignments = assignments
        .iter()
        .map(|a| a.parse::<Assignment>())
        .collect::<Result<Vec<_>, _>>()?;
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let main = if grove_profile::is_url(file) {
        file.to_owned()
    } else {
        let path = std::path::absolute(file).with_context(|| format!("bad path {file}"))?;
        path.to_str()
            .with_context(|| format!("path is not utf-8: {}", path.display()))?
            .to_owned()
    };
    let options = LoadOptions {
        assignments,
        cwd: cwd.to_str().map(str::to_owned),
        ..LoadOptions::default()
    };
    Ok(grove_profile::load(
        &main,
        &grove_fetch::Fetcher::default(),
        &options,
    )?)
}

/// Prints diagnostics on stderr; true if any is an error.
fn report(diagnostics: &[Diagnostic]) -> bool {
    let mut err = std::io::stderr().lock();
    for d in diagnostics {
        if d.is_error() {
            let _ = writeln!(err, "error: {d}");
        } else {
            let _ = writeln!(err, "{d}");
        }
    }
    diagnostics.iter().any(Diagnostic::is_error)
}

fn diagnostic_json(d: &Diagnostic) -> serde_json::Value {
    serde_json::json!({
        "severity": if d.is_error() { "error" } else { "warning" },
        "file": d.file,
        "line": d.line,
        "section": d.section,
        "option": d.option,
        "message": d.kind.to_string(),
        "display": d.to_string(),
        "chain": d.chain,
    })
}

fn write_sections(out: &mut impl Write, resolved: &Resolved) -> std::io::Result<()> {
    for (name, options) in &resolved.sections {
        writeln!(out, "[{name}]")?;
        for (key, value) in options {
            let value = value.as_text();
            if value.contains('\n') {
                writeln!(out, "{key} =")?;
                for line in value.split('\n') {
                    writeln!(out, "  {line}")?;
                }
            } else if value.is_empty() {
                writeln!(out, "{key} =")?;
            } else {
                writeln!(out, "{key} = {value}")?;
            }
        }
        writeln!(out)?;
    }
    Ok(())
}
