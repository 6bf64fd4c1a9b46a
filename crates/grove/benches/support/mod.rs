//! What the end-to-end benches share: the `grove` binary, processes ended when dropped,
//! a master on loopback, and percentiles.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use grove_client::{Client, Identity};

// The end-to-end tests' helpers (`end_processes_in`, `serve`, `tar_gz`).
#[path = "../../tests/common/mod.rs"]
pub(crate) mod common;

pub(crate) fn grove() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_grove"));
    command.env("GROVE_LOG", "warn");
    command
}

/// A daemon, killed when dropped.
pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Ends the services a bench's nodes leave running (services outlive their agent).
pub(crate) struct Services(pub(crate) PathBuf);

impl Drop for Services {
    fn drop(&mut self) {
        common::end_processes_in(&self.0);
    }
}

/// A scratch directory partition users may traverse.
pub(crate) fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// `grove master` over plain HTTP on loopback, data in `<dir>/master`; its URL and the
/// admin token once it answers.
pub(crate) fn master(dir: &Path) -> (Killed, String, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let master = Killed(
        grove()
            .args([
                "master",
                "--insecure-http",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("--data-dir")
            .arg(dir.join("master"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let token_path = dir.join("master/admin.token");
    let start = Instant::now();
    let anyone = Client::new(&url, &Identity::default()).unwrap();
    while !token_path.exists() || anyone.health().is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the master did not answer"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let admin = std::fs::read_to_string(&token_path)
        .unwrap()
        .trim()
        .to_owned();
    (master, url, admin)
}

/// `grove node register NAME` with its own roots below `dir`; its configuration file.
pub(crate) fn register(
    dir: &Path,
    url: &str,
    admin: &str,
    name: &str,
    partitions: usize,
) -> PathBuf {
    let config = dir.join(format!("{name}.toml"));
    let registered = grove()
        .args([
            "node",
            "register",
            name,
            "--master-url",
            url,
            "--token",
            admin,
        ])
        .args(["--partitions", &partitions.to_string()])
        .arg("--config")
        .arg(&config)
        .arg("--software-root")
        .arg(dir.join(format!("{name}/software")))
        .arg("--instance-root")
        .arg(dir.join(format!("{name}/instance")))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(registered.success());
    config
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A row of the benches' tables: runs, p50, p99, min and max in milliseconds.
pub(crate) fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
        samples.len(),
        ms(percentile(&samples, 50.0)),
        ms(percentile(&samples, 99.0)),
        ms(samples[0]),
        ms(samples[samples.len() - 1]),
    );
}
