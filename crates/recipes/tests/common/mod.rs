//! What the recipe tests share: installing a profile written into a directory.

use std::path::Path;

use grove_fetch::Fetcher;
use grove_profile::LoadOptions;
use grove_recipes::{Context, InstallError, Registry, Report, install};

/// Writes `profile` as `buildout.cfg` in `dir` and installs it there.
pub(crate) fn run(dir: &Path, profile: &str) -> Result<Report, InstallError> {
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
        partition: None,
    };
    install(&profile, &Registry::builtin(), &ctx)
}
