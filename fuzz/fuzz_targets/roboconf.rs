//! The Roboconf checks on arbitrary bytes, split on NUL into a graph, instances, a
//! commands file, a rule and a probes file: nothing may panic, nor running the commands
//! on the application when it checks.
#![no_main]

use grove_roboconf::check;
use grove_roboconf::tree::Tree;
use libfuzzer_sys::fuzz_target;

struct Now;

impl grove_roboconf::exec::Context for Now {
    fn nanos(&self) -> u128 {
        0
    }

    fn uuid(&self) -> String {
        String::new()
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\u{0}');
    let graph = parts.next().unwrap_or_default();
    let instances = parts.next().unwrap_or_default();
    let commands = parts.next().unwrap_or_default();
    let rule = parts.next().unwrap_or_default();
    let probes = parts.next().unwrap_or_default();
    let tree = Tree::of([
        (
            "descriptor/application.properties",
            "name = f\nversion = 1.0\ngraph-entry-point = main.graph\ninstance-entry-point = main.instances\n",
        ),
        ("graph/main.graph", graph),
        ("instances/main.instances", instances),
        ("commands/c.commands", commands),
        ("rules.autonomic/r.drl", rule),
    ]);
    if let (_, Some(app)) = check::application(tree.clone()) {
        let mut deployment = grove_roboconf::deploy::Deployment::new(&app);
        let _ = grove_roboconf::exec::run("c", &app.commands, &app.graph, &mut deployment, &Now);
    }
    let _ = grove_roboconf::autonomic::probes(probes, &Default::default());
    let _ = check::recipe(&tree);
    let _ = check::file("main.graph", graph, &tree, None);
    let _ = check::file("main.instances", instances, &tree, Some(("main.graph", graph, &tree)));
    let mut out = grove_roboconf::Diagnostics::default();
    let _ = grove_roboconf::commands::parse(commands, "c", &mut out);
    let _ = grove_roboconf::rules::parse(rule, "r", "r.drl", &mut out);
});
