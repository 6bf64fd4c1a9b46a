//! What the recipe tests share: installing a profile written into a directory.

// Each test crate uses the part it needs.
#![allow(dead_code)]

use std::path::Path;

use grove_fetch::Fetcher;
use grove_profile::LoadOptions;
use grove_recipes::slap::Partition;
use grove_recipes::{Context, InstallError, Registry, Report, install};

/// Writes `profile` as `buildout.cfg` in `dir` and installs it there.
pub(crate) fn run(dir: &Path, profile: &str) -> Result<Report, InstallError> {
    run_in(dir, profile, None)
}

/// The same, as an instance profile of `partition`.
pub(crate) fn run_in(
    dir: &Path,
    profile: &str,
    partition: Option<&Partition<'_>>,
) -> Result<Report, InstallError> {
    run_with(dir, profile, partition, Vec::new())
}

/// The same, as a release of a node whose shared parts are in `shared`.
pub(crate) fn run_shared(dir: &Path, profile: &str, shared: &Path) -> Result<Report, InstallError> {
    run_with(dir, profile, None, vec![shared.to_owned()])
}

fn run_with(
    dir: &Path,
    profile: &str,
    partition: Option<&Partition<'_>>,
    shared_parts: Vec<std::path::PathBuf>,
) -> Result<Report, InstallError> {
    std::fs::write(dir.join("buildout.cfg"), profile).expect("write profile");
    let fetcher = Fetcher::default();
    let main = dir.join("buildout.cfg");
    let profile = grove_profile::load(
        main.to_str().expect("utf-8"),
        &fetcher,
        &LoadOptions::default(),
    )
    .expect("profile loads");
    let ctx = Context {
        directory: dir.to_owned(),
        fetcher: &fetcher,
        partition,
        shared_parts,
    };
    install(&profile, &Registry::builtin(), &ctx)
}
