//! Grove's certificate authority: the master's CA, the certificates it issues to itself,
//! to nodes and to partitions, and what a presented certificate says about its holder.
//!
//! Keys are ECDSA P-256, made and used with ring. A certificate names its holder in its
//! subject: the common name is the holder's name (a computer's reference, an instance's
//! id, a user's name) and the organizational unit its kind (`computer`, `partition`,
//! `user`). The CA's fingerprint (SHA-256 of its DER) is what a joining node pins.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use ring::rand::SecureRandom;

/// How long a CA made by the master lasts.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Certificates start this much before they are issued, for clocks a little behind.
const BACKDATE: Duration = Duration::from_secs(300);

/// Why a certificate or key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{what}: {source}")]
    Rcgen {
        what: &'static str,
        source: rcgen::Error,
    },
    #[error("{what} is not a PEM certificate")]
    NotPem { what: String },
    #[error("{what} is not a valid X.509 certificate")]
    NotCertificate { what: String },
    #[error("the CA certificate and key do not belong together")]
    Mismatch,
    #[error("the certificate names no {0} (its subject has no common name or unit)")]
    NoIdentity(&'static str),
    #[error("the system random source failed")]
    Random,
}

pub type Result<T, E = PkiError> = std::result::Result<T, E>;

fn rcgen_error(what: &'static str) -> impl FnOnce(rcgen::Error) -> PkiError {
    move |source| PkiError::Rcgen { what, source }
}

/// Who a certificate is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// A node agent, acting for this computer (by reference).
    Computer(String),
    /// A partition, acting as the instance with this id.
    Partition(i64),
    /// A user or the admin (by name).
    User(String),
    /// The master itself (its server certificate).
    Master,
}

impl Identity {
    fn unit(&self) -> &'static str {
        match self {
            Identity::Computer(_) => "computer",
            Identity::Partition(_) => "partition",
            Identity::User(_) => "user",
            Identity::Master => "master",
        }
    }

    fn name(&self) -> String {
        match self {
            Identity::Computer(reference) => reference.clone(),
            Identity::Partition(instance) => instance.to_string(),
            Identity::User(name) => name.clone(),
            Identity::Master => "grove master".to_owned(),
        }
    }

    fn from_subject(unit: &str, name: &str) -> Option<Identity> {
        match unit {
            "computer" => Some(Identity::Computer(name.to_owned())),
            "partition" => name.parse().ok().map(Identity::Partition),
            "user" => Some(Identity::User(name.to_owned())),
            "master" => Some(Identity::Master),
            _ => None,
        }
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.unit(), self.name())
    }
}

/// A certificate and its private key, in PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub certificate_pem: String,
    pub key_pem: String,
    /// The serial number, in hex: what the master stores to refuse a revoked certificate.
    pub serial: String,
    pub not_after: SystemTime,
}

/// What a presented certificate says (its chain already verified by TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    pub identity: Identity,
    pub serial: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Presented {
    /// Whether its holder should renew it: past half of its life.
    pub fn due_for_renewal(&self, now: SystemTime) -> bool {
        let life = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default();
        now >= self.not_before + life / 2
    }
}

/// The SHA-256 of a certificate's DER, as 64 lowercase hex digits.
pub fn fingerprint(der: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The DER of each certificate in a PEM text, in order.
pub fn certificates_der(pem: &str, what: &str) -> Result<Vec<Vec<u8>>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let certificates: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|_| PkiError::NotPem {
            what: what.to_owned(),
        })?;
    if certificates.is_empty() {
        return Err(PkiError::NotPem {
            what: what.to_owned(),
        });
    }
    Ok(certificates)
}

/// Reads who a certificate (DER) is for.
pub fn presented(der: &[u8]) -> Result<Presented> {
    let (_, certificate) =
        x509_parser::parse_x509_certificate(der).map_err(|_| PkiError::NotCertificate {
            what: "the presented certificate".to_owned(),
        })?;
    let subject = certificate.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|n| n.as_str().ok())
        .ok_or(PkiError::NoIdentity("holder"))?;
    let unit = subject
        .iter_organizational_unit()
        .next()
        .and_then(|n| n.as_str().ok())
        .ok_or(PkiError::NoIdentity("kind of holder"))?;
    let identity = Identity::from_subject(unit, name).ok_or(PkiError::NoIdentity("known kind"))?;
    let time = |seconds: i64| {
        SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
    };
    Ok(Presented {
        identity,
        serial: hex(certificate.raw_serial()),
        not_before: time(certificate.validity().not_before.timestamp()),
        not_after: time(certificate.validity().not_after.timestamp()),
    })
}

fn random_serial(rng: &dyn SecureRandom) -> Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes).map_err(|_| PkiError::Random)?;
    // Positive and without a leading zero byte, so that it reads back as written.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

fn validity(params: &mut CertificateParams, now: SystemTime, lifetime: Duration) {
    params.not_before = time::OffsetDateTime::from(now - BACKDATE);
    params.not_after = time::OffsetDateTime::from(now + lifetime);
}

fn subject(params: &mut CertificateParams, identity: &Identity) {
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, identity.name());
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, identity.unit());
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Grove");
}

/// A new key pair and a certificate signing request naming `identity` (what a joining
/// node sends; its key never leaves the node).
pub fn request(identity: &Identity) -> Result<(String, String)> {
    let key = KeyPair::generate().map_err(rcgen_error("cannot make a key"))?;
    let mut params = CertificateParams::default();
    subject(&mut params, identity);
    let csr = params
        .serialize_request(&key)
        .map_err(rcgen_error("cannot make a certificate request"))?;
    let csr = csr
        .pem()
        .map_err(rcgen_error("cannot write a certificate request"))?;
    Ok((key.serialize_pem(), csr))
}

/// The master's certificate authority.
pub struct Ca {
    certificate_pem: String,
    key_pem: String,
    der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// A new CA, valid for [`CA_VALIDITY`] from `now`.
    pub fn create(name: &str, now: SystemTime, rng: &dyn SecureRandom) -> Result<Ca> {
        let key = KeyPair::generate().map_err(rcgen_error("cannot make the CA key"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Grove");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial(rng)?);
        validity(&mut params, now, CA_VALIDITY);
        let certificate = params
            .self_signed(&key)
            .map_err(rcgen_error("cannot sign the CA certificate"))?;
        let certificate_pem = certificate.pem();
        let key_pem = key.serialize_pem();
        Ca::from_pem(&certificate_pem, &key_pem)
    }

    /// The CA in these PEM texts (an operator's, or one kept in the store).
    pub fn from_pem(certificate_pem: &str, key_pem: &str) -> Result<Ca> {
        let der = certificates_der(certificate_pem, "the CA certificate")?
            .into_iter()
            .next()
            .ok_or_else(|| PkiError::NotPem {
                what: "the CA certificate".to_owned(),
            })?;
        let key = KeyPair::from_pem(key_pem).map_err(rcgen_error("the CA key"))?;
        let (_, parsed) =
            x509_parser::parse_x509_certificate(&der).map_err(|_| PkiError::NotCertificate {
                what: "the CA certificate".to_owned(),
            })?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(PkiError::Mismatch);
        }
        let issuer = Issuer::from_ca_cert_der(&der.clone().into(), key)
            .map_err(rcgen_error("the CA certificate"))?;
        Ok(Ca {
            certificate_pem: certificate_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            der,
            issuer,
        })
    }

    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// What a joining node pins.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.der)
    }

    /// A server certificate for the master, for these DNS names and IP addresses.
    pub fn issue_server(
        &self,
        names: &[String],
        now: SystemTime,
        lifetime: Duration,
        rng: &dyn SecureRandom,
    ) -> Result<Issued> {
        let key = KeyPair::generate().map_err(rcgen_error("cannot make the server key"))?;
        let mut params = CertificateParams::default();
        subject(&mut params, &Identity::Master);
        params.subject_alt_names = names
            .iter()
            .map(|name| match name.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => name
                    .as_str()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(|source| PkiError::Rcgen {
                        what: "a server name",
                        source,
                    }),
            })
            .collect::<Result<_>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign_with_new_key(params, &key, now, lifetime, rng)
    }

    /// Signs a certificate request for `identity`, whatever name the request asked for:
    /// the master decides who a certificate is for. Returns the certificate (PEM), its
    /// serial and its end.
    pub fn sign_request(
        &self,
        csr_pem: &str,
        identity: &Identity,
        now: SystemTime,
        lifetime: Duration,
        rng: &dyn SecureRandom,
    ) -> Result<(String, String, SystemTime)> {
        let request = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(rcgen_error("the certificate request"))?;
        let mut params = CertificateParams::default();
        subject(&mut params, identity);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params, &request.public_key, now, lifetime, rng)
    }

    /// A key and a certificate for `identity`, made here (for partitions, whose keys the
    /// node's master writes into their directories).
    pub fn issue_client(
        &self,
        identity: &Identity,
        now: SystemTime,
        lifetime: Duration,
        rng: &dyn SecureRandom,
    ) -> Result<Issued> {
        let key = KeyPair::generate().map_err(rcgen_error("cannot make a key"))?;
        let mut params = CertificateParams::default();
        subject(&mut params, identity);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign_with_new_key(params, &key, now, lifetime, rng)
    }

    /// A key and a certificate named `name` (its common name, and its subject
    /// alternative name when it is a host name or an address), for serving and for
    /// client authentication: what a partition's own CA gives its services.
    pub fn issue_named(
        &self,
        name: &str,
        now: SystemTime,
        lifetime: Duration,
        rng: &dyn SecureRandom,
    ) -> Result<Issued> {
        let key = KeyPair::generate().map_err(rcgen_error("cannot make a key"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        let alternative = match name.parse::<std::net::IpAddr>() {
            Ok(ip) => Some(SanType::IpAddress(ip)),
            Err(_) => name.try_into().ok().map(SanType::DnsName),
        };
        params.subject_alt_names = alternative.into_iter().collect();
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.sign_with_new_key(params, &key, now, lifetime, rng)
    }

    /// Signs `params` for a key made here; the certificate and that key.
    fn sign_with_new_key(
        &self,
        params: CertificateParams,
        key: &KeyPair,
        now: SystemTime,
        lifetime: Duration,
        rng: &dyn SecureRandom,
    ) -> Result<Issued> {
        let (certificate_pem, serial, not_after) = self.sign(params, key, now, lifetime, rng)?;
        Ok(Issued {
            certificate_pem,
            key_pem: key.serialize_pem(),
            serial,
            not_after,
        })
    }

    fn sign(
        &self,
        mut params: CertificateParams,
        public_key: &impl rcgen::PublicKeyData,
        now: SystemTime,
        lifetime: Duration,
        rng: &dyn SecureRandom,
    ) -> Result<(String, String, SystemTime)> {
        let serial = random_serial(rng)?;
        let serial_hex = hex(&serial.to_bytes());
        params.serial_number = Some(serial);
        // Every certificate the CA issues signs (handshakes), nothing else.
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, now, lifetime);
        let certificate = params
            .signed_by(public_key, &self.issuer)
            .map_err(rcgen_error("cannot sign a certificate"))?;
        Ok((certificate.pem(), serial_hex, now + lifetime))
    }
}

#[cfg(test)]
mod tests;
