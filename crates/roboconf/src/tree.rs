//! An application's files, read into memory from a directory or a ZIP (or made by a
//! test): the checks and the master see one shape whatever the source.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Limits on what is read: an application is a few scripts and text files.
pub const MAX_FILES: usize = 10_000;
pub const MAX_BYTES: u64 = 64 << 20;

/// Why an application's files could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a ZIP archive: {source}")]
    Zip {
        path: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },
    #[error("{path}: more than {MAX_FILES} files or {MAX_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("{path}: entry {entry:?} leaves the archive")]
    Escapes { path: PathBuf, entry: String },
}

/// Files by their path from the application's root, `/`-separated, and the folders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    pub files: BTreeMap<String, Vec<u8>>,
    pub dirs: BTreeSet<String>,
}

impl Tree {
    /// A tree of text files, for tests.
    pub fn of<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Tree {
        let mut tree = Tree::default();
        for (path, text) in files {
            tree.insert(path.to_owned(), text.as_bytes().to_vec());
        }
        tree
    }

    /// Adds a file and the folders above it.
    pub fn insert(&mut self, path: String, bytes: Vec<u8>) {
        let mut at = path.as_str();
        while let Some((parent, _)) = at.rsplit_once('/') {
            self.dirs.insert(parent.to_owned());
            at = parent;
        }
        self.files.insert(path, bytes);
    }

    /// Reads a directory, following no links out of it (a link is read as what it is
    /// not: skipped).
    pub fn from_dir(root: &Path) -> Result<Tree, TreeError> {
        let mut tree = Tree::default();
        let mut total = 0u64;
        let mut pending = vec![(root.to_owned(), String::new())];
        while let Some((dir, prefix)) = pending.pop() {
            let io = |source| TreeError::Io {
                path: dir.clone(),
                source,
            };
            let mut entries: Vec<_> = std::fs::read_dir(&dir)
                .map_err(io)?
                .collect::<Result<_, _>>()
                .map_err(io)?;
            entries.sort_by_key(std::fs::DirEntry::file_name);
            for entry in entries {
                let name = entry.file_name().to_string_lossy().into_owned();
                let path = entry.path();
                let relative = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                let kind = entry.file_type().map_err(|source| TreeError::Io {
                    path: path.clone(),
                    source,
                })?;
                if kind.is_dir() {
                    tree.dirs.insert(relative.clone());
                    pending.push((path, relative));
                } else if kind.is_file() {
                    let bytes = std::fs::read(&path).map_err(|source| TreeError::Io {
                        path: path.clone(),
                        source,
                    })?;
                    total += bytes.len() as u64;
                    if total > MAX_BYTES || tree.files.len() >= MAX_FILES {
                        return Err(TreeError::TooLarge {
                            path: root.to_owned(),
                        });
                    }
                    tree.files.insert(relative, bytes);
                }
            }
        }
        Ok(tree)
    }

    /// Reads a ZIP archive. An archive whose entries all sit in one top folder is read
    /// from inside it (what zipping a folder makes).
    pub fn from_zip(path: &Path) -> Result<Tree, TreeError> {
        let file = std::fs::File::open(path).map_err(|source| TreeError::Io {
            path: path.to_owned(),
            source,
        })?;
        Tree::from_zip_reader(file, path)
    }

    /// The tree as a ZIP archive (deflated), what `grove app deploy` sends the master.
    pub fn to_zip(&self) -> Result<Vec<u8>, zip::result::ZipError> {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(0o644);
        for (path, bytes) in &self.files {
            writer.start_file(path.as_str(), options)?;
            std::io::Write::write_all(&mut writer, bytes)?;
        }
        Ok(writer.finish()?.into_inner())
    }

    /// Reads a ZIP archive from memory (`path` names it in errors).
    pub fn from_zip_bytes(bytes: &[u8], path: &Path) -> Result<Tree, TreeError> {
        Tree::from_zip_reader(std::io::Cursor::new(bytes), path)
    }

    fn from_zip_reader<R: Read + std::io::Seek>(reader: R, path: &Path) -> Result<Tree, TreeError> {
        let zip_error = |source| TreeError::Zip {
            path: path.to_owned(),
            source,
        };
        let mut archive = zip::ZipArchive::new(reader).map_err(zip_error)?;
        if archive.len() > MAX_FILES {
            return Err(TreeError::TooLarge {
                path: path.to_owned(),
            });
        }
        let mut tree = Tree::default();
        let mut total = 0u64;
        for index in 0..archive.len() {
            let mut entry = archive.by_index(index).map_err(zip_error)?;
            let name = entry.name().map_err(zip_error)?.into_owned();
            let Some(safe) = entry.enclosed_name() else {
                return Err(TreeError::Escapes {
                    path: path.to_owned(),
                    entry: name,
                });
            };
            let relative: Vec<String> = safe
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let relative = relative.join("/");
            if relative.is_empty() {
                continue;
            }
            if entry.is_dir() {
                tree.dirs.insert(relative);
                continue;
            }
            let mut bytes = Vec::new();
            // Read at most what is left of the budget, whatever the entry claims.
            (&mut entry)
                .take(MAX_BYTES - total + 1)
                .read_to_end(&mut bytes)
                .map_err(|source| TreeError::Io {
                    path: path.join(&name),
                    source,
                })?;
            total += bytes.len() as u64;
            if total > MAX_BYTES {
                return Err(TreeError::TooLarge {
                    path: path.to_owned(),
                });
            }
            tree.insert(relative, bytes);
        }
        Ok(tree.unwrapped())
    }

    /// The tree inside its one top folder, when everything is in one.
    fn unwrapped(self) -> Tree {
        let tops: BTreeSet<&str> = self
            .files
            .keys()
            .map(|p| p.split_once('/').map_or(p.as_str(), |(top, _)| top))
            .collect();
        let [top] = tops.into_iter().collect::<Vec<_>>()[..] else {
            return self;
        };
        // A recipe's archive may hold nothing but its `graph/` folder.
        const PARTS: [&str; 6] = [
            "descriptor",
            "graph",
            "instances",
            "commands",
            "probes",
            "rules.autonomic",
        ];
        if !self.dirs.contains(top) || PARTS.contains(&top) {
            return self;
        }
        let prefix = format!("{top}/");
        let strip = |p: &String| p.strip_prefix(&prefix).map(str::to_owned);
        Tree {
            files: self
                .files
                .iter()
                .filter_map(|(p, b)| Some((strip(p)?, b.clone())))
                .collect(),
            dirs: self.dirs.iter().filter_map(strip).collect(),
        }
    }

    pub fn text(&self, path: &str) -> Option<std::borrow::Cow<'_, str>> {
        self.files.get(path).map(|b| String::from_utf8_lossy(b))
    }

    pub fn is_dir(&self, path: &str) -> bool {
        self.dirs.contains(path)
    }

    /// The files right in a folder, by name.
    pub fn files_in<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let prefix = format!("{dir}/");
        self.files.keys().filter_map(move |p| {
            let name = p.strip_prefix(&prefix)?;
            (!name.contains('/')).then_some(name)
        })
    }
}
