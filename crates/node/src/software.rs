//! Installing a software release in `<software_root>/<md5hex(url)>`.

use std::path::{Path, PathBuf};

use grove_fetch::Fetcher;
use grove_profile::is_url;
use grove_recipes::{Context, Registry, install, load_profile};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use std::os::unix::fs::PermissionsExt;

/// Written once a release is fully installed: its presence means "available".
pub const COMPLETED: &str = ".completed";

pub fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where a release is installed.
pub fn software_path(root: &Path, url: &str) -> PathBuf {
    root.join(md5_hex(url.as_bytes()))
}

/// Where the releases of a node build and find SlapOS's shared parts (`shared = true`):
/// one directory for all of them, beside their own.
pub fn shared_parts_path(root: &Path) -> PathBuf {
    root.join("shared")
}

pub fn is_installed(root: &Path, url: &str) -> bool {
    software_path(root, url).join(COMPLETED).is_file()
}

/// A build handed to `grove node build-software`, run as the build user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildJob {
    pub root: PathBuf,
    pub url: String,
}

/// The releases built into every node (`grove_api::apps::BUILTIN_RELEASES`): their
/// software and instance profiles. Nothing to build; their one part is a native recipe.
fn builtin(url: &str) -> Option<(&'static str, &'static str)> {
    if url == grove_api::apps::ROBOCONF_RELEASE {
        return Some((
            "# Grove's release of Roboconf root instances: nothing to build.\n[buildout]\nparts =\n",
            "# A Roboconf root instance: `grove app agent` deploys its subtree.\n\
             [buildout]\nparts = roboconf-agent\n\n[roboconf-agent]\nrecipe = grove:roboconf-agent\n",
        ));
    }
    grove_api::apps::BUILTIN_RELEASES.contains(&url).then_some((
        // Processed again every 10 s: a manager follows its sibling services (a web
        // service, its database's address).
        "# Grove's release of a ConPaaS service type: nothing to build.\n\
         [buildout]\nparts = periodicity\n\n[periodicity]\nrecipe = slapos.recipe.template\n\
         inline = 10\noutput = ${buildout:directory}/periodicity\n",
        "# A ConPaaS manager or agent, by its software type (`manager` or a role).\n\
         [buildout]\nparts = conpaas\n\n[conpaas]\nrecipe = grove:conpaas\n",
    ))
}

fn check_url(url: &str) -> Result<(), String> {
    if builtin(url).is_none() && !is_url(url) && !Path::new(url).is_absolute() {
        return Err(format!(
            "software release {url}: a URL or an absolute path is needed"
        ));
    }
    Ok(())
}

/// Builds a release as `user` (the build user) through `grove node build-software`: the
/// agent, root, only makes the release's directory and gives it to that user.
pub fn build_as(
    root: &Path,
    url: &str,
    runner: &Path,
    user: (u32, u32),
) -> Result<PathBuf, String> {
    check_url(url)?;
    let dir = software_path(root, url);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
    }
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    std::os::unix::fs::lchown(&dir, Some(user.0), Some(user.1))
        .map_err(|e| format!("cannot give {} to the build user: {e}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("cannot set the mode of {}: {e}", dir.display()))?;
    // The shared parts are the build user's too: every release builds as that user.
    let shared = shared_parts_path(root);
    match std::fs::create_dir(&shared) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", shared.display())),
    }
    let meta =
        std::fs::symlink_metadata(&shared).map_err(|e| format!("{}: {e}", shared.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", shared.display()));
    }
    std::os::unix::fs::lchown(&shared, Some(user.0), Some(user.1))
        .map_err(|e| format!("cannot give {} to the build user: {e}", shared.display()))?;
    let job = BuildJob {
        root: root.to_owned(),
        url: url.to_owned(),
    };
    let input = serde_json::to_vec(&job).map_err(|e| e.to_string())?;
    crate::helper::run_as(runner, &["node", "build-software"], &dir, user, &input)
        .map_err(|e| e.to_string())?;
    Ok(dir)
}

/// Runs the release's profile in its directory; on success writes `.completed`.
pub fn install_software(
    root: &Path,
    url: &str,
    fetcher: &Fetcher,
    registry: &Registry,
) -> Result<PathBuf, String> {
    check_url(url)?;
    let dir = software_path(root, url);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let main = dir.join("buildout.cfg");
    let mut extends = url.replace('$', "$$");
    if let Some((software, instance)) = builtin(url) {
        for (name, text) in [("software.cfg", software), ("instance.cfg", instance)] {
            let path = dir.join(name);
            std::fs::write(&path, text)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        extends = dir.join("software.cfg").display().to_string();
    }
    let shared = shared_parts_path(root);
    std::fs::create_dir_all(&shared)
        .map_err(|e| format!("cannot create {}: {e}", shared.display()))?;
    let text = format!(
        "# Written by grove: the software release {url}\n[buildout]\nextends = {extends}\n\
         shared-part-list = {}\n",
        shared.display()
    );
    std::fs::write(&main, text).map_err(|e| format!("cannot write {}: {e}", main.display()))?;
    let profile = load_profile(&main, fetcher)?;
    let ctx = Context {
        directory: dir.clone(),
        fetcher,
        partition: None,
        shared_parts: vec![shared],
    };
    let report = install(&profile, registry, &ctx).map_err(|e| e.to_string())?;
    tracing::info!(software = url, installed = ?report.installed, "software release installed");
    let completed = dir.join(COMPLETED);
    std::fs::write(&completed, b"")
        .map_err(|e| format!("cannot write {}: {e}", completed.display()))?;
    Ok(dir)
}

/// Removes an installed release.
pub fn remove_software(root: &Path, url: &str) -> Result<(), String> {
    let dir = software_path(root, url);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", dir.display())),
    }
}
