//! The master's view and the partitions' runtime in a loop, with real shell scripts: a
//! load balancer and two backends in three root instances. What the master tells each
//! root (`live::desired`) is reconciled there (`runtime::reconcile`), the states come
//! back, and so on until nothing changes: the balancer's `update` sees each backend
//! arrive, and leave.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use grove_roboconf::check::{self, Application};
use grove_roboconf::lifecycle::{State, Wanted};
use grove_roboconf::live::{self, Known};
use grove_roboconf::runtime::{self, Desired, Observed, Runner};
use grove_roboconf::script::{self, Action};
use grove_roboconf::tree::Tree;

const GRAPH: &str = "\
VM {
	installer: target;
	exports: ip;
	children: Lb, Backend;
}
Lb {
	installer: script;
	imports: Backend.ip (optional), Backend.port (optional);
}
Backend {
	installer: script;
	exports: ip, random[port] port;
}
";

const INSTANCES: &str = "\
instance of VM {
	name: front;
	instance of Lb {
		name: lb;
	}
}
instance of VM {
	name: back ;
	count: 2;
	instance of Backend {
		name: app;
	}
}
";

/// Each script appends a line to a log in the files folder of its instance.
const LOG: &str = "#!/bin/sh\necho \"$(basename \"$0\") $ROBOCONF_INSTANCE_PATH\" >> \"$ROBOCONF_FILES_DIR/../log\"\n";

/// The balancer's update writes its backend list, as a real one rewrites its
/// configuration.
const LB_UPDATE: &str = "#!/bin/sh\n\
: > \"$ROBOCONF_FILES_DIR/backends\"\n\
i=0\n\
while [ $i -lt ${Backend_size:-0} ]; do\n\
  eval echo \"\\$Backend_${i}_name \\$Backend_${i}_ip:\\$Backend_${i}_port\" >> \"$ROBOCONF_FILES_DIR/backends\"\n\
  i=$((i+1))\n\
done\n\
echo \"update $ROBOCONF_UPDATE_STATUS $ROBOCONF_IMPORT_CHANGED_INSTANCE_PATH\" >> \"$ROBOCONF_FILES_DIR/../log\"\n";

fn application() -> Application {
    let mut files = vec![
        (
            "descriptor/application.properties",
            "name = lb\nversion = 1.0\ndsl-id = roboconf-1.0\ngraph-entry-point = g.graph\ninstance-entry-point = i.instances\n",
        ),
        ("graph/g.graph", GRAPH),
        ("instances/i.instances", INSTANCES),
        (
            "graph/VM/target.properties",
            "id = g\nhandler = grove\nname = g\n",
        ),
        ("graph/Lb/scripts/update.sh", LB_UPDATE),
    ];
    for action in ["deploy", "start", "stop", "undeploy"] {
        files.push((
            match action {
                "deploy" => "graph/Lb/scripts/deploy.sh",
                "start" => "graph/Lb/scripts/start.sh",
                "stop" => "graph/Lb/scripts/stop.sh",
                _ => "graph/Lb/scripts/undeploy.sh",
            },
            LOG,
        ));
    }
    for path in [
        "graph/Backend/scripts/deploy.sh",
        "graph/Backend/scripts/start.sh",
        "graph/Backend/scripts/stop.sh",
        "graph/Backend/scripts/undeploy.sh",
    ] {
        files.push((path, LOG));
    }
    let (report, app) = check::application(Tree::of(files));
    app.unwrap_or_else(|| panic!("{:?}", report.diagnostics))
}

/// Runs the component's scripts from the application's files, in a folder per root
/// instance (what a partition is).
struct Shell {
    app: Tree,
    partition: PathBuf,
}

impl Runner for Shell {
    fn run(
        &mut self,
        instance: &Desired,
        action: Action,
        env: BTreeMap<String, String>,
    ) -> Result<(), String> {
        let dir = format!("graph/{}/scripts", instance.component);
        let names: Vec<String> = self.app.files_in(&dir).map(str::to_owned).collect();
        let Some(name) = script::find(&names, action) else {
            return Ok(());
        };
        let path = self.partition.join("scripts").join(&instance.component);
        std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
        let file = path.join(name);
        std::fs::write(&file, &self.app.files[&format!("{dir}/{name}")])
            .map_err(|e| e.to_string())?;
        std::fs::create_dir_all(self.files_dir(instance)).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("sh")
            .arg(&file)
            .current_dir(&path)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .envs(&env)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn files_dir(&self, instance: &Desired) -> String {
        self.partition
            .join("files")
            .join(instance.path.replace('/', "_"))
            .display()
            .to_string()
    }
}

/// The master and the three partitions, until nothing changes.
fn settle(
    app: &Application,
    known: &mut Known,
    partitions: &mut BTreeMap<String, (Shell, BTreeMap<String, Observed>)>,
) {
    for _ in 0..10 {
        let told = live::desired(&app.graph, &app.instances, known);
        let mut changed = false;
        for (root, subtree) in &told {
            let (shell, observed) = partitions.get_mut(root).expect("a partition per root");
            runtime::reconcile(subtree, observed, shell);
            for (path, o) in observed.iter() {
                if known.states.insert(path.clone(), o.state()) != Some(o.state()) {
                    changed = true;
                }
            }
        }
        if !changed {
            return;
        }
    }
    panic!("the application did not settle in ten rounds");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn a_balancer_is_told_of_backends_as_they_start_and_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = application();
    let mut known = Known {
        wanted: app
            .instances
            .iter()
            .map(|i| (i.path.clone(), Wanted::DeployedStarted))
            .collect(),
        addresses: BTreeMap::from([
            ("/front".to_owned(), "10.0.0.1".to_owned()),
            ("/back 1".to_owned(), "10.0.0.2".to_owned()),
            ("/back 2".to_owned(), "10.0.0.3".to_owned()),
        ]),
        ..Known::default()
    };
    known.ports = live::assign_ports(
        &app.graph,
        &app.instances,
        &BTreeMap::new(),
        &BTreeSet::new(),
    );
    let mut partitions: BTreeMap<String, (Shell, BTreeMap<String, Observed>)> =
        ["/front", "/back 1", "/back 2"]
            .into_iter()
            .map(|root| {
                let shell = Shell {
                    app: app.tree.clone(),
                    partition: dir.path().join(root.trim_start_matches('/')),
                };
                (root.to_owned(), (shell, BTreeMap::new()))
            })
            .collect();
    settle(&app, &mut known, &mut partitions);
    for path in ["/front/lb", "/back 1/app", "/back 2/app"] {
        assert_eq!(known.states[path], State::DeployedStarted, "{path}");
    }
    let front = dir.path().join("front");
    let backends = read(&front.join("files/_front_lb/backends"));
    assert_eq!(
        backends,
        "/back 1/app 10.0.0.2:10000\n/back 2/app 10.0.0.3:10000\n"
    );

    // One backend is stopped: the balancer's update takes it out.
    known
        .wanted
        .insert("/back 2/app".to_owned(), Wanted::DeployedStopped);
    settle(&app, &mut known, &mut partitions);
    assert_eq!(known.states["/back 2/app"], State::DeployedStopped);
    assert_eq!(
        read(&front.join("files/_front_lb/backends")),
        "/back 1/app 10.0.0.2:10000\n"
    );
    let log = read(&front.join("files/log"));
    assert!(log.contains("update DEPLOYED_STOPPED /back 2/app"), "{log}");
    assert_eq!(
        read(&dir.path().join("back 2/files/log")).lines().last(),
        Some("stop.sh /back 2/app")
    );
}
