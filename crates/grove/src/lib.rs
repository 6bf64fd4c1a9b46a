//! The commands of the `grove` binary.
//!
//! Exit codes (stable, scripts rely on them):
//! - 0: success;
//! - 1: the command failed (a profile with errors, an unreadable file, a missing value);
//! - 2: the command line itself is wrong (clap's usage errors).

mod profile;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The command failed.
pub const EXIT_FAILURE: u8 = 1;

/// Grove: request a service by URL and parameters, get its connection parameters back.
#[derive(Debug, Parser)]
#[command(name = "grove", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read profiles in SlapOS's buildout dialect.
    #[command(subcommand)]
    Profile(profile::ProfileCommand),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Profile(command) => profile::run(command),
    }
}
