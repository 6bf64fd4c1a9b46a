//! Formatting on the real system, as root: users own their partitions, and the IPv6
//! addresses are added to the loopback interface where services can bind them.

use std::net::{IpAddr, TcpListener};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use grove_node::config::Config;
use grove_node::format::format;
use grove_node::{Host, Os};

fn loopback_has(address: &str) -> bool {
    let output = Command::new("ip")
        .args(["-6", "-o", "addr", "show", "dev", "lo"])
        .output()
        .expect("ip runs");
    String::from_utf8_lossy(&output.stdout).contains(&format!(" {address}/128"))
}

#[test]
fn as_root_partitions_get_users_and_bindable_ipv6_addresses() {
    assert!(
        Host.is_root(),
        "formatting with users and addresses needs root: run this test as root (CI does)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut config = Config::new("http://127.0.0.1:1", "c", "t");
    config.software_root = dir.path().join("software");
    config.instance_root = dir.path().join("instance");
    config.partitions = 2;
    config.user_base = "gfmtu".to_owned();
    config.ipv4_base = "127.93.0.1".parse().expect("ip");
    config.ipv6_prefix = Some("fd00:93::".parse().expect("ip"));

    let slots = format(&config, &Host).expect("formats");
    // Again: idempotent, no duplicate address, same users.
    let again = format(&config, &Host).expect("formats again");
    assert_eq!(slots, again);

    for (index, slot) in slots.iter().enumerate() {
        let user = slot.user.as_ref().expect("a user of its own");
        assert_eq!(user.name, format!("gfmtu{index}"));
        let meta = std::fs::metadata(&slot.path).expect("partition");
        assert_eq!((meta.uid(), meta.gid()), (user.uid, user.gid));
        assert_eq!(meta.permissions().mode() & 0o777, 0o750);
        let ipv6 = format!("fd00:93::{}", index + 1);
        assert_eq!(
            slot.addresses,
            [format!("127.93.0.{}", index + 1), ipv6.clone()]
        );
        assert!(loopback_has(&ipv6), "{ipv6} is on lo");
        let address: IpAddr = ipv6.parse().expect("ip");
        let listener = TcpListener::bind((address, 0)).expect("a service can bind it");
        drop(listener);
    }
    let (uid0, uid1) = (
        slots[0].user.as_ref().map(|u| u.uid),
        slots[1].user.as_ref().map(|u| u.uid),
    );
    assert_ne!(uid0, uid1);

    for slot in &slots {
        let _ = Command::new("ip")
            .args([
                "-6",
                "addr",
                "del",
                &format!("{}/128", slot.addresses[1]),
                "dev",
                "lo",
            ])
            .status();
    }
}
