//! SlapOS's shared parts: a part with `shared = true` is built once for all the releases
//! of a node that ask for it with the same options.

mod common;

use std::path::Path;

use common::{run, run_shared};

/// A source tree whose build counts how often it is built.
fn source(dir: &Path) {
    let files = [
        (
            "configure",
            "#!/bin/sh\nfor a; do case $a in --prefix=*) echo \"PREFIX=${a#--prefix=}\" > config.mk;; esac; done\n",
        ),
        (
            "Makefile",
            "include config.mk\nall:\n\techo built >> $(COUNTER)\ninstall:\n\tmkdir -p $(PREFIX)/bin && cp tool.sh $(PREFIX)/bin/tool\n",
        ),
        ("tool.sh", "#!/bin/sh\necho tool\n"),
    ];
    std::fs::create_dir_all(dir).expect("mkdir");
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("write");
    }
    std::fs::set_permissions(
        dir.join("configure"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let status = std::process::Command::new("tar")
        .args(["czf", "../src.tar.gz", "."])
        .current_dir(dir)
        .status()
        .expect("tar runs");
    assert!(status.success());
}

fn profile(root: &Path, configure_options: &str) -> String {
    format!(
        "[buildout]\nparts = tool used\n\n[tool]\nrecipe = slapos.recipe.cmmi\nshared = true\n\
         url = {src}\nmake-options = COUNTER={count}\nconfigure-options = {configure_options}\n\n\
         [used]\nrecipe = plone.recipe.command\ncommand = echo ${{tool:location}} > where\n",
        src = root.join("src.tar.gz").display(),
        count = root.join("count").display(),
    )
}

fn builds(root: &Path) -> usize {
    std::fs::read_to_string(root.join("count"))
        .unwrap_or_default()
        .lines()
        .count()
}

fn location(release: &Path) -> String {
    std::fs::read_to_string(release.join("where"))
        .expect("where")
        .trim()
        .to_owned()
}

#[test]
fn a_shared_part_is_built_once_for_every_release_that_asks_for_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    source(&root.join("src"));
    let shared = root.join("shared");
    let (a, b) = (root.join("a"), root.join("b"));
    for release in [&a, &b] {
        std::fs::create_dir_all(release).expect("mkdir");
    }

    run_shared(&a, &profile(root, ""), &shared).expect("a installs");
    assert_eq!(builds(root), 1);
    let built = location(&a);
    assert!(
        built.starts_with(&format!("{}/tool/", shared.display())),
        "{built}"
    );
    assert!(Path::new(&built).join("bin/tool").is_file());

    run_shared(&b, &profile(root, ""), &shared).expect("b installs");
    assert_eq!(builds(root), 1, "b reuses a's build");
    assert_eq!(location(&b), built);

    // Other options, another part.
    run_shared(&b, &profile(root, "--enable-x"), &shared).expect("b changes");
    assert_eq!(builds(root), 2);
    assert_ne!(location(&b), built);

    // A release leaving the part leaves it to the others.
    run_shared(&a, "[buildout]\nparts =\n", &shared).expect("a uninstalls");
    assert!(Path::new(&built).join("bin/tool").is_file());

    // A build interrupted half-way (no marker) is started again.
    std::fs::remove_file(Path::new(&built).join(".grove-shared-signature")).expect("unmark");
    std::fs::remove_file(Path::new(&built).join("bin/tool")).expect("half");
    run_shared(&a, &profile(root, ""), &shared).expect("a again");
    assert_eq!(builds(root), 3);
    assert!(Path::new(&built).join("bin/tool").is_file());
}

#[test]
fn without_shared_directories_a_shared_part_is_the_release_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    source(&root.join("src"));
    let release = root.join("a");
    std::fs::create_dir_all(&release).expect("mkdir");
    run(&release, &profile(root, "")).expect("installs");
    assert_eq!(
        location(&release),
        release.join("parts/tool").display().to_string()
    );
}
