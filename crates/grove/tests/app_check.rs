//! `grove app check` as scripts use it: the JSON report, the text report, exit codes
//! 0 (valid), 1 (an error), 2 (the check could not run), folders and ZIPs alike.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

fn grove(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grove"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("grove runs")
}

const APP: &[(&str, &str)] = &[
    (
        "descriptor/application.properties",
        "name = Web shop\nversion = 1.0.0\ndsl-id = roboconf-1.0\n\
         graph-entry-point = main.graph\ninstance-entry-point = main.instances\n",
    ),
    (
        "graph/main.graph",
        "Node {\n\tinstaller: target;\n\tchildren: Db, Web;\n}\n\
         Db {\n\tinstaller: script;\n\texports: ip, port = 5432;\n}\n\
         Web {\n\tinstaller: script;\n\timports: Db.ip, Db.port;\n}\n",
    ),
    (
        "graph/Node/target.properties",
        "id = grove\nhandler = grove\nname = partition\n",
    ),
    ("graph/Db/scripts/deploy.sh", "#!/bin/sh\n"),
    ("graph/Web/scripts/deploy.sh", "#!/bin/sh\n"),
    (
        "instances/main.instances",
        "instance of Node {\n\tname: node ;\n\tcount: 2;\n\tinstance of Web {\n\t\tname: web;\n\t}\n}\n\
         instance of Node {\n\tname: data;\n\tinstance of Db {\n\t\tname: db;\n\t}\n}\n",
    ),
];

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn a_valid_application_folder_and_its_zip_give_the_same_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(&dir.path().join("shop"), APP);
    let out = grove(dir.path(), &["app", "check", "shop", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report = json(&out);
    assert_eq!(report["valid"], true);
    assert_eq!(report["kind"], "application");
    assert_eq!(report["diagnostics"], serde_json::json!([]));
    assert_eq!(report["model"]["name"], "Web shop");
    assert_eq!(
        report["model"]["root_components"],
        serde_json::json!(["Node"])
    );
    assert_eq!(
        report["model"]["instances"],
        serde_json::json!([
            "/node 1",
            "/node 1/web",
            "/node 2",
            "/node 2/web",
            "/data",
            "/data/db"
        ])
    );

    // The same files in a ZIP, inside one top folder as zipping a folder makes them.
    let zip_path = dir.path().join("shop.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).expect("create"));
    for (name, text) in APP {
        zip.start_file(
            format!("shop/{name}"),
            zip::write::SimpleFileOptions::default(),
        )
        .expect("entry");
        zip.write_all(text.as_bytes()).expect("write");
    }
    zip.finish().expect("finish");
    let zipped = grove(dir.path(), &["app", "check", "shop.zip", "--json"]);
    assert_eq!(zipped.status.code(), Some(0));
    assert_eq!(json(&zipped), report);
}

#[test]
fn errors_are_reported_with_code_file_and_line_and_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        &[(
            "broken.graph",
            "VM {\n\tinstaller: target\n}\nWeb\n\tinstaller: script;\n}\n",
        )],
    );
    let out = grove(dir.path(), &["app", "check", "broken.graph"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("broken.graph:2: error P_PROPERTY_ENDS_WITH_SEMI_COLON: "),
        "{text}"
    );
    assert!(
        text.contains("broken.graph:4: error P_O_C_BRACKET_MISSING: "),
        "{text}"
    );
    assert!(
        text.contains("graph: invalid (2 errors, 0 warnings)"),
        "{text}"
    );

    let out = grove(dir.path(), &["app", "check", "broken.graph", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["valid"], false);
    assert_eq!(report["kind"], "graph");
    let first = &report["diagnostics"][0];
    assert_eq!(first["code"], "P_PROPERTY_ENDS_WITH_SEMI_COLON");
    assert_eq!(first["level"], "error");
    assert_eq!(first["file"], "broken.graph");
    assert_eq!(first["line"], 2);
    assert!(first["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(first["detail"].is_array());
}

#[test]
fn an_instances_file_is_checked_against_a_graph() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(&dir.path().join("app"), APP);
    let app = dir.path().join("app");
    // Alone: syntax and blocks only, valid.
    let out = grove(
        &app,
        &["app", "check", "instances/main.instances", "--json"],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["kind"], "instances");
    // Against the graph: the tree is built.
    let out = grove(
        &app,
        &[
            "app",
            "check",
            "instances/main.instances",
            "--graph",
            "graph/main.graph",
            "--json",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        json(&out)["model"]["instances"].as_array().map(Vec::len),
        Some(6)
    );
    // A graph that lacks the component: an error.
    write(
        &app,
        &[("graph/small.graph", "Node {\n\tinstaller: target;\n}\n")],
    );
    let out = grove(
        &app,
        &[
            "app",
            "check",
            "instances/main.instances",
            "--graph",
            "graph/small.graph",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let codes: Vec<String> = json(&out)["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .map(|d| d["code"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        codes,
        ["CO_INEXISTING_COMPONENT", "CO_INEXISTING_COMPONENT"]
    );
}

#[test]
fn a_path_that_does_not_read_is_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = grove(dir.path(), &["app", "check", "nowhere"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere"));
    std::fs::write(dir.path().join("junk.zip"), b"PK\x03\x04 not really").expect("write");
    let out = grove(dir.path(), &["app", "check", "junk.zip"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("junk.zip"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_manifest_is_checked_with_its_codes_places_and_plan() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("sudoku.json"),
        "{\n  \"Application\": \"Sudoku\",\n  \"Services\": [\n    {\"ServiceName\": \"web\", \"Type\": \"php\", \"Archive\": \"http://h/s.tgz\", \"StartupInstances\": {\"proxy\": \"1\", \"web\": \"2\"}}\n  ]\n}\n",
    )
    .expect("write");
    let valid = grove(dir.path(), &["app", "check", "sudoku.json", "--json"]);
    assert_eq!(valid.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&valid.stdout).expect("JSON");
    assert_eq!(
        report,
        serde_json::json!({
            "valid": true,
            "kind": "manifest",
            "diagnostics": [],
            "plan": {"application": "Sudoku", "services": [{
                "type": "php", "name": "web", "archive": "http://h/s.tgz",
                "startup_instances": {"proxy": 1, "web": 2}
            }]}
        })
    );
    std::fs::write(
        dir.path().join("bad.json"),
        "{\n  \"Application\": \"a\",\n  \"Services\": [{\"Type\": \"ruby\"}]\n}\n",
    )
    .expect("write");
    let invalid = grove(dir.path(), &["app", "check", "bad.json", "--json"]);
    assert_eq!(invalid.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&invalid.stdout).expect("JSON");
    assert_eq!(report["valid"], false);
    assert_eq!(report["plan"], serde_json::Value::Null);
    let d = &report["diagnostics"][0];
    assert_eq!(d["code"], "MANIFEST_UNKNOWN_SERVICE_TYPE");
    assert_eq!(d["level"], "error");
    assert_eq!(d["at"], "Services[0].Type");
    assert_eq!(d["line"], 3);
    let text = grove(dir.path(), &["app", "check", "bad.json"]);
    let out = String::from_utf8_lossy(&text.stdout);
    assert!(
        out.contains("bad.json: line 3: error MANIFEST_UNKNOWN_SERVICE_TYPE at Services[0].Type"),
        "{out}"
    );
    let missing = grove(dir.path(), &["app", "check", "none.json"]);
    assert_eq!(missing.status.code(), Some(2));
    // Deploying a broken one is refused, saying where, before any master is asked.
    let deploy = grove(dir.path(), &["app", "deploy", "bad.json"]);
    assert_eq!(deploy.status.code(), Some(1));
    let said = String::from_utf8_lossy(&deploy.stderr);
    assert!(
        said.contains("bad.json: line 3: error MANIFEST_UNKNOWN_SERVICE_TYPE at Services[0].Type"),
        "{said}"
    );
}
