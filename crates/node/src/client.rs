//! The master over HTTP, as any principal (the node with its token, the client commands
//! with a user's). Blocking: the agent calls it from blocking tasks.

use std::time::Duration;

use grove_api as api;
use serde::de::DeserializeOwned;

/// Why a call to the master failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// No answer: the master is down or unreachable (the agent goes on offline).
    #[error("cannot reach the master at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("the master answered {status} ({code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the master's answer is not understood: {0}")]
    Answer(String),
    #[error("TLS: {0}")]
    Tls(String),
}

#[derive(Debug, Clone)]
pub struct Client {
    masters: api::masters::Masters,
    authorization: Option<String>,
    /// Replaced whole when the node's certificate is renewed.
    agent: std::sync::Arc<std::sync::RwLock<ureq::Agent>>,
}

/// Who a client is to the master, and which master it trusts: a token, a client
/// certificate, or both; the CA that signed the master's certificate (else the system's
/// roots).
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub token: Option<String>,
    /// The master's CA certificate (PEM).
    pub ca_pem: Option<String>,
    /// A client certificate and its key (PEM).
    pub certificate: Option<(String, String)>,
}

fn tls_error(what: &str) -> impl FnOnce(ureq::Error) -> ClientError + '_ {
    move |e| ClientError::Tls(format!("{what}: {e}"))
}

fn agent(tls: ureq::tls::TlsConfig) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(5)))
        .tls_config(tls)
        .build()
        .into()
}

fn shared(agent: ureq::Agent) -> std::sync::Arc<std::sync::RwLock<ureq::Agent>> {
    std::sync::Arc::new(std::sync::RwLock::new(agent))
}

fn tls_config(identity: &Identity) -> Result<ureq::tls::TlsConfig, ClientError> {
    use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
    let mut tls = TlsConfig::builder();
    if let Some(ca) = &identity.ca_pem {
        let ca = Certificate::from_pem(ca.as_bytes()).map_err(tls_error("the CA certificate"))?;
        tls = tls.root_certs(RootCerts::new_with_certs(&[ca]));
    }
    if let Some((certificate, key)) = &identity.certificate {
        let certificate = Certificate::from_pem(certificate.as_bytes())
            .map_err(tls_error("the client certificate"))?;
        let key = PrivateKey::from_pem(key.as_bytes()).map_err(tls_error("the client key"))?;
        tls = tls.client_cert(Some(ClientCert::new_with_certs(&[certificate], key)));
    }
    Ok(tls.build())
}

impl Client {
    /// A client of the master at `url`, or of the masters of a comma list of URLs (it goes
    /// on with the next when one does not answer).
    pub fn new(url: &str, token: &str) -> Client {
        Client {
            masters: api::masters::Masters::parse(url),
            authorization: Some(format!("Bearer {token}")),
            agent: shared(agent(ureq::tls::TlsConfig::default())),
        }
    }

    /// A client with this identity; fails when a certificate or key does not read.
    pub fn with_identity(url: &str, identity: &Identity) -> Result<Client, ClientError> {
        Ok(Client {
            masters: api::masters::Masters::parse(url),
            authorization: identity.token.as_ref().map(|t| format!("Bearer {t}")),
            agent: shared(agent(tls_config(identity)?)),
        })
    }

    /// Uses this TLS identity from the next call on (a renewed certificate), in this
    /// client and its clones.
    pub fn set_identity(&self, identity: &Identity) -> Result<(), ClientError> {
        let renewed = agent(tls_config(identity)?);
        *self
            .agent
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = renewed;
        Ok(())
    }

    /// Renews this node's certificate: the master signs `csr` for `computer`.
    pub fn renew_certificate(&self, computer: &str, csr: &str) -> Result<api::Joined, ClientError> {
        let request = api::CertificateRequest {
            csr: csr.to_owned(),
        };
        self.call(
            "POST",
            &format!("/v1/computers/{computer}/certificate"),
            Some(&request),
            Duration::from_secs(30),
        )?
        .ok_or_else(|| ClientError::Answer("an empty answer to a certificate renewal".to_owned()))
    }

    /// The CA certificate a master shows, read without trusting it yet: the caller
    /// compares its fingerprint with the one it pins before it trusts anything else.
    pub fn unverified_ca(url: &str) -> Result<api::CaCertificate, ClientError> {
        let tls = ureq::tls::TlsConfig::builder()
            .disable_verification(true)
            .build();
        let client = Client {
            masters: api::masters::Masters::parse(url),
            authorization: None,
            agent: shared(agent(tls)),
        };
        client
            .call("GET", "/v1/ca", None, Duration::from_secs(10))?
            .ok_or_else(|| ClientError::Answer("an empty answer to GET /v1/ca".to_owned()))
    }

    /// Joins with a join token: the master signs `csr` for computer `reference`.
    pub fn join(&self, request: &api::JoinRequest) -> Result<api::Joined, ClientError> {
        self.call("POST", "/v1/join", Some(request), Duration::from_secs(30))?
            .ok_or_else(|| ClientError::Answer("an empty answer to POST /v1/join".to_owned()))
    }

    /// The master that answered last.
    pub fn url(&self) -> &str {
        self.masters.current()
    }

    /// Calls the API (see [`Client::call`]) on the masters in turn while they do not
    /// answer.
    pub fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&dyn Body>,
        timeout: Duration,
    ) -> Result<Option<T>, ClientError> {
        self.masters.call(
            |base| self.call_one(base, method, path, body, timeout),
            |e| matches!(e, ClientError::Unreachable { .. }),
        )
    }

    /// Calls the API on the master at `base`: `body` is sent as JSON, the answer parsed
    /// as JSON (`None` for an empty answer).
    fn call_one<T: DeserializeOwned>(
        &self,
        base: &str,
        method: &str,
        path: &str,
        body: Option<&dyn Body>,
        timeout: Duration,
    ) -> Result<Option<T>, ClientError> {
        let url = format!("{base}{path}");
        let unreachable = |e: ureq::Error| ClientError::Unreachable {
            url: base.to_owned(),
            message: e.to_string(),
        };
        let agent = self
            .agent
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let result = match (method, body) {
            ("GET", _) => {
                let mut request = agent
                    .get(&url)
                    .config()
                    .timeout_global(Some(timeout))
                    .build();
                if let Some(authorization) = &self.authorization {
                    request = request.header("Authorization", authorization);
                }
                request.call()
            }
            (method, body) => {
                let json = body.map(Body::json).transpose()?.unwrap_or_default();
                let builder = match method {
                    "PUT" => agent.put(&url),
                    _ => agent.post(&url),
                };
                let mut request = builder
                    .config()
                    .timeout_global(Some(timeout))
                    .build()
                    .header("Content-Type", "application/json");
                if let Some(authorization) = &self.authorization {
                    request = request.header("Authorization", authorization);
                }
                request.send(json)
            }
        };
        let mut response = result.map_err(unreachable)?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| ClientError::Answer(e.to_string()))?;
        if !(200..300).contains(&status) {
            let (code, message) = match serde_json::from_str::<api::ErrorBody>(&text) {
                Ok(body) => (body.error.code, body.error.message),
                Err(_) => (String::new(), text),
            };
            return Err(ClientError::Refused {
                status,
                code,
                message,
            });
        }
        if text.is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| ClientError::Answer(format!("{method} {path}: {e}")))
    }

    fn send(&self, method: &str, path: &str, body: &dyn Body) -> Result<(), ClientError> {
        self.call::<serde_json::Value>(method, path, Some(body), SHORT)
            .map(|_| ())
    }

    /// The desired state, once it is newer than `after` (waiting up to `wait` for it).
    pub fn desired(
        &self,
        computer: &str,
        after: Option<i64>,
        wait: Duration,
    ) -> Result<api::DesiredState, ClientError> {
        let path = match after {
            Some(after) => format!(
                "/v1/computers/{computer}/desired?after={after}&wait={}",
                wait.as_secs()
            ),
            None => format!("/v1/computers/{computer}/desired"),
        };
        self.call("GET", &path, None, wait + Duration::from_secs(10))?
            .ok_or_else(|| ClientError::Answer("empty desired state".to_owned()))
    }

    pub fn declare_partitions(
        &self,
        computer: &str,
        partitions: &[api::PartitionDeclaration],
    ) -> Result<(), ClientError> {
        self.send(
            "PUT",
            &format!("/v1/computers/{computer}/partitions"),
            &partitions,
        )
    }

    pub fn report_software(
        &self,
        computer: &str,
        report: &api::SoftwareReport,
    ) -> Result<(), ClientError> {
        self.send("PUT", &format!("/v1/computers/{computer}/software"), report)
    }

    pub fn report_state(
        &self,
        instance: i64,
        report: &api::StateReport,
    ) -> Result<(), ClientError> {
        self.send("PUT", &format!("/v1/instances/{instance}/state"), report)
    }

    pub fn set_children(&self, instance: i64, children: &api::Children) -> Result<(), ClientError> {
        self.send(
            "PUT",
            &format!("/v1/instances/{instance}/children"),
            children,
        )
    }

    pub fn report_usage(
        &self,
        computer: &str,
        usage: &api::UsageReport,
    ) -> Result<(), ClientError> {
        self.send("POST", &format!("/v1/computers/{computer}/usage"), usage)
    }

    /// Registers a computer (with a user's or the admin's token).
    pub fn register(
        &self,
        reference: &str,
        labels: std::collections::BTreeMap<String, String>,
    ) -> Result<api::Credentials, ClientError> {
        self.call(
            "POST",
            "/v1/computers",
            Some(&api::NewComputer {
                reference: reference.to_owned(),
                labels,
            }),
            SHORT,
        )?
        .ok_or_else(|| ClientError::Answer("empty registration".to_owned()))
    }
}

pub const SHORT: Duration = Duration::from_secs(30);

/// A request body: anything serializable, behind an object-safe trait.
pub trait Body {
    fn json(&self) -> Result<String, ClientError>;
}

impl<T: serde::Serialize + ?Sized> Body for T {
    fn json(&self) -> Result<String, ClientError> {
        serde_json::to_string(self).map_err(|e| ClientError::Answer(e.to_string()))
    }
}
