//! ConPaaS applications end to end, with the `grove` binary: a master and two node
//! agents as separate processes on loopback, the examples' manifests and code, real
//! nginx, php-fpm and MariaDB.
//!
//! - deployment: the WordPress-style manifest (a `php` service and a `mysql` service
//!   with its dump), from `deploy` until every service is ready and the page answers
//!   with the row the dump loaded: `GROVE_BENCH_DEPLOYS` runs (default 5);
//! - scaling: `add_nodes` of one web node to the Sudoku-style service, from the action
//!   until the new node answers through the proxy, then `remove_nodes` (unmeasured):
//!   `GROVE_BENCH_RUNS` runs (default 10).
//!
//! Run with `cargo bench -p grove --bench conpaas`; results go to BENCHMARKS.md by hand.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use grove_api::actions::{ActionRequest, ActionState};
use grove_client::{Client, Identity};

mod support;
use support::common::{serve, tar_gz};
use support::{Killed, Services, grove, master, register, scratch, summary};

fn wait(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not after {limit:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn page(url: &str) -> Option<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    agent.get(url).call().ok()?.body_mut().read_to_string().ok()
}

fn action(client: &Client, instance: i64, name: &str, parameters: serde_json::Value) {
    let done = client
        .run_action(
            instance,
            &ActionRequest {
                name: name.to_owned(),
                parameters: parameters.as_object().cloned().unwrap_or_default(),
                wait: Some(60),
            },
        )
        .unwrap();
    assert_eq!(done.state, ActionState::Succeeded, "{done:?}");
}

fn main() {
    let deploys: usize = std::env::var("GROVE_BENCH_DEPLOYS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let runs: usize = std::env::var("GROVE_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10);
    let dir = scratch();
    let _services = Services(dir.path().to_owned());
    let (_master, url, admin) = master(dir.path());
    let client = Client::new(&url, &Identity::token(&admin)).unwrap();
    let mut nodes = Vec::new();
    for (name, partitions, first) in [("a", 8, 1), ("b", 8, 101)] {
        let config = register(dir.path(), &url, &admin, name, partitions);
        nodes.push(Killed(
            grove()
                .args(["node", "--config"])
                .arg(&config)
                .env("GROVE_NODE_IPV4_BASE", format!("127.92.0.{first}"))
                .env("GROVE_NODE_USER_BASE", format!("gcps{name}"))
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
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/conpaas");
    let base = serve(vec![
        (
            "/wordpress.tar.gz",
            tar_gz(
                &examples.join("wordpress/code"),
                &dir.path().join("w.tar.gz"),
            ),
        ),
        (
            "/wordpress.sql",
            std::fs::read(examples.join("wordpress/wordpress.sql")).unwrap(),
        ),
        (
            "/sudoku.tar.gz",
            tar_gz(&examples.join("sudoku/code"), &dir.path().join("s.tar.gz")),
        ),
    ]);
    let manifest = |name: &str| {
        std::fs::read_to_string(examples.join(name))
            .unwrap()
            .replace("http://127.0.0.1:8765", &base)
            .into_bytes()
    };

    // Manifest to every service ready (php + mysql).
    let mut deployments = Vec::new();
    for run in 0..deploys {
        let name = format!("wordpress-{run}");
        let start = Instant::now();
        client
            .deploy_manifest(manifest("wordpress/wordpress.json"), Some(&name), None)
            .unwrap();
        let mut url = None;
        wait("the WordPress-style page", Duration::from_secs(120), || {
            let Ok(view) = client.show_app(&name) else {
                return false;
            };
            if !view.services.iter().all(|s| s.ready) {
                return false;
            }
            url = view
                .services
                .iter()
                .find_map(|s| s.connection.get("url")?.as_str().map(str::to_owned));
            url.as_deref()
                .and_then(page)
                .is_some_and(|p| p.contains("Hello from the dump"))
        });
        deployments.push(start.elapsed());
        // Unmeasured: deleted, the partitions freed for the next run.
        client.delete_app(&name).unwrap();
        wait(
            "the partitions to be freed",
            Duration::from_secs(60),
            || {
                client
                    .list_instances()
                    .unwrap()
                    .iter()
                    .all(|i| i.partition.is_none())
            },
        );
    }

    // add_nodes until the new web node serves through the proxy.
    client
        .deploy_manifest(manifest("sudoku/sudoku.json"), None, None)
        .unwrap();
    let mut proxy = String::new();
    wait("the Sudoku-style service", Duration::from_secs(60), || {
        let view = client.show_app("sudoku").unwrap();
        let service = &view.services[0];
        proxy = service
            .connection
            .get("url")
            .and_then(|u| u.as_str())
            .unwrap_or_default()
            .to_owned();
        service.ready && page(&proxy).is_some()
    });
    let manager = client.show_app("sudoku").unwrap().services[0].instance;
    let served = |proxy: &str| {
        page(proxy)
            .and_then(|p| p.lines().last().map(str::to_owned))
            .unwrap_or_default()
    };
    let mut additions = Vec::new();
    for _ in 0..runs {
        let before: std::collections::BTreeSet<String> = (0..8).map(|_| served(&proxy)).collect();
        let start = Instant::now();
        action(
            &client,
            manager,
            "add_nodes",
            serde_json::json!({"role": "web", "count": 1}),
        );
        wait(
            "the new node through the proxy",
            Duration::from_secs(60),
            || {
                let by = served(&proxy);
                !by.is_empty() && !before.contains(&by)
            },
        );
        additions.push(start.elapsed());
        // Unmeasured: back to one web node.
        action(
            &client,
            manager,
            "remove_nodes",
            serde_json::json!({"role": "web", "count": 1}),
        );
        wait("the node gone", Duration::from_secs(60), || {
            client
                .list_instances()
                .unwrap()
                .iter()
                .filter(|i| i.title == "web-2")
                .all(|i| i.partition.is_none())
        });
    }

    println!("| measure | runs | p50 ms | p99 ms | min ms | max ms |");
    println!("|---|---|---|---|---|---|");
    summary(
        "WordPress-style manifest (php + mysql) → every service ready, the page reads the dump",
        deployments,
    );
    summary(
        "add_nodes of one web node → it answers through the proxy",
        additions,
    );
    drop(nodes);
}
