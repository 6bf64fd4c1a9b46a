//! `grove size`: the sizes the cloud admin defines (Nova's flavors), asked for with
//! `grove request --sla size=NAME`.

use std::process::ExitCode;

use grove_api as api;
use grove_api::units::{format_bytes, format_cores, parse_bytes, parse_cores};

use crate::client::{Connection, print_json, print_lines};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum SizeCommand {
    /// Define a size (the cloud admin): what a partition of that size is given.
    Create {
        name: String,
        /// CPU cores, with up to three decimals (`0.5`, `2`).
        #[arg(long, value_parser = cores)]
        cores: u64,
        /// Memory, in bytes or with K, M, G, T (`512M`).
        #[arg(long, value_parser = bytes)]
        memory: u64,
        /// Disk, in bytes or with K, M, G, T (`10G`).
        #[arg(long, value_parser = bytes)]
        disk: u64,
        #[command(flatten)]
        connection: Connection,
    },
    /// The sizes there are.
    List {
        #[command(flatten)]
        connection: Connection,
    },
    /// Delete a size (the cloud admin); instances given it keep what they were given.
    Delete {
        name: String,
        #[command(flatten)]
        connection: Connection,
    },
}

fn cores(text: &str) -> Result<u64, api::units::UnitError> {
    parse_cores(text)
}

fn bytes(text: &str) -> Result<u64, api::units::UnitError> {
    parse_bytes(text)
}

fn line(size: &api::Size) -> String {
    format!(
        "{:<16} {:>6} cores {:>8} memory {:>8} disk",
        size.name,
        format_cores(size.millicores),
        format_bytes(size.memory),
        format_bytes(size.disk)
    )
}

pub(crate) fn run(command: SizeCommand) -> anyhow::Result<ExitCode> {
    match command {
        SizeCommand::Create {
            name,
            cores,
            memory,
            disk,
            connection,
        } => {
            let size = connection.client()?.create_size(&api::Size {
                name,
                millicores: cores,
                memory,
                disk,
            })?;
            if connection.json {
                print_json(&size)?;
            } else {
                print_lines(&[line(&size)])?;
            }
        }
        SizeCommand::List { connection } => {
            let sizes = connection.client()?.list_sizes()?;
            if connection.json {
                print_json(&sizes)?;
            } else {
                print_lines(&sizes.iter().map(line).collect::<Vec<_>>())?;
            }
        }
        SizeCommand::Delete { name, connection } => {
            connection.client()?.delete_size(&name)?;
            if connection.json {
                print_json(&serde_json::json!({ "deleted": name }))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
