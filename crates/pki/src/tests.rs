use std::time::{Duration, SystemTime};

use ring::rand::SystemRandom;

use super::*;

fn ca() -> Ca {
    Ca::create("test CA", SystemTime::now(), &SystemRandom::new()).expect("CA")
}

#[test]
fn a_signed_request_names_whom_the_ca_says_not_whom_it_asks() {
    let ca = ca();
    let (_key, csr) = request(&Identity::Computer("asked-for".to_owned())).expect("request");
    let (pem, serial, _) = ca
        .sign_request(
            &csr,
            &Identity::Computer("COMP-7".to_owned()),
            SystemTime::now(),
            Duration::from_secs(3600),
            &SystemRandom::new(),
        )
        .expect("signed");
    let der = certificates_der(&pem, "test").expect("pem").remove(0);
    let seen = presented(&der).expect("presented");
    assert_eq!(seen.identity, Identity::Computer("COMP-7".to_owned()));
    assert_eq!(seen.serial, serial);
    // Backdated five minutes: an hour's certificate is due at 25 minutes of its life.
    let now = SystemTime::now();
    assert!(!seen.due_for_renewal(now + Duration::from_secs(20 * 60)));
    assert!(seen.due_for_renewal(now + Duration::from_secs(30 * 60)));
}

#[test]
fn every_kind_of_holder_reads_back() {
    let ca = ca();
    for identity in [
        Identity::Computer("node-1".to_owned()),
        Identity::Partition(42),
        Identity::User("alice".to_owned()),
    ] {
        let issued = ca
            .issue_client(
                &identity,
                SystemTime::now(),
                Duration::from_secs(60),
                &SystemRandom::new(),
            )
            .expect("issued");
        let der = certificates_der(&issued.certificate_pem, "test")
            .expect("pem")
            .remove(0);
        assert_eq!(presented(&der).expect("presented").identity, identity);
    }
}

#[test]
fn a_ca_reloads_from_its_pem_and_refuses_a_foreign_key() {
    let first = ca();
    let again = Ca::from_pem(first.certificate_pem(), first.key_pem()).expect("reloaded");
    assert_eq!(again.fingerprint(), first.fingerprint());
    assert_eq!(first.fingerprint().len(), 64);
    let other = ca();
    assert!(matches!(
        Ca::from_pem(first.certificate_pem(), other.key_pem()),
        Err(PkiError::Mismatch)
    ));
    assert!(matches!(
        Ca::from_pem("not a certificate", first.key_pem()),
        Err(PkiError::NotPem { .. })
    ));
}

/// The certificates verify as TLS does it: a client certificate of this CA passes the
/// client verifier, one of another CA does not.
#[test]
fn client_certificates_verify_against_their_ca_only() {
    use rustls::pki_types::{CertificateDer, UnixTime};
    use rustls::server::WebPkiClientVerifier;
    let ca = ca();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.der().to_vec()))
        .expect("root");
    let verifier = WebPkiClientVerifier::builder_with_provider(
        roots.into(),
        rustls::crypto::ring::default_provider().into(),
    )
    .build()
    .expect("verifier");
    let now = UnixTime::now();
    let issued = |ca: &Ca| {
        let issued = ca
            .issue_client(
                &Identity::Computer("c".to_owned()),
                SystemTime::now(),
                Duration::from_secs(60),
                &SystemRandom::new(),
            )
            .expect("issued");
        CertificateDer::from(
            certificates_der(&issued.certificate_pem, "t")
                .expect("pem")
                .remove(0),
        )
    };
    assert!(verifier.verify_client_cert(&issued(&ca), &[], now).is_ok());
    assert!(
        verifier
            .verify_client_cert(&issued(&self::ca()), &[], now)
            .is_err()
    );
    let expired = ca
        .issue_client(
            &Identity::Computer("c".to_owned()),
            SystemTime::now() - Duration::from_secs(7200),
            Duration::from_secs(60),
            &SystemRandom::new(),
        )
        .expect("issued");
    let expired = CertificateDer::from(
        certificates_der(&expired.certificate_pem, "t")
            .expect("pem")
            .remove(0),
    );
    assert!(verifier.verify_client_cert(&expired, &[], now).is_err());
}

proptest::proptest! {
    #[test]
    fn reading_any_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        let _ = presented(&bytes);
        let _ = certificates_der(&String::from_utf8_lossy(&bytes), "fuzz");
    }
}
