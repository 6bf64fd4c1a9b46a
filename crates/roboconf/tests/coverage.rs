//! Every diagnostic code the checks can emit has a case in `tests/cases` that expects it.

use std::collections::BTreeSet;

fn codes_in(text: &str, prefix: &str) -> BTreeSet<String> {
    text.match_indices(prefix)
        .map(|(at, _)| {
            text[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect::<String>()
        })
        .filter(|c| c.len() > 2)
        .collect()
}

#[test]
fn every_code_the_checks_emit_has_a_case() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut emitted = BTreeSet::new();
    for entry in std::fs::read_dir(root.join("src")).expect("src") {
        let path = entry.expect("entry").path();
        if path.file_name().is_some_and(|n| n == "diagnostic.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        // Unit tests name codes too; only the code above them emits.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        emitted.extend(codes_in(code, "Code::"));
    }
    emitted.remove("ALL");
    let mut expected = BTreeSet::new();
    for entry in std::fs::read_dir(root.join("tests/cases")).expect("cases") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("read");
        for line in text.lines() {
            if let Some(rest) = line
                .strip_prefix("error ")
                .or_else(|| line.strip_prefix("warning "))
            {
                expected.insert(
                    rest.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
        }
    }
    let missing: Vec<&String> = emitted.difference(&expected).collect();
    assert!(
        emitted.len() > 80,
        "found only {} codes in src",
        emitted.len()
    );
    assert!(
        missing.is_empty(),
        "codes emitted without a case: {missing:?}"
    );
}
