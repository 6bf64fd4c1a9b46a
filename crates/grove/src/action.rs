//! `grove action`: runs an instance's action and prints its result.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use grove_api::actions::{Action, ActionRequest, ActionState, MAX_WAIT_SECONDS};
use grove_client::Client;

use crate::client::{Connection, print_json, print_lines, titled};

#[derive(Debug, clap::Args)]
pub(crate) struct ActionArgs {
    /// The instance: its title (yours, or with --project the project's), its id, or a
    /// ConPaaS application of one service (`APP/SERVICE` names a service's manager).
    instance: String,
    /// The action: an executable of the instance's `etc/action/`.
    name: String,
    /// A parameter, as a string (repeat for more).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// A parameter whose value is JSON: a number, true, a list...
    #[arg(long = "json-param", value_name = "KEY=JSON")]
    json_params: Vec<String>,
    #[arg(long, env = "GROVE_PROJECT")]
    project: Option<String>,
    /// How long to wait for the action's end, in seconds (0: print it pending).
    #[arg(long, default_value_t = 600)]
    wait: u64,
    #[command(flatten)]
    connection: Connection,
}

fn parameters(args: &ActionArgs) -> anyhow::Result<grove_api::Parameters> {
    let mut out = grove_api::Parameters::new();
    for (list, json) in [(&args.params, false), (&args.json_params, true)] {
        for param in list {
            let (key, value) = param
                .split_once('=')
                .ok_or_else(|| anyhow!("parameter {param:?}: KEY=VALUE"))?;
            let value = if json {
                serde_json::from_str(value)
                    .with_context(|| format!("parameter {key}: {value:?} is not JSON"))?
            } else {
                serde_json::Value::String(value.to_owned())
            };
            out.insert(key.to_owned(), value);
        }
    }
    Ok(out)
}

/// Asks for the action and waits for its end (the master holds each call at most a
/// minute; then the action is read again).
pub(crate) fn run_action(
    client: &Client,
    instance: i64,
    name: &str,
    parameters: grove_api::Parameters,
    wait: Duration,
) -> anyhow::Result<Action> {
    let start = Instant::now();
    let first = wait.as_secs().min(MAX_WAIT_SECONDS);
    let mut action = client.run_action(
        instance,
        &ActionRequest {
            name: name.to_owned(),
            parameters,
            wait: Some(first),
        },
    )?;
    while action.state == ActionState::Pending && start.elapsed() < wait {
        std::thread::sleep(Duration::from_millis(200));
        action = client.show_action(action.id)?;
    }
    Ok(action)
}

/// The instance `name` names: an instance's title, else a ConPaaS application's only
/// service (its manager; `APP/SERVICE` is the manager's title).
fn target(client: &Client, name: &str, project: Option<&str>) -> anyhow::Result<i64> {
    let by_title = titled(client, name, project);
    let Err(error) = by_title else {
        return by_title.map(|i| i.id);
    };
    let Ok(app) = client.show_app(name) else {
        return Err(error);
    };
    match app.services.as_slice() {
        [one] => Ok(one.instance),
        [] => Err(error),
        many => {
            let names: Vec<String> = many.iter().map(|s| format!("{name}/{}", s.name)).collect();
            bail!(
                "application {name} has several services: name one of {}",
                names.join(", ")
            )
        }
    }
}

pub(crate) fn run(args: ActionArgs) -> anyhow::Result<ExitCode> {
    let client = args.connection.client()?;
    let parameters = parameters(&args)?;
    let id = match args.instance.parse::<i64>() {
        Ok(id) => id,
        Err(_) => target(&client, &args.instance, args.project.as_deref())?,
    };
    let action = run_action(
        &client,
        id,
        &args.name,
        parameters,
        Duration::from_secs(args.wait),
    )?;
    if args.connection.json {
        print_json(&action)?;
    } else {
        match action.state {
            ActionState::Succeeded => print_json(&action.result)?,
            ActionState::Pending => print_lines(&[format!("action {} is pending", action.id)])?,
            ActionState::Failed => {}
        }
    }
    match action.state {
        ActionState::Failed => bail!(
            "action {} of instance {}: {}",
            action.name,
            args.instance,
            action.error.as_deref().unwrap_or("failed")
        ),
        _ => Ok(ExitCode::SUCCESS),
    }
}
