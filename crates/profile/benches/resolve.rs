//! Resolving a generated 1,000-section profile: ten files joined by `extends`, macros,
//! increments and substitutions (budget: 10 ms; see BENCHMARKS.md).
//!
//! `GROVE_BENCH_WRITE=DIR cargo bench -p grove-profile` writes the profile to DIR instead,
//! to time other tools (zc.buildout) on the same input.

use std::collections::HashMap;

use grove_profile::LoadOptions;

const FILES: usize = 10;
const SECTIONS_PER_FILE: usize = 100;

/// The profile as (file name, text). Section `sF_N` of file F refers to the previous
/// section, to a macro and to `[buildout]`; every tenth section is a macro template.
fn generate() -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut main = String::from("[buildout]\nextends =\n");
    for f in 1..FILES {
        main.push_str(&format!("  component/c{f}.cfg\n"));
    }
    main.push_str("parts =\n");
    for f in 0..FILES {
        for n in (1..SECTIONS_PER_FILE).step_by(10) {
            main.push_str(&format!("  s{f}_{n}\n"));
        }
    }
    for f in 0..FILES {
        let mut text = if f == 0 { main.clone() } else { String::new() };
        for n in 0..SECTIONS_PER_FILE {
            let name = format!("s{f}_{n}");
            if n % 10 == 0 {
                text.push_str(&format!(
                    "[{name}]\nrecipe = slapos.cookbook:wrapper\nwrapper-path = ${{buildout:bin-directory}}/${{:_buildout_section_name_}}\ncommand-line = run --port ${{:port}} --name ${{:_buildout_section_name_}}\nport = 8000\nflags = -a\n  -b\n\n"
                ));
            } else {
                let macro_name = format!("s{f}_{}", n - n % 10);
                let previous = format!("s{f}_{}", n - 1);
                text.push_str(&format!(
                    "[{name}]\n<= {macro_name}\nport = {}\nflags += -c{n}\nflags -= -a\nafter = ${{{previous}:wrapper-path}}\nurl = http://127.0.0.1:${{:port}}/${{buildout:directory}}\ninstance = $${{slap-configuration:ipv4-random}}:{n}\n\n",
                    8000 + n
                ));
            }
        }
        let name = if f == 0 {
            "buildout.cfg".to_owned()
        } else {
            format!("component/c{f}.cfg")
        };
        files.push((name, text));
    }
    files
}

/// A release reaching 300 components through diamonds: component `i` extends components
/// `i - 1` and `i / 2`, so the extends tree has a great many paths to the early ones
/// (zc.buildout applies a component once per path); the release extends the last ten.
const COMPONENTS: usize = 300;

fn generate_diamonds() -> Vec<(String, String)> {
    let mut files = Vec::new();
    for i in 0..COMPONENTS {
        let mut text = String::from("[buildout]\n");
        if i > 0 {
            text.push_str(&format!(
                "extends =\n  ../c{}/buildout.cfg\n  ../c{}/buildout.cfg\n",
                i - 1,
                i / 2
            ));
        }
        text.push_str(&format!(
            "parts = c{i}\n\n[c{i}]\nrecipe = slapos.recipe.cmmi\nshared = true\nurl = https://example.invalid/c{i}-1.0.tar.gz\nmd5sum = 0123456789abcdef0123456789abcdef\nconfigure-options =\n  --prefix=@@LOCATION@@\nconfigure-options +=\n  --disable-static\nenvironment =\n  C_PREVIOUS=${{c{}:url}}\n\n[versions]\nc{i} = 1.{i}\n",
            i.saturating_sub(1)
        ));
        files.push((format!("component/c{i}/buildout.cfg"), text));
    }
    let mut main = String::from("[buildout]\nextends =\n");
    for i in COMPONENTS - 10..COMPONENTS {
        main.push_str(&format!("  component/c{i}/buildout.cfg\n"));
    }
    main.push_str("parts =\n");
    for i in COMPONENTS - 10..COMPONENTS {
        main.push_str(&format!("  c{i}\n"));
    }
    files.push(("software.cfg".to_owned(), main));
    files
}

#[divan::bench]
fn resolve_300_components_through_diamonds(bencher: divan::Bencher<'_, '_>) {
    let files = loader(&generate_diamonds());
    let options = LoadOptions::default();
    bencher.bench(|| {
        let profile = grove_profile::load("/bench/software.cfg", &files, &options).expect("loads");
        let resolved = profile.resolve();
        assert!(
            resolved.diagnostics.is_empty(),
            "{:?}",
            resolved.diagnostics.first()
        );
        // The last ten, and every earlier one they refer to.
        assert_eq!(resolved.parts.len(), COMPONENTS);
        resolved
    });
}

fn loader(files: &[(String, String)]) -> HashMap<String, String> {
    files
        .iter()
        .map(|(n, t)| (format!("/bench/{n}"), t.clone()))
        .collect()
}

#[divan::bench]
fn resolve_1000_sections(bencher: divan::Bencher<'_, '_>) {
    let files = loader(&generate());
    let options = LoadOptions::default();
    bencher.bench(|| {
        let profile = grove_profile::load("/bench/buildout.cfg", &files, &options).expect("loads");
        let resolved = profile.resolve();
        assert!(
            resolved.diagnostics.is_empty(),
            "{:?}",
            resolved.diagnostics.first()
        );
        assert_eq!(resolved.parts.len(), 200);
        resolved
    });
}

#[divan::bench]
fn parse_only(bencher: divan::Bencher<'_, '_>) {
    let files = generate();
    let env = grove_profile::Environment::host();
    bencher.bench(|| {
        files
            .iter()
            .map(|(_, t)| grove_profile::parse(t, &env).sections.len())
            .sum::<usize>()
    });
}

fn main() {
    if let Some(dir) = std::env::var_os("GROVE_BENCH_WRITE") {
        let dir = std::path::PathBuf::from(dir);
        for (name, text) in generate().into_iter().chain(
            generate_diamonds()
                .into_iter()
                .map(|(n, t)| (format!("diamonds/{n}"), t)),
        ) {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        return;
    }
    divan::main();
}

#[divan::bench]
fn load_only(bencher: divan::Bencher<'_, '_>) {
    let files = loader(&generate());
    let options = LoadOptions::default();
    bencher.bench(|| grove_profile::load("/bench/buildout.cfg", &files, &options).expect("loads"));
}

#[divan::bench]
fn resolve_only(bencher: divan::Bencher<'_, '_>) {
    let files = loader(&generate());
    let profile =
        grove_profile::load("/bench/buildout.cfg", &files, &LoadOptions::default()).expect("loads");
    bencher.bench(|| profile.resolve());
}
