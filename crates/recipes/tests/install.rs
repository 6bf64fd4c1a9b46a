//! Installing profiles with the built-in recipes, in a real directory.

mod common;

use common::run;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("exists")
        .permissions()
        .mode()
        & 0o777
}

const INSTANCE: &str = "\
[buildout]
parts = directory service promise config links

[directory]
recipe = slapos.cookbook:mkdirectory
etc = ${buildout:directory}/etc
service = ${:etc}/service
promise = ${:etc}/promise
var = ${buildout:directory}/var

[password]
recipe = slapos.cookbook:generate.password
bytes = 12

[port]
recipe = slapos.cookbook:free_port
minimum = 20000
maximum = 20100

[service]
recipe = slapos.cookbook:wrapper
wrapper-path = ${directory:service}/hello
command-line = /bin/echo hello ${port:port}
environment =
  SECRET=${password:passwd}
  GREETING=it's me

[promise]
recipe = slapos.cookbook:check_port_listening
path = ${directory:promise}/port-listening
hostname = 127.0.0.1
port = ${port:port}

[config]
recipe = slapos.recipe.template
output = ${directory:etc}/app.conf
inline =
  port = ${port:port}
  password = ${password:passwd}
  later = $${slap-connection:partition-id}

[links]
recipe = slapos.cookbook:symbolic.link
target-directory = ${buildout:directory}/bin
link-binary = /bin/true /bin/echo
";

#[test]
fn an_instance_profile_installs_and_reinstalls_only_what_changed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let report = run(root, INSTANCE).expect("installs");
    assert_eq!(
        report.installed,
        vec![
            "directory",
            "port",
            "password",
            "service",
            "promise",
            "config",
            "links"
        ]
    );
    assert_eq!(mode(&root.join("etc/service")), 0o700);

    let wrapper = root.join("etc/service/hello");
    assert_eq!(mode(&wrapper), 0o755);
    let output = std::process::Command::new(&wrapper)
        .arg("world")
        .output()
        .expect("wrapper runs");
    let port = std::fs::read_to_string(root.join("parts/port.port")).expect("port kept");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("hello {} world\n", port.trim())
    );

    let config = std::fs::read_to_string(root.join("etc/app.conf")).expect("config");
    let password = std::fs::read_to_string(root.join("parts/password")).expect("password kept");
    assert_eq!(mode(&root.join("parts/password")), 0o600);
    assert_eq!(password.len(), 12);
    assert_eq!(
        config,
        format!(
            "port = {}\npassword = {password}\nlater = ${{slap-connection:partition-id}}",
            port.trim()
        )
    );
    assert!(std::fs::read_link(root.join("bin/echo")).is_ok_and(|t| t == Path::new("/bin/echo")));

    // Again: nothing changed, nothing is installed again; the password and port are stable.
    let again = run(root, INSTANCE).expect("installs again");
    assert!(again.installed.is_empty(), "{again:?}");
    assert_eq!(again.updated.len(), 7);
    assert_eq!(
        std::fs::read_to_string(root.join("parts/password")).expect("password"),
        password
    );

    // A changed part is uninstalled, then installed; a part that left is uninstalled.
    let changed = INSTANCE
        .replace(
            "wrapper-path = ${directory:service}/hello",
            "wrapper-path = ${directory:service}/hello2",
        )
        .replace(
            "parts = directory service promise config links",
            "parts = directory service promise config",
        );
    let third = run(root, &changed).expect("installs the change");
    assert_eq!(third.installed, vec!["service"]);
    assert_eq!(third.uninstalled, vec!["links"]);
    assert!(
        !wrapper.exists(),
        "the old wrapper went with its old options"
    );
    assert!(root.join("etc/service/hello2").exists());
    assert!(
        !root.join("bin/echo").exists(),
        "the links went with their part"
    );
}

#[test]
fn the_port_promise_tells_listening_from_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let profile = format!(
        "[buildout]\nparts = promise\n[promise]\nrecipe = slapos.cookbook:check_port_listening\n\
         path = ${{buildout:directory}}/promise\nhostname = 127.0.0.1\nport = {port}\n"
    );
    run(dir.path(), &profile).expect("installs");
    let promise = dir.path().join("promise");
    assert!(
        std::process::Command::new(&promise)
            .status()
            .expect("runs")
            .success()
    );
    drop(listener);
    let failed = std::process::Command::new(&promise).output().expect("runs");
    assert!(!failed.status.success());
    assert!(
        String::from_utf8_lossy(&failed.stderr)
            .contains(&format!("nothing listens on 127.0.0.1 port {port}"))
    );
}

/// Answers every connection with `status`, until the listener is dropped with the thread.
fn http_server(status: &'static str) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 1024];
            let _ = std::io::Read::read(&mut stream, &mut request);
            let answer =
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = std::io::Write::write_all(&mut stream, answer.as_bytes());
        }
    });
    port
}

#[test]
fn the_url_promise_checks_the_status_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ok = http_server("200 OK");
    let missing = http_server("404 Not Found");
    let profile = format!(
        "[buildout]\nparts = ok missing custom\n\
         [ok]\nrecipe = slapos.cookbook:check_url_available\npath = ${{buildout:directory}}/ok\n\
         url = http://127.0.0.1:{ok}/\n\
         [missing]\nrecipe = slapos.cookbook:check_url_available\npath = ${{buildout:directory}}/missing\n\
         url = http://127.0.0.1:{missing}/health\n\
         [custom]\nrecipe = slapos.cookbook:check_url_available\npath = ${{buildout:directory}}/custom\n\
         url = http://127.0.0.1:{missing}/\nhttp_code = 404\n"
    );
    run(dir.path(), &profile).expect("installs");
    let promise = |name: &str| {
        std::process::Command::new(dir.path().join(name))
            .output()
            .expect("runs")
    };
    assert!(promise("ok").status.success());
    assert!(promise("custom").status.success());
    let failed = promise("missing");
    assert!(!failed.status.success());
    assert_eq!(
        String::from_utf8_lossy(&failed.stderr),
        format!("http://127.0.0.1:{missing}/health answered 404, expected 200\n")
    );

    let error = run(
        dir.path(),
        "[buildout]\nparts = bad\n[bad]\nrecipe = slapos.cookbook:check_url_available\n\
         path = ${buildout:directory}/bad\nurl = http://x/\nhttp_code = OK\n",
    )
    .expect_err("bad code");
    assert_eq!(
        error.to_string(),
        "part bad (recipe slapos.cookbook:check_url_available): http_code \"OK\" is not an HTTP status code"
    );
}

#[test]
fn templates_from_files_are_rendered_and_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let template =
        "name = ${app:name}\nsection = ${:_buildout_section_name_}\nkept = $${instance:value}\n";
    std::fs::write(dir.path().join("instance.cfg.in"), template).expect("write");
    let md5 = "0".repeat(32);
    let profile = format!(
        "[buildout]\nparts = instance\n[app]\nname = hello\n[instance]\nrecipe = slapos.recipe.template\n\
         url = ${{buildout:directory}}/instance.cfg.in\noutput = ${{buildout:directory}}/instance.cfg\nmd5sum = {md5}\n"
    );
    let error = run(dir.path(), &profile).expect_err("bad checksum");
    assert!(error.to_string().contains("md5sum of"), "{error}");
    assert!(
        !dir.path().join("instance.cfg").exists(),
        "nothing written on a bad checksum"
    );
    let profile = profile.replace(&format!("md5sum = {md5}\n"), "");
    run(dir.path(), &profile).expect("installs");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("instance.cfg")).expect("output"),
        "name = hello\nsection = instance\nkept = ${instance:value}\n"
    );
}

#[test]
fn unknown_recipes_and_options_are_errors_naming_the_part() {
    let dir = tempfile::tempdir().expect("tempdir");
    let error = run(
        dir.path(),
        "[buildout]\nparts = egg\n[egg]\nrecipe = zc.recipe.egg\neggs = pyramid\n",
    )
    .expect_err("unknown recipe");
    let message = error.to_string();
    assert!(
        message.contains("zc.recipe.egg") && message.contains("not implemented by Grove"),
        "{message}"
    );
    assert!(message.contains("[egg]"), "{message}");

    let profile = "[buildout]\nparts = w\n[w]\nrecipe = slapos.cookbook:wrapper\n\
                   wrapper-path = ${buildout:directory}/w\ncommand-line = true\npidfile = /tmp/x.pid\n";
    let error = run(dir.path(), profile).expect_err("unsupported option");
    assert_eq!(
        error.to_string(),
        "part w (recipe slapos.cookbook:wrapper): option pidfile is not implemented by Grove"
    );
}

#[test]
fn a_broken_section_nothing_uses_fails_no_install() {
    // A recipe Grove lacks and a broken reference, in a section nothing installs (as
    // SlapOS's components carry): the parts install all the same.
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = "[buildout]\nparts = made\n\
                   [made]\nrecipe = slapos.cookbook:mkdirectory\nd = ${buildout:directory}/d\n\
                   [unused]\nrecipe = zc.recipe.egg\neggs = ${nowhere:eggs}\n";
    run(dir.path(), profile).expect("the parts install");
    assert!(dir.path().join("d").is_dir());
}

#[test]
fn nothing_is_written_outside_the_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    let target = outside.path().join("evil");
    let profile = format!(
        "[buildout]\nparts = w\n[w]\nrecipe = slapos.cookbook:wrapper\nwrapper-path = {}\ncommand-line = true\n",
        target.display()
    );
    let error = run(dir.path(), &profile).expect_err("outside");
    assert!(error.to_string().contains("is outside"), "{error}");
    let sneaky = "[buildout]\nparts = w\n[w]\nrecipe = slapos.cookbook:wrapper\n\
                  wrapper-path = ${buildout:directory}/../../evil\ncommand-line = true\n";
    assert!(run(dir.path(), sneaky).is_err());
    std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).expect("link");
    let through_link = "[buildout]\nparts = w\n[w]\nrecipe = slapos.cookbook:wrapper\n\
                        wrapper-path = ${buildout:directory}/link/evil\ncommand-line = true\n";
    let error = run(dir.path(), through_link).expect_err("through a link");
    assert!(error.to_string().contains("is outside"), "{error}");
    assert!(!target.exists());
}

#[test]
fn commands_run_and_their_locations_are_removed_with_the_part() {
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = "[buildout]\nparts = build\n[build]\nrecipe = plone.recipe.command\n\
                   command = mkdir -p out && echo built > out/file\nlocation = ${buildout:directory}/out\n\
                   stop-on-error = true\n";
    run(dir.path(), profile).expect("installs");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/file")).expect("built"),
        "built\n"
    );
    run(dir.path(), "[buildout]\nparts =\n").expect("uninstalls");
    assert!(!dir.path().join("out").exists());
    let failing = "[buildout]\nparts = build\n[build]\nrecipe = plone.recipe.command\n\
                   command = echo compiling; echo 'no space left' >&2; exit 3\nstop-on-error = yes\n";
    let error = run(dir.path(), failing).expect_err("fails");
    // The error ends with what the command printed, both streams in order.
    assert!(
        error
            .to_string()
            .ends_with("command failed (exit status: 3): echo compiling; echo 'no space left' >&2; exit 3\ncompiling\nno space left"),
        "{error}"
    );
}

#[test]
fn jinja2_templates_render_with_their_context() {
    let dir = tempfile::tempdir().expect("tempdir");
    let template = "\
[buildout]
parts = {{ parts | join(' ') }}
{% for name, port in ports.items() -%}
[{{ name }}]
port = {{ port }}
bin = {{ redis_location }}/bin
address = ${slap-configuration:ipv4-random}
{% endfor -%}
mode = {{ settings.get('mode', 'default') }} of {{ app['name'] }} by {{ who }}
";
    std::fs::write(dir.path().join("instance.cfg.in"), template).expect("write");
    let profile = "\
[buildout]
parts = instance
[redis]
location = /opt/redis
[app]
name = hello
[instance]
recipe = slapos.recipe.template:jinja2
url = ${buildout:directory}/instance.cfg.in
output = ${buildout:directory}/instance.cfg
context =
  key redis_location redis:location
  section app app
  raw who   the builder
  json parts [\"a\", \"b\"]
  json ports {\"a\": 6379, \"b\": 6380}
  json settings {}
";
    run(dir.path(), profile).expect("renders");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("instance.cfg")).expect("output"),
        "[buildout]\nparts = a b\n[a]\nport = 6379\nbin = /opt/redis/bin\naddress = ${slap-configuration:ipv4-random}\n\
         [b]\nport = 6380\nbin = /opt/redis/bin\naddress = ${slap-configuration:ipv4-random}\n\
         mode = default of hello by the builder"
    );
    let undefined = profile.replace("  raw who   the builder\n", "");
    let error = run(dir.path(), &undefined).expect_err("undefined variable");
    assert!(error.to_string().contains("undefined"), "{error}");
    std::fs::write(dir.path().join("who.txt"), "the file").expect("write");
    let from_file = profile.replace(
        "  raw who   the builder\n",
        "  rawfile who ${buildout:directory}/who.txt\n",
    );
    run(dir.path(), &from_file).expect("renders with a file's text");
    assert!(
        std::fs::read_to_string(dir.path().join("instance.cfg"))
            .expect("output")
            .ends_with("by the file")
    );
    let imports = profile.replace("  raw who   the builder\n", "  import who json\n");
    let error = run(dir.path(), &imports).expect_err("import");
    assert!(
        error
            .to_string()
            .contains("context type import is not implemented by Grove"),
        "{error}"
    );
}

/// `import-list` makes library templates importable, as SlapOS's stacks share macros
/// (`file NAME SECTION:OPTION`, `rawfile NAME PATH`); `extensions` minijinja always has
/// are accepted (`do`, loop controls), any other is an error naming it.
#[test]
fn jinja2_templates_import_libraries_and_use_extensions() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("lib.jinja2"),
        "{% macro section(name, port) %}[{{ name }}]\nport = {{ port }}\n{% endmacro %}",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("raw.jinja2"),
        "{% macro hello() %}hi{% endmacro %}",
    )
    .expect("write");
    let profile = "\
[buildout]
parts = instance
[library]
target = ${buildout:directory}/lib.jinja2
[instance]
recipe = slapos.recipe.template:jinja2
extensions = jinja2.ext.do jinja2.ext.loopcontrols
import-list =
  file lib library:target
  rawfile raw ${buildout:directory}/raw.jinja2
inline =
  {% import 'lib' as lib with context %}{% import 'raw' as raw %}
  {%- set ports = [6379, 6380] %}{% do raw.hello() %}
  {%- for p in ports %}{% if p == 6380 %}{% break %}{% endif %}{{ lib.section('redis', p) }}{% endfor %}
  {{- raw.hello() }}
output = ${buildout:directory}/instance.cfg
";
    run(dir.path(), profile).expect("renders");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("instance.cfg")).expect("output"),
        "[redis]\nport = 6379\nhi"
    );
    let unknown = profile.replace("jinja2.ext.loopcontrols", "jinja2.ext.i18n");
    let error = run(dir.path(), &unknown)
        .expect_err("unknown extension")
        .to_string();
    assert!(
        error.contains("extensions: jinja2.ext.i18n is not available in Grove's templates"),
        "{error}"
    );
    let missing = profile.replace("file lib library:target", "file lib library:nowhere");
    let error = run(dir.path(), &missing)
        .expect_err("no such option")
        .to_string();
    assert!(
        error.contains("import-list: no option library:nowhere"),
        "{error}"
    );
}

#[test]
fn buildout_extensions_grove_does_not_need_are_accepted_and_others_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = "[buildout]\nextensions = slapos.rebootstrap\n  slapos.extension.strip slapos.extension.shared\nparts =\n";
    run(dir.path(), profile).expect("not needed, accepted");
    let error = run(
        dir.path(),
        &profile.replace("slapos.extension.strip", "mr.developer"),
    )
    .expect_err("unknown extension")
    .to_string();
    assert!(
        error.contains("buildout extension mr.developer is not implemented by Grove"),
        "{error}"
    );
}

fn md5_of(bytes: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A .tar.gz of `(path, contents, mode)` entries; paths are written as given, even `..`.
fn tarball(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(encoder);
    for (path, contents, mode) in entries {
        let mut header = tar::Header::new_gnu();
        let name = &mut header.as_gnu_mut().expect("gnu header").name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_size(contents.len() as u64);
        header.set_mode(*mode);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder.append(&header, *contents).expect("append");
    }
    builder.into_inner().expect("tar").finish().expect("gzip")
}

#[test]
fn downloads_are_checked_before_they_are_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("source.bin");
    std::fs::write(&source, b"payload").expect("write");
    let good = md5_of(b"payload");
    let profile = format!(
        "[buildout]\nparts = user\n[file]\nrecipe = slapos.recipe.build:download\nurl = {}\nmd5sum = {good}\n\
         [user]\nrecipe = plone.recipe.command\ncommand = cat ${{file:target}} > copied\nstop-on-error = true\n",
        source.display()
    );
    run(dir.path(), &profile).expect("installs");
    assert_eq!(
        std::fs::read(dir.path().join("parts/file/source.bin")).expect("kept"),
        b"payload"
    );
    assert_eq!(
        std::fs::read(dir.path().join("copied")).expect("used"),
        b"payload"
    );

    let other = tempfile::tempdir().expect("tempdir");
    let bad = profile.replace(&good, &"f".repeat(32));
    let error = run(other.path(), &bad).expect_err("bad checksum");
    assert!(error.to_string().contains("md5sum of"), "{error}");
    let kept: Vec<_> = std::fs::read_dir(other.path().join("parts/file"))
        .expect("dir")
        .collect();
    assert!(
        kept.is_empty(),
        "nothing is kept after a bad checksum: {kept:?}"
    );
}

#[test]
fn archives_unpack_inside_their_destination_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("pkg.tar.gz");
    std::fs::write(
        &archive,
        tarball(&[
            ("pkg-1.0/bin/tool", b"#!/bin/sh\necho tool\n", 0o755),
            ("pkg-1.0/README", b"hello", 0o644),
        ]),
    )
    .expect("write");
    let profile = format!(
        "[buildout]\nparts = pkg\n[pkg]\nrecipe = slapos.recipe.build:download-unpacked\nurl = {}\n",
        archive.display()
    );
    run(dir.path(), &profile).expect("installs");
    let tool = dir.path().join("parts/pkg/bin/tool");
    assert_eq!(mode(&tool), 0o755);
    let output = std::process::Command::new(&tool).output().expect("runs");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "tool\n");
    assert_eq!(
        std::fs::read(dir.path().join("parts/pkg/README")).expect("readme"),
        b"hello"
    );

    let evil = dir.path().join("evil.tar.gz");
    std::fs::write(&evil, tarball(&[("../../escaped", b"gotcha", 0o644)])).expect("write");
    let profile = format!(
        "[buildout]\nparts = evil\n[evil]\nrecipe = slapos.recipe.build:download-unpacked\nurl = {}\n",
        evil.display()
    );
    let error = run(dir.path(), &profile).expect_err("escaping entry");
    assert!(error.to_string().contains("outside"), "{error}");
    assert!(!dir.path().join("../escaped").exists() && !dir.path().join("escaped").exists());

    // Links that point out of the destination, absolute or climbing, are refused; one
    // that stays inside is kept.
    for (target, refused) in [
        ("/etc", true),
        ("../../..", true),
        ("sub/../../../x", true),
        ("../bin/tool", false),
    ] {
        let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut builder = tar::Builder::new(encoder);
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o777);
        builder
            .append_link(&mut header, "pkg/lib/link", target)
            .expect("append");
        let bytes = builder.into_inner().expect("tar").finish().expect("gzip");
        let linked = dir.path().join("linked.tar.gz");
        std::fs::write(&linked, bytes).expect("write");
        let profile = format!(
            "[buildout]\nparts = linked\n[linked]\nrecipe = slapos.recipe.build:download-unpacked\nurl = {}\n",
            linked.display()
        );
        let outcome = run(dir.path(), &profile);
        if refused {
            let error = outcome.expect_err(target);
            assert!(
                error.to_string().contains("outside its destination"),
                "{target}: {error}"
            );
            assert!(
                !dir.path().join("parts/linked").exists(),
                "{target}: nothing kept"
            );
        } else {
            outcome.expect(target);
            let link = dir.path().join("parts/linked/lib/link");
            assert_eq!(std::fs::read_link(&link).expect("kept"), Path::new(target));
        }
    }
}
