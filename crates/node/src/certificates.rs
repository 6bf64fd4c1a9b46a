//! The certificates partitions act with. For each instance it deploys, the agent makes a
//! key, has the master sign it for the instance (`issuePartitionCertificate`), keeps both
//! in its state (root's, 0600) and hands them to the profile run, which writes them into
//! the partition as the partition's user. A certificate past half of its life, or made for
//! another instance, is replaced at the next deployment.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::instance::PartitionIdentity;
use crate::{Agent, lock};

/// A partition's certificate as the agent keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Held {
    pub(crate) instance: i64,
    pub(crate) certificate: String,
    pub(crate) key: String,
    /// Seconds since the epoch.
    pub(crate) issued_at: i64,
    pub(crate) expires_at: i64,
}

impl Held {
    /// Whether it serves `instance` at `now` without being replaced first.
    pub(crate) fn serves(&self, instance: i64, now: i64) -> bool {
        self.instance == instance && now < self.issued_at + (self.expires_at - self.issued_at) / 2
    }
}

pub(crate) type Certificates = HashMap<String, Held>;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Agent {
    /// The certificate `partition` acts with for `instance`, asked from the master when
    /// there is none yet, it was made for another instance, or it is past half of its
    /// life. `None` when the master has no CA (plain HTTP on loopback): the partition
    /// then acts with its token.
    pub(crate) async fn partition_certificate(
        &self,
        partition: &str,
        instance: i64,
    ) -> Result<Option<PartitionIdentity>, String> {
        if self.shared.master_ca.is_none() {
            return Ok(None);
        }
        let now = now();
        if let Some(held) = lock(&self.shared.certificates).get(partition)
            && held.serves(instance, now)
        {
            return Ok(Some(PartitionIdentity {
                certificate: held.certificate.clone(),
                key: held.key.clone(),
            }));
        }
        let shared = Arc::clone(&self.shared);
        let issued = tokio::task::spawn_blocking(move || {
            let (key, csr) = grove_pki::request(&grove_pki::Identity::Partition(instance))
                .map_err(|e| e.to_string())?;
            let issued = shared
                .client
                .issue_partition_certificate(instance, &csr)
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((key, issued))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot get the partition's certificate: {e}"))?;
        let (key, issued) = issued;
        let held = Held {
            instance,
            certificate: issued.certificate,
            key,
            issued_at: now,
            expires_at: issued.expires_at,
        };
        let identity = PartitionIdentity {
            certificate: held.certificate.clone(),
            key: held.key.clone(),
        };
        let all = {
            let mut certificates = lock(&self.shared.certificates);
            certificates.insert(partition.to_owned(), held);
            certificates.clone()
        };
        self.shared.state.keep_certificates(&all);
        tracing::info!(partition, instance, "partition certificate issued");
        Ok(Some(identity))
    }

    /// Forgets the certificate of a partition that no longer holds an instance.
    pub(crate) fn forget_certificate(&self, partition: &str) {
        let all = {
            let mut certificates = lock(&self.shared.certificates);
            if certificates.remove(partition).is_none() {
                return;
            }
            certificates.clone()
        };
        self.shared.state.keep_certificates(&all);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_serves_its_instance_until_half_of_its_life() {
        let held = Held {
            instance: 7,
            certificate: String::new(),
            key: String::new(),
            issued_at: 1_000,
            expires_at: 3_000,
        };
        for (instance, now, serves) in [
            (7, 1_000, true),
            (7, 1_999, true),
            (7, 2_000, false),
            (7, 5_000, false),
            (8, 1_500, false),
        ] {
            assert_eq!(held.serves(instance, now), serves, "{instance} at {now}");
        }
    }
}
