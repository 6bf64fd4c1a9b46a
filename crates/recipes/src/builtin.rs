//! The recipes Grove ships, under SlapOS's names.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use grove_profile::{Resolved, Value};
use md5::{Digest, Md5};
use ring::rand::SecureRandom;

use crate::{Context, Options, Recipe, Registry};

pub(crate) fn register(registry: &mut Registry) {
    registry.add("slapos.cookbook:mkdirectory", Box::new(MkDirectory));
    registry.add("slapos.recipe.build:mkdirectory", Box::new(MkDirectory));
    registry.add("slapos.cookbook:wrapper", Box::new(Wrapper));
    registry.add(
        "slapos.cookbook:generate.password",
        Box::new(GeneratePassword),
    );
    registry.add("slapos.cookbook:free_port", Box::new(FreePort));
    registry.add("slapos.cookbook:symbolic.link", Box::new(SymbolicLink));
    registry.add(
        "slapos.cookbook:check_port_listening",
        Box::new(CheckPortListening),
    );
    registry.add(
        "slapos.cookbook:check_url_available",
        Box::new(CheckUrlAvailable),
    );
    registry.add("slapos.recipe.template", Box::new(Template));
    registry.add("slapos.recipe.template:jinja2", Box::new(Jinja2));
    registry.add("plone.recipe.command", Box::new(Command));
}

fn io(what: &str, path: &Path, e: &std::io::Error) -> String {
    format!("cannot {what} {}: {e}", path.display())
}

/// A file a recipe could not write: what it was doing, where. Public for the errors that
/// carry it (`certificate_authority::CaError`); this module is not.
#[derive(Debug, thiserror::Error)]
#[error("cannot {what} {}: {source}", path.display())]
pub struct WriteError {
    what: &'static str,
    path: PathBuf,
    source: std::io::Error,
}

/// A `mode` option that is not an octal number.
#[derive(Debug, thiserror::Error)]
#[error("mode {text:?} is not an octal number")]
pub(crate) struct ModeError {
    text: String,
}

/// The `grove` binary running this profile could not be found (to write a script that
/// runs it again).
#[derive(Debug, thiserror::Error)]
#[error("cannot find grove: {source}")]
pub(crate) struct GroveNotFound {
    source: std::io::Error,
}

/// A template a recipe could not read, as the profile names it.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {given}: {error:?}")]
pub(crate) struct TemplateError {
    given: String,
    error: grove_profile::LoadError,
}

/// Recipes answer their errors as messages (`Recipe::install`).
macro_rules! into_message {
    ($($error:ty),*) => {$(
        impl From<$error> for String {
            fn from(e: $error) -> String {
                e.to_string()
            }
        }
    )*};
}

into_message!(WriteError, ModeError, GroveNotFound, TemplateError);

/// Writes a file in one step (temporary file, then rename) with the given mode.
pub(crate) fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), WriteError> {
    let failed = |what: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| WriteError { what, path, source }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(failed("create", dir))?;
    }
    let temporary = path.with_extension("grove-new");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temporary)
        .map_err(failed("write", &temporary))?;
    file.write_all(contents)
        .map_err(failed("write", &temporary))?;
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(mode))
        .map_err(failed("set the mode of", &temporary))?;
    std::fs::rename(&temporary, path).map_err(failed("write", path))
}

pub(crate) fn parse_mode(text: &str) -> Result<u32, ModeError> {
    let digits = text.trim().trim_start_matches("0o");
    u32::from_str_radix(digits, 8).map_err(|_| ModeError {
        text: text.to_owned(),
    })
}

/// Options that only feed substitutions, never what a recipe does.
fn is_bookkeeping(name: &str) -> bool {
    name == "recipe" || name.starts_with('_') || name.starts_with('<')
}

/// `slapos.cookbook:mkdirectory`: every other option is a directory to create.
struct MkDirectory;

impl Recipe for MkDirectory {
    fn install(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        _: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        let mode = options
            .get("mode")
            .map(|m| parse_mode(&m))
            .transpose()?
            .unwrap_or(0o700);
        for (name, value) in options.values {
            if is_bookkeeping(name) || name == "mode" {
                continue;
            }
            let path = ctx.inside(Path::new(&*value.as_text()))?;
            if !path.exists() {
                std::fs::create_dir_all(&path).map_err(|e| io("create", &path, &e))?;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| io("set the mode of", &path, &e))?;
            }
        }
        // Directories hold data: uninstalling the part never deletes them.
        Ok(Vec::new())
    }

    fn update(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        resolved: &Resolved,
    ) -> Result<(), String> {
        self.install(ctx, options, resolved).map(|_| ())
    }
}

/// Single-quotes a value for `sh`.
pub(crate) fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// A shell script that runs `grove` with `args` (each quoted): the binary running this
/// profile, the agent or `grove node run-instance` as the partition's user. What recipes
/// make services and actions of (`grove cron`, `grove app agent`...).
pub(crate) fn grove_script<S: AsRef<str>>(args: &[S]) -> Result<String, GroveNotFound> {
    let grove = std::env::current_exe().map_err(|source| GroveNotFound { source })?;
    let mut line = format!(
        "#!/bin/sh\nexec {}",
        shell_quote(&grove.display().to_string())
    );
    for arg in args {
        line.push(' ');
        line.push_str(&shell_quote(arg.as_ref()));
    }
    line.push('\n');
    Ok(line)
}

/// A path as a command-line argument.
pub(crate) fn arg(path: &Path) -> String {
    path.display().to_string()
}

/// `slapos.cookbook:wrapper`: an executable script running `command-line` with an
/// environment. `hash-files` (and `hash-existing-files`, which skips missing ones) put a
/// digest of those files in the script, so that the service is restarted when they change;
/// the script is written again on every run for that reason.
struct Wrapper;

/// The md5 of the listed files' contents, in order.
fn files_digest(ctx: &Context<'_>, list: &str, skip_missing: bool) -> Result<String, String> {
    let mut hasher = Md5::new();
    for name in list.split_whitespace() {
        let path = ctx.inside(Path::new(name))?;
        match std::fs::read(&path) {
            Ok(bytes) => {
                hasher.update(name.as_bytes());
                hasher.update(&bytes);
            }
            Err(e) if skip_missing && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("hash-files: cannot read {}: {e}", path.display())),
        }
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

impl Recipe for Wrapper {
    fn install(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        _: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        options.refuse(&[
            "pidfile",
            "private-tmp",
            "reserve-cpu",
            "sig-ign",
            "wait-for-files",
            "private-dev-shm",
        ])?;
        let command = options.required("command-line")?;
        let path = ctx.inside(Path::new(&options.required("wrapper-path")?))?;
        let mut script = String::from("#!/bin/sh\n");
        for (option, skip_missing) in [("hash-files", false), ("hash-existing-files", true)] {
            if let Some(list) = options.get(option) {
                let digest = files_digest(ctx, &list, skip_missing)?;
                script.push_str(&format!("# {option}: {digest}\n"));
            }
        }
        for line in options.get("environment").unwrap_or_default().lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(format!("environment line {line:?} is not KEY=VALUE"));
            };
            let key = key.trim();
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("environment variable name {key:?} is invalid"));
            }
            script.push_str(&format!("export {key}={}\n", shell_quote(value.trim())));
        }
        let command = command.lines().map(str::trim).collect::<Vec<_>>().join(" ");
        script.push_str(&format!("exec {command} \"$@\"\n"));
        write_file(&path, script.as_bytes(), 0o755)?;
        Ok(vec![path])
    }

    fn update(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        resolved: &Resolved,
    ) -> Result<(), String> {
        self.install(ctx, options, resolved).map(|_| ())
    }
}

const PASSWORD_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// `slapos.cookbook:generate.password`: a random password, kept in `storage-path` so that
/// it is the same on every run.
struct GeneratePassword;

impl Recipe for GeneratePassword {
    fn computes_options(&self) -> bool {
        true
    }

    fn init(
        &self,
        ctx: &Context<'_>,
        part: &str,
        options: &mut BTreeMap<String, Value>,
    ) -> Result<(), String> {
        let storage = match options.get("storage-path") {
            Some(path) => PathBuf::from(&*path.as_text()),
            None => ctx.parts_directory().join(part),
        };
        let storage = ctx.inside(&storage)?;
        let stored = std::fs::read_to_string(&storage).ok();
        let given = options
            .get("passwd")
            .map(|p| p.as_text().trim().to_owned())
            .filter(|p| !p.is_empty());
        let password = match (given, stored) {
            // A password given (what `publish-early` published before) wins and is kept.
            (Some(given), stored) => {
                if stored.as_deref().map(str::trim) != Some(given.as_str()) {
                    write_file(&storage, given.as_bytes(), 0o600)?;
                }
                given
            }
            (None, Some(text)) if !text.trim().is_empty() => text.trim().to_owned(),
            _ => {
                let length: usize = match options.get("bytes") {
                    Some(b) => b
                        .as_text()
                        .trim()
                        .parse()
                        .map_err(|_| format!("bytes {b} is not a number"))?,
                    None => 16,
                };
                if !(4..=1024).contains(&length) {
                    return Err(format!("bytes must be between 4 and 1024, not {length}"));
                }
                let rng = ring::rand::SystemRandom::new();
                let mut raw = vec![0u8; length];
                rng.fill(&mut raw)
                    .map_err(|_| "the system random source failed".to_owned())?;
                let password: String = raw
                    .iter()
                    .map(|b| {
                        char::from(PASSWORD_ALPHABET[usize::from(*b) % PASSWORD_ALPHABET.len()])
                    })
                    .collect();
                write_file(&storage, password.as_bytes(), 0o600)?;
                password
            }
        };
        options.insert(
            "storage-path".to_owned(),
            Value::Text(storage.display().to_string()),
        );
        options.insert("passwd".to_owned(), Value::Text(password.clone()));
        options.insert("password".to_owned(), Value::Text(password));
        Ok(())
    }

    fn install(
        &self,
        _: &Context<'_>,
        _: &Options<'_>,
        _: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        // The stored password outlives the part: uninstalling must not change it.
        Ok(Vec::new())
    }
}

/// `slapos.cookbook:free_port`: a TCP port nothing listens on, between `minimum` and
/// `maximum` on `ip`; kept so that it stays the same once the service uses it.
struct FreePort;

impl Recipe for FreePort {
    fn computes_options(&self) -> bool {
        true
    }

    fn init(
        &self,
        ctx: &Context<'_>,
        part: &str,
        options: &mut BTreeMap<String, Value>,
    ) -> Result<(), String> {
        let ip = options
            .get("ip")
            .map_or_else(|| "127.0.0.1".to_owned(), |v| v.as_text().trim().to_owned());
        let number = |name: &str, default: u16| -> Result<u16, String> {
            match options.get(name) {
                Some(v) => v
                    .as_text()
                    .trim()
                    .parse()
                    .map_err(|_| format!("{name} {v} is not a port number")),
                None => Ok(default),
            }
        };
        let (minimum, maximum) = (number("minimum", 1024)?, number("maximum", 65535)?);
        let storage = ctx.inside(&ctx.parts_directory().join(format!("{part}.port")))?;
        let kept: Option<u16> = std::fs::read_to_string(&storage)
            .ok()
            .and_then(|t| t.trim().parse().ok());
        let port = match kept.filter(|p| (minimum..=maximum).contains(p)) {
            Some(port) => port,
            None => {
                let free = (minimum..=maximum)
                    .find(|p| std::net::TcpListener::bind((ip.as_str(), *p)).is_ok())
                    .ok_or_else(|| {
                        format!("no free port on {ip} between {minimum} and {maximum}")
                    })?;
                write_file(&storage, free.to_string().as_bytes(), 0o600)?;
                free
            }
        };
        options.insert("port".to_owned(), Value::Text(port.to_string()));
        Ok(())
    }
}

/// `slapos.cookbook:symbolic.link`: links to each of `link-binary` in `target-directory`.
struct SymbolicLink;

impl Recipe for SymbolicLink {
    fn install(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        _: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        let directory = ctx.inside(Path::new(&options.required("target-directory")?))?;
        std::fs::create_dir_all(&directory).map_err(|e| io("create", &directory, &e))?;
        let mut created = Vec::new();
        for target in options.required("link-binary")?.split_whitespace() {
            let target = Path::new(target);
            let name = target
                .file_name()
                .ok_or_else(|| format!("{} names no file", target.display()))?;
            let link = directory.join(name);
            if link.symlink_metadata().is_ok() {
                std::fs::remove_file(&link).map_err(|e| io("replace", &link, &e))?;
            }
            std::os::unix::fs::symlink(target, &link).map_err(|e| io("link", &link, &e))?;
            created.push(link);
        }
        Ok(created)
    }
}

/// `slapos.cookbook:check_port_listening`: a promise that succeeds when something listens
/// on `hostname`:`port`.
struct CheckPortListening;

impl Recipe for CheckPortListening {
    fn install(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        _: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        let path = ctx.inside(Path::new(&options.required("path")?))?;
        let host = options.required("hostname")?;
        let port: u16 = options
            .required("port")?
            .trim()
            .parse()
            .map_err(|_| "port is not a port number".to_owned())?;
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        let script = format!(
            "#!/bin/bash\n# Succeeds when {host} port {port} accepts connections.\n\
             if exec 3<>/dev/tcp/{}/{port}; then exec 3>&-; exit 0; fi\n\
             echo \"nothing listens on {host} port {port}\" >&2\nexit 1\n",
            shell_quote(host)
        );
        write_file(&path, script.as_bytes(), 0o755)?;
        Ok(vec![path])
    }
}

/// `slapos.cookbook:check_url_available`: a promise that succeeds when `url` answers with
/// `http_code` (default 200), checked with curl (`curl_path`, default `curl`) within
/// `timeout` seconds (default 10); it says what it got when it fails.
struct CheckUrlAvailable;

impl Recipe for CheckUrlAvailable {
    fn install(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        _: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        options.refuse(&[
            "check-secure",
            "ca-cert-file",
            "cert-file",
            "key-file",
            "ip",
        ])?;
        let path = ctx.inside(Path::new(&options.required("path")?))?;
        let url = options.required("url")?;
        let url = url.trim();
        if url.is_empty() || url.chars().any(char::is_whitespace) {
            return Err(format!("url {url:?} is not a URL"));
        }
        let code = options.get("http_code").unwrap_or_else(|| "200".to_owned());
        let code = code.trim();
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("http_code {code:?} is not an HTTP status code"));
        }
        let timeout: u32 = match options.get("timeout") {
            Some(t) => t
                .trim()
                .parse()
                .map_err(|_| format!("timeout {t:?} is not a number of seconds"))?,
            None => 10,
        };
        let curl = options
            .get("curl_path")
            .unwrap_or_else(|| "curl".to_owned());
        let shell = options
            .get("dash_path")
            .unwrap_or_else(|| "/bin/sh".to_owned());
        let script = format!(
            "#!{}\n# Succeeds when {url} answers {code}.\n\
             got=$({} --insecure --silent --output /dev/null --write-out '%{{http_code}}' \\\n  \
             --max-time {timeout} {})\n\
             if [ \"$got\" = {code} ]; then exit 0; fi\n\
             printf '%s answered %s, expected %s\\n' {} \"$got\" {code} >&2\nexit 1\n",
            shell.trim(),
            shell_quote(curl.trim()),
            shell_quote(url),
            shell_quote(url),
        );
        write_file(&path, script.as_bytes(), 0o755)?;
        Ok(vec![path])
    }
}

/// `slapos.recipe.template`: `output` from `inline` text or from the file at `url`,
/// rendered as a buildout template (`${...}` now, `$${...}` left as `${...}`).
struct Template;

impl Recipe for Template {
    /// Rendered again on every run: what it reads can change while its options do not.
    fn update(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        resolved: &Resolved,
    ) -> Result<(), String> {
        self.install(ctx, options, resolved).map(|_| ())
    }

    fn install(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        resolved: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        let output = ctx.inside(Path::new(&options.required("output")?))?;
        let mode = options
            .get("mode")
            .map(|m| parse_mode(&m))
            .transpose()?
            .unwrap_or(0o644);
        let text = match template_source(ctx, options)? {
            // The profile engine has already substituted inline text.
            Source::Inline(text) => text,
            Source::File { url, text } => resolved
                .render(&text, options.part)
                .map_err(|e| format!("{url}: {e}"))?,
        };
        write_file(&output, text.as_bytes(), mode)?;
        Ok(vec![output])
    }
}

enum Source {
    Inline(String),
    File { url: String, text: String },
}

/// A template's text from a URL, an absolute path, or a path relative to the profile's
/// directory.
pub(crate) fn read_template(ctx: &Context<'_>, given: &str) -> Result<String, TemplateError> {
    let location = if grove_profile::is_url(given) || given.starts_with('/') {
        given.to_owned()
    } else {
        ctx.directory.join(given).display().to_string()
    };
    grove_profile::Loader::load(ctx.fetcher, &location).map_err(|error| TemplateError {
        given: given.to_owned(),
        error,
    })
}

/// The template of `slapos.recipe.template` and its jinja2 variant: `inline`, or the file at
/// `url` checked against `md5sum`.
fn template_source(ctx: &Context<'_>, options: &Options<'_>) -> Result<Source, String> {
    match (options.get("inline"), options.get("url")) {
        (Some(inline), None) => Ok(Source::Inline(inline)),
        (None, Some(url)) => {
            let text = read_template(ctx, &url)?;
            if let Some(expected) = options.get("md5sum") {
                let actual = md5_hex(text.as_bytes());
                if !actual.eq_ignore_ascii_case(expected.trim()) {
                    return Err(format!(
                        "md5sum of {url} is {actual}, expected {}",
                        expected.trim()
                    ));
                }
            }
            Ok(Source::File { url, text })
        }
        (Some(_), Some(_)) => Err("give url or inline, not both".to_owned()),
        (None, None) => Err("missing option url or inline".to_owned()),
    }
}

fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Text(s) => serde_json::Value::String(s.clone()),
        Value::Structured(v) => v.clone(),
    }
}

/// `slapos.recipe.template:jinja2`: `output` rendered from a Jinja2 template with the
/// variables of `context` (and `extra-context`) lines: `key NAME SECTION:OPTION`,
/// `section NAME SECTION`, `raw NAME VALUE`, `json NAME JSON`, `jsonkey NAME SECTION:OPTION`,
/// `rawfile NAME PATH-OR-URL` (the file's text).
/// An undefined variable is an error. `${...}` in the output is left for the instance.
struct Jinja2;

fn jinja_context(
    ctx: &Context<'_>,
    options: &Options<'_>,
    resolved: &Resolved,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let lines = format!(
        "{}\n{}",
        options.get("context").unwrap_or_default(),
        options.get("extra-context").unwrap_or_default()
    );
    let lookup = |target: &str| -> Result<&Value, String> {
        let (section, option) = target
            .split_once(':')
            .ok_or_else(|| format!("{target:?} is not SECTION:OPTION"))?;
        let section = if section.is_empty() {
            options.part
        } else {
            section
        };
        resolved
            .get(section, option)
            .ok_or_else(|| format!("no option {section}:{option}"))
    };
    let mut context = serde_json::Map::new();
    for line in lines.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut words = line.splitn(3, char::is_whitespace);
        let (kind, name, rest) = (
            words.next().unwrap_or_default(),
            words.next(),
            words.next().map(str::trim),
        );
        let (Some(name), Some(rest)) = (name, rest) else {
            return Err(format!("context line {line:?} is not TYPE NAME VALUE"));
        };
        let value = match kind {
            "key" => to_json(lookup(rest)?),
            "section" => {
                let section = resolved
                    .sections
                    .get(rest)
                    .ok_or_else(|| format!("no section {rest}"))?;
                serde_json::Value::Object(
                    section
                        .iter()
                        .map(|(k, v)| (k.clone(), to_json(v)))
                        .collect(),
                )
            }
            "raw" => serde_json::Value::String(rest.to_owned()),
            "json" => {
                serde_json::from_str(rest).map_err(|e| format!("context {name}: not JSON: {e}"))?
            }
            "jsonkey" => {
                let text = lookup(rest)?.as_text().into_owned();
                serde_json::from_str(&text)
                    .map_err(|e| format!("context {name}: {rest} is not JSON: {e}"))?
            }
            "rawfile" => {
                let mut bytes = Vec::new();
                ctx.fetcher
                    .download(rest, &mut bytes)
                    .map_err(|e| format!("context {name}: {e}"))?;
                serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
            }
            other => {
                return Err(format!(
                    "context type {other} is not implemented by Grove \
                     (key, section, raw, json, jsonkey, rawfile are)"
                ));
            }
        };
        context.insert(name.to_owned(), value);
    }
    Ok(context)
}

impl Recipe for Jinja2 {
    /// Rendered again on every run: what it reads can change while its options do not.
    fn update(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        resolved: &Resolved,
    ) -> Result<(), String> {
        self.install(ctx, options, resolved).map(|_| ())
    }

    fn install(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        resolved: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        options.refuse(&["import-delimiter", "once", "rendered", "template"])?;
        jinja_extensions(options)?;
        let output = ctx.inside(Path::new(&options.required("output")?))?;
        let mode = options
            .get("mode")
            .map(|m| parse_mode(&m))
            .transpose()?
            .unwrap_or(0o644);
        let (name, text) = match template_source(ctx, options)? {
            Source::Inline(text) => (format!("[{}] inline", options.part), text),
            Source::File { url, text } => (url, text),
        };
        let context: BTreeMap<String, minijinja::Value> = jinja_context(ctx, options, resolved)?
            .into_iter()
            .map(|(k, v)| {
                let value =
                    crate::jinja::mutable(minijinja::Value::from(minijinja::value::Serde(v)));
                (k, value)
            })
            .collect();
        let mut env = crate::jinja::environment();
        for (import, source) in import_list(ctx, options, resolved)? {
            env.add_template_owned(import.clone(), crate::jinja::prepare(&source))
                .map_err(|e| format!("import-list: {import}: {e:#}"))?;
        }
        let rendered = env
            .render_str(&crate::jinja::prepare(&text), context)
            .map_err(|e| format!("{name}: {e:#}"))?;
        write_file(&output, rendered.as_bytes(), mode)?;
        Ok(vec![output])
    }
}

/// jinja2's `extensions`: those whose statements minijinja always has are accepted
/// (`do`, loop controls, `with`, autoescape); any other is an error naming it.
fn jinja_extensions(options: &Options<'_>) -> Result<(), String> {
    const BUILT_IN: &[&str] = &[
        "jinja2.ext.do",
        "jinja2.ext.loopcontrols",
        "jinja2.ext.with_",
        "jinja2.ext.autoescape",
    ];
    let extensions = options.get("extensions").unwrap_or_default();
    match extensions
        .split_whitespace()
        .find(|e| !BUILT_IN.contains(e))
    {
        Some(unknown) => Err(format!(
            "extensions: {unknown} is not available in Grove's templates (it has {})",
            BUILT_IN.join(", ")
        )),
        None => Ok(()),
    }
}

/// `import-list`: the templates `{% import %}` may name, one a line: `file NAME
/// SECTION:OPTION` (the option holds the file's path), `rawfile NAME PATH`.
fn import_list(
    ctx: &Context<'_>,
    options: &Options<'_>,
    resolved: &Resolved,
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for line in options.get("import-list").unwrap_or_default().lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let path = match words[..] {
            [] => continue,
            ["file", _, reference] => {
                let (section, option) = reference
                    .split_once(':')
                    .ok_or_else(|| format!("import-list: {reference:?} is not SECTION:OPTION"))?;
                let section = if section.is_empty() {
                    options.part
                } else {
                    section
                };
                resolved
                    .get(section, option)
                    .map(|v| v.as_text().trim().to_owned())
                    .ok_or_else(|| format!("import-list: no option {section}:{option}"))?
            }
            ["rawfile", _, path] => path.to_owned(),
            _ => {
                return Err(format!(
                    "import-list: {:?} is not `file NAME SECTION:OPTION` or `rawfile NAME PATH`",
                    line.trim()
                ));
            }
        };
        let text = grove_profile::Loader::load(ctx.fetcher, &path)
            .map_err(|e| format!("import-list: cannot read {path}: {e:?}"))?;
        out.push((words[1].to_owned(), text));
    }
    Ok(out)
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `plone.recipe.command`: runs `command` when the part installs, `update-command` when it
/// is unchanged; `location` lists what to remove when the part goes.
struct Command;

/// How many lines of a failing command's output go into its error.
const OUTPUT_TAIL_LINES: usize = 20;

fn run_shell(ctx: &Context<'_>, command: &str, stop_on_error: bool) -> Result<(), String> {
    // Output goes to a file, not a pipe: a command that leaves a process in the background
    // must not keep the run waiting for the end of its output.
    let capture = ctx.directory.join(".grove-command-output");
    let file = std::fs::File::create(&capture)
        .map_err(|e| format!("cannot write {}: {e}", capture.display()))?;
    let status = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("exec 2>&1; {command}"))
        .current_dir(&ctx.directory)
        .stdin(std::process::Stdio::null())
        .stdout(file)
        .status()
        .map_err(|e| format!("cannot run /bin/sh: {e}"));
    let text = std::fs::read(&capture).unwrap_or_default();
    let _ = std::fs::remove_file(&capture);
    let status = status?;
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(OUTPUT_TAIL_LINES)..].join("\n");
    if status.success() {
        if !tail.is_empty() {
            tracing::debug!(%command, output = %tail, "command ran");
        }
        return Ok(());
    }
    if stop_on_error {
        return Err(if tail.is_empty() {
            format!("command failed ({status}): {command}")
        } else {
            format!("command failed ({status}): {command}\n{tail}")
        });
    }
    tracing::warn!(%command, %status, output = %tail, "command failed (stop-on-error is off)");
    Ok(())
}

impl Recipe for Command {
    fn install(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        _: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        let command = options.required("command")?;
        run_shell(ctx, &command, options.flag("stop-on-error"))?;
        options
            .get("location")
            .unwrap_or_default()
            .split_whitespace()
            .map(|p| ctx.inside(Path::new(p)))
            .collect()
    }

    fn update(&self, ctx: &Context<'_>, options: &Options<'_>, _: &Resolved) -> Result<(), String> {
        match options.get("update-command") {
            Some(command) => run_shell(ctx, &command, options.flag("stop-on-error")),
            None => Ok(()),
        }
    }
}
