//! File operations that a privileged process (the node agent, as root) makes in a tree
//! that a less privileged user controls (a partition, a software release being built).
//!
//! Every path is resolved by the kernel from a directory descriptor with `openat2`'s
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`: a symbolic link
//! anywhere on the way, a `..` that climbs out, or a directory renamed during the lookup
//! makes the call fail instead of landing outside the tree. What is opened is then checked
//! on its descriptor (a regular file, not hard-linked from elsewhere, owned by the tree's
//! user or by us), so a FIFO or a device planted in place of a file is refused without
//! blocking, and nothing is acted on by name after it was checked.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{
    AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Uid, fchown, fstat, mkdirat, openat2,
    renameat, statat, unlinkat,
};
use rustix::io::Errno;

/// Why an operation in a confined tree was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    #[error("{path}: a symbolic link on the way, refused")]
    Link { path: PathBuf },
    #[error("{path}: leads out of {root}, refused")]
    Escape { path: PathBuf, root: PathBuf },
    #[error("{path}: not a regular file ({kind}), refused")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{path}: not a directory ({kind}), refused")]
    NotDirectory { path: PathBuf, kind: &'static str },
    #[error("{path}: has {links} hard links, refused")]
    HardLinked { path: PathBuf, links: u64 },
    #[error("{path}: owned by uid {uid}, not by the partition's user, refused")]
    Owner { path: PathBuf, uid: u32 },
    #[error("{path}: larger than {limit} bytes")]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{path}: not a relative path without '..'")]
    BadPath { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ConfineError {
    /// Whether the thing asked for is simply not there.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ConfineError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Who a tree belongs to: files and directories the agent creates in it are given to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// The kind of a directory entry, read without following links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Directory,
    Link,
    Other,
}

/// A directory entry: its name, its kind, and (for files) whether anyone may execute it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: OsString,
    pub kind: Kind,
    pub executable: bool,
    pub size: u64,
}

/// A directory opened once, below which every operation stays.
#[derive(Debug)]
pub struct Tree {
    fd: OwnedFd,
    path: PathBuf,
    owner: Option<Owner>,
}

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

fn kind_name(kind: FileType) -> &'static str {
    match kind {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Unknown => "unknown",
    }
}

/// Refuses absolute paths and `..`: callers name things inside the tree.
fn check_relative(path: &Path) -> Result<(), ConfineError> {
    let fine = path
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if fine && !path.as_os_str().is_empty() {
        Ok(())
    } else {
        Err(ConfineError::BadPath {
            path: path.to_owned(),
        })
    }
}

impl Tree {
    /// Opens `path` (which must be a directory and not a link itself) as the root of a
    /// confined tree. `owner` is who files created in it are given to.
    pub fn open(path: &Path, owner: Option<Owner>) -> Result<Tree, ConfineError> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::LOOP | Errno::NOTDIR => ConfineError::NotDirectory {
                path: path.to_owned(),
                kind: "a symbolic link or a file",
            },
            e => ConfineError::Io {
                path: path.to_owned(),
                source: e.into(),
            },
        })?;
        Ok(Tree {
            fd,
            path: path.to_owned(),
            owner,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn owner(&self) -> Option<Owner> {
        self.owner
    }

    fn full(&self, relative: &Path) -> PathBuf {
        self.path.join(relative)
    }

    fn error(&self, relative: &Path, errno: Errno) -> ConfineError {
        let path = self.full(relative);
        match errno {
            Errno::LOOP => ConfineError::Link { path },
            // O_DIRECTORY | O_NOFOLLOW on a link answers "not a directory": say what it is
            // (lstat only names it; nothing is acted on through it).
            Errno::NOTDIR if path.symlink_metadata().is_ok_and(|m| m.is_symlink()) => {
                ConfineError::Link { path }
            }
            Errno::XDEV => ConfineError::Escape {
                path,
                root: self.path.clone(),
            },
            e => ConfineError::Io {
                path,
                source: e.into(),
            },
        }
    }

    fn openat(&self, relative: &Path, flags: OFlags, mode: Mode) -> Result<OwnedFd, ConfineError> {
        check_relative(relative)?;
        openat2(
            &self.fd,
            relative,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            mode,
            RESOLVE,
        )
        .map_err(|e| self.error(relative, e))
    }

    /// Opens a directory below the root as a tree of its own (same owner).
    pub fn subtree(&self, relative: &Path) -> Result<Tree, ConfineError> {
        let fd = self.openat(relative, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
        Ok(Tree {
            fd,
            path: self.full(relative),
            owner: self.owner,
        })
    }

    /// Creates the directories of `relative` that are missing (each given to the owner)
    /// and opens the last one as a tree.
    pub fn create_dir_all(&self, relative: &Path, mode: u32) -> Result<Tree, ConfineError> {
        // Most often it is there already: one lookup.
        match self.subtree(relative) {
            Err(e) if e.is_not_found() => {}
            found => return found,
        }
        let mut done = PathBuf::new();
        for component in relative.components() {
            done.push(component);
            match self.subtree(&done) {
                Ok(_) => continue,
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
            let (parent, name) = self.parent_of(&done)?;
            match mkdirat(&parent.fd, name.as_os_str(), Mode::from_raw_mode(mode)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(self.error(&done, e)),
            }
            let created = self.subtree(&done)?;
            self.give(&created.fd, &done)?;
        }
        self.subtree(relative)
    }

    /// The directory holding `relative`, opened confined, and the last name.
    fn parent_of(&self, relative: &Path) -> Result<(Tree, OsString), ConfineError> {
        let name = relative
            .file_name()
            .ok_or_else(|| ConfineError::BadPath {
                path: relative.to_owned(),
            })?
            .to_owned();
        let parent = match relative.parent() {
            Some(p) if !p.as_os_str().is_empty() => self.subtree(p)?,
            _ => self.duplicate()?,
        };
        Ok((parent, name))
    }

    /// The root itself, on a descriptor of its own.
    fn duplicate(&self) -> Result<Tree, ConfineError> {
        let fd = self.fd.try_clone().map_err(|source| ConfineError::Io {
            path: self.path.clone(),
            source,
        })?;
        Ok(Tree {
            fd,
            path: self.path.clone(),
            owner: self.owner,
        })
    }

    fn give(&self, fd: &OwnedFd, relative: &Path) -> Result<(), ConfineError> {
        if let Some(owner) = self.owner {
            fchown(
                fd,
                Some(Uid::from_raw(owner.uid)),
                Some(Gid::from_raw(owner.gid)),
            )
            .map_err(|e| self.error(relative, e))?;
        }
        Ok(())
    }

    /// Checks what a descriptor holds: a regular file, linked once, the owner's or ours.
    fn check_file(&self, fd: &OwnedFd, relative: &Path) -> Result<rustix::fs::Stat, ConfineError> {
        let stat = fstat(fd).map_err(|e| self.error(relative, e))?;
        let kind = FileType::from_raw_mode(stat.st_mode);
        if kind != FileType::RegularFile {
            return Err(ConfineError::NotRegular {
                path: self.full(relative),
                kind: kind_name(kind),
            });
        }
        #[allow(clippy::useless_conversion)]
        let links = u64::from(stat.st_nlink);
        if links > 1 {
            return Err(ConfineError::HardLinked {
                path: self.full(relative),
                links,
            });
        }
        if let Some(owner) = self.owner
            && stat.st_uid != owner.uid
            && stat.st_uid != rustix::process::geteuid().as_raw()
        {
            return Err(ConfineError::Owner {
                path: self.full(relative),
                uid: stat.st_uid,
            });
        }
        Ok(stat)
    }

    /// Opens a file for appending, creating it (for the owner) when missing.
    pub fn append(&self, relative: &Path, mode: u32) -> Result<File, ConfineError> {
        // NONBLOCK: a FIFO planted here must not hold the agent; it is refused below.
        let fd = self.openat(
            relative,
            OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE | OFlags::NONBLOCK,
            Mode::from_raw_mode(mode),
        )?;
        self.check_file(&fd, relative)?;
        self.give(&fd, relative)?;
        clear_nonblock(&fd).map_err(|e| self.error(relative, e))?;
        Ok(File::from(fd))
    }

    /// Opens an existing regular file for reading.
    pub fn open_file(&self, relative: &Path) -> Result<File, ConfineError> {
        let fd = self.openat(relative, OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty())?;
        self.check_file(&fd, relative)?;
        clear_nonblock(&fd).map_err(|e| self.error(relative, e))?;
        Ok(File::from(fd))
    }

    /// Reads a whole regular file of at most `limit` bytes.
    pub fn read(&self, relative: &Path, limit: u64) -> Result<Vec<u8>, ConfineError> {
        let file = self.open_file(relative)?;
        let mut bytes = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| ConfineError::Io {
                path: self.full(relative),
                source,
            })?;
        if bytes.len() as u64 > limit {
            return Err(ConfineError::TooLarge {
                path: self.full(relative),
                limit,
            });
        }
        Ok(bytes)
    }

    /// Empties an existing regular file.
    pub fn truncate(&self, relative: &Path) -> Result<(), ConfineError> {
        let fd = self.openat(relative, OFlags::WRONLY | OFlags::NONBLOCK, Mode::empty())?;
        self.check_file(&fd, relative)?;
        rustix::fs::ftruncate(&fd, 0).map_err(|e| self.error(relative, e))
    }

    /// Writes a file whole, replacing what was there (a link or a FIFO in its place
    /// included: the name is replaced, nothing it pointed to is touched). The content is
    /// written to a new file beside it, then renamed over it; it is not synced to disk.
    pub fn replace(&self, relative: &Path, bytes: &[u8], mode: u32) -> Result<(), ConfineError> {
        let (parent, name) = self.parent_of(relative)?;
        let mut temporary = OsString::from(".grove-new.");
        temporary.push(&name);
        let temporary = PathBuf::from(temporary);
        match unlinkat(&parent.fd, &temporary, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(parent.error(&temporary, e)),
        }
        let fd = parent.openat(
            &temporary,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
            Mode::from_raw_mode(mode),
        )?;
        parent.give(&fd, &temporary)?;
        // The mode asked for, whatever the umask.
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
            .map_err(|e| parent.error(&temporary, e))?;
        // Not synced: the files replaced here (a rotated log, the resource file) are
        // rewritten when lost, and a sync would hold a log's rotation, during which what
        // the service writes is lost, for milliseconds.
        let mut file = File::from(fd);
        file.write_all(bytes).map_err(|source| ConfineError::Io {
            path: parent.full(&temporary),
            source,
        })?;
        renameat(&parent.fd, &temporary, &parent.fd, name.as_os_str())
            .map_err(|e| self.error(relative, e))
    }

    /// Copies a regular file to a new file (replacing the destination as [`Tree::replace`]
    /// does), at most `limit` bytes of it.
    pub fn copy(&self, from: &Path, to: &Path, limit: u64, mode: u32) -> Result<(), ConfineError> {
        let mut bytes = Vec::new();
        self.open_file(from)?
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(|source| ConfineError::Io {
                path: self.full(from),
                source,
            })?;
        self.replace(to, &bytes, mode)
    }

    /// Where a link below the root points (its text; nothing is followed).
    pub fn read_link(&self, relative: &Path) -> Result<PathBuf, ConfineError> {
        let (parent, name) = self.parent_of(relative)?;
        rustix::fs::readlinkat(&parent.fd, name.as_os_str(), Vec::new())
            .map(|target| PathBuf::from(OsString::from_vec(target.into_bytes())))
            .map_err(|e| self.error(relative, e))
    }

    /// What is at `relative`, without following a link there.
    pub fn kind(&self, relative: &Path) -> Result<Option<Kind>, ConfineError> {
        let (parent, name) = self.parent_of(relative)?;
        match statat(&parent.fd, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(kind_of(FileType::from_raw_mode(stat.st_mode)))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(self.error(relative, e)),
        }
    }

    /// The entries of a directory below the root (or of the root, for `.`), read without
    /// following links; none when it does not exist.
    pub fn entries(&self, relative: &Path) -> Result<Vec<Entry>, ConfineError> {
        let dir = if relative == Path::new(".") {
            self.duplicate()?.fd
        } else {
            match self.subtree(relative) {
                Ok(tree) => tree.fd,
                Err(e) if e.is_not_found() => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        };
        let listing = rustix::fs::Dir::read_from(&dir).map_err(|e| self.error(relative, e))?;
        let mut entries = Vec::new();
        for entry in listing {
            let entry = entry.map_err(|e| self.error(relative, e))?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let stat = match statat(&dir, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => stat,
                // Removed since the listing: not there.
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(self.error(relative, e)),
            };
            let kind = kind_of(FileType::from_raw_mode(stat.st_mode));
            entries.push(Entry {
                name: OsString::from_vec(name.to_vec()),
                kind,
                executable: kind == Kind::File && stat.st_mode & 0o111 != 0,
                size: u64::try_from(stat.st_size).unwrap_or(0),
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// The bytes of every file below the root, walked without following a link (a link
    /// counts as itself), at most `depth` directories deep: what the tree holds on disk.
    pub fn disk_usage(&self, depth: usize) -> Result<u64, ConfineError> {
        let mut total = 0u64;
        for entry in self.entries(Path::new("."))? {
            total = total.saturating_add(entry.size);
            if entry.kind == Kind::Directory && depth > 0 {
                match self.subtree(Path::new(&entry.name)) {
                    Ok(sub) => total = total.saturating_add(sub.disk_usage(depth - 1)?),
                    // Removed or replaced since the listing: not there any more.
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(total)
    }

    /// Removes whatever is at `relative` (a directory with everything in it), never
    /// following a link: a link is removed, not what it points to.
    pub fn remove_all(&self, relative: &Path) -> Result<(), ConfineError> {
        let (parent, name) = self.parent_of(relative)?;
        match parent.kind(Path::new(&name))? {
            Some(kind) => parent.remove_entry(Path::new(&name), kind),
            None => Ok(()),
        }
    }

    /// Removes the entry `name` of this directory, of the `kind` its listing said.
    fn remove_entry(&self, name: &Path, kind: Kind) -> Result<(), ConfineError> {
        match kind {
            Kind::Directory => {
                let sub = self.subtree(name)?;
                for entry in sub.entries(Path::new("."))? {
                    sub.remove_entry(Path::new(&entry.name), entry.kind)?;
                }
                match unlinkat(&self.fd, name, AtFlags::REMOVEDIR) {
                    Ok(()) | Err(Errno::NOENT) => Ok(()),
                    Err(e) => Err(self.error(name, e)),
                }
            }
            _ => match unlinkat(&self.fd, name, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => Ok(()),
                Err(e) => Err(self.error(name, e)),
            },
        }
    }
}

/// Writes one of the process's own files (the agent's state, its service records): in
/// `dir` (made 0700 if missing), readable by its owner only (0600), written whole (a new
/// file renamed over the old, so a reader never sees half of it). `durable` also syncs it
/// to disk before the rename.
pub fn write_private(dir: &Path, name: &str, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let path = dir.join(name);
    let temporary = dir.join(format!(".{name}.new"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(bytes)?;
    if durable {
        file.sync_all()?;
    }
    std::fs::rename(&temporary, &path)
}

fn kind_of(kind: FileType) -> Kind {
    match kind {
        FileType::RegularFile => Kind::File,
        FileType::Directory => Kind::Directory,
        FileType::Symlink => Kind::Link,
        _ => Kind::Other,
    }
}

fn clear_nonblock(fd: &OwnedFd) -> Result<(), Errno> {
    let flags = rustix::fs::fcntl_getfl(fd.as_fd())?;
    rustix::fs::fcntl_setfl(fd.as_fd(), flags - OFlags::NONBLOCK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, Tree) {
        let dir = tempfile::tempdir().expect("tempdir");
        let tree = Tree::open(dir.path(), None).expect("opens");
        (dir, tree)
    }

    #[test]
    fn paths_that_climb_or_are_absolute_are_refused() {
        let (_dir, tree) = tree();
        for bad in ["../x", "/etc/passwd", "a/../../x", ""] {
            let error = tree.append(Path::new(bad), 0o600).expect_err(bad);
            assert!(
                matches!(error, ConfineError::BadPath { .. }),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn a_link_anywhere_on_the_way_is_refused_and_its_target_untouched() {
        let (dir, tree) = tree();
        let outside = tempfile::tempdir().expect("tempdir");
        let canary = outside.path().join("canary");
        std::fs::write(&canary, "before").expect("write");
        std::os::unix::fs::symlink(&canary, dir.path().join("file")).expect("link");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("dir")).expect("link");
        let error = tree
            .append(Path::new("file"), 0o600)
            .expect_err("final link");
        assert!(matches!(error, ConfineError::Link { .. }), "{error}");
        let error = tree
            .append(Path::new("dir/canary"), 0o600)
            .expect_err("link on the way");
        assert!(matches!(error, ConfineError::Link { .. }), "{error}");
        let error = tree
            .read(Path::new("dir/canary"), 100)
            .expect_err("read through a link");
        assert!(matches!(error, ConfineError::Link { .. }), "{error}");
        let error = tree
            .create_dir_all(Path::new("dir/sub"), 0o700)
            .expect_err("mkdir");
        assert!(matches!(error, ConfineError::Link { .. }), "{error}");
        // Replacing replaces the link itself.
        tree.replace(Path::new("file"), b"new", 0o600)
            .expect("replaces the name");
        assert_eq!(std::fs::read_to_string(&canary).expect("read"), "before");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("file")).expect("read"),
            "new"
        );
        // Removing a link to a directory removes the link only.
        tree.remove_all(Path::new("dir")).expect("removes");
        assert_eq!(std::fs::read_to_string(&canary).expect("read"), "before");
    }

    #[test]
    fn disk_usage_counts_files_below_and_never_through_a_link() {
        let (dir, tree) = tree();
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("big"), vec![0u8; 1 << 20]).expect("write");
        std::fs::create_dir_all(dir.path().join("a/b")).expect("mkdir");
        std::fs::write(dir.path().join("a/one"), vec![0u8; 1000]).expect("write");
        std::fs::write(dir.path().join("a/b/two"), vec![0u8; 2000]).expect("write");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).expect("link");
        std::os::unix::fs::symlink(outside.path().join("big"), dir.path().join("a/big"))
            .expect("link");
        let directories: u64 = ["a", "a/b"]
            .iter()
            .map(|d| std::fs::metadata(dir.path().join(d)).expect("dir").len())
            .sum();
        let links: u64 = ["out", "a/big"]
            .iter()
            .map(|l| {
                std::fs::symlink_metadata(dir.path().join(l))
                    .expect("link")
                    .len()
            })
            .sum();
        assert_eq!(
            tree.disk_usage(64).expect("walked"),
            3000 + directories + links
        );
        // Not deeper than asked.
        let shallow = tree.disk_usage(0).expect("walked");
        assert_eq!(
            shallow,
            std::fs::metadata(dir.path().join("a")).expect("a").len() + links
                - std::fs::symlink_metadata(dir.path().join("a/big"))
                    .expect("link")
                    .len()
        );
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let (dir, tree) = tree();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.path().join("pipe"),
            FileType::Fifo,
            Mode::from_raw_mode(0o666),
            0,
        )
        .expect("mkfifo");
        let error = tree.read(Path::new("pipe"), 100).expect_err("fifo read");
        assert!(matches!(error, ConfineError::NotRegular { .. }), "{error}");
        // With no reader, opening for writing without blocking fails at once.
        assert!(tree.append(Path::new("pipe"), 0o600).is_err());
    }

    #[test]
    fn files_and_directories_are_made_read_listed_and_removed() {
        let (dir, tree) = tree();
        let logs = tree
            .create_dir_all(Path::new(".grove/log"), 0o750)
            .expect("mkdir");
        let mut file = logs.append(Path::new("a.log"), 0o640).expect("append");
        file.write_all(b"hello\n").expect("write");
        assert_eq!(
            tree.read(Path::new(".grove/log/a.log"), 100).expect("read"),
            b"hello\n"
        );
        let error = tree
            .read(Path::new(".grove/log/a.log"), 3)
            .expect_err("limit");
        assert!(matches!(error, ConfineError::TooLarge { .. }), "{error}");
        tree.copy(
            Path::new(".grove/log/a.log"),
            Path::new(".grove/log/a.log.1"),
            100,
            0o640,
        )
        .expect("copies");
        tree.truncate(Path::new(".grove/log/a.log"))
            .expect("truncates");
        let entries = logs.entries(Path::new(".")).expect("lists");
        let names: Vec<_> = entries
            .iter()
            .map(|e| (e.name.to_string_lossy().into_owned(), e.size))
            .collect();
        assert_eq!(names, [("a.log".to_owned(), 0), ("a.log.1".to_owned(), 6)]);
        assert!(tree.entries(Path::new("missing")).expect("none").is_empty());
        tree.remove_all(Path::new(".grove")).expect("removes");
        assert!(!dir.path().join(".grove").exists());
    }

    #[test]
    fn a_hard_link_is_refused() {
        let (dir, tree) = tree();
        std::fs::write(dir.path().join("a"), "x").expect("write");
        std::fs::hard_link(dir.path().join("a"), dir.path().join("b")).expect("link");
        let error = tree.append(Path::new("b"), 0o600).expect_err("hard link");
        assert!(
            matches!(error, ConfineError::HardLinked { links: 2, .. }),
            "{error}"
        );
    }

    #[test]
    fn the_root_itself_must_not_be_a_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink("/etc", dir.path().join("root")).expect("link");
        assert!(Tree::open(&dir.path().join("root"), None).is_err());
    }
}
