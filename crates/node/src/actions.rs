//! Running an instance's action: `etc/action/NAME` in the partition, as the partition's
//! user (the executable is found and run by that user: the agent, root, opens nothing in
//! the partition), the parameters as one JSON object on its standard input, what it
//! prints on its standard output as the result. It must print one JSON value (or
//! nothing: `null`); an action that fails, prints something else, or runs past its
//! deadline ends with an error saying which.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use grove_api::actions::{ACTION_DIR, ActionOutcome, PendingAction, is_action_name};

use crate::instance::{SERVICE_PATH, read_on_thread};

/// The most of its output an action's result may be.
const RESULT_LIMIT: u64 = 1 << 20;
/// How much of its error output is kept.
const ERROR_LIMIT: u64 = 16 * 1024;

fn failed(error: String) -> ActionOutcome {
    ActionOutcome {
        result: None,
        error: Some(error),
    }
}

/// Runs the action in `partition` as `user` (the agent's own user when none) and says
/// how it ended.
pub(crate) fn run(
    partition: &Path,
    user: Option<(u32, u32)>,
    action: &PendingAction,
    timeout: Duration,
) -> ActionOutcome {
    // The master checks names too; a name is never a path here.
    if !is_action_name(&action.name) {
        return failed(format!("{:?} is not an action name", action.name));
    }
    let relative = format!("{ACTION_DIR}/{}", action.name);
    let mut command = Command::new(partition.join(&relative));
    command
        .current_dir(partition)
        .env_clear()
        .env("PATH", SERVICE_PATH)
        .env("HOME", partition)
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return failed(format!(
                "the instance has no action {:?} ({relative} is missing)",
                action.name
            ));
        }
        Err(e) => return failed(format!("cannot run {relative}: {e}")),
    };
    let input = serde_json::to_vec(&action.parameters).unwrap_or_else(|_| b"{}".to_vec());
    // Written from a thread of its own: an action that never reads must not block us.
    let stdin = child.stdin.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        })
    });
    let stdout = read_on_thread(child.stdout.take(), RESULT_LIMIT);
    let stderr = read_on_thread(child.stderr.take(), ERROR_LIMIT);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return failed(format!("cannot wait for {relative}: {e}")),
        }
    };
    // Whatever the action left in its group goes with it.
    if let Ok(group) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(group),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let Some(status) = status else {
        let _ = child.wait();
        return failed(format!(
            "action {:?} timed out after {} s",
            action.name,
            timeout.as_secs()
        ));
    };
    if let Some(stdin) = stdin {
        let _ = stdin.join();
    }
    let out = stdout.join().unwrap_or_default();
    let err = stderr.join().unwrap_or_default();
    let err = String::from_utf8_lossy(&err[..err.len().min(ERROR_LIMIT as usize)]);
    if !status.success() {
        let said = err.trim();
        return failed(if said.is_empty() {
            format!("action {:?} failed ({status})", action.name)
        } else {
            format!("action {:?} failed ({status}): {said}", action.name)
        });
    }
    if out.len() as u64 > RESULT_LIMIT {
        return failed(format!(
            "action {:?} printed more than {RESULT_LIMIT} bytes",
            action.name
        ));
    }
    if out.iter().all(u8::is_ascii_whitespace) {
        return ActionOutcome {
            result: Some(serde_json::Value::Null),
            error: None,
        };
    }
    match serde_json::from_slice(&out) {
        Ok(result) => ActionOutcome {
            result: Some(result),
            error: None,
        },
        Err(e) => failed(format!(
            "action {:?} printed no JSON value ({e}): {}",
            action.name,
            String::from_utf8_lossy(&out[..out.len().min(200)])
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use serde_json::{Value, json};

    use super::*;

    fn run_script(script: Option<&str>, parameters: Value) -> ActionOutcome {
        let dir = tempfile::tempdir().expect("tempdir");
        let actions = dir.path().join(ACTION_DIR);
        std::fs::create_dir_all(&actions).expect("etc/action");
        if let Some(script) = script {
            let path = actions.join("act");
            std::fs::write(&path, script).expect("action");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("mode");
        }
        let action = PendingAction {
            id: 1,
            name: "act".to_owned(),
            parameters: parameters.as_object().cloned().unwrap_or_default(),
        };
        run(dir.path(), None, &action, Duration::from_secs(2))
    }

    /// Each case: the script (none: no such action), and its result or a part of its
    /// error.
    #[test]
    fn actions_answer_json_or_say_why_not() {
        let cases: &[(Option<&str>, Result<Value, &str>)] = &[
            (
                Some("#!/bin/sh\ncat\n"),
                Ok(json!({"role": "web", "count": 2})),
            ),
            (Some("#!/bin/sh\necho '[1, 2]'\n"), Ok(json!([1, 2]))),
            (Some("#!/bin/sh\n"), Ok(Value::Null)),
            (
                Some("#!/bin/sh\ntest \"$PWD\" = \"$HOME\" && echo true\n"),
                Ok(json!(true)),
            ),
            (
                Some("#!/bin/sh\necho hello\n"),
                Err("printed no JSON value"),
            ),
            (
                Some("#!/bin/sh\necho broken >&2; exit 3\n"),
                Err("failed (exit status: 3): broken"),
            ),
            (Some("#!/bin/sh\nsleep 30\n"), Err("timed out after 2 s")),
            (
                None,
                Err("has no action \"act\" (etc/action/act is missing)"),
            ),
        ];
        for (script, expected) in cases {
            let outcome = run_script(*script, json!({"role": "web", "count": 2}));
            match expected {
                Ok(value) => assert_eq!(
                    outcome,
                    ActionOutcome {
                        result: Some(value.clone()),
                        error: None
                    },
                    "{script:?}"
                ),
                Err(part) => {
                    let error = outcome.error.unwrap_or_default();
                    assert!(error.contains(part), "{script:?}: {error:?}");
                    assert_eq!(outcome.result, None);
                }
            }
        }
    }

    #[test]
    fn a_name_is_never_a_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let action = PendingAction {
            id: 1,
            name: "../../bin/true".to_owned(),
            parameters: Default::default(),
        };
        let outcome = run(dir.path(), None, &action, Duration::from_secs(2));
        assert!(
            outcome
                .error
                .unwrap_or_default()
                .contains("is not an action name")
        );
    }
}
