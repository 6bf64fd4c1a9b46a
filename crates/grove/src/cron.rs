//! `grove cron`: the cron daemon a partition runs as one of its services
//! (`slapos.cookbook:cron` writes the command line).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use grove_recipes::cron::{Daemonized, read_entries};

#[derive(Debug, Args)]
pub(crate) struct CronArgs {
    /// The directory of entries files: lines `MIN HOUR DAY MONTH WEEKDAY COMMAND`.
    #[arg(long)]
    entries: PathBuf,
    /// Where to log what runs and what fails.
    #[arg(long)]
    log: PathBuf,
    /// A program given each job's output on its standard input; without one the output
    /// goes to the log.
    #[arg(long)]
    catcher: Option<PathBuf>,
    /// Check the entries, print them (with `--json`, as JSON) and exit.
    #[arg(long)]
    check: bool,
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: CronArgs) -> anyhow::Result<ExitCode> {
    if args.check {
        let (entries, errors) = read_entries(&args.entries);
        if args.json {
            let report = serde_json::json!({
                "jobs": entries.iter().map(|e| serde_json::json!({
                    "file": e.file, "line": e.line, "command": e.command,
                })).collect::<Vec<_>>(),
                "errors": errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            });
            crate::client::print_json(&report)?;
        } else {
            let lines: Vec<String> = entries
                .iter()
                .map(|e| format!("{}:{}: {}", e.file.display(), e.line, e.command))
                .collect();
            crate::client::print_lines(&lines)?;
            for error in &errors {
                eprintln!("error: {error}");
            }
        }
        return Ok(if errors.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(crate::EXIT_FAILURE)
        });
    }
    let config = Daemonized {
        entries: args.entries,
        log: args.log,
        catcher: args.catcher,
    };
    tracing::info!(entries = %config.entries.display(), "cron started");
    grove_recipes::cron::run(&config)
        .with_context(|| format!("cannot write the cron log {}", config.log.display()))?;
    Ok(ExitCode::SUCCESS)
}
