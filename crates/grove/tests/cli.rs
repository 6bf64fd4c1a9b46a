//! The `grove` binary as scripts use it: outputs, formats and exit codes.

use std::path::Path;
use std::process::{Command, Output};

fn grove(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grove"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("grove runs")
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("utf-8 stderr")
}

const PROFILE: &str = "\
[buildout]
extends = base.cfg
parts = app
[app]
recipe = r
url = http://${:host}:${:port}/
host = 127.0.0.1
port = ${base:port}
lines += two
";

const BASE: &str = "\
[base]
port = 8080
[app]
lines = one
";

#[test]
fn resolve_json_is_one_object_of_sections() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), &[("buildout.cfg", PROFILE), ("base.cfg", BASE)]);
    let out = grove(
        dir.path(),
        &[
            "profile",
            "resolve",
            "buildout.cfg",
            "--json",
            "base:port=9090",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON document");
    assert_eq!(json["app"]["url"], "http://127.0.0.1:9090/");
    assert_eq!(json["app"]["lines"], "one\ntwo");
    let root = dir.path().canonicalize().expect("canonical");
    assert_eq!(json["buildout"]["directory"], root.to_str().expect("utf-8"));
    assert!(json.as_object().expect("object").values().all(|s| {
        s.as_object()
            .is_some_and(|o| o.values().all(serde_json::Value::is_string))
    }));
}

#[test]
fn resolve_text_lists_sections_sorted() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), &[("buildout.cfg", PROFILE), ("base.cfg", BASE)]);
    let out = grove(dir.path(), &["profile", "resolve", "buildout.cfg"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("[app]\nhost = 127.0.0.1\nlines =\n  one\n  two\nport = 8080\nrecipe = r\nurl = http://127.0.0.1:8080/\n\n[base]\nport = 8080\n\n[buildout]\n"),
        "{text}"
    );
}

#[test]
fn errors_go_to_stderr_with_file_and_line_and_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        &[(
            "buildout.cfg",
            "[s]\na = ${nope:x}\nthis is wrong\n[buildout]\nparts = s\n",
        )],
    );
    let out = grove(
        dir.path(),
        &["profile", "resolve", "buildout.cfg", "--json"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(
        err.contains("error: buildout.cfg:3: unparsable line"),
        "{err}"
    );

    let out = grove(dir.path(), &["profile", "check", "buildout.cfg"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out).lines().collect::<Vec<_>>(),
        vec![
            "buildout.cfg:3: unparsable line",
            "buildout.cfg:2: [s] a: the referenced section 'nope' was not defined (while installing, initializing section s, getting option s:a)",
        ]
    );

    let out = grove(dir.path(), &["profile", "check", "buildout.cfg", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON list");
    assert_eq!(list[1]["file"], "buildout.cfg");
    assert_eq!(list[1]["line"], 2);
    assert_eq!(list[1]["section"], "s");
    assert_eq!(list[1]["option"], "a");
    assert_eq!(list[1]["severity"], "error");
}

#[test]
fn check_passes_a_clean_profile_silently() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), &[("buildout.cfg", PROFILE), ("base.cfg", BASE)]);
    let out = grove(dir.path(), &["profile", "check", "buildout.cfg"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(stdout(&out), "");
}

#[test]
fn missing_file_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = grove(dir.path(), &["profile", "resolve", "nope.cfg"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("file not found:"), "{}", stderr(&out));
    assert!(stderr(&out).contains("nope.cfg"), "{}", stderr(&out));
}

#[test]
fn query_prints_one_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), &[("buildout.cfg", PROFILE), ("base.cfg", BASE)]);
    let out = grove(dir.path(), &["profile", "query", "app:url", "buildout.cfg"]);
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(0), "http://127.0.0.1:8080/\n")
    );
    let out = grove(
        dir.path(),
        &["profile", "query", "parts", "buildout.cfg", "--json"],
    );
    assert_eq!(stdout(&out), "\"app\"\n");

    let out = grove(
        dir.path(),
        &["profile", "query", "app:nope", "buildout.cfg"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("key not found: app:nope"),
        "{}",
        stderr(&out)
    );
    let out = grove(
        dir.path(),
        &["profile", "query", "specific:x", "buildout.cfg"],
    );
    assert!(
        stderr(&out).contains("section not found: specific"),
        "{}",
        stderr(&out)
    );
    let out = grove(dir.path(), &["profile", "query", "a:b:c", "buildout.cfg"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("invalid option \"a:b:c\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn annotate_shows_where_each_value_came_from() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), &[("buildout.cfg", PROFILE), ("base.cfg", BASE)]);
    let out = grove(
        dir.path(),
        &["profile", "annotate", "buildout.cfg", "app:host=h"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let expected = "\nAnnotated sections\n==================\n\n[app]\nhost= h\n    COMMAND_LINE_VALUE\nlines= one\ntwo\n    base.cfg:4\n+=  buildout.cfg:9\nport= ${base:port}\n    buildout.cfg:8\nrecipe= r\n    buildout.cfg:5\nurl= http://${:host}:${:port}/\n    buildout.cfg:6\n\n[base]\nport= 8080\n    base.cfg:2\n\n[buildout]\n";
    assert!(text.starts_with(expected), "{text}");
    assert!(
        text.contains("\nbin-directory= bin\n    DEFAULT_VALUE\n"),
        "{text}"
    );
    assert!(
        text.contains("\nparts= app\n    buildout.cfg:3\n"),
        "{text}"
    );
}

#[test]
fn annotate_json_lists_each_option_with_its_steps() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), &[("buildout.cfg", PROFILE), ("base.cfg", BASE)]);
    let out = grove(
        dir.path(),
        &["profile", "annotate", "buildout.cfg", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let list: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let lines = list
        .as_array()
        .expect("array")
        .iter()
        .find(|a| a["section"] == "app" && a["option"] == "lines")
        .expect("app:lines");
    assert_eq!(lines["value"], "one\ntwo");
    assert_eq!(
        lines["steps"],
        serde_json::json!([
            {"operator": "=", "source": "base.cfg:4"},
            {"operator": "+=", "source": "buildout.cfg:9"},
        ])
    );
}

#[test]
fn bad_assignment_and_bad_usage() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), &[("buildout.cfg", PROFILE), ("base.cfg", BASE)]);
    let out = grove(
        dir.path(),
        &["profile", "resolve", "buildout.cfg", "novalue"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("bad assignment \"novalue\""),
        "{}",
        stderr(&out)
    );
    let out = grove(dir.path(), &["profile", "frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_shipped_example_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = grove(
        &root,
        &[
            "profile",
            "resolve",
            "examples/profiles/software-release/software.cfg",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let base = root
        .join("examples/profiles/software-release")
        .canonicalize()
        .expect("dir");
    let base = base.to_str().expect("utf-8");
    assert_eq!(
        json["instance-profile"]["url"],
        format!("{base}/instance.cfg.in")
    );
    assert_eq!(
        json["instance-profile"]["redis-binary"],
        format!("{base}/parts/redis/bin/redis-server")
    );
    assert_eq!(
        json["instance-profile"]["partition-address"],
        "${slap-configuration:ipv4-random}"
    );
    assert_eq!(json["buildout"]["platform-suffix"], "linux");
}

/// `resolve` shows what an installation would see before running anything: the options
/// Grove's recipes compute from the profile are there; one only a recipe would compute by
/// running is an error naming that recipe.
#[test]
fn resolve_shows_the_options_recipes_compute() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        &[(
            "software.cfg",
            "[buildout]\nparts = app\n\
             [zlib]\nrecipe = slapos.recipe.cmmi\nurl = https://example.invalid/zlib.tar.gz\n\
             [archive]\nrecipe = slapos.recipe.build:download\nurl = https://example.invalid/a/b.tar.gz\n\
             [app]\nrecipe = r\nlibs = ${zlib:location}/lib\nfile = ${archive:target}\n\
             [eggs]\nrecipe = zc.recipe.egg\n\
             [password]\nrecipe = slapos.cookbook:generate.password\n\
             [uses-egg]\nrecipe = r\nx = ${eggs:egg}\n\
             [uses-password]\nrecipe = r\nx = ${password:passwd}\n",
        )],
    );
    let root = dir.path().canonicalize().expect("canonical");
    let out = grove(
        dir.path(),
        &["profile", "query", "app:libs", "software.cfg"],
    );
    assert_eq!(
        stdout(&out),
        format!("{}/parts/zlib/lib\n", root.display()),
        "{}",
        stderr(&out)
    );
    let out = grove(
        dir.path(),
        &["profile", "query", "app:file", "software.cfg"],
    );
    assert_eq!(
        stdout(&out),
        format!("{}/parts/archive/b.tar.gz\n", root.display())
    );
    let out = grove(dir.path(), &["profile", "check", "software.cfg"]);
    assert_eq!(out.status.code(), Some(1));
    let said = stdout(&out);
    assert!(
        said.contains("eggs:egg (computed by a recipe Grove does not implement: recipe zc.recipe.egg of [eggs])"),
        "{said}"
    );
    assert!(
        said.contains("password:passwd (computed when the part runs, which resolving does not do: recipe slapos.cookbook:generate.password of [password])"),
        "{said}"
    );
}

#[test]
fn cron_check_lists_jobs_and_bad_lines_with_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        &[
            ("cron.d/backup", "0 3 * * * backup --all\n"),
            ("cron.d/broken", "# comment\n* * 32 * * never\n"),
        ],
    );
    let out = grove(
        dir.path(),
        &[
            "cron",
            "--entries",
            "cron.d",
            "--log",
            "cron.log",
            "--check",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(report["jobs"][0]["command"], "backup --all");
    assert_eq!(report["jobs"].as_array().map(Vec::len), Some(1));
    let error = report["errors"][0].as_str().expect("an error");
    assert!(
        error.starts_with("cron.d/broken:2: invalid schedule"),
        "{error}"
    );
}

#[test]
fn certificate_authority_once_signs_the_pending_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        &[(
            "ca/requests/one",
            r#"{"name": "db.internal", "key_file": "unused", "certificate_file": "unused"}"#,
        )],
    );
    let args = [
        "certificate-authority",
        "--ca-dir",
        "ca",
        "--ca-private",
        "ca/private",
        "--ca-certs",
        "ca/certs",
        "--requests",
        "ca/requests",
        "--once",
        "--json",
    ];
    let out = grove(dir.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(report["issued"], 1);
    let certs: Vec<_> = std::fs::read_dir(dir.path().join("ca/certs"))
        .expect("certs")
        .collect();
    assert_eq!(certs.len(), 1);
    // Signed requests are not signed again.
    let again: serde_json::Value =
        serde_json::from_str(&stdout(&grove(dir.path(), &args))).expect("json");
    assert_eq!(again["issued"], 0);

    write(dir.path(), &[("ca/requests/bad", "not json")]);
    let out = grove(dir.path(), &args);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("request ca/requests/bad:"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn simple_http_server_on_a_socket_writes_posts_below_its_directory_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        &[("www/index.html", "<p>home</p>"), ("secret", "canary")],
    );
    let socket = dir.path().join("web.sock");
    let mut server = Command::new(env!("CARGO_BIN_EXE_grove"))
        .args([
            "simple-http-server",
            "--base-path",
            "www",
            "--log-file",
            "web.log",
        ])
        .arg("--socket-path")
        .arg(&socket)
        .arg("--allow-write")
        .current_dir(dir.path())
        .spawn()
        .expect("starts");
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "5",
                "-w",
                "\n%{http_code}",
                "--unix-socket",
            ])
            .arg(&socket)
            .args(args)
            .output()
            .expect("curl runs (CI installs it)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !socket.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never listened"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(curl(&["http://x/"]), "<p>home</p>\n200");
    assert_eq!(
        curl(&["-d", "path=notes/a.txt&content=one", "http://x/"]),
        "Content written to notes/a.txt\n200"
    );
    assert_eq!(
        curl(&["-d", "path=notes/a.txt&content=+two&clear=0", "http://x/"]),
        "Content written to notes/a.txt\n200"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("www/notes/a.txt")).expect("written"),
        "one two"
    );
    assert_eq!(
        curl(&["-d", "path=../secret&content=overwritten", "http://x/"]),
        "Forbidden\n403"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("secret")).expect("canary"),
        "canary"
    );
    assert_eq!(curl(&["http://x/notes"]).lines().last(), Some("301"));
    assert!(curl(&["http://x/notes/"]).contains("<a href=\"a.txt\">a.txt</a>"));
    server.kill().expect("kill");
    server.wait().expect("reaped");
    let log = std::fs::read_to_string(dir.path().join("web.log")).expect("log");
    assert!(log.contains("\"POST /\" 403"), "{log}");
}
