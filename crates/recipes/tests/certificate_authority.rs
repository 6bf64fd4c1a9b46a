//! A partition's own CA: certificates issued as the profile installs, checked with openssl.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::run;

const PROFILE: &str = "[buildout]\nparts = ca ca-web\n\n\
    [dirs]\nrecipe = slapos.cookbook:mkdirectory\nca-dir = ${buildout:directory}/srv/ca\n\
    requests = ${:ca-dir}/requests\nprivate = ${:ca-dir}/private\ncerts = ${:ca-dir}/certs\n\
    newcerts = ${:ca-dir}/newcerts\nservices = ${buildout:directory}/etc/service\n\n\
    [ca]\nrecipe = slapos.cookbook:certificate_authority\nopenssl-binary = /nonexistent/openssl\n\
    ca-dir = ${dirs:ca-dir}\nrequests-directory = ${dirs:requests}\nwrapper = ${dirs:services}/ca\n\
    ca-private = ${dirs:private}\nca-certs = ${dirs:certs}\nca-newcerts = ${dirs:newcerts}\n\n\
    [ca-web]\n<= ca\nrecipe = slapos.cookbook:certificate_authority.request\n\
    name = web.example\nexecutable = ${buildout:directory}/bin/web\n\
    wrapper = ${dirs:services}/web\nkey-file = ${buildout:directory}/etc/web.key\n\
    cert-file = ${buildout:directory}/etc/web.crt\n";

fn openssl(args: &[&str], dir: &Path) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (CI installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("exists")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn a_request_gets_a_certificate_of_the_partition_ca_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(dir.path(), PROFILE).expect("installs");
    let root = dir.path();
    assert_eq!(mode(&root.join("srv/ca/private")), 0o700);
    assert_eq!(mode(&root.join("srv/ca/private/cakey.pem")), 0o600);
    let verified = openssl(
        &["verify", "-CAfile", "srv/ca/cacert.pem", "etc/web.crt"],
        root,
    );
    assert_eq!(verified.trim(), "etc/web.crt: OK");
    let subject = openssl(&["x509", "-noout", "-subject", "-in", "etc/web.crt"], root);
    assert!(subject.contains("CN = web.example"), "{subject}");
    // The key behind the link is the certificate's.
    let of_cert = openssl(&["x509", "-noout", "-pubkey", "-in", "etc/web.crt"], root);
    let of_key = openssl(&["pkey", "-pubout", "-in", "etc/web.key"], root);
    assert_eq!(of_cert, of_key);
    assert!(
        std::fs::symlink_metadata(root.join("etc/web.key"))
            .expect("link")
            .file_type()
            .is_symlink()
    );
    let wrapper = std::fs::read_to_string(root.join("etc/service/web")).expect("wrapper");
    assert!(
        wrapper.contains(&format!("exec '{}/bin/web'", root.display())),
        "{wrapper}"
    );
    let ca_service = std::fs::read_to_string(root.join("etc/service/ca")).expect("service");
    assert!(
        ca_service.contains(" 'certificate-authority' '--ca-dir' "),
        "{ca_service}"
    );

    // Another run keeps the CA and the certificate.
    let before = std::fs::read(root.join("etc/web.crt")).expect("cert");
    let ca_before = std::fs::read(root.join("srv/ca/cacert.pem")).expect("ca");
    run(dir.path(), &PROFILE.replace("/bin/web", "/bin/web2")).expect("installs again");
    assert_eq!(
        std::fs::read(root.join("etc/web.crt")).expect("cert"),
        before
    );
    assert_eq!(
        std::fs::read(root.join("srv/ca/cacert.pem")).expect("ca"),
        ca_before
    );
}

#[test]
fn given_key_and_certificate_must_match_and_files_are_not_overwritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=given",
            "-keyout",
            "a.key",
            "-out",
            "a.crt",
            "-days",
            "1",
        ],
        root,
    );
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=other",
            "-keyout",
            "b.key",
            "-out",
            "b.crt",
            "-days",
            "1",
        ],
        root,
    );
    let indent = |text: String| text.trim().replace('\n', "\n  ");
    let given = |key: &str, cert: &str| {
        PROFILE.replace(
            "name = web.example\n",
            &format!(
                "name = web.example\nkey-content =\n  {}\ncert-content =\n  {}\n",
                indent(std::fs::read_to_string(root.join(key)).expect("key")),
                indent(std::fs::read_to_string(root.join(cert)).expect("cert")),
            ),
        )
    };
    let error = run(root, &given("a.key", "b.crt"))
        .expect_err("mismatch")
        .to_string();
    assert!(
        error.contains("key-content and cert-content do not belong together"),
        "{error}"
    );

    run(root, &given("a.key", "a.crt")).expect("installs");
    let subject = openssl(&["x509", "-noout", "-subject", "-in", "etc/web.crt"], root);
    assert!(subject.contains("CN = given"), "{subject}");

    // A file where a link goes is the user's: refused, left alone.
    let fresh = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(fresh.path().join("etc")).expect("mkdir");
    std::fs::write(fresh.path().join("etc/web.crt"), "mine").expect("write");
    let error = run(fresh.path(), PROFILE)
        .expect_err("not a link")
        .to_string();
    assert!(error.contains("is there and is not a link"), "{error}");
    assert_eq!(
        std::fs::read_to_string(fresh.path().join("etc/web.crt")).expect("kept"),
        "mine"
    );
}
