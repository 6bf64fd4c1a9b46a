//! The web console in a real browser: Debian's Chromium driven by Playwright
//! (`tests/console/console.mjs`), against `grove up` and against `grove master` over
//! HTTPS with a node of its own. `.ci/run` installs Chromium and `playwright-core`; without
//! them these tests fail, they never skip. Screenshots of each page land in
//! `target/console-screenshots/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Apart, Place, eventually, example, free_port, grove, serve, tar_gz, up_with};
use serde_json::{Value, json};

fn screenshots(scenario: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    target.join("console-screenshots").join(scenario)
}

/// Runs the browser through `scenario`; fails with what it printed.
fn browse(scenario: &Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run `npm ci --prefix {}` (.ci/run does)",
        dir.display()
    );
    let output = Command::new("node")
        .arg(dir.join("console.mjs"))
        .env("GROVE_CONSOLE_SCENARIO", scenario.to_string())
        .output()
        .expect("node runs (Debian's nodejs)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the browser test failed:\n{said}");
}

fn client_config(place: &Place) -> (String, String) {
    let text = std::fs::read_to_string(place.path().join("up/client.toml")).expect("client.toml");
    let config: toml::Table = toml::from_str(&text).expect("toml");
    let field = |k: &str| config[k].as_str().expect(k).to_owned();
    (field("master_url"), field("token"))
}

#[test]
fn the_console_drives_grove_up_in_a_browser() {
    let place = Place::new(24);
    let daemon = up_with(&place, 10);
    let (url, admin) = client_config(&place);
    let hello = example("hello");
    place.client(&["supply", &hello, "local"]);

    // A release that cannot build: its error shows on the service and the computer.
    let broken = place.release(
        "broken.cfg",
        "[buildout]\nparts = x\n\n[x]\nrecipe = grove:no-such-recipe\n",
    );
    place.client(&["supply", &broken, "local"]);
    place.client(&["request", "broken", &broken]);
    let broken_instance = place.instance("broken")["id"].as_i64().expect("id");

    // A project with a reader, and an instance of the project's.
    place.client(&["project", "create", "team"]);
    let reader = place.client(&["user", "create", "reader"]);
    let reader_token = String::from_utf8_lossy(&reader.stdout).trim().to_owned();
    place.client(&[
        "project", "member", "add", "team", "reader", "--role", "reader",
    ]);
    let prices = place.path().join("prices.toml");
    std::fs::write(
        &prices,
        "currency = \"EUR\"\npartition_hour = \"0.015\"\ncpu_hour = \"0.04\"\nmemory_gib_hour = \"0.005\"\n",
    )
    .expect("prices");
    place.client(&["billing", "prices", prices.to_str().expect("utf-8")]);
    let team = place.client_json(&[
        "request",
        "team-hello",
        &hello,
        "--project",
        "team",
        "--wait",
        "--timeout",
        "60",
    ]);
    let team_instance = place.client_json(&["service", "info", "team-hello", "--project", "team"])
        ["id"]
        .as_i64()
        .expect("id");
    assert!(team["url"].is_string(), "{team}");
    // Its use reaches the ledger: the estimate has a month to download.
    let month = eventually("the project's use to be counted", || {
        let estimate = place.client_json(&["billing", "estimate", "--project", "team"]);
        estimate["months"][0]["month"].as_str().map(str::to_owned)
    });

    // Applications: a Roboconf one (a diagram) and a ConPaaS one (nodes added and
    // removed from the page).
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let webapp = examples.join("apps/webapp-db");
    place.client_json(&[
        "app",
        "deploy",
        webapp.to_str().expect("utf-8"),
        "--wait",
        "--timeout",
        "120",
    ]);
    let generic = examples.join("conpaas/generic");
    let base = serve(vec![(
        "/generic.tar.gz",
        tar_gz(&generic.join("code"), &place.path().join("code.tar.gz")),
    )]);
    let manifest = std::fs::read_to_string(generic.join("generic.json"))
        .expect("manifest")
        .replace("http://127.0.0.1:8765", &base);
    let manifest_path = place.path().join("generic.json");
    std::fs::write(&manifest_path, manifest).expect("write");
    place.client_json(&[
        "app",
        "deploy",
        manifest_path.to_str().expect("utf-8"),
        "--wait",
        "--timeout",
        "60",
    ]);

    let shots = screenshots("up");
    browse(&json!({
        "kind": "up",
        "url": url,
        "admin_token": admin,
        "reader_token": reader_token,
        "hello_release": hello,
        "broken_instance": broken_instance,
        "broken_error": "no-such-recipe",
        "computer": "local",
        "project": "team",
        "team_instance": team_instance,
        "invoice_month": month,
        "roboconf_app": "webapp-db",
        "conpaas_app": "jobs",
        "screenshots": shots,
    }));

    // What the browser did, seen through the API.
    let list = place.client_json(&["service", "list"]);
    let web = list
        .as_array()
        .expect("array")
        .iter()
        .find(|i| {
            i["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("web <script>"))
        })
        .expect("the service the browser requested");
    assert_eq!(web["requested_state"], "stopped", "{web}");
    assert_eq!(web["parameters"]["name"], "<b>Ada</b>");
    assert_eq!(
        place.client_json(&["service", "info", "team-hello", "--project", "team"])["requested_state"],
        "started",
        "the reader's forged form changed nothing"
    );
    let csv = std::fs::read_to_string(shots.join("invoice.csv")).expect("the invoice downloaded");
    assert!(
        csv.starts_with("instance,resource,quantity,unit_price,amount\r\n"),
        "{csv}"
    );
    assert!(csv.contains("team-hello,partition-hours,"), "{csv}");
    let jobs = place.client_json(&["app", "show", "jobs"]);
    assert_eq!(
        jobs["services"][0]["nodes"]["node"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "a node added and one removed from the page: {jobs}"
    );
    for page in [
        "app-roboconf",
        "app-conpaas",
        "login",
        "services",
        "request",
        "service",
        "computers",
        "computer",
        "project",
        "profiles",
    ] {
        assert!(
            shots.join(format!("{page}.png")).is_file(),
            "a screenshot of {page}"
        );
    }
    drop(daemon);
}

#[test]
fn the_console_signs_in_with_a_certificate_against_a_master_with_a_node() {
    let place = Place::new(25);
    let listen = format!("127.0.0.1:{}", free_port());
    let url = format!("https://{listen}");
    let (apart, master) = Apart::master(&place, &listen, &url);
    let node = apart.node(&apart.register("node-1", 2));
    let hello = example("hello");
    apart.client(&["supply", &hello, "node-1"]);
    let bundle = place.path().join("alice");
    let created = grove()
        .args(["user", "create", "alice", "--bundle"])
        .arg(&bundle)
        .env("GROVE_MASTER_URL", &url)
        .env("GROVE_TOKEN", &apart.admin)
        .env("GROVE_CA_CERT", &apart.ca)
        .output()
        .expect("runs");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    // Alice may place on the admin's node: it is shared.
    browse(&json!({
        "kind": "master",
        "https": true,
        "url": url,
        "certificate": bundle.join("alice.pem"),
        "key": bundle.join("alice.key"),
        "hello_release": hello,
        "computer": "node-1",
        "screenshots": screenshots("master"),
    }));
    let instances = apart.client(&["service", "list"]);
    let started = instances
        .as_array()
        .expect("array")
        .iter()
        .find(|i| i["title"] == "hello-on-node")
        .expect("alice's service");
    assert_eq!(started["reported_state"], "started");
    drop(node);
    master.stop();
}
