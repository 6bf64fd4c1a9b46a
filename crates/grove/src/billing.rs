//! `grove billing`: the price list and invoices.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use grove_api as api;

use crate::client::{Connection, print_json, print_lines};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum BillingCommand {
    /// Set the price list from a TOML file (the cloud admin): `currency = "EUR"`,
    /// `partition_hour = "0.015"`, `cpu_hour = "0.04"`, `memory_gib_hour = "0.005"`;
    /// without a file, show it.
    Prices {
        file: Option<PathBuf>,
        #[command(flatten)]
        connection: Connection,
    },
    /// A project's cost month by month at the current prices (the cloud admin or a member).
    Estimate {
        #[arg(long, env = "GROVE_PROJECT")]
        project: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// A project's invoice for a month (the cloud admin or a project-admin).
    Invoice {
        #[arg(long, env = "GROVE_PROJECT")]
        project: String,
        /// YYYY-MM (UTC).
        #[arg(long)]
        month: String,
        /// As CSV (instance, resource, quantity, unit price, amount; then the total).
        #[arg(long, conflicts_with = "json")]
        csv: bool,
        #[command(flatten)]
        connection: Connection,
    },
}

fn show_prices(prices: &api::Prices, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(prices);
    }
    let mut lines = vec![
        format!("currency        {}", prices.currency),
        format!("partition_hour  {}", prices.partition_hour),
        format!("cpu_hour        {}", prices.cpu_hour),
        format!("memory_gib_hour {}", prices.memory_gib_hour),
    ];
    if let Some(disk) = &prices.disk_gib_month {
        lines.push(format!("disk_gib_month  {disk}"));
    }
    for (size, price) in &prices.size_hour {
        lines.push(format!("size_hour.{size} {price}"));
    }
    for (release, price) in &prices.release_partition_hour {
        lines.push(format!("release_partition_hour {release} {price}"));
    }
    print_lines(&lines)
}

/// A CSV field, quoted when it must be.
pub(crate) fn run(command: BillingCommand) -> anyhow::Result<ExitCode> {
    match command {
        BillingCommand::Prices { file, connection } => {
            let client = connection.client()?;
            let shown = match file {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    let prices: api::Prices = toml::from_str(&text)
                        .with_context(|| format!("{}: not a price list", path.display()))?;
                    client.set_prices(&prices)?
                }
                None => client.show_prices()?,
            };
            show_prices(&shown, connection.json)?;
        }
        BillingCommand::Estimate {
            project,
            connection,
        } => {
            let estimate = connection.client()?.project_estimate(&project)?;
            if connection.json {
                print_json(&estimate)?;
            } else {
                let lines: Vec<String> = estimate
                    .months
                    .iter()
                    .map(|m| format!("{} {:>12} {}", m.month, m.total, estimate.currency))
                    .collect();
                print_lines(&lines)?;
            }
        }
        BillingCommand::Invoice {
            project,
            month,
            csv,
            connection,
        } => {
            let invoice = connection.client()?.project_invoice(&project, &month)?;
            if connection.json {
                print_json(&invoice)?;
            } else if csv {
                std::io::stdout().write_all(grove_billing::invoice_csv(&invoice).as_bytes())?;
            } else {
                let mut lines = vec![format!(
                    "invoice of project {} for {} ({})",
                    invoice.project, invoice.month, invoice.currency
                )];
                for l in &invoice.lines {
                    lines.push(format!(
                        "  {:<20} {:<17} {:>14} x {:<10} {:>12}",
                        l.instance, l.resource, l.quantity, l.unit_price, l.amount
                    ));
                }
                lines.push(format!("  {:<20} {:>59}", "total", invoice.total));
                print_lines(&lines)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
