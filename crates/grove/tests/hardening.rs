//! Attacks on a node run as root, checked by their outcome: a malicious software release
//! or instance tries to reach root's files, and the canary stays as it was.
//!
//! These tests need root (CI runs as root): they fail, never skip, without it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use serde_json::Value;

mod common;
use common::*;

/// A root-only secret beside the test's data: what the attacks try to read or change.
struct Canary {
    path: PathBuf,
}

impl Canary {
    fn new(place: &Place) -> Canary {
        assert!(
            is_root(),
            "hardening tests check what root does: run them as root (CI does)"
        );
        let dir = place.path().join("root-only");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let path = dir.join("canary");
        std::fs::write(&path, "canary-secret-line\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        Canary { path }
    }

    fn assert_untouched(&self) {
        assert_eq!(
            std::fs::read_to_string(&self.path).expect("canary"),
            "canary-secret-line\n",
            "the canary changed"
        );
        let dir = self.path.parent().expect("dir");
        let names: Vec<_> = std::fs::read_dir(dir)
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["canary"], "new files beside the canary");
    }
}

/// The software state the node reported for a release, once it is final.
fn software_outcome(place: &Place, url: &str) -> Value {
    eventually("the software release's outcome", || {
        let computer = place.client_json(&["computer", "info", "local"]);
        computer["software"]
            .as_array()
            .expect("software")
            .iter()
            .find(|s| {
                s["software_release"] == url
                    && matches!(s["reported_state"].as_str(), Some("error" | "available"))
            })
            .cloned()
    })
}

/// Processes whose command line is exactly `sleep <seconds>` (a marker no other process
/// of the test has: not even the profile commands that write it).
fn sleeping(seconds: &str) -> Vec<u32> {
    let wanted = format!("sleep\0{seconds}\0");
    std::fs::read_dir("/proc")
        .expect("proc")
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted.as_bytes())
        })
        .collect()
}

#[test]
fn a_release_cannot_use_root_to_write_read_or_leave_processes() {
    let place = Place::new(40);
    let canary = Canary::new(&place);
    let secret = canary.path.display().to_string();
    // Writes beside and into the canary, copies it, and leaves a process behind; each in
    // a part of its own, none stopping the build, so that every attempt is made.
    let sr = place.release(
        "evil-software.cfg",
        &format!(
            "[buildout]\nparts = write copy linger\n\n\
             [write]\nrecipe = plone.recipe.command\nstop-on-error = false\n\
             command = echo owned >> {secret}; touch {secret}.new\n\n\
             [copy]\nrecipe = plone.recipe.command\nstop-on-error = false\n\
             command = cat {secret} > ${{buildout:directory}}/stolen; id -u > ${{buildout:directory}}/uid\n\n\
             [linger]\nrecipe = plone.recipe.command\n\
             command = setsid sleep 9471 > /dev/null 2>&1 & echo $! > ${{buildout:directory}}/lingering; env > ${{buildout:directory}}/environment\n"
        ),
    );
    let (daemon, _) = up(&place, None);
    place.client(&["supply", &sr, "local"]);
    let outcome = software_outcome(&place, &sr);
    assert_eq!(outcome["reported_state"], "available", "{outcome}");
    canary.assert_untouched();
    let release = std::fs::read_dir(place.path().join("up/software"))
        .expect("software root")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.join("uid").exists())
        .expect("the release's directory");
    let stolen = std::fs::read_to_string(release.join("stolen")).unwrap_or_default();
    assert_eq!(stolen, "", "the build read root's file");
    let uid: u32 = std::fs::read_to_string(release.join("uid"))
        .expect("uid")
        .trim()
        .parse()
        .expect("a number");
    assert_ne!(uid, 0, "the build ran as root");
    // The release belongs to the build user, readable by all, writable by it alone.
    let meta = std::fs::metadata(&release).expect("release");
    assert_eq!(meta.uid(), uid);
    assert_eq!(meta.mode() & 0o777, 0o755);
    // A clean environment, not the agent's.
    let environment = std::fs::read_to_string(release.join("environment")).expect("env");
    assert!(!environment.contains("GROVE_NODE_"), "{environment}");
    assert!(!environment.contains("GROVE_LOG"), "{environment}");
    // Nothing the build started is left, not even what left its process group.
    let lingering: u32 = std::fs::read_to_string(release.join("lingering"))
        .expect("the build started its process")
        .trim()
        .parse()
        .expect("a pid");
    eventually("the build's processes to be gone", || {
        (sleeping("9471").is_empty()
            && !std::path::Path::new(&format!("/proc/{lingering}")).exists())
        .then_some(())
    });
    daemon.stop();
}

#[test]
fn a_template_or_a_release_url_naming_a_root_file_fails_without_its_content() {
    let place = Place::new(41);
    let canary = Canary::new(&place);
    let template = place.release(
        "template-software.cfg",
        &format!(
            "[buildout]\nparts = t\n\n[t]\nrecipe = slapos.recipe.template\nurl = {}\noutput = ${{buildout:directory}}/copy\n",
            canary.path.display()
        ),
    );
    let (daemon, _) = up(&place, None);
    let url = format!("file://{}", canary.path.display());
    for sr in [&template, &url] {
        place.client(&["supply", sr, "local"]);
        let outcome = software_outcome(&place, sr);
        assert_eq!(outcome["reported_state"], "error", "{outcome}");
        let error = text(&outcome, "error");
        assert!(error.contains("Permission denied"), "{error}");
        assert!(!error.contains("canary-secret-line"), "{error}");
    }
    // A world-readable file that is no profile: the error names the line, not its text.
    let readable = place.path().join("not-a-profile");
    std::fs::write(&readable, "private words on a line\n").expect("write");
    let url = format!("file://{}", readable.display());
    place.client(&["supply", &url, "local"]);
    let outcome = software_outcome(&place, &url);
    let error = text(&outcome, "error");
    assert!(error.contains("not-a-profile:1"), "{error}");
    assert!(!error.contains("private words"), "{error}");
    canary.assert_untouched();
    daemon.stop();
}

/// An instance plants links in its partition where the agent writes as root: its log
/// directory, its log, the resource file. The agent refuses or replaces them and the
/// canary stays as it was.
#[test]
fn an_instance_cannot_steer_the_agent_through_links() {
    let place = Place::new(42);
    let canary = Canary::new(&place);
    let secret = canary.path.display().to_string();
    let dir = canary.path.parent().expect("dir").display().to_string();
    let sr = place.release(
        "links-software.cfg",
        &format!(
            "[buildout]\nparts = instance\n\n\
             [instance]\nrecipe = slapos.recipe.template\noutput = ${{buildout:directory}}/instance.cfg\n\
             inline =\n  [buildout]\n  parts = plant service\n\n\
             \x20 [plant]\n  recipe = plone.recipe.command\n\
             \x20 command = rm -rf .grove; mkdir -p .grove/log; ln -sf {secret} .grove/log/svc.log; ln -sf {secret} .grove/log/svc.log.1; ln -sf {dir} .grove/other; rm -f .grove-resource.json; ln -s {secret} .grove-resource.json\n\n\
             \x20 [service]\n  recipe = plone.recipe.command\n\
             \x20 command = mkdir -p etc/service && printf '#!/bin/sh\\necho owned\\nexec sleep 600\\n' > etc/service/svc && chmod +x etc/service/svc\n"
        ),
    );
    let (daemon, _) = up(&place, None);
    place.client(&["supply", &sr, "local"]);
    let output = grove()
        .args(["request", "attacker", &sr])
        .env("GROVE_CLIENT_CONFIG", place.path().join("up/client.toml"))
        .output()
        .expect("runs");
    assert!(output.status.success());
    let error = eventually("the service's refusal", || {
        let instance = place.instance("attacker");
        instance["error"].as_str().map(str::to_owned)
    });
    assert!(error.contains("symbolic link"), "{error}");
    canary.assert_untouched();
    // A restart of the node formats again: the planted resource file is replaced.
    daemon.stop();
    let (daemon, _) = up(&place, None);
    eventually("the resource file to be a file again", || {
        let path = place
            .path()
            .join("up/instance/slappart0/.grove-resource.json");
        std::fs::symlink_metadata(path)
            .is_ok_and(|m| m.is_file())
            .then_some(())
    });
    canary.assert_untouched();
    daemon.stop();
}

/// A service that escapes its process group and its directory (as a daemon that changes
/// its working directory does) is still ended when its partition is destroyed: the next
/// tenant meets none of it.
#[test]
fn a_destroyed_partition_holds_no_process_of_its_former_tenant() {
    let place = Place::new(43);
    let _canary = Canary::new(&place);
    let sr = place.release(
        "escape-software.cfg",
        "[buildout]\nparts = instance\n\n\
         [instance]\nrecipe = slapos.recipe.template\noutput = ${buildout:directory}/instance.cfg\n\
         inline =\n  [buildout]\n  parts = service\n\n\
         \x20 [service]\n  recipe = plone.recipe.command\n\
         \x20 command = mkdir -p etc/service && printf '#!/bin/sh\\ncd /\\nsetsid sh -c \"exec sleep 8642\" &\\nexec sleep 600\\n' > etc/service/svc && chmod +x etc/service/svc\n",
    );
    let (daemon, _) = up(&place, None);
    place.client(&["supply", &sr, "local"]);
    place.client(&["request", "escaper", &sr]);
    let escaped = eventually("the escaped process", || sleeping("8642").first().copied());
    let cwd = std::fs::read_link(format!("/proc/{escaped}/cwd")).expect("cwd");
    assert_eq!(
        cwd,
        std::path::Path::new("/"),
        "it left its partition's directory"
    );
    place.client(&["request", "escaper", &sr, "--state", "destroyed"]);
    eventually("the escaped process to be gone", || {
        sleeping("8642").is_empty().then_some(())
    });
    daemon.stop();
}

/// The control group files of a partition that say the kernel killed one of its
/// processes for its memory (`oom_kill N`), on cgroup v2 or v1.
fn oom_kills(partition: &str) -> Option<u64> {
    [
        format!("/sys/fs/cgroup/grove/{partition}/memory.events"),
        format!("/sys/fs/cgroup/memory/grove/{partition}/memory.oom_control"),
    ]
    .iter()
    .find_map(|path| std::fs::read_to_string(path).ok())
    .and_then(|text| {
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
    })
}

#[test]
fn a_service_over_its_size_is_killed_by_the_kernel_and_restarted() {
    let place = Place::new(44);
    assert!(
        is_root(),
        "sizes are enforced with cgroups by root: run this as root (CI does)"
    );
    let sr = place.release(
        "hog-software.cfg",
        "[buildout]\nparts = instance\n\n\
         [instance]\nrecipe = slapos.recipe.template\noutput = ${buildout:directory}/instance.cfg\n\
         inline =\n  [buildout]\n  parts = service\n\n\
         \x20 [service]\n  recipe = plone.recipe.command\n\
         \x20 command = mkdir -p etc/service && printf '#!/bin/sh\\nexec python3 -c \"import time; b = bytearray(256 << 20); time.sleep(600)\"\\n' > etc/service/hog && chmod +x etc/service/hog\n",
    );
    let (daemon, _) = up(&place, None);
    // The node measured its capacity and enforces sizes.
    let computer = place.client_json(&["computer", "info", "local"]);
    assert_eq!(computer["capacity"]["enforced"], true, "{computer}");
    place.client(&[
        "size", "create", "tiny", "--cores", "0.5", "--memory", "64M", "--disk", "1G",
    ]);
    place.client(&["supply", &sr, "local"]);
    place.client(&["request", "hog", &sr, "--sla", "size=tiny"]);
    let partition = eventually("the hog placed", || {
        place.instance("hog")["partition"]
            .as_str()
            .map(str::to_owned)
    });
    // The kernel kills it at 64 MiB (it takes 256), the supervisor starts it again, and
    // the node's usage reports say so.
    let kills = eventually("the kernel to kill the hog", || {
        oom_kills(&partition).filter(|n| *n > 0)
    });
    assert!(kills >= 1);
    let samples = eventually("a restart in the usage reports", || {
        let samples = place.client_json(&["service", "usage", "hog"]);
        samples
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x["restarts"].as_u64() > Some(0)))
            .then_some(samples)
    });
    // Its memory never went past the size.
    for sample in samples.as_array().expect("samples") {
        let peak = sample["memory_peak_bytes"].as_u64().expect("peak");
        assert!(peak <= 64 << 20, "{sample}");
    }
    let allocated = place.client_json(&["computer", "info", "local"])["allocated"].clone();
    assert_eq!(allocated["millicores"], 500, "{allocated}");
    assert_eq!(allocated["memory"], 64 << 20, "{allocated}");
    // Destroyed, its control groups go with it.
    place.client(&["request", "hog", &sr, "--state", "destroyed"]);
    eventually("the partition's control groups removed", || {
        oom_kills(&partition).is_none().then_some(())
    });
    daemon.stop();
}

/// An instance's actions run as its partition's user: an action that reads root's
/// canary, writes beside it, or is a link to it or a FIFO, fails, and the canary stays
/// as it was.
#[test]
fn an_instance_action_cannot_use_root() {
    let place = Place::new(45);
    let canary = Canary::new(&place);
    let secret = canary.path.display().to_string();
    let dir = canary.path.parent().expect("dir").display().to_string();
    let sr = place.release(
        "actions-software.cfg",
        &format!(
            "[buildout]\nparts = instance\n\n\
             [instance]\nrecipe = slapos.recipe.template\noutput = ${{buildout:directory}}/instance.cfg\n\
             inline =\n  [buildout]\n  parts = plant\n\n\
             \x20 [plant]\n  recipe = plone.recipe.command\n\
             \x20 command = mkdir -p etc/action && cd etc/action && printf '#!/bin/sh\\ncat {secret}\\n' > read && printf '#!/bin/sh\\nset -e\\necho owned > {dir}/new\\necho 1\\n' > write && printf '#!/bin/sh\\nset -e\\necho owned >> {secret}\\necho 1\\n' > append && chmod +x read write append && ln -sf {secret} link && rm -f fifo && mkfifo fifo\n"
        ),
    );
    let (daemon, _) = up(&place, None);
    place.client(&["supply", &sr, "local"]);
    place.client(&["request", "attacker", &sr]);
    eventually("the attacker's deployment", || {
        (place.instance("attacker")["reported_state"] == "started").then_some(())
    });
    for name in ["read", "write", "append", "link", "fifo"] {
        let error = place.client_fails(&["action", "attacker", name]);
        assert!(!error.contains("canary-secret-line"), "{name}: {error}");
        assert!(
            error.contains("Permission denied") || error.contains("permission denied"),
            "{name}: {error}"
        );
    }
    canary.assert_untouched();
    daemon.stop();
}
