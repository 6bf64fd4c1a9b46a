//! `grove master` as a process: it comes up, and a `kill -9` in the middle of a burst of
//! concurrent requests loses none that it acknowledged, on SQLite and on PostgreSQL.

use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::free_port;

fn new_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn start(dir: &std::path::Path, port: u16, store: Option<&str>) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_grove"));
    command
        .args([
            "master",
            "--insecure-http",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir);
    if let Some(store) = store {
        command.args(["--store", store]);
    }
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("grove master starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    let agent = new_agent();
    while Instant::now() < deadline {
        if agent
            .get(format!("http://127.0.0.1:{port}/v1/health"))
            .call()
            .is_ok()
        {
            return child;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the master did not come up");
}

fn call(
    agent: &ureq::Agent,
    url: &str,
    token: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), ureq::Error> {
    let auth = format!("Bearer {token}");
    let mut response = match body {
        Some(b) => agent
            .post(url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(b.to_string())?,
        None => agent.get(url).header("Authorization", &auth).call()?,
    };
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string()?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

#[test]
fn kill_9_loses_no_acknowledged_request_on_sqlite() {
    kill_9_loses_no_acknowledged_request(None);
}

#[test]
fn kill_9_loses_no_acknowledged_request_on_postgres() {
    kill_9_loses_no_acknowledged_request(Some(&common::postgres_url()));
}

fn kill_9_loses_no_acknowledged_request(store: Option<&str>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut master = start(dir.path(), port, store);
    let admin = std::fs::read_to_string(dir.path().join("admin.token")).expect("admin token");
    let admin = admin.trim();
    let agent = new_agent();
    let (_, computer) = call(
        &agent,
        &format!("{base}/v1/computers"),
        admin,
        Some(&json!({"reference": "COMP-1"})),
    )
    .expect("register");
    let node = computer["token"].as_str().expect("node token").to_owned();
    let partitions: Vec<Value> = (0..2000)
        .map(|i| json!({"reference": format!("slappart{i}")}))
        .collect();
    let declared = agent
        .put(format!("{base}/v1/computers/COMP-1/partitions"))
        .header("Authorization", &format!("Bearer {node}"))
        .header("Content-Type", "application/json")
        .send(json!(partitions).to_string())
        .expect("declare");
    assert_eq!(declared.status().as_u16(), 204);
    let sr = "https://example.test/sr.cfg";
    call(
        &agent,
        &format!("{base}/v1/computers/COMP-1/supply"),
        admin,
        Some(&json!({"software_release": sr})),
    )
    .expect("supply");

    let acknowledged = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for worker in 0..8 {
            let acknowledged = &acknowledged;
            let base = &base;
            scope.spawn(move || {
                let agent = new_agent();
                for i in 0.. {
                    let title = format!("w{worker}-{i}");
                    let body = json!({"title": title, "software_release": sr});
                    match call(&agent, &format!("{base}/v1/instances"), admin, Some(&body)) {
                        Ok((200, _)) => acknowledged.lock().expect("lock").push(title),
                        Ok((status, body)) => panic!("unexpected {status}: {body}"),
                        Err(_) => break,
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(700));
        master.kill().expect("kill -9");
        let _ = master.wait();
    });

    let acknowledged = acknowledged.into_inner().expect("lock");
    assert!(
        acknowledged.len() > 10,
        "the burst did run: {} requests",
        acknowledged.len()
    );
    let mut master = start(dir.path(), port, store);
    let (status, instances) =
        call(&agent, &format!("{base}/v1/instances"), admin, None).expect("list");
    assert_eq!(status, 200);
    let stored: std::collections::HashSet<&str> = instances
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|i| i["title"].as_str())
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|t| !stored.contains(t.as_str()))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    master.kill().expect("kill");
    let _ = master.wait();
}
