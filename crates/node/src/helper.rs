//! Work the root agent hands to an unprivileged user: a software release's build (as the
//! build user) and an instance profile's run (as the partition's user). The agent runs
//! `grove node build-software` or `grove node run-instance` as that user, with a clean
//! environment, in a process group of its own, the job as JSON on standard input and the
//! outcome as JSON on standard output.
//!
//! Nothing a job starts outlives it: the helper makes itself the subreaper of everything
//! it starts (orphans come back to it) and kills what is left before it answers; the agent
//! then kills the helper's process group too.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

use crate::instance::SERVICE_PATH;
use crate::procfs;

/// How much of a helper's error output is kept.
const STDERR_LIMIT: u64 = 256 * 1024;

/// Why a helper did not do its job.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot hand the job over to {program}: {source}")]
    Input {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot wait for {program}: {source}")]
    Wait {
        program: PathBuf,
        source: std::io::Error,
    },
    /// The helper ran and failed: what it said (its error output), or how it ended.
    #[error("{0}")]
    Failed(String),
    #[error("cannot become a subreaper: {0}")]
    Subreaper(std::io::Error),
}

/// Runs `program args` as `uid:gid` in `cwd` with `input` on its standard input; returns
/// its standard output, or its error output when it fails.
pub fn run_as(
    program: &Path,
    args: &[&str],
    cwd: &Path,
    (uid, gid): (u32, u32),
    input: &[u8],
) -> Result<String, HelperError> {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", SERVICE_PATH)
        .env("HOME", cwd)
        .env("LANG", "C.UTF-8")
        .uid(uid)
        .gid(gid)
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| HelperError::Spawn {
            program: program.to_owned(),
            source,
        })?;
    let group = child.id();
    let stderr = child.stderr.take().map(|pipe| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.take(STDERR_LIMIT).read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    });
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .map_err(|source| HelperError::Input {
                program: program.to_owned(),
                source,
            })?;
    }
    let mut stdout = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        let _ = pipe.read_to_string(&mut stdout);
    }
    let status = child.wait();
    // Whatever is left in its group goes with it.
    if let Ok(group) = i32::try_from(group) {
        let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
    }
    let status = status.map_err(|source| HelperError::Wait {
        program: program.to_owned(),
        source,
    })?;
    let stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    if status.success() {
        Ok(stdout)
    } else {
        Err(HelperError::Failed(match stderr.trim() {
            "" => format!("{} failed ({status})", args.join(" ")),
            message => message.to_owned(),
        }))
    }
}

/// In a helper, first: orphans of what it starts come back to it (so that
/// [`end_descendants`] finds them, whatever process group or session they moved to), and
/// what it creates is readable by others (partition users run a release's binaries).
pub fn contain() -> Result<(), HelperError> {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .map_err(|e| HelperError::Subreaper(e.into()))
}

/// In a helper, when its job is done: kills every process it started that is still
/// there, and reaps them.
pub fn end_descendants() {
    let me = std::process::id();
    for _ in 0..100 {
        let children: Vec<u32> = procfs::processes()
            .into_iter()
            .filter(|p| p.ppid == me)
            .map(|p| p.pid)
            .collect();
        if children.is_empty() {
            return;
        }
        procfs::signal_each(&children, Signal::SIGKILL);
        std::thread::sleep(std::time::Duration::from_millis(10));
        while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
            if matches!(status, nix::sys::wait::WaitStatus::StillAlive) {
                break;
            }
        }
    }
}
