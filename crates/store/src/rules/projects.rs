//! Projects: who may act in one (roles are the master's to check), and its quota, checked
//! in the transaction that creates an instance so that concurrent requests cannot pass it
//! together.

use grove_api as api;

use crate::tx::Tx;
use crate::{Result, StoreError};

/// Refuses a new instance (shared or not) over one of its project's quotas. Instances
/// requested destroyed no longer count: destroying one gives its share back at once.
pub(super) async fn check_quota(tx: &mut Tx<'_>, project: i64, shared: bool) -> Result<()> {
    let row = tx.project(project).await?;
    let api::Quota {
        instances,
        partitions,
        shared: shared_limit,
    } = row.quota;
    if instances.is_none() && partitions.is_none() && shared_limit.is_none() {
        return Ok(());
    }
    let usage = tx.project_usage(project).await?;
    let kind = if shared {
        ("shared", usage.shared, shared_limit)
    } else {
        ("partitions", usage.partitions, partitions)
    };
    for (quota, held, limit) in [("instances", usage.instances, instances), kind] {
        if let Some(limit) = limit
            && held >= limit
        {
            return Err(StoreError::QuotaExceeded {
                project: row.name,
                quota,
                usage: held,
                limit,
            });
        }
    }
    Ok(())
}
