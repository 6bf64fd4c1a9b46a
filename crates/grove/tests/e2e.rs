//! End to end, with the `grove` binary: a real master and a real node on loopback, real
//! software releases (the examples), real services, the client commands.
//!
//! Each test has its own data directory, loopback network (`127.78.<n>.0`) and, as root,
//! its own partition users, so that tests run in parallel.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

mod common;
use common::*;

#[test]
fn hello_answers_and_follows_its_parameters() {
    let place = Place::new(1);
    let (daemon, connection) = up(&place, Some("hello"));
    let url = text(&connection.expect("published"), "url");
    assert_eq!(url, format!("http://{}:8000/", place.address(0)));
    assert_eq!(get(&url).as_deref(), Some("Hello World!\n"));

    let sr = example("hello");
    // --wait returns once the node has processed this very request: the service already
    // greets with the new name.
    let changed = place.client_json(&["request", "hello", &sr, "--param", "name=Alice", "--wait"]);
    assert_eq!(text(&changed, "url"), url);
    assert_eq!(get(&url).as_deref(), Some("Hello Alice!\n"));
    let instance = place.instance("hello");
    assert_eq!(instance["reported_state"], "started");
    assert_eq!(instance["reported_timestamp"], instance["timestamp"]);

    // Parameters from a JSON file, as scripts pass them.
    let params = place.path().join("params.json");
    std::fs::write(&params, r#"{"name": "Carol"}"#).expect("write");
    place.client(&[
        "request",
        "hello",
        &sr,
        "--params-file",
        params.to_str().expect("utf-8"),
        "--wait",
    ]);
    assert_eq!(get(&url).as_deref(), Some("Hello Carol!\n"));

    // The service's output, through the agent's log.
    let tail = grove()
        .args([
            "node",
            "tail",
            "slappart0",
            "hello",
            "--no-follow",
            "--config",
        ])
        .arg(place.path().join("up/node.toml"))
        .output()
        .expect("runs");
    let log = String::from_utf8_lossy(&tail.stdout);
    assert!(
        log.contains(&format!("hello listening on {}:8000", place.address(0))),
        "{log}"
    );
    assert!(log.contains("\"GET / HTTP/1.1\" 200"), "{log}");
    daemon.stop();
}

#[test]
fn redis_keeps_what_is_written_with_the_published_password() {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("redis-server is needed (apt-get install redis-server)");
    }
    let place = Place::new(2);
    let (daemon, connection) = up(&place, Some("redis"));
    let connection = connection.expect("published");
    let url = text(&connection, "url");
    let password = text(&connection, "password");
    assert!(password.len() >= 16, "{password}");
    let (host, port) = url
        .strip_prefix("redis://")
        .and_then(|a| a.rsplit_once(':'))
        .expect("redis://host:port");
    assert_eq!(host, place.address(0));
    let cli = |args: &[&str], auth: bool| {
        let mut command = Command::new("redis-cli");
        command.args(["-h", host, "-p", port, "--no-auth-warning"]);
        if auth {
            command.args(["-a", &password]);
        }
        let output = command.args(args).output().expect("redis-cli runs");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    eventually("redis to accept connections", || {
        (cli(&["PING"], true) == "PONG").then_some(())
    });
    assert_eq!(cli(&["SET", "grove", "works"], true), "OK");
    assert_eq!(cli(&["GET", "grove"], true), "works");
    assert!(cli(&["GET", "grove"], false).contains("NOAUTH"));
    daemon.stop();
}

#[test]
fn webapp_requests_its_redis_child_and_uses_it() {
    let place = Place::new(3);
    let (daemon, connection) = up(&place, Some("webapp"));
    let url = text(&connection.expect("published"), "url");
    assert_eq!(get(&url).as_deref(), Some("Hello, visitor number 1!\n"));
    assert_eq!(get(&url).as_deref(), Some("Hello, visitor number 2!\n"));
    let list = place.client_json(&["service", "list"]);
    let child = list
        .as_array()
        .expect("array")
        .iter()
        .find(|i| i["title"] == "redis")
        .expect("the child is listed")
        .clone();
    assert_eq!(child["software_type"], "redis");
    assert!(!child["parent"].is_null());
    assert!(
        text(&child["connection"], "url").starts_with(&format!("redis://{}:", place.address(1)))
    );
    daemon.stop();
}

#[test]
fn stop_start_destroy_and_the_partition_is_reused() {
    let place = Place::new(4);
    let (daemon, connection) = up(&place, Some("hello"));
    let url = text(&connection.expect("published"), "url");
    let sr = example("hello");

    place.client(&["request", "hello", &sr, "--state", "stopped"]);
    eventually("the service to stop", || {
        (get(&url).is_none() && place.instance("hello")["reported_state"] == "stopped")
            .then_some(())
    });

    place.client(&["request", "hello", &sr, "--state", "started"]);
    eventually("the service to start again", || {
        (get(&url).as_deref() == Some("Hello World!\n")).then_some(())
    });

    place.client(&["request", "hello", &sr, "--state", "destroyed"]);
    eventually("the partition to be freed", || {
        let computer = place.client_json(&["computer", "info", "local"]);
        let slot = computer["partitions"]
            .as_array()
            .expect("partitions")
            .iter()
            .find(|p| p["reference"] == "slappart0")
            .expect("slappart0")
            .clone();
        slot["instance"].is_null().then_some(())
    });
    assert!(get(&url).is_none());
    let left: Vec<String> = std::fs::read_dir(place.path().join("up/instance/slappart0"))
        .expect("partition")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, [".grove-resource.json"]);

    let again = place.client_json(&[
        "request",
        "hello-again",
        &sr,
        "--param",
        "name=Bob",
        "--wait",
    ]);
    let again_url = text(&again, "url");
    assert!(
        again_url.starts_with(&format!("http://{}:", place.address(0))),
        "slappart0 is reused: {again_url}"
    );
    eventually("the new instance to answer", || {
        (get(&again_url).as_deref() == Some("Hello Bob!\n")).then_some(())
    });
    daemon.stop();
}

#[test]
fn grove_up_resumes_every_instance_after_a_restart() {
    let place = Place::new(5);
    let (daemon, connection) = up(&place, Some("hello"));
    let url = text(&connection.expect("published"), "url");
    assert!(get(&url).is_some());
    daemon.stop();
    assert!(get(&url).is_none(), "services stop with grove up");

    let (daemon, _) = up(&place, None);
    eventually("the service to be back", || {
        (get(&url).as_deref() == Some("Hello World!\n")).then_some(())
    });
    daemon.stop();
}

/// The pid of the first supervised service, from `node status` (none while the agent is
/// not answering).
fn service_pid(place: &Place) -> Option<u64> {
    let status = grove()
        .args(["node", "status", "--json", "--config"])
        .arg(place.path().join("up/node.toml"))
        .output()
        .expect("runs");
    let status: Value = serde_json::from_slice(&status.stdout).ok()?;
    status[0]["pid"].as_u64()
}

#[test]
fn services_of_a_killed_grove_up_are_adopted_by_the_next() {
    let place = Place::new(12);
    let (daemon, connection) = up(&place, Some("hello"));
    let url = text(&connection.expect("published"), "url");
    let old = service_pid(&place).expect("a running service");
    // Killed without a chance to stop its services: they go on serving (and logging),
    // on their port, and every probe is answered while no agent runs and after.
    let probe = Prober::start(&url);
    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    drop(daemon);
    assert!(Path::new(&format!("/proc/{old}")).exists());
    let (daemon, _) = up(&place, None);
    eventually("the new agent to adopt the service", || {
        (service_pid(&place)? == old).then_some(())
    });
    assert_eq!(probe.stop(), (0, true), "failed probes across the restart");
    // Adopted means supervised: it exits, it is started again.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    eventually("the adopted service to be started again", || {
        let pid = service_pid(&place)?;
        (pid != old && get(&url).as_deref() == Some("Hello World!\n")).then_some(())
    });
    daemon.stop();
}

#[test]
fn a_failing_promise_puts_the_instance_in_error_with_its_output() {
    let place = Place::new(6);
    let sr = place.release(
        "broken.cfg",
        "[buildout]\nparts = instance\n\n[instance]\nrecipe = slapos.recipe.template\n\
         output = ${buildout:directory}/instance.cfg\ninline =\n  [buildout]\n  parts = promise\n  \
         [promise]\n  recipe = slapos.recipe.template\n  output = $${buildout:directory}/etc/promise/disk\n  \
         mode = 0755\n  inline =\n    #!/bin/sh\n    echo the disk is on fire\n    exit 1\n",
    );
    let (daemon, _) = up(&place, None);
    place.client(&["supply", &sr, "local"]);
    place.client(&["request", "broken", &sr]);
    let error = eventually("the error to be reported", || {
        let instance = place.instance("broken");
        (instance["reported_state"] == "error").then(|| text(&instance, "error"))
    });
    assert_eq!(
        error,
        "promise disk failed: exit status: 1: the disk is on fire"
    );

    let waited = grove()
        .args(["request", "broken", &sr, "--wait", "--error-grace", "1"])
        .env("GROVE_CLIENT_CONFIG", place.path().join("up/client.toml"))
        .output()
        .expect("runs");
    assert!(!waited.status.success());
    let stderr = String::from_utf8_lossy(&waited.stderr);
    assert!(
        stderr.contains("instance broken failed: promise disk failed"),
        "{stderr}"
    );
    daemon.stop();
}

#[test]
fn promises_are_checked_between_deployments() {
    let place = Place::new(13);
    let sr = place.release(
        "watched.cfg",
        "[buildout]\nparts = instance\n\n[instance]\nrecipe = slapos.recipe.template\n\
         output = ${buildout:directory}/instance.cfg\ninline =\n  [buildout]\n  parts = healthy promise\n  \
         [healthy]\n  recipe = plone.recipe.command\n  command = touch healthy\n  \
         [promise]\n  recipe = slapos.recipe.template\n  output = $${buildout:directory}/etc/promise/health\n  \
         mode = 0755\n  inline =\n    #!/bin/sh\n    test -f healthy || { echo the health file is gone; exit 1; }\n",
    );
    let (daemon, _) = up(&place, None);
    place.client(&["supply", &sr, "local"]);
    place.client(&["request", "watched", &sr]);
    eventually("the instance to start", || {
        (place.instance("watched")["reported_state"] == "started").then_some(())
    });

    let health = place.path().join("up/instance/slappart0/healthy");
    std::fs::remove_file(&health).expect("remove");
    let error = eventually("the failure to be noticed", || {
        let instance = place.instance("watched");
        (instance["reported_state"] == "error").then(|| text(&instance, "error"))
    });
    assert_eq!(
        error,
        "promise health failed: exit status: 1: the health file is gone"
    );

    std::fs::write(&health, "").expect("restore");
    eventually("the instance to recover", || {
        (place.instance("watched")["reported_state"] == "started").then_some(())
    });
    daemon.stop();
}

#[test]
fn a_host_serves_and_publishes_for_its_shared_instances() {
    let place = Place::new(14);
    let (daemon, connection) = up(&place, Some("greeter"));
    let host = text(&connection.expect("published"), "url");
    assert_eq!(get(&host).as_deref(), Some("I host 0 pages\n"));
    let sr = example("greeter");
    let alice = place.client_json(&[
        "request",
        "alice",
        &sr,
        "--shared",
        "--param",
        "name=Alice",
        "--wait",
    ]);
    let alice = text(&alice, "url");
    assert!(alice.starts_with(&host), "{alice} is a page of {host}");
    eventually("alice's page", || {
        (get(&alice).as_deref() == Some("Hello Alice!\n")).then_some(())
    });
    let bob = place.client_json(&[
        "request", "bob", &sr, "--shared", "--param", "name=Bob", "--wait",
    ]);
    let bob = text(&bob, "url");
    assert_ne!(alice, bob);
    eventually("both pages", || {
        (get(&bob).as_deref() == Some("Hello Bob!\n")
            && get(&host).as_deref() == Some("I host 2 pages\n"))
        .then_some(())
    });

    // A destroyed shared instance leaves its host.
    place.client(&["request", "alice", &sr, "--shared", "--state", "destroyed"]);
    eventually("alice's page to go", || {
        (get(&host).as_deref() == Some("I host 1 pages\n")).then_some(())
    });
    assert_eq!(get(&bob).as_deref(), Some("Hello Bob!\n"));
    daemon.stop();
}

#[test]
fn a_broken_software_release_is_reported_with_its_error() {
    let place = Place::new(7);
    let sr = place.release(
        "broken-software.cfg",
        "[buildout]\nparts = x\n\n[x]\nrecipe = no.such:recipe\n",
    );
    let (daemon, _) = up(&place, None);
    place.client(&["supply", &sr, "local"]);
    let error = eventually("the software error", || {
        let computer = place.client_json(&["computer", "info", "local"]);
        computer["software"]
            .as_array()
            .expect("software")
            .iter()
            .find(|s| s["reported_state"] == "error")
            .map(|s| text(s, "error"))
    });
    assert!(
        error.contains(
            "broken-software.cfg:5: [x]: recipe no.such:recipe: not implemented by Grove"
        ),
        "{error}"
    );
    // Waiting for an instance of it fails at once, with the build's error.
    let waited = grove()
        .args(["request", "victim", &sr, "--wait"])
        .env("GROVE_CLIENT_CONFIG", place.path().join("up/client.toml"))
        .output()
        .expect("runs");
    assert!(!waited.status.success());
    let stderr = String::from_utf8_lossy(&waited.stderr);
    assert!(
        stderr.contains(&format!(
            "the software release {sr} failed to build on local"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("not implemented by Grove"), "{stderr}");
    daemon.stop();
}

#[test]
fn a_release_with_a_periodicity_file_is_processed_that_often() {
    let place = Place::new(10);
    let sr = place.release(
        "periodic.cfg",
        "[buildout]\nparts = periodicity instance\n\n[periodicity]\nrecipe = plone.recipe.command\n\
         command = echo 1 > ${buildout:directory}/periodicity\nstop-on-error = true\n\n\
         [instance]\nrecipe = slapos.recipe.template\noutput = ${buildout:directory}/instance.cfg\n\
         inline =\n  [buildout]\n  parts = count\n  [count]\n  recipe = plone.recipe.command\n  \
         command = echo run >> $${buildout:directory}/runs\n  \
         update-command = echo run >> $${buildout:directory}/runs\n",
    );
    let (daemon, _) = up(&place, None);
    place.client(&["supply", &sr, "local"]);
    place.client(&["request", "periodic", &sr]);
    let runs = place.path().join("up/instance/slappart0/runs");
    eventually("three runs without any change", || {
        let count = std::fs::read_to_string(&runs)
            .unwrap_or_default()
            .lines()
            .count();
        (count >= 3).then_some(())
    });
    daemon.stop();
}

#[test]
fn users_see_their_own_and_removed_software_is_deleted() {
    let place = Place::new(11);
    let (daemon, connection) = up(&place, Some("hello"));
    assert!(connection.is_some());
    let token = String::from_utf8(place.client(&["user", "create", "alice"]).stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    assert!(token.starts_with("g1.u."), "{token}");
    let client = &place.path().join("up/client.toml");
    let url = std::fs::read_to_string(client).expect("client file");
    let url = url
        .lines()
        .find_map(|l| l.strip_prefix("master_url = "))
        .expect("master_url")
        .trim_matches('"')
        .to_owned();
    let as_alice = |args: &[&str]| {
        grove()
            .args(args)
            .args(["--json", "--master-url", &url, "--token", &token])
            .output()
            .expect("runs")
    };
    let list: Value = serde_json::from_slice(&as_alice(&["service", "list"]).stdout).expect("json");
    assert_eq!(
        list,
        serde_json::json!([]),
        "alice sees none of the admin's instances"
    );
    let denied = as_alice(&["user", "create", "mallory"]);
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("403"));

    let sr = example("hello");
    place.client(&["request", "hello", &sr, "--state", "destroyed"]);
    place.client(&["remove", &sr, "local"]);
    let software_root = place.path().join("up/software");
    eventually("the release to be removed", || {
        // The master forgets the release once the node reports it destroyed.
        let computer = place.client_json(&["computer", "info", "local"]);
        let forgotten = !computer["software"]
            .as_array()
            .expect("software")
            .iter()
            .any(|s| s["software_release"] == sr.as_str());
        // What is left are the built-in releases (Roboconf root instances, ConPaaS),
        // and the node's shared parts.
        let shared = grove_node::software::shared_parts_path(&software_root);
        let empty = std::fs::read_dir(&software_root)
            .expect("root")
            .filter_map(Result::ok)
            .filter(|entry| entry.path() != shared)
            .all(|entry| {
                std::fs::read_to_string(entry.path().join("buildout.cfg")).is_ok_and(|text| {
                    grove_api::apps::BUILTIN_RELEASES
                        .iter()
                        .any(|r| text.contains(&format!("release {r}\n")))
                })
            });
        (forgotten && empty).then_some(())
    });
    daemon.stop();
}

#[test]
fn master_and_node_apart_survive_each_others_restarts() {
    let place = Place::new(8);
    let listen = format!("127.0.0.1:{}", free_port());
    let (apart, master) = Apart::master(&place, &listen, &format!("https://{listen}"));
    let start_master = || apart.restart_master();
    let client = |args: &[&str]| apart.client(args);
    let config = apart.register("node-1", 2);
    let start_node = || apart.node(&config);
    let node = start_node();
    eventually("the node to declare its partitions", || {
        let computer = client(&["computer", "info", "node-1"]);
        (computer["partitions"].as_array().map(Vec::len) == Some(2)).then_some(())
    });

    let computers = client(&["computer", "list"]);
    assert_eq!(computers[0]["reference"], "node-1");
    let sr = example("hello");
    client(&["supply", &sr, "node-1"]);
    let first = client(&["request", "first", &sr, "--wait", "--param", "name=one"]);
    let first_url = text(&first, "url");
    assert_eq!(get(&first_url).as_deref(), Some("Hello one!\n"));

    let status = grove()
        .args(["node", "status", "--json", "--config"])
        .arg(&config)
        .output()
        .expect("runs");
    let status: Value = serde_json::from_slice(&status.stdout).expect("status json");
    assert_eq!(status[0]["partition"], "slappart0");
    assert_eq!(status[0]["service"], "hello");
    assert_eq!(status[0]["state"], "running");

    // Usage, measured by the running agent, reaches the master.
    let reported = grove()
        .args(["node", "report", "--config"])
        .arg(&config)
        .status()
        .expect("runs");
    assert!(reported.success());
    let id = client(&["service", "info", "first"])["id"]
        .as_i64()
        .expect("id");
    let usage = apart.api().instance_usage(id).expect("usage");
    assert_eq!(usage[0].partition, "slappart0");
    assert!(usage[0].memory_bytes > 1_000_000);
    assert_eq!(usage[0].restarts, 0);

    // The master goes away: the service keeps running.
    master.stop();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(get(&first_url).as_deref(), Some("Hello one!\n"));
    // It comes back: the node catches up with what is asked afterwards.
    let master = start_master();
    let second = client(&["request", "second", &sr, "--wait", "--param", "name=two"]);
    assert_eq!(get(&text(&second, "url")).as_deref(), Some("Hello two!\n"));

    // The node restarts (an upgrade): its services keep answering, every probe of them,
    // and the new agent adopts the same processes.
    let before = service_pids(&config);
    let probe = Prober::start(&first_url);
    node.stop();
    assert_eq!(get(&first_url).as_deref(), Some("Hello one!\n"));
    let node = start_node();
    eventually("the new agent to supervise the services", || {
        (service_pids(&config) == before).then_some(())
    });
    assert_eq!(probe.stop(), (0, true), "failed probes across the restart");

    // The node reboots while the master is away: the agent is killed, so are the
    // services; the agent starts them again from the desired state it kept.
    master.stop();
    node.signal(nix::sys::signal::Signal::SIGKILL);
    drop(node);
    end_processes_in(place.path());
    assert!(get(&first_url).is_none());
    let node = start_node();
    eventually("the services to be back without the master", || {
        (get(&first_url).as_deref() == Some("Hello one!\n")).then_some(())
    });
    let master = start_master();
    let third = client(&["request", "first", &sr, "--wait", "--param", "name=three"]);
    assert_eq!(get(&text(&third, "url")).as_deref(), Some("Hello three!\n"));
    node.stop();
    master.stop();
}

/// The pids of the services the agent of `config` supervises, by name.
fn service_pids(config: &Path) -> Vec<(String, u64)> {
    let output = grove()
        .args(["node", "status", "--json", "--config"])
        .arg(config)
        .output()
        .expect("runs");
    let Ok(status) = serde_json::from_slice::<Value>(&output.stdout) else {
        return Vec::new();
    };
    let mut pids: Vec<(String, u64)> = status
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            Some((
                format!("{}/{}", s["partition"].as_str()?, s["service"].as_str()?),
                s["pid"].as_u64()?,
            ))
        })
        .collect();
    pids.sort();
    pids
}

/// Partition `n`'s user, from its resource file.
fn partition_user(place: &Place, partition: u8) -> (u32, u32) {
    let resource: Value = serde_json::from_slice(
        &std::fs::read(place.path().join(format!(
            "up/instance/slappart{partition}/.grove-resource.json"
        )))
        .expect("resource file"),
    )
    .expect("json");
    let user = &resource["user"];
    (
        user["uid"].as_u64().expect("uid") as u32,
        user["gid"].as_u64().expect("gid") as u32,
    )
}

#[test]
fn cron_jobs_run_every_minute_as_the_partition_user() {
    let place = Place::new(26);
    let sr = place.release(
        "cron.cfg",
        "[buildout]\nparts = instance\n\n[instance]\nrecipe = slapos.recipe.template\n\
         output = ${buildout:directory}/instance.cfg\ninline =\n  [buildout]\n  parts = cron-service cron-tick\n  \
         [directory]\n  recipe = slapos.cookbook:mkdirectory\n  etc = $${buildout:directory}/etc\n  \
         cron-entries = $${:etc}/cron.d\n  bin = $${buildout:directory}/bin\n  \
         log = $${buildout:directory}/var/log\n  service = $${:etc}/service\n  \
         [cron]\n  recipe = slapos.cookbook:cron\n  cron-entries = $${directory:cron-entries}\n  \
         log-file = $${directory:log}/cron.log\n  binary = $${directory:bin}/crond\n  \
         dcrond-binary = /nonexistent/crond\n  \
         [cron-service]\n  recipe = slapos.cookbook:wrapper\n  command-line = $${cron:binary}\n  \
         wrapper-path = $${directory:service}/crond\n  \
         [cron-tick]\n  <= cron\n  recipe = slapos.cookbook:cron.d\n  name = tick\n  \
         time = minutely\n  command = id -u >> $${buildout:directory}/ticks\n",
    );
    let (daemon, _) = up(&place, None);
    place.client(&["supply", &sr, "local"]);
    place.client(&["request", "ticking", &sr]);
    eventually("the instance to start", || {
        (place.instance("ticking")["reported_state"] == "started").then_some(())
    });
    let partition = place.path().join("up/instance/slappart0");
    assert_eq!(
        std::fs::read_to_string(partition.join("etc/cron.d/tick")).expect("entry"),
        format!("* * * * * id -u >> {}/ticks\n", partition.display())
    );
    // The first minute boundary after the service started runs it.
    let ticks = eventually_within("a cron job to run", Duration::from_secs(130), || {
        std::fs::read_to_string(partition.join("ticks")).ok()
    });
    let expected = if is_root() {
        partition_user(&place, 0).0
    } else {
        nix::unistd::getuid().as_raw()
    };
    assert_eq!(ticks.lines().next(), Some(expected.to_string().as_str()));
    let log = std::fs::read_to_string(partition.join("var/log/cron.log")).expect("log");
    assert!(log.contains("etc/cron.d/tick:1: id -u"), "{log}");
    daemon.stop();
}

/// A release whose instance serves files over HTTPS with a certificate of its own CA.
const HTTPS_FILES: &str = "[buildout]
parts = instance

[instance]
recipe = slapos.recipe.template
output = ${buildout:directory}/instance.cfg
inline =
  [buildout]
  parts = www-index ca ca-web publish
  [slap-configuration]
  recipe = slapos.cookbook:slapconfiguration
  [dirs]
  recipe = slapos.cookbook:mkdirectory
  ca-dir = $${buildout:directory}/srv/ca
  requests = $${:ca-dir}/requests
  private = $${:ca-dir}/private
  certs = $${:ca-dir}/certs
  www = $${buildout:directory}/srv/www
  services = $${buildout:directory}/etc/service
  log = $${buildout:directory}/var/log
  etc = $${buildout:directory}/etc
  [www-index]
  recipe = plone.recipe.command
  command = echo served > $${dirs:www}/hello.txt
  [ca]
  recipe = slapos.cookbook:certificate_authority
  ca-dir = $${dirs:ca-dir}
  requests-directory = $${dirs:requests}
  wrapper = $${dirs:services}/ca
  ca-private = $${dirs:private}
  ca-certs = $${dirs:certs}
  [web]
  recipe = slapos.cookbook:simplehttpserver
  host = $${slap-configuration:ipv4-random}
  port = PORT
  base-path = $${dirs:www}
  log-file = $${dirs:log}/web.log
  wrapper = $${dirs:etc}/web-server
  cert-file = $${dirs:etc}/web.crt
  key-file = $${dirs:etc}/web.key
  [ca-web]
  <= ca
  recipe = slapos.cookbook:certificate_authority.request
  name = $${slap-configuration:ipv4-random}
  executable = $${web:wrapper}
  wrapper = $${dirs:services}/web
  key-file = $${web:key-file}
  cert-file = $${web:cert-file}
  [publish]
  recipe = slapos.cookbook:publish
  url = https://$${web:host}:$${web:port}
  ca = $${dirs:ca-dir}/cacert.pem
";

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl runs (CI installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (body.to_owned(), code.to_owned())
}

#[test]
fn an_instance_serves_files_over_https_with_its_own_ca() {
    let place = Place::new(27);
    let port = free_port().to_string();
    let sr = place.release("https-files.cfg", &HTTPS_FILES.replace("PORT", &port));
    let (daemon, _) = up(&place, None);
    place.client(&["supply", &sr, "local"]);
    let connection = place.client_json(&["request", "files", &sr, "--wait"]);
    let url = text(&connection, "url");
    assert_eq!(url, format!("https://{}:{port}", place.address(0)));
    let ca = text(&connection, "ca");
    let (body, code) = eventually("the file to be served", || {
        let (body, code) = curl(&["--cacert", &ca, &format!("{url}/hello.txt")]);
        (code != "000").then_some((body, code))
    });
    assert_eq!((body.as_str(), code.as_str()), ("served\n", "200"));
    // Nothing outside the directory, no writing without allow-write.
    let (_, code) = curl(&[
        "--cacert",
        &ca,
        "--path-as-is",
        &format!("{url}/../../etc/web.key"),
    ]);
    assert_eq!(code, "403");
    let (_, code) = curl(&[
        "--cacert",
        &ca,
        "-d",
        "path=x&content=y",
        &format!("{url}/"),
    ]);
    assert_eq!(code, "403");
    assert!(
        !place
            .path()
            .join("up/instance/slappart0/srv/www/x")
            .exists()
    );
    // Without the partition's CA, the certificate is not trusted.
    let (_, code) = curl(&[&format!("{url}/hello.txt")]);
    assert_eq!(code, "000");
    daemon.stop();
}

#[test]
fn releases_of_a_node_share_a_shared_part() {
    let place = Place::new(28);
    let src = place.path().join("tool-src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(
        src.join("configure"),
        "#!/bin/sh\nfor a; do case $a in --prefix=*) echo \"PREFIX=${a#--prefix=}\" > config.mk;; esac; done\n",
    )
    .expect("write");
    std::fs::set_permissions(
        src.join("configure"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    std::fs::write(
        src.join("Makefile"),
        "include config.mk\nall:\n\ttrue\ninstall:\n\tmkdir -p $(PREFIX) && date +%s%N > $(PREFIX)/built\n",
    )
    .expect("write");
    let archive = place.path().join("tool.tar.gz");
    tar_gz(&src, &archive);
    let release = |name: &str, extra: &str| {
        place.release(
            name,
            &format!(
                "[buildout]\nparts = tool where\n\n[tool]\nrecipe = slapos.recipe.cmmi\n\
                 shared = true\nurl = {}\n\n[where]\nrecipe = plone.recipe.command\n\
                 command = echo ${{tool:location}} > where\n{extra}",
                archive.display()
            ),
        )
    };
    let first = release("first.cfg", "");
    let second = release("second.cfg", "# another release\n");
    let (daemon, _) = up(&place, None);
    for sr in [&first, &second] {
        place.client(&["supply", sr, "local"]);
    }
    let software = place.path().join("up/software");
    let locations: Vec<String> = eventually("both releases to be built", || {
        let read = |sr: &str| {
            let dir = grove_node::software::software_path(&software, sr);
            dir.join(".completed").exists().then(|| {
                std::fs::read_to_string(dir.join("where"))
                    .expect("where")
                    .trim()
                    .to_owned()
            })
        };
        Some(vec![read(&first)?, read(&second)?])
    });
    assert_eq!(locations[0], locations[1]);
    assert!(
        locations[0].starts_with(&software.join("shared/tool/").display().to_string()),
        "{}",
        locations[0]
    );
    let built: Vec<_> = std::fs::read_dir(software.join("shared/tool"))
        .expect("shared parts")
        .flatten()
        .filter(|e| e.path().is_dir())
        .collect();
    assert_eq!(built.len(), 1, "built once: {built:?}");
    daemon.stop();
}

#[test]
fn as_root_partitions_are_isolated_from_each_other() {
    assert!(
        is_root(),
        "isolation needs root: run this test as root (CI does)"
    );
    let place = Place::new(9);
    let (daemon, _) = up(&place, Some("hello"));
    let sr = example("hello");
    place.client(&["request", "other", &sr, "--wait"]);
    let (uid0, gid0) = partition_user(&place, 0);
    let (uid1, _) = partition_user(&place, 1);
    assert_ne!(uid0, uid1);

    let as_partition0 = |program: &str, args: &[&str]| {
        use std::os::unix::process::CommandExt;
        Command::new(program)
            .args(args)
            .uid(uid0)
            .gid(gid0)
            .output()
            .expect("runs")
    };
    let own = place.path().join("up/instance/slappart0/buildout.cfg");
    let other = place.path().join("up/instance/slappart1/buildout.cfg");
    let other_dir = place.path().join("up/instance/slappart1");
    assert!(
        as_partition0("cat", &[own.to_str().expect("utf-8")])
            .status
            .success()
    );
    let read = as_partition0("cat", &[other.to_str().expect("utf-8")]);
    assert!(!read.status.success());
    assert!(String::from_utf8_lossy(&read.stderr).contains("Permission denied"));
    let write = as_partition0(
        "touch",
        &[other_dir.join("intruder").to_str().expect("utf-8")],
    );
    assert!(!write.status.success());
    let software = place.path().join("up/software");
    let write = as_partition0(
        "touch",
        &[software.join("intruder").to_str().expect("utf-8")],
    );
    assert!(
        !write.status.success(),
        "software is read-only for partitions"
    );

    // The services run as their partition's user.
    let status = grove()
        .args(["node", "status", "--json", "--config"])
        .arg(place.path().join("up/node.toml"))
        .output()
        .expect("runs");
    let status: Value = serde_json::from_slice(&status.stdout).expect("json");
    for service in status.as_array().expect("array") {
        let pid = service["pid"].as_u64().expect("pid");
        let owner = std::fs::metadata(format!("/proc/{pid}"))
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .expect("process");
        let expected = if service["partition"] == "slappart0" {
            uid0
        } else {
            uid1
        };
        assert_eq!(owner, expected, "{service}");
    }
    daemon.stop();
}

#[test]
fn a_refused_registration_registers_nothing() {
    let place = Place::new(13);
    let (daemon, _) = up(&place, None);
    let client_file = std::fs::read_to_string(place.path().join("up/client.toml")).expect("client");
    let client: toml::Table = toml::from_str(&client_file).expect("toml");
    let config = place.path().join("other-node.toml");
    let output = grove()
        .args(["node", "register", "other", "--partitions", "0"])
        .args(["--master-url", client["master_url"].as_str().expect("url")])
        .args(["--token", client["token"].as_str().expect("token")])
        .arg("--config")
        .arg(&config)
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("partitions: between 1 and 10000"),
        "{stderr}"
    );
    assert!(!config.exists());
    let computers = place.client_json(&["computer", "list"]);
    let names: Vec<&str> = computers
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|c| c["reference"].as_str())
        .collect();
    assert_eq!(names, ["local"]);
    daemon.stop();
}

/// A node and the client commands given several masters go on with the next when the
/// first does not answer: here the first of the list has nothing listening at all.
#[test]
fn node_and_client_go_on_with_the_next_master() {
    let place = Place::new(14);
    let listen = format!("127.0.0.1:{}", free_port());
    let dead = format!("https://127.0.0.1:{}", free_port());
    let (apart, master) = Apart::master(&place, &listen, &format!("{dead},https://{listen}"));
    let client = |args: &[&str]| apart.client(args);
    let node = apart.node(&apart.register("node-1", 1));
    let sr = example("hello");
    client(&["supply", &sr, "node-1"]);
    // The instance's own profile publishes through the list too.
    let hello = client(&["request", "hello", &sr, "--wait", "--param", "name=list"]);
    assert_eq!(get(&text(&hello, "url")).as_deref(), Some("Hello list!\n"));
    node.stop();
    master.stop();
}

/// Services are adopted when the agent starts, before any profile runs: a partition whose
/// next deployment fails still has its service, supervised, not an orphan the agent forgot.
#[test]
fn adopted_services_stay_supervised_when_the_next_deployment_fails() {
    let place = Place::new(15);
    let (daemon, _) = up(&place, Some("hello"));
    let old = service_pid(&place).expect("a running service");
    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    drop(daemon);
    // The release's instance profile breaks while no agent runs.
    let software = place.path().join("up/software");
    for entry in std::fs::read_dir(&software)
        .expect("software")
        .filter_map(Result::ok)
    {
        let profile = entry.path().join("instance.cfg");
        if profile.exists() {
            std::fs::write(
                &profile,
                "[buildout]\nparts = broken\n[broken]\nrecipe = no.such:recipe\n",
            )
            .expect("write");
        }
    }
    // The next `grove up` listens elsewhere: wait for its own client file.
    std::fs::remove_file(place.path().join("up/client.toml")).expect("client file");
    let (daemon, _) = up(&place, None);
    let error = eventually("the deployment to fail", || {
        place
            .client_json(&["service", "list"])
            .as_array()
            .and_then(|list| {
                list.iter()
                    .find_map(|i| i["error"].as_str().map(str::to_owned))
            })
    });
    assert!(error.contains("no.such:recipe"), "{error}");
    assert_eq!(
        service_pid(&place),
        Some(old),
        "the service is supervised, as it was"
    );
    daemon.stop();
}

/// Projects from the command line: the admin makes one, adds a member and sets a quota;
/// the member requests in it until the quota refuses, with the API's code in the message.
#[test]
fn projects_members_and_quotas_from_the_command_line() {
    let place = Place::new(21);
    let listen = format!("127.0.0.1:{}", free_port());
    let (apart, master) = Apart::master(&place, &listen, &format!("https://{listen}"));
    apart.register("node-1", 3);
    let sr = example("hello");
    apart.client(&["supply", &sr, "node-1"]);
    apart.client(&["project", "create", "shop"]);
    let bob = apart.client(&["user", "create", "bob"]);
    let added = apart.client(&[
        "project", "member", "add", "shop", "bob", "--role", "member",
    ]);
    assert_eq!(
        added["members"],
        serde_json::json!([{"user": "bob", "role": "member"}])
    );
    let quota = apart.client(&["project", "quota", "shop", "partitions=1"]);
    assert_eq!(quota["quota"]["partitions"], 1);
    let as_bob = |args: &[&str]| {
        grove()
            .args(args)
            .env("GROVE_MASTER_URL", &apart.urls)
            .env("GROVE_TOKEN", text(&bob, "token"))
            .env("GROVE_CA_CERT", &apart.ca)
            .env("GROVE_PROJECT", "shop")
            .output()
            .expect("runs")
    };
    let first = as_bob(&["request", "web", &sr, "--json"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = as_bob(&["request", "db", &sr]);
    assert_eq!(second.status.code(), Some(1));
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(
        said.contains("403 (quota_exceeded)") && said.contains("holds 1 partitions of 1"),
        "{said}"
    );
    let shown = apart.client(&["project", "show", "shop"]);
    assert_eq!(shown["usage"]["partitions"], 1);
    let listed = as_bob(&["service", "list", "--json"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(listed[0]["project"], "shop");
    // Prices from a TOML file; an invoice as CSV (nothing used yet), a bad month refused.
    let prices = place.path().join("prices.toml");
    std::fs::write(
        &prices,
        "currency = \"EUR\"\npartition_hour = \"0.015\"\ncpu_hour = \"0.04\"\nmemory_gib_hour = \"0.005\"\n",
    )
    .expect("write");
    let set = apart.client(&["billing", "prices", prices.to_str().expect("utf-8")]);
    assert_eq!(set["partition_hour"], "0.015");
    let credit = apart.client(&["project", "credit", "shop", "25.00"]);
    assert_eq!(
        (&credit["credit"], &credit["balance"]),
        (&Value::from("25.00"), &Value::from("25.00"))
    );
    let csv = grove()
        .args([
            "billing",
            "invoice",
            "--project",
            "shop",
            "--month",
            "2026-11",
            "--csv",
        ])
        .env("GROVE_MASTER_URL", &apart.urls)
        .env("GROVE_TOKEN", &apart.admin)
        .env("GROVE_CA_CERT", &apart.ca)
        .output()
        .expect("runs");
    assert!(
        csv.status.success(),
        "{}",
        String::from_utf8_lossy(&csv.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&csv.stdout),
        "instance,resource,quantity,unit_price,amount\r\ntotal,,,,0.00\r\n"
    );
    let estimate = as_bob(&["billing", "estimate", "--json"]);
    assert!(
        estimate.status.success(),
        "{}",
        String::from_utf8_lossy(&estimate.stderr)
    );
    let estimate: Value = serde_json::from_slice(&estimate.stdout).expect("json");
    assert_eq!(estimate["currency"], "EUR");
    let bad = as_bob(&["billing", "invoice", "--month", "11/2026"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("403"),
        "a member is no project-admin: {}",
        String::from_utf8_lossy(&bad.stderr)
    );
    master.stop();
}

#[test]
fn labels_from_the_command_line() {
    let place = Place::new(16);
    let listen = format!("127.0.0.1:{}", free_port());
    let (apart, master) = Apart::master(&place, &listen, &format!("https://{listen}"));
    let registered = grove()
        .args([
            "node",
            "register",
            "node-7",
            "--label",
            "zone=eu-1",
            "--label",
            "disk=ssd",
        ])
        .args(["--master-url", &apart.urls, "--token", &apart.admin])
        .arg("--ca-cert")
        .arg(&apart.ca)
        .arg("--config")
        .arg(place.path().join("node-7.toml"))
        .status()
        .expect("runs");
    assert!(registered.success());
    let computer = apart.client(&["computer", "info", "node-7"]);
    assert_eq!(
        computer["labels"],
        serde_json::json!({"zone": "eu-1", "disk": "ssd"})
    );
    // `KEY=VALUE` sets, `KEY=` removes, the others stay.
    let labels = apart.client(&["computer", "label", "node-7", "zone=eu-2", "disk="]);
    assert_eq!(labels, serde_json::json!({"zone": "eu-2"}));
    let computer = apart.client(&["computer", "info", "node-7"]);
    assert_eq!(computer["labels"], serde_json::json!({"zone": "eu-2"}));
    master.stop();
}

/// While the node is away its services go on; an instance destroyed meanwhile is ended
/// when the node comes back: its adopted service stops and the partition is wiped.
#[test]
fn an_instance_destroyed_while_the_node_is_away_is_ended_when_it_returns() {
    let place = Place::new(17);
    let listen = format!("127.0.0.1:{}", free_port());
    let (apart, master) = Apart::master(&place, &listen, &format!("https://{listen}"));
    let config = apart.register("node-1", 1);
    let node = apart.node(&config);
    let sr = example("hello");
    apart.client(&["supply", &sr, "node-1"]);
    let hello = apart.client(&["request", "hello", &sr, "--wait"]);
    let url = text(&hello, "url");
    let pid = service_pids(&config)
        .first()
        .map(|(_, pid)| *pid)
        .expect("a service");
    node.stop();
    assert_eq!(
        get(&url).as_deref(),
        Some("Hello World!\n"),
        "it outlives its agent"
    );
    apart.client(&["request", "hello", &sr, "--state", "destroyed"]);
    let node = apart.node(&config);
    eventually("the service to be gone", || {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });
    eventually("the instance to be destroyed", || {
        let instance = apart.client(&["service", "info", "hello"]);
        (instance["reported_state"] == "destroyed").then_some(())
    });
    assert!(get(&url).is_none());
    node.stop();
    master.stop();
}

/// A release's action runs in the instance's partition, as its user, with the
/// parameters given; a missing action and a bad name are refused, saying which.
#[test]
fn hello_runs_its_greeting_action() {
    let place = Place::new(22);
    let (daemon, connection) = up(&place, Some("hello"));
    connection.expect("published");
    let action = place.client_json(&["action", "hello", "greeting", "--param", "to=Bob"]);
    assert_eq!(action["state"], "succeeded", "{action}");
    assert_eq!(action["result"]["greeting"], "Hello Bob!");
    assert_eq!(action["parameters"], serde_json::json!({"to": "Bob"}));
    let uid = action["result"]["uid"].as_u64().expect("uid");
    if is_root() {
        // The partition's user, never root.
        assert_ne!(uid, 0);
    }
    // Without parameters, the instance's own name; by id too.
    let id = place.instance("hello")["id"]
        .as_i64()
        .expect("id")
        .to_string();
    let plain = place.client(&["action", &id, "greeting"]);
    let printed: Value = serde_json::from_slice(&plain.stdout).expect("the result as JSON");
    assert_eq!(printed["greeting"], "Hello World!");
    let missing = place.client_fails(&["action", "hello", "nothing"]);
    assert!(
        missing.contains("the instance has no action \"nothing\" (etc/action/nothing is missing)"),
        "{missing}"
    );
    let bad = place.client_fails(&["action", "hello", "../../bin/sh"]);
    assert!(bad.contains("action name \"../../bin/sh\""), "{bad}");
    // Each one is kept, newest first.
    let listed = place.client_json(&["service", "actions", "hello"]);
    let names: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, ["nothing", "greeting", "greeting"]);
    daemon.stop();
}

/// The node's `/metrics` (`metrics_listen`): its services by state, its deployments and
/// their durations, in Prometheus's text format.
#[test]
fn the_node_serves_its_metrics() {
    let place = Place::new(23);
    let listen = format!("127.0.0.1:{}", free_port());
    let mut command = grove();
    command.args([
        "up",
        "--listen",
        "127.0.0.1:0",
        "--partitions",
        "2",
        "--example",
        "hello",
        "--json",
    ]);
    command.arg("--data-dir").arg(place.path().join("up"));
    place.node_env(&mut command);
    command.env("GROVE_NODE_METRICS_LISTEN", &listen);
    let daemon = Daemon::spawn(command, place.path().join("up.log"));
    daemon.line(Duration::from_secs(120));
    let url = format!("http://{listen}/metrics");
    let text = eventually("the hello service counted", || {
        let text = get(&url)?;
        text.lines()
            .any(|l| l == "grove_node_services{state=\"running\"} 1")
            .then_some(text)
    });
    for line in [
        "# TYPE grove_node_deployments_total counter",
        "grove_node_deployments_total{outcome=\"ok\"} 1",
        "grove_node_service_restarts_total 0",
        "grove_node_promise_failures_total 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("grove_node_deployment_duration_seconds_count ")),
        "{text}"
    );
    daemon.stop();
}
