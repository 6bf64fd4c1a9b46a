//! What instance recipes know of their partition and how they reach the master:
//! `slapconfiguration` reads the partition, `publish` and `request` talk to the master as
//! the partition (with its own identity).

use std::sync::Mutex;

use grove_api as api;
use grove_client::ClientError;

/// The partition an instance profile runs in, as the node agent hands it over.
#[derive(Debug)]
pub struct Partition<'a> {
    pub computer: String,
    pub reference: String,
    pub addresses: Vec<String>,
    /// The instance in the partition, as in the node's desired state.
    pub instance: api::PartitionInstance,
    pub master: &'a dyn Master,
    /// How a program the partition runs reaches the master as the partition.
    pub connection: Connection,
    /// The titles of the children requested in this run (what the agent reports after the
    /// run, so that the master destroys the others).
    pub requested: Mutex<Vec<String>>,
}

/// How a program running in the partition (`grove app agent`) reaches the master as the
/// partition: the master's URL and CA, and the partition's token or certificate files.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Connection {
    pub master_url: String,
    /// The master's CA certificate (PEM), when it serves HTTPS with its own CA.
    pub master_ca: Option<String>,
    /// The partition's token, where the master has no CA.
    pub token: Option<String>,
    /// The partition's certificate and key files, where it has one.
    pub certificate: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("master_url", &self.master_url)
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

/// Why a program in the partition cannot make its client of the master.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl Connection {
    /// The client a program in the partition uses: the partition's identity, its files
    /// read now.
    pub fn client(&self) -> Result<grove_client::Client, ConnectionError> {
        let read = |path: &std::path::PathBuf| {
            std::fs::read_to_string(path).map_err(|source| ConnectionError::Read {
                path: path.clone(),
                source,
            })
        };
        let certificate = match &self.certificate {
            Some((cert, key)) => Some((read(cert)?, read(key)?)),
            None => None,
        };
        let identity = grove_client::Identity {
            token: self.token.clone(),
            ca_pem: self.master_ca.clone(),
            certificate,
        };
        Ok(grove_client::Client::new(&self.master_url, &identity)?)
    }
}

/// The master, as a partition reaches it: [`grove_client::Client`] with the partition's
/// identity, or a recorder in tests.
pub trait Master: Send + Sync + std::fmt::Debug {
    fn publish(&self, instance: i64, publish: &api::Publish) -> Result<(), ClientError>;
    fn request(&self, request: &api::InstanceRequest) -> Result<api::Instance, ClientError>;
    /// The application the partition is a root of (a ConPaaS manager's siblings).
    fn application(&self, name: &str) -> Result<api::apps::AppView, ClientError>;
    /// Runs an action of one of the partition's children (a ConPaaS agent).
    fn action(
        &self,
        instance: i64,
        request: &api::actions::ActionRequest,
    ) -> Result<api::actions::Action, ClientError>;
}

impl Master for grove_client::Client {
    fn publish(&self, instance: i64, publish: &api::Publish) -> Result<(), ClientError> {
        grove_client::Client::publish(self, instance, publish)
    }

    fn request(&self, request: &api::InstanceRequest) -> Result<api::Instance, ClientError> {
        self.request_instance(request)
    }

    fn application(&self, name: &str) -> Result<api::apps::AppView, ClientError> {
        self.show_app(name)
    }

    fn action(
        &self,
        instance: i64,
        request: &api::actions::ActionRequest,
    ) -> Result<api::actions::Action, ClientError> {
        self.run_action(instance, request)
    }
}
