//! Records of running services, one file each in a directory only the supervisor's user
//! can write: what was started (the whole spec), its pid and its start time. A later
//! supervisor reads them to adopt what is still running.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ServiceSpec;

/// One running service, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub spec: ServiceSpec,
    pub pid: u32,
    /// Clock ticks after boot ([`crate::start_time`]).
    pub start_time: u64,
}

impl Record {
    /// Whether the recorded process is still the one running under that pid.
    pub fn is_alive(&self) -> bool {
        crate::start_time(self.pid) == Some(self.start_time)
    }
}

/// The directory of records.
#[derive(Debug, Clone)]
pub struct Records {
    dir: PathBuf,
}

/// A service name as a file name: `/` and `%` escaped, nothing else changes.
fn file_name(service: &str) -> String {
    let escaped = service.replace('%', "%25").replace('/', "%2F");
    format!("{escaped}.json")
}

impl Records {
    /// The records in `dir` (made, mode 0700, at the first record).
    pub fn new(dir: &Path) -> Records {
        Records {
            dir: dir.to_owned(),
        }
    }

    pub fn write(&self, record: &Record) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        // Not durable: a record matters after the agent dies, not after the machine does
        // (its services die with it); the page cache outlives the agent.
        grove_confine::write_private(&self.dir, &file_name(&record.spec.name), &bytes, false)
    }

    pub fn remove(&self, service: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.dir.join(file_name(service))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every record that can be read; unreadable ones are logged and skipped.
    pub fn all(&self) -> Vec<Record> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut records: Vec<Record> = entries
            .filter_map(Result::ok)
            // A record being written is `.<name>.json.new`: not a `.json`.
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| {
                let parsed = std::fs::read(e.path())
                    .map_err(|e| e.to_string())
                    .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()));
                match parsed {
                    Ok(record) => Some(record),
                    Err(error) => {
                        tracing::warn!(path = %e.path().display(), %error, "unreadable service record");
                        None
                    }
                }
            })
            .collect();
        records.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_distinct_file_names() {
        assert_eq!(file_name("slappart0/web"), "slappart0%2Fweb.json");
        assert_ne!(file_name("a/b"), file_name("a%2Fb"));
    }
}
