//! Loading a profile: the main file, its `extends` (files and URLs, depth first), the
//! built-in `[buildout]` defaults and the caller's assignments, merged with precedence.

use crate::cond::Environment;
use crate::cond::PathKind;
use crate::error::{Diagnostic, ErrorKind};
use crate::merge::{self, Origin, Section, SectionKey, Sections};
use crate::parse::{self, Op, OptKey};

/// Why a loader could not give a file's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// Nothing at that location (`optional-extends` skips it).
    NotFound,
    /// Anything else: permission denied, HTTP error, not UTF-8...
    Failed(String),
}

/// Reads files and URLs for the engine, which does no IO of its own.
///
/// `location` is an absolute path or a URL (`scheme://...`).
pub trait Loader {
    fn load(&self, location: &str) -> Result<String, LoadError>;

    /// What is at a local path, for section conditions (`os.path.isdir`, `os.access`):
    /// `None` when nothing is there or it cannot be told. The default knows nothing.
    fn probe(&self, path: &str) -> Option<PathKind> {
        let _ = path;
        None
    }
}

/// A loader over an in-memory map of location to text, for tests and embedders: its keys
/// are files, and every directory above them exists.
impl<S: std::hash::BuildHasher> Loader for std::collections::HashMap<String, String, S> {
    fn load(&self, location: &str) -> Result<String, LoadError> {
        self.get(location).cloned().ok_or(LoadError::NotFound)
    }

    fn probe(&self, path: &str) -> Option<PathKind> {
        if self.contains_key(path) {
            return Some(PathKind::File);
        }
        let dir = format!("{}/", path.trim_end_matches('/'));
        self.keys()
            .any(|k| k.starts_with(&dir))
            .then_some(PathKind::Directory)
    }
}

/// A `section:option=value` assignment given by the caller (`+=` and `-=` work too; a
/// missing `section:` means `buildout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub section: String,
    pub key: OptKey,
    pub value: String,
}

impl std::str::FromStr for Assignment {
    type Err = Diagnostic;

    fn from_str(text: &str) -> Result<Assignment, Diagnostic> {
        let bad = || Diagnostic::new(ErrorKind::BadAssignment(text.to_owned()));
        let (target, value) = text.split_once('=').ok_or_else(bad)?;
        let (section, option) = match target.split(':').collect::<Vec<_>>()[..] {
            [option] => ("buildout", option),
            [section, option] => (section.trim(), option),
            _ => return Err(bad()),
        };
        let option = option.trim();
        let key = if let Some(name) = option.strip_suffix('+') {
            OptKey {
                name: name.trim_end().to_owned(),
                op: Op::Add,
            }
        } else if let Some(name) = option.strip_suffix('-') {
            OptKey {
                name: name.trim_end().to_owned(),
                op: Op::Remove,
            }
        } else {
            OptKey::set(option)
        };
        if section.is_empty() || key.name.is_empty() {
            return Err(bad());
        }
        Ok(Assignment {
            section: section.to_owned(),
            key,
            value: value.trim().to_owned(),
        })
    }
}

/// How to load a profile.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub env: Environment,
    pub assignments: Vec<Assignment>,
    /// Where relative `buildout:extends=` assignments are looked up (the caller's
    /// current directory).
    pub cwd: Option<String>,
}

impl Default for LoadOptions {
    fn default() -> LoadOptions {
        LoadOptions {
            env: Environment::host(),
            assignments: Vec::new(),
            cwd: None,
        }
    }
}

/// A file that took part in a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Absolute path or URL.
    pub location: String,
    /// How messages name it: relative to the main file's directory when inside it.
    pub display: String,
}

/// A loaded, merged profile, before macros and substitutions.
#[derive(Debug, Clone)]
pub struct Profile {
    pub files: Vec<FileInfo>,
    /// Every section with every raw value and its history (what `annotate` prints).
    pub sections: Sections,
    /// Errors found while loading; the profile holds whatever could be read.
    pub diagnostics: Vec<Diagnostic>,
}

/// `scheme://` at the start, as zc.buildout tells URLs from paths.
pub fn is_url(location: &str) -> bool {
    location.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"+.-".contains(&c))
    })
}

/// The directory (or URL prefix) a file's relative names are resolved against.
fn base_of(location: &str) -> String {
    match location.rfind('/') {
        Some(0) => "/".to_owned(),
        Some(i) => location[..i].to_owned(),
        None => String::new(),
    }
}

/// Joins and normalizes `.` and `..` lexically.
fn join(base: &str, name: &str) -> String {
    if name.starts_with('/') || is_url(name) {
        return normalize(name);
    }
    if base.is_empty() {
        return normalize(name);
    }
    normalize(&format!("{}/{name}", base.trim_end_matches('/')))
}

fn normalize(location: &str) -> String {
    let (prefix, path) = match location.find("://") {
        Some(i) => {
            let after = &location[i + 3..];
            let host_end = after.find('/').map_or(after.len(), |j| j);
            location.split_at(i + 3 + host_end)
        }
        None => ("", location),
    };
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    if absolute || !prefix.is_empty() {
        format!("{prefix}/{joined}")
    } else if joined.is_empty() {
        ".".to_owned()
    } else {
        joined
    }
}

/// The built-in defaults of the `[buildout]` section (zc.buildout's, less the Python
/// interpreter's own).
const BUILDOUT_DEFAULTS: &[(&str, &str)] = &[
    ("allow-hosts", "*"),
    ("allow-picked-versions", "true"),
    ("allow-unknown-extras", "false"),
    ("bin-directory", "bin"),
    ("develop-eggs-directory", "develop-eggs"),
    ("eggs-directory", "eggs"),
    ("eggs-directory-version", "v5"),
    ("find-links", ""),
    ("install-from-cache", "false"),
    ("installed", ".installed.cfg"),
    ("log-format", ""),
    ("log-level", "INFO"),
    ("newest", "true"),
    ("offline", "false"),
    ("parts-directory", "parts"),
    ("prefer-final", "true"),
    ("python", "buildout"),
    ("show-picked-versions", "false"),
    ("socket-timeout", ""),
    ("update-versions-file", ""),
    ("use-dependency-links", "true"),
];

struct Opener<'a> {
    loader: &'a dyn Loader,
    env: &'a Environment,
    main_dir: Option<String>,
    files: Vec<FileInfo>,
    diagnostics: Vec<Diagnostic>,
    /// Each file read, parsed and summed up once, by location: a release reaches the same
    /// component through many `extends`, and zc.buildout applies it once per path.
    summaries: std::collections::HashMap<String, Summary>,
    /// The delta section each section of the accumulated configuration was last made by,
    /// while nothing else changed it: applying that same section again (a diamond) is
    /// skipped without looking.
    applied: std::cell::RefCell<std::collections::HashMap<std::rc::Rc<str>, std::rc::Rc<Section>>>,
}

/// What applying a file with its bases does, computed the first time it is applied.
struct Summary {
    /// Its own sections.
    sections: Sections,
    /// Its layers merged, from nothing, when that is what they do on top of anything:
    /// every increment adds to a value set beside it, and no macro user has increments.
    delta: Option<std::rc::Rc<merge::Delta>>,
    /// The bases that were applied (not missing, not a cycle), in order.
    bases: Vec<String>,
}

/// A file as read: its sections, and the bases it names.
struct Parsed {
    file: u32,
    sections: Sections,
    extends: Vec<(String, u32)>,
    optional_extends: Vec<(String, u32)>,
}

impl Opener<'_> {
    fn display(&self, location: &str) -> String {
        if let Some(dir) = &self.main_dir
            && let Some(rest) = location.strip_prefix(dir.as_str())
            && let Some(rest) = rest.strip_prefix('/')
        {
            return rest.to_owned();
        }
        location.to_owned()
    }

    fn error_at(&mut self, kind: ErrorKind, file: Option<u32>, line: Option<u32>) {
        let mut d = Diagnostic::new(kind);
        d.file = file
            .and_then(|f| self.files.get(f as usize))
            .map(|f| f.display.clone());
        d.line = line;
        self.diagnostics.push(d);
    }

    /// Applies `name` (relative to `base`) on top of `acc` as zc.buildout does: its bases
    /// first, depth first (a base reached by two paths is applied twice), then the file.
    /// Each file is read and parsed once; one that needs nothing from before it
    /// ([`Summary::delta`]) is applied again as one merged delta.
    fn open(
        &mut self,
        acc: &mut Sections,
        base: &str,
        name: &str,
        seen: &mut Vec<String>,
        from: Option<(u32, u32)>,
    ) -> Result<Option<String>, LoadError> {
        let location = if is_url(base) && name.starts_with('/') {
            normalize(name)
        } else {
            join(base, name)
        };
        if seen.contains(&location) {
            let mut chain: Vec<String> = seen.iter().map(|s| self.display(s)).collect();
            chain.push(self.display(&location));
            self.error_at(
                ErrorKind::RecursiveInclude(chain),
                from.map(|f| f.0),
                from.map(|f| f.1),
            );
            return Ok(None);
        }
        if self.summaries.contains_key(&location) {
            self.apply(acc, &location);
        } else {
            let summary = self.first_open(acc, &location, seen)?;
            self.summaries.insert(location.clone(), summary);
        }
        Ok(Some(location))
    }

    /// Applies a file seen before on top of `acc`.
    fn apply(&self, acc: &mut Sections, location: &str) {
        let Some(summary) = self.summaries.get(location) else {
            return;
        };
        if let Some(delta) = &summary.delta {
            self.apply_delta(acc, delta);
            return;
        }
        for base in &summary.bases {
            self.apply(acc, base);
        }
        self.apply_sections(acc, &summary.sections);
    }

    /// Applies a file's own sections; those are no longer as a delta left them.
    fn apply_sections(&self, acc: &mut Sections, sections: &Sections) {
        let mut applied = self.applied.borrow_mut();
        for name in sections.keys() {
            applied.remove(name.as_str());
        }
        merge::update_from_ref(acc, sections);
    }

    fn apply_delta(&self, acc: &mut Sections, delta: &merge::Delta) {
        let mut applied = self.applied.borrow_mut();
        for (name, section) in delta {
            if applied
                .get(name)
                .is_some_and(|a| std::rc::Rc::ptr_eq(a, section))
            {
                continue;
            }
            if merge::update_from_one(acc, name, section) {
                applied.insert(std::rc::Rc::clone(name), std::rc::Rc::clone(section));
            } else {
                applied.remove(name);
            }
        }
    }

    /// Reads a file, applies its bases and it on top of `acc`, and sums it up.
    fn first_open(
        &mut self,
        acc: &mut Sections,
        location: &str,
        seen: &mut Vec<String>,
    ) -> Result<Summary, LoadError> {
        let parsed = self.read(location)?;
        let file = parsed.file;
        let my_base = base_of(location);
        let mut bases = Vec::new();
        let mut closed = true;
        seen.push(location.to_owned());
        for (name, line, optional) in parsed
            .extends
            .iter()
            .map(|(n, l)| (n, *l, false))
            .chain(parsed.optional_extends.iter().map(|(n, l)| (n, *l, true)))
        {
            match self.open(acc, &my_base, name, seen, Some((file, line))) {
                Ok(Some(applied)) => bases.push(applied),
                Ok(None) => closed = false,
                Err(LoadError::NotFound) if optional => {}
                Err(LoadError::NotFound) => {
                    closed = false;
                    self.error_at(
                        ErrorKind::NotFound(join(&my_base, name)),
                        Some(file),
                        Some(line),
                    );
                }
                Err(LoadError::Failed(message)) => {
                    closed = false;
                    self.error_at(
                        ErrorKind::Load {
                            location: join(&my_base, name),
                            message,
                        },
                        Some(file),
                        Some(line),
                    );
                }
            }
        }
        seen.pop();
        self.apply_sections(acc, &parsed.sections);
        // Closed when every base is, and each increment of the file adds to a value the
        // file itself sets (in the same section, conditional parts included).
        let mut delta = merge::Delta::new();
        for (index, base) in bases.iter().enumerate() {
            match self.summaries.get(base).and_then(|s| s.delta.as_ref()) {
                // The first base's delta as it is: its sections are shared.
                Some(base_delta) if closed && index == 0 => delta = (**base_delta).clone(),
                Some(base_delta) if closed => {
                    for (name, section) in base_delta.iter() {
                        merge::update_delta(&mut delta, name, std::rc::Rc::clone(section), true);
                    }
                }
                _ => closed = false,
            }
        }
        for section in parsed.sections.values() {
            // A macro user keeps its increments until the macro is expanded: applied on
            // nothing or on something, it differs.
            let macro_user = merge::macro_user(section);
            for key in section.keys().filter(|k| k.op != Op::Set) {
                closed &= !macro_user && section.contains_key(&OptKey::set(key.name.clone()));
            }
        }
        let delta = closed.then(|| {
            for (name, section) in &parsed.sections {
                let name: std::rc::Rc<str> = name.as_str().into();
                merge::update_delta(&mut delta, &name, std::rc::Rc::new(section.clone()), false);
            }
            std::rc::Rc::new(delta)
        });
        Ok(Summary {
            sections: parsed.sections,
            delta,
            bases,
        })
    }

    /// Reads and parses a file once; its errors are said once.
    fn read(&mut self, location: &str) -> Result<Parsed, LoadError> {
        let text = self.loader.load(location)?;
        let file = u32::try_from(self.files.len()).unwrap_or(u32::MAX);
        let display = self.display(location);
        self.files.push(FileInfo {
            location: location.to_owned(),
            display,
        });
        let parsed = parse::parse_with(&text, self.env, self.loader);
        for error in &parsed.errors {
            self.error_at(
                ErrorKind::Parse(error.to_string()),
                Some(file),
                Some(error.line),
            );
        }
        let my_base = base_of(location);

        let mut sections = Sections::new();
        let mut extends = Vec::new();
        let mut optional_extends = Vec::new();
        for (name, raw) in parsed.sections {
            let mut section = Section::new();
            let uses_base = raw
                .options
                .values()
                .any(|o| o.value.contains("${:_profile_base_location_}"));
            for (key, opt) in raw.options {
                let origin = Origin::File {
                    file,
                    line: opt.line,
                };
                if name == "buildout" && key.op == Op::Set {
                    match key.name.as_str() {
                        "extends" => {
                            extends.extend(
                                opt.value
                                    .split_whitespace()
                                    .map(|s| (s.to_owned(), opt.line)),
                            );
                            continue;
                        }
                        "optional-extends" => {
                            optional_extends.extend(
                                opt.value
                                    .split_whitespace()
                                    .map(|s| (s.to_owned(), opt.line)),
                            );
                            continue;
                        }
                        "extended-by" => {
                            self.error_at(ErrorKind::ExtendedBy, Some(file), Some(opt.line))
                        }
                        _ => {}
                    }
                }
                section.insert(key, SectionKey::new(opt.value, origin));
            }
            // SlapOS: a section that refers to `${:_profile_base_location_}` gets the
            // directory (or URL prefix) of the file it is written in.
            if uses_base {
                section.insert(
                    OptKey::set("_profile_base_location_"),
                    SectionKey::new(
                        my_base.clone(),
                        Origin::File {
                            file,
                            line: raw.line,
                        },
                    ),
                );
            }
            sections.insert(name, section);
        }

        Ok(Parsed {
            file,
            sections,
            extends,
            optional_extends,
        })
    }

    /// Opens a file and merges it with its bases, later ones winning.
    fn open_root(&mut self, base: &str, name: &str) -> Result<Sections, LoadError> {
        let mut merged = Sections::new();
        self.applied.borrow_mut().clear();
        self.open(&mut merged, base, name, &mut Vec::new(), None)?;
        Ok(merged)
    }
}

/// Loads the profile at `main` (an absolute path or a URL) with its bases.
///
/// Errors in the files are collected in [`Profile::diagnostics`]; a main file that cannot
/// be read is an `Err`.
pub fn load(main: &str, loader: &dyn Loader, options: &LoadOptions) -> Result<Profile, Diagnostic> {
    let main_is_url = is_url(main);
    let main_location = if main_is_url {
        main.to_owned()
    } else {
        normalize(main)
    };
    let main_dir = (!main_is_url).then(|| base_of(&main_location));
    let directory = main_dir.clone();
    let mut opener = Opener {
        loader,
        env: &options.env,
        main_dir,
        files: Vec::new(),
        diagnostics: Vec::new(),
        summaries: std::collections::HashMap::new(),
        applied: Default::default(),
    };

    let mut buildout: Section = BUILDOUT_DEFAULTS
        .iter()
        .map(|(k, v)| (OptKey::set(*k), SectionKey::new(*v, Origin::Default)))
        .collect();
    buildout.insert(
        OptKey::set("executable"),
        SectionKey::new(options.env.executable.clone(), Origin::Default),
    );
    if let Some(dir) = &directory {
        buildout.insert(
            OptKey::set("directory"),
            SectionKey::new(dir.clone(), Origin::Computed),
        );
    }
    let mut data = Sections::new();
    data.insert("buildout".to_owned(), buildout);

    let config = opener.open_root("", &main_location).map_err(|e| match e {
        LoadError::NotFound => Diagnostic::new(ErrorKind::NotFound(main_location.clone())),
        LoadError::Failed(message) => Diagnostic::new(ErrorKind::Load {
            location: main_location.clone(),
            message,
        }),
    })?;
    merge::update(&mut data, config);

    // Assignments: `buildout:extends` loads more files after the profile's own, then every
    // other assignment overrides.
    let mut assigned = Sections::new();
    let mut cl_extends = Vec::new();
    for a in &options.assignments {
        if a.section == "buildout" && a.key == OptKey::set("extends") {
            cl_extends.extend(a.value.split_whitespace().map(str::to_owned));
            continue;
        }
        assigned.entry(a.section.clone()).or_default().insert(
            a.key.clone(),
            SectionKey::new(a.value.clone(), Origin::CommandLine),
        );
    }
    for name in cl_extends {
        let cwd = options.cwd.clone().unwrap_or_default();
        match opener.open_root(&cwd, &name) {
            Ok(config) => merge::update(&mut data, config),
            Err(LoadError::NotFound) => {
                opener.error_at(ErrorKind::NotFound(join(&cwd, &name)), None, None)
            }
            Err(LoadError::Failed(message)) => {
                opener.error_at(
                    ErrorKind::Load {
                        location: join(&cwd, &name),
                        message,
                    },
                    None,
                    None,
                );
            }
        }
    }
    merge::update(&mut data, assigned);

    let buildout = data.entry("buildout".to_owned()).or_default();
    let versions_key = OptKey::set("versions");
    if let std::collections::btree_map::Entry::Vacant(entry) = buildout.entry(versions_key) {
        entry.insert(SectionKey::new("versions", Origin::Default));
        data.entry("versions".to_owned()).or_default();
    }
    absolutize_directories(&mut data, &opener.files);

    Ok(Profile {
        files: opener.files,
        sections: data,
        diagnostics: opener.diagnostics,
    })
}

/// Makes `download-cache`, `eggs-directory` and `extends-cache` absolute, relative to the
/// file that set them (or to `buildout:directory` for defaults and assignments).
fn absolutize_directories(data: &mut Sections, files: &[FileInfo]) {
    let Some(buildout) = data.get_mut("buildout") else {
        return;
    };
    let directory = buildout
        .get(&OptKey::set("directory"))
        .map(|d| d.value.clone());
    for name in ["download-cache", "eggs-directory", "extends-cache"] {
        let Some(key) = buildout.get_mut(&OptKey::set(name)) else {
            continue;
        };
        if key.value.contains("${") || key.value.starts_with('/') {
            continue;
        }
        let base = match key.origin() {
            Origin::File { file, .. } => files.get(file as usize).map(|f| base_of(&f.location)),
            _ => directory.clone(),
        };
        // A file read from a URL gives no directory to resolve against: keep it relative.
        if let Some(base) = base.filter(|b| !is_url(b)) {
            let absolute = join(&base, &key.value);
            key.set_directory(absolute);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins() {
        assert_eq!(join("/a/b", "../c.cfg"), "/a/c.cfg");
        assert_eq!(join("/a/b", "/x.cfg"), "/x.cfg");
        assert_eq!(join("http://h/p/q", "../r.cfg"), "http://h/p/r.cfg");
        assert_eq!(join("http://h/p", "http://o/x.cfg"), "http://o/x.cfg");
        assert_eq!(base_of("/a/b.cfg"), "/a");
        assert_eq!(base_of("http://h/p/b.cfg"), "http://h/p");
    }

    #[test]
    fn assignments() {
        let a: Assignment = "s:a+=l3".parse().expect("valid");
        assert_eq!(
            (a.section.as_str(), a.key.op, a.value.as_str()),
            ("s", Op::Add, "l3")
        );
        let a: Assignment = "parts=x".parse().expect("valid");
        assert_eq!(a.section, "buildout");
        assert!("a:b:c=1".parse::<Assignment>().is_err());
        assert!("novalue".parse::<Assignment>().is_err());
    }
}
