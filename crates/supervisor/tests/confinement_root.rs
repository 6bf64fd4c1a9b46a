//! As root, a service's log is opened and rotated without being steered out of its
//! partition: links (to a root-owned canary file, to a directory), a directory swapped
//! while the service runs, and a FIFO. Each test checks the outcome: the canary is
//! unchanged and no root-owned file appears outside the partition.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use grove_supervisor::{LogFile, Policy, ServiceSpec, State, Supervisor};

/// `nobody`: a user that owns nothing else here.
const USER: (u32, u32) = (65534, 65534);

struct Scene {
    _dir: tempfile::TempDir,
    partition: PathBuf,
    canary: PathBuf,
    outside: PathBuf,
}

fn scene() -> Scene {
    assert!(
        rustix::process::geteuid().is_root(),
        "these tests check what root does: run them as root (CI does)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let partition = dir.path().join("partition");
    std::fs::create_dir(&partition).expect("mkdir");
    std::os::unix::fs::chown(&partition, Some(USER.0), Some(USER.1)).expect("chown");
    std::fs::set_permissions(&partition, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    let canary = dir.path().join("canary");
    std::fs::write(&canary, "canary\n").expect("write");
    std::fs::set_permissions(&canary, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    Scene {
        _dir: dir,
        partition,
        canary,
        outside,
    }
}

impl Scene {
    fn spec(&self, body: &str) -> ServiceSpec {
        let mut env = std::collections::BTreeMap::new();
        env.insert("PATH".into(), "/usr/bin:/bin".into());
        ServiceSpec {
            name: "p/svc".to_owned(),
            program: "/bin/sh".into(),
            args: vec!["-c".into(), body.into()],
            cwd: self.partition.clone(),
            env,
            log: LogFile {
                root: self.partition.clone(),
                relative: ".grove/log/svc.log".into(),
            },
            user: Some(USER),
            revision: String::new(),
            cgroups: Vec::new(),
        }
    }

    /// What the attack must not have changed.
    fn assert_untouched(&self) {
        assert_eq!(
            std::fs::read_to_string(&self.canary).expect("canary"),
            "canary\n",
            "the canary changed"
        );
        let mode = std::fs::metadata(&self.canary).expect("canary").mode();
        assert_eq!(mode & 0o777, 0o600);
        let planted: Vec<_> = std::fs::read_dir(&self.outside)
            .expect("outside")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        assert!(planted.is_empty(), "files appeared outside: {planted:?}");
    }

    fn mkdirs(&self, relative: &str) {
        let path = self.partition.join(relative);
        std::fs::create_dir_all(&path).expect("mkdir");
        for dir in [self.partition.join(".grove"), path] {
            std::os::unix::fs::chown(&dir, Some(USER.0), Some(USER.1)).expect("chown");
        }
    }
}

fn quick() -> Policy {
    Policy {
        first_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(200),
        stop_timeout: Duration::from_millis(500),
        max_log_bytes: 1000,
        log_check: Duration::from_millis(50),
        ..Policy::default()
    }
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_log_linked_to_a_root_file_is_refused() {
    let scene = scene();
    scene.mkdirs(".grove/log");
    std::os::unix::fs::symlink(&scene.canary, scene.partition.join(".grove/log/svc.log"))
        .expect("link");
    let mut supervisor = Supervisor::new(quick());
    let error = supervisor
        .start(scene.spec("echo owned"))
        .expect_err("refused");
    assert!(error.to_string().contains("symbolic link"), "{error}");
    scene.assert_untouched();
}

#[tokio::test]
async fn a_log_directory_linked_outside_is_refused() {
    let scene = scene();
    std::os::unix::fs::symlink(&scene.outside, scene.partition.join(".grove")).expect("link");
    let mut supervisor = Supervisor::new(quick());
    let error = supervisor
        .start(scene.spec("echo owned"))
        .expect_err("refused");
    assert!(error.to_string().contains("symbolic link"), "{error}");
    scene.assert_untouched();
}

#[tokio::test]
async fn a_fifo_in_place_of_the_log_is_refused_at_once() {
    let scene = scene();
    scene.mkdirs(".grove/log");
    let fifo = scene.partition.join(".grove/log/svc.log");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o666),
        0,
    )
    .expect("mkfifo");
    let mut supervisor = Supervisor::new(quick());
    let started = Instant::now();
    assert!(supervisor.start(scene.spec("echo owned")).is_err());
    assert!(started.elapsed() < Duration::from_secs(5), "it blocked");
    scene.assert_untouched();
}

/// The service renames `.grove` away and plants a link in its place, then exits: the
/// supervisor's next start must not write through the link.
#[tokio::test]
async fn a_directory_swapped_while_running_is_refused_at_the_restart() {
    let scene = scene();
    let body = format!(
        "echo first; mv .grove .moved && ln -s {} .grove; exit 1",
        scene.outside.display()
    );
    let mut supervisor = Supervisor::new(quick());
    supervisor.start(scene.spec(&body)).expect("starts");
    wait_for("a failed restart", || {
        supervisor
            .status_of("p/svc")
            .is_some_and(|s| s.state == State::Failed)
    })
    .await;
    let status = supervisor.status_of("p/svc").expect("status");
    assert!(
        status
            .last_exit
            .as_deref()
            .is_some_and(|e| e.contains("symbolic link")),
        "{status:?}"
    );
    supervisor.stop_all().await;
    // The first run logged where it should, as its user.
    let first = scene.partition.join(".moved/log/svc.log");
    assert_eq!(std::fs::read_to_string(&first).expect("log"), "first\n");
    assert_eq!(std::fs::metadata(&first).expect("log").uid(), USER.0);
    scene.assert_untouched();
}

/// The rotation copies to `svc.log.1`: a link planted there is replaced, not followed.
#[tokio::test]
async fn the_rotation_replaces_a_planted_link_instead_of_writing_through_it() {
    let scene = scene();
    let body = format!(
        "ln -s {} .grove/log/svc.log.1; head -c 5000 /dev/zero; exec sleep 60",
        scene.canary.display()
    );
    let mut supervisor = Supervisor::new(quick());
    supervisor.start(scene.spec(&body)).expect("starts");
    let rotated = scene.partition.join(".grove/log/svc.log.1");
    wait_for("the rotation", || {
        std::fs::symlink_metadata(&rotated).is_ok_and(|m| m.is_file())
    })
    .await;
    supervisor.stop_all().await;
    assert_eq!(std::fs::metadata(&rotated).expect("rotated").uid(), USER.0);
    scene.assert_untouched();
}

#[tokio::test]
async fn the_log_belongs_to_the_service_user() {
    let scene = scene();
    let mut supervisor = Supervisor::new(quick());
    supervisor
        .start(scene.spec("echo hello; exec sleep 60"))
        .expect("starts");
    let log = scene.partition.join(".grove/log/svc.log");
    wait_for("the log", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t == "hello\n")
    })
    .await;
    supervisor.stop_all().await;
    for path in [scene.partition.join(".grove"), log] {
        assert_eq!(
            std::fs::metadata(&path).expect("exists").uid(),
            USER.0,
            "{}",
            path.display()
        );
    }
    scene.assert_untouched();
}
