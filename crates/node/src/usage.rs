//! Usage per partition from /proc: the CPU time and resident memory of every process in
//! the process groups of the partition's services.

use std::collections::HashMap;

use grove_api as api;

use crate::{Agent, NodeError, ServiceStatus};

/// One process, as /proc/<pid>/stat gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub(crate) pgid: u32,
    /// utime + stime, in clock ticks.
    pub(crate) ticks: u64,
    /// Resident pages.
    pub(crate) rss_pages: u64,
}

/// Parses a /proc/<pid>/stat line; the command name may hold spaces and parentheses.
pub(crate) fn parse_stat(line: &str) -> Option<ProcStat> {
    let rest = line.get(line.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields from the state (3rd in proc(5)) on: pgrp is 5th, utime 14th, stime 15th, rss 24th.
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    Some(ProcStat {
        pgid: u32::try_from(field(5)?).ok()?,
        ticks: field(14)? + field(15)?,
        rss_pages: field(24)?,
    })
}

fn all_processes() -> Vec<ProcStat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|line| parse_stat(&line))
        .collect()
}

const TICKS_PER_SECOND: f64 = 100.0;
const PAGE_SIZE: u64 = 4096;

/// Usage of each partition that has services.
async fn measure(statuses: &[ServiceStatus]) -> api::UsageReport {
    let mut groups: HashMap<u32, String> = HashMap::new();
    for status in statuses {
        if let Some(pid) = status.pid {
            groups.insert(pid, status.partition.clone());
        }
    }
    let processes = tokio::task::spawn_blocking(all_processes)
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
    let mut partitions: Vec<api::PartitionUsage> = usage
        .into_iter()
        .map(
            |(reference, (cpu_seconds, memory_bytes, restarts))| api::PartitionUsage {
                reference,
                cpu_seconds,
                memory_bytes,
                restarts,
            },
        )
        .collect();
    partitions.sort_by(|a, b| a.reference.cmp(&b.reference));
    api::UsageReport { partitions }
}

/// Measures the services in `statuses` (the agent's own, or those the running agent
/// answers with) and reports to the master.
pub(crate) async fn report_once(
    agent: &Agent,
    statuses: &[ServiceStatus],
) -> Result<(), NodeError> {
    let report = measure(statuses).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_whatever_the_command_name() {
        let line = "1234 (my (odd) prog) S 1 1230 1230 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 \
                    5000 1000000 321 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                pgid: 1230,
                ticks: 300,
                rss_pages: 321
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x"), None);
        assert_eq!(parse_stat("1 (x) S 1"), None);
    }

    #[test]
    fn this_process_is_measured() {
        let own = std::fs::read_to_string("/proc/self/stat").expect("proc");
        let stat = parse_stat(&own).expect("parses");
        assert!(stat.rss_pages > 0);
    }
}
