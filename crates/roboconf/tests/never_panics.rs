//! The checks never panic, whatever the files hold: DSL-shaped noise and arbitrary text,
//! as a graph, as instances against a graph, and as a whole application.

use grove_roboconf::check::{self, Nothing};
use grove_roboconf::tree::Tree;
use proptest::prelude::*;

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
