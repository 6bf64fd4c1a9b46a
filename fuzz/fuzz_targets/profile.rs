//! Any bytes, split into a main file and two bases, must load, resolve and annotate
//! without panicking.

#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\u{0}');
    let files: HashMap<String, String> = ["/f/buildout.cfg", "/f/a.cfg", "/f/b.cfg"]
        .iter()
        .map(|name| ((*name).to_owned(), parts.next().unwrap_or("").to_owned()))
        .collect();
    let options = grove_profile::LoadOptions::default();
    if let Ok(profile) = grove_profile::load("/f/buildout.cfg", &files, &options) {
        let _ = profile.resolve();
        let _ = profile.annotate();
    }
});
