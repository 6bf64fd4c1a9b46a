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
    /// Set a project's quota, KEY=VALUE with keys instances, partitions, shared (`KEY=`
    /// leaves it unlimited); the ones not given are unlimited (the cloud admin).
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
        let limit = if value.is_empty() {
            None
        } else {
            Some(
                value
                    .parse::<u64>()
                    .map_err(|_| anyhow!("quota {key}={value}: a whole number"))?,
            )
        };
        match key.as_str() {
            "instances" => quota.instances = limit,
            "partitions" => quota.partitions = limit,
            "shared" => quota.shared = limit,
            other => bail!("quota {other:?}: the keys are instances, partitions and shared"),
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
            quota(&pairs(&["partitions=5", "shared=", "instances=7"])).expect("valid"),
            api::Quota {
                instances: Some(7),
                partitions: Some(5),
                shared: None
            }
        );
        for (bad, says) in [
            (&["cores=2"][..], "the keys are"),
            (&["partitions=five"][..], "a whole number"),
            (&["partitions"][..], "KEY=VALUE"),
        ] {
            let error = quota(&pairs(bad)).expect_err("refused").to_string();
            assert!(error.contains(says), "{bad:?}: {error}");
        }
    }
}
