//! `slapos.recipe.build:gitclone`: a git repository cloned into the part's directory, at a
//! branch or a pinned revision, with Debian's `git` (or `git-executable`, often a git the
//! release built).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use grove_profile::{Resolved, Value};

use crate::{Context, Options, Recipe, Registry};

pub(crate) fn register(registry: &mut Registry) {
    registry.add("slapos.recipe.build:gitclone", Box::new(GitClone));
}

struct GitClone;

/// Runs `git ARGS`; its error output in the error.
fn git(executable: &str, args: &[&str], dir: Option<&Path>, insecure: bool) -> Result<(), String> {
    let mut command = Command::new(executable);
    if insecure {
        command.args(["-c", "http.sslVerify=false"]);
    }
    command
        .args(args)
        // A repository that asks for a password fails instead of waiting for one.
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null());
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run {executable}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{executable} {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

struct Checkout {
    git: String,
    repository: String,
    branch: String,
    revision: Option<String>,
    insecure: bool,
    location: PathBuf,
}

impl Checkout {
    fn read(ctx: &Context<'_>, options: &Options<'_>) -> Result<Checkout, String> {
        options.refuse(&["sparse-checkout"])?;
        if options.flag("shared") {
            return Err("shared = true is not implemented by Grove for gitclone".to_owned());
        }
        Ok(Checkout {
            git: options
                .get("git-executable")
                .map_or_else(|| "git".to_owned(), |g| g.trim().to_owned()),
            repository: options.required("repository")?.trim().to_owned(),
            branch: options
                .get("branch")
                .map_or_else(|| "master".to_owned(), |b| b.trim().to_owned()),
            revision: options
                .get("revision")
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty()),
            insecure: options.flag("ignore-ssl-certificate"),
            location: ctx.inside(Path::new(&options.required("location")?))?,
        })
    }

    fn clone(&self) -> Result<(), String> {
        if self.location.exists() {
            return Err(format!("{} exists already", self.location.display()));
        }
        let location = self.location.display().to_string();
        let mut args = vec!["clone", "--quiet"];
        if self.revision.is_none() {
            args.extend(["--branch", &self.branch]);
        }
        args.extend(["--", &self.repository, &location]);
        git(&self.git, &args, None, self.insecure)?;
        if let Some(revision) = &self.revision {
            git(
                &self.git,
                &["reset", "--quiet", "--hard", revision],
                Some(&self.location),
                self.insecure,
            )?;
        }
        Ok(())
    }

    /// A branch follows its head; a pinned revision stays.
    fn update(&self) -> Result<(), String> {
        if self.revision.is_some() {
            return Ok(());
        }
        git(
            &self.git,
            &["fetch", "--quiet", "origin", &self.branch],
            Some(&self.location),
            self.insecure,
        )?;
        git(
            &self.git,
            &["reset", "--quiet", "--hard", "FETCH_HEAD"],
            Some(&self.location),
            self.insecure,
        )
    }
}

impl Recipe for GitClone {
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
        crate::init_location(ctx, part, options)
    }

    fn install(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        _: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        let checkout = Checkout::read(ctx, options)?;
        if let Err(error) = checkout.clone() {
            // A half-made clone is not left for the next run to trip on.
            if checkout.location.is_dir() {
                let _ = std::fs::remove_dir_all(&checkout.location);
            }
            if options.flag("ignore-cloning-errors") {
                tracing::warn!(%error, "gitclone failed, ignored as the part asks");
                std::fs::create_dir_all(&checkout.location)
                    .map_err(|e| format!("cannot create {}: {e}", checkout.location.display()))?;
            } else {
                return Err(error);
            }
        }
        Ok(vec![checkout.location])
    }

    fn update(&self, ctx: &Context<'_>, options: &Options<'_>, _: &Resolved) -> Result<(), String> {
        // `develop`: the checkout is someone's work in progress, left as it is.
        if options.flag("develop") {
            return Ok(());
        }
        Checkout::read(ctx, options)?.update()
    }
}
