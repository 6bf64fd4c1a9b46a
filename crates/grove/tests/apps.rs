//! Roboconf applications end to end, with the `grove` binary and real processes: the
//! examples of `examples/apps/` deployed by `grove app deploy`, their scripts run by
//! `grove app agent` in the root instances' partitions, their services answering.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;
use common::*;

fn app_example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/apps")
        .join(name)
        .display()
        .to_string()
}

/// An instance of an application's `show --json`, by path.
fn instance<'v>(view: &'v Value, path: &str) -> &'v Value {
    view["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .find(|i| i["path"] == path)
        .unwrap_or_else(|| panic!("no instance {path} in {view}"))
}

fn states(view: &Value) -> Vec<(String, String)> {
    view["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .map(|i| (text(i, "path"), text(i, "state")))
        .collect()
}

/// `grove app show APP --json` once `done` holds of it.
fn shown_when(place: &Place, app: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    eventually(what, || {
        let view = place.client_json(&["app", "show", app]);
        done(&view).then_some(view)
    })
}

/// `http://IP:PORT/` of an instance from its exports.
fn url_of(view: &Value, path: &str, component: &str, port: &str) -> String {
    let exports = &instance(view, path)["exports"];
    format!(
        "http://{}:{}/",
        text(exports, &format!("{component}.ip")),
        text(exports, &format!("{component}.{port}"))
    )
}

#[test]
fn a_web_application_follows_its_database() {
    let place = Place::new(50);
    let (daemon, _) = up(&place, None);
    let deployed = place.client_json(&[
        "app",
        "deploy",
        &app_example("webapp-db"),
        "--wait",
        "--timeout",
        "120",
    ]);
    assert!(
        states(&deployed)
            .iter()
            .all(|(_, s)| s == "deployed_started"),
        "{deployed}"
    );
    // The web application imports the database's address, port and password.
    let web = instance(&deployed, "/vm-web/web");
    let database = &web["imports"]["Database"][0];
    assert_eq!(database["path"], "/vm-db/db");
    assert_eq!(database["values"]["Database.password"], "s3cret-pass");
    assert_eq!(
        database["values"]["Database.ip"],
        place.address(0).as_str(),
        "the database's partition address"
    );
    let url = url_of(&deployed, "/vm-web/web", "WebApp", "httpPort");
    assert_eq!(get(&url).as_deref(), Some("visits 1\n"));
    assert_eq!(get(&url).as_deref(), Some("visits 2\n"));

    // The database stops: the web application loses its only exporter, stops and is
    // unresolved; its server is gone.
    place.client(&[
        "app",
        "instance",
        "state",
        "webapp-db",
        "/vm-db/db",
        "deployed_stopped",
    ]);
    // (The web application goes as soon as the database is `stopping`.)
    let view = shown_when(
        &place,
        "webapp-db",
        "the web application to be unresolved",
        |view| {
            instance(view, "/vm-web/web")["state"] == "unresolved"
                && instance(view, "/vm-db/db")["state"] == "deployed_stopped"
        },
    );
    assert_eq!(instance(&view, "/vm-web/web")["missing"][0], "Database");
    assert_eq!(get(&url), None);

    // A second web application added meanwhile deploys, and does not start either.
    place.client(&[
        "app",
        "instance",
        "add",
        "webapp-db",
        "/vm-web",
        "WebApp",
        "web2",
    ]);
    let view = shown_when(
        &place,
        "webapp-db",
        "the second web application to be deployed",
        |view| instance(view, "/vm-web/web2")["state"] == "unresolved",
    );
    assert_eq!(instance(&view, "/vm-web/web")["state"], "unresolved");

    // The database is back: both start, and the count went on where it was.
    place.client(&[
        "app",
        "instance",
        "state",
        "webapp-db",
        "/vm-db/db",
        "deployed_started",
    ]);
    let view = shown_when(
        &place,
        "webapp-db",
        "both web applications to start again",
        |view| states(view).iter().all(|(_, s)| s == "deployed_started"),
    );
    assert_eq!(get(&url).as_deref(), Some("visits 3\n"));
    let url2 = url_of(&view, "/vm-web/web2", "WebApp", "httpPort");
    assert_ne!(url2, url, "each instance its own random port");
    assert_eq!(get(&url2).as_deref(), Some("visits 4\n"));

    // Listed, then undeployed (everything stops), then deleted (the partitions go).
    let listed = place.client_json(&["app", "list"]);
    assert_eq!(listed[0]["name"], "webapp-db");
    assert_eq!(listed[0]["started"], 5);
    let refused = place.client_fails(&["app", "delete", "webapp-db"]);
    assert!(refused.contains("undeploy"), "{refused}");
    place.client(&["app", "undeploy", "webapp-db"]);
    shown_when(
        &place,
        "webapp-db",
        "every instance but the partitions to be undeployed",
        |view| {
            states(view)
                .iter()
                .filter(|(p, _)| p.matches('/').count() > 1)
                .all(|(_, s)| s == "not_deployed")
        },
    );
    assert_eq!(get(&url), None);
    place.client(&["app", "delete", "webapp-db"]);
    eventually("the partitions to be destroyed", || {
        let instances = place.client_json(&["service", "list"]);
        instances
            .as_array()
            .expect("instances")
            .iter()
            .all(|i| i["reported_state"] == "destroyed")
            .then_some(())
    });
    daemon.stop();
    end_processes_in(place.path());
}

#[test]
fn an_application_grove_cannot_run_is_refused_naming_why() {
    let place = Place::new(51);
    let (daemon, _) = up(&place, None);
    let app = place.path().join("docker-app");
    copy_dir(Path::new(&app_example("webapp-db")), &app);
    std::fs::write(
        app.join("graph/VM/target.properties"),
        "id = d\nname = docker\nhandler = docker\n",
    )
    .expect("write");
    // Roboconf's verdict: valid.
    let checked = grove()
        .args(["app", "check"])
        .arg(&app)
        .output()
        .expect("runs");
    assert!(checked.status.success());
    let refused = place.client_fails(&["app", "deploy", app.to_str().expect("utf-8")]);
    assert!(refused.contains("handler \"docker\""), "{refused}");
    assert!(refused.contains("graph/VM/target.properties"), "{refused}");
    // Nothing was stored.
    assert_eq!(place.client_json(&["app", "list"]), Value::Array(vec![]));
    assert_eq!(
        place.client_json(&["service", "list"]),
        Value::Array(vec![])
    );
    daemon.stop();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Which backends answer through the balancer, in a few requests.
fn reached(url: &str) -> std::collections::BTreeSet<String> {
    (0..12)
        .filter_map(|_| get(url))
        .map(|body| body.trim().to_owned())
        .collect()
}

#[test]
fn a_balancer_follows_backends_on_two_nodes() {
    let place = Place::new(52);
    let listen = format!("127.0.0.1:{}", free_port());
    let (apart, master) = Apart::master(&place, &listen, &format!("https://{listen}"));
    let (_, node_a) = own_node(&apart, "node-a", 2, 1, "gt52a");
    let (_, node_b) = own_node(&apart, "node-b", 2, 101, "gt52b");
    eventually("both nodes to declare their partitions", || {
        let computers = apart.client(&["computer", "list"]);
        (computers.as_array().map(Vec::len) == Some(2)).then_some(())
    });
    // Without its autonomic rule: the requests of this test would scale it out.
    let app = place.path().join("load-balancer");
    copy_dir(Path::new(&app_example("load-balancer")), &app);
    std::fs::remove_dir_all(app.join("rules.autonomic")).expect("no rules");
    let deployed = apart.client(&[
        "app",
        "deploy",
        app.to_str().expect("utf-8"),
        "--wait",
        "--timeout",
        "120",
    ]);
    let url = url_of(&deployed, "/vm-lb/lb", "Balancer", "httpPort");
    let both = ["backend /vm-back 1/app", "backend /vm-back 2/app"];
    eventually("the balancer to reach both backends", || {
        (reached(&url) == both.iter().map(|s| (*s).to_owned()).collect()).then_some(())
    });

    // A third backend: the balancer's update adds it, and it answers through it.
    apart.client(&[
        "app",
        "instance",
        "add",
        "load-balancer",
        "/",
        "VM",
        "vm-back 3",
    ]);
    apart.client(&[
        "app",
        "instance",
        "add",
        "load-balancer",
        "/vm-back 3",
        "Backend",
        "app",
    ]);
    eventually("the balancer to reach the third backend", || {
        reached(&url)
            .contains("backend /vm-back 3/app")
            .then_some(())
    });
    // The partitions are on both nodes.
    let view = apart.client(&["app", "show", "load-balancer"]);
    let computers: std::collections::BTreeSet<String> = view["roots"]
        .as_object()
        .expect("roots")
        .values()
        .map(|id| {
            let id = id.as_i64().expect("id");
            apart
                .api()
                .show_instance(id)
                .expect("instance")
                .computer
                .expect("placed")
        })
        .collect();
    assert_eq!(computers.len(), 2, "{computers:?}");

    // One removed: the balancer stops sending to it, its partition is destroyed.
    apart.client(&["app", "instance", "remove", "load-balancer", "/vm-back 1"]);
    eventually("the balancer to leave the removed backend out", || {
        let now = reached(&url);
        (!now.contains("backend /vm-back 1/app") && now.contains("backend /vm-back 2/app"))
            .then_some(())
    });
    eventually("the removed root instance to go", || {
        let view = apart.client(&["app", "show", "load-balancer"]);
        (view["roots"].get("/vm-back 1").is_none()).then_some(())
    });
    apart.client(&["app", "undeploy", "load-balancer"]);
    eventually("the balancer to stop", || get(&url).is_none().then_some(()));
    node_a.stop();
    node_b.stop();
    master.stop();
    end_processes_in(place.path());
}

#[test]
fn an_autonomic_rule_adds_a_backend_under_load_and_a_command_removes_it() {
    let place = Place::new(53);
    let daemon = up_with(&place, 5);
    let deployed = place.client_json(&[
        "app",
        "deploy",
        &app_example("load-balancer"),
        "--wait",
        "--timeout",
        "120",
    ]);
    let url = url_of(&deployed, "/vm-lb/lb", "Balancer", "httpPort");
    eventually("the balancer to reach both backends", || {
        (reached(&url).len() == 2).then_some(())
    });
    // Load: more than 2 requests a second on a backend raises `overloaded`; the rule
    // runs `scale-out`, which creates and starts a third backend.
    let view = eventually("a third backend to start under load", || {
        for _ in 0..30 {
            get(&url);
        }
        let view = place.client_json(&["app", "show", "load-balancer"]);
        view["instances"]
            .as_array()
            .expect("instances")
            .iter()
            .any(|i| i["path"] == "/vm-back 3/app" && i["state"] == "deployed_started")
            .then_some(view)
    });
    // The rule sleeps a minute: one backend more, not one per probe.
    assert!(
        view["instances"]
            .as_array()
            .expect("instances")
            .iter()
            .all(|i| i["path"] != "/vm-back 4"),
        "{view}"
    );
    eventually("the balancer to reach the new backend", || {
        reached(&url)
            .contains("backend /vm-back 3/app")
            .then_some(())
    });
    let log = std::fs::read_to_string(place.path().join("up.log")).unwrap_or_default();
    assert!(log.contains("autonomic commands run"), "{log}");

    // A command file by hand: the highest backend goes.
    place.client(&["app", "command", "load-balancer", "scale-in"]);
    eventually("the balancer to leave the third backend out", || {
        let now = reached(&url);
        (now.len() == 2 && !now.contains("backend /vm-back 3/app")).then_some(())
    });
    let refused = place.client_fails(&["app", "command", "load-balancer", "nothing"]);
    assert!(
        refused.contains("no commands file \"nothing\""),
        "{refused}"
    );
    place.client(&["app", "undeploy", "load-balancer"]);
    eventually("the balancer to stop", || get(&url).is_none().then_some(()));
    daemon.stop();
    end_processes_in(place.path());
}

/// The web application and its database as two applications: the database's publishes
/// its address, port and password under prefix `Database`; the web application imports
/// them as `external`.
fn split_webapp_db(place: &Place) -> (PathBuf, PathBuf) {
    let source = PathBuf::from(app_example("webapp-db"));
    let (db, web) = (
        place.path().join("shared-db"),
        place.path().join("web-external"),
    );
    for (dir, name) in [(&db, "shared-db"), (&web, "web-external")] {
        copy_dir(&source, dir);
        let descriptor = format!(
            "name = {name}\nversion = 1.0\ndsl-id = roboconf-1.0\ngraph-entry-point = main.graph\ninstance-entry-point = main.instances\n"
        );
        std::fs::write(dir.join("descriptor/application.properties"), descriptor).expect("write");
    }
    let published = "exports-prefix = Database\nexports = Database.ip as ip, Database.port as port, Database.password as password\n";
    let mut descriptor =
        std::fs::read_to_string(db.join("descriptor/application.properties")).expect("read");
    descriptor.push_str(published);
    std::fs::write(db.join("descriptor/application.properties"), descriptor).expect("write");
    std::fs::write(
        db.join("graph/main.graph"),
        "VM {\n\tinstaller: target;\n\tchildren: Database;\n}\n\
         Database {\n\tinstaller: script;\n\texports: ip, random[port] port, password = \"change-me\";\n}\n",
    )
    .expect("write");
    std::fs::write(
        db.join("instances/main.instances"),
        "instance of VM {\n\tname: vm-db;\n\tinstance of Database {\n\t\tname: db;\n\t\tpassword: s3cret-pass;\n\t}\n}\n",
    )
    .expect("write");
    std::fs::remove_dir_all(db.join("graph/WebApp")).expect("rm");
    std::fs::write(
        web.join("graph/main.graph"),
        "VM {\n\tinstaller: target;\n\tchildren: WebApp;\n}\n\
         WebApp {\n\tinstaller: script;\n\texports: ip, random[port] httpPort;\n\
         \timports: external Database.ip, external Database.port, external Database.password;\n}\n",
    )
    .expect("write");
    std::fs::write(
        web.join("instances/main.instances"),
        "instance of VM {\n\tname: vm-web;\n\tinstance of WebApp {\n\t\tname: web;\n\t}\n}\n",
    )
    .expect("write");
    std::fs::remove_dir_all(web.join("graph/Database")).expect("rm");
    (db, web)
}

#[test]
fn external_imports_resolve_from_the_bound_application() {
    let place = Place::new(54);
    let (daemon, _) = up(&place, None);
    let (db, web) = split_webapp_db(&place);
    place.client(&["app", "deploy", db.to_str().expect("utf-8"), "--wait"]);
    place.client(&["app", "deploy", web.to_str().expect("utf-8")]);
    // Unbound: the web application has no database and does not start.
    let view = shown_when(
        &place,
        "web-external",
        "the web application to wait for a database",
        |view| instance(view, "/vm-web/web")["state"] == "unresolved",
    );
    assert_eq!(instance(&view, "/vm-web/web")["missing"][0], "Database");
    let refused = place.client_fails(&["app", "bind", "web-external", "Cache", "shared-db"]);
    assert!(
        refused.contains("publishes nothing under prefix \"Cache\""),
        "{refused}"
    );

    // Bound: it imports what the other application publishes, and starts.
    let bound = place.client_json(&["app", "bind", "web-external", "Database", "shared-db"]);
    assert_eq!(bound["bindings"]["Database"][0], "shared-db");
    let view = shown_when(
        &place,
        "web-external",
        "the web application to start",
        |view| instance(view, "/vm-web/web")["state"] == "deployed_started",
    );
    let database = &instance(&view, "/vm-web/web")["imports"]["Database"][0];
    assert_eq!(database["path"], "shared-db:/vm-db/db");
    assert_eq!(database["values"]["Database.password"], "s3cret-pass");
    let url = url_of(&view, "/vm-web/web", "WebApp", "httpPort");
    assert_eq!(get(&url).as_deref(), Some("visits 1\n"));

    // The other application's database stops: the importer is unresolved again.
    place.client(&[
        "app",
        "instance",
        "state",
        "shared-db",
        "/vm-db/db",
        "deployed_stopped",
    ]);
    shown_when(
        &place,
        "web-external",
        "the web application to be unresolved",
        |view| instance(view, "/vm-web/web")["state"] == "unresolved",
    );
    for app in ["web-external", "shared-db"] {
        place.client(&["app", "undeploy", app]);
    }
    daemon.stop();
    end_processes_in(place.path());
}

#[test]
fn scripts_run_as_the_partition_user_and_cannot_touch_root_files() {
    assert!(
        is_root(),
        "this test checks what the scripts may do as root does: run it as root (CI does)"
    );
    let place = Place::new(55);
    let (daemon, _) = up(&place, None);
    // A file of root's the script tries to change and to read.
    let canary = place.path().join("canary");
    std::fs::write(&canary, "root's\n").expect("write");
    std::fs::set_permissions(&canary, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let app = place.path().join("probe-app");
    copy_dir(Path::new(&app_example("webapp-db")), &app);
    let script = format!(
        "#!/bin/sh\nmkdir -p \"$ROBOCONF_FILES_DIR/data\"\nid -u > \"$ROBOCONF_FILES_DIR/uid\"\n\
         echo overwritten > {canary} 2>/dev/null\ncat {canary} > \"$ROBOCONF_FILES_DIR/stolen\" 2>/dev/null\nexit 0\n",
        canary = canary.display()
    );
    std::fs::write(app.join("graph/Database/scripts/deploy.sh"), script).expect("write");
    std::fs::write(
        app.join("descriptor/application.properties"),
        "name = probe-app\nversion = 1.0\ndsl-id = roboconf-1.0\ngraph-entry-point = main.graph\ninstance-entry-point = main.instances\n",
    )
    .expect("write");
    place.client(&[
        "app",
        "deploy",
        app.to_str().expect("utf-8"),
        "--wait",
        "--timeout",
        "120",
    ]);
    let files = std::fs::read_dir(place.path().join("up/instance"))
        .expect("partitions")
        .flatten()
        .map(|p| p.path().join("roboconf/instances/vm_db_db/files"))
        .find(|p| p.is_dir())
        .expect("the database's files folder");
    let uid: u32 = std::fs::read_to_string(files.join("uid"))
        .expect("the script ran")
        .trim()
        .parse()
        .expect("a uid");
    assert_ne!(uid, 0, "the script ran as root");
    let owner = std::fs::metadata(&files).expect("files").uid();
    assert_eq!(uid, owner, "the script runs as the partition's user");
    assert_eq!(
        std::fs::read_to_string(&canary).expect("canary"),
        "root's\n"
    );
    assert_eq!(
        std::fs::read_to_string(files.join("stolen")).unwrap_or_default(),
        "",
        "the script read root's file"
    );
    place.client(&["app", "undeploy", "probe-app"]);
    daemon.stop();
    end_processes_in(place.path());
}
