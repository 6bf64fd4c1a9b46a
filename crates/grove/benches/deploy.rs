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

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use grove_api as api;
use grove_client::{Client, Identity};

mod support;
use support::{Killed, Services, grove, master, register, scratch, summary};

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
    let dir = scratch();
    let _services = Services(dir.path().to_owned());
    let (_master, url, admin) = master(dir.path());
    let config = register(dir.path(), &url, &admin, "bench", 2 * runs + 2);
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
