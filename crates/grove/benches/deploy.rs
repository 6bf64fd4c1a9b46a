//! End-to-end figures, with the `grove` binary: a master and a node agent as separate
//! processes on loopback, the hello example.
//!
//! - request to connection parameters visible, with the release installed (warm) and with
//!   a new tiny release to install first (cold): p50 and p99 over `GROVE_BENCH_RUNS` runs
//!   (default 20);
//! - the idle agent's memory and CPU per wake-up, and its memory per supervised service.
//!
//! Run with `cargo bench -p grove --bench deploy`; results go to BENCHMARKS.md by hand.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use grove_api as api;
use grove_client::{Client, Identity};

// The end-to-end tests' helpers (only `end_processes_in` is used here).
#[path = "../tests/common/mod.rs"]
mod common;

struct Api {
    client: Client,
}

impl Api {
    fn supply(&self, release: &str) {
        self.client
            .supply(
                "bench",
                &api::Supply {
                    software_release: release.to_owned(),
                    state: api::SupplyState::Available,
                    project: None,
                },
            )
            .expect("supply");
    }

    /// Waits (unmeasured) until the instance reports started, so that each run starts on
    /// an idle node.
    fn settle(&self, title: &str) {
        let start = Instant::now();
        loop {
            let started =
                self.client.list_instances().expect("list").iter().any(|i| {
                    i.title == title && i.reported_state == Some(api::ReportedState::Started)
                });
            if started {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{title} never started"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Requests an instance and waits until its connection parameters are visible.
    fn request_until_published(&self, title: &str, release: &str) -> Duration {
        let start = Instant::now();
        let instance = self
            .client
            .request_instance(&api::InstanceRequest::new(
                title.to_owned(),
                release.to_owned(),
            ))
            .expect("request");
        loop {
            let instance = self.client.show_instance(instance.id).expect("instance");
            if !instance.connection.is_empty() {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{title}: nothing published: {instance:?}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn grove() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_grove"));
    command.env("GROVE_LOG", "warn");
    command
}

struct Killed(Child);

/// Ends the services the bench's node leaves running (services outlive their agent).
struct Services(std::path::PathBuf);

impl Drop for Services {
    fn drop(&mut self) {
        common::end_processes_in(&self.0);
    }
}

/// Resident memory (kB) and CPU time (ns, every thread) of a process.
fn rss_and_cpu(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    let cpu = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    (rss, cpu)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(name: &str, mut samples: Vec<Duration>) {
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

/// A copy of the hello release under a new path: a new URL, so a new build.
fn tiny_release(dir: &Path, index: usize) -> String {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello");
    let target = dir.join(format!("tiny-{index}"));
    std::fs::create_dir_all(&target).unwrap();
    for name in ["software.cfg", "instance.cfg.in", "hello.py"] {
        std::fs::copy(source.join(name), target.join(name)).unwrap();
    }
    target.join("software.cfg").display().to_string()
}

fn main() {
    let runs: usize = std::env::var("GROVE_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let _services = Services(dir.path().to_owned());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let _master = Killed(
        grove()
            .args([
                "master",
                "--insecure-http",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("--data-dir")
            .arg(dir.path().join("master"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let token_path = dir.path().join("master/admin.token");
    let start = Instant::now();
    let anyone = Client::new(&url, &Identity::default()).unwrap();
    while !token_path.exists() || anyone.health().is_err() {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
    let admin = std::fs::read_to_string(&token_path)
        .unwrap()
        .trim()
        .to_owned();
    let config = dir.path().join("node.toml");
    let registered = grove()
        .args([
            "node",
            "register",
            "bench",
            "--master-url",
            &url,
            "--token",
            &admin,
        ])
        .args(["--partitions", &(2 * runs + 2).to_string()])
        .arg("--config")
        .arg(&config)
        .arg("--software-root")
        .arg(dir.path().join("software"))
        .arg("--instance-root")
        .arg(dir.path().join("instance"))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(registered.success());
    let node = Killed(
        grove()
            .args(["node", "--config"])
            .arg(&config)
            .env("GROVE_NODE_IPV4_BASE", "127.90.0.1")
            .env("GROVE_NODE_USER_BASE", "gbench")
            .env("GROVE_NODE_POLL_WAIT_SECONDS", "1")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = node.0.id();
    let api = Api {
        client: Client::new(&url, &Identity::token(&admin)).unwrap(),
    };
    // Idle: formatted, nothing to do, one long poll a second.
    std::thread::sleep(Duration::from_secs(3));
    let idle_seconds = 20;
    let (_, cpu_before) = rss_and_cpu(pid);
    std::thread::sleep(Duration::from_secs(idle_seconds));
    let (idle_rss, cpu_after) = rss_and_cpu(pid);
    let cpu_per_wake_ms = (cpu_after - cpu_before) as f64 / 1e6 / idle_seconds as f64;

    let hello = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/hello/software.cfg")
        .canonicalize()
        .unwrap()
        .display()
        .to_string();
    api.supply(&hello);
    // The first one builds the release.
    api.request_until_published("warm-up", &hello);
    let warm: Vec<Duration> = (0..runs)
        .map(|i| {
            let title = format!("warm-{i}");
            let took = api.request_until_published(&title, &hello);
            api.settle(&title);
            took
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let (busy_rss, _) = rss_and_cpu(pid);
    let services = runs + 1;

    let cold: Vec<Duration> = (0..runs)
        .map(|i| {
            let release = tiny_release(dir.path(), i);
            let start = Instant::now();
            api.supply(&release);
            let title = format!("cold-{i}");
            api.request_until_published(&title, &release);
            let took = start.elapsed();
            api.settle(&title);
            took
        })
        .collect();

    println!("| measure | runs | p50 ms | p99 ms | min ms | max ms |");
    println!("|---|---|---|---|---|---|");
    summary("request → connection parameters, release installed", warm);
    summary(
        "supply + request → connection parameters, release to build",
        cold,
    );
    println!();
    println!("idle agent RSS: {:.1} MiB", idle_rss as f64 / 1024.0);
    println!("idle agent CPU per wake-up (1 long poll/s): {cpu_per_wake_ms:.2} ms");
    println!(
        "agent RSS with {services} services: {:.1} MiB, {:.0} kB per service",
        busy_rss as f64 / 1024.0,
        (busy_rss.saturating_sub(idle_rss)) as f64 / services as f64
    );
    drop(node);
}
