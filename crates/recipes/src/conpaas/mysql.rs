//! A MySQL service's agents: MariaDB nodes and the `glb` balancer (HAProxy).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use grove_conpaas::mysql;

use crate::Context;
use crate::builtin::{shell_quote, write_file};
use crate::slap::Partition;

use super::agents::{
    AgentDirs, backends, ipv4, kept_port, listening_promise, program, publish, short_hash,
    write_changed, write_service,
};
use super::text;

/// Runs a program as the partition's user (this profile's), its output kept in `log`.
pub(super) fn run_logged(
    ctx: &Context<'_>,
    command: &mut std::process::Command,
    input: Option<&Path>,
    log: &str,
    what: &str,
) -> Result<(), String> {
    let log = ctx.inside(&Path::new("var/log").join(log))?;
    command.current_dir(&ctx.directory);
    command.stdin(match input {
        Some(path) => std::fs::File::open(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .into(),
        None => std::process::Stdio::null(),
    });
    let output = command
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let mut text = output.stdout;
    text.extend_from_slice(&output.stderr);
    write_file(&log, &text, 0o600)?;
    if output.status.success() {
        Ok(())
    } else {
        let said = String::from_utf8_lossy(&text);
        let last = said
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        Err(format!("{what} failed ({}): {last}", output.status))
    }
}

/// A MySQL node: MariaDB with the service's password set and its dump loaded, each once
/// (again when it changes). On the first run the server is not started yet: the
/// statements go to a temporary one, without network, stopped before the service starts.
pub(super) fn mysql_node(ctx: &Context<'_>, partition: &Partition<'_>) -> Result<(), String> {
    let parameters = &partition.instance.parameters;
    let server = program(&["mariadbd", "mysqld"], None, "mariadb-server")?;
    let install = program(
        &["mariadb-install-db", "mysql_install_db"],
        None,
        "mariadb-server",
    )?;
    let client = program(&["mariadb", "mysql"], None, "mariadb-client")?;
    let ip = ipv4(partition)?;
    let port = kept_port(ctx, "mysql", &ip, 3306..=3399)?;
    let dirs = AgentDirs::make(ctx)?;
    let data = ctx.inside(Path::new("srv/mysql"))?;
    if !data.is_dir() {
        // Made aside and kept only once complete, so that a failure is tried again whole.
        let staging = ctx.inside(Path::new("srv/.mysql.new"))?;
        let _ = std::fs::remove_dir_all(&staging);
        // The partition's user administers its server through the socket.
        let uid = nix::unistd::getuid();
        let user = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map_or_else(|| uid.to_string(), |u| u.name);
        let mut command = std::process::Command::new(&install);
        command
            .arg("--no-defaults")
            .arg(format!("--user={user}"))
            .arg(format!("--datadir={}", staging.display()))
            .arg("--auth-root-authentication-method=socket")
            .arg("--skip-test-db");
        run_logged(
            ctx,
            &mut command,
            None,
            "mysql-install.log",
            "mariadb-install-db",
        )?;
        std::fs::rename(&staging, &data)
            .map_err(|e| format!("cannot keep the new database: {e}"))?;
    }
    let socket = dirs.run.join("mysqld.sock");
    let common = |socket: &Path, pid: &str| {
        vec![
            "--no-defaults".to_owned(),
            format!("--datadir={}", data.display()),
            format!("--socket={}", socket.display()),
            format!("--pid-file={}", dirs.run.join(pid).display()),
            format!("--log-error={}", dirs.log.join("mysqld.log").display()),
            "--skip-name-resolve".to_owned(),
        ]
    };
    let mut args = common(&socket, "mysqld.pid");
    args.push(format!("--bind-address={ip}"));
    args.push(format!("--port={port}"));
    let quoted: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
    write_service(
        ctx,
        "mariadb",
        &format!(
            "{} {}",
            shell_quote(&server.display().to_string()),
            quoted.join(" ")
        ),
    )?;
    // What is to apply: the password, the dump, each unless applied already.
    let mut steps: Vec<(PathBuf, PathBuf, String)> = Vec::new();
    let password = text(parameters, "password").unwrap_or_default();
    if !password.is_empty() {
        let done = ctx.inside(
            &Path::new("var/conpaas").join(format!("password-{}.done", short_hash(&password))),
        )?;
        if !done.is_file() {
            let sql = ctx.inside(Path::new("var/conpaas/password.sql"))?;
            write_file(&sql, mysql::password_sql(&password).as_bytes(), 0o600)?;
            steps.push((sql, done, "setting the password".to_owned()));
        }
    }
    if let Some(url) = text(parameters, "dump") {
        let done =
            ctx.inside(&Path::new("var/conpaas").join(format!("dump-{}.done", short_hash(&url))))?;
        if !done.is_file() {
            let dump = ctx.inside(Path::new("var/conpaas/dump.sql"))?;
            let mut file = std::fs::File::create(&dump)
                .map_err(|e| format!("cannot write {}: {e}", dump.display()))?;
            ctx.fetcher
                .download(&url, &mut file)
                .map_err(|e| format!("cannot download the dump {url}: {e}"))?;
            steps.push((dump, done, format!("loading the dump {url}")));
        }
    }
    if !steps.is_empty() {
        apply_sql(ctx, &server, &client, &socket, &common, &steps)?;
    }
    let address = format!("{ip}:{port}");
    listening_promise(ctx, "mariadb", &address)?;
    publish(partition, &[("address", address)])
}

/// Runs each file of `steps` in MariaDB (the running server, else a temporary one) and
/// marks it done.
pub(super) fn apply_sql(
    ctx: &Context<'_>,
    server: &Path,
    client: &Path,
    socket: &Path,
    common: &dyn Fn(&Path, &str) -> Vec<String>,
    steps: &[(PathBuf, PathBuf, String)],
) -> Result<(), String> {
    let ask = |target: &Path| {
        let mut command = std::process::Command::new(client);
        command
            .arg("--no-defaults")
            .arg(format!("--socket={}", target.display()));
        command
    };
    let live = socket.exists()
        && run_logged(
            ctx,
            ask(socket).args(["-e", "SELECT 1"]),
            None,
            "mysql-ping.log",
            "mariadb",
        )
        .is_ok();
    let temporary = if live {
        None
    } else {
        let setup_socket = socket.with_file_name("mysqld-setup.sock");
        let mut args = common(&setup_socket, "mysqld-setup.pid");
        args.push("--skip-networking".to_owned());
        let child = std::process::Command::new(server)
            .args(&args)
            .current_dir(&ctx.directory)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start MariaDB: {e}"))?;
        Some((child, setup_socket))
    };
    let target = temporary
        .as_ref()
        .map_or_else(|| socket.to_owned(), |(_, s)| s.clone());
    let applied = (|| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !target.exists() {
            if Instant::now() >= deadline {
                return Err("MariaDB did not start: see var/log/mysqld.log".to_owned());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for (sql, done, what) in steps {
            run_logged(ctx, &mut ask(&target), Some(sql), "mysql-setup.log", what)?;
            write_file(done, b"", 0o600)?;
        }
        Ok(())
    })();
    if let Some((mut child, _)) = temporary {
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = child.wait();
    }
    applied
}

/// A MySQL service's balancer: HAProxy in TCP mode over the MySQL nodes.
pub(super) fn mysql_glb(ctx: &Context<'_>, partition: &Partition<'_>) -> Result<(), String> {
    let parameters = &partition.instance.parameters;
    let backends = backends(parameters)?;
    let haproxy = program(&["haproxy"], None, "haproxy")?;
    let ip = ipv4(partition)?;
    let port = kept_port(ctx, "glb", &ip, 3306..=3399)?;
    let dirs = AgentDirs::make(ctx)?;
    let listen = format!("{ip}:{port}");
    listening_promise(ctx, "haproxy", &listen)?;
    let conf = dirs.etc.join("haproxy.cfg");
    let pid = dirs.run.join("haproxy.pid");
    let text = mysql::glb_haproxy(&listen, &backends, &pid);
    write_changed(&conf, &text, 0o600)?;
    // A new configuration restarts HAProxy: its wrapper names the configuration's hash.
    write_service(
        ctx,
        "haproxy",
        &format!(
            "{} -db -f {} # {}",
            shell_quote(&haproxy.display().to_string()),
            shell_quote(&conf.display().to_string()),
            short_hash(&text)
        ),
    )?;
    publish(
        partition,
        &[("address", listen), ("backends", backends.join(" "))],
    )
}
