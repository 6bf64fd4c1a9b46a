//! The master's transport: HTTPS with one CA for every master on a store (its own, or
//! the operator's), plain HTTP only on loopback.

use std::path::Path;

use grove_master::{MasterConfig, MasterError, TlsOptions, Transport};

fn https(
    dir: &Path,
    store: Option<grove_store::Location>,
    ca: Option<(&Path, &Path)>,
) -> MasterConfig {
    let mut config = MasterConfig::new("127.0.0.1:0".parse().expect("addr"), dir.to_owned());
    config.store = store;
    config.transport = Transport::Https(TlsOptions {
        ca: ca.map(|(cert, key)| (cert.to_owned(), key.to_owned())),
        names: vec!["grove.example".to_owned()],
    });
    config
}

fn write_ca(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let ca = grove_pki::Ca::create(
        name,
        std::time::SystemTime::now(),
        &ring::rand::SystemRandom::new(),
    )
    .expect("ca");
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert, ca.certificate_pem()).expect("write");
    std::fs::write(&key, ca.key_pem()).expect("write");
    (cert, key, ca.fingerprint())
}

#[test]
fn plain_http_is_served_on_loopback_only() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = MasterConfig::new("0.0.0.0:0".parse().expect("addr"), dir.path().join("m"));
    config.transport = Transport::Http;
    let error = runtime
        .block_on(grove_master::start(&config))
        .expect_err("refused");
    assert!(matches!(error, MasterError::PlainNotLoopback(_)), "{error}");
    assert!(
        !dir.path().join("m").exists(),
        "nothing is made for a refused start"
    );
}

#[test]
fn masters_on_one_store_share_one_ca_and_an_operator_ca_must_be_that_one() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = runtime
        .block_on(grove_store::scratch::database())
        .unwrap_or_else(|e| panic!("{e}"));
    let (given, given_key, given_fingerprint) = write_ca(dir.path(), "operator");
    // The first master is given the operator's CA; the second finds it in the store.
    let a = runtime
        .block_on(grove_master::start(&https(
            &dir.path().join("a"),
            Some(store.clone()),
            Some((&given, &given_key)),
        )))
        .expect("master a");
    let b = runtime
        .block_on(grove_master::start(&https(
            &dir.path().join("b"),
            Some(store.clone()),
            None,
        )))
        .expect("master b");
    let fingerprint = |m: &grove_master::RunningMaster| m.ca.as_ref().expect("https").1.clone();
    assert_eq!(fingerprint(&a), given_fingerprint);
    assert_eq!(fingerprint(&b), given_fingerprint);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("b/ca.pem")).expect("ca.pem"),
        std::fs::read_to_string(&given).expect("given")
    );
    // Another operator CA on the same store is refused, saying which is which.
    let (other, other_key, other_fingerprint) = write_ca(dir.path(), "other");
    let error = runtime
        .block_on(grove_master::start(&https(
            &dir.path().join("c"),
            Some(store.clone()),
            Some((&other, &other_key)),
        )))
        .expect_err("refused");
    let message = error.to_string();
    assert!(
        message.contains(&given_fingerprint) && message.contains(&other_fingerprint),
        "{message}"
    );
    // A key that is not the certificate's is refused before anything is stored.
    let error = runtime
        .block_on(grove_master::start(&https(
            &dir.path().join("d"),
            None,
            Some((&given, &other_key)),
        )))
        .expect_err("refused");
    assert!(
        error.to_string().contains("do not belong together"),
        "{error}"
    );
    runtime.block_on(a.stop());
    runtime.block_on(b.stop());
    runtime
        .block_on(grove_store::scratch::drop_database(&store))
        .expect("drop");
}
