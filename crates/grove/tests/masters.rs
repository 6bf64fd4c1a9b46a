//! Several `grove master` processes on one PostgreSQL database serve one cloud, over HTTPS
//! with the one CA they share: a request
//! made on one master is deployed by a node that follows another, and when that master
//! dies the node goes on with the next one while its services keep running.

use std::path::Path;

mod common;
use common::{
    Apart, Daemon, Place, answers_https, eventually, example, free_port, get, grove, text,
};

fn start_master(place: &Place, name: &str, listen: &str, store: &str) -> Daemon {
    let mut command = grove();
    command.args(["master", "--listen", listen, "--store", store]);
    command.arg("--data-dir").arg(place.path().join(name));
    let daemon = Daemon::spawn(command, place.path().join(format!("{name}.log")));
    let ca = place.path().join(name).join("ca.pem");
    eventually("the master to answer", || answers_https(listen, &ca));
    daemon
}

fn admin_token(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("admin.token"))
        .expect("the first master wrote the admin token")
        .trim()
        .to_owned()
}

#[test]
fn two_masters_on_one_postgres_serve_one_cloud() {
    let place = Place::new(18);
    let store = common::postgres_url();
    let (a, b) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let master_a = start_master(&place, "master-a", &a, &store);
    let master_b = start_master(&place, "master-b", &b, &store);
    let admin = admin_token(&place.path().join("master-a"));
    assert!(
        !place.path().join("master-b/admin.token").exists(),
        "one admin for the cloud, made by the first master"
    );
    // The node follows A (the first of its list, kept while it answers); the client talks
    // to B only.
    let on_a = Apart {
        place: &place,
        listen: a.clone(),
        urls: format!("https://{a},https://{b}"),
        admin: admin.clone(),
        ca: place.path().join("master-a/ca.pem"),
    };
    let on_b = Apart {
        place: &place,
        listen: b.clone(),
        urls: format!("https://{b}"),
        admin,
        // One CA for the cloud: B's copy is A's.
        ca: place.path().join("master-b/ca.pem"),
    };
    let node = on_a.node(&on_a.register("node-1", 2));
    let sr = example("hello");
    on_b.client(&["supply", &sr, "node-1"]);
    let first = on_b.client(&["request", "first", &sr, "--wait", "--param", "name=one"]);
    let first_url = text(&first, "url");
    assert_eq!(get(&first_url).as_deref(), Some("Hello one!\n"));
    // A dies: the node goes on with B, and its service keeps running meanwhile.
    master_a.signal(nix::sys::signal::Signal::SIGKILL);
    drop(master_a);
    assert_eq!(get(&first_url).as_deref(), Some("Hello one!\n"));
    let second = on_b.client(&["request", "second", &sr, "--wait", "--param", "name=two"]);
    assert_eq!(get(&text(&second, "url")).as_deref(), Some("Hello two!\n"));
    assert_eq!(get(&first_url).as_deref(), Some("Hello one!\n"));
    node.stop();
    master_b.stop();
}
