//! Roboconf applications end to end, with the `grove` binary: a master and two node
//! agents as separate processes on loopback, generated applications.
//!
//! - update latency: an exporter stops or starts again (`grove app instance state`);
//!   measured until each of its 10 importers (each in a partition of its own, all on
//!   node a)
//!   has finished its `update` script: p50 and p99 over `GROVE_BENCH_RUNS` changes
//!   (default 20);
//! - deployment: an application of 100 instances (10 root instances, each with 9
//!   children whose scripts do nothing) on two nodes, from `deploy` until every instance
//!   is started: `GROVE_BENCH_DEPLOYS` runs (default 3).
//!
//! Run with `cargo bench -p grove --bench apps`; results go to BENCHMARKS.md by hand.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use grove_client::{Client, Identity};
use grove_roboconf::tree::Tree;

mod support;
use support::{Killed, Services, grove, master, register, scratch, summary};

const DESCRIPTOR: &str = "version = 1.0\ndsl-id = roboconf-1.0\ngraph-entry-point = g.graph\ninstance-entry-point = i.instances\n";
const TARGET: &str = "id = p\nname = p\nhandler = grove\n";

/// One exporter and `importers` importers, each in a root instance of its own; each
/// importer's `update` appends a line to `updates` in its files folder.
fn fan_out(importers: usize) -> Vec<u8> {
    let mut instances = String::from(
        "instance of VM {\n name: vm-exporter;\n instance of Exporter {\n  name: exporter;\n }\n}\n",
    );
    for i in 1..=importers {
        instances.push_str(&format!(
            "instance of VM {{\n name: vm-{i};\n instance of Importer {{\n  name: importer;\n }}\n}}\n"
        ));
    }
    let descriptor = format!("name = fan-out\n{DESCRIPTOR}");
    Tree::of([
        ("descriptor/application.properties", descriptor.as_str()),
        (
            "graph/g.graph",
            "VM {\n installer: target;\n exports: ip;\n children: Exporter, Importer;\n}\n\
             Exporter {\n installer: script;\n exports: ip, port = 9;\n}\n\
             Importer {\n installer: script;\n imports: Exporter.ip (optional), Exporter.port (optional);\n}\n",
        ),
        (
            "graph/VM/target.properties",
            "id = p\nname = p\nhandler = grove\ngrove.computer = a\n",
        ),
        (
            "graph/Importer/scripts/update.sh",
            "#!/bin/sh\necho \"$ROBOCONF_UPDATE_STATUS\" >> \"$ROBOCONF_FILES_DIR/updates\"\n",
        ),
        ("instances/i.instances", instances.as_str()),
    ])
    .to_zip()
    .unwrap()
}

/// `roots` root instances with `children` children each, no scripts.
fn wide(name: &str, roots: usize, children: usize) -> Vec<u8> {
    let descriptor = format!("name = {name}\n{DESCRIPTOR}");
    let instances = format!(
        "instance of VM {{\n name: vm ;\n count: {roots};\n{}}}\n",
        (1..=children)
            .map(|c| format!(" instance of Worker {{\n  name: w{c};\n }}\n"))
            .collect::<String>()
    );
    Tree::of([
        ("descriptor/application.properties", descriptor.as_str()),
        (
            "graph/g.graph",
            "VM {\n installer: target;\n children: Worker;\n}\nWorker {\n installer: script;\n exports: ip;\n}\n",
        ),
        ("graph/VM/target.properties", TARGET),
        ("instances/i.instances", instances.as_str()),
    ])
    .to_zip()
    .unwrap()
}

/// The `updates` files of the importers (on either node), and how many lines each has.
fn updates(dir: &Path) -> std::collections::BTreeMap<PathBuf, usize> {
    let mut counts = std::collections::BTreeMap::new();
    let partitions = ["a", "b"].iter().flat_map(|node| {
        std::fs::read_dir(dir.join(node).join("instance"))
            .into_iter()
            .flatten()
            .flatten()
    });
    for partition in partitions {
        let instances = partition.path().join("roboconf/instances");
        for instance in std::fs::read_dir(&instances)
            .into_iter()
            .flatten()
            .flatten()
        {
            let file = instance.path().join("files/updates");
            if let Ok(text) = std::fs::read_to_string(&file) {
                counts.insert(file, text.lines().count());
            }
        }
    }
    counts
}

fn all_started(client: &Client, name: &str) -> bool {
    client
        .show_app(name)
        .map(|v| v.instances.iter().all(|i| i.state == "deployed_started"))
        .unwrap_or(false)
}

fn wait(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not after {limit:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn main() {
    let runs: usize = std::env::var("GROVE_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let deploys: usize = std::env::var("GROVE_BENCH_DEPLOYS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let dir = scratch();
    let _services = Services(dir.path().to_owned());
    let (_master, url, admin) = master(dir.path());
    let client = Client::new(&url, &Identity::token(&admin)).unwrap();
    // Node a: the fan-out's 11 partitions, then half of the wide application's; node b
    // the other half.
    let mut nodes = Vec::new();
    for (name, partitions, first) in [("a", 16, 1), ("b", 6, 101)] {
        let config = register(dir.path(), &url, &admin, name, partitions);
        nodes.push(Killed(
            grove()
                .args(["node", "--config"])
                .arg(&config)
                .env("GROVE_NODE_IPV4_BASE", format!("127.91.0.{first}"))
                .env("GROVE_NODE_USER_BASE", format!("gapp{name}"))
                .env("GROVE_NODE_POLL_WAIT_SECONDS", "5")
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        ));
    }
    wait("both nodes", Duration::from_secs(30), || {
        client
            .list_computers()
            .map(|c| c.iter().filter(|c| !c.partitions.is_empty()).count() == 2)
            .unwrap_or(false)
    });

    // Update latency.
    let importers = 10;
    client.deploy_app(fan_out(importers), None, None).unwrap();
    wait("the fan-out to start", Duration::from_secs(60), || {
        all_started(&client, "fan-out")
    });
    let a_root = dir.path();
    let mut changes = Vec::new();
    // The first change makes every importer's `updates` file; it is not counted.
    for run in 0..=runs {
        let before = updates(a_root);
        let state = if run % 2 == 0 {
            "deployed_stopped"
        } else {
            "deployed_started"
        };
        let start = Instant::now();
        client
            .set_app_instance_state("fan-out", "/vm-exporter/exporter", state)
            .unwrap();
        wait("every importer's update", Duration::from_secs(30), || {
            let now = updates(a_root);
            now.len() == importers
                && now
                    .iter()
                    .all(|(file, count)| *count > before.get(file).copied().unwrap_or(0))
        });
        if run > 0 {
            changes.push(start.elapsed());
        }
        // Unmeasured: the exporter's partition settles before the next change.
        std::thread::sleep(Duration::from_millis(200));
    }

    // Deployment of 100 instances on both nodes.
    let mut deployments = Vec::new();
    for run in 0..deploys {
        let name = format!("wide-{run}");
        let archive = wide(&name, 10, 9);
        let start = Instant::now();
        client.deploy_app(archive, None, None).unwrap();
        wait("100 instances to start", Duration::from_secs(120), || {
            all_started(&client, &name)
        });
        deployments.push(start.elapsed());
        let view = client.show_app(&name).unwrap();
        assert_eq!(view.instances.len(), 100);
        let computers: std::collections::BTreeSet<String> = view
            .roots
            .values()
            .map(|id| client.show_instance(*id).unwrap().computer.unwrap())
            .collect();
        assert_eq!(computers.len(), 2, "on both nodes");
        // Unmeasured: undeployed, deleted, the partitions freed for the next run.
        client.undeploy_app(&name).unwrap();
        wait("the undeployment", Duration::from_secs(60), || {
            client.delete_app(&name).is_ok()
        });
        wait(
            "the partitions to be freed",
            Duration::from_secs(60),
            || {
                client
                    .list_instances()
                    .unwrap()
                    .iter()
                    .filter(|i| i.title.starts_with(&format!("{name}/")))
                    .all(|i| i.partition.is_none())
            },
        );
    }

    println!("| measure | runs | p50 ms | p99 ms | min ms | max ms |");
    println!("|---|---|---|---|---|---|");
    summary(
        &format!("exporter stops or starts → {importers} importers' update finished"),
        changes,
    );
    summary("deploy → 100 instances started, two nodes", deployments);
    drop(nodes);
}
