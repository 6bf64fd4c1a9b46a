//! How a call reaches the master: identity and trust, the masters of a cloud in turn,
//! and what an answer means.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use grove_api as api;
use grove_api::endpoints::Operation;
use serde::de::DeserializeOwned;

/// The time a call may take, but for long polls.
pub const SHORT: Duration = Duration::from_secs(30);

/// What a long poll adds to the wait it asks the master for.
pub const LONG_POLL_MARGIN: Duration = Duration::from_secs(10);

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
    #[error("the master's answer to {operation} is not understood: {message}")]
    Answer {
        operation: &'static str,
        message: String,
    },
    #[error("TLS: {0}")]
    Tls(String),
}

impl ClientError {
    /// The HTTP status the master answered with, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
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

impl Identity {
    /// A token, trusting the system's roots.
    pub fn token(token: &str) -> Identity {
        Identity {
            token: Some(token.to_owned()),
            ..Identity::default()
        }
    }
}

/// A client of the master (or of the masters of one cloud). Cloning it is cheap; clones
/// share the TLS identity, which [`Client::set_identity`] replaces for all of them.
#[derive(Debug, Clone)]
pub struct Client {
    masters: api::masters::Masters,
    authorization: Arc<RwLock<Option<String>>>,
    agent: Arc<RwLock<ureq::Agent>>,
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

fn bearer(identity: &Identity) -> Option<String> {
    identity.token.as_ref().map(|t| format!("Bearer {t}"))
}

/// Bytes of a path segment sent as they are; the others are percent-encoded.
pub(crate) fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The operation's path with its one placeholder (`{reference}`, `{id}`, `{name}`)
/// filled in.
pub(crate) fn path(operation: Operation, argument: Option<&str>) -> String {
    let template = operation.path();
    match (template.find('{'), template.find('}'), argument) {
        (Some(open), Some(close), Some(argument)) => format!(
            "{}{}{}",
            &template[..open],
            segment(argument),
            &template[close + 1..]
        ),
        _ => template.to_owned(),
    }
}

/// One call: the operation, its path argument and query, its body.
pub(crate) struct Call<'a> {
    pub(crate) operation: Operation,
    pub(crate) argument: Option<&'a str>,
    pub(crate) query: Option<String>,
    pub(crate) body: Option<Vec<u8>>,
    /// The body's media type (JSON unless said).
    pub(crate) content_type: &'static str,
    pub(crate) timeout: Duration,
}

impl<'a> Call<'a> {
    pub(crate) fn new(operation: Operation) -> Call<'a> {
        Call {
            operation,
            argument: None,
            query: None,
            body: None,
            content_type: "application/json",
            timeout: SHORT,
        }
    }

    /// A body that is not JSON (an application's archive).
    pub(crate) fn bytes(mut self, body: Vec<u8>, content_type: &'static str) -> Call<'a> {
        self.body = Some(body);
        self.content_type = content_type;
        self
    }

    pub(crate) fn on(mut self, argument: &'a str) -> Call<'a> {
        self.argument = Some(argument);
        self
    }

    pub(crate) fn body<T: serde::Serialize + ?Sized>(
        mut self,
        body: &T,
    ) -> Result<Call<'a>, ClientError> {
        self.body = Some(serde_json::to_vec(body).map_err(|e| ClientError::Answer {
            operation: self.operation.id(),
            message: format!("the request does not serialize: {e}"),
        })?);
        Ok(self)
    }
}

impl Client {
    /// A client of the master at `url`, or of the masters of a comma list of URLs (it goes
    /// on with the next when one does not answer), with this identity; fails when a
    /// certificate or key does not read.
    pub fn new(url: &str, identity: &Identity) -> Result<Client, ClientError> {
        Ok(Client {
            masters: api::masters::Masters::parse(url),
            authorization: Arc::new(RwLock::new(bearer(identity))),
            agent: Arc::new(RwLock::new(agent(tls_config(identity)?))),
        })
    }

    /// A client that does not check the master's certificate, for one thing only: reading
    /// the CA certificate it shows, whose fingerprint the caller compares with the one it
    /// pins before it trusts anything else.
    pub fn unverified(url: &str) -> Client {
        let tls = ureq::tls::TlsConfig::builder()
            .disable_verification(true)
            .build();
        Client {
            masters: api::masters::Masters::parse(url),
            authorization: Arc::new(RwLock::new(None)),
            agent: Arc::new(RwLock::new(agent(tls))),
        }
    }

    /// Uses this identity from the next call on (a renewed certificate), in this client
    /// and its clones.
    pub fn set_identity(&self, identity: &Identity) -> Result<(), ClientError> {
        let renewed = agent(tls_config(identity)?);
        *self.agent.write().unwrap_or_else(PoisonError::into_inner) = renewed;
        *self
            .authorization
            .write()
            .unwrap_or_else(PoisonError::into_inner) = bearer(identity);
        Ok(())
    }

    /// The master that answered last.
    pub fn url(&self) -> &str {
        self.masters.current()
    }

    /// Runs `call` on the masters in turn while they do not answer; the answer parsed as
    /// JSON (`None` for an empty one).
    pub(crate) fn run<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
    ) -> Result<Option<T>, ClientError> {
        self.masters.call(
            |base| self.run_on(base, call),
            |e| matches!(e, ClientError::Unreachable { .. }),
        )
    }

    /// Like [`Client::run`], for an operation that always answers something.
    pub(crate) fn answer<T: DeserializeOwned>(&self, call: &Call<'_>) -> Result<T, ClientError> {
        self.run(call)?.ok_or_else(|| ClientError::Answer {
            operation: call.operation.id(),
            message: "an empty answer".to_owned(),
        })
    }

    /// Like [`Client::run`], for an operation whose answer says nothing more than success.
    pub(crate) fn done(&self, call: &Call<'_>) -> Result<(), ClientError> {
        self.run::<serde_json::Value>(call).map(|_| ())
    }

    /// Runs `call` on the masters in turn while they do not answer; the answer's bytes.
    pub(crate) fn bytes(&self, call: &Call<'_>) -> Result<Vec<u8>, ClientError> {
        self.masters.call(
            |base| self.send(base, call),
            |e| matches!(e, ClientError::Unreachable { .. }),
        )
    }

    fn run_on<T: DeserializeOwned>(
        &self,
        base: &str,
        call: &Call<'_>,
    ) -> Result<Option<T>, ClientError> {
        let operation = call.operation;
        let bytes = self.send(base, call)?;
        if bytes.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ClientError::Answer {
                operation: operation.id(),
                message: e.to_string(),
            })
    }

    /// One call on one master: the answer's body when it succeeded, else the master's
    /// refusal.
    fn send(&self, base: &str, call: &Call<'_>) -> Result<Vec<u8>, ClientError> {
        let operation = call.operation;
        let mut url = format!("{base}{}", path(operation, call.argument));
        if let Some(query) = &call.query {
            url.push('?');
            url.push_str(query);
        }
        let unreachable = |e: ureq::Error| ClientError::Unreachable {
            url: base.to_owned(),
            message: e.to_string(),
        };
        let agent = self
            .agent
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let authorization = self
            .authorization
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        use grove_api::endpoints::Method;
        let result = match operation.method() {
            method @ (Method::Get | Method::Delete) => {
                let builder = match method {
                    Method::Delete => agent.delete(&url),
                    _ => agent.get(&url),
                };
                let mut request = builder.config().timeout_global(Some(call.timeout)).build();
                if let Some(authorization) = &authorization {
                    request = request.header("Authorization", authorization);
                }
                request.call()
            }
            method => {
                let builder = match method {
                    Method::Put => agent.put(&url),
                    _ => agent.post(&url),
                };
                let mut request = builder
                    .config()
                    .timeout_global(Some(call.timeout))
                    .build()
                    .header("Content-Type", call.content_type);
                if let Some(authorization) = &authorization {
                    request = request.header("Authorization", authorization);
                }
                request.send(call.body.as_deref().unwrap_or_default())
            }
        };
        let mut response = result.map_err(unreachable)?;
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_vec()
            .map_err(|e| ClientError::Answer {
                operation: operation.id(),
                message: e.to_string(),
            })?;
        if !(200..300).contains(&status) {
            let text = String::from_utf8_lossy(&bytes).into_owned();
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
        Ok(bytes)
    }
}

/// The largest answer read (an application's archive is the largest).
const MAX_ANSWER_BYTES: u64 = 64 * 1024 * 1024;
