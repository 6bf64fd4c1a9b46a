//! What every agent shares: its address and ports, the system's programs, its
//! directories and services, reloads, the code versions, its `get_logs` action.

use std::path::{Path, PathBuf};

use grove_api as api;
use grove_conpaas::php::Dirs;

use crate::Context;

use super::text;
use crate::builtin::{arg, grove_script, shell_quote, write_file};
use crate::slap::Partition;

/// The logs an agent's `get_logs` gives: the end of each.
pub(super) const LOG_TAIL: u64 = 4000;

/// An agent's actions (its manager's only): `get_logs`.
pub(super) fn agent_actions(ctx: &Context<'_>) -> Result<(), String> {
    let path = ctx.inside(&Path::new(api::actions::ACTION_DIR).join("get_logs"))?;
    let script = grove_script(&["app", "conpaas-logs", "--dir", &arg(&ctx.directory)])?;
    write_changed(&path, &script, 0o700)?;
    Ok(())
}

/// The end of each log of an agent's partition (`var/log/`, and its services' output in
/// `.grove/log/`), by path below the partition; run as the partition's user.
pub fn logs(directory: &Path) -> serde_json::Value {
    use std::io::{Read as _, Seek as _};
    let mut out = serde_json::Map::new();
    for dir in ["var/log", ".grove/log"] {
        let Ok(entries) = std::fs::read_dir(directory.join(dir)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let Ok(mut file) = std::fs::File::open(&path) else {
                continue;
            };
            let length = file.metadata().map_or(0, |m| m.len());
            let _ = file.seek(std::io::SeekFrom::Start(length.saturating_sub(LOG_TAIL)));
            let mut bytes = Vec::new();
            let _ = file.take(LOG_TAIL).read_to_end(&mut bytes);
            let name = path
                .strip_prefix(directory)
                .map_or_else(|_| path.display().to_string(), |p| p.display().to_string());
            out.insert(name, String::from_utf8_lossy(&bytes).into_owned().into());
        }
    }
    serde_json::Value::Object(out)
}

/// The partition's IPv4 address, which its servers listen on.
pub(super) fn ipv4(partition: &Partition<'_>) -> Result<String, String> {
    partition
        .addresses
        .iter()
        .find(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
        .cloned()
        .ok_or_else(|| format!("partition {} has no IPv4 address", partition.reference))
}

/// A free port on `ip` in `range`, kept in the partition so that it stays the same.
pub(super) fn kept_port(
    ctx: &Context<'_>,
    name: &str,
    ip: &str,
    range: std::ops::RangeInclusive<u16>,
) -> Result<u16, String> {
    let path = ctx.inside(&Path::new("var/conpaas").join(format!("{name}.port")))?;
    if let Some(port) = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| t.trim().parse::<u16>().ok())
        .filter(|p| range.contains(p))
    {
        return Ok(port);
    }
    let (first, last) = (*range.start(), *range.end());
    let port = range
        .into_iter()
        .find(|p| std::net::TcpListener::bind((ip, *p)).is_ok())
        .ok_or_else(|| format!("no free port on {ip} between {first} and {last}"))?;
    write_file(&path, port.to_string().as_bytes(), 0o600)?;
    Ok(port)
}

/// Where the system's programs are, in the order the services' `PATH` has them.
pub(super) const PROGRAM_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// A program of the system: the first of `names`, or the newest `prefix*` (php-fpm8.2).
pub(super) fn program(
    names: &[&str],
    prefix: Option<&str>,
    package: &str,
) -> Result<PathBuf, String> {
    for dir in PROGRAM_DIRS {
        for name in names {
            let path = Path::new(dir).join(name);
            if path.is_file() {
                return Ok(path);
            }
        }
    }
    if let Some(prefix) = prefix {
        for dir in PROGRAM_DIRS {
            let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .map(|e| e.path())
                .collect();
            found.sort();
            if let Some(path) = found.pop() {
                return Ok(path);
            }
        }
    }
    Err(format!(
        "{} is not installed on this node (Debian's package: {package})",
        names.first().copied().unwrap_or_default()
    ))
}

/// Writes `text` at `path` unless it is there already; whether it changed.
pub(super) fn write_changed(path: &Path, text: &str, mode: u32) -> Result<bool, String> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    write_file(path, text.as_bytes(), mode)?;
    Ok(true)
}

/// Tells a running server (its pid in `pid_file`) to read its configuration again.
pub(super) fn reload(pid_file: &Path, signal: nix::sys::signal::Signal) {
    let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .filter(|p| *p > 1)
    else {
        return;
    };
    if let Err(e) = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal) {
        tracing::debug!(pid, error = %e, "no server to reload");
    }
}

/// The directories an agent's servers use, made.
pub(super) struct AgentDirs {
    pub(super) run: PathBuf,
    pub(super) tmp: PathBuf,
    pub(super) log: PathBuf,
    pub(super) etc: PathBuf,
}

impl AgentDirs {
    pub(super) fn make(ctx: &Context<'_>) -> Result<AgentDirs, String> {
        let dirs = AgentDirs {
            run: ctx.inside(Path::new("var/run"))?,
            tmp: ctx.inside(Path::new("tmp/nginx"))?,
            log: ctx.inside(Path::new("var/log"))?,
            etc: ctx.inside(Path::new("etc/conpaas"))?,
        };
        let state = ctx.inside(Path::new("var/conpaas"))?;
        for dir in [&dirs.run, &dirs.tmp, &dirs.log, &dirs.etc, &state] {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        Ok(dirs)
    }

    pub(super) fn php(&self) -> Dirs<'_> {
        Dirs {
            run: &self.run,
            tmp: &self.tmp,
            log: &self.log,
        }
    }
}

pub(super) fn write_service(ctx: &Context<'_>, name: &str, command: &str) -> Result<(), String> {
    let path = ctx.inside(&Path::new("etc/service").join(name))?;
    write_changed(&path, &format!("#!/bin/sh\nexec {command}\n"), 0o700)?;
    Ok(())
}

/// A promise that `address` (`ip:port`) accepts connections: the node reports the agent
/// started only once its server answers.
pub(super) fn listening_promise(
    ctx: &Context<'_>,
    name: &str,
    address: &str,
) -> Result<(), String> {
    let (ip, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("{address} is not an address and port"))?;
    let path = ctx.inside(&Path::new("etc/promise").join(format!("{name}-listening")))?;
    let script = format!(
        "#!/bin/bash\n# Succeeds when {address} accepts connections.\n\
         if exec 3<>/dev/tcp/{}/{port}; then exec 3>&-; exit 0; fi\n\
         echo \"nothing listens on {address}\" >&2\nexit 1\n",
        shell_quote(ip)
    );
    write_changed(&path, &script, 0o700)?;
    Ok(())
}

/// A promise that a server's Unix socket is there.
pub(super) fn socket_promise(ctx: &Context<'_>, name: &str, socket: &Path) -> Result<(), String> {
    let path = ctx.inside(&Path::new("etc/promise").join(format!("{name}-socket")))?;
    let socket = shell_quote(&socket.display().to_string());
    let script =
        format!("#!/bin/sh\n[ -S {socket} ] && exit 0\necho \"no socket {socket}\" >&2\nexit 1\n");
    write_changed(&path, &script, 0o700)?;
    Ok(())
}

pub(super) fn nginx_service(ctx: &Context<'_>, conf: &Path) -> Result<(), String> {
    let nginx = program(&["nginx"], None, "nginx")?;
    write_service(
        ctx,
        "nginx",
        &format!(
            "{} -p {} -c {} -e stderr -g 'daemon off;'",
            shell_quote(&nginx.display().to_string()),
            shell_quote(&ctx.directory.display().to_string()),
            shell_quote(&conf.display().to_string()),
        ),
    )
}

pub(super) fn publish(partition: &Partition<'_>, values: &[(&str, String)]) -> Result<(), String> {
    let parameters = values
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String(v.clone())))
        .collect();
    partition
        .master
        .publish(
            partition.instance.id,
            &api::Publish {
                parameters,
                shared_instance: None,
            },
        )
        .map_err(|e| format!("cannot publish: {e}"))
}

pub(super) fn short_hash(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The code a web node serves: the archive at `url` unpacked once into
/// `srv/code-<hash>` (a code version), or a placeholder page without one.
pub(super) fn code_version(ctx: &Context<'_>, url: Option<&str>) -> Result<PathBuf, String> {
    let Some(url) = url else {
        let dir = ctx.inside(Path::new("srv/code-default"))?;
        write_changed(
            &dir.join("index.php"),
            "<?php echo \"This ConPaaS service has no code yet.\\n\";\n",
            0o644,
        )?;
        return Ok(dir);
    };
    let dir = ctx.inside(&Path::new("srv").join(format!("code-{}", short_hash(url))))?;
    if dir.is_dir() {
        return Ok(dir);
    }
    let archive = ctx.inside(Path::new("var/conpaas/code.download"))?;
    let staging = ctx.inside(Path::new("srv/.code.new"))?;
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)
        .map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    {
        let mut file = std::fs::File::create(&archive)
            .map_err(|e| format!("cannot write {}: {e}", archive.display()))?;
        ctx.fetcher
            .download(url, &mut file)
            .map_err(|e| format!("cannot download the code archive {url}: {e}"))?;
    }
    let unpacked = crate::download::unpack(&archive, &staging);
    let _ = std::fs::remove_file(&archive);
    unpacked.map_err(|e| format!("the code archive {url}: {e}"))?;
    std::fs::rename(&staging, &dir).map_err(|e| format!("cannot keep the code: {e}"))?;
    Ok(dir)
}

/// Runs the service's startup script once per script URL, in the partition.
pub(super) fn startup_script(ctx: &Context<'_>, url: &str) -> Result<(), String> {
    let done =
        ctx.inside(&Path::new("var/conpaas").join(format!("startup-{}.done", short_hash(url))))?;
    if done.is_file() {
        return Ok(());
    }
    let script = ctx.inside(Path::new("var/conpaas/startup.sh"))?;
    {
        let mut file = std::fs::File::create(&script)
            .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
        ctx.fetcher
            .download(url, &mut file)
            .map_err(|e| format!("cannot download the startup script {url}: {e}"))?;
    }
    let log = ctx.inside(Path::new("var/log/startup.log"))?;
    let mut command = std::process::Command::new("/bin/sh");
    command.arg(&script).current_dir(&ctx.directory);
    let ended = run_bounded(&mut command, &log, SCRIPT_TIMEOUT)
        .map_err(|e| format!("the startup script {url}: {e}"))?;
    if !matches!(ended, Ended::Exited(status) if status.success()) {
        return Err(format!(
            "the startup script {url} failed ({ended}): see {}",
            log.display()
        ));
    }
    write_file(&done, b"", 0o600)?;
    Ok(())
}

/// The addresses a balancer is given (`backends`, space separated), each checked to be an
/// address and port: nothing else reaches its configuration.
pub(super) fn backends(parameters: &api::Parameters) -> Result<Vec<String>, String> {
    text(parameters, "backends")
        .unwrap_or_default()
        .split_whitespace()
        .map(|backend| {
            backend
                .parse::<std::net::SocketAddr>()
                .map(|a| a.to_string())
                .map_err(|_| format!("backend {backend:?} is not an address and port"))
        })
        .collect()
}

/// The longest a script of the service's (a startup script, a generic service's) may run:
/// it runs inside the agent's deployment, which waits for it.
pub(super) const SCRIPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// How a bounded run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    Exited(std::process::ExitStatus),
    /// It ran past its time: its process group was killed.
    TimedOut(std::time::Duration),
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Exited(status) => write!(f, "{status}"),
            Ended::TimedOut(after) => write!(f, "timed out after {} s", after.as_secs()),
        }
    }
}

/// Runs `command` in a process group of its own, its output appended to `log`, until it
/// ends or `timeout` passes (then the whole group is killed).
pub(super) fn run_bounded(
    command: &mut std::process::Command,
    log: &Path,
    timeout: std::time::Duration,
) -> Result<Ended, String> {
    use std::os::unix::process::CommandExt as _;
    let output = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    let errors = output
        .try_clone()
        .map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(output)
        .stderr(errors)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run it: {e}"))?;
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if std::time::Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(20)),
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
    };
    // Whatever it left in its group goes with it.
    if let Ok(group) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(group),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    match status {
        Some(status) => Ok(Ended::Exited(status)),
        None => {
            let _ = child.wait();
            Ok(Ended::TimedOut(timeout))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn a_script_runs_to_its_end_or_its_deadline_with_its_children() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("scripts.log");
        let mut quick = std::process::Command::new("/bin/sh");
        quick.args(["-c", "echo said; exit 3"]);
        let ended = run_bounded(&mut quick, &log, Duration::from_secs(10)).expect("ran");
        assert!(
            matches!(ended, Ended::Exited(s) if s.code() == Some(3)),
            "{ended}"
        );
        assert_eq!(std::fs::read_to_string(&log).expect("log"), "said\n");
        // A script that hangs, with a child that would outlive it: both go at the deadline.
        let marker = dir.path().join("outlived");
        let mut slow = std::process::Command::new("/bin/sh");
        slow.arg("-c")
            .arg(format!("(sleep 2; touch {}) & sleep 30", marker.display()));
        let start = Instant::now();
        let ended = run_bounded(&mut slow, &log, Duration::from_secs(1)).expect("ran");
        assert_eq!(ended.to_string(), "timed out after 1 s");
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_secs(2));
        assert!(!marker.exists(), "the script's child was killed with it");
    }
}
