//! What nodes declare and report: partitions, software, usage.

use grove_api as api;

use crate::tx::{Tx, now_seconds};
use crate::{Changed, Result, StoreError};

/// Declares partitions (new ones are free; known ones get their new addresses).
pub(super) async fn declare_partitions(
    tx: &mut Tx<'_>,
    computer: i64,
    partitions: &[api::PartitionDeclaration],
    changed: &mut Changed,
) -> Result<()> {
    let mut added = 0;
    for partition in partitions {
        let declared = tx.partition_exists(computer, &partition.reference).await?;
        tx.put_partition(
            computer,
            &partition.reference,
            &partition.addresses,
            declared,
        )
        .await?;
        if !declared {
            added += 1;
        }
    }
    // Every node has the releases of Roboconf's root instances and ConPaaS's services
    // built in.
    for release in api::apps::BUILTIN_RELEASES {
        tx.upsert_software(computer, release, api::SupplyState::Available)
            .await?;
    }
    tx.bump(computer, added, 0).await?;
    changed.computer(computer);
    Ok(())
}

pub(super) async fn supply(
    tx: &mut Tx<'_>,
    computer: i64,
    supply: &api::Supply,
    changed: &mut Changed,
) -> Result<()> {
    tx.upsert_software(computer, &supply.software_release, supply.state)
        .await?;
    tx.bump(computer, 0, 0).await?;
    changed.computer(computer);
    Ok(())
}

/// A node's report on a release; a release asked to go that the node removed is
/// forgotten. The report shows in the computer's document, not as a new revision.
pub(super) async fn report_software(
    tx: &mut Tx<'_>,
    computer: i64,
    report: &api::SoftwareReport,
    changed: &mut Changed,
) -> Result<()> {
    let Some(requested) = tx
        .software_requested(computer, &report.software_release)
        .await?
    else {
        return Err(StoreError::NotFound(format!(
            "software release {} is not supplied to this computer",
            report.software_release
        )));
    };
    if report.state == api::SoftwareState::Destroyed
        && requested == api::SupplyState::Destroyed.as_str()
    {
        tx.delete_software(computer, &report.software_release)
            .await?;
    } else {
        tx.set_software_report(computer, report).await?;
    }
    changed.document(computer);
    Ok(())
}

pub(super) async fn record_usage(
    tx: &mut Tx<'_>,
    computer: i64,
    report: &api::UsageReport,
) -> Result<()> {
    let at = report.at.unwrap_or_else(now_seconds);
    // The ledger counts hours from here: a time it cannot count is refused, not wrapped.
    if !(0..=crate::ledger::LAST_SECOND).contains(&at) {
        return Err(StoreError::Invalid(format!(
            "usage at {at}: seconds since the epoch, before {}",
            crate::ledger::LAST_SECOND
        )));
    }
    for sample in &report.partitions {
        match tx.insert_usage(computer, sample, at).await? {
            None => {
                return Err(StoreError::NotFound(format!(
                    "partition {} of this computer",
                    sample.reference
                )));
            }
            // New: the hours it changes are counted again.
            Some(Some(instance)) => tx.recount(instance, at).await?,
            // Reported before, or no instance to account it to.
            Some(None) => {}
        }
    }
    Ok(())
}
