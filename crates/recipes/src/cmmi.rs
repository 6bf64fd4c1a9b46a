//! `slapos.recipe.cmmi`: configure, make, make install of a source archive (or a local
//! source tree) into the part's directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use grove_profile::{Resolved, Value};

use crate::download::{beside, fetch_unpacked};
use crate::{Context, Options, Recipe, Registry, shared};

pub(crate) fn register(registry: &mut Registry) {
    registry.add("slapos.recipe.cmmi", Box::new(Cmmi));
}

struct Cmmi;

/// How many lines of a failing build's output go into the error.
const LOG_TAIL_LINES: usize = 30;

/// `environment` lines, `KEY=VALUE` each.
fn environment(options: &Options<'_>, location: &Path) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for line in located(options, "environment", location)
        .unwrap_or_default()
        .lines()
    {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("environment line {line:?} is not KEY=VALUE"))?;
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("environment variable name {key:?} is invalid"));
        }
        pairs.push((key.to_owned(), value.trim().to_owned()));
    }
    Ok(pairs)
}

/// An option with `@@LOCATION@@` replaced by the part's location (what SlapOS profiles
/// write where `${:location}` cannot be used, the location being computed by the recipe).
fn located(options: &Options<'_>, name: &str, location: &Path) -> Option<String> {
    options
        .get(name)
        .map(|v| v.replace("@@LOCATION@@", &location.display().to_string()))
}

/// `patches`: each `URL` or `URL#md5sum`, fetched, checked, and applied in the source
/// tree with `patch-binary` (default `patch`) and `patch-options` (default `-p0`), in
/// order, before `pre-configure`.
fn apply_patches(
    ctx: &Context<'_>,
    options: &Options<'_>,
    source: &Path,
    build: &Path,
    env: &[(String, String)],
    log: &Path,
) -> Result<(), String> {
    let Some(patches) = options.get("patches") else {
        return Ok(());
    };
    let binary = options
        .get("patch-binary")
        .map_or_else(|| "patch".to_owned(), |b| b.trim().to_owned());
    let flags = options.get("patch-options").map_or_else(
        || "-p0".to_owned(),
        |o| o.split_whitespace().collect::<Vec<_>>().join(" "),
    );
    std::fs::create_dir_all(build)
        .map_err(|e| format!("cannot create {}: {e}", build.display()))?;
    for (i, entry) in patches.split_whitespace().enumerate() {
        let (url, md5) = match entry.rsplit_once('#') {
            Some((url, md5)) => (url, Some(md5)),
            None => (entry, None),
        };
        let mut bytes = Vec::new();
        ctx.fetcher
            .download(url, &mut bytes)
            .map_err(|e| format!("patch {url}: {e}"))?;
        if let Some(expected) = md5 {
            let got = md5::Digest::finalize(<md5::Md5 as md5::Digest>::new_with_prefix(&bytes))
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>();
            if !got.eq_ignore_ascii_case(expected) {
                return Err(format!("md5sum of patch {url} is {got}, not {expected}"));
            }
        }
        let file = build.join(format!("patch-{i}"));
        std::fs::write(&file, &bytes)
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        step(
            "patch",
            &format!("{binary} {flags} < '{}'", file.display()),
            source,
            env,
            log,
        )?;
    }
    Ok(())
}

/// The last lines of a log, for an error message.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// One build step: `sh -c command` in `dir`, output appended to `log`.
fn step(
    name: &str,
    command: &str,
    dir: &Path,
    env: &[(String, String)],
    log: &Path,
) -> Result<(), String> {
    tracing::info!(step = name, %command, "cmmi");
    let output = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    let errors = output
        .try_clone()
        .map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(errors)
        .status()
        .map_err(|e| format!("cannot run /bin/sh: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{name} failed ({status}): {command}\n{}",
            log_tail(log)
        ))
    }
}

impl Recipe for Cmmi {
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
        options.refuse(&["promises", "autogen"])?;
        let location = ctx.part_location(Path::new(&options.required("location")?))?;
        if shared::is_shared(ctx, &location) {
            let signature = shared::signature(options.values);
            shared::build_once(&location, &signature, || build(ctx, options, &location))?;
            // Other releases use it: it outlives this one.
            return Ok(Vec::new());
        }
        build(ctx, options, &location)?;
        Ok(vec![location])
    }
}

/// Configures, builds and installs into `location`; on failure nothing stays there.
fn build(ctx: &Context<'_>, options: &Options<'_>, location: &Path) -> Result<(), String> {
    let location = location.to_owned();
    let prefix = match options.get("prefix") {
        Some(p) => ctx.inside(Path::new(p.trim()))?,
        None => location.clone(),
    };
    let env = environment(options, &location)?;
    let build = beside(&location, "grove-build")?;
    let log = beside(&location, "build.log")?;
    let _ = std::fs::remove_dir_all(&build);
    let _ = std::fs::remove_file(&log);
    let result = (|| {
        let source = match (options.get("path"), options.get("url")) {
            (Some(path), None) => ctx.inside(Path::new(path.trim()))?,
            (None, Some(_)) => fetch_unpacked(ctx, options, &location, &build, true)?,
            (Some(_), Some(_)) => return Err("give url or path, not both".to_owned()),
            (None, None) => return Err("missing option url (or path)".to_owned()),
        };
        std::fs::create_dir_all(&location)
            .map_err(|e| format!("cannot create {}: {e}", location.display()))?;
        let make = options
            .get("make-binary")
            .unwrap_or_else(|| "make".to_owned());
        let make_options = located(options, "make-options", &location).unwrap_or_default();
        let make_options = make_options
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let targets =
            located(options, "make-targets", &location).unwrap_or_else(|| "install".to_owned());
        let targets = targets.split_whitespace().collect::<Vec<_>>().join(" ");
        let configure = located(options, "configure-command", &location)
            .unwrap_or_else(|| "./configure".to_owned());
        let configure_options =
            located(options, "configure-options", &location).unwrap_or_default();
        let configure_options = configure_options
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let hook = |name: &str| -> Result<(), String> {
            match located(options, name, &location) {
                Some(command) if !command.trim().is_empty() => {
                    step(name, command.trim(), &source, &env, &log)
                }
                _ => Ok(()),
            }
        };
        apply_patches(ctx, options, &source, &build, &env, &log)?;
        hook("pre-configure")?;
        step(
            "configure",
            &format!(
                "{} --prefix={} {configure_options}",
                configure.trim(),
                prefix.display()
            ),
            &source,
            &env,
            &log,
        )?;
        hook("pre-build")?;
        step(
            "make",
            &format!("{make} {make_options}"),
            &source,
            &env,
            &log,
        )?;
        hook("pre-install")?;
        step(
            "make install",
            &format!("{make} {make_options} {targets}"),
            &source,
            &env,
            &log,
        )?;
        hook("post-install")
    })();
    if !options.flag("keep-compile-dir") {
        let _ = std::fs::remove_dir_all(&build);
    }
    match result {
        Ok(()) => {
            let _ = std::fs::remove_file(&log);
            Ok(())
        }
        Err(message) => {
            // Nothing half-installed stays behind.
            let _ = std::fs::remove_dir_all(&location);
            Err(message)
        }
    }
}
