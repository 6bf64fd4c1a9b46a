//! The Roboconf checks on arbitrary bytes: the first line names the entry points' text
//! split, the rest is the graph and the instances; nothing may panic.
#![no_main]

use grove_roboconf::check;
use grove_roboconf::tree::Tree;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (graph, instances) = text.split_once('\u{0}').unwrap_or((&text, ""));
    let tree = Tree::of([
        (
            "descriptor/application.properties",
            "name = f\nversion = 1.0\ngraph-entry-point = main.graph\ninstance-entry-point = main.instances\n",
        ),
        ("graph/main.graph", graph),
        ("instances/main.instances", instances),
    ]);
    let _ = check::application(tree.clone());
    let _ = check::recipe(&tree);
    let _ = check::file("main.graph", graph, &tree, None);
    let _ = check::file("main.instances", instances, &tree, Some(("main.graph", graph, &tree)));
});
