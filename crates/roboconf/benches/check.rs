//! `grove app check` on a large application: 1,000 components (one machine component
//! holding the others, each exporting to and importing from its neighbour, a third of
//! them through a facet) and 1,000 instances. Budget: 50 ms.

use grove_roboconf::check;
use grove_roboconf::tree::Tree;

fn main() {
    divan::main();
}

fn application(components: usize) -> Tree {
    let mut graph = String::from(
        "facet tier {\n\texports: tier = web;\n}\nMachine {\n\tinstaller: target;\n\tchildren: ",
    );
    let names: Vec<String> = (1..components).map(|i| format!("C{i}")).collect();
    graph.push_str(&names.join(", "));
    graph.push_str(";\n}\n");
    for i in 1..components {
        graph.push_str(&format!(
            "C{i} {{\n\tinstaller: script;\n\texports: ip, port = {};\n",
            1000 + i
        ));
        if i % 3 == 0 {
            graph.push_str("\tfacets: tier;\n");
        }
        if i > 1 {
            graph.push_str(&format!(
                "\timports: C{}.port, C{}.ip (optional);\n",
                i - 1,
                i - 1
            ));
        }
        graph.push_str("}\n");
    }
    // One machine per 100 instances.
    let mut instances = String::new();
    for m in 0..components / 100 {
        instances.push_str(&format!("instance of Machine {{\n\tname: m{m};\n"));
        for i in 1..100 {
            let c = (m * 100 + i) % (components - 1) + 1;
            instances.push_str(&format!("\tinstance of C{c} {{\n\t\tname: i{i};\n\t}}\n"));
        }
        instances.push_str("}\n");
    }
    let mut tree = Tree::of([
        (
            "descriptor/application.properties",
            "name = big\nversion = 1.0\ndsl-id = roboconf-1.0\ngraph-entry-point = main.graph\ninstance-entry-point = main.instances\n",
        ),
        ("graph/main.graph", graph.as_str()),
        ("instances/main.instances", instances.as_str()),
        (
            "graph/Machine/target.properties",
            "id = g\nhandler = grove\nname = g\n",
        ),
    ]);
    for i in 1..components {
        tree.insert(format!("graph/C{i}/scripts/deploy.sh"), b"true\n".to_vec());
    }
    tree
}

#[divan::bench(args = [100, 1000])]
fn check_application(bencher: divan::Bencher, components: usize) {
    let tree = application(components);
    let (report, _) = check::application(tree.clone());
    assert!(report.valid, "{:?}", report.diagnostics);
    bencher.bench(|| check::application(tree.clone()));
}
