//! `grove project`: projects, their members and quotas.

use std::process::ExitCode;

use anyhow::{anyhow, bail};
use grove_api as api;

use crate::client::{Connection, key_values, print_json, print_lines};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ProjectCommand {
    /// Create a project (the cloud admin).
    Create {
        name: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// The projects you are a member of (every one, for the cloud admin).
    List {
        #[command(flatten)]
        connection: Connection,
    },
    /// A project's members, quota and what it holds.
    Show {
        name: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Delete a project whose instances are destroyed (the cloud admin).
    Delete {
        name: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Set what a project's use may cost in all (the cloud admin): an amount like 100.00,
    /// or `none` for no limit. Once spent, its requests are refused (402).
    Credit {
        project: String,
        amount: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// A project's members (the cloud admin or a project-admin).
    #[command(subcommand)]
    Member(MemberCommand),
    /// Set a project's quota, KEY=VALUE with keys instances, partitions, shared, cores
    /// (`2`, `0.5`), memory and disk (`512M`, `2G`) summed over the sizes it holds
    /// (`KEY=` leaves it unlimited); the ones not given are unlimited (the cloud admin).
    Quota {
        project: String,
        #[arg(value_name = "KEY=VALUE")]
        limits: Vec<String>,
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum MemberCommand {
    /// Give a user a role in a project: reader, member or project-admin.
    Add {
        project: String,
        user: String,
        #[arg(long, value_parser = ["reader", "member", "project-admin"])]
        role: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Remove a user from a project.
    Remove {
        project: String,
        user: String,
        #[command(flatten)]
        connection: Connection,
    },
}

/// A quota from `KEY=VALUE` pairs.
fn quota(limits: &[String]) -> anyhow::Result<api::Quota> {
    let mut quota = api::Quota::default();
    for (key, value) in key_values(limits, "quota")? {
        let read = |parse: fn(&str) -> anyhow::Result<u64>| -> anyhow::Result<Option<u64>> {
            if value.is_empty() {
                Ok(None)
            } else {
                parse(&value)
                    .map(Some)
                    .map_err(|e| anyhow!("quota {key}={value}: {e}"))
            }
        };
        let count = |text: &str| -> anyhow::Result<u64> {
            text.parse::<u64>().map_err(|_| anyhow!("a whole number"))
        };
        let cores = |text: &str| Ok(api::units::parse_cores(text)?);
        let bytes = |text: &str| Ok(api::units::parse_bytes(text)?);
        match key.as_str() {
            "instances" => quota.instances = read(count)?,
            "partitions" => quota.partitions = read(count)?,
            "shared" => quota.shared = read(count)?,
            "cores" => quota.millicores = read(cores)?,
            "memory" => quota.memory = read(bytes)?,
            "disk" => quota.disk = read(bytes)?,
            other => bail!(
                "quota {other:?}: the keys are instances, partitions, shared, cores, memory and disk"
            ),
        }
    }
    Ok(quota)
}

fn limit_text(limit: Option<u64>) -> String {
    limit.map_or_else(|| "unlimited".to_owned(), |l| l.to_string())
}

fn show(project: &api::Project, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(project);
    }
    let mut lines = vec![format!("project {}", project.name)];
    for member in &project.members {
        lines.push(format!("  {:<20} {}", member.user, member.role.as_str()));
    }
    for (what, held, limit) in [
        (
            "instances",
            project.usage.instances,
            project.quota.instances,
        ),
        (
            "partitions",
            project.usage.partitions,
            project.quota.partitions,
        ),
        ("shared", project.usage.shared, project.quota.shared),
    ] {
        lines.push(format!("  {what:<11} {held} of {}", limit_text(limit)));
    }
    let cores = api::units::format_cores;
    let bytes = api::units::format_bytes;
    for (what, held, limit, unit) in [
        (
            "cores",
            project.usage.millicores,
            project.quota.millicores,
            cores as fn(u64) -> String,
        ),
        ("memory", project.usage.memory, project.quota.memory, bytes),
        ("disk", project.usage.disk, project.quota.disk, bytes),
    ] {
        lines.push(format!(
            "  {what:<11} {} of {}",
            unit(held),
            limit.map_or_else(|| "unlimited".to_owned(), unit)
        ));
    }
    if let (Some(credit), Some(balance)) = (&project.credit, &project.balance) {
        lines.push(format!("  credit      {credit}, balance {balance}"));
    }
    print_lines(&lines)
}

pub(crate) fn run(command: ProjectCommand) -> anyhow::Result<ExitCode> {
    match command {
        ProjectCommand::Create { name, connection } => {
            show(
                &connection.client()?.create_project(&name)?,
                connection.json,
            )?;
        }
        ProjectCommand::List { connection } => {
            let projects = connection.client()?.list_projects()?;
            if connection.json {
                print_json(&projects)?;
            } else {
                let lines: Vec<String> = projects.iter().map(|p| p.name.clone()).collect();
                print_lines(&lines)?;
            }
        }
        ProjectCommand::Show { name, connection } => {
            show(&connection.client()?.show_project(&name)?, connection.json)?;
        }
        ProjectCommand::Delete { name, connection } => {
            connection.client()?.delete_project(&name)?;
            if connection.json {
                print_json(&serde_json::json!({ "deleted": name }))?;
            } else {
                eprintln!("project {name} deleted");
            }
        }
        ProjectCommand::Member(MemberCommand::Add {
            project,
            user,
            role,
            connection,
        }) => {
            let role = api::Role::parse(&role).ok_or_else(|| anyhow!("unknown role {role}"))?;
            let shown = connection
                .client()?
                .set_project_member(&project, &user, Some(role))?;
            show(&shown, connection.json)?;
        }
        ProjectCommand::Member(MemberCommand::Remove {
            project,
            user,
            connection,
        }) => {
            let shown = connection
                .client()?
                .set_project_member(&project, &user, None)?;
            show(&shown, connection.json)?;
        }
        ProjectCommand::Credit {
            project,
            amount,
            connection,
        } => {
            let amount = (amount != "none").then_some(amount.as_str());
            show(
                &connection.client()?.set_project_credit(&project, amount)?,
                connection.json,
            )?;
        }
        ProjectCommand::Quota {
            project,
            limits,
            connection,
        } => {
            let quota = quota(&limits)?;
            show(
                &connection.client()?.set_project_quota(&project, &quota)?,
                connection.json,
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_read_from_key_values() {
        let pairs = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            quota(&pairs(&[
                "partitions=5",
                "shared=",
                "instances=7",
                "cores=1.5",
                "memory=512M",
                "disk=2G"
            ]))
            .expect("valid"),
            api::Quota {
                instances: Some(7),
                partitions: Some(5),
                shared: None,
                millicores: Some(1500),
                memory: Some(512 << 20),
                disk: Some(2 << 30),
            }
        );
        for (bad, says) in [
            (&["gpus=2"][..], "the keys are"),
            (&["memory=lots"][..], "not a size"),
            (&["cores=-1"][..], "not a number of cores"),
            (&["partitions=five"][..], "a whole number"),
            (&["partitions"][..], "KEY=VALUE"),
        ] {
            let error = quota(&pairs(bad)).expect_err("refused").to_string();
            assert!(error.contains(says), "{bad:?}: {error}");
        }
    }
}
