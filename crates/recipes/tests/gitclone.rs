//! `slapos.recipe.build:gitclone` with Debian's git on a repository made here: a branch
//! followed, a revision pinned, a failing clone said and left out.

mod common;

use std::path::Path;
use std::process::Command;

use common::run;

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .expect("git runs (Debian's git)");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A repository with two commits on `main`; the first commit's id.
fn repository(dir: &Path) -> String {
    std::fs::create_dir_all(dir).expect("mkdir");
    git(dir, &["init", "--quiet", "--initial-branch", "main"]);
    std::fs::write(dir.join("VERSION"), "1\n").expect("write");
    git(dir, &["add", "VERSION"]);
    git(dir, &["commit", "--quiet", "-m", "one"]);
    let first = git(dir, &["rev-parse", "HEAD"]);
    std::fs::write(dir.join("VERSION"), "2\n").expect("write");
    git(dir, &["commit", "--quiet", "-am", "two"]);
    first
}

#[test]
fn a_branch_is_followed_and_a_revision_pinned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = dir.path().join("upstream");
    let first = repository(&upstream);
    let work = dir.path().join("software");
    std::fs::create_dir_all(&work).expect("mkdir");
    let profile = format!(
        "[buildout]\nparts = head pinned use\n\n\
         [head]\nrecipe = slapos.recipe.build:gitclone\nrepository = {repo}\nbranch = main\n\n\
         [pinned]\nrecipe = slapos.recipe.build:gitclone\nrepository = {repo}\nrevision = {first}\ngit-executable = git\n\n\
         [use]\nrecipe = plone.recipe.command\ncommand = cat ${{head:location}}/VERSION ${{pinned:location}}/VERSION > versions.txt\n",
        repo = upstream.display()
    );
    let report = run(&work, &profile).expect("clones");
    assert_eq!(report.installed, ["head", "pinned", "use"]);
    assert_eq!(
        std::fs::read_to_string(work.join("versions.txt")).expect("used"),
        "2\n1\n"
    );

    // A new commit upstream: the branch follows it on the next run, the revision stays.
    std::fs::write(upstream.join("VERSION"), "3\n").expect("write");
    git(&upstream, &["commit", "--quiet", "-am", "three"]);
    let report = run(&work, &profile).expect("runs again");
    assert_eq!(report.updated, ["head", "pinned", "use"]);
    let read = |part: &str| {
        std::fs::read_to_string(work.join("parts").join(part).join("VERSION")).expect("checked out")
    };
    assert_eq!(
        (read("head"), read("pinned")),
        ("3\n".to_owned(), "1\n".to_owned())
    );
}

#[test]
fn a_failing_clone_is_an_error_and_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = format!(
        "[buildout]\nparts = gone\n\n[gone]\nrecipe = slapos.recipe.build:gitclone\nrepository = {}\n",
        dir.path().join("no-such-repository").display()
    );
    let work = dir.path().join("software");
    std::fs::create_dir_all(&work).expect("mkdir");
    let error = run(&work, &profile).expect_err("no repository").to_string();
    assert!(
        error.starts_with("part gone (recipe slapos.recipe.build:gitclone): git clone"),
        "{error}"
    );
    assert!(!work.join("parts/gone").exists());

    let ignored = profile.replace("repository =", "ignore-cloning-errors = true\nrepository =");
    run(&work, &ignored).expect("the part asks to ignore it");
    assert!(work.join("parts/gone").is_dir());

    let sparse = profile.replace("repository =", "sparse-checkout = /docs\nrepository =");
    let error = run(&work, &sparse).expect_err("refused").to_string();
    assert!(
        error.contains("option sparse-checkout is not implemented by Grove"),
        "{error}"
    );
}
