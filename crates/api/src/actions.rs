//! Instance actions on the wire: a release declares named actions (an executable per
//! action in the instance's `etc/action/`), a user asks for one with JSON parameters, the
//! node hosting the instance runs it once in the partition as the partition's user and
//! reports what it printed (a JSON value) or why it failed.

use serde::{Deserialize, Serialize};

use crate::Parameters;

/// Where an instance's actions are, below its partition: one executable per action.
pub const ACTION_DIR: &str = "etc/action";

/// The action every instance has, answered by its node and not by an executable of the
/// release: the last lines of each of the instance's services' logs, as one object
/// (service name to text). Parameter `lines`: how many per service (default
/// [`LOG_LINES`], at most [`MAX_LOG_LINES`]). Names starting with `grove-` are Grove's.
pub const LOGS_ACTION: &str = "grove-logs";

/// The lines of each log [`LOGS_ACTION`] gives by default, and at most.
pub const LOG_LINES: usize = 40;
pub const MAX_LOG_LINES: usize = 500;

/// The longest an action name may be.
pub const MAX_NAME: usize = 64;

/// The longest `POST /v1/instances/{id}/actions` waits for the action's end.
pub const MAX_WAIT_SECONDS: u64 = 60;

/// Whether `name` may name an action: letters, digits, `-` and `_`, at most
/// [`MAX_NAME`] of them, so that it is a file name in [`ACTION_DIR`] and nothing else.
pub fn is_action_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `POST /v1/instances/{id}/actions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    pub name: String,
    /// Given to the action as one JSON object on its standard input.
    #[serde(default)]
    pub parameters: Parameters,
    /// How long to wait for the action's end before answering it pending (seconds, at
    /// most [`MAX_WAIT_SECONDS`]; none: do not wait).
    #[serde(default)]
    pub wait: Option<u64>,
}

/// Where an action is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    /// Asked for; its node has not reported it yet.
    Pending,
    /// It ran and printed its result.
    Succeeded,
    /// It could not run, or failed.
    Failed,
}

impl ActionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionState::Pending => "pending",
            ActionState::Succeeded => "succeeded",
            ActionState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<ActionState> {
        [
            ActionState::Pending,
            ActionState::Succeeded,
            ActionState::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// An action as `GET /v1/actions/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub id: i64,
    pub instance: i64,
    pub name: String,
    pub parameters: Parameters,
    pub state: ActionState,
    /// What it printed, when it succeeded.
    #[serde(default)]
    pub result: Option<serde_json::Value>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Seconds since the epoch.
    pub requested_at: i64,
    #[serde(default)]
    pub finished_at: Option<i64>,
}

/// An action a node is to run, in its partition's desired state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingAction {
    pub id: i64,
    pub name: String,
    pub parameters: Parameters,
}

/// `PUT /v1/actions/{id}`: how an action ended, as its node reports it (a result or an
/// error, not both).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionOutcome {
    #[serde(default)]
    pub result: Option<serde_json::Value>,
    #[serde(default)]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_are_file_names() {
        for good in ["add_nodes", "list-nodes", "run", "a1"] {
            assert!(is_action_name(good), "{good}");
        }
        let long = "a".repeat(MAX_NAME + 1);
        for bad in ["", "../x", "a/b", ".", "..", "-x", "a b", "é", &long] {
            assert!(!is_action_name(bad), "{bad}");
        }
    }
}
