//! Trees of instances: a state propagated down, children collected, parameters published
//! up, and a partition freed once its node says the instance is gone.

use grove_api as api;

use super::touch;
use crate::tx::Tx;
use crate::{Changed, Result};

/// Stopping or destroying an instance stops or destroys everything it requested, down the
/// tree (a stopped instance does not bring back destroyed children).
pub(super) async fn propagate(
    tx: &mut Tx<'_>,
    id: i64,
    state: api::RequestedState,
    changed: &mut Changed,
) -> Result<()> {
    let mut pending = vec![id];
    while let Some(parent) = pending.pop() {
        for (child, _, current) in tx.children(parent).await? {
            pending.push(child);
            if current == state.as_str() || current == api::RequestedState::Destroyed.as_str() {
                continue;
            }
            tx.set_requested_state(child, state).await?;
            touch(tx, child, changed).await?;
        }
    }
    Ok(())
}

/// A parent's run requested these children: the others it had are destroyed.
pub(super) async fn keep_children(
    tx: &mut Tx<'_>,
    parent: i64,
    titles: &[String],
    changed: &mut Changed,
) -> Result<()> {
    let destroyed = api::RequestedState::Destroyed;
    for (child, title, state) in tx.children(parent).await? {
        if state == destroyed.as_str() || titles.contains(&title) {
            continue;
        }
        tx.set_requested_state(child, destroyed).await?;
        touch(tx, child, changed).await?;
        propagate(tx, child, destroyed, changed).await?;
    }
    Ok(())
}

/// An instance's connection parameters: its requester runs again with them, and its
/// computer's document shows them. A ConPaaS service's manager publishing wakes the
/// application's other services (a web service learns its database's address).
pub(super) async fn publish(
    tx: &mut Tx<'_>,
    id: i64,
    parameters: &api::Parameters,
    changed: &mut Changed,
) -> Result<()> {
    let loaded = tx.existing(id).await?;
    if loaded.instance.connection == *parameters {
        return Ok(());
    }
    tx.set_connection(id, parameters).await?;
    if let Some(parent) = loaded.instance.parent {
        touch(tx, parent, changed).await?;
    }
    for sibling in tx.conpaas_siblings(id).await? {
        touch(tx, sibling, changed).await?;
    }
    if let Some(computer) = loaded.computer_id {
        changed.document(computer);
    }
    Ok(())
}

/// A node's report on an instance. A destroyed partition is free only once its node says
/// the instance is destroyed.
pub(super) async fn report(
    tx: &mut Tx<'_>,
    id: i64,
    report: &api::StateReport,
    changed: &mut Changed,
) -> Result<()> {
    let loaded = tx.existing(id).await?;
    tx.set_report(id, report).await?;
    if report.state == api::ReportedState::Destroyed {
        tx.abandon_actions(id).await?;
    }
    // A ConPaaS agent that starts (or stops being started) wakes its manager, which
    // balances over started agents only.
    if let Some(parent) = loaded.instance.parent
        && loaded.instance.reported_state != Some(report.state)
        && tx.is_conpaas_manager(parent).await?
    {
        touch(tx, parent, changed).await?;
    }
    let instance = &loaded.instance;
    if report.state == api::ReportedState::Destroyed
        && instance.requested_state == api::RequestedState::Destroyed
        && !instance.shared
    {
        let freed = tx.free_partition_of(id).await?;
        tx.unplace(id).await?;
        if let Some(computer) = freed {
            tx.bump(computer, 1, -1).await?;
            tx.allocate(computer, id, -1).await?;
            changed.computer(computer);
        }
    }
    Ok(())
}
