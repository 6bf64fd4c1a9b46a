//! The master's TLS: its certificate authority (made at first start, or the operator's,
//! shared by every master on one store), its server certificate (issued by that CA for
//! its names and renewed before it expires), and client certificates, which are asked
//! for and verified against the CA: not required on the main listener (users may send
//! tokens instead), required on the mutual-TLS one (`TlsOptions::mtls_listen`), where a
//! client without a certificate of this CA does not get past the handshake.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use grove_pki::{Ca, Presented};
use grove_store::Store;
use ring::rand::SystemRandom;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

use crate::{MasterError, lock};

/// How the master talks to its clients.
#[derive(Debug, Clone)]
pub enum Transport {
    /// HTTPS with the master's CA (the default of `grove master`).
    Https(TlsOptions),
    /// Plain HTTP, on loopback only: `grove up`, or a master behind a TLS proxy.
    Http,
}

/// The operator's choices for HTTPS.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// The operator's CA certificate and key (PEM files); else the store's, made at first
    /// start.
    pub ca: Option<(PathBuf, PathBuf)>,
    /// Names and addresses the server certificate is for, beside `localhost`, the
    /// loopback addresses, the host name and the listen address.
    pub names: Vec<String>,
    /// A second listener that requires a client certificate of the CA (nodes and
    /// partitions on an untrusted network), serving the same API.
    pub mtls_listen: Option<std::net::SocketAddr>,
}

/// How long the master's server certificate lasts; it is renewed at half of it.
pub const SERVER_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// The CA as the store keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredCa {
    certificate: String,
    key: String,
}

/// The CA every master on this store uses: the stored one; else the operator's or a new
/// one, stored. An operator's CA that differs from the stored one is an error.
pub(crate) async fn certificate_authority<S: Store>(
    store: &S,
    given: Option<&(PathBuf, PathBuf)>,
    rng: &SystemRandom,
) -> Result<Ca, MasterError> {
    let proposed = match given {
        Some((cert, key)) => {
            let read = |path: &Path| {
                std::fs::read_to_string(path).map_err(|source| MasterError::Read {
                    path: path.to_owned(),
                    source,
                })
            };
            Ca::from_pem(&read(cert)?, &read(key)?).map_err(|source| MasterError::Ca {
                what: format!("{} and {}", cert.display(), key.display()),
                source,
            })?
        }
        None => {
            Ca::create("Grove CA", SystemTime::now(), rng).map_err(|source| MasterError::Ca {
                what: "a new CA".to_owned(),
                source,
            })?
        }
    };
    let text = serde_json::to_string(&StoredCa {
        certificate: proposed.certificate_pem().to_owned(),
        key: proposed.key_pem().to_owned(),
    })
    .map_err(|e| MasterError::Internal(e.to_string()))?;
    let stored = store.certificate_authority(text).await?;
    let stored: StoredCa = serde_json::from_str(&stored).map_err(|e| MasterError::Ca {
        what: "the store's CA".to_owned(),
        source: grove_pki::PkiError::NotPem {
            what: e.to_string(),
        },
    })?;
    let ca = Ca::from_pem(&stored.certificate, &stored.key).map_err(|source| MasterError::Ca {
        what: "the store's CA".to_owned(),
        source,
    })?;
    if given.is_some() && ca.fingerprint() != proposed.fingerprint() {
        return Err(MasterError::OtherCa {
            stored: ca.fingerprint(),
            given: proposed.fingerprint(),
        });
    }
    Ok(ca)
}

/// The names the server certificate covers.
pub(crate) fn server_names(listen: std::net::SocketAddr, extra: &[String]) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Ok(host) = rustix::system::uname().nodename().to_str() {
        names.push(host.to_owned());
    }
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    names.extend(extra.iter().cloned());
    names.sort();
    names.dedup();
    names
}

/// Gives rustls the current server certificate; a task replaces it before it expires.
#[derive(Debug)]
pub(crate) struct ServerCertificate {
    current: Mutex<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ServerCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&lock(&self.current)))
    }
}

fn certified_key(
    ca: &Ca,
    names: &[String],
    rng: &SystemRandom,
) -> Result<CertifiedKey, MasterError> {
    let issued = ca
        .issue_server(names, SystemTime::now(), SERVER_LIFETIME, rng)
        .map_err(|source| MasterError::Ca {
            what: "the server certificate".to_owned(),
            source,
        })?;
    let bad = |what: &str| MasterError::Internal(format!("the server certificate's {what}"));
    let chain = vec![
        CertificateDer::from_pem_slice(issued.certificate_pem.as_bytes())
            .map_err(|_| bad("certificate"))?,
        CertificateDer::from(ca.der().to_vec()),
    ];
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).map_err(|_| bad("key"))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider).map_err(|e| bad(&e.to_string()))
}

/// The TLS side of a master: what accepts connections.
#[derive(Clone)]
pub(crate) struct Tls {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

impl Tls {
    /// `required`: a client without a certificate of the CA fails the handshake.
    pub(crate) fn new(
        ca: &Arc<Ca>,
        names: Vec<String>,
        required: bool,
    ) -> Result<Tls, MasterError> {
        let rng = SystemRandom::new();
        let resolver = Arc::new(ServerCertificate {
            current: Mutex::new(Arc::new(certified_key(ca, &names, &rng)?)),
        });
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(ca.der().to_vec()))
            .map_err(|e| MasterError::Internal(format!("the CA as a root: {e}")))?;
        let verifier =
            WebPkiClientVerifier::builder_with_provider(roots.into(), Arc::clone(&provider));
        let verifier = if required {
            verifier
        } else {
            verifier.allow_unauthenticated()
        };
        let clients = verifier
            .build()
            .map_err(|e| MasterError::Internal(format!("the client verifier: {e}")))?;
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| MasterError::Internal(e.to_string()))?
            .with_client_cert_verifier(clients)
            .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
        tokio::spawn(renew(Arc::downgrade(&resolver), Arc::clone(ca), names));
        Ok(Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }
}

/// Issues a new server certificate at half the life of the current one.
async fn renew(resolver: std::sync::Weak<ServerCertificate>, ca: Arc<Ca>, names: Vec<String>) {
    let rng = SystemRandom::new();
    loop {
        tokio::time::sleep(SERVER_LIFETIME / 2).await;
        let Some(resolver) = resolver.upgrade() else {
            return;
        };
        match certified_key(&ca, &names, &rng) {
            Ok(key) => {
                *lock(&resolver.current) = Arc::new(key);
                tracing::info!("server certificate renewed");
            }
            Err(e) => tracing::error!(error = %e, "cannot renew the server certificate"),
        }
    }
}

/// Who the client's certificate says it is, if it sent one (TLS verified its chain).
pub(crate) fn peer(connection: &rustls::ServerConnection) -> Option<Presented> {
    let der = connection.peer_certificates()?.first()?;
    match grove_pki::presented(der) {
        Ok(presented) => Some(presented),
        Err(e) => {
            tracing::debug!(error = %e, "a client certificate names no holder");
            None
        }
    }
}
