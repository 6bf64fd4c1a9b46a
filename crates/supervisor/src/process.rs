//! A supervised process: a child the supervisor started, or one it adopted from a
//! previous supervisor (not its child: watched through a pidfd, which the kernel makes
//! readable when the process exits).

use std::os::fd::OwnedFd;
use std::time::{Duration, SystemTime};

use nix::sys::signal::Signal;
use tokio::io::unix::AsyncFd;

use crate::signal_group;

/// Why a recorded process cannot be adopted.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error("not a pid")]
    NotAPid,
    #[error("gone ({0})")]
    Gone(std::io::Error),
    #[error("another process has that pid now")]
    Reused,
    #[error("cannot watch it: {0}")]
    Watch(std::io::Error),
}

pub(crate) enum Proc {
    Child(tokio::process::Child),
    Adopted {
        pid: u32,
        pidfd: AsyncFd<OwnedFd>,
        since: SystemTime,
    },
}

impl std::fmt::Debug for Proc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Proc({:?})", self.pid())
    }
}

/// A process's start time, in clock ticks after boot (field 22 of /proc/<pid>/stat):
/// with the pid, it names one process, not whichever later got the same pid.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // The state is field 3: a zombie has exited already.
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(22 - 3)?.parse().ok()
}

/// When a process started, from its start time in ticks and the boot time.
fn started_at(ticks: u64) -> SystemTime {
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    // Linux reports /proc times in USER_HZ, 100 on every architecture it runs on.
    SystemTime::UNIX_EPOCH + Duration::from_secs(boot) + Duration::from_millis(ticks * 10)
}

/// Registers a pidfd with the runtime (readable once the process exits).
#[allow(unsafe_code)]
fn watch(pidfd: OwnedFd) -> std::io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the `OwnedFd` is a valid, open descriptor, and `AsyncFd` owns it until it
    // is deregistered: nothing else can close or replace it meanwhile.
    unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

impl Proc {
    /// Takes over `pid` if it is still the process that started at `start`.
    pub(crate) fn adopt(pid: u32, start: u64) -> Result<Proc, AdoptError> {
        let id = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .ok_or(AdoptError::NotAPid)?;
        let pidfd = rustix::process::pidfd_open(id, rustix::process::PidfdFlags::empty())
            .map_err(|e| AdoptError::Gone(e.into()))?;
        // Checked after the pidfd is open: the pidfd holds this very process, so a pid
        // reused after the check cannot be mistaken for it.
        if start_time(pid) != Some(start) {
            return Err(AdoptError::Reused);
        }
        let pidfd = watch(pidfd).map_err(AdoptError::Watch)?;
        Ok(Proc::Adopted {
            pid,
            pidfd,
            since: started_at(start),
        })
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        match self {
            Proc::Child(child) => child.id(),
            Proc::Adopted { pid, .. } => Some(*pid),
        }
    }

    pub(crate) fn since(&self) -> SystemTime {
        match self {
            Proc::Child(_) => SystemTime::now(),
            Proc::Adopted { since, .. } => *since,
        }
    }

    /// Waits for the process to exit; how it ended, as text.
    pub(crate) async fn wait(&mut self) -> String {
        match self {
            Proc::Child(child) => match child.wait().await {
                Ok(code) => code.to_string(),
                Err(e) => format!("cannot wait: {e}"),
            },
            Proc::Adopted { pidfd, .. } => match pidfd.readable().await {
                // Not our child: its exit status went to its parent (init).
                Ok(_) => "exited (adopted: exit status unknown)".to_owned(),
                Err(e) => format!("cannot wait: {e}"),
            },
        }
    }

    /// SIGTERM to the group, SIGKILL after `grace`; returns once the process is gone.
    pub(crate) async fn stop(&mut self, grace: Duration, name: &str) {
        let Some(pid) = self.pid() else {
            return;
        };
        signal_group(pid, Signal::SIGTERM);
        if tokio::time::timeout(grace, self.wait()).await.is_err() {
            tracing::warn!(service = %name, "service ignored SIGTERM; killing it");
        }
        signal_group(pid, Signal::SIGKILL);
        if tokio::time::timeout(grace, self.wait()).await.is_err() {
            tracing::warn!(service = %name, pid, "service still there after SIGKILL");
        }
    }
}
