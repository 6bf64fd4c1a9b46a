//! The processes of this machine as /proc shows them: what usage measures and what finds
//! the services a killed agent left behind.

/// One process, from /proc/<pid>/stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub(crate) pid: u32,
    pub(crate) ppid: u32,
    pub(crate) pgid: u32,
    /// utime + stime, in clock ticks.
    pub(crate) ticks: u64,
    /// Resident pages.
    pub(crate) rss_pages: u64,
}

/// Parses a /proc/<pid>/stat line; the command name may hold spaces and parentheses.
pub(crate) fn parse_stat(line: &str) -> Option<ProcStat> {
    let pid = line.split_whitespace().next()?.parse().ok()?;
    let rest = line.get(line.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields from the state (3rd in proc(5)) on: ppid is 4th, pgrp 5th, utime 14th,
    // stime 15th, rss 24th.
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    let id = |n: usize| field(n).and_then(|v| u32::try_from(v).ok());
    Some(ProcStat {
        pid,
        ppid: id(4)?,
        pgid: id(5)?,
        ticks: field(14)? + field(15)?,
        rss_pages: field(24)?,
    })
}

/// Sends `signal` to each process; one already gone is what was wanted.
pub(crate) fn signal_each(pids: &[u32], signal: nix::sys::signal::Signal) {
    for pid in pids {
        if let Ok(pid) = i32::try_from(*pid) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
        }
    }
}

/// Every process that could be read.
pub(crate) fn processes() -> Vec<ProcStat> {
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
                pid: 1234,
                ppid: 1,
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
        let own = processes()
            .into_iter()
            .find(|p| p.pid == std::process::id())
            .expect("this process is listed");
        assert!(own.rss_pages > 0);
    }
}
