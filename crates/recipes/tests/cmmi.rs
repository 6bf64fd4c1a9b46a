//! `slapos.recipe.cmmi` on a real autotools project: a `make dist` tarball built by
//! autoconf and automake here, then configured, built and installed by the recipe.

mod common;

use common::run;

use std::path::{Path, PathBuf};
use std::process::Command;

use md5::{Digest, Md5};

fn sh(dir: &Path, command: &str) {
    let output = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .output()
        .expect("sh runs");
    assert!(
        output.status.success(),
        "{command}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A distribution tarball of a tiny C program, made by autotools (`make dist`).
fn tarball(dir: &Path) -> PathBuf {
    assert!(
        Command::new("autoreconf").arg("--version").output().is_ok(),
        "autoconf and automake are needed (apt-get install autoconf automake)"
    );
    let project = dir.join("greet-src");
    std::fs::create_dir_all(&project).expect("mkdir");
    let files = [
        (
            "configure.ac",
            "AC_INIT([greet], [1.0])\n\
             AM_INIT_AUTOMAKE([foreign])\n\
             AC_PROG_CC\n\
             AC_ARG_ENABLE([shout], [AS_HELP_STRING([--enable-shout], [end with !])])\n\
             AS_IF([test \"x$enable_shout\" = xyes], [AC_DEFINE([SHOUT], [1], [shout])])\n\
             AC_ARG_ENABLE([broken], [AS_HELP_STRING([--enable-broken], [fail])])\n\
             AS_IF([test \"x$enable_broken\" = xyes], [AC_MSG_ERROR([broken on purpose])])\n\
             AC_CONFIG_HEADERS([config.h])\n\
             AC_CONFIG_FILES([Makefile])\n\
             AC_OUTPUT\n",
        ),
        (
            "Makefile.am",
            "bin_PROGRAMS = greet\ngreet_SOURCES = greet.c\n",
        ),
        (
            "greet.c",
            "#include \"config.h\"\n#include <stdio.h>\n\
             #ifndef TIMES\n#define TIMES 1\n#endif\n\
             int main(void) {\n  for (int i = 0; i < TIMES; i++) {\n\
             #ifdef SHOUT\n    puts(\"hello from cmmi!\");\n#else\n    puts(\"hello from cmmi\");\n#endif\n\
             }\n  return 0;\n}\n",
        ),
    ];
    for (name, text) in files {
        std::fs::write(project.join(name), text).expect("write");
    }
    sh(&project, "autoreconf -i && ./configure && make dist");
    project.join("greet-1.0.tar.gz")
}

fn md5_hex(path: &Path) -> String {
    Md5::digest(std::fs::read(path).expect("read"))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn an_autotools_tarball_is_configured_built_and_installed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = tarball(dir.path());
    let work = dir.path().join("software");
    std::fs::create_dir_all(&work).expect("mkdir");
    let profile = format!(
        "[buildout]\nparts = greet\n\n[greet]\nrecipe = slapos.recipe.cmmi\n\
         url = file://{}\nmd5sum = {}\nconfigure-options =\n  --enable-shout\n  --disable-dependency-tracking\n\
         environment =\n  CFLAGS=-O1 -DTIMES=3\nmake-options = -j2\n\
         post-install = touch @@LOCATION@@/installed-marker\n\n\
         [use]\nrecipe = plone.recipe.command\ncommand = ${{greet:location}}/bin/greet > greeting.txt\n",
        archive.display(),
        md5_hex(&archive)
    );
    let profile = profile.replace("parts = greet", "parts = greet use");
    let report = run(&work, &profile).expect("builds");
    assert_eq!(report.installed, ["greet", "use"]);
    let location = work.join("parts/greet");
    let output = Command::new(location.join("bin/greet"))
        .output()
        .expect("the built program runs");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "hello from cmmi!\n".repeat(3)
    );
    assert!(location.join("installed-marker").is_file());
    assert_eq!(
        std::fs::read_to_string(work.join("greeting.txt")).expect("used"),
        "hello from cmmi!\n".repeat(3)
    );
    // The build directory and its log are gone.
    let leftovers: Vec<String> = std::fs::read_dir(work.join("parts"))
        .expect("parts")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers, ["greet"]);

    // Unchanged: not built again.
    let report = run(&work, &profile).expect("runs again");
    assert_eq!(report.updated, ["greet", "use"]);

    // A failing configure is an error with the end of its output; nothing stays.
    let broken = profile.replace("--enable-shout", "--enable-broken");
    let error = run(&work, &broken)
        .expect_err("configure fails")
        .to_string();
    assert!(
        error.starts_with("part greet (recipe slapos.recipe.cmmi): configure failed"),
        "{error}"
    );
    assert!(error.contains("broken on purpose"), "{error}");
    assert!(
        !location.exists(),
        "a failed build leaves nothing installed"
    );

    // A wrong checksum is refused before anything runs.
    let wrong = profile.replace(&md5_hex(&archive), "00000000000000000000000000000000");
    let error = run(&work, &wrong).expect_err("bad checksum").to_string();
    assert!(error.contains("md5sum of file://"), "{error}");
}

#[test]
fn unsupported_options_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let error = run(
        dir.path(),
        "[buildout]\nparts = x\n[x]\nrecipe = slapos.recipe.cmmi\nurl = file:///nowhere.tar.gz\nautogen = true\n",
    )
    .expect_err("refused")
    .to_string();
    assert_eq!(
        error,
        "part x (recipe slapos.recipe.cmmi): option autogen is not implemented by Grove"
    );
}

/// `patches` are fetched, checked against their `#md5sum` and applied in the source tree
/// before `pre-configure`, with `patch-options`.
#[test]
fn patches_are_checked_and_applied_before_configure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("software");
    let source = work.join("source");
    std::fs::create_dir_all(source.join("src")).expect("mkdir");
    std::fs::write(source.join("src/greeting.txt"), "hello\n").expect("write");
    let patch = dir.path().join("greeting.patch");
    std::fs::write(
        &patch,
        "--- a/src/greeting.txt\n+++ b/src/greeting.txt\n@@ -1 +1 @@\n-hello\n+hello, patched\n",
    )
    .expect("write");
    let profile = |md5: &str| {
        format!(
            "[buildout]\nparts = p\n[p]\nrecipe = slapos.recipe.cmmi\npath = {}\n\
             patches = file://{}#{md5}\npatch-options = -p1\n\
             pre-configure = cp src/greeting.txt configured.txt\n\
             configure-command = true\nmake-binary = true\n\
             post-install = cp configured.txt @@LOCATION@@/greeting.txt\n",
            source.display(),
            patch.display()
        )
    };
    run(&work, &profile(&md5_hex(&patch))).expect("patched and built");
    assert_eq!(
        std::fs::read_to_string(work.join("parts/p/greeting.txt")).expect("installed"),
        "hello, patched\n",
        "the patch was applied before pre-configure"
    );
    let error = run(&work, &profile("00000000000000000000000000000000"))
        .expect_err("a wrong checksum")
        .to_string();
    assert!(error.contains("md5sum of patch file://"), "{error}");
}
