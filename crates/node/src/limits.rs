//! A partition's size, enforced with the kernel's controls: each sized partition gets a
//! control group with its CPU quota and memory limit, which its services join before they
//! run. cgroup v2 (`cpu.max`, `memory.max`) where the machine has its cpu and memory
//! controllers, else cgroup v1's cpu and memory hierarchies (`cpu.cfs_quota_us`,
//! `memory.limit_in_bytes`), else nothing: the node then reports its limits as not
//! enforced. A service over its memory is killed by the kernel, and the supervisor
//! restarts it.
//!
//! The controls are behind [`Limits`], so that the agent is tested without root; the
//! real ones are exercised by the root tests.

use std::io;
use std::path::{Path, PathBuf};

use grove_api as api;

/// The CPU accounting period: a quota of `millicores * 100` microseconds in it.
const PERIOD_US: u64 = 100_000;

/// Where a partition's services are confined to their size.
pub trait Limits: Send + Sync + std::fmt::Debug {
    /// Whether sizes are enforced at all.
    fn enforced(&self) -> bool;
    /// Creates the partition's group, or updates its limits, and returns the files a
    /// process writes `0` to in order to join it (one per hierarchy).
    fn apply(&self, partition: &str, size: &api::Size) -> io::Result<Vec<PathBuf>>;
    /// Removes the partition's group (its processes have ended).
    fn remove(&self, partition: &str) -> io::Result<()>;
    /// The most memory the partition's group used since the last call, and resets it;
    /// none when the partition has no group.
    fn take_peak_memory(&self, partition: &str) -> Option<u64>;
}

/// No enforcement: not root, or no controller.
#[derive(Debug, Clone)]
pub struct Unlimited {
    pub why: String,
}

impl Limits for Unlimited {
    fn enforced(&self) -> bool {
        false
    }

    fn apply(&self, _partition: &str, _size: &api::Size) -> io::Result<Vec<PathBuf>> {
        Ok(Vec::new())
    }

    fn remove(&self, _partition: &str) -> io::Result<()> {
        Ok(())
    }

    fn take_peak_memory(&self, _partition: &str) -> Option<u64> {
        None
    }
}

/// cgroup v2: one group per partition below `root` (`/sys/fs/cgroup/grove`).
#[derive(Debug, Clone)]
pub struct CgroupV2 {
    pub root: PathBuf,
}

/// cgroup v1: one group per partition in the cpu and in the memory hierarchy.
#[derive(Debug, Clone)]
pub struct CgroupV1 {
    pub cpu: PathBuf,
    pub memory: PathBuf,
}

fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    std::fs::write(dir.join(file), value)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.join(file).display())))
}

fn read_number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A partition's group directory; the name is the partition's reference, which the
/// agent made (`slappart3`), never a tenant's.
fn group(base: &Path, partition: &str) -> io::Result<PathBuf> {
    if partition.is_empty() || partition.contains('/') || partition.starts_with('.') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{partition:?} is no partition reference"),
        ));
    }
    let dir = base.join(partition);
    match std::fs::create_dir(&dir) {
        Ok(()) => Ok(dir),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(dir),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
    }
}

fn remove_group(base: &Path, partition: &str) -> io::Result<()> {
    match std::fs::remove_dir(base.join(partition)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("{}: {e}", base.join(partition).display()),
        )),
    }
}

impl Limits for CgroupV2 {
    fn enforced(&self) -> bool {
        true
    }

    fn apply(&self, partition: &str, size: &api::Size) -> io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(&self.root)?;
        // The controllers are handed down to the partitions' groups.
        write(&self.root, "cgroup.subtree_control", "+cpu +memory")?;
        let dir = group(&self.root, partition)?;
        write(
            &dir,
            "cpu.max",
            &format!("{} {PERIOD_US}", size.millicores * PERIOD_US / 1000),
        )?;
        write(&dir, "memory.max", &size.memory.to_string())?;
        // Over its memory a service is killed, not swapped out.
        if dir.join("memory.swap.max").exists() {
            write(&dir, "memory.swap.max", "0")?;
        }
        Ok(vec![dir.join("cgroup.procs")])
    }

    fn remove(&self, partition: &str) -> io::Result<()> {
        remove_group(&self.root, partition)
    }

    fn take_peak_memory(&self, partition: &str) -> Option<u64> {
        let dir = self.root.join(partition);
        let peak = read_number(&dir.join("memory.peak"))?;
        // Writing resets it where the kernel allows (6.12 and later); elsewhere it is the
        // peak since the group was made.
        let _ = std::fs::write(dir.join("memory.peak"), "0");
        Some(peak)
    }
}

impl Limits for CgroupV1 {
    fn enforced(&self) -> bool {
        true
    }

    fn apply(&self, partition: &str, size: &api::Size) -> io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(&self.cpu)?;
        std::fs::create_dir_all(&self.memory)?;
        let cpu = group(&self.cpu, partition)?;
        write(&cpu, "cpu.cfs_period_us", &PERIOD_US.to_string())?;
        write(
            &cpu,
            "cpu.cfs_quota_us",
            &(size.millicores * PERIOD_US / 1000).to_string(),
        )?;
        let memory = group(&self.memory, partition)?;
        let limit = size.memory.to_string();
        // memory+swap may never be under memory: raising, it goes first; lowering, after.
        let swap = memory.join("memory.memsw.limit_in_bytes").exists();
        if swap {
            let _ = write(&memory, "memory.memsw.limit_in_bytes", &limit);
        }
        write(&memory, "memory.limit_in_bytes", &limit)?;
        if swap {
            write(&memory, "memory.memsw.limit_in_bytes", &limit)?;
        }
        Ok(vec![cpu.join("cgroup.procs"), memory.join("cgroup.procs")])
    }

    fn remove(&self, partition: &str) -> io::Result<()> {
        remove_group(&self.cpu, partition)?;
        remove_group(&self.memory, partition)
    }

    fn take_peak_memory(&self, partition: &str) -> Option<u64> {
        let dir = self.memory.join(partition);
        let peak = read_number(&dir.join("memory.max_usage_in_bytes"))?;
        let _ = std::fs::write(dir.join("memory.max_usage_in_bytes"), "0");
        Some(peak)
    }
}

/// The controls this machine offers below `mount` (`/sys/fs/cgroup`), as root.
pub fn detect(mount: &Path, is_root: bool) -> Box<dyn Limits> {
    if !is_root {
        return Box::new(Unlimited {
            why: "the agent does not run as root".to_owned(),
        });
    }
    let controllers = std::fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default();
    let has = |name: &str| controllers.split_whitespace().any(|c| c == name);
    if has("cpu") && has("memory") {
        return Box::new(CgroupV2 {
            root: mount.join("grove"),
        });
    }
    let cpu = mount.join("cpu");
    let memory = mount.join("memory");
    if cpu.join("cpu.cfs_quota_us").exists() && memory.join("memory.limit_in_bytes").exists() {
        return Box::new(CgroupV1 {
            cpu: cpu.join("grove"),
            memory: memory.join("grove"),
        });
    }
    Box::new(Unlimited {
        why: format!(
            "no cgroup v2 cpu and memory controllers nor v1 cpu and memory hierarchies under {}",
            mount.display()
        ),
    })
}

/// What the computer gives its partitions: its CPUs, memory and the disk of the instance
/// root, each replaced by the configuration's value when it has one.
pub fn capacity(config: &crate::Config, enforced: bool) -> api::Capacity {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|rest| rest.trim().strip_suffix("kB"))
                .and_then(|kib| kib.trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024);
    let disk = rustix::fs::statvfs(existing_ancestor(&config.instance_root))
        .map_or(0, |s| s.f_blocks * s.f_frsize);
    let (configured_cores, configured_memory, configured_disk) = config.configured_capacity();
    api::Capacity {
        millicores: configured_cores.unwrap_or(u64::try_from(cores).unwrap_or(1) * 1000),
        memory: configured_memory.unwrap_or(memory),
        disk: configured_disk.unwrap_or(disk),
        enforced,
    }
}

fn existing_ancestor(path: &Path) -> &Path {
    path.ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> api::Size {
        api::Size {
            name: "small".to_owned(),
            millicores: 500,
            memory: 64 << 20,
            disk: 0,
        }
    }

    /// The files a group is made of, on a plain directory standing for the mount.
    #[test]
    fn v1_writes_quota_period_and_memory_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = CgroupV1 {
            cpu: dir.path().join("cpu"),
            memory: dir.path().join("memory"),
        };
        let joins = limits.apply("slappart0", &small()).expect("applied");
        let read = |p: PathBuf| std::fs::read_to_string(p).expect("written");
        assert_eq!(read(limits.cpu.join("slappart0/cpu.cfs_quota_us")), "50000");
        assert_eq!(
            read(limits.cpu.join("slappart0/cpu.cfs_period_us")),
            "100000"
        );
        assert_eq!(
            read(limits.memory.join("slappart0/memory.limit_in_bytes")),
            (64u64 << 20).to_string()
        );
        assert_eq!(
            joins,
            [
                limits.cpu.join("slappart0/cgroup.procs"),
                limits.memory.join("slappart0/cgroup.procs")
            ]
        );
        assert!(limits.apply("../escape", &small()).is_err());
        assert!(limits.apply("a/b", &small()).is_err());
    }

    #[test]
    fn v2_writes_cpu_max_and_memory_max() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = CgroupV2 {
            root: dir.path().join("grove"),
        };
        let joins = limits.apply("slappart1", &small()).expect("applied");
        let read = |p: PathBuf| std::fs::read_to_string(p).expect("written");
        assert_eq!(read(limits.root.join("slappart1/cpu.max")), "50000 100000");
        assert_eq!(
            read(limits.root.join("slappart1/memory.max")),
            (64u64 << 20).to_string()
        );
        assert_eq!(
            read(limits.root.join("cgroup.subtree_control")),
            "+cpu +memory"
        );
        assert_eq!(joins, [limits.root.join("slappart1/cgroup.procs")]);
    }

    #[test]
    fn without_root_nothing_is_enforced() {
        let limits = detect(Path::new("/sys/fs/cgroup"), false);
        assert!(!limits.enforced());
        assert_eq!(
            limits.apply("slappart0", &small()).expect("nothing"),
            Vec::<PathBuf>::new()
        );
    }
}
