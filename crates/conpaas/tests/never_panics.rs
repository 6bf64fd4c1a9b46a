//! The manifest checker never panics, whatever the text: JSON-shaped noise made of the
//! manifest's own words, and arbitrary text. Every diagnostic's line is in the text.

use grove_conpaas::manifest;
use proptest::prelude::*;

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"Application\"",
    "\"Description\"",
    "\"Services\"",
    "\"Type\"",
    "\"php\"",
    "\"mysql\"",
    "\"generic\"",
    "\"StartupInstances\"",
    "\"web\"",
    "\"1\"",
    "1",
    "-1",
    "4294967296",
    "\"x\"",
    "null",
    "true",
    "\n",
    " ",
    "\"",
    "\\",
    "é",
    "//",
    "/*",
];

fn manifest_text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..60).prop_map(|t| t.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn any_text_is_checked_without_panicking(text in prop_oneof![manifest_text(), ".*"]) {
        let report = manifest::check(&text);
        let lines = u32::try_from(text.split('\n').count()).unwrap_or(u32::MAX);
        for d in &report.diagnostics {
            prop_assert!(d.line.is_some_and(|l| l >= 1 && l <= lines), "{d:?} in {text:?}");
        }
        prop_assert_eq!(report.valid, report.plan.is_some());
    }
}
