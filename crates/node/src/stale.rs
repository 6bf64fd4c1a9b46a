//! Services left behind by an agent that died without stopping them (`kill -9`, a crash):
//! they still hold their ports, so the agent stops them before starting its own.
//!
//! A leftover service is recognised by what the supervisor made of it: the leader of its
//! own process group, working in a partition's directory, and orphaned (its parent, the
//! dead agent, is gone, so it belongs to init).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::procfs;

/// The process groups of leftover services in these partition directories.
pub(crate) fn leftovers(partitions: &[PathBuf]) -> Vec<(u32, PathBuf)> {
    let partitions: Vec<PathBuf> = partitions
        .iter()
        .map(|p| p.canonicalize().unwrap_or_else(|_| p.clone()))
        .collect();
    let own = std::process::id();
    procfs::processes()
        .into_iter()
        .filter(|p| p.pid != own && p.pid == p.pgid && p.ppid == 1)
        .filter_map(|p| {
            let cwd = std::fs::read_link(format!("/proc/{}/cwd", p.pid)).ok()?;
            partitions
                .iter()
                .any(|dir| dir == &cwd)
                .then_some((p.pid, cwd))
        })
        .collect()
}

/// Stops the groups: SIGTERM, then SIGKILL for those still there after `grace`.
pub(crate) fn stop(groups: &[(u32, PathBuf)], grace: Duration) {
    let alive = |pid: u32| Path::new(&format!("/proc/{pid}")).exists();
    for (pid, cwd) in groups {
        tracing::warn!(pid, partition = %cwd.display(), "stopping a service left by a previous agent");
        if let Ok(pid) = i32::try_from(*pid) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && groups.iter().any(|(pid, _)| alive(*pid)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for (pid, _) in groups {
        if let Ok(pid) = i32::try_from(*pid) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}
