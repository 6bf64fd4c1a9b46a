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

/// Whose processes belong to a partition: its user's (when isolated: whatever their
/// working directory), or those working in its directory.
#[derive(Debug, Clone)]
pub(crate) enum Tenant {
    User(u32),
    Directory(PathBuf),
}

fn owner_of(pid: u32) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}"))
        .ok()
        .map(|m| m.uid())
}

fn belongs(pid: u32, tenant: &Tenant) -> bool {
    match tenant {
        Tenant::User(uid) => owner_of(pid) == Some(*uid),
        Tenant::Directory(dir) => {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(dir))
        }
    }
}

/// Ends every process of a partition's former tenant (SIGTERM, then SIGKILL after
/// `grace`), so that a freed partition holds none. Returns how many there were.
pub(crate) fn end_tenant(tenant: &Tenant, grace: Duration) -> usize {
    let own = std::process::id();
    let find = || -> Vec<u32> {
        procfs::processes()
            .into_iter()
            .map(|p| p.pid)
            // Zombies have no start time: they are dead already, waiting for their parent.
            .filter(|pid| {
                *pid != own && belongs(*pid, tenant) && grove_supervisor::start_time(*pid).is_some()
            })
            .collect()
    };
    let first = find();
    if first.is_empty() {
        return 0;
    }
    tracing::warn!(
        count = first.len(),
        ?tenant,
        "stopping processes the agent does not supervise"
    );
    procfs::signal_each(&first, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    let mut left = find();
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        left = find();
    }
    // Whatever is left, and whatever it forked meanwhile, until none is.
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        procfs::signal_each(&left, Signal::SIGKILL);
        std::thread::sleep(Duration::from_millis(20));
        left = find();
    }
    first.len()
}
