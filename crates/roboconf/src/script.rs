//! The `script` installer's contract: which script runs for an action, and the
//! environment it runs with (Roboconf's variables: the instance's names and path, its
//! exports, its ancestors' exports, its imports by prefix, the import that changed).
//! Pure: the node runs the script, as the partition's user.

use std::collections::BTreeMap;

use crate::instances::Instance;
use crate::lifecycle::{Import, Imports, clean_path, clean_reversed_path};

/// A life-cycle action with a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Deploy,
    Start,
    Update,
    Stop,
    Undeploy,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deploy => "deploy",
            Action::Start => "start",
            Action::Update => "update",
            Action::Stop => "stop",
            Action::Undeploy => "undeploy",
        }
    }
}

/// The script for an action among the files of a component's `scripts/` folder (names):
/// `ACTION.sh`, else the first file (by name) whose name starts with the action. `None`:
/// nothing to run, the action succeeds.
pub fn find(scripts: &[String], action: Action) -> Option<&str> {
    let exact = format!("{}.sh", action.as_str());
    if let Some(s) = scripts.iter().find(|s| **s == exact) {
        return Some(s);
    }
    let mut candidates: Vec<&String> = scripts
        .iter()
        .filter(|s| s.starts_with(action.as_str()))
        .collect();
    candidates.sort();
    candidates.first().map(|s| s.as_str())
}

/// An import that appeared or went away, for `update`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub component: String,
    /// Started (it appeared or changed) or stopped (it went away).
    pub appeared: bool,
    pub values: BTreeMap<String, String>,
}

/// A variable's name in the environment: `-`, `.` and spaces as `_`.
fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn local(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(_, l)| l)
}

/// The environment of a script run for `instance`: `exports` its own (qualified names),
/// `ancestors` each ancestor's component and exports (nearest first), `imports` what it
/// imports, `files_dir` its files folder, `change` the import that changed (for update).
pub fn environment(
    instance: &Instance,
    exports: &BTreeMap<String, String>,
    ancestors: &[(String, BTreeMap<String, String>)],
    imports: &Imports,
    files_dir: &str,
    change: Option<&Change>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let reversed = clean_reversed_path(&instance.path);
    for (k, v) in [
        ("ROBOCONF_FILES_DIR", files_dir.to_owned()),
        ("ROBOCONF_INSTANCE_NAME", instance.name.clone()),
        ("ROBOCONF_INSTANCE_PATH", instance.path.clone()),
        ("ROBOCONF_CLEAN_INSTANCE_PATH", clean_path(&instance.path)),
        ("ROBOCONF_CLEAN_REVERSED_INSTANCE_PATH", reversed),
        ("ROBOCONF_COMPONENT_NAME", instance.component.clone()),
    ] {
        env.insert(k.to_owned(), v);
    }
    for (name, value) in exports {
        env.insert(env_name(local(name)), value.clone());
    }
    // The farthest ancestor first, so that a nearer one wins a clash.
    for (component, values) in ancestors.iter().rev() {
        for (name, value) in values {
            env.insert(
                format!("ANCESTOR_{}_{}", env_name(component), env_name(local(name))),
                value.clone(),
            );
        }
    }
    for (prefix, list) in &imports.by_prefix {
        let p = env_name(prefix);
        env.insert(format!("{p}_size"), list.len().to_string());
        for (i, Import { path, values }) in list.iter().enumerate() {
            env.insert(format!("{p}_{i}_name"), path.clone());
            for (name, value) in values {
                env.insert(format!("{p}_{i}_{}", env_name(local(name))), value.clone());
            }
        }
    }
    // Roboconf documents these and never sets them; Grove does.
    if let Some(change) = change {
        let status = if change.appeared {
            "DEPLOYED_STARTED"
        } else {
            "DEPLOYED_STOPPED"
        };
        env.insert("ROBOCONF_UPDATE_STATUS".to_owned(), status.to_owned());
        env.insert(
            "ROBOCONF_IMPORT_CHANGED_INSTANCE_PATH".to_owned(),
            change.path.clone(),
        );
        env.insert(
            "ROBOCONF_IMPORT_CHANGED_COMPONENT".to_owned(),
            change.component.clone(),
        );
        for (name, value) in &change.values {
            env.insert(
                format!("ROBOCONF_IMPORT_CHANGED_{}", env_name(local(name))),
                value.clone(),
            );
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_for_an_action() {
        let scripts: Vec<String> = [
            "start-all.sh",
            "deploy.py",
            "deploy.sh",
            "stop",
            "start.bash",
        ]
        .map(str::to_owned)
        .to_vec();
        assert_eq!(find(&scripts, Action::Deploy), Some("deploy.sh"));
        assert_eq!(find(&scripts, Action::Start), Some("start-all.sh"));
        assert_eq!(find(&scripts, Action::Stop), Some("stop"));
        assert_eq!(find(&scripts, Action::Update), None);
    }

    fn instance() -> Instance {
        let (report, app) = crate::check::application(crate::tree::Tree::of([
            (
                "descriptor/application.properties",
                "name = a\nversion = 1.0\ndsl-id = roboconf-1.0\ngraph-entry-point = g.graph\ninstance-entry-point = i.instances\n",
            ),
            (
                "graph/g.graph",
                "VM {\n installer: target;\n exports: ip;\n children: Lb, Web;\n}\nLb {\n installer: script;\n exports: ip, http-port = 80;\n imports: Web.* (optional);\n}\nWeb {\n installer: script;\n exports: ip, port = 8080;\n}\n",
            ),
            (
                "instances/i.instances",
                "instance of VM {\n name: front vm;\n instance of Lb {\n  name: lb;\n }\n}\n",
            ),
        ]));
        let app = app.unwrap_or_else(|| panic!("{:?}", report.diagnostics));
        app.instances
            .into_iter()
            .find(|i| i.path == "/front vm/lb")
            .expect("lb")
    }

    #[test]
    fn the_environment_of_a_script() {
        let lb = instance();
        let own = BTreeMap::from([
            ("Lb.ip".to_owned(), "10.0.0.2".to_owned()),
            ("Lb.http-port".to_owned(), "80".to_owned()),
        ]);
        let ancestors = vec![(
            "VM".to_owned(),
            BTreeMap::from([("VM.ip".to_owned(), "10.0.0.2".to_owned())]),
        )];
        let web = |path: &str, port: &str| Import {
            path: path.to_owned(),
            values: BTreeMap::from([
                ("Web.ip".to_owned(), "10.0.0.9".to_owned()),
                ("Web.port".to_owned(), port.to_owned()),
            ]),
        };
        let imports = Imports {
            by_prefix: BTreeMap::from([(
                "Web".to_owned(),
                vec![web("/b1/web", "8080"), web("/b2/web", "8081")],
            )]),
            resolved: true,
            missing: vec![],
        };
        let change = Change {
            path: "/b2/web".into(),
            component: "Web".into(),
            appeared: true,
            values: web("/b2/web", "8081").values,
        };
        let env = environment(
            &lb,
            &own,
            &ancestors,
            &imports,
            "/srv/lb/files",
            Some(&change),
        );
        let get = |k: &str| env.get(k).map(String::as_str);
        assert_eq!(get("ROBOCONF_INSTANCE_NAME"), Some("lb"));
        assert_eq!(get("ROBOCONF_INSTANCE_PATH"), Some("/front vm/lb"));
        assert_eq!(get("ROBOCONF_CLEAN_INSTANCE_PATH"), Some("front_vm_lb"));
        assert_eq!(
            get("ROBOCONF_CLEAN_REVERSED_INSTANCE_PATH"),
            Some("lb_front_vm")
        );
        assert_eq!(get("ROBOCONF_COMPONENT_NAME"), Some("Lb"));
        assert_eq!(get("ROBOCONF_FILES_DIR"), Some("/srv/lb/files"));
        assert_eq!(get("http_port"), Some("80"));
        assert_eq!(get("ip"), Some("10.0.0.2"));
        assert_eq!(get("ANCESTOR_VM_ip"), Some("10.0.0.2"));
        assert_eq!(get("Web_size"), Some("2"));
        assert_eq!(get("Web_1_name"), Some("/b2/web"));
        assert_eq!(get("Web_1_port"), Some("8081"));
        assert_eq!(get("ROBOCONF_UPDATE_STATUS"), Some("DEPLOYED_STARTED"));
        assert_eq!(
            get("ROBOCONF_IMPORT_CHANGED_INSTANCE_PATH"),
            Some("/b2/web")
        );
        assert_eq!(get("ROBOCONF_IMPORT_CHANGED_port"), Some("8081"));
    }

    /// A real script reads the environment as Roboconf's scripts do.
    #[test]
    fn a_shell_script_reads_its_imports() {
        let lb = instance();
        let imports = Imports {
            by_prefix: BTreeMap::from([(
                "Web".to_owned(),
                vec![Import {
                    path: "/b1/web".into(),
                    values: BTreeMap::from([("Web.port".to_owned(), "8080".to_owned())]),
                }],
            )]),
            resolved: true,
            missing: vec![],
        };
        let env = environment(&lb, &BTreeMap::new(), &[], &imports, "/tmp", None);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("i=0; while [ $i -lt $Web_size ]; do eval echo \\$Web_${i}_name:\\$Web_${i}_port; i=$((i+1)); done")
            .env_clear()
            .envs(&env)
            .output()
            .expect("sh runs");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "/b1/web:8080\n");
    }
}
