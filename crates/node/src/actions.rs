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

use grove_api::actions::{
    ACTION_DIR, ActionOutcome, LOG_LINES, LOGS_ACTION, MAX_LOG_LINES, PendingAction, is_action_name,
};
use grove_confine::{Kind, Owner, Tree};

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
    if action.name == LOGS_ACTION {
        let lines = action
            .parameters
            .get("lines")
            .and_then(serde_json::Value::as_u64)
            .map_or(LOG_LINES, |n| usize::try_from(n).unwrap_or(MAX_LOG_LINES))
            .clamp(1, MAX_LOG_LINES);
        return log_tails(partition, user, lines);
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

/// How much of the end of a log is read to find its last lines.
const TAIL_BYTES: u64 = 64 * 1024;

/// The last `lines` lines of each service's log ([`LOGS_ACTION`]). The partition's user
/// controls these files: they are opened through a [`Tree`] (no link followed, a FIFO
/// refused, nothing outside the partition), and a file that is not a plain log is said,
/// not read.
fn log_tails(partition: &Path, user: Option<(u32, u32)>, lines: usize) -> ActionOutcome {
    use std::io::{Read, Seek, SeekFrom};
    let owner = user.map(|(uid, gid)| Owner { uid, gid });
    let tree = match Tree::open(partition, owner) {
        Ok(tree) => tree,
        Err(e) => return failed(format!("cannot open the partition: {e}")),
    };
    let dir = Path::new(crate::config::LOG_DIR);
    let entries = match tree.entries(dir) {
        Ok(entries) => entries,
        Err(e) => return failed(format!("cannot list the logs: {e}")),
    };
    let mut tails = serde_json::Map::new();
    for entry in entries.iter().filter(|e| e.kind == Kind::File) {
        let name = entry.name.to_string_lossy();
        let Some(service) = name.strip_suffix(".log") else {
            continue;
        };
        let text = match tree.open_file(&dir.join(&entry.name)) {
            Ok(mut file) => {
                let start = entry.size.saturating_sub(TAIL_BYTES);
                let mut bytes = Vec::new();
                match file
                    .seek(SeekFrom::Start(start))
                    .and_then(|_| file.take(TAIL_BYTES).read_to_end(&mut bytes))
                {
                    Ok(_) => last_lines(&String::from_utf8_lossy(&bytes), lines, start > 0),
                    Err(e) => format!("(cannot read it: {e})"),
                }
            }
            Err(e) => format!("(not read: {e})"),
        };
        tails.insert(service.to_owned(), serde_json::Value::String(text));
    }
    ActionOutcome {
        result: Some(serde_json::Value::Object(tails)),
        error: None,
    }
}

/// The last `count` lines of `text`; the first is dropped when the text starts in the
/// middle of a line (`cut`).
fn last_lines(text: &str, count: usize, cut: bool) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    if cut && !lines.is_empty() {
        lines.remove(0);
    }
    let from = lines.len().saturating_sub(count);
    lines[from..].join("\n")
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

    #[test]
    fn the_logs_action_reads_the_end_of_each_log_and_nothing_outside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let logs = dir.path().join(crate::config::LOG_DIR);
        std::fs::create_dir_all(&logs).expect("log dir");
        let long: String = (1..=5000).map(|n| format!("line {n}\n")).collect();
        std::fs::write(logs.join("web.log"), &long).expect("web.log");
        std::fs::write(logs.join("db.log"), "ready\n").expect("db.log");
        let canary = dir.path().join("outside-canary");
        std::fs::write(&canary, "secret canary\n").expect("canary");
        std::os::unix::fs::symlink(&canary, logs.join("link.log")).expect("link");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            logs.join("fifo.log"),
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .expect("fifo");
        std::fs::write(logs.join("notes.txt"), "not a log").expect("notes");
        let action = |parameters: Value| PendingAction {
            id: 1,
            name: LOGS_ACTION.to_owned(),
            parameters: parameters.as_object().cloned().unwrap_or_default(),
        };
        let outcome = run(
            dir.path(),
            None,
            &action(json!({"lines": 3})),
            Duration::from_secs(2),
        );
        assert_eq!(outcome.error, None);
        let result = outcome.result.expect("a result");
        assert_eq!(result["web"], "line 4998\nline 4999\nline 5000");
        assert_eq!(result["db"], "ready");
        assert!(
            result.get("notes").is_none()
                && result.get("link").is_none()
                && result.get("fifo").is_none(),
            "{result}"
        );
        assert!(!result.to_string().contains("secret canary"));
        let default = run(dir.path(), None, &action(json!({})), Duration::from_secs(2));
        let web = default.result.expect("a result")["web"]
            .as_str()
            .map(str::to_owned)
            .expect("text");
        assert_eq!(web.lines().count(), LOG_LINES);
        assert!(web.starts_with("line 4961\n"), "{web}");
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
