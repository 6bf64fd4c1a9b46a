//! SlapOS's shared parts: a part with `shared = true` (cmmi, downloads) is built once per
//! node, in a directory of the node's shared parts ([`Context::shared_parts`], which the
//! node also gives profiles as `${buildout:shared-part-list}`), under
//! `PART/SIGNATURE`, the signature a digest of the part's recipe and options; every
//! release asking for the same part with the same options reuses it.
//!
//! A shared part is finished when its marker holds its signature: a build interrupted
//! half-way is started again. Builds of the same part wait for each other (a lock file
//! beside it). A release's uninstall leaves shared parts alone: others may use them.
//! Without shared directories (`grove profile resolve`, a profile run by hand), a shared
//! part is built in the release as any other, as SlapOS does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use grove_profile::Value;

use crate::Context;

/// The file in a shared part that says it is complete, holding its signature.
const MARKER: &str = ".grove-shared-signature";

/// Options that do not change what is built: where it goes, and buildout's own.
fn signed(key: &str) -> bool {
    !matches!(key, "location" | "target" | "shared") && !key.starts_with('_')
}

/// What identifies a shared part: its options (its recipe among them), as text.
pub(crate) fn signature(options: &BTreeMap<String, Value>) -> String {
    let mut text = String::new();
    for (key, value) in options.iter().filter(|(k, _)| signed(k)) {
        text.push_str(&format!("{key} = {}\n", value.as_text()));
    }
    text
}

fn digest(signature: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, signature.as_bytes())
        .as_ref()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn complete(location: &Path, signature: &str) -> bool {
    std::fs::read_to_string(location.join(MARKER)).is_ok_and(|s| s == signature)
}

/// Where a part goes when it asks to be shared and the node shares parts: a complete
/// build in any shared directory, else the place in the last one (the one builds go to).
pub(crate) fn location(
    ctx: &Context<'_>,
    part: &str,
    options: &BTreeMap<String, Value>,
) -> Option<PathBuf> {
    let asked = options
        .get("shared")
        .is_some_and(|v| crate::truthy(&v.as_text()));
    if !asked || ctx.shared_parts.is_empty() {
        return None;
    }
    let signature = signature(options);
    let name = digest(&signature);
    let mut candidates = ctx.shared_parts.iter().map(|d| d.join(part).join(&name));
    let built = candidates.find(|c| complete(c, &signature));
    built.or_else(|| ctx.shared_parts.last().map(|d| d.join(part).join(&name)))
}

/// Whether `path` is a shared part's place (below a shared directory, no `..`).
pub(crate) fn is_shared(ctx: &Context<'_>, path: &Path) -> bool {
    !path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
        && ctx.shared_parts.iter().any(|d| path.starts_with(d))
}

/// Builds a shared part at `location` with `build` unless it is complete already; both
/// under a lock, so that two releases building it at once build it once.
pub(crate) fn build_once(
    location: &Path,
    signature: &str,
    build: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    let parent = location
        .parent()
        .ok_or_else(|| format!("{} has no parent", location.display()))?;
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let lock_path = location.with_extension("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    if complete(location, signature) {
        tracing::info!(location = %location.display(), "shared part reused");
        return Ok(());
    }
    // What an interrupted build left.
    if location.exists() {
        std::fs::remove_dir_all(location)
            .map_err(|e| format!("cannot remove {}: {e}", location.display()))?;
    }
    build()?;
    let marker = location.join(MARKER);
    std::fs::write(&marker, signature)
        .map_err(|e| format!("cannot write {}: {e}", marker.display()))
}
