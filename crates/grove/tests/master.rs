//! `grove master` as a process, over HTTPS: it comes up, and a `kill -9` in the middle of
//! a burst of concurrent requests loses none that it acknowledged, on SQLite and on
//! PostgreSQL.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use grove_api as api;
use grove_client::{Client, ClientError, Identity};

mod common;
use common::free_port;

/// The master's client with this token, trusting the CA in its data directory.
fn client(dir: &Path, url: &str, token: &str) -> Client {
    let ca = std::fs::read_to_string(dir.join("ca.pem")).expect("the master's CA");
    Client::new(
        url,
        &Identity {
            token: Some(token.to_owned()),
            ca_pem: Some(ca),
            certificate: None,
        },
    )
    .expect("client")
}

fn start(dir: &Path, port: u16, store: Option<&str>) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_grove"));
    command
        .args([
            "master",
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
    let url = format!("https://127.0.0.1:{port}");
    while Instant::now() < deadline {
        if dir.join("ca.pem").exists() && client(dir, &url, "").health().is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the master did not come up");
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
    let url = format!("https://127.0.0.1:{port}");
    let mut master = start(dir.path(), port, store);
    let admin = std::fs::read_to_string(dir.path().join("admin.token")).expect("admin token");
    let admin = client(dir.path(), &url, admin.trim());
    let node = admin
        .register_computer(&api::NewComputer {
            reference: "COMP-1".to_owned(),
            labels: Default::default(),
        })
        .expect("register");
    let partitions: Vec<api::PartitionDeclaration> = (0..2000)
        .map(|i| api::PartitionDeclaration {
            reference: format!("slappart{i}"),
            addresses: vec![],
        })
        .collect();
    client(dir.path(), &url, &node.token)
        .declare_partitions("COMP-1", &partitions)
        .expect("declare");
    let sr = "https://example.test/sr.cfg";
    admin
        .supply(
            "COMP-1",
            &api::Supply {
                software_release: sr.to_owned(),
                state: api::SupplyState::Available,
                project: None,
            },
        )
        .expect("supply");

    let acknowledged = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for worker in 0..8 {
            let acknowledged = &acknowledged;
            let admin = admin.clone();
            scope.spawn(move || {
                for i in 0.. {
                    let title = format!("w{worker}-{i}");
                    let request = api::InstanceRequest::new(title.clone(), sr.to_owned());
                    match admin.request_instance(&request) {
                        Ok(_) => acknowledged.lock().expect("lock").push(title),
                        Err(ClientError::Unreachable { .. }) => break,
                        Err(e) => panic!("unexpected: {e}"),
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
    let stored: std::collections::HashSet<String> = admin
        .list_instances()
        .expect("list")
        .into_iter()
        .map(|i| i.title)
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|t| !stored.contains(t.as_str()))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    master.kill().expect("kill");
    let _ = master.wait();
}
