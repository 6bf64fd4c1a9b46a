//! The ConPaaS manifest checker on arbitrary bytes: nothing may panic, and a report is
//! valid exactly when it gives a plan.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let report = grove_conpaas::manifest::check(&text);
    assert_eq!(report.valid, report.plan.is_some());
});
