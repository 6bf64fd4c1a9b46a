//! Projects: who may act in one (roles are the master's to check), and its quota, checked
//! in the transaction that creates an instance so that concurrent requests cannot pass it
//! together.

use grove_api as api;

use crate::tx::Tx;
use crate::{Result, StoreError};

/// Refuses a new instance (shared or not) over one of its project's quotas. Instances
/// requested destroyed no longer count: destroying one gives its share back at once.
pub(super) async fn check_quota(
    tx: &mut Tx<'_>,
    project: i64,
    shared: bool,
    size: Option<&api::Size>,
) -> Result<()> {
    let row = tx.project(project).await?;
    let quota = row.quota;
    if quota == api::Quota::default() {
        return Ok(());
    }
    let usage = tx.project_usage(project).await?;
    let needs = size.map(api::Size::resources).unwrap_or_default();
    // (quota, held, what this instance adds, limit)
    let mut checks = vec![("instances", usage.instances, 1, quota.instances)];
    if shared {
        checks.push(("shared", usage.shared, 1, quota.shared));
    } else {
        checks.push(("partitions", usage.partitions, 1, quota.partitions));
    }
    checks.extend([
        (
            "cores",
            usage.millicores,
            needs.millicores,
            quota.millicores,
        ),
        ("memory", usage.memory, needs.memory, quota.memory),
        ("disk", usage.disk, needs.disk, quota.disk),
    ]);
    for (name, held, adds, limit) in checks {
        if let Some(limit) = limit
            && adds > 0
            && held.saturating_add(adds) > limit
        {
            return Err(StoreError::QuotaExceeded {
                project: row.name,
                quota: name,
                usage: held,
                limit,
                adds,
            });
        }
    }
    Ok(())
}
