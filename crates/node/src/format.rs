//! Formatting: the roots and the partitions, with their users and addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::NodeError;
use crate::config::Config;
use crate::os::Os;

/// A formatted partition, as its resource file records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub reference: String,
    pub path: PathBuf,
    pub addresses: Vec<String>,
    /// The partition's user, when isolated: name, uid, gid.
    pub user: Option<PartitionUser>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl Slot {
    pub fn ids(&self) -> Option<(u32, u32)> {
        self.user.as_ref().map(|u| (u.uid, u.gid))
    }

    /// The partition's directory, for acting in it without being steered out of it.
    pub fn tree(&self) -> Result<grove_confine::Tree, grove_confine::ConfineError> {
        let owner = self.user.as_ref().map(|u| grove_confine::Owner {
            uid: u.uid,
            gid: u.gid,
        });
        grove_confine::Tree::open(&self.path, owner)
    }
}

/// What the format remembers: the count, which cannot shrink.
#[derive(Debug, Serialize, Deserialize)]
struct Formatted {
    partitions: u32,
}

const FORMATTED: &str = ".grove-format.json";
/// Each partition's resource file (SlapOS's `.slapos-resource`).
pub const RESOURCE_FILE: &str = ".grove-resource.json";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |source| NodeError::Io {
        path: path.to_owned(),
        source,
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), NodeError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io(path))
}

/// Whether partitions get users of their own.
pub fn isolated(config: &Config, os: &dyn Os) -> bool {
    config.isolation && os.is_root()
}

/// The addresses of partition `index`.
pub fn addresses(config: &Config, index: u32) -> Vec<IpAddr> {
    let mut addresses = vec![IpAddr::V4(Ipv4Addr::from(
        u32::from(config.ipv4_base) + index,
    ))];
    if let Some(prefix) = config.ipv6_prefix {
        addresses.push(IpAddr::V6(Ipv6Addr::from(
            u128::from(prefix) + u128::from(index) + 1,
        )));
    }
    addresses
}

/// Partition users must traverse every directory above their partition and the software.
fn reachable_by_others(root: &Path) -> Result<(), NodeError> {
    let root = root.canonicalize().map_err(io(root))?;
    for ancestor in root.ancestors() {
        let mode = std::fs::metadata(ancestor)
            .map_err(io(ancestor))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            return Err(NodeError::Os {
                message: format!(
                    "partition users cannot reach {}: {} is not searchable by others (mode {:o})",
                    root.display(),
                    ancestor.display(),
                    mode & 0o7777
                ),
            });
        }
    }
    Ok(())
}

/// The build user's uid and gid, creating the user when missing; none without isolation
/// (builds then run as the agent's own user).
pub fn build_user(config: &Config, os: &dyn Os) -> Result<Option<(u32, u32)>, NodeError> {
    if !isolated(config, os) {
        return Ok(None);
    }
    os.ensure_user(&config.build_user, &config.software_root)
        .map(Some)
        .map_err(|message| NodeError::Os { message })
}

/// Creates the roots and the partitions, idempotently. Returns every partition.
pub fn format(config: &Config, os: &dyn Os) -> Result<Vec<Slot>, NodeError> {
    for root in [&config.software_root, &config.instance_root] {
        std::fs::create_dir_all(root).map_err(io(root))?;
        set_mode(root, 0o755)?;
    }
    let record = config.instance_root.join(FORMATTED);
    if let Ok(bytes) = std::fs::read(&record)
        && let Ok(before) = serde_json::from_slice::<Formatted>(&bytes)
        && before.partitions > config.partitions
    {
        return Err(NodeError::Shrink {
            before: before.partitions,
            now: config.partitions,
        });
    }
    let isolate = isolated(config, os);
    if isolate {
        for root in [&config.software_root, &config.instance_root] {
            reachable_by_others(root)?;
        }
    }
    let mut slots = Vec::new();
    for index in 0..config.partitions {
        let reference = format!("{}{index}", config.partition_base);
        let path = config.partition_path(&reference);
        std::fs::create_dir_all(&path).map_err(io(&path))?;
        set_mode(&path, 0o750)?;
        let user = if isolate {
            let name = format!("{}{index}", config.user_base);
            let (uid, gid) = os
                .ensure_user(&name, &path)
                .map_err(|message| NodeError::Os { message })?;
            os.chown(&path, uid, gid)
                .map_err(|message| NodeError::Os { message })?;
            Some(PartitionUser { name, uid, gid })
        } else {
            None
        };
        let addresses = addresses(config, index);
        if os.is_root() {
            for address in &addresses {
                let interface = match address {
                    IpAddr::V6(_) => Some(config.ipv6_interface.as_str()),
                    IpAddr::V4(_) => config.ipv4_interface.as_deref(),
                };
                if let Some(interface) = interface {
                    os.add_address(interface, *address)
                        .map_err(|message| NodeError::Os { message })?;
                }
            }
        }
        let slot = Slot {
            reference,
            path: path.clone(),
            addresses: addresses.iter().map(ToString::to_string).collect(),
            user,
        };
        let json = serde_json::to_vec_pretty(&slot).map_err(|e| NodeError::Os {
            message: e.to_string(),
        })?;
        // The partition's user controls its directory: the name is replaced, whatever it
        // planted there, and nothing is followed.
        grove_confine::Tree::open(&path, None)
            .and_then(|tree| tree.replace(Path::new(RESOURCE_FILE), &json, 0o644))
            .map_err(|e| NodeError::Os {
                message: e.to_string(),
            })?;
        slots.push(slot);
    }
    let json = serde_json::to_vec(&Formatted {
        partitions: config.partitions,
    })
    .map_err(|e| NodeError::Os {
        message: e.to_string(),
    })?;
    std::fs::write(&record, json).map_err(io(&record))?;
    Ok(slots)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Plays root without being it: records what it was asked.
    #[derive(Debug, Default)]
    struct Recorder {
        calls: Mutex<Vec<String>>,
    }

    impl Os for Recorder {
        fn is_root(&self) -> bool {
            true
        }
        fn ensure_user(&self, name: &str, _home: &Path) -> Result<(u32, u32), String> {
            self.calls
                .lock()
                .expect("lock")
                .push(format!("user {name}"));
            Ok((5000, 5000))
        }
        fn chown(&self, path: &Path, uid: u32, _gid: u32) -> Result<(), String> {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            self.calls
                .lock()
                .expect("lock")
                .push(format!("chown {name} {uid}"));
            Ok(())
        }
        fn add_address(&self, interface: &str, address: IpAddr) -> Result<(), String> {
            self.calls
                .lock()
                .expect("lock")
                .push(format!("address {address} {interface}"));
            Ok(())
        }
    }

    fn config(dir: &Path, partitions: u32) -> Config {
        // Partition users must be able to traverse it.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut config = Config::new("http://127.0.0.1:1", "c", "t");
        config.software_root = dir.join("soft");
        config.instance_root = dir.join("inst");
        config.partitions = partitions;
        config
    }

    #[test]
    fn as_root_each_partition_gets_a_user_and_an_address() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = config(dir.path(), 2);
        config.ipv6_prefix = Some("fd00:77::".parse().expect("ip"));
        let os = Recorder::default();
        let slots = format(&config, &os).expect("formats");
        assert_eq!(
            *os.calls.lock().expect("lock"),
            [
                "user slapuser0",
                "chown slappart0 5000",
                "address fd00:77::1 lo",
                "user slapuser1",
                "chown slappart1 5000",
                "address fd00:77::2 lo",
            ]
        );
        assert_eq!(slots[1].addresses, ["127.77.0.2", "fd00:77::2"]);
        assert_eq!(
            slots[1].user.as_ref().map(|u| u.name.as_str()),
            Some("slapuser1")
        );
        let mode = std::fs::metadata(&slots[0].path)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o750);
        let resource: Slot = serde_json::from_slice(
            &std::fs::read(slots[0].path.join(RESOURCE_FILE)).expect("resource file"),
        )
        .expect("json");
        assert_eq!(resource, slots[0]);
    }

    #[test]
    fn without_isolation_nothing_is_asked_of_the_system() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = config(dir.path(), 2);
        config.isolation = false;
        let os = Recorder::default();
        let slots = format(&config, &os).expect("formats");
        assert!(os.calls.lock().expect("lock").is_empty());
        assert!(slots.iter().all(|s| s.user.is_none()));
    }

    #[test]
    fn the_count_grows_and_never_shrinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let os = crate::os::Host;
        let mut config = config(dir.path(), 2);
        config.isolation = false;
        std::fs::create_dir_all(config.instance_root.join("slappart0/keep")).expect("mkdir");
        format(&config, &os).expect("formats");
        format(&config, &os).expect("formats again");
        assert!(config.instance_root.join("slappart0/keep").is_dir());
        config.partitions = 3;
        assert_eq!(format(&config, &os).expect("grows").len(), 3);
        config.partitions = 1;
        let error = format(&config, &os).expect_err("cannot shrink");
        assert_eq!(
            error.to_string(),
            "the partition count cannot shrink from 3 to 1"
        );
    }
}
