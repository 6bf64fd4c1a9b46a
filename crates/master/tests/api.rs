//! The master over real HTTP on loopback: the conformance suite of the store's rules,
//! each case run on a real SQLite file and on a real PostgreSQL database.

use std::time::Duration;

use grove_master::{MasterConfig, RunningMaster};
use grove_store::{Location, Policy};
use serde_json::{Value, json};

struct TestMaster {
    store: Option<Location>,
    placement: Policy,
    runtime: tokio::runtime::Runtime,
    master: Option<RunningMaster>,
    dir: tempfile::TempDir,
    url: String,
    admin: String,
    agent: ureq::Agent,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

impl TestMaster {
    /// A master on `backend` (a fresh database for PostgreSQL).
    fn start(backend: Backend, placement: Policy) -> TestMaster {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(
                tokio::runtime::Runtime::new()
                    .expect("runtime")
                    .block_on(grove_store::scratch::database())
                    .unwrap_or_else(|e| panic!("this suite runs on PostgreSQL too: {e}")),
            ),
        };
        TestMaster::start_in(dir, store, placement)
    }

    fn start_in(dir: tempfile::TempDir, store: Option<Location>, placement: Policy) -> TestMaster {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let mut config =
            MasterConfig::new("127.0.0.1:0".parse().expect("addr"), dir.path().to_owned());
        config.store = store.clone();
        config.placement = placement;
        let master = runtime
            .block_on(grove_master::start(&config))
            .expect("master starts");
        let admin = std::fs::read_to_string(&master.admin_token_path)
            .expect("admin token")
            .trim()
            .to_owned();
        let url = master.url();
        TestMaster {
            store,
            placement,
            runtime,
            master: Some(master),
            dir,
            url,
            admin,
            agent: agent(),
        }
    }

    fn restart(mut self) -> TestMaster {
        if let Some(master) = self.master.take() {
            self.runtime.block_on(master.stop());
        }
        let TestMaster {
            runtime,
            dir,
            store,
            placement,
            ..
        } = self;
        drop(runtime);
        TestMaster::start_in(dir, store, placement)
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        let auth = token.map(|t| format!("Bearer {t}"));
        let response = match (method, body) {
            ("GET", _) => {
                let mut req = self.agent.get(&url);
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.call()
            }
            (_, body) => {
                let text = body.map(Value::to_string).unwrap_or_default();
                let mut req = match method {
                    "POST" => self.agent.post(&url),
                    "PUT" => self.agent.put(&url),
                    other => panic!("method {other}"),
                };
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.header("Content-Type", "application/json").send(text)
            }
        };
        let mut response = response.expect("the master answers");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("JSON body")
        };
        (status, json)
    }

    fn ok(&self, method: &str, path: &str, token: &str, body: Option<&Value>) -> Value {
        let (status, json) = self.call(method, path, Some(token), body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {json}"
        );
        json
    }

    fn user(&self, name: &str) -> String {
        let created = self.ok(
            "POST",
            "/v1/users",
            &self.admin,
            Some(&json!({"name": name})),
        );
        created["token"].as_str().expect("token").to_owned()
    }

    /// Registers a computer owned by `owner`, declares `partitions` partitions and supplies
    /// `software` to it; returns the node's token.
    fn computer(&self, owner: &str, reference: &str, partitions: usize, software: &str) -> String {
        let created = self.ok(
            "POST",
            "/v1/computers",
            owner,
            Some(&json!({"reference": reference})),
        );
        let node = created["token"].as_str().expect("token").to_owned();
        let declared: Vec<Value> = (0..partitions)
            .map(|i| json!({"reference": format!("slappart{i}"), "addresses": [format!("127.0.1.{}", i + 1)]}))
            .collect();
        self.ok(
            "PUT",
            &format!("/v1/computers/{reference}/partitions"),
            &node,
            Some(&json!(declared)),
        );
        self.ok(
            "POST",
            &format!("/v1/computers/{reference}/supply"),
            owner,
            Some(&json!({"software_release": software})),
        );
        node
    }

    /// The token of the instance in partition `index` of computer `reference`, as its
    /// node reads it.
    fn partition_token(&self, node: &str, reference: &str, index: usize) -> String {
        self.desired(node, reference)["partitions"][index]["instance"]["token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    fn desired(&self, node: &str, reference: &str) -> Value {
        self.ok(
            "GET",
            &format!("/v1/computers/{reference}/desired"),
            node,
            None,
        )
    }
}

const SR: &str = "https://example.test/hello/software.cfg";

fn request(title: &str, params: Value) -> Value {
    json!({"title": title, "software_release": SR, "parameters": params})
}

fn requesting_again_updates_in_place(t: TestMaster) {
    let alice = t.user("alice");
    t.computer(&alice, "COMP-1", 2, SR);
    let first = t.ok(
        "POST",
        "/v1/instances",
        &alice,
        Some(&request("web", json!({"name": "a"}))),
    );
    assert_eq!(first["computer"], "COMP-1");
    assert_eq!(first["partition"], "slappart0");
    assert_eq!(first["software_type"], "default");
    assert_eq!(first["requested_state"], "started");
    let same = t.ok(
        "POST",
        "/v1/instances",
        &alice,
        Some(&request("web", json!({"name": "a"}))),
    );
    assert_eq!(same["id"], first["id"]);
    assert_eq!(
        same["timestamp"], first["timestamp"],
        "nothing changed, no new timestamp"
    );
    let changed = t.ok(
        "POST",
        "/v1/instances",
        &alice,
        Some(&request("web", json!({"name": "b"}))),
    );
    assert_eq!(changed["id"], first["id"]);
    assert_eq!(changed["partition"], "slappart0");
    assert!(changed["timestamp"].as_i64() > first["timestamp"].as_i64());
    assert_eq!(changed["parameters"], json!({"name": "b"}));
    // Another user's instance of the same title is another instance.
    let bob = t.user("bob");
    let (status, body) = t.call(
        "POST",
        "/v1/instances",
        Some(&bob),
        Some(&request("web", json!({}))),
    );
    assert_eq!(status, 503, "bob has no computer with the software: {body}");
}

fn allocation_fills_partitions_then_answers_no_capacity(t: TestMaster) {
    let alice = t.user("alice");
    let node = t.computer(&alice, "COMP-1", 2, SR);
    t.ok(
        "POST",
        "/v1/computers/COMP-1/supply",
        &alice,
        Some(&json!({"software_release": "other.cfg"})),
    );
    let a = t.ok(
        "POST",
        "/v1/instances",
        &alice,
        Some(&request("a", json!({}))),
    );
    let b = t.ok(
        "POST",
        "/v1/instances",
        &alice,
        Some(&request("b", json!({}))),
    );
    assert_eq!(
        (a["partition"].as_str(), b["partition"].as_str()),
        (Some("slappart0"), Some("slappart1"))
    );
    let (status, body) = t.call(
        "POST",
        "/v1/instances",
        Some(&alice),
        Some(&request("c", json!({}))),
    );
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "no_capacity");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains(SR),
        "{body}"
    );
    // An SLA naming another computer finds nothing either.
    let mut pinned = request("d", json!({}));
    pinned["sla"] = json!({"computer_guid": "COMP-2"});
    let (status, _) = t.call("POST", "/v1/instances", Some(&alice), Some(&pinned));
    assert_eq!(status, 503);

    // Destroying frees the partition only once the node reports it destroyed.
    let mut destroy = request("a", json!({}));
    destroy["state"] = json!("destroyed");
    t.ok("POST", "/v1/instances", &alice, Some(&destroy));
    let (status, _) = t.call(
        "POST",
        "/v1/instances",
        Some(&alice),
        Some(&request("c", json!({}))),
    );
    assert_eq!(status, 503, "slappart0 is still being destroyed");
    let id = a["id"].as_i64().expect("id");
    t.ok(
        "PUT",
        &format!("/v1/instances/{id}/state"),
        &node,
        Some(&json!({"state": "destroyed"})),
    );
    let c = t.ok(
        "POST",
        "/v1/instances",
        &alice,
        Some(&request("c", json!({}))),
    );
    assert_eq!(c["partition"], "slappart0", "the freed partition is reused");
}

/// The entry of release `url` in a list of software (every computer also lists the
/// built-in release of Roboconf root instances).
fn release<'v>(software: &'v Value, url: &str) -> &'v Value {
    software
        .as_array()
        .and_then(|all| all.iter().find(|s| s["software_release"] == url))
        .unwrap_or(&Value::Null)
}

fn supply_and_remove_follow_the_node_reports(t: TestMaster) {
    let alice = t.user("alice");
    let node = t.computer(&alice, "COMP-1", 1, SR);
    let desired = t.desired(&node, "COMP-1");
    assert_eq!(
        release(&desired["software"], SR)["requested_state"],
        "available"
    );
    t.ok(
        "PUT",
        "/v1/computers/COMP-1/software",
        &node,
        Some(&json!({"software_release": SR, "state": "building"})),
    );
    t.ok(
        "PUT",
        "/v1/computers/COMP-1/software",
        &node,
        Some(
            &json!({"software_release": SR, "state": "error", "error": "make: *** [all] Error 2"}),
        ),
    );
    let computer = t.ok("GET", "/v1/computers/COMP-1", &alice, None);
    assert_eq!(
        release(&computer["software"], SR)["reported_state"],
        "error"
    );
    assert_eq!(
        release(&computer["software"], SR)["error"],
        "make: *** [all] Error 2"
    );
    t.ok(
        "POST",
        "/v1/computers/COMP-1/supply",
        &alice,
        Some(&json!({"software_release": SR, "state": "destroyed"})),
    );
    assert_eq!(
        release(&t.desired(&node, "COMP-1")["software"], SR)["requested_state"],
        "destroyed"
    );
    t.ok(
        "PUT",
        "/v1/computers/COMP-1/software",
        &node,
        Some(&json!({"software_release": SR, "state": "destroyed"})),
    );
    assert_eq!(
        release(&t.desired(&node, "COMP-1")["software"], SR),
        &Value::Null
    );
    let (status, _) = t.call(
        "PUT",
        "/v1/computers/COMP-1/software",
        Some(&node),
        Some(&json!({"software_release": "never-supplied", "state": "available"})),
    );
    assert_eq!(status, 404);
}

fn shared_instances_attach_to_a_host_which_publishes_for_them(t: TestMaster) {
    let alice = t.user("alice");
    let node = t.computer(&alice, "COMP-1", 1, SR);
    let mut shared = request("site", json!({"domain": "a.example"}));
    shared["shared"] = json!(true);
    let (status, body) = t.call("POST", "/v1/instances", Some(&alice), Some(&shared));
    assert_eq!(status, 503, "no host yet: {body}");
    let host = t.ok(
        "POST",
        "/v1/instances",
        &alice,
        Some(&request("frontend", json!({}))),
    );
    let site = t.ok("POST", "/v1/instances", &alice, Some(&shared));
    assert_eq!(site["host_instance"], host["id"]);
    assert_eq!(site["partition"], "slappart0");
    let desired = t.desired(&node, "COMP-1");
    let partition = &desired["partitions"][0]["instance"];
    assert_eq!(partition["shared_instances"][0]["title"], "site");
    assert_eq!(
        partition["shared_instances"][0]["parameters"],
        json!({"domain": "a.example"})
    );
    let host_token = partition["token"]
        .as_str()
        .expect("partition token")
        .to_owned();
    let host_id = host["id"].as_i64().expect("id");
    let site_id = site["id"].as_i64().expect("id");
    t.ok(
        "PUT",
        &format!("/v1/instances/{host_id}/connection"),
        &host_token,
        Some(&json!({"parameters": {"url": "https://a.example"}, "shared_instance": site_id})),
    );
    let site = t.ok("GET", &format!("/v1/instances/{site_id}"), &alice, None);
    assert_eq!(site["connection"], json!({"url": "https://a.example"}));
}

fn children_follow_their_root_and_are_collected(t: TestMaster) {
    let alice = t.user("alice");
    let node = t.computer(&alice, "COMP-1", 3, SR);
    let root = t.ok(
        "POST",
        "/v1/instances",
        &alice,
        Some(&request("app", json!({}))),
    );
    let root_id = root["id"].as_i64().expect("id");
    let token = t.partition_token(&node, "COMP-1", 0);
    let child = t.ok(
        "POST",
        "/v1/instances",
        &token,
        Some(&request("db", json!({"size": 1}))),
    );
    assert_eq!(child["parent"], root["id"]);
    assert_eq!(child["root"], root["id"]);
    assert_eq!(child["partition"], "slappart1");
    // The child publishes; the parent reads it, and runs again (new timestamp).
    let child_id = child["id"].as_i64().expect("id");
    let child_token = t.partition_token(&node, "COMP-1", 1);
    t.ok(
        "PUT",
        &format!("/v1/instances/{child_id}/connection"),
        &child_token,
        Some(&json!({"parameters": {"url": "redis://x"}})),
    );
    let seen = t.ok("GET", &format!("/v1/instances/{child_id}"), &token, None);
    assert_eq!(seen["connection"]["url"], "redis://x");
    let root_after = t.ok("GET", &format!("/v1/instances/{root_id}"), &alice, None);
    assert!(root_after["timestamp"].as_i64() > root["timestamp"].as_i64());

    // Stopping the root stops the child; a child requested while the root is stopped is
    // stopped too.
    let mut stop = request("app", json!({}));
    stop["state"] = json!("stopped");
    t.ok("POST", "/v1/instances", &alice, Some(&stop));
    assert_eq!(
        t.ok("GET", &format!("/v1/instances/{child_id}"), &alice, None)["requested_state"],
        "stopped"
    );
    let other = t.ok(
        "POST",
        "/v1/instances",
        &token,
        Some(&request("cache", json!({}))),
    );
    assert_eq!(other["requested_state"], "stopped");

    // The parent's last run requested only `db`: `cache` is destroyed.
    t.ok(
        "PUT",
        &format!("/v1/instances/{root_id}/children"),
        &token,
        Some(&json!({"titles": ["db"]})),
    );
    let other_id = other["id"].as_i64().expect("id");
    assert_eq!(
        t.ok("GET", &format!("/v1/instances/{other_id}"), &alice, None)["requested_state"],
        "destroyed"
    );
    assert_eq!(
        t.ok("GET", &format!("/v1/instances/{child_id}"), &alice, None)["requested_state"],
        "stopped"
    );
}

/// A ConPaaS service's manager publishing wakes the application's other services once
/// (a web service learns its database's address); publishing the same again does not.
/// An agent's reported state, when it changes, wakes its manager.
fn a_conpaas_service_publishing_wakes_its_siblings(t: TestMaster) {
    let alice = t.user("alice");
    let node = t.computer(&alice, "COMP-1", 3, SR);
    let manifest = json!({"Application": "shop", "Services": [
        {"Type": "mysql", "ServiceName": "db"},
        {"Type": "php", "ServiceName": "web"},
    ]});
    let view = t.ok("POST", "/v1/apps", &alice, Some(&manifest));
    let (db, web) = (&view["roots"]["db"], &view["roots"]["web"]);
    let show = |id: &Value| t.ok("GET", &format!("/v1/instances/{id}"), &alice, None);
    let db_partition = show(db)["partition"].as_str().expect("placed").to_owned();
    let index: usize = db_partition
        .trim_start_matches("slappart")
        .parse()
        .expect("slappartN");
    let token = t.partition_token(&node, "COMP-1", index);
    let before = show(web)["timestamp"].as_i64();
    let publish = json!({"parameters": {"address": "10.0.0.2:3306"}});
    t.ok(
        "PUT",
        &format!("/v1/instances/{db}/connection"),
        &token,
        Some(&publish),
    );
    let woken = show(web)["timestamp"].as_i64();
    assert!(woken > before, "the web service runs again");
    t.ok(
        "PUT",
        &format!("/v1/instances/{db}/connection"),
        &token,
        Some(&publish),
    );
    assert_eq!(
        show(web)["timestamp"].as_i64(),
        woken,
        "nothing new, no wake"
    );

    // An agent's report wakes its manager when its state changes, not otherwise.
    let agent = t.ok(
        "POST",
        "/v1/instances",
        &token,
        Some(&request("mysql-1", json!({}))),
    );
    let agent_id = &agent["id"];
    let report = json!({"state": "started"});
    let before = show(db)["timestamp"].as_i64();
    t.ok(
        "PUT",
        &format!("/v1/instances/{agent_id}/state"),
        &node,
        Some(&report),
    );
    let after = show(db)["timestamp"].as_i64();
    assert!(after > before, "the manager runs again");
    t.ok(
        "PUT",
        &format!("/v1/instances/{agent_id}/state"),
        &node,
        Some(&report),
    );
    assert_eq!(
        show(db)["timestamp"].as_i64(),
        after,
        "the same state, no wake"
    );
}

/// `/metrics`, the admin's: requests by operation and status, their durations, placement
/// outcomes, the store writer's batches, in Prometheus's text format.
fn metrics_count_requests_placements_and_batches(t: TestMaster) {
    let alice = t.user("alice");
    t.computer(&alice, "COMP-1", 1, SR);
    t.ok(
        "POST",
        "/v1/instances",
        &alice,
        Some(&request("one", json!({}))),
    );
    let (status, _) = t.call(
        "POST",
        "/v1/instances",
        Some(&alice),
        Some(&request("two", json!({}))),
    );
    assert_eq!(status, 503, "no partition left");
    let scrape = |token: Option<&str>| {
        let mut req = t.agent.get(&format!("{}/metrics", t.url));
        if let Some(token) = token {
            req = req.header("Authorization", &format!("Bearer {token}"));
        }
        let mut response = req.call().expect("answers");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (
            status,
            content_type,
            response.body_mut().read_to_string().unwrap_or_default(),
        )
    };
    assert_eq!(scrape(None).0, 401);
    assert_eq!(scrape(Some(&alice)).0, 403);
    let (status, content_type, text) = scrape(Some(&t.admin));
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    for line in [
        "grove_master_requests_total{operation=\"requestInstance\",status=\"200\"} 1",
        "grove_master_requests_total{operation=\"requestInstance\",status=\"503\"} 1",
        "grove_master_request_duration_seconds_count{operation=\"requestInstance\"} 2",
        "grove_master_placements_total{outcome=\"placed\"} 1",
        "grove_master_placements_total{outcome=\"no_capacity\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    let batches: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("grove_store_batch_size_count "))
        .and_then(|n| n.parse().ok())
        .expect("batches counted");
    assert!(batches >= 3, "{text}");
}

fn the_change_stream_wakes_a_waiting_node(t: TestMaster) {
    let alice = t.user("alice");
    let node = t.computer(&alice, "COMP-1", 1, SR);
    let revision = t.desired(&node, "COMP-1")["revision"]
        .as_i64()
        .expect("revision");
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            t.ok(
                "GET",
                &format!("/v1/computers/COMP-1/desired?after={revision}&wait=30"),
                &node,
                None,
            )
        });
        std::thread::sleep(Duration::from_millis(200));
        t.ok(
            "POST",
            "/v1/instances",
            &alice,
            Some(&request("web", json!({}))),
        );
        let woken = waiter.join().expect("waiter");
        assert!(woken["revision"].as_i64() > Some(revision));
        assert_eq!(woken["partitions"][0]["instance"]["title"], "web");
    });
    // With nothing new, a short wait answers with the same revision.
    let now = t.desired(&node, "COMP-1")["revision"]
        .as_i64()
        .expect("revision");
    let same = t.ok(
        "GET",
        &format!("/v1/computers/COMP-1/desired?after={now}&wait=1"),
        &node,
        None,
    );
    assert_eq!(same["revision"].as_i64(), Some(now));
}

fn a_restart_keeps_everything(t: TestMaster) {
    let alice = t.user("alice");
    let node = t.computer(&alice, "COMP-1", 1, SR);
    let web = t.ok(
        "POST",
        "/v1/instances",
        &alice,
        Some(&request("web", json!({"name": "x"}))),
    );
    let admin = t.admin.clone();
    let t = t.restart();
    assert_eq!(t.admin, admin, "the admin token file is kept");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(t.dir.path().join("admin.token"))
        .expect("file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the admin token is private");
    let again = t.ok("GET", &format!("/v1/instances/{}", web["id"]), &alice, None);
    assert_eq!(again, web);
    let desired = t.desired(&node, "COMP-1");
    let token = desired["partitions"][0]["instance"]["token"]
        .as_str()
        .expect("token");
    t.ok("GET", &format!("/v1/instances/{}", web["id"]), token, None);
}

fn malformed_and_oversized_requests_are_refused_with_json(t: TestMaster) {
    let alice = t.user("alice");
    t.computer(&alice, "COMP-1", 1, SR);
    let mut bad_state = request("web", json!({}));
    bad_state["state"] = json!("running");
    let (status, body) = t.call("POST", "/v1/instances", Some(&alice), Some(&bad_state));
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "bad_request");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("started") && message.contains("stopped") && message.contains("destroyed"),
        "{message}"
    );
    let (status, body) = t.call(
        "POST",
        "/v1/instances",
        Some(&alice),
        Some(&json!({"title": "x"})),
    );
    assert_eq!(status, 400, "{body}");
    let mut unknown = request("web", json!({}));
    unknown["colour"] = json!("blue");
    let (status, body) = t.call("POST", "/v1/instances", Some(&alice), Some(&unknown));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let mut bad_sla = request("web", json!({}));
    bad_sla["sla"] = json!({"flavour": "large"});
    let (status, body) = t.call("POST", "/v1/instances", Some(&alice), Some(&bad_sla));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("no_capacity")),
        "an sla key=value is a label no computer has"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("no computer with label flavour=large"),
        "{body}"
    );
    bad_sla["sla"] = json!({"": "large"});
    let (status, body) = t.call("POST", "/v1/instances", Some(&alice), Some(&bad_sla));
    assert_eq!(status, 400, "{body}");
    // The master answers 413 as soon as the body passes the limit and closes the
    // connection; a client still sending may see the reset before the answer.
    let huge = request("web", json!({"blob": "x".repeat(2 * 1024 * 1024)}));
    // Its own client: the master closes this connection, which must not be reused.
    let sent = agent()
        .post(format!("{}/v1/instances", t.url))
        .header("Authorization", &format!("Bearer {alice}"))
        .header("Content-Type", "application/json")
        .send(huge.to_string());
    match sent {
        Ok(mut response) => {
            assert_eq!(response.status().as_u16(), 413);
            let body: Value =
                serde_json::from_str(&response.body_mut().read_to_string().expect("body"))
                    .expect("JSON");
            assert_eq!(body["error"]["code"], "payload_too_large");
        }
        Err(ureq::Error::Io(e)) => {
            let reset = matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            );
            assert!(reset, "refused by closing the connection, not {e}");
        }
        Err(e) => panic!("unexpected client error {e}"),
    }
    let (status, body) = t.call(
        "POST",
        "/v1/computers",
        Some(&alice),
        Some(&json!({"reference": "../etc"})),
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = t.call("GET", "/v1/nothing", Some(&alice), None);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let mut control = request("web", json!({}));
    control["software_type"] = json!("default\u{1b}[31m");
    let (status, body) = t.call("POST", "/v1/instances", Some(&alice), Some(&control));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .starts_with("software_type:"),
        "{body}"
    );
    for id in ["99999999999999999999", "-3", "x"] {
        let (status, body) = t.call("GET", &format!("/v1/instances/{id}"), Some(&alice), None);
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{id}: {body}"
        );
    }
    let node = t.computer(&alice, "COMP-2", 1, SR);
    let (status, body) = t.call(
        "PUT",
        "/v1/computers/COMP-2/partitions",
        Some(&node),
        Some(&json!([{"reference": "slappart0", "addresses": ["127.0.0.1; rm -rf /"]}])),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("not an IP address"),
        "{body}"
    );
    // Nothing stored was lost.
    assert_eq!(t.ok("GET", "/v1/instances", &alice, None), json!([]));
}

/// Every principal against every endpoint: allowed ones succeed, the others get 401/403.
fn authorization_matrix(t: TestMaster) {
    let alice = t.user("alice");
    let bob = t.user("bob");
    let node_a = t.computer(&alice, "COMP-A", 2, SR);
    let node_b = t.computer(&bob, "COMP-B", 2, SR);
    let web = t.ok(
        "POST",
        "/v1/instances",
        &alice,
        Some(&request("web", json!({}))),
    );
    let web_id = web["id"].as_i64().expect("id");
    let part_a = t.partition_token(&node_a, "COMP-A", 0);
    let bobs = t.ok(
        "POST",
        "/v1/instances",
        &bob,
        Some(&request("web", json!({}))),
    );
    let bobs_id = bobs["id"].as_i64().expect("id");
    let part_b = t.partition_token(&node_b, "COMP-B", 0);
    let forged = format!("g1.p.{web_id}.{}", "0".repeat(64));

    let admin = t.admin.clone();
    let who: Vec<(&str, Option<&str>)> = vec![
        ("anonymous", None),
        ("garbage", Some("not-a-token")),
        ("forged partition", Some(&forged)),
        ("admin", Some(&admin)),
        ("alice", Some(&alice)),
        ("bob", Some(&bob)),
        ("node A", Some(&node_a)),
        ("node B", Some(&node_b)),
        ("partition A", Some(&part_a)),
        ("partition B", Some(&part_b)),
    ];
    let user = json!({"name": "carol"});
    let report = json!({"state": "started"});
    let publish = json!({"parameters": {"url": "http://x"}});
    let children = json!({"titles": []});
    let supply = json!({"software_release": SR});
    let software = json!({"software_release": SR, "state": "available"});
    let declare = json!([{"reference": "slappart0"}]);
    let labels = json!({"labels": {"zone": "eu-1"}});
    let child = request("child", json!({}));
    // (method, path, body, who may)
    let endpoints: Vec<(&str, String, Option<&Value>, &[&str])> = vec![
        ("POST", "/v1/users".into(), Some(&user), &["admin"]),
        (
            "GET",
            "/v1/computers".into(),
            None,
            &["admin", "alice", "bob"],
        ),
        (
            "GET",
            "/v1/computers/COMP-A".into(),
            None,
            &["admin", "alice", "node A"],
        ),
        (
            "PUT",
            "/v1/computers/COMP-A/partitions".into(),
            Some(&declare),
            &["node A"],
        ),
        (
            "PUT",
            "/v1/computers/COMP-A/labels".into(),
            Some(&labels),
            &["admin"],
        ),
        (
            "POST",
            "/v1/computers/COMP-A/supply".into(),
            Some(&supply),
            &["admin", "alice"],
        ),
        (
            "PUT",
            "/v1/computers/COMP-A/software".into(),
            Some(&software),
            &["node A"],
        ),
        (
            "GET",
            "/v1/computers/COMP-A/desired".into(),
            None,
            &["node A"],
        ),
        (
            "GET",
            "/v1/instances".into(),
            None,
            &["admin", "alice", "bob"],
        ),
        (
            "GET",
            format!("/v1/instances/{web_id}"),
            None,
            &["admin", "alice", "node A", "partition A"],
        ),
        (
            "PUT",
            format!("/v1/instances/{web_id}/state"),
            Some(&report),
            &["node A"],
        ),
        (
            "PUT",
            format!("/v1/instances/{web_id}/connection"),
            Some(&publish),
            &["node A", "partition A"],
        ),
        (
            "PUT",
            format!("/v1/instances/{web_id}/children"),
            Some(&children),
            &["node A", "partition A"],
        ),
        (
            "GET",
            format!("/v1/instances/{bobs_id}"),
            None,
            &["admin", "bob", "node B", "partition B"],
        ),
        (
            "POST",
            "/v1/instances".into(),
            Some(&child),
            &["admin", "alice", "bob", "partition A", "partition B"],
        ),
    ];
    let mut failures = Vec::new();
    for (method, path, body, allowed) in &endpoints {
        for (name, token) in &who {
            let (status, reply) = t.call(method, path, *token, *body);
            let expect_ok = allowed.contains(name);
            let fine = if expect_ok {
                (200..300).contains(&status) || status == 503 || status == 409
            } else {
                (status == 401 || status == 403) && reply["error"]["code"].is_string()
            };
            if !fine {
                failures.push(format!("{name} {method} {path}: {status} {reply}"));
            }
            let anonymous = token.is_none() || *name == "garbage" || *name == "forged partition";
            if anonymous && status != 401 {
                failures.push(format!(
                    "{name} {method} {path}: expected 401, got {status}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn usage_is_kept_per_instance(t: TestMaster) {
    let alice = t.user("alice");
    let bob = t.user("bob");
    let node = t.computer(&alice, "COMP-1", 2, SR);
    let web = t.ok(
        "POST",
        "/v1/instances",
        &alice,
        Some(&request("web", json!({}))),
    );
    let id = web["id"].as_i64().expect("id");
    // Measured a minute apart (the node says when); the first one sent again counts once.
    let report = json!({"at": 1_790_000_000, "partitions": [
        {"reference": "slappart0", "cpu_seconds": 1.5, "memory_bytes": 1_048_576},
        {"reference": "slappart1", "cpu_seconds": 0.0, "memory_bytes": 0},
    ]});
    t.ok("POST", "/v1/computers/COMP-1/usage", &node, Some(&report));
    let later = json!({"at": 1_790_000_060, "partitions": [{"reference": "slappart0", "cpu_seconds": 2.5, "memory_bytes": 2_097_152}]});
    t.ok("POST", "/v1/computers/COMP-1/usage", &node, Some(&later));
    t.ok("POST", "/v1/computers/COMP-1/usage", &node, Some(&report));
    // A time no clock measured is refused, and the store goes on.
    for at in [json!(-1), json!(i64::MAX), json!(4_000_000_000_i64)] {
        let wrong = json!({"at": at, "partitions": [
            {"reference": "slappart0", "cpu_seconds": 3.0, "memory_bytes": 1}
        ]});
        let (status, body) = t.call(
            "POST",
            "/v1/computers/COMP-1/usage",
            Some(&node),
            Some(&wrong),
        );
        assert_eq!(status, 400, "{at}: {body}");
    }
    t.ok("POST", "/v1/computers/COMP-1/usage", &node, Some(&later));
    let samples = t.ok("GET", &format!("/v1/instances/{id}/usage"), &alice, None);
    let samples = samples.as_array().expect("list");
    assert_eq!(samples.len(), 2);
    assert_eq!(samples[0]["cpu_seconds"], 2.5);
    assert_eq!(samples[0]["memory_bytes"], 2_097_152);
    assert_eq!(samples[0]["partition"], "slappart0");
    assert_eq!(samples[1]["cpu_seconds"], 1.5);
    let (status, _) = t.call(
        "GET",
        &format!("/v1/instances/{id}/usage"),
        Some(&bob),
        None,
    );
    assert_eq!(status, 403);
    let unknown =
        json!({"partitions": [{"reference": "slappart9", "cpu_seconds": 1.0, "memory_bytes": 1}]});
    let (status, _) = t.call(
        "POST",
        "/v1/computers/COMP-1/usage",
        Some(&node),
        Some(&unknown),
    );
    assert_eq!(status, 404);
    let (status, _) = t.call(
        "POST",
        "/v1/computers/COMP-1/usage",
        Some(&alice),
        Some(&report),
    );
    assert_eq!(status, 403, "only the node reports usage");
}

/// Capacity is tracked whatever the order of supply and format, and across full computers
/// and freed partitions.
fn capacity_follows_supply_format_and_frees(t: TestMaster) {
    let alice = t.user("alice");
    let created = t.ok(
        "POST",
        "/v1/computers",
        &alice,
        Some(&json!({"reference": "LATE"})),
    );
    let node = created["token"].as_str().expect("token").to_owned();
    t.ok(
        "POST",
        "/v1/computers/LATE/supply",
        &alice,
        Some(&json!({"software_release": SR})),
    );
    let (status, _) = t.call(
        "POST",
        "/v1/instances",
        Some(&alice),
        Some(&request("a", json!({}))),
    );
    assert_eq!(status, 503, "no partition declared yet");
    t.ok(
        "PUT",
        "/v1/computers/LATE/partitions",
        &node,
        Some(&json!([{"reference": "slappart0"}])),
    );
    let a = t.ok(
        "POST",
        "/v1/instances",
        &alice,
        Some(&request("a", json!({}))),
    );
    assert_eq!(a["computer"], "LATE");
    // Full: a second computer takes the next one; a later supply elsewhere counts too.
    let other = t.computer(&alice, "NEXT", 1, "other.cfg");
    let (status, _) = t.call(
        "POST",
        "/v1/instances",
        Some(&alice),
        Some(&request("b", json!({}))),
    );
    assert_eq!(status, 503);
    t.ok(
        "POST",
        "/v1/computers/NEXT/supply",
        &alice,
        Some(&json!({"software_release": SR})),
    );
    let b = t.ok(
        "POST",
        "/v1/instances",
        &alice,
        Some(&request("b", json!({}))),
    );
    assert_eq!(b["computer"], "NEXT");
    // Removing the supply takes the computer out of the candidates.
    let mut gone = request("b", json!({}));
    gone["state"] = json!("destroyed");
    t.ok("POST", "/v1/instances", &alice, Some(&gone));
    let id = b["id"].as_i64().expect("id");
    t.ok(
        "PUT",
        &format!("/v1/instances/{id}/state"),
        &other,
        Some(&json!({"state": "destroyed"})),
    );
    t.ok(
        "POST",
        "/v1/computers/NEXT/supply",
        &alice,
        Some(&json!({"software_release": SR, "state": "destroyed"})),
    );
    let (status, _) = t.call(
        "POST",
        "/v1/instances",
        Some(&alice),
        Some(&request("c", json!({}))),
    );
    assert_eq!(
        status, 503,
        "NEXT has a free partition but no longer the software"
    );
    t.ok(
        "POST",
        "/v1/computers/NEXT/supply",
        &alice,
        Some(&json!({"software_release": SR})),
    );
    let c = t.ok(
        "POST",
        "/v1/instances",
        &alice,
        Some(&request("c", json!({}))),
    );
    assert_eq!(
        (c["computer"].as_str(), c["partition"].as_str()),
        (Some("NEXT"), Some("slappart0"))
    );
}

/// Concurrent requests share transactions: the ones that find no capacity fail alone.
fn concurrent_requests_fail_alone(t: TestMaster) {
    let alice = t.user("alice");
    t.computer(&alice, "COMP-1", 5, SR);
    let outcomes = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for worker in 0..8 {
            let (t, alice, outcomes) = (&t, &alice, &outcomes);
            scope.spawn(move || {
                for i in 0..2 {
                    let title = format!("w{worker}-{i}");
                    let (status, body) = t.call(
                        "POST",
                        "/v1/instances",
                        Some(alice),
                        Some(&request(&title, json!({}))),
                    );
                    outcomes.lock().expect("lock").push((title, status, body));
                }
            });
        }
    });
    let outcomes = outcomes.into_inner().expect("lock");
    let placed: Vec<&Value> = outcomes
        .iter()
        .filter(|(_, s, _)| *s == 200)
        .map(|(_, _, b)| b)
        .collect();
    let refused = outcomes
        .iter()
        .filter(|(_, s, b)| *s == 503 && b["error"]["code"] == "no_capacity")
        .count();
    assert_eq!((placed.len(), refused), (5, 11), "{outcomes:?}");
    let mut partitions: Vec<&str> = placed
        .iter()
        .filter_map(|b| b["partition"].as_str())
        .collect();
    partitions.sort_unstable();
    partitions.dedup();
    assert_eq!(
        partitions.len(),
        5,
        "each placed instance has its own partition"
    );
    let stored = t.ok("GET", "/v1/instances", &alice, None);
    assert_eq!(
        stored.as_array().map(Vec::len),
        Some(5),
        "refused requests left nothing behind"
    );
}

fn a_destroyed_instance_token_stops_working(t: TestMaster) {
    let alice = t.user("alice");
    let node = t.computer(&alice, "COMP-1", 2, SR);
    let web = t.ok(
        "POST",
        "/v1/instances",
        &alice,
        Some(&request("web", json!({}))),
    );
    let id = web["id"].as_i64().expect("id");
    let token = t.partition_token(&node, "COMP-1", 0);
    let path = format!("/v1/instances/{id}");
    let publish = json!({"parameters": {"url": "http://x"}});
    let (status, _) = t.call("GET", &path, Some(&token), None);
    assert_eq!(status, 200);
    let mut destroyed = request("web", json!({}));
    destroyed["state"] = json!("destroyed");
    t.ok("POST", "/v1/instances", &alice, Some(&destroyed));
    for (method, path, body) in [
        ("GET", path.clone(), None),
        ("PUT", format!("{path}/connection"), Some(&publish)),
        (
            "POST",
            "/v1/instances".to_owned(),
            Some(&request("child", json!({}))),
        ),
    ] {
        let (status, reply) = t.call(method, &path, Some(&token), body);
        assert_eq!(status, 401, "{method} {path}: {reply}");
        assert_eq!(reply["error"]["code"], "unauthorized", "{reply}");
    }
}

fn computers_carry_labels_set_at_registration_and_by_the_admin(t: TestMaster) {
    let alice = t.user("alice");
    t.ok(
        "POST",
        "/v1/computers",
        &alice,
        Some(&json!({"reference": "COMP-1", "labels": {"zone": "eu-1", "disk": "ssd"}})),
    );
    let computer = t.ok("GET", "/v1/computers/COMP-1", &alice, None);
    assert_eq!(computer["labels"], json!({"zone": "eu-1", "disk": "ssd"}));
    // Computers registered without labels have none.
    t.ok(
        "POST",
        "/v1/computers",
        &alice,
        Some(&json!({"reference": "COMP-2"})),
    );
    assert_eq!(
        t.ok("GET", "/v1/computers/COMP-2", &alice, None)["labels"],
        json!({})
    );
    // The admin replaces them whole.
    let admin = t.admin.clone();
    let (status, _) = t.call(
        "PUT",
        "/v1/computers/COMP-1/labels",
        Some(&admin),
        Some(&json!({"labels": {"zone": "eu-2"}})),
    );
    assert_eq!(status, 204);
    let listed = t.ok("GET", "/v1/computers", &alice, None);
    assert_eq!(listed[0]["labels"], json!({"zone": "eu-2"}));
    // Bad labels are refused, at registration and later, and nothing changes.
    for (method, path, body) in [
        (
            "POST",
            "/v1/computers",
            json!({"reference": "COMP-3", "labels": {"bad key": "x"}}),
        ),
        (
            "PUT",
            "/v1/computers/COMP-1/labels",
            json!({"labels": {"zone": "a\u{7}b"}}),
        ),
        (
            "PUT",
            "/v1/computers/COMP-1/labels",
            json!({"labels": {"-zone": "x"}}),
        ),
    ] {
        let (status, reply) = t.call(method, path, Some(&admin), Some(&body));
        assert_eq!(
            (status, reply["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{body}: {reply}"
        );
    }
    assert_eq!(
        t.ok("GET", "/v1/computers/COMP-1", &alice, None)["labels"],
        json!({"zone": "eu-2"})
    );
    let (status, _) = t.call("GET", "/v1/computers/COMP-3", Some(&admin), None);
    assert_eq!(status, 404);
}

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Every case on both backends: `sqlite::NAME` and `postgres::NAME`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$name(super::TestMaster::start(super::Backend::Sqlite, super::Policy::Simple));
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                super::$name(super::TestMaster::start(super::Backend::Postgres, super::Policy::Simple));
            })*
        }
    };
}

on_both_backends!(
    requesting_again_updates_in_place,
    allocation_fills_partitions_then_answers_no_capacity,
    supply_and_remove_follow_the_node_reports,
    shared_instances_attach_to_a_host_which_publishes_for_them,
    children_follow_their_root_and_are_collected,
    a_conpaas_service_publishing_wakes_its_siblings,
    metrics_count_requests_placements_and_batches,
    the_change_stream_wakes_a_waiting_node,
    a_restart_keeps_everything,
    malformed_and_oversized_requests_are_refused_with_json,
    authorization_matrix,
    usage_is_kept_per_instance,
    capacity_follows_supply_format_and_frees,
    concurrent_requests_fail_alone,
    a_destroyed_instance_token_stops_working,
    computers_carry_labels_set_at_registration_and_by_the_admin,
);

/// Where each policy puts instances, and how SLA labels narrow it: three shared computers
/// of three partitions (the admin's), requested by a user.
fn placement_follows_the_policy_and_the_sla(backend: Backend) {
    // (policy, computers the first four requests land on)
    let cases = [
        (Policy::Simple, ["A", "B", "C", "A"]),
        (Policy::Pack, ["A", "A", "A", "B"]),
        (Policy::Zone, ["A", "B", "C", "B"]),
    ];
    for (policy, expected) in cases {
        let t = TestMaster::start(backend, policy);
        let admin = t.admin.clone();
        for (reference, labels) in [
            ("A", json!({"zone": "eu-1"})),
            ("B", json!({"zone": "eu-2"})),
            ("C", json!({"zone": "eu-1", "gpu": "yes"})),
        ] {
            t.computer(&admin, reference, 3, SR);
            t.ok(
                "PUT",
                &format!("/v1/computers/{reference}/labels"),
                &admin,
                Some(&json!({ "labels": labels })),
            );
        }
        let alice = t.user("alice");
        let placed: Vec<String> = (0..4)
            .map(|i| {
                let instance = t.ok(
                    "POST",
                    "/v1/instances",
                    &alice,
                    Some(&request(&format!("i{i}"), json!({}))),
                );
                instance["computer"].as_str().expect("placed").to_owned()
            })
            .collect();
        assert_eq!(placed, expected, "{policy}");

        let with_sla = |title: &str, sla: Value| {
            let mut body = request(title, json!({}));
            body["sla"] = sla;
            t.call("POST", "/v1/instances", Some(&alice), Some(&body))
        };
        let (status, body) = with_sla("gpu", json!({"gpu": "yes"}));
        assert_eq!(
            (status, body["computer"].as_str()),
            (200, Some("C")),
            "{policy}: {body}"
        );
        let (status, body) = with_sla("eu-2", json!({"zone": "eu-2"}));
        assert_eq!(
            (status, body["computer"].as_str()),
            (200, Some("B")),
            "{policy}: {body}"
        );
        for (sla, message) in [
            (json!({"zone": "eu-9"}), "no computer with label zone=eu-9"),
            (
                json!({"computer_guid": "A", "gpu": "yes"}),
                "no computer with label gpu=yes",
            ),
            (
                json!({"computer_guid": "Z"}),
                "no computer \"Z\" this user may use",
            ),
        ] {
            let (status, body) = with_sla("nowhere", sla.clone());
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (503, Some("no_capacity")),
                "{policy} {sla}: {body}"
            );
            let text = body["error"]["message"].as_str().expect("message");
            assert!(text.contains(message), "{policy} {sla}: {text}");
        }
    }
}

#[test]
fn placement_on_sqlite() {
    placement_follows_the_policy_and_the_sla(Backend::Sqlite);
}

#[test]
fn placement_on_postgres() {
    placement_follows_the_policy_and_the_sla(Backend::Postgres);
}

/// A data directory an older Grove left has a `master.key` file: the store takes that key,
/// so the partition tokens already handed out keep working.
#[test]
fn a_legacy_master_key_file_is_taken_into_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = "k".repeat(64);
    std::fs::write(dir.path().join("master.key"), format!("{key}\n")).expect("key file");
    let t = TestMaster::start_in(dir, None, Policy::Simple);
    let alice = t.user("alice");
    let node = t.computer(&alice, "COMP-1", 1, SR);
    let web = t.ok(
        "POST",
        "/v1/instances",
        &alice,
        Some(&request("web", json!({}))),
    );
    let id = web["id"].as_i64().expect("id");
    let signed = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes()),
        format!("partition:{id}").as_bytes(),
    );
    let hex: String = signed.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let expected = format!("g1.p.{id}.{hex}");
    assert_eq!(t.partition_token(&node, "COMP-1", 0), expected);
    // The file is no longer needed: the key is in the store.
    std::fs::remove_file(t.dir.path().join("master.key")).expect("remove");
    let t = t.restart();
    assert_eq!(t.partition_token(&node, "COMP-1", 0), expected);
}

/// A SQLite store put elsewhere with `--store` is made 0600 like the default one, and a
/// master whose store is elsewhere (SQLite or PostgreSQL) leaves no `master.sqlite` in its
/// data directory.
#[test]
fn a_store_elsewhere_is_private_and_leaves_no_file_in_the_data_directory() {
    use std::os::unix::fs::PermissionsExt;
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let path = elsewhere.path().join("custom.sqlite");
    let postgres = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(grove_store::scratch::database())
        .unwrap_or_else(|e| panic!("this test runs on PostgreSQL too: {e}"));
    for store in [Location::Sqlite(path.clone()), postgres] {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = TestMaster::start_in(dir, Some(store.clone()), Policy::Simple);
        t.user("alice");
        assert!(
            !t.dir.path().join("master.sqlite").exists(),
            "{store}: no stray store in the data directory"
        );
    }
    let mode = std::fs::metadata(&path)
        .expect("store")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the store elsewhere is private");
}
