//! Installing a software release in `<software_root>/<md5hex(url)>`.

use std::path::{Path, PathBuf};

use grove_fetch::Fetcher;
use grove_profile::is_url;
use grove_recipes::{Context, Registry, install, load_profile};
use md5::{Digest, Md5};

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

pub fn is_installed(root: &Path, url: &str) -> bool {
    software_path(root, url).join(COMPLETED).is_file()
}

/// Runs the release's profile in its directory; on success writes `.completed`.
pub fn install_software(
    root: &Path,
    url: &str,
    fetcher: &Fetcher,
    registry: &Registry,
) -> Result<PathBuf, String> {
    if !is_url(url) && !Path::new(url).is_absolute() {
        return Err(format!(
            "software release {url}: a URL or an absolute path is needed"
        ));
    }
    let dir = software_path(root, url);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let main = dir.join("buildout.cfg");
    let text = format!(
        "# Written by grove: the software release {url}\n[buildout]\nextends = {}\n",
        url.replace('$', "$$")
    );
    std::fs::write(&main, text).map_err(|e| format!("cannot write {}: {e}", main.display()))?;
    let profile = load_profile(&main, fetcher)?;
    let ctx = Context {
        directory: dir.clone(),
        fetcher,
        partition: None,
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
