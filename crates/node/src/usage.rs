//! Usage per partition from /proc: the CPU time and resident memory of every process in
//! the process groups of the partition's services.

use std::collections::HashMap;

use grove_api as api;

use crate::{Agent, NodeError, ServiceStatus, procfs};

const TICKS_PER_SECOND: f64 = 100.0;
const PAGE_SIZE: u64 = 4096;

/// How deep the walk of a partition's files goes.
const DISK_DEPTH: usize = 64;

/// Usage of each partition that has services.
async fn measure(agent: &Agent, statuses: &[ServiceStatus]) -> api::UsageReport {
    let mut groups: HashMap<u32, String> = HashMap::new();
    for status in statuses {
        if let Some(pid) = status.pid {
            groups.insert(pid, status.partition.clone());
        }
    }
    let processes = tokio::task::spawn_blocking(procfs::processes)
        .await
        .unwrap_or_default();
    let mut usage: HashMap<String, (f64, u64, u32)> = HashMap::new();
    for status in statuses {
        usage.entry(status.partition.clone()).or_default().2 += status.restarts;
    }
    for process in processes {
        if let Some(partition) = groups.get(&process.pgid) {
            let entry = usage.entry(partition.clone()).or_default();
            entry.0 += process.ticks as f64 / TICKS_PER_SECOND;
            entry.1 += process.rss_pages * PAGE_SIZE;
        }
    }
    let mut partitions: Vec<api::PartitionUsage> = Vec::with_capacity(usage.len());
    for (reference, (cpu_seconds, memory_bytes, restarts)) in usage {
        let memory_peak_bytes = agent
            .shared
            .limits
            .take_peak_memory(&reference)
            .map_or(memory_bytes, |peak| peak.max(memory_bytes));
        let disk_bytes = match agent.slot(&reference) {
            Some(slot) => tokio::task::spawn_blocking(move || {
                slot.tree().and_then(|tree| tree.disk_usage(DISK_DEPTH))
            })
            .await
            .map_or(0, |walked| {
                walked.unwrap_or_else(|e| {
                    tracing::debug!(error = %e, "cannot measure a partition's disk");
                    0
                })
            }),
            None => 0,
        };
        partitions.push(api::PartitionUsage {
            reference,
            cpu_seconds,
            memory_bytes,
            restarts,
            memory_peak_bytes,
            disk_bytes,
        });
    }
    partitions.sort_by(|a, b| a.reference.cmp(&b.reference));
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok());
    api::UsageReport { partitions, at }
}

/// Measures the services in `statuses` (the agent's own, or those the running agent
/// answers with) and reports to the master.
pub(crate) async fn report_once(
    agent: &Agent,
    statuses: &[ServiceStatus],
) -> Result<(), NodeError> {
    let report = measure(agent, statuses).await;
    if report.partitions.is_empty() {
        return Ok(());
    }
    let shared = std::sync::Arc::clone(&agent.shared);
    tokio::task::spawn_blocking(move || {
        shared.client.report_usage(&shared.config.computer, &report)
    })
    .await
    .map_err(|e| NodeError::Failed(e.to_string()))??;
    Ok(())
}

pub(crate) async fn report_every(agent: Agent) {
    let mut tick = tokio::time::interval(agent.config().usage_interval());
    tick.tick().await;
    loop {
        tick.tick().await;
        let statuses = agent.service_status().await;
        if let Err(e) = report_once(&agent, &statuses).await {
            tracing::debug!(error = %e, "cannot report usage");
        }
    }
}
