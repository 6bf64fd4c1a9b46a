//! As root, what the agent does in a partition, against what the partition's user may plant
//! there: links to a root-owned canary file and to a root-owned directory, FIFOs, files
//! swapped for links. Each test checks the outcome (the canary and the directory beside it
//! unchanged, nothing new outside the partition), as the agent's own functions run it.
//! Needs root (CI runs as root): the tests fail, never skip, without it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use grove_node::instance::{check_promises, services, wipe};
use grove_node::{Host, Slot};

/// `nobody`: a user that owns nothing else here.
const USER: (u32, u32) = (65534, 65534);

struct Scene {
    _dir: tempfile::TempDir,
    partition: PathBuf,
    canary: PathBuf,
    /// A root-only directory with a file in it, beside the partition.
    outside: PathBuf,
}

fn scene() -> Scene {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests check what root does: run them as root (CI does)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let partition = dir.path().join("slappart0");
    std::fs::create_dir(&partition).expect("mkdir");
    std::os::unix::fs::chown(&partition, Some(USER.0), Some(USER.1)).expect("chown");
    std::fs::set_permissions(&partition, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    let canary = dir.path().join("canary");
    std::fs::write(&canary, "canary\n").expect("write");
    std::fs::set_permissions(&canary, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::fs::write(outside.join("keep"), "keep\n").expect("write");
    Scene {
        _dir: dir,
        partition,
        canary,
        outside,
    }
}

impl Scene {
    /// As the partition's user would: the directories are theirs.
    fn plant_dir(&self, relative: &str) -> PathBuf {
        let path = self.partition.join(relative);
        std::fs::create_dir_all(&path).expect("mkdir");
        let mut dir = path.as_path();
        while dir != self.partition {
            std::os::unix::fs::chown(dir, Some(USER.0), Some(USER.1)).expect("chown");
            dir = dir.parent().expect("parent");
        }
        path
    }

    fn link(&self, relative: &str, target: &Path) {
        std::os::unix::fs::symlink(target, self.partition.join(relative)).expect("link");
    }

    fn fifo(&self, relative: &str) {
        nix::unistd::mkfifo(
            &self.partition.join(relative),
            nix::sys::stat::Mode::from_bits_truncate(0o666),
        )
        .expect("mkfifo");
    }

    fn assert_untouched(&self) {
        assert_eq!(
            std::fs::read_to_string(&self.canary).expect("canary"),
            "canary\n"
        );
        assert_eq!(
            std::fs::metadata(&self.canary).expect("canary").mode() & 0o777,
            0o600
        );
        let names: Vec<_> = std::fs::read_dir(&self.outside)
            .expect("outside")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["keep"], "the directory outside changed");
        assert_eq!(
            std::fs::read_to_string(self.outside.join("keep")).expect("keep"),
            "keep\n"
        );
    }

    fn slot(&self) -> Slot {
        Slot {
            reference: "slappart0".to_owned(),
            path: self.partition.clone(),
            addresses: Vec::new(),
            user: Some(grove_node::format::PartitionUser {
                name: "nobody".to_owned(),
                uid: USER.0,
                gid: USER.1,
            }),
        }
    }
}

#[test]
fn launchers_that_are_links_fifos_or_link_directories_are_not_read_through() {
    let scene = scene();
    let service = scene.plant_dir("etc/service");
    scene.link("etc/service/canary", &scene.canary);
    scene.fifo("etc/service/pipe");
    std::fs::write(service.join("real"), "#!/bin/sh\nexec sleep 1\n").expect("write");
    std::fs::set_permissions(service.join("real"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    // etc/run is a link to a directory outside: refused, not listed through.
    scene.link("etc/run", &scene.outside);
    let tree = scene.slot().tree().expect("tree");
    let started = Instant::now();
    let error = services(&tree).expect_err("etc/run is a link");
    assert!(error.to_string().contains("symbolic link"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a FIFO held the agent"
    );
    std::fs::remove_file(scene.partition.join("etc/run")).expect("rm");
    let found = services(&tree).expect("lists");
    let names: Vec<&str> = found.iter().map(|l| l.name.as_str()).collect();
    // The link is listed (its user runs it, and may follow it), read as a link only; the
    // FIFO is not a launcher.
    assert_eq!(names, ["canary", "real"]);
    assert_eq!(found[0].digest, format!("link {}", scene.canary.display()));
    scene.assert_untouched();
}

#[test]
fn promises_run_as_the_user_and_a_fifo_holds_nothing() {
    let scene = scene();
    let promise = scene.plant_dir("etc/promise");
    scene.fifo("etc/promise/pipe");
    scene.link("etc/promise/canary", &scene.canary);
    std::fs::write(
        promise.join("write"),
        format!("#!/bin/sh\necho owned >> {}\n", scene.canary.display()),
    )
    .expect("write");
    std::fs::set_permissions(
        promise.join("write"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    let started = Instant::now();
    let failures = check_promises(&scene.partition, Some(USER), Duration::from_secs(5));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a FIFO held the agent"
    );
    let names: Vec<&str> = failures.iter().map(|f| f.name.as_str()).collect();
    // The canary is neither executable by the user nor writable: both fail, as the user.
    assert_eq!(names, ["canary", "write"], "{failures:?}");
    assert!(
        failures[1].message.contains("Permission denied"),
        "{failures:?}"
    );
    scene.assert_untouched();
}

#[test]
fn the_wipe_removes_links_never_what_they_point_to() {
    let scene = scene();
    scene.plant_dir("srv/deep");
    scene.link("srv/deep/dir", &scene.outside);
    scene.link("srv/canary", &scene.canary);
    scene.link("outside", &scene.outside);
    scene.fifo("pipe");
    // A destroy script that swaps a directory for a link to the outside while it runs.
    let sbin = scene.plant_dir("sbin");
    std::fs::write(
        sbin.join("destroy"),
        format!(
            "#!/bin/sh\nmv srv srv.old && ln -s {} srv\n",
            scene.outside.display()
        ),
    )
    .expect("write");
    std::fs::set_permissions(sbin.join("destroy"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    std::fs::write(scene.partition.join(".grove-resource.json"), "{}").expect("write");
    wipe(&scene.partition, Some(USER), Duration::from_secs(5)).expect("wipes");
    let left: Vec<_> = std::fs::read_dir(&scene.partition)
        .expect("partition")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, [".grove-resource.json"]);
    scene.assert_untouched();
}

#[test]
fn the_format_replaces_a_planted_resource_file_without_writing_through_it() {
    let scene = scene();
    let mut config = grove_node::Config::new("http://127.0.0.1:1", "c", "t");
    config.instance_root = scene.partition.parent().expect("root").to_owned();
    config.software_root = config.instance_root.join("software");
    config.partitions = 1;
    config.isolation = false;
    scene.link(".grove-resource.json", &scene.canary);
    grove_node::format::format(&config, &Host).expect("formats");
    let resource = scene.partition.join(".grove-resource.json");
    assert!(
        std::fs::symlink_metadata(&resource)
            .expect("resource")
            .is_file()
    );
    assert!(
        std::fs::read_to_string(&resource)
            .expect("read")
            .contains("slappart0")
    );
    scene.assert_untouched();
}
