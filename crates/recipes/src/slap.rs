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
    /// The titles of the children requested in this run (what the agent reports after the
    /// run, so that the master destroys the others).
    pub requested: Mutex<Vec<String>>,
}

/// The master, as a partition reaches it: [`grove_client::Client`] with the partition's
/// identity, or a recorder in tests.
pub trait Master: Send + Sync + std::fmt::Debug {
    fn publish(&self, instance: i64, publish: &api::Publish) -> Result<(), ClientError>;
    fn request(&self, request: &api::InstanceRequest) -> Result<api::Instance, ClientError>;
}

impl Master for grove_client::Client {
    fn publish(&self, instance: i64, publish: &api::Publish) -> Result<(), ClientError> {
        grove_client::Client::publish(self, instance, publish)
    }

    fn request(&self, request: &api::InstanceRequest) -> Result<api::Instance, ClientError> {
        self.request_instance(request)
    }
}
