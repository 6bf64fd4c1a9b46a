//! What supervision costs: the time to start a service against a bare spawn of the same
//! program, and the memory per supervised service.
//!
//! Run with `cargo bench -p grove-supervisor --bench supervise`; results go to
//! BENCHMARKS.md by hand.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use grove_supervisor::{Policy, ServiceSpec, Supervisor};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn spec(dir: &std::path::Path, i: usize) -> ServiceSpec {
    ServiceSpec {
        name: format!("bench/{i}"),
        program: "/bin/sleep".into(),
        args: vec!["600".into()],
        cwd: dir.to_owned(),
        env: BTreeMap::new(),
        log: grove_supervisor::LogFile {
            root: dir.to_owned(),
            relative: format!("{i}.log").into(),
        },
        user: None,
        revision: String::new(),
        cgroups: Vec::new(),
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let count: usize = std::env::var("GROVE_BENCH_SERVICES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(200);
    // One thread: the measuring loop and the service's task take turns, nothing spins
    // against them.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    runtime.block_on(async {
        // Bare: spawn (returns once the program is executing), then kill and reap.
        let mut bare = Vec::new();
        for _ in 0..count {
            let start = Instant::now();
            let mut child = tokio::process::Command::new("/bin/sleep")
                .arg("600")
                .spawn()
                .unwrap();
            bare.push(start.elapsed());
            child.kill().await.unwrap();
        }

        // Bare again, its output to a new file, as a service's must go somewhere.
        let mut bare_logged = Vec::new();
        for i in 0..count {
            let start = Instant::now();
            let log = std::fs::File::create(dir.path().join(format!("bare-{i}.log"))).unwrap();
            let mut child = tokio::process::Command::new("/bin/sleep")
                .arg("600")
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            bare_logged.push(start.elapsed());
            child.kill().await.unwrap();
        }

        // Supervised: from start() to the service running with a pid. The first round
        // creates each log file; the second starts the same services again, their logs
        // there already (a restart, or a service that ran before).
        let mut rounds = Vec::new();
        let mut memory = 0.0;
        for round in 0..2 {
            let mut supervisor = Supervisor::new(Policy::default());
            let mut supervised = Vec::new();
            let before = rss_kib();
            for i in 0..count {
                let start = Instant::now();
                supervisor.start(spec(dir.path(), i)).unwrap();
                let name = format!("bench/{i}");
                while supervisor.status_of(&name).is_none_or(|s| s.pid.is_none()) {
                    tokio::task::yield_now().await;
                }
                supervised.push(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            if round == 0 {
                memory = rss_kib().saturating_sub(before) as f64 / count as f64;
            }
            supervisor.stop_all().await;
            rounds.push(median(supervised));
        }

        let (bare, bare_logged) = (median(bare), median(bare_logged));
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
        println!("| measure | value |");
        println!("|---|---|");
        println!("| bare spawn of /bin/sleep, median of {count} | {:.0} µs |", us(bare));
        println!("| bare spawn, output to a new file | {:.0} µs |", us(bare_logged));
        println!(
            "| supervised start, log file there, median | {:.0} µs ({:.2}x the bare spawn) |",
            us(rounds[1]),
            ratio(rounds[1], bare)
        );
        println!(
            "| supervised start, log file created, median | {:.0} µs ({:.2}x the bare spawn to a new file) |",
            us(rounds[0]),
            ratio(rounds[0], bare_logged)
        );
        println!("| supervisor memory per service ({count} services) | {memory:.1} kB |");
    });
}
