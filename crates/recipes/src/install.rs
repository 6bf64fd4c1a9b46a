//! Running a profile's parts: what changed is installed again, what left is uninstalled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use grove_profile::{Diagnostic, Initializer, Profile, Value};
use serde::{Deserialize, Serialize};

use crate::{Context, Options, Registry};

/// Why an installation stopped. What was installed before the failure stays recorded.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("the profile has errors:\n{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Profile(Vec<Diagnostic>),
    #[error("part {part} (recipe {recipe}): {message}")]
    Part {
        part: String,
        recipe: String,
        message: String,
    },
    #[error("cannot record installed parts in {path}: {source}")]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What an installation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub installed: Vec<String>,
    pub updated: Vec<String>,
    pub uninstalled: Vec<String>,
}

/// What `.installed.json` keeps of a part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct InstalledPart {
    recipe: String,
    options: BTreeMap<String, String>,
    paths: Vec<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    /// In install order.
    parts: Vec<(String, InstalledPart)>,
}

const STATE_FILE: &str = ".installed.json";

fn read_state(dir: &Path, file: &str) -> State {
    std::fs::read(dir.join(file))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Written to a temporary file and renamed, so that a crash leaves the old or the new state.
fn write_state(dir: &Path, file: &str, state: &State) -> Result<(), InstallError> {
    let path = dir.join(file);
    let error = |source| InstallError::State {
        path: path.clone(),
        source,
    };
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| error(std::io::Error::other(e)))?;
    let temporary = dir.join(format!("{file}.new"));
    std::fs::write(&temporary, bytes).map_err(error)?;
    std::fs::rename(&temporary, &path).map_err(error)
}

/// `buildout:extensions` Grove knows it does not need, and why: accepted with a note.
/// Any other is an error naming it (what it would change, Grove would not do).
const UNNEEDED_EXTENSIONS: &[(&str, &str)] = &[
    (
        "slapos.rebootstrap",
        "Grove runs no Python of its own to bootstrap again",
    ),
    (
        "slapos.extension.strip",
        "Grove leaves built binaries as they are (stripping only saves disk)",
    ),
    (
        "slapos.extension.shared",
        "Grove's recipes share parts themselves, in the node's shared-part-list",
    ),
];

fn buildout_extensions(resolved: &grove_profile::Resolved) -> Result<(), InstallError> {
    let listed = resolved
        .get("buildout", "extensions")
        .map(|v| v.as_text().into_owned())
        .unwrap_or_default();
    for extension in listed.split_whitespace() {
        match UNNEEDED_EXTENSIONS
            .iter()
            .find(|(name, _)| *name == extension)
        {
            Some((name, why)) => {
                tracing::info!(extension = name, "buildout extension not needed: {why}")
            }
            None => {
                return Err(InstallError::Part {
                    part: "buildout".to_owned(),
                    recipe: format!("extension {extension}"),
                    message: format!(
                        "buildout extension {extension} is not implemented by Grove (it knows {})",
                        UNNEEDED_EXTENSIONS
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Lets recipes compute options while the profile resolves.
struct Init<'r, 'c> {
    registry: &'r Registry,
    ctx: &'r Context<'c>,
}

impl Initializer for Init<'_, '_> {
    fn handles(&self, recipe: &str) -> bool {
        // Unknown recipes are handled, to be refused where they are named.
        self.registry
            .get(recipe)
            .is_none_or(|r| r.computes_options())
    }

    fn initializes_early(&self, recipe: &str) -> bool {
        self.registry
            .get(recipe)
            .is_some_and(|r| r.initializes_others())
    }

    fn early(
        &mut self,
        section: &str,
        recipe: &str,
        options: &BTreeMap<String, Value>,
    ) -> Result<Vec<grove_profile::Early>, String> {
        match self.registry.get(recipe) {
            Some(r) => r.early(self.ctx, section, options),
            None => Ok(Vec::new()),
        }
    }

    fn initialize(
        &mut self,
        section: &str,
        recipe: &str,
        options: &mut BTreeMap<String, Value>,
    ) -> Result<(), String> {
        match self.registry.get(recipe) {
            Some(r) => r.init(self.ctx, section, options),
            None => Err("not implemented by Grove".to_owned()),
        }
    }
}

/// Lets the recipes whose options come from the profile alone compute them (`plans`),
/// and leaves the others' sections as written.
struct Plan<'r, 'c> {
    registry: &'r Registry,
    ctx: &'r Context<'c>,
}

impl Initializer for Plan<'_, '_> {
    fn handles(&self, recipe: &str) -> bool {
        self.registry
            .get(recipe)
            .is_some_and(|r| r.computes_options() && r.plans())
    }

    fn unrun(&self, recipe: &str) -> Option<String> {
        Some(match self.registry.get(recipe) {
            Some(_) => "computed when the part runs, which resolving does not do".to_owned(),
            None => "computed by a recipe Grove does not implement".to_owned(),
        })
    }

    fn initialize(
        &mut self,
        section: &str,
        recipe: &str,
        options: &mut BTreeMap<String, Value>,
    ) -> Result<(), String> {
        match self.registry.get(recipe) {
            Some(r) => r.init(self.ctx, section, options),
            None => Ok(()),
        }
    }
}

/// Resolves `profile` as an installation in `ctx.directory` would see it before running
/// anything: the options Grove's recipes compute from the profile (a cmmi or download
/// part's `location`, a download's `target`) are there; what a recipe computes by running
/// (a password, a port, a request's answer) is not.
pub fn plan(profile: &Profile, registry: &Registry, ctx: &Context<'_>) -> grove_profile::Resolved {
    profile.resolve_with(&mut Plan { registry, ctx })
}

fn remove_paths(paths: &[PathBuf]) {
    for path in paths.iter().rev() {
        let removed = if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        };
        if let Err(e) = removed
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove an uninstalled path");
        }
    }
}

/// Installs the parts of `profile` in `ctx.directory`.
pub fn install(
    profile: &Profile,
    registry: &Registry,
    ctx: &Context<'_>,
) -> Result<Report, InstallError> {
    install_recording(profile, registry, ctx, STATE_FILE)
}

/// Installs, recording what was installed in `state_file` (a sub-profile keeps its own).
pub(crate) fn install_recording(
    profile: &Profile,
    registry: &Registry,
    ctx: &Context<'_>,
    state_file: &str,
) -> Result<Report, InstallError> {
    let resolved = profile.resolve_with(&mut Init { registry, ctx });
    let errors: Vec<Diagnostic> = resolved
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .cloned()
        .collect();
    if !errors.is_empty() {
        return Err(InstallError::Profile(errors));
    }
    buildout_extensions(&resolved)?;
    let mut state = read_state(&ctx.directory, state_file);
    let mut report = Report::default();

    // Parts that left the profile go first, last installed first.
    let wanted: Vec<&str> = resolved.parts.iter().map(String::as_str).collect();
    let leaving: Vec<String> = state
        .parts
        .iter()
        .rev()
        .filter(|(name, _)| !wanted.contains(&name.as_str()))
        .map(|(n, _)| n.clone())
        .collect();
    for name in leaving {
        if let Some(index) = state.parts.iter().position(|(n, _)| *n == name) {
            let (_, old) = state.parts.remove(index);
            remove_paths(&old.paths);
            write_state(&ctx.directory, state_file, &state)?;
            report.uninstalled.push(name);
        }
    }

    for part in &resolved.parts {
        let Some(values) = resolved.sections.get(part) else {
            continue;
        };
        let recipe_name = values
            .get("recipe")
            .map(|v| v.as_text().into_owned())
            .unwrap_or_default();
        let failed = |message: String| InstallError::Part {
            part: part.clone(),
            recipe: recipe_name.clone(),
            message,
        };
        let Some(recipe) = registry.get(&recipe_name) else {
            return Err(failed("not implemented by Grove".to_owned()));
        };
        let options = Options {
            part,
            recipe: &recipe_name,
            values,
        };
        let signature: BTreeMap<String, String> = values
            .iter()
            .map(|(k, v)| (k.clone(), v.as_text().into_owned()))
            .collect();
        let previous = state.parts.iter().position(|(n, _)| n == part);
        if let Some(index) = previous {
            if state.parts[index].1.options == signature
                && state.parts[index].1.recipe == recipe_name
            {
                recipe.update(ctx, &options, &resolved).map_err(failed)?;
                report.updated.push(part.clone());
                continue;
            }
            // Changed: what the old options made goes before the new options install.
            let (_, old) = state.parts.remove(index);
            remove_paths(&old.paths);
            write_state(&ctx.directory, state_file, &state)?;
        }
        let paths = recipe.install(ctx, &options, &resolved).map_err(failed)?;
        state.parts.push((
            part.clone(),
            InstalledPart {
                recipe: recipe_name.clone(),
                options: signature,
                paths,
            },
        ));
        write_state(&ctx.directory, state_file, &state)?;
        report.installed.push(part.clone());
    }
    Ok(report)
}
