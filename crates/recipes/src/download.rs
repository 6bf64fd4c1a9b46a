//! `slapos.recipe.build:download` and `:download-unpacked`: a file or an archive, checked
//! against its `md5sum` (or `sha256`) before anything is kept.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use grove_profile::{Resolved, Value};

use crate::{Context, Options, Recipe, Registry, shared};

pub(crate) fn register(registry: &mut Registry) {
    registry.add("slapos.recipe.build:download", Box::new(Download));
    registry.add(
        "slapos.recipe.build:download-unpacked",
        Box::new(DownloadUnpacked),
    );
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    md5: md5::Md5,
    sha256: ring::digest::Context,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        md5::Digest::update(&mut self.md5, &buf[..n]);
        self.sha256.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn destination(
    ctx: &Context<'_>,
    part: &str,
    options: &BTreeMap<String, Value>,
) -> Result<PathBuf, String> {
    if let Some(shared) = shared::location(ctx, part, options) {
        return Ok(shared);
    }
    let path = match options.get("destination") {
        Some(d) => PathBuf::from(&*d.as_text()),
        None => ctx.parts_directory().join(part),
    };
    ctx.inside(&path)
}

/// Downloads `url` into `into` (a new file), checking the checksums the options give; on
/// any failure the file is removed.
fn fetch_checked(ctx: &Context<'_>, options: &Options<'_>, into: &Path) -> Result<(), String> {
    let url = options.required("url")?;
    let (md5_expected, sha_expected) = (options.get("md5sum"), options.get("sha256"));
    let result = (|| {
        let file = std::fs::File::create(into)
            .map_err(|e| format!("cannot write {}: {e}", into.display()))?;
        let mut hashing = Hashing {
            inner: std::io::BufWriter::new(file),
            md5: <md5::Md5 as md5::Digest>::new(),
            sha256: ring::digest::Context::new(&ring::digest::SHA256),
        };
        ctx.fetcher.download(url.trim(), &mut hashing)?;
        hashing
            .flush()
            .map_err(|e| format!("cannot write {}: {e}", into.display()))?;
        let md5 = hex(&md5::Digest::finalize(hashing.md5));
        let sha256 = hex(hashing.sha256.finish().as_ref());
        if let Some(expected) = &md5_expected
            && !md5.eq_ignore_ascii_case(expected.trim())
        {
            return Err(format!(
                "md5sum of {url} is {md5}, expected {}",
                expected.trim()
            ));
        }
        if let Some(expected) = &sha_expected
            && !sha256.eq_ignore_ascii_case(expected.trim())
        {
            return Err(format!(
                "sha256 of {url} is {sha256}, expected {}",
                expected.trim()
            ));
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(into);
    }
    result
}

/// `slapos.recipe.build:download`: the file at `url` as `<destination>/<filename>`
/// (`target` names it, `location` the directory).
struct Download;

fn file_name(options: &BTreeMap<String, Value>) -> Result<String, String> {
    if let Some(name) = options.get("filename") {
        return Ok(name.as_text().trim().to_owned());
    }
    let url = options
        .get("url")
        .map(|u| u.as_text().trim().to_owned())
        .ok_or("missing option url")?;
    let name = url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .split(['?', '#'])
        .next()
        .unwrap_or_default();
    if name.is_empty() || name == ".." || name == "." {
        return Err(format!("cannot name the file of {url}: give filename"));
    }
    Ok(name.to_owned())
}

impl Recipe for Download {
    fn computes_options(&self) -> bool {
        true
    }

    fn plans(&self) -> bool {
        true
    }

    fn init(
        &self,
        ctx: &Context<'_>,
        part: &str,
        options: &mut BTreeMap<String, Value>,
    ) -> Result<(), String> {
        let location = destination(ctx, part, options)?;
        let target = ctx.part_location(&location.join(file_name(options)?))?;
        options.insert(
            "location".to_owned(),
            Value::Text(location.display().to_string()),
        );
        options.insert(
            "target".to_owned(),
            Value::Text(target.display().to_string()),
        );
        Ok(())
    }

    fn install(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        _: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        options.refuse(&["alternate-url"])?;
        let location = ctx.part_location(Path::new(&options.required("location")?))?;
        let target = ctx.part_location(Path::new(&options.required("target")?))?;
        let fetch = || -> Result<(), String> {
            std::fs::create_dir_all(&location)
                .map_err(|e| format!("cannot create {}: {e}", location.display()))?;
            let partial = target.with_extension("grove-download");
            fetch_checked(ctx, options, &partial)?;
            if let Some(mode) = options.get("mode") {
                let mode = crate::builtin::parse_mode(&mode)?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| format!("cannot set the mode of {}: {e}", partial.display()))?;
            }
            std::fs::rename(&partial, &target)
                .map_err(|e| format!("cannot write {}: {e}", target.display()))
        };
        if shared::is_shared(ctx, &location) {
            let signature = shared::signature(options.values);
            shared::build_once(&location, &signature, fetch)?;
            return Ok(Vec::new());
        }
        fetch()?;
        Ok(vec![location])
    }
}

/// `slapos.recipe.build:download-unpacked`: the archive at `url` (tar, tar.gz) unpacked in
/// `destination` (`location`), its single top directory stripped unless
/// `strip-top-level-dir = false`. No entry is written outside the destination.
struct DownloadUnpacked;

pub(crate) fn unpack(archive: &Path, into: &Path) -> Result<(), String> {
    let mut file = std::fs::File::open(archive)
        .map_err(|e| format!("cannot read {}: {e}", archive.display()))?;
    let mut magic = [0u8; 2];
    let gzip = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    let file = std::fs::File::open(archive)
        .map_err(|e| format!("cannot read {}: {e}", archive.display()))?;
    let reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut tar = tar::Archive::new(reader);
    tar.set_preserve_permissions(true);
    for entry in tar
        .entries()
        .map_err(|e| format!("cannot read the archive: {e}"))?
    {
        let mut entry = entry.map_err(|e| format!("cannot read the archive: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("bad entry name: {e}"))?
            .into_owned();
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(|e| format!("bad link in {}: {e}", path.display()))?
                .unwrap_or_default();
            // A symbolic link is relative to its own directory, a hard link to the
            // archive's root.
            let base = if kind.is_symlink() {
                path.parent().unwrap_or(Path::new(""))
            } else {
                Path::new("")
            };
            if !stays_inside(base, &target) {
                return Err(format!(
                    "the archive entry {} links to {}, outside its destination",
                    path.display(),
                    target.display()
                ));
            }
        }
        // `unpack_in` refuses entries that would land outside `into` (`..`, links).
        let inside = entry
            .unpack_in(into)
            .map_err(|e| format!("cannot unpack {}: {e}", path.display()))?;
        if !inside {
            return Err(format!(
                "the archive entry {} points outside its destination",
                path.display()
            ));
        }
    }
    Ok(())
}

/// Whether `target`, seen from `base` (both relative to the destination), stays inside
/// the destination: not absolute, never climbing above it.
fn stays_inside(base: &Path, target: &Path) -> bool {
    use std::path::Component;
    let mut depth: usize = 0;
    for component in base.components().chain(target.components()) {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// A work path beside a part's location, `<parent>/.<name>.<suffix>`; the parent is
/// created.
pub(crate) fn beside(location: &Path, suffix: &str) -> Result<PathBuf, String> {
    let parent = location.parent().ok_or("the location has no parent")?;
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let name = location
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(parent.join(format!(".{name}.{suffix}")))
}

/// Downloads the archive at `url` (checked against its checksums) and unpacks it into
/// `staging`, a new directory. Returns the directory holding the tree: the archive's single
/// top-level directory when `strip` and there is one, else `staging`.
pub(crate) fn fetch_unpacked(
    ctx: &Context<'_>,
    options: &Options<'_>,
    location: &Path,
    staging: &Path,
    strip: bool,
) -> Result<PathBuf, String> {
    let archive = beside(location, "grove-download")?;
    std::fs::create_dir_all(staging)
        .map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    fetch_checked(ctx, options, &archive)?;
    let unpacked = unpack(&archive, staging);
    let _ = std::fs::remove_file(&archive);
    unpacked?;
    let entries: Vec<PathBuf> = std::fs::read_dir(staging)
        .map_err(|e| format!("cannot list {}: {e}", staging.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    let top = match entries.as_slice() {
        [single] if strip && single.is_dir() && !single.is_symlink() => single.clone(),
        _ => staging.to_owned(),
    };
    // Stripping the top directory moves the tree up: a link must stay inside what is kept.
    links_stay_inside(&top, Path::new(""))?;
    Ok(top)
}

/// Checks every symbolic link below `root/relative` against `root`.
fn links_stay_inside(root: &Path, relative: &Path) -> Result<(), String> {
    let dir = root.join(relative);
    let entries =
        std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in entries.filter_map(Result::ok) {
        let inner = relative.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(|e| format!("cannot read {}: {e}", inner.display()))?;
        if kind.is_symlink() {
            let target = std::fs::read_link(entry.path())
                .map_err(|e| format!("cannot read {}: {e}", inner.display()))?;
            if !stays_inside(relative, &target) {
                return Err(format!(
                    "the archive entry {} links to {}, outside its destination",
                    inner.display(),
                    target.display()
                ));
            }
        } else if kind.is_dir() {
            links_stay_inside(root, &inner)?;
        }
    }
    Ok(())
}

impl Recipe for DownloadUnpacked {
    fn computes_options(&self) -> bool {
        true
    }

    fn plans(&self) -> bool {
        true
    }

    fn init(
        &self,
        ctx: &Context<'_>,
        part: &str,
        options: &mut BTreeMap<String, Value>,
    ) -> Result<(), String> {
        let location = destination(ctx, part, options)?;
        options.insert(
            "location".to_owned(),
            Value::Text(location.display().to_string()),
        );
        Ok(())
    }

    fn install(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        _: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        options.refuse(&["alternate-url", "format"])?;
        let location = ctx.part_location(Path::new(&options.required("location")?))?;
        let strip = options
            .get("strip-top-level-dir")
            .is_none_or(|v| !matches!(v.trim(), "false" | "no" | "off" | "0"));
        let unpack = || -> Result<(), String> {
            let staging = beside(&location, "grove-unpack")?;
            let _ = std::fs::remove_dir_all(&staging);
            let result = (|| {
                let top = fetch_unpacked(ctx, options, &location, &staging, strip)?;
                let _ = std::fs::remove_dir_all(&location);
                std::fs::rename(&top, &location)
                    .map_err(|e| format!("cannot move into {}: {e}", location.display()))
            })();
            let _ = std::fs::remove_dir_all(&staging);
            result
        };
        if shared::is_shared(ctx, &location) {
            let signature = shared::signature(options.values);
            shared::build_once(&location, &signature, unpack)?;
            return Ok(Vec::new());
        }
        unpack()?;
        Ok(vec![location])
    }
}
