//! The fetcher against real files and a real HTTP server on loopback.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use grove_fetch::Fetcher;
use grove_profile::{LoadError, Loader};

/// Serves `files` (path -> body) over HTTP/1.1 on loopback until `count` requests are
/// answered; unknown paths get 404.
fn serve(files: Vec<(&'static str, &'static str)>, count: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(count) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) <= 2 {
                    break;
                }
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .to_owned();
            let (status, body) = match files.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => ("200 OK", *body),
                None => ("404 Not Found", "missing"),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}")
}

#[test]
fn reads_files_and_reports_missing_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a.cfg");
    std::fs::write(&path, "[s]\nx = 1\n").expect("write");
    let fetcher = Fetcher::default();
    let location = path.to_str().expect("utf-8 path");
    assert_eq!(fetcher.load(location), Ok("[s]\nx = 1\n".to_owned()));
    assert_eq!(
        fetcher.load(&format!("file://{location}")),
        Ok("[s]\nx = 1\n".to_owned())
    );
    let missing = dir.path().join("nope.cfg");
    assert_eq!(
        fetcher.load(missing.to_str().expect("utf-8 path")),
        Err(LoadError::NotFound)
    );
    assert!(
        matches!(fetcher.load("ftp://host/x.cfg"), Err(LoadError::Failed(m)) if m.contains("ftp"))
    );
}

#[test]
fn fetches_http_and_maps_404() {
    let base = serve(vec![("/p/a.cfg", "[s]\nx = 2\n")], 2);
    let fetcher = Fetcher::default();
    assert_eq!(
        fetcher.load(&format!("{base}/p/a.cfg")),
        Ok("[s]\nx = 2\n".to_owned())
    );
    assert_eq!(
        fetcher.load(&format!("{base}/p/missing.cfg")),
        Err(LoadError::NotFound)
    );
}

#[test]
fn url_extends_resolve_against_the_url_base() {
    let base = serve(
        vec![
            (
                "/sr/software.cfg",
                "[buildout]\nextends = ../stack/base.cfg\n[s]\nb = ${:_profile_base_location_}\n",
            ),
            ("/stack/base.cfg", "[s]\na = from base\n"),
        ],
        2,
    );
    let options = grove_profile::LoadOptions {
        assignments: vec!["buildout:directory=/srv/x".parse().expect("assignment")],
        ..Default::default()
    };
    let profile = grove_profile::load(
        &format!("{base}/sr/software.cfg"),
        &Fetcher::default(),
        &options,
    )
    .expect("main profile loads");
    let resolved = profile.resolve();
    assert_eq!(resolved.diagnostics, vec![]);
    assert_eq!(resolved.text("s", "a").as_deref(), Some("from base"));
    assert_eq!(resolved.text("s", "b"), Some(format!("{base}/sr")));
}
