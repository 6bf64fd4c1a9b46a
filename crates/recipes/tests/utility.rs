//! The small instance-side recipes of SlapOS's catalogue: templates, links, URLs, the
//! user, directories.

mod common;

use common::run;

#[test]
fn collective_templates_fill_in_the_profile() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("conf.in"),
        "port = ${db:port}\npath = ${:output}\n",
    )
    .expect("write");
    let profile = "[buildout]\nparts = conf inline\n[db]\nport = 5432\n\
                   [conf]\nrecipe = collective.recipe.template\ninput = ${buildout:directory}/conf.in\n\
                   output = ${buildout:directory}/etc/db.conf\nmode = 0600\n\
                   [inline]\nrecipe = collective.recipe.template\ninline = port ${db:port}\n\
                   output = ${buildout:directory}/etc/inline.conf\n";
    run(dir.path(), profile).expect("renders");
    let conf = dir.path().join("etc/db.conf");
    assert_eq!(
        std::fs::read_to_string(&conf).expect("output"),
        format!("port = 5432\npath = {}\n", conf.display())
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&conf).expect("meta").permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("etc/inline.conf")).expect("output"),
        "port 5432"
    );
    std::fs::write(dir.path().join("conf.in"), "port = ${db:nope}\n").expect("write");
    let error = run(dir.path(), profile)
        .expect_err("unknown option")
        .to_string();
    assert!(error.contains("db:nope"), "{error}");
}

#[test]
fn symlinks_are_made_inside_the_directory_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().canonicalize().expect("canonical");
    std::fs::create_dir_all(root.join("var/log")).expect("mkdir");
    let profile = format!(
        "[buildout]\nparts = links\n[links]\nrecipe = cns.recipe.symlink\n\
         symlink =\n  {root}/var/log = {root}/public/log\n  results\n\
         symlink_base = {root}/var\nsymlink_target = {root}/public\nautocreate = true\n",
        root = root.display()
    );
    run(&root, &profile).expect("links");
    assert_eq!(
        std::fs::read_link(root.join("public/log")).expect("a link"),
        root.join("var/log")
    );
    assert_eq!(
        std::fs::read_link(root.join("public/results")).expect("a link"),
        root.join("var/results")
    );
    // Again: the links are replaced, not refused.
    run(&root, &profile).expect("links again");
    let outside = profile.replace(
        &format!("{}/public/log", root.display()),
        "/tmp/grove-outside-link",
    );
    let error = run(&root, &outside).expect_err("outside").to_string();
    assert!(error.contains("outside"), "{error}");
    assert!(std::fs::symlink_metadata("/tmp/grove-outside-link").is_err());
}

#[test]
fn urls_are_split_and_the_user_is_known() {
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = "[buildout]\nparts = out\n\
                   [db]\nrecipe = slapos.cookbook:urlparse\nurl = mysql://alice:s3cret@[2001:db8::1]:3306/shop;x?ssl=1#top\n\
                   [me]\nrecipe = slapos.cookbook:userinfo\n\
                   [dirs]\nrecipe = slapos.recipe.build:mkdirectory\ndata = ${buildout:directory}/srv/data\n\
                   [out]\nrecipe = collective.recipe.template\n\
                   inline = ${db:scheme} ${db:username} ${db:password} ${db:host} ${db:port} ${db:path} ${db:params} ${db:query} ${db:fragment} ${me:pw-uid} ${dirs:data}\n\
                   output = ${buildout:directory}/out.txt\n";
    run(
        dir.path(),
        &profile.replace("parts = out", "parts = dirs out"),
    )
    .expect("runs");
    let uid = nix::unistd::geteuid();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.txt")).expect("output"),
        format!(
            "mysql alice s3cret 2001:db8::1 3306 /shop x ssl=1 top {uid} {}/srv/data",
            dir.path().display()
        )
    );
    assert!(dir.path().join("srv/data").is_dir());
    let error = run(
        dir.path(),
        &profile.replace("mysql://alice", "not a url alice"),
    )
    .expect_err("bad url")
    .to_string();
    assert!(error.contains("url \"not a url alice"), "{error}");
}

#[test]
fn a_random_time_stays_and_a_simple_logger_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = "[buildout]\nparts = logger out\n\
                   [when]\nrecipe = slapos.cookbook:random.time\n\
                   [fixed]\nrecipe = slapos.cookbook:random.time\ntime = 3:15\n\
                   [logger]\nrecipe = slapos.cookbook:simplelogger\n\
                   wrapper = ${buildout:directory}/bin/log-it\nlog = ${buildout:directory}/var/it's.log\n\
                   [out]\nrecipe = collective.recipe.template\ninline = ${when:time} ${fixed:time}\n\
                   output = ${buildout:directory}/times.txt\n";
    std::fs::create_dir_all(dir.path().join("var")).expect("mkdir");
    run(dir.path(), profile).expect("runs");
    let times = std::fs::read_to_string(dir.path().join("times.txt")).expect("output");
    let (when, fixed) = times.split_once(' ').expect("two times");
    assert_eq!(fixed, "3:15");
    let (hour, minute) = when.split_once(':').expect("H:MM");
    assert!(hour.parse::<u32>().is_ok_and(|h| h < 24), "{when}");
    assert!(
        minute.len() == 2 && minute.parse::<u32>().is_ok_and(|m| m < 60),
        "{when}"
    );
    run(dir.path(), profile).expect("runs again");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("times.txt")).expect("output"),
        times,
        "the same time on every run"
    );

    let mut child = std::process::Command::new(dir.path().join("bin/log-it"))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("the wrapper runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"first\nsecond")
        .expect("write");
    assert!(child.wait().expect("waits").success());
    let log = std::fs::read_to_string(dir.path().join("var/it's.log")).expect("logged");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(
        lines[0].ends_with(": first") && lines[1].ends_with(": second"),
        "{log}"
    );
    assert!(lines[2].ends_with(": ------------------------"), "{log}");
}
