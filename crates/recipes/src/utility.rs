//! Small instance-side recipes SlapOS's catalogue uses: `collective.recipe.template`,
//! `cns.recipe.symlink`, `slapos.cookbook:urlparse`, `slapos.cookbook:userinfo`,
//! `slapos.cookbook:random.time`, `slapos.cookbook:simplelogger` and
//! `slapos.cookbook:simplehttpserver`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use grove_profile::{Resolved, Value};

use crate::builtin::{arg, grove_script, parse_mode, read_template, write_file};
use crate::{Context, Options, Recipe, Registry};

pub(crate) fn register(registry: &mut Registry) {
    registry.add("collective.recipe.template", Box::new(CollectiveTemplate));
    registry.add("cns.recipe.symlink", Box::new(Symlink));
    registry.add("slapos.cookbook:urlparse", Box::new(UrlParse));
    registry.add("slapos.cookbook:userinfo", Box::new(UserInfo));
    registry.add("slapos.cookbook:random.time", Box::new(RandomTime));
    registry.add("slapos.cookbook:simplelogger", Box::new(SimpleLogger));
    registry.add(
        "slapos.cookbook:simplehttpserver",
        Box::new(SimpleHttpServer),
    );
}

/// `slapos.cookbook:simplehttpserver`: `wrapper`, a service serving `base-path` (with
/// `grove simple-http-server`) on `host` and `port`, `socketpath` or `abstract`, over
/// HTTPS with `cert-file` and `key-file`, writable by POST with `allow-write`.
struct SimpleHttpServer;

impl Recipe for SimpleHttpServer {
    fn install(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        _: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        let given = |name: &str| {
            options
                .get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let base = ctx.inside(Path::new(options.required("base-path")?.trim()))?;
        let log = ctx.inside(Path::new(options.required("log-file")?.trim()))?;
        let mut args = vec![
            "simple-http-server".to_owned(),
            "--base-path".to_owned(),
            arg(&base),
            "--log-file".to_owned(),
            arg(&log),
        ];
        let listen = (
            given("host"),
            given("port"),
            given("socketpath"),
            given("abstract"),
        );
        match listen {
            (Some(host), Some(port), None, None) => {
                let port: u16 = port
                    .parse()
                    .map_err(|_| format!("port {port:?} is not a port number"))?;
                args.extend([
                    "--host".to_owned(),
                    host,
                    "--port".to_owned(),
                    port.to_string(),
                ]);
            }
            (None, None, Some(socket), None) => {
                args.extend([
                    "--socket-path".to_owned(),
                    arg(&ctx.inside(Path::new(&socket))?),
                ]);
            }
            (None, None, None, Some(name)) => args.extend(["--abstract".to_owned(), name]),
            _ => return Err("give one of host and port, socketpath or abstract".to_owned()),
        }
        match (given("cert-file"), given("key-file")) {
            (Some(cert), Some(key)) => args.extend([
                "--cert-file".to_owned(),
                arg(&ctx.inside(Path::new(&cert))?),
                "--key-file".to_owned(),
                arg(&ctx.inside(Path::new(&key))?),
            ]),
            (None, None) => {}
            _ => return Err("give cert-file and key-file together".to_owned()),
        }
        if options.flag("allow-write") {
            args.push("--allow-write".to_owned());
        }
        let wrapper = ctx.inside(Path::new(options.required("wrapper")?.trim()))?;
        write_file(&wrapper, grove_script(&args)?.as_bytes(), 0o755)?;
        Ok(vec![wrapper])
    }
}

/// `collective.recipe.template`: `input` (a file) or `inline`, its `${...}` filled in from
/// the profile, written to `output` with `mode`; written again on every run.
struct CollectiveTemplate;

impl Recipe for CollectiveTemplate {
    fn install(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        resolved: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        options.refuse(&["url", "timestamp-template"])?;
        let output = ctx.inside(Path::new(options.required("output")?.trim()))?;
        let mode = options
            .get("mode")
            .map(|m| parse_mode(&m))
            .transpose()?
            .unwrap_or(0o644);
        let text = match (options.get("input"), options.get("inline")) {
            // The profile engine has already filled in an inline template.
            (None, Some(inline)) => inline,
            (Some(input), None) => {
                let input = input.trim();
                let text = read_template(ctx, input)?;
                resolved
                    .render(&text, options.part)
                    .map_err(|e| format!("{input}: {e}"))?
            }
            (Some(_), Some(_)) => return Err("give input or inline, not both".to_owned()),
            (None, None) => return Err("missing option input or inline".to_owned()),
        };
        write_file(&output, text.as_bytes(), mode)?;
        Ok(vec![output])
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

/// `cns.recipe.symlink`: `symlink` lines `SOURCE` or `SOURCE = LINK`; a relative source
/// is below `symlink_base`, a link without a name takes the source's in
/// `symlink_target`; `autocreate` makes the link's directory. Links are made below the
/// profile's directory only; what they point at is the profile's business.
struct Symlink;

impl Recipe for Symlink {
    fn install(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        _: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        let base = options.get("symlink_base").map(|b| PathBuf::from(b.trim()));
        let target_dir = options
            .get("symlink_target")
            .map(|t| PathBuf::from(t.trim()));
        let autocreate = options.flag("autocreate");
        let mut made = Vec::new();
        for line in options.required("symlink")?.lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (source, link) = match line.split_once('=') {
                Some((s, l)) => (s.trim(), Some(l.trim())),
                None => (line, None),
            };
            let source = match &base {
                Some(base) if !Path::new(source).is_absolute() => base.join(source),
                _ => PathBuf::from(source),
            };
            let link = match (link, &target_dir) {
                (Some(l), Some(dir)) if !Path::new(l).is_absolute() => dir.join(l),
                (Some(l), _) => PathBuf::from(l),
                (None, Some(dir)) => dir.join(source.file_name().ok_or_else(|| {
                    format!("symlink {line:?}: the source has no name to give the link")
                })?),
                (None, None) => {
                    return Err(format!(
                        "symlink {line:?}: give `SOURCE = LINK` or symlink_target"
                    ));
                }
            };
            let link = ctx.inside(&link)?;
            if let Some(dir) = link.parent()
                && autocreate
            {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            match std::fs::symlink_metadata(&link) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    std::fs::remove_file(&link)
                        .map_err(|e| format!("cannot replace {}: {e}", link.display()))?;
                }
                Ok(_) => return Err(format!("{} exists and is not a link", link.display())),
                Err(_) => {}
            }
            std::os::unix::fs::symlink(&source, &link).map_err(|e| {
                format!(
                    "cannot link {} to {}: {e}",
                    link.display(),
                    source.display()
                )
            })?;
            made.push(link);
        }
        Ok(made)
    }
}

/// `slapos.cookbook:urlparse`: the parts of `url` as options (`scheme`, `username`,
/// `password`, `host`, `port`, `path`, `params`, `query`, `fragment`), as Python's
/// `urlparse` names them.
struct UrlParse;

impl Recipe for UrlParse {
    fn computes_options(&self) -> bool {
        true
    }

    fn plans(&self) -> bool {
        true
    }

    fn init(
        &self,
        _: &Context<'_>,
        _: &str,
        options: &mut BTreeMap<String, Value>,
    ) -> Result<(), String> {
        let text = options
            .get("url")
            .map(|u| u.as_text().trim().to_owned())
            .ok_or("missing option url")?;
        let url = url::Url::parse(&text).map_err(|e| format!("url {text:?}: {e}"))?;
        let (path, params) = match url.path().split_once(';') {
            Some((path, params)) => (path.to_owned(), params.to_owned()),
            None => (url.path().to_owned(), String::new()),
        };
        for (key, value) in [
            ("scheme", url.scheme().to_owned()),
            ("username", url.username().to_owned()),
            ("password", url.password().unwrap_or_default().to_owned()),
            (
                "host",
                url.host_str()
                    .unwrap_or_default()
                    .trim_matches(['[', ']'])
                    .to_owned(),
            ),
            (
                "port",
                url.port().map(|p| p.to_string()).unwrap_or_default(),
            ),
            ("path", path),
            ("params", params),
            ("query", url.query().unwrap_or_default().to_owned()),
            ("fragment", url.fragment().unwrap_or_default().to_owned()),
        ] {
            options.insert(key.to_owned(), Value::Text(value));
        }
        Ok(())
    }
}

/// `slapos.cookbook:userinfo`: who runs the profile (the partition's user), as `pw-name`,
/// `pw-uid`, `pw-gid`, `pw-dir`, `pw-shell` and `gr-name`.
struct UserInfo;

impl Recipe for UserInfo {
    fn computes_options(&self) -> bool {
        true
    }

    fn init(
        &self,
        _: &Context<'_>,
        _: &str,
        options: &mut BTreeMap<String, Value>,
    ) -> Result<(), String> {
        let uid = nix::unistd::geteuid();
        let user = nix::unistd::User::from_uid(uid)
            .map_err(|e| format!("cannot read the user of uid {uid}: {e}"))?
            .ok_or_else(|| format!("uid {uid} has no user"))?;
        let group = nix::unistd::Group::from_gid(user.gid)
            .ok()
            .flatten()
            .map_or_else(|| user.gid.to_string(), |g| g.name);
        for (key, value) in [
            ("pw-name", user.name.clone()),
            ("pw-uid", user.uid.to_string()),
            ("pw-gid", user.gid.to_string()),
            ("pw-dir", user.dir.display().to_string()),
            ("pw-shell", user.shell.display().to_string()),
            ("gr-name", group),
        ] {
            options.insert(key.to_owned(), Value::Text(value));
        }
        Ok(())
    }
}

/// `slapos.cookbook:random.time`: a time of day, `H:MM`, unless `time` is given. SlapOS
/// draws it again at every run; Grove derives it from the partition's directory and the
/// part's name, so that it stays the same from run to run (a daily job does not move) and
/// differs between partitions (their jobs do not all start at once).
struct RandomTime;

impl Recipe for RandomTime {
    fn computes_options(&self) -> bool {
        true
    }

    fn init(
        &self,
        ctx: &Context<'_>,
        part: &str,
        options: &mut BTreeMap<String, Value>,
    ) -> Result<(), String> {
        if options.contains_key("time") {
            return Ok(());
        }
        let seed = format!("random.time:{}:{part}", ctx.directory.display());
        let digest = ring::digest::digest(&ring::digest::SHA256, seed.as_bytes());
        let bytes = digest.as_ref();
        let minutes = u32::from(u16::from_be_bytes([bytes[0], bytes[1]])) % (24 * 60);
        options.insert(
            "time".to_owned(),
            Value::Text(format!("{}:{:02}", minutes / 60, minutes % 60)),
        );
        Ok(())
    }
}

/// `slapos.cookbook:simplelogger`: `wrapper`, an executable that appends what it reads on
/// its standard input to `log`, each line prefixed with the time, then a separator line.
struct SimpleLogger;

impl Recipe for SimpleLogger {
    fn install(
        &self,
        ctx: &Context<'_>,
        options: &Options<'_>,
        _: &Resolved,
    ) -> Result<Vec<PathBuf>, String> {
        let wrapper = ctx.inside(Path::new(options.required("wrapper")?.trim()))?;
        let log = options.required("log")?.trim().to_owned();
        let script = format!(
            "#!/bin/sh\n# Written by Grove for slapos.cookbook:simplelogger.\n\
             prefix=$(date +%Y-%m-%d.%H:%M.%s:)\n\
             {{\n  while IFS= read -r line || [ -n \"$line\" ]; do printf '%s %s\\n' \"$prefix\" \"$line\"; done\n\
             \x20 printf '%s %s\\n' \"$prefix\" '------------------------'\n}} >> {}\n",
            crate::builtin::shell_quote(&log)
        );
        write_file(&wrapper, script.as_bytes(), 0o755)?;
        Ok(vec![wrapper])
    }
}
