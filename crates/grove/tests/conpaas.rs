//! ConPaaS applications end to end: a manifest deployed with `grove app deploy`, each
//! service a manager instance that requests its agents, real nginx and php-fpm serving
//! the code archive the test serves on loopback, nodes added and removed through the
//! manager's actions while requests keep being answered.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

mod common;
use common::*;

/// An example's manifest with its URLs pointing at `base`, written in the place.
fn manifest(place: &Place, example: &Path, name: &str, base: &str) -> String {
    let text = std::fs::read_to_string(example.join(name)).expect("manifest");
    let text = text.replace("http://127.0.0.1:8765", base);
    let path = place.path().join(name);
    std::fs::write(&path, text).expect("write");
    path.to_str().expect("utf-8").to_owned()
}

fn example_dir(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/conpaas")
        .join(name)
}

/// The example's code as a `.tar.gz`.
fn code_archive(place: &Place, code: &Path) -> Vec<u8> {
    tar_gz(code, &place.path().join("code.tar.gz"))
}

fn need(program: &str, package: &str) {
    let found = ["/usr/sbin", "/usr/bin"].iter().any(|dir| {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with(program))
    });
    assert!(found, "{program} is needed (apt-get install {package})");
}

/// The line the example's page ends with: which web node served it.
fn served_by(url: &str) -> Option<String> {
    let page = get(url)?;
    page.lines()
        .find_map(|l| l.strip_prefix("served by "))
        .map(str::to_owned)
}

#[test]
fn a_php_manifest_serves_its_code_through_the_proxy_and_scales() {
    need("nginx", "nginx");
    need("php-fpm", "php-fpm");
    let place = Place::new(56);
    let daemon = up_with(&place, 6);
    let examples = example_dir("sudoku");
    // A second code version: the same page, titled "Sudoku v2".
    let second = place.path().join("code-v2");
    std::fs::create_dir(&second).expect("mkdir");
    let page = std::fs::read_to_string(examples.join("code/index.php")).expect("page");
    std::fs::write(
        second.join("index.php"),
        page.replace("\"Sudoku\\n\"", "\"Sudoku v2\\n\""),
    )
    .expect("write");
    let base = serve(vec![
        (
            "/sudoku.tar.gz",
            code_archive(&place, &examples.join("code")),
        ),
        (
            "/sudoku-v2.tar.gz",
            tar_gz(&second, &place.path().join("v2.tar.gz")),
        ),
    ]);
    let path = manifest(&place, &examples, "sudoku.json", &base);

    let view = place.client_json(&["app", "deploy", &path, "--wait", "--timeout", "60"]);
    let service = &view["services"][0];
    assert_eq!(service["name"], "web");
    assert_eq!(service["type"], "php");
    assert_eq!(service["ready"], true);
    let proxy = text(&service["connection"], "url");
    let page = get(&proxy).expect("the proxy answers");
    assert!(page.starts_with("Sudoku\n1 2 3 4 5 6 7 8 9\n"), "{page}");
    let first = served_by(&proxy).expect("served");

    // Two more web nodes: requests through the proxy reach all three.
    let added = place.client_json(&[
        "app",
        "service",
        "add-nodes",
        "sudoku",
        "web",
        "--role",
        "web",
        "--count",
        "2",
        "--wait",
        "--timeout",
        "60",
    ]);
    assert_eq!(added["roles"], serde_json::json!({"proxy": 1, "web": 3}));
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        seen.insert(served_by(&proxy).expect("served"));
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    let listed = place.client_json(&["app", "service", "list-nodes", "sudoku", "web"]);
    assert_eq!(listed["nodes"].as_array().expect("nodes").len(), 4);

    // Taken out again while a prober keeps asking: no request fails.
    let prober = Prober::start(&proxy);
    std::thread::sleep(Duration::from_millis(200));
    place.client_json(&[
        "app",
        "service",
        "remove-nodes",
        "sudoku",
        "web",
        "--role",
        "web",
        "--count",
        "2",
        "--wait",
        "--timeout",
        "60",
    ]);
    std::thread::sleep(Duration::from_millis(500));
    let (failed, answered) = prober.stop();
    assert!(answered);
    assert_eq!(failed, 0, "requests failed while nodes left");
    for _ in 0..10 {
        assert_eq!(served_by(&proxy).as_deref(), Some(first.as_str()));
    }
    // What a service cannot do is refused, saying why.
    let refused = place.client_fails(&[
        "app",
        "service",
        "remove-nodes",
        "sudoku",
        "web",
        "--role",
        "web",
    ]);
    assert!(
        refused.contains("role web keeps at least one node"),
        "{refused}"
    );
    let unknown = place.client_fails(&[
        "app",
        "service",
        "add-nodes",
        "sudoku",
        "web",
        "--role",
        "mysql",
    ]);
    assert!(
        unknown.contains("a php service has no role \"mysql\""),
        "{unknown}"
    );
    let roboconf_only = place.client_fails(&[
        "app",
        "instance",
        "state",
        "sudoku",
        "/x",
        "deployed_started",
    ]);
    assert!(
        roboconf_only.contains("is a ConPaaS application"),
        "{roboconf_only}"
    );

    // Code versions: the manifest's is code-1; a second is uploaded, enabled, served.
    let action = |args: &[&str]| {
        let mut all = vec!["action", "sudoku"];
        all.extend_from_slice(args);
        place.client_json(&all)
    };
    let uploaded = action(&[
        "upload_code_version",
        "--param",
        &format!("url={base}/sudoku-v2.tar.gz"),
    ]);
    assert_eq!(uploaded["result"]["versions"][1]["version"], "code-2");
    assert_eq!(uploaded["result"]["versions"][1]["active"], false);
    action(&["enable_code", "--param", "version=code-2"]);
    eventually("the second code version served", || {
        get(&proxy)?.starts_with("Sudoku v2\n").then_some(())
    });
    let listed = action(&["list_code_versions"]);
    assert_eq!(listed["result"]["versions"][0]["active"], false);
    assert_eq!(listed["result"]["versions"][1]["active"], true);
    let refused = place.client_fails(&[
        "action",
        "sudoku",
        "delete_code_version",
        "--param",
        "version=code-2",
    ]);
    assert!(refused.contains("code-2 is enabled"), "{refused}");
    // The agents' logs, through the manager (the agents take that call from it only).
    let logs = action(&["get_logs"]);
    let fpm = logs["result"]["web-1"]["var/log/php-fpm.log"]
        .as_str()
        .unwrap_or_default();
    assert!(fpm.contains("ready to handle connections"), "{logs}");
    assert!(logs["result"]["proxy-1"].is_object(), "{logs}");

    // Deleting the application destroys the manager and its agents.
    place.client(&["app", "delete", "sudoku"]);
    eventually("every instance destroyed", || {
        let list = place.client_json(&["service", "list"]);
        list.as_array()
            .expect("array")
            .iter()
            .all(|i| i["reported_state"] == "destroyed")
            .then_some(())
    });
    assert!(get(&proxy).is_none());
    daemon.stop();
    end_processes_in(place.path());
}

/// The WordPress-style manifest: a MySQL service loads its dump and sets its password,
/// the PHP service's page reads the row through the address, user and password the
/// database's manager published; a new password reaches the web nodes.
#[test]
fn a_php_page_reads_what_the_mysql_dump_loaded() {
    need("nginx", "nginx");
    need("php-fpm", "php-fpm");
    need("mariadbd", "mariadb-server");
    let place = Place::new(58);
    let daemon = up_with(&place, 6);
    let examples = example_dir("wordpress");
    let dump = std::fs::read(examples.join("wordpress.sql")).expect("dump");
    let base = serve(vec![
        (
            "/wordpress.tar.gz",
            code_archive(&place, &examples.join("code")),
        ),
        ("/wordpress.sql", dump),
    ]);
    let path = manifest(&place, &examples, "wordpress.json", &base);
    let view = place.client_json(&["app", "deploy", &path, "--wait", "--timeout", "60"]);
    let services = view["services"].as_array().expect("services");
    let db = services.iter().find(|s| s["name"] == "db").expect("db");
    assert_eq!(db["type"], "mysql");
    assert_eq!(db["connection"]["user"], "mysqldb");
    assert_eq!(db["connection"]["password"], "change-me");
    // Clients reach MariaDB through the balancer (HAProxy), not the node itself.
    let glb = db["nodes"]["glb"][0].as_str().expect("a glb").to_owned();
    let address = text(&db["connection"], "address");
    assert!(glb.ends_with(&format!(" {address}")), "{glb} {address}");
    let web = services.iter().find(|s| s["name"] == "web").expect("web");
    let url = text(&web["connection"], "url");
    assert_eq!(
        get(&url).as_deref(),
        Some("first post: Hello from the dump\n")
    );
    // A new password: the database takes it, and the web nodes follow.
    let changed = place.client_json(&[
        "action",
        "wordpress/db",
        "set_password",
        "--param",
        "password=n3w-secret",
    ]);
    assert_eq!(changed["state"], "succeeded", "{changed}");
    eventually("the database's new password", || {
        let shown = place.client_json(&["app", "show", "wordpress"]);
        let db = shown["services"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == "db")?
            .clone();
        (db["connection"]["password"] == "n3w-secret").then_some(())
    });
    eventually("the page with the new password", || {
        (get(&url).as_deref() == Some("first post: Hello from the dump\n")).then_some(())
    });
    place.client(&["app", "delete", "wordpress"]);
    daemon.stop();
    end_processes_in(place.path());
}

/// Over HTTPS with a master and two nodes apart: the web nodes `add_nodes` asks for are
/// placed over both nodes, requests through the proxy reach all three; the agents take actions
/// from their manager only (its partition's certificate), never from the admin.
#[test]
fn web_nodes_spread_over_two_nodes_and_take_calls_from_their_manager_only() {
    need("nginx", "nginx");
    need("php-fpm", "php-fpm");
    let place = Place::new(62);
    let listen = format!("127.0.0.1:{}", free_port());
    let (apart, master) = Apart::master(&place, &listen, &format!("https://{listen}"));
    // Five instances on six partitions of two nodes: the web nodes land on both.
    let (_, node_a) = own_node(&apart, "node-a", 3, 1, "gt62a");
    let (_, node_b) = own_node(&apart, "node-b", 3, 101, "gt62b");
    eventually("both nodes to declare their partitions", || {
        let computers = apart.client(&["computer", "list"]);
        (computers.as_array().map(Vec::len) == Some(2)).then_some(())
    });
    let examples = example_dir("sudoku");
    let base = serve(vec![(
        "/sudoku.tar.gz",
        code_archive(&place, &examples.join("code")),
    )]);
    let path = manifest(&place, &examples, "sudoku.json", &base);
    let view = apart.client(&["app", "deploy", &path, "--wait", "--timeout", "60"]);
    let proxy = text(&view["services"][0]["connection"], "url");
    apart.client(&[
        "app",
        "service",
        "add-nodes",
        "sudoku",
        "web",
        "--role",
        "web",
        "--count",
        "2",
        "--wait",
        "--timeout",
        "60",
    ]);
    let instances = apart.client(&["service", "list"]);
    let computer_of = |title: &str| {
        instances
            .as_array()
            .expect("array")
            .iter()
            .find(|i| i["title"] == title)
            .and_then(|i| i["computer"].as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let computers: std::collections::BTreeSet<String> = ["web-1", "web-2", "web-3"]
        .iter()
        .map(|t| computer_of(t))
        .collect();
    assert_eq!(computers, ["node-a".to_owned(), "node-b".to_owned()].into());
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        seen.insert(served_by(&proxy).expect("served"));
    }
    assert_eq!(seen.len(), 3, "{seen:?}");

    // The admin may not call an agent; its manager, with its partition's certificate, may.
    let refused = apart.client_fails(&["action", "web-1", "status"]);
    assert!(
        refused.contains("takes actions from its manager only"),
        "{refused}"
    );
    let manager = apart.client(&["service", "info", "sudoku/web"]);
    let partition = text(&manager, "partition");
    let config = place
        .path()
        .join(text(&manager, "computer"))
        .join("instance")
        .join(partition)
        .join(grove_recipes::conpaas::MANAGER_CONFIG);
    let config: grove_recipes::conpaas::ManagerConfig =
        serde_json::from_str(&std::fs::read_to_string(config).expect("manager.json"))
            .expect("manager.json");
    assert!(
        config.connection.certificate.is_some(),
        "the manager has a certificate"
    );
    assert!(config.connection.token.is_none());
    let as_manager = config.connection.client().expect("the manager's client");
    let web_1 = instances
        .as_array()
        .expect("array")
        .iter()
        .find(|i| i["title"] == "web-1")
        .and_then(|i| i["id"].as_i64())
        .expect("web-1");
    let accepted = as_manager
        .run_action(
            web_1,
            &grove_api::actions::ActionRequest {
                name: "status".to_owned(),
                parameters: Default::default(),
                wait: Some(30),
            },
        )
        .expect("the manager's call is taken");
    assert_eq!(
        accepted.error.as_deref(),
        Some("the instance has no action \"status\" (etc/action/status is missing)")
    );
    node_a.stop();
    node_b.stop();
    master.stop();
    end_processes_in(place.path());
}

/// How many web nodes the service has, each with its address.
fn web_nodes(place: &Place) -> usize {
    let view = place.client_json(&["app", "show", "sudoku"]);
    view["services"][0]["nodes"]["web"]
        .as_array()
        .map_or(0, |nodes| {
            nodes
                .iter()
                .filter(|n| !n.as_str().unwrap_or("-").ends_with(" -"))
                .count()
        })
}

/// Waits up to two minutes (the autoscaler measures at each of its manager's runs, every
/// ten seconds, and waits out its cool-down).
fn within_two_minutes(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Autoscaling: under load the web role grows to its maximum, and back to its minimum
/// once the load is gone.
#[test]
fn a_web_role_scales_up_under_load_and_back_down_after() {
    need("nginx", "nginx");
    need("php-fpm", "php-fpm");
    let place = Place::new(60);
    let daemon = up_with(&place, 6);
    let examples = example_dir("sudoku");
    let base = serve(vec![(
        "/sudoku.tar.gz",
        code_archive(&place, &examples.join("code")),
    )]);
    let path = manifest(&place, &examples, "sudoku.json", &base);
    let view = place.client_json(&["app", "deploy", &path, "--wait", "--timeout", "60"]);
    let proxy = text(&view["services"][0]["connection"], "url");
    let policy = place.client_json(&[
        "action",
        "sudoku/web",
        "on_autoscaling",
        "--param",
        "role=web",
        "--param",
        "min=1",
        "--param",
        "max=2",
        "--param",
        "response_time=100",
        "--param",
        "path=/work.php",
        "--param",
        "cool_down=5",
    ]);
    assert_eq!(policy["state"], "succeeded", "{policy}");
    // 24 clients at once: one node's four PHP workers keep them waiting.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let page = format!("{proxy}work.php");
    let clients: Vec<_> = (0..24)
        .map(|_| {
            let stop = std::sync::Arc::clone(&stop);
            let page = page.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = get(&page);
                }
            })
        })
        .collect();
    within_two_minutes("a second web node under load", || web_nodes(&place) == 2);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for client in clients {
        client.join().expect("client");
    }
    within_two_minutes("back to one web node", || web_nodes(&place) == 1);
    let shown = place.client_json(&["app", "show", "sudoku"]);
    let status = shown["services"][0]["connection"]["autoscaling"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(status.starts_with("web 1..2: "), "{status}");
    daemon.stop();
    end_processes_in(place.path());
}

/// The log the generic example's scripts write in an agent's partition.
fn generic_log(place: &Place, title: &str) -> String {
    let list = place.client_json(&["service", "list"]);
    let partition = list
        .as_array()
        .expect("array")
        .iter()
        .find(|i| i["title"] == title)
        .and_then(|i| i["partition"].as_str().map(str::to_owned))
        .unwrap_or_default();
    std::fs::read_to_string(
        place
            .path()
            .join("up/instance")
            .join(partition)
            .join("generic.log"),
    )
    .unwrap_or_default()
}

/// How many members the last `notify.sh` of an agent saw.
fn last_notified(log: &str) -> usize {
    log.lines()
        .rev()
        .find_map(|l| l.strip_prefix("notify "))
        .and_then(|json| serde_json::from_str::<serde_json::Value>(json).ok())
        .and_then(|v| {
            v.as_object()
                .map(|o| o.values().filter_map(|l| l.as_array()).map(Vec::len).sum())
        })
        .unwrap_or(0)
}

/// A generic service's scripts: `init.sh` on each agent, `notify.sh` whenever agents
/// join or leave, `run.sh` on each when the manager's `run` action is run.
#[test]
fn a_generic_services_scripts_are_notified_when_nodes_join_and_leave() {
    let place = Place::new(59);
    let daemon = up_with(&place, 5);
    let examples = example_dir("generic");
    let base = serve(vec![(
        "/generic.tar.gz",
        code_archive(&place, &examples.join("code")),
    )]);
    let path = manifest(&place, &examples, "generic.json", &base);
    place.client_json(&["app", "deploy", &path, "--wait", "--timeout", "60"]);
    for title in ["master-1", "node-1"] {
        eventually("both agents notified of both", || {
            (last_notified(&generic_log(&place, title)) == 2).then_some(())
        });
        assert!(generic_log(&place, title).starts_with("init "), "{title}");
    }
    place.client_json(&[
        "app",
        "service",
        "add-nodes",
        "jobs",
        "workers",
        "--role",
        "node",
        "--wait",
        "--timeout",
        "60",
    ]);
    for title in ["master-1", "node-1", "node-2"] {
        eventually("every agent notified of the third", || {
            (last_notified(&generic_log(&place, title)) == 3).then_some(())
        });
    }
    let ran = place.client_json(&["action", "jobs/workers", "run"]);
    assert_eq!(ran["state"], "succeeded", "{ran}");
    for title in ["master-1", "node-1", "node-2"] {
        eventually("run.sh on every agent", || {
            generic_log(&place, title)
                .contains("\nrun on ")
                .then_some(())
        });
    }
    let listed = place.client_json(&["app", "service", "list-nodes", "jobs", "workers"]);
    eventually("the scripts' ends listed", || {
        let listed = place.client_json(&["app", "service", "list-nodes", "jobs", "workers"]);
        listed["nodes"]
            .as_array()?
            .iter()
            .all(|n| n["script"] == "run 1: exit status: 0")
            .then_some(())
    });
    assert_eq!(listed["roles"], serde_json::json!({"master": 1, "node": 2}));
    place.client_json(&[
        "app",
        "service",
        "remove-nodes",
        "jobs",
        "workers",
        "--role",
        "node",
        "--wait",
        "--timeout",
        "60",
    ]);
    for title in ["master-1", "node-1"] {
        eventually("the others notified that one left", || {
            (last_notified(&generic_log(&place, title)) == 2).then_some(())
        });
    }
    daemon.stop();
    end_processes_in(place.path());
}

/// The admin registers the release a type runs: a `java` manifest (a type Grove knows
/// but does not ship) then deploys its manager as an instance of that release.
#[test]
fn an_admin_registers_the_release_of_a_type() {
    let place = Place::new(61);
    let daemon = up_with(&place, 2);
    let release = example("hello");
    let types = place.client_json(&["app", "type", "list"]);
    let java = types
        .as_array()
        .expect("types")
        .iter()
        .find(|t| t["name"] == "java")
        .expect("java")
        .clone();
    assert_eq!(java["release"], Value::Null);
    let added = place.client_json(&["app", "type", "add", "java", &release]);
    assert_eq!(added[0]["release"], release.as_str());
    place.client(&["supply", &release, "local"]);
    let path = place.path().join("java.json");
    std::fs::write(
        &path,
        r#"{"Application": "shop", "Services": [{"Type": "java"}]}"#,
    )
    .expect("write");
    let view = place.client_json(&["app", "deploy", path.to_str().expect("utf-8")]);
    assert_eq!(view["services"][0]["type"], "java");
    let manager = place.instance("shop/java");
    assert_eq!(manager["software_release"], release.as_str());
    assert_eq!(manager["software_type"], "manager");
    assert_eq!(manager["parameters"]["type"], "java");
    // A name the API takes for itself is refused.
    let reserved = place.client_fails(&[
        "app",
        "deploy",
        path.to_str().expect("utf-8"),
        "--name",
        "types",
    ]);
    assert!(reserved.contains("is reserved"), "{reserved}");
    place.client(&["app", "delete", "shop"]);
    place.client_json(&["app", "type", "remove", "java"]);
    // A type of the admin's own: its manifests deploy, any role taken.
    place.client_json(&["app", "type", "add", "hello", &release]);
    let own = place.path().join("own.json");
    std::fs::write(
        &own,
        r#"{"Application": "greetings", "Services": [{"Type": "hello", "StartupInstances": {"greeter": 1}}]}"#,
    )
    .expect("write");
    let view = place.client_json(&["app", "deploy", own.to_str().expect("utf-8")]);
    assert_eq!(view["services"][0]["type"], "hello");
    assert_eq!(
        place.instance("greetings/hello")["software_release"],
        release.as_str()
    );
    let unknown = place.path().join("unknown.json");
    std::fs::write(
        &unknown,
        r#"{"Application": "x", "Services": [{"Type": "nope"}]}"#,
    )
    .expect("write");
    let refused = place.client_fails(&["app", "deploy", unknown.to_str().expect("utf-8")]);
    assert!(
        refused.contains("MANIFEST_UNKNOWN_SERVICE_TYPE"),
        "{refused}"
    );
    assert!(
        refused.contains("hello"),
        "the admin's types are named: {refused}"
    );
    daemon.stop();
    end_processes_in(place.path());
}

/// A bad manifest is refused before anything is created, with every error and its line;
/// a type Grove does not ship is refused, naming it.
#[test]
fn a_manifest_is_checked_before_anything_is_deployed() {
    let place = Place::new(57);
    let daemon = up_with(&place, 2);
    let bad = place.path().join("bad.json");
    std::fs::write(
        &bad,
        "{\"Application\": \"x\",\n \"Services\": [{\"Type\": \"fake\"},\n {\"Type\": \"php\", \"StartupInstances\": {\"web\": -1}}]}",
    )
    .expect("write");
    let error = place.client_fails(&["app", "deploy", bad.to_str().expect("utf-8")]);
    assert!(error.contains("MANIFEST_UNKNOWN_SERVICE_TYPE"), "{error}");
    assert!(error.contains("MANIFEST_INVALID_INSTANCE_COUNT"), "{error}");
    assert!(error.contains("line 2"), "{error}");
    let java = place.path().join("java.json");
    std::fs::write(
        &java,
        r#"{"Application": "j", "Services": [{"Type": "java"}]}"#,
    )
    .expect("write");
    let error = place.client_fails(&["app", "deploy", java.to_str().expect("utf-8")]);
    assert!(
        error.contains("service type java has no software release"),
        "{error}"
    );
    let apps = place.client_json(&["app", "list"]);
    assert_eq!(apps, serde_json::json!([]));
    // The seed's manifest as ConPaaS wrote it: a service named with spaces.
    let seed = place.path().join("seed.json");
    std::fs::write(
        &seed,
        r#"{"Application": "Sudoku", "Services": [{"ServiceName": "Sudoku PHP", "Type": "php",
            "StartupInstances": {"proxy": "1", "web": "1", "backend": "1"}}]}"#,
    )
    .expect("write");
    let view = place.client_json(&["app", "deploy", seed.to_str().expect("utf-8")]);
    assert_eq!(view["services"][0]["name"], "Sudoku PHP");
    place.client(&["app", "delete", "Sudoku"]);
    let instances = place.client_json(&["service", "list"]);
    assert!(
        instances
            .as_array()
            .expect("array")
            .iter()
            .all(|i| i["title"] != "x/fake"),
        "{instances}"
    );
    daemon.stop();
}
