//! The master's files as another user of the machine sees them: the data directory is
//! 0700 and every file in it 0600, for a new data directory and for one an older Grove
//! left wider. Needs root (CI runs as root): it fails, never skips, without it.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use grove_master::{MasterConfig, start};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("exists")
        .permissions()
        .mode()
        & 0o7777
}

/// Reads `path` as `nobody`, as a partition user would.
fn read_as_nobody(path: &Path) -> std::process::Output {
    Command::new("cat")
        .arg(path)
        .uid(65534)
        .gid(65534)
        .output()
        .expect("cat runs")
}

async fn check(data_dir: &Path) {
    let master = start(&MasterConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        data_dir.to_owned(),
    ))
    .await
    .expect("starts");
    assert_eq!(mode(data_dir), 0o700);
    for name in ["master.sqlite", "master.sqlite-wal", "admin.token"] {
        let path = data_dir.join(name);
        assert_eq!(mode(&path), 0o600, "{name}");
        let read = read_as_nobody(&path);
        assert!(
            !read.status.success(),
            "{name} was readable by another user"
        );
        assert!(
            String::from_utf8_lossy(&read.stderr).contains("Permission denied"),
            "{name}: {}",
            String::from_utf8_lossy(&read.stderr)
        );
    }
    master.stop().await;
}

#[tokio::test]
async fn the_master_files_are_its_own() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test reads the master's files as another user: run it as root (CI does)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let fresh = dir.path().join("fresh");
    check(&fresh).await;

    // A data directory an older Grove made with wider modes is narrowed at start.
    let old = dir.path().join("old");
    check(&old).await;
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for name in ["master.sqlite", "admin.token"] {
        std::fs::set_permissions(old.join(name), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
    }
    check(&old).await;
}
