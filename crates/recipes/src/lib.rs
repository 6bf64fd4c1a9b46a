//! Native recipes under the names SlapOS profiles use, and the installer that runs a
//! profile's parts with them.
//!
//! A recipe may compute options when its section is initialized ([`Recipe::init`], as a
//! zc.buildout recipe's constructor does: a generated password, a free port), and creates
//! what its part provides in [`Recipe::install`]. The installer remembers, in
//! `.installed.json` in the profile's directory, each part's options and the paths it
//! created: an unchanged part is not installed again, a changed one is uninstalled first,
//! and a part that left the profile is uninstalled.
//!
//! A recipe, or an option of a recipe, that Grove does not implement is an error naming the
//! part and the recipe, never a silent skip. Nothing is written outside the profile's
//! directory.

mod builtin;
pub mod certificate_authority;
mod cmmi;
pub mod conpaas;
mod cookbook;
pub mod cron;
mod download;
mod gitclone;
mod install;
mod jinja;
mod jsonschema;
pub mod roboconf;
mod shared;
pub mod slap;
mod utility;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use grove_profile::{LoadOptions, Profile, Resolved, Value};

pub use install::{InstallError, Report, install, plan};

/// Loads the profile at `path` to install it: a profile with errors is refused, with the
/// first of them.
pub fn load_profile(path: &Path, fetcher: &grove_fetch::Fetcher) -> Result<Profile, String> {
    let location = path
        .to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))?;
    let profile = grove_profile::load(location, fetcher, &LoadOptions::default())
        .map_err(|d| d.to_string())?;
    match profile.diagnostics.iter().find(|d| d.is_error()) {
        Some(error) => Err(error.to_string()),
        None => Ok(profile),
    }
}

/// Where a profile runs.
pub struct Context<'a> {
    /// The profile's directory (`buildout:directory`): a software release's directory or a
    /// partition. Recipes write only below it.
    pub directory: PathBuf,
    /// Reads and downloads the files and URLs recipes fetch (templates, archives).
    pub fetcher: &'a grove_fetch::Fetcher,
    /// For an instance profile: the partition it runs in and the master it talks to.
    pub partition: Option<&'a slap::Partition<'a>>,
    /// The node's directories of shared parts (SlapOS's `shared-part-list`), the last
    /// one where new ones are built; empty: parts are not shared.
    pub shared_parts: Vec<PathBuf>,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

impl Context<'_> {
    /// Where parts go by default (`buildout:parts-directory`), and what must outlive a run.
    pub(crate) fn parts_directory(&self) -> PathBuf {
        self.directory.join("parts")
    }

    /// A part's location: below the profile's directory, or a shared part's place.
    pub(crate) fn part_location(&self, path: &Path) -> Result<PathBuf, String> {
        if shared::is_shared(self, path) {
            Ok(path.to_owned())
        } else {
            self.inside(path)
        }
    }

    /// `path` if it lies below the profile's directory (lexically, and through the links
    /// of its existing parents), else an error.
    pub fn inside(&self, path: &Path) -> Result<PathBuf, String> {
        let path = if path.is_absolute() {
            path.to_owned()
        } else {
            self.directory.join(path)
        };
        let mut normal = PathBuf::new();
        for component in path.components() {
            match component {
                Component::ParentDir => {
                    normal.pop();
                }
                Component::CurDir => {}
                other => normal.push(other),
            }
        }
        let root = self
            .directory
            .canonicalize()
            .unwrap_or_else(|_| self.directory.clone());
        // The deepest existing ancestor, resolved, must be inside too (no escape by link).
        let mut existing = normal.clone();
        while !existing.exists() {
            if !existing.pop() {
                break;
            }
        }
        let resolved = existing.canonicalize().unwrap_or(existing);
        let lexical_root = &self.directory;
        if (normal.starts_with(lexical_root) || normal.starts_with(&root))
            && (resolved.starts_with(&root) || resolved.starts_with(lexical_root))
        {
            Ok(normal)
        } else {
            Err(format!(
                "{} is outside {}",
                normal.display(),
                self.directory.display()
            ))
        }
    }
}

/// The options of a part, with helpers that report missing ones by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Options<'a> {
    pub part: &'a str,
    pub recipe: &'a str,
    pub values: &'a BTreeMap<String, Value>,
}

impl Options<'_> {
    pub fn get(&self, name: &str) -> Option<String> {
        self.values.get(name).map(|v| v.as_text().into_owned())
    }

    /// A boolean option as buildout writes them (`true`, `yes`, `on`, `1`); absent is false.
    pub(crate) fn flag(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| truthy(&v))
    }

    pub fn required(&self, name: &str) -> Result<String, String> {
        self.get(name)
            .ok_or_else(|| format!("missing option {name}"))
    }

    /// Refuses options of the real recipe that Grove does not implement.
    pub fn refuse(&self, unsupported: &[&str]) -> Result<(), String> {
        match unsupported.iter().find(|o| self.values.contains_key(**o)) {
            Some(option) => Err(format!("option {option} is not implemented by Grove")),
            None => Ok(()),
        }
    }
}

/// A recipe.
pub trait Recipe: Send + Sync {
    /// Whether [`Recipe::init`] computes anything (most recipes do not).
    fn computes_options(&self) -> bool {
        false
    }

    /// Whether [`Recipe::init`] computes its options from the profile alone (no file
    /// written, nothing asked of the network or the master), so that `grove profile
    /// resolve` shows them as an installation would see them (`plan`).
    fn plans(&self) -> bool {
        false
    }

    /// Whether [`Recipe::early`] may name sections.
    fn initializes_others(&self) -> bool {
        false
    }

    /// Sections to initialize before this one, with options set first (see
    /// [`grove_profile::Initializer::early`]).
    fn early(
        &self,
        ctx: &Context<'_>,
        part: &str,
        options: &BTreeMap<String, Value>,
    ) -> Result<Vec<grove_profile::Early>, String> {
        let _ = (ctx, part, options);
        Ok(Vec::new())
    }

    /// Computes options when the section is initialized; other sections see them.
    fn init(
        &self,
        ctx: &Context<'_>,
        part: &str,
        options: &mut BTreeMap<String, Value>,
    ) -> Result<(), String> {
        let _ = (ctx, part, options);
        Ok(())
    }

    /// Creates what the part provides; returns the paths to remove when it is uninstalled.
    /// Nothing, for a recipe whose work is the options it computes ([`Recipe::init`]).
    fn install(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        resolved: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        let _ = (ctx, options, resolved);
        Ok(Vec::new())
    }

    /// Runs instead of `install` when the part did not change.
    fn update(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        resolved: &Resolved,
    ) -> Result<(), String> {
        let _ = (ctx, options, resolved);
        Ok(())
    }
}

/// Whether an option's text says yes, as buildout writes it (`true`, `yes`, `on`, `1`).
pub(crate) fn truthy(text: &str) -> bool {
    matches!(text.trim(), "true" | "yes" | "on" | "1")
}

/// Recipes by name.
pub struct Registry {
    recipes: BTreeMap<&'static str, Box<dyn Recipe>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.recipes.keys()).finish()
    }
}

impl Registry {
    /// The recipes Grove ships.
    pub fn builtin() -> Registry {
        let mut registry = Registry {
            recipes: BTreeMap::new(),
        };
        builtin::register(&mut registry);
        certificate_authority::register(&mut registry);
        cmmi::register(&mut registry);
        cookbook::register(&mut registry);
        cron::register(&mut registry);
        download::register(&mut registry);
        gitclone::register(&mut registry);
        jsonschema::register(&mut registry);
        utility::register(&mut registry);
        roboconf::register(&mut registry);
        conpaas::register(&mut registry);
        registry
    }

    pub fn add(&mut self, name: &'static str, recipe: Box<dyn Recipe>) {
        self.recipes.insert(name, recipe);
    }

    pub fn get(&self, name: &str) -> Option<&dyn Recipe> {
        self.recipes.get(name).map(Box::as_ref)
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.recipes.keys().copied().collect()
    }
}

/// The `init` of recipes that build into a directory of their own: a shared part's place
/// (`shared = true` where the node shares parts), else `location` as given or the part's
/// directory under `parts`, below the profile's directory.
pub(crate) fn init_location(
    ctx: &Context<'_>,
    part: &str,
    options: &mut BTreeMap<String, Value>,
) -> Result<(), String> {
    let location = match (
        shared::location(ctx, part, options),
        options.get("location"),
    ) {
        (Some(shared), _) => shared,
        (None, Some(l)) => ctx.inside(&PathBuf::from(l.as_text().trim()))?,
        (None, None) => ctx.inside(&ctx.parts_directory().join(part))?,
    };
    options.insert(
        "location".to_owned(),
        Value::Text(location.display().to_string()),
    );
    Ok(())
}
