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
        mtls_listen: None,
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

/// The mutual-TLS listener: a client without a certificate of the CA does not get past
/// the handshake (a token is not enough there), one with a node's certificate is served,
/// and the same API answers on the main listener for tokens.
#[test]
fn the_mutual_tls_listener_refuses_clients_without_a_certificate_at_the_handshake() {
    use grove_client::{Client, ClientError, Identity};
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = https(&dir.path().join("m"), None, None);
    if let Transport::Https(options) = &mut config.transport {
        options.mtls_listen = Some("127.0.0.1:0".parse().expect("addr"));
    }
    let master = runtime
        .block_on(grove_master::start(&config))
        .expect("master");
    let mtls = master.mtls_url().expect("a mutual-TLS listener");
    let ca = std::fs::read_to_string(&master.ca.as_ref().expect("https").0).expect("ca");
    let admin = std::fs::read_to_string(&master.admin_token_path).expect("token");
    let with = |url: &str, token: Option<&str>, certificate: Option<(String, String)>| {
        Client::new(
            url,
            &Identity {
                token: token.map(str::to_owned),
                ca_pem: Some(ca.clone()),
                certificate,
            },
        )
        .expect("client")
    };
    // Tokens: served on the main listener, refused at the handshake on the other.
    let on_main = with(&master.url(), Some(admin.trim()), None);
    on_main.list_computers().expect("the admin's token");
    let refused = with(&mtls, Some(admin.trim()), None)
        .list_computers()
        .expect_err("no certificate");
    assert!(
        matches!(refused, ClientError::Unreachable { .. }),
        "the handshake fails: {refused}"
    );
    // A node joins on the main listener, then works on the mutual-TLS one.
    let token = on_main
        .create_join_token(&grove_api::NewJoinToken {
            ttl_seconds: None,
            labels: Default::default(),
        })
        .expect("join token");
    let (key, csr) =
        grove_pki::request(&grove_pki::Identity::Computer("n1".to_owned())).expect("csr");
    let joined = with(&master.url(), None, None)
        .join(&grove_api::JoinRequest {
            token: token.token,
            reference: "n1".to_owned(),
            csr,
        })
        .expect("joined");
    let node = with(&mtls, None, Some((joined.certificate, key)));
    node.desired("n1", None, std::time::Duration::ZERO)
        .expect("served over mutual TLS");
    // A certificate of another CA fails the handshake there too.
    let stranger = grove_pki::Ca::create(
        "stranger",
        std::time::SystemTime::now(),
        &ring::rand::SystemRandom::new(),
    )
    .expect("ca")
    .issue_client(
        &grove_pki::Identity::Computer("n1".to_owned()),
        std::time::SystemTime::now(),
        std::time::Duration::from_secs(600),
        &ring::rand::SystemRandom::new(),
    )
    .expect("issued");
    let foreign = with(
        &mtls,
        None,
        Some((stranger.certificate_pem, stranger.key_pem)),
    )
    .desired("n1", None, std::time::Duration::ZERO)
    .expect_err("another CA");
    assert!(
        matches!(foreign, ClientError::Unreachable { .. }),
        "the handshake fails: {foreign}"
    );
    // An expired certificate of this very CA (made with the CA's key from the data
    // directory, a day past its end) fails the handshake on both listeners.
    let own_ca = grove_pki::Ca::from_pem(
        &ca,
        &std::fs::read_to_string(dir.path().join("m/ca.key")).expect("ca.key"),
    )
    .expect("the master's CA");
    let expired = own_ca
        .issue_client(
            &grove_pki::Identity::Computer("n1".to_owned()),
            std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86_400),
            std::time::Duration::from_secs(86_400),
            &ring::rand::SystemRandom::new(),
        )
        .expect("issued");
    for url in [master.url(), mtls.clone()] {
        let old = with(
            &url,
            None,
            Some((expired.certificate_pem.clone(), expired.key_pem.clone())),
        )
        .desired("n1", None, std::time::Duration::ZERO)
        .expect_err("expired");
        assert!(
            matches!(old, ClientError::Unreachable { .. }),
            "{url}: the handshake fails: {old}"
        );
    }
    runtime.block_on(master.stop());
}
