//! What instance recipes know of their partition and how they reach the master:
//! `slapconfiguration` reads the partition, `publish` and `request` talk to the master as
//! the partition (with its own token).

use std::sync::Mutex;
use std::time::Duration;

use grove_api as api;

/// The partition an instance profile runs in, as the node agent hands it over.
#[derive(Debug)]
pub struct Partition<'a> {
    pub computer: String,
    pub reference: String,
    pub addresses: Vec<String>,
    /// The instance in the partition, as in the node's desired state.
    pub instance: api::PartitionInstance,
    pub master: &'a dyn Master,
    /// The titles of the children requested in this run (what the agent reports after the
    /// run, so that the master destroys the others).
    pub requested: Mutex<Vec<String>>,
}

/// The master, as a partition reaches it.
pub trait Master: Send + Sync + std::fmt::Debug {
    fn publish(&self, instance: i64, publish: &api::Publish) -> Result<(), String>;
    fn request(&self, request: &api::InstanceRequest) -> Result<api::Instance, String>;
}

/// The master over HTTP, with the partition's token; `url` may be a comma list of the
/// masters of one cloud (the next is tried when one does not answer).
#[derive(Debug)]
pub struct HttpMaster {
    masters: api::masters::Masters,
    authorization: String,
    agent: ureq::Agent,
}

/// The master's CA certificate given to [`HttpMaster::new`] is not a PEM certificate.
#[derive(Debug, thiserror::Error)]
#[error("the master's CA certificate: {0}")]
pub struct BadCa(ureq::Error);

/// Why a call failed: no answer (another master may give one), or the master's answer.
enum Failure {
    Unreachable(String),
    Answered(String),
}

impl HttpMaster {
    /// `ca_pem`: the master's CA certificate, trusted instead of the system's roots.
    pub fn new(url: &str, token: &str, ca_pem: Option<&str>) -> Result<HttpMaster, BadCa> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(ca) = ca_pem {
            let ca = ureq::tls::Certificate::from_pem(ca.as_bytes()).map_err(BadCa)?;
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&[ca]));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .tls_config(tls.build())
            .build()
            .into();
        Ok(HttpMaster {
            masters: api::masters::Masters::parse(url),
            authorization: format!("Bearer {token}"),
            agent,
        })
    }

    fn send(&self, method: &str, path: &str, body: &str) -> Result<String, String> {
        self.masters
            .call(
                |base| self.send_one(base, method, path, body),
                |e| matches!(e, Failure::Unreachable(_)),
            )
            .map_err(|e| match e {
                Failure::Unreachable(message) | Failure::Answered(message) => message,
            })
    }

    fn send_one(
        &self,
        base: &str,
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<String, Failure> {
        let url = format!("{base}{path}");
        let request = match method {
            "PUT" => self.agent.put(&url),
            _ => self.agent.post(&url),
        };
        let mut response = request
            .header("Authorization", &self.authorization)
            .header("Content-Type", "application/json")
            .send(body)
            .map_err(|e| Failure::Unreachable(format!("cannot reach the master at {base}: {e}")))?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        if (200..300).contains(&status) {
            Ok(text)
        } else {
            let message = serde_json::from_str::<api::ErrorBody>(&text)
                .map(|e| e.error.message)
                .unwrap_or(text);
            Err(Failure::Answered(format!(
                "the master answered {status}: {message}"
            )))
        }
    }
}

impl Master for HttpMaster {
    fn publish(&self, instance: i64, publish: &api::Publish) -> Result<(), String> {
        let body = serde_json::to_string(publish).map_err(|e| e.to_string())?;
        self.send(
            "PUT",
            &format!("/v1/instances/{instance}/connection"),
            &body,
        )
        .map(|_| ())
    }

    fn request(&self, request: &api::InstanceRequest) -> Result<api::Instance, String> {
        let body = serde_json::to_string(request).map_err(|e| e.to_string())?;
        let text = self.send("POST", "/v1/instances", &body)?;
        serde_json::from_str(&text)
            .map_err(|e| format!("the master's answer is not an instance: {e}"))
    }
}
