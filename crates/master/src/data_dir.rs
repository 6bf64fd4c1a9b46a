//! The master's data directory holds the store (every instance's parameters, passwords
//! included), the master key and the admin token: it is 0700 and everything in it 0600,
//! whoever else uses the machine (partition users, on a `grove up` node).

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::MasterError;

fn error(path: &Path) -> impl FnOnce(std::io::Error) -> MasterError + '_ {
    move |source| MasterError::DataDir {
        path: path.to_owned(),
        source,
    }
}

/// Sets `path` to `mode` when it allows more; says so, since it was exposed.
fn narrow(path: &Path, mode: u32) -> Result<(), MasterError> {
    let meta = std::fs::symlink_metadata(path).map_err(error(path))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let current = meta.permissions().mode() & 0o7777;
    if current & !mode != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{current:o}"), "the master's files were readable by others: mode set to {mode:o}");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(error(path))?;
    }
    Ok(())
}

/// Creates the data directory (0700, narrowed if it was wider: nothing in it is reachable
/// by others from then on) and a SQLite store's file, wherever it is (0600, so that SQLite
/// gives its WAL and shared-memory files the same mode). The files of the data directory
/// are narrowed by [`narrow_all`] once the store has made its own.
pub(crate) fn prepare(data_dir: &Path, sqlite: Option<&Path>) -> Result<(), MasterError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(error(data_dir))?;
    if let Some(store) = sqlite {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(store)
            .map_err(error(store))?;
        narrow(store, 0o600)?;
    }
    narrow(data_dir, 0o700)
}

/// The directory to 0700, every file in it to 0600.
pub(crate) fn narrow_all(data_dir: &Path) -> Result<(), MasterError> {
    narrow(data_dir, 0o700)?;
    for entry in std::fs::read_dir(data_dir).map_err(error(data_dir))? {
        let path = entry.map_err(error(data_dir))?.path();
        let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        narrow(&path, if is_dir { 0o700 } else { 0o600 })?;
    }
    Ok(())
}
