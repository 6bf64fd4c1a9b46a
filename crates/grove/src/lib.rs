//! The commands of the `grove` binary.
//!
//! Exit codes (stable, scripts rely on them):
//! - 0: success;
//! - 1: the command failed (a profile with errors, an unreadable file, a missing value);
//! - 2: the command line itself is wrong (clap's usage errors); for `grove app check`,
//!   also a path that could not be read (the check did not run).

mod action;
mod app;
mod billing;
mod ca;
mod client;
mod conpaas;
mod cron;
mod http_server;
mod master;
mod node;
mod profile;
mod project;
mod size;
mod up;

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
    /// Run the master: the HTTP API, the store and the change stream.
    Master(master::MasterArgs),
    /// Run the node agent (`grove node --config FILE`), or one of its passes.
    Node(node::NodeArgs),
    /// A master and a node in one process: the embedded cloud of one machine.
    Up(up::UpArgs),
    /// Make a software release available on a computer.
    Supply(client::SupplyArgs),
    /// Remove a software release from a computer.
    Remove(client::SupplyArgs),
    /// Request an instance (or change it) and print its connection parameters.
    Request(client::RequestArgs),
    /// Your instances.
    #[command(subcommand)]
    Service(client::ServiceCommand),
    /// Computers.
    #[command(subcommand)]
    Computer(client::ComputerCommand),
    /// Users (admin).
    #[command(subcommand)]
    User(client::UserCommand),
    /// Projects: members with roles, quotas.
    #[command(subcommand)]
    Project(project::ProjectCommand),
    /// Prices and invoices.
    #[command(subcommand)]
    Billing(billing::BillingCommand),
    /// Sizes: CPU, memory and disk a partition is given.
    #[command(subcommand)]
    Size(size::SizeCommand),
    /// Roboconf applications: check them.
    #[command(subcommand)]
    App(app::AppCommand),
    /// Run an instance's action (an executable its release declares) and print its result.
    Action(action::ActionArgs),
    /// Run a partition's periodic jobs: the daemon `slapos.cookbook:cron` starts.
    Cron(cron::CronArgs),
    /// Run a partition's certificate authority: the service
    /// `slapos.cookbook:certificate_authority` starts.
    CertificateAuthority(ca::CaArgs),
    /// Serve a directory over HTTP(S): the service `slapos.cookbook:simplehttpserver`
    /// starts.
    SimpleHttpServer(http_server::HttpServerArgs),
}

/// Logs of the daemons go to stderr, filtered by `GROVE_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GROVE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// An error and its causes on one line, each cause once: library errors often say their
/// cause already (`cannot listen on ADDR: Address already in use`).
pub fn error_message(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Profile(command) => profile::run(command),
        Command::Master(args) => master::run(args),
        Command::Node(args) => node::run(args),
        Command::Up(args) => up::run(args),
        Command::Supply(args) => client::supply(args, grove_api::SupplyState::Available),
        Command::Remove(args) => client::supply(args, grove_api::SupplyState::Destroyed),
        Command::Request(args) => client::request(args),
        Command::Service(command) => client::service(command),
        Command::Computer(command) => client::computer(command),
        Command::User(command) => client::user(command),
        Command::Project(command) => project::run(command),
        Command::Billing(command) => billing::run(command),
        Command::Size(command) => size::run(command),
        Command::App(command) => app::run(command),
        Command::Action(args) => action::run(args),
        Command::Cron(args) => cron::run(args),
        Command::CertificateAuthority(args) => ca::run(args),
        Command::SimpleHttpServer(args) => http_server::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot listen on 127.0.0.1:8080: {source}")]
    struct Listen {
        source: std::io::Error,
    }

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "address already in use");
        let error = anyhow::Error::new(Listen { source: io }).context("cannot start the master");
        assert_eq!(
            error_message(&error),
            "cannot start the master: cannot listen on 127.0.0.1:8080: address already in use"
        );
    }

    /// Every command's arguments are well formed (unique names, valid requirements): clap
    /// checks a command only when it is parsed, so a clash in a rarely used one would
    /// otherwise surface as a panic in a user's hands.
    #[test]
    fn every_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
