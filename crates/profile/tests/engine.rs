//! The engine's API beyond what case files express: recipes computing options, structured
//! values, very long reference chains, and robustness on arbitrary input.

use std::collections::{BTreeMap, HashMap};

use grove_profile::{Initializer, LoadOptions, Resolved, Value};
use proptest::prelude::*;

fn resolve_with(files: &[(&str, &str)], initializer: &mut dyn Initializer) -> Resolved {
    let files: HashMap<String, String> = files
        .iter()
        .map(|(n, t)| (format!("/p/{n}"), (*t).to_owned()))
        .collect();
    let profile = grove_profile::load("/p/buildout.cfg", &files, &LoadOptions::default())
        .expect("main file loads");
    profile.resolve_with(initializer)
}

/// A stand-in for SlapOS's slapconfiguration: publishes the partition's parameters as
/// `configuration.<key>` and the whole set as a structure, recording the order it ran in.
struct SlapConfiguration {
    ran: Vec<String>,
}

impl Initializer for SlapConfiguration {
    fn initialize(
        &mut self,
        section: &str,
        recipe: &str,
        options: &mut BTreeMap<String, Value>,
    ) -> Result<(), String> {
        self.ran.push(section.to_owned());
        match recipe {
            "slapos.cookbook:slapconfiguration" => {
                let parameters = serde_json::json!({"name": "Alice", "port": 8080});
                options.insert("configuration.name".to_owned(), "Alice".into());
                options.insert("configuration".to_owned(), parameters.into());
                Ok(())
            }
            "broken" => Err(format!("cannot compute {section}")),
            _ => Ok(()),
        }
    }
}

#[test]
fn recipes_compute_options_before_others_read_them() {
    let profile = "\
[buildout]
parts = publish
[publish]
recipe = slapos.cookbook:publish
greeting = Hello ${slap-configuration:configuration.name}!
all = ${slap-configuration:configuration}
inline = parameters: ${slap-configuration:configuration}
[slap-configuration]
recipe = slapos.cookbook:slapconfiguration
computer = COMP-1
";
    let mut recipes = SlapConfiguration { ran: Vec::new() };
    let resolved = resolve_with(&[("buildout.cfg", profile)], &mut recipes);
    assert_eq!(resolved.diagnostics, vec![]);
    assert_eq!(recipes.ran, vec!["slap-configuration", "publish"]);
    assert_eq!(resolved.parts, vec!["slap-configuration", "publish"]);
    assert_eq!(
        resolved.text("publish", "greeting").as_deref(),
        Some("Hello Alice!")
    );
    let expected = serde_json::json!({"name": "Alice", "port": 8080});
    assert_eq!(
        resolved.get("publish", "all"),
        Some(&Value::Structured(expected.clone()))
    );
    assert_eq!(
        resolved.text("publish", "inline"),
        Some(format!("parameters: {expected}"))
    );
    assert_eq!(
        resolved.text("slap-configuration", "computer").as_deref(),
        Some("COMP-1")
    );
}

#[test]
fn a_failing_recipe_names_itself_and_its_place() {
    let profile = "[buildout]\nparts = x\n[x]\nrecipe = broken\n";
    let resolved = resolve_with(
        &[("buildout.cfg", profile)],
        &mut SlapConfiguration { ran: Vec::new() },
    );
    let messages: Vec<String> = resolved
        .diagnostics
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].starts_with("buildout.cfg:4: [x]: recipe broken: cannot compute x"),
        "{messages:?}"
    );
    assert!(resolved.parts.is_empty());
}

/// zc.buildout dies with RecursionError on chains like this one; Grove resolves them.
#[test]
fn long_reference_chains_resolve() {
    let length = 20_000;
    let mut profile = String::from("[s]\nv0 = end\n");
    for i in 1..=length {
        profile.push_str(&format!("v{i} = ${{s:v{}}}\n", i - 1));
    }
    let resolved = resolve_with(
        &[("buildout.cfg", &profile)],
        &mut SlapConfiguration { ran: Vec::new() },
    );
    assert_eq!(resolved.diagnostics, vec![]);
    assert_eq!(
        resolved.text("s", &format!("v{length}")).as_deref(),
        Some("end")
    );
}

#[test]
fn long_macro_chains_resolve() {
    let length = 5_000;
    let mut profile = String::from("[m0]\nx = ${:_buildout_section_name_}\n");
    for i in 1..=length {
        profile.push_str(&format!("[m{i}]\n<= m{}\n", i - 1));
    }
    let resolved = resolve_with(
        &[("buildout.cfg", &profile)],
        &mut SlapConfiguration { ran: Vec::new() },
    );
    assert_eq!(resolved.diagnostics, vec![]);
    assert_eq!(
        resolved.text(&format!("m{length}"), "x"),
        Some(format!("m{length}"))
    );
}

/// Lines made of the pieces profiles are made of, so that the generator reaches the
/// parser's and resolver's interesting paths, not only junk.
fn profile_line() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\[[a-c]{1,2}(:[ a-z0-9=<>\"'().,+#;]{0,12})?\\][ #;a-z]{0,4}",
        "[a-c<=>+-]{1,3} ?[+-]?= ?[ a-c0-9]{0,6}",
        "[a-c]{1,2} = \\$\\{[a-c:]{0,5}\\}[ a-c$]{0,4}",
        "[a-c]{1,2} = \\$\\$\\{[a-c]{1,2}:[a-c]{1,2}\\}",
        "<= ?[a-c ]{0,5}",
        "=> ?[a-c ]{0,5}",
        "[ \t]{1,3}[a-c#${}:]{0,6}",
        "\\[buildout\\]",
        "extends = [a-c]\\.cfg",
        "parts = [a-c ]{0,5}",
        "recipe = r",
        "[#;].{0,8}",
        ".{0,12}",
    ]
}

fn profile_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(profile_line(), 0..24).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// No input panics the parser or the resolver; every error has a place.
    #[test]
    fn never_panics(main in profile_text(), a in profile_text(), b in profile_text(), args in proptest::collection::vec("[a-c:+-]{0,5}=[a-c ]{0,3}", 0..3)) {
        let files: HashMap<String, String> = [
            ("/p/buildout.cfg".to_owned(), main),
            ("/p/a.cfg".to_owned(), a),
            ("/p/b.cfg".to_owned(), b),
        ].into_iter().collect();
        let assignments = args.iter().filter_map(|a| a.parse().ok()).collect();
        let options = LoadOptions { assignments, ..LoadOptions::default() };
        let profile = grove_profile::load("/p/buildout.cfg", &files, &options).expect("main file exists");
        let resolved = profile.resolve();
        let _ = profile.annotate();
        for d in &resolved.diagnostics {
            prop_assert!(!d.to_string().is_empty());
        }
    }

    /// Any text at all, byte soup included, parses without panicking.
    #[test]
    fn parser_takes_anything(text in ".{0,200}") {
        let parsed = grove_profile::parse(&text, &grove_profile::Environment::host());
        for e in &parsed.errors {
            prop_assert!(e.line >= 1);
        }
    }
}
