//! The checks never panic, whatever the files hold: DSL-shaped noise and arbitrary text,
//! as a graph, as instances against a graph, and as a whole application.

use grove_roboconf::check::{self, Nothing};
use grove_roboconf::tree::Tree;
use proptest::prelude::*;

const COMMAND_TOKENS: &[&str] = &[
    "create ",
    "replicate ",
    "rename ",
    "associate ",
    "change status of ",
    "deploy and start all ",
    "stop all ",
    "undeploy all ",
    "delete ",
    "write ",
    "append ",
    "execute ",
    "email ",
    "define ",
    " as ",
    " under ",
    " with ",
    " into ",
    " to ",
    "instances of ",
    "VM",
    "App",
    "/vm",
    "/vm/app",
    "$(",
    ")",
    "SMART_INDEX",
    "EXISTING_INDEX MIN",
    "x",
    "=",
    "\\",
    "\n",
    "\n",
    "#",
    "rule ",
    "\"r\"",
    " when ",
    " then ",
    " end",
    "sleep period is ",
    "occurrences is ",
    "2",
    "//",
    "/*",
    "*/",
    "a",
    "é",
];

const TOKENS: &[&str] = &[
    "VM",
    "Tomcat",
    "facet ",
    "instance of ",
    "import ",
    "a.graph",
    "{",
    "}",
    ";",
    ":",
    " ",
    "\n",
    "\n",
    "\n",
    "\t",
    "#",
    "\"",
    ",",
    "=",
    ".",
    "*",
    "name",
    "count",
    "installer",
    "target",
    "script",
    "children",
    "exports",
    "imports",
    "extends",
    "facets",
    "ip",
    "random[port] ",
    "external ",
    " (optional)",
    "9",
    "12",
    "0",
    "é",
    "\r",
    "data.x",
];

fn dsl() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..120).prop_map(|t| t.concat())
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![dsl(), any::<String>()]
}

fn commands_text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(COMMAND_TOKENS), 0..80).prop_map(|t| t.concat()),
        any::<String>()
    ]
}

/// A valid application, to which the commands and the rule are added.
const BASE: &[(&str, &str)] = &[
    (
        "descriptor/application.properties",
        "name = a\nversion = 1.0\ndsl-id = roboconf-1.0\ngraph-entry-point = main.graph\ninstance-entry-point = main.instances\n",
    ),
    (
        "graph/main.graph",
        "VM {\n installer: target;\n children: App;\n}\nApp {\n installer: script;\n}\n",
    ),
    (
        "graph/VM/target.properties",
        "id = a\nhandler = grove\nname = a\n",
    ),
    ("graph/App/scripts/start.sh", "true\n"),
    (
        "instances/main.instances",
        "instance of VM {\n name: vm;\n instance of App {\n  name: app;\n }\n}\n",
    ),
];

const PROBE_TOKENS: &[&str] = &[
    "[EVENT file e]",
    "[EVENT rest e]",
    "[EVENT nagios e]",
    "[",
    "]",
    "delete if exists ",
    "notify if not exists ",
    "Check ",
    "http://{{ ip }}:1/x",
    " THAT ",
    "v",
    " > ",
    " <= ",
    "2",
    "{{",
    "}}",
    "#",
    "\n",
    "\n",
    "é",
];

fn probes_text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PROBE_TOKENS), 0..40).prop_map(|t| t.concat())
}

/// Fixed time and identifiers for the commands.
struct Now;

impl grove_roboconf::exec::Context for Now {
    fn nanos(&self) -> u128 {
        1
    }

    fn uuid(&self) -> String {
        "u".to_owned()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_file_is_checked_without_panicking(graph in text(), instances in text()) {
        let tree = Tree::of([("a.graph", graph.as_str())]);
        let report = check::file("g.graph", &graph, &tree, None);
        // A report is valid exactly when it holds no error.
        prop_assert_eq!(report.valid, report.diagnostics.iter().all(|d| !d.is_error()));
        let _ = check::file("i.instances", &instances, &Nothing, Some(("g.graph", &graph, &tree)));
    }

    #[test]
    fn commands_and_rules_are_checked_without_panicking(a in commands_text(), b in commands_text(), rule in commands_text()) {
        let mut files: Vec<(&str, &str)> = BASE.to_vec();
        files.push(("commands/a.commands", &a));
        files.push(("commands/b.commands", &b));
        files.push(("rules.autonomic/r.drl", &rule));
        let (report, application) = check::application(Tree::of(files));
        prop_assert_eq!(report.valid, application.is_some());
    }

    #[test]
    fn commands_run_and_probes_read_without_panicking(commands in commands_text(), probes in probes_text()) {
        let (report, application) = check::application(Tree::of(BASE.to_vec()));
        let app = application.unwrap_or_else(|| panic!("{:?}", report.diagnostics));
        let mut deployment = grove_roboconf::deploy::Deployment::new(&app);
        let files = std::collections::BTreeMap::from([("c".to_owned(), commands)]);
        let _ = grove_roboconf::exec::run("c", &files, &app.graph, &mut deployment, &Now);
        let values = std::collections::BTreeMap::from([("App.ip".to_owned(), "10.0.0.1".to_owned())]);
        let (found, errors) = grove_roboconf::autonomic::probes(&probes, &values);
        // Every problem names a line of the file.
        let lines = u32::try_from(probes.lines().count()).unwrap_or(u32::MAX);
        prop_assert!(errors.iter().all(|e| e.line >= 1 && e.line <= lines.max(1)));
        prop_assert!(found.iter().all(|p| p.line >= 1 && p.line <= lines.max(1)));
    }

    #[test]
    fn an_application_is_checked_without_panicking(graph in text(), instances in text(), gep in text()) {
        let descriptor = format!(
            "name = app\nversion = 1.0\ngraph-entry-point = main.graph\ninstance-entry-point = {}\n",
            gep.lines().next().unwrap_or_default()
        );
        let tree = Tree::of([
            ("descriptor/application.properties", descriptor.as_str()),
            ("graph/main.graph", graph.as_str()),
            ("instances/main.instances", instances.as_str()),
            ("instances/a.graph", instances.as_str()),
        ]);
        let (report, application) = check::application(tree.clone());
        prop_assert_eq!(report.valid, application.is_some());
        let _ = check::recipe(&tree);
        // Every diagnostic's line is within its file.
        for d in &report.diagnostics {
            if let (Some(file), Some(line)) = (&d.file, d.line) {
                let lines = tree.text(file).map_or(0, |t| t.split('\n').count());
                prop_assert!(line >= 1 && (line as usize) <= lines.max(1), "{d}");
            }
        }
    }
}
