//! The agent's configuration: a TOML file, then `GROVE_NODE_*` environment overrides.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where a partition's services write their output, below the partition: one
/// `SERVICE.log` each.
pub const LOG_DIR: &str = ".grove/log";

use serde::{Deserialize, Serialize};

use crate::NodeError;

/// A setting that breaks its rule: which, and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {rule}")]
pub struct InvalidSetting {
    pub setting: &'static str,
    pub rule: String,
}

/// What `grove node register` writes and `grove node --config` reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The master's URL, or those of the masters of one cloud: a comma list, or an array
    /// in the file.
    #[serde(deserialize_with = "grove_api::masters::deserialize_list")]
    pub master_url: String,
    /// The computer's reference at the master.
    pub computer: String,
    /// The node's token (`g1.n...`), as registration returned it; empty for a node that
    /// joined and authenticates with its certificate.
    #[serde(default)]
    pub token: String,
    /// The master's CA certificate (PEM file): the master is trusted only if that CA
    /// signed its certificate.
    #[serde(default)]
    pub ca_certificate: Option<PathBuf>,
    /// The node's certificate and key (PEM files), from `grove node join`.
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
    #[serde(default = "default_software_root")]
    pub software_root: PathBuf,
    #[serde(default = "default_instance_root")]
    pub instance_root: PathBuf,
    /// How many partitions to format; it can grow, never shrink.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    #[serde(default = "default_partition_base")]
    pub partition_base: String,
    /// Partition users are `<user_base><i>` (only when running as root with isolation).
    #[serde(default = "default_user_base")]
    pub user_base: String,
    /// The unprivileged user software releases are built as (when running as root with
    /// isolation); SlapOS calls it `slapsoft`.
    #[serde(default = "default_build_user")]
    pub build_user: String,
    /// Partition `i` gets `ipv4_base + i`; any 127.0.0.0/8 address binds on Linux as is.
    #[serde(default = "default_ipv4_base")]
    pub ipv4_base: Ipv4Addr,
    /// The interface partitions' IPv4 addresses are added to when running as root, so
    /// that other machines reach their services (give `ipv4_base` from a range routed to
    /// this machine); none for loopback addresses.
    #[serde(default)]
    pub ipv4_interface: Option<String>,
    /// Partition `i` gets `ipv6_prefix + i + 1` (a ULA), added to `ipv6_interface` when
    /// running as root.
    #[serde(default)]
    pub ipv6_prefix: Option<Ipv6Addr>,
    #[serde(default = "default_interface")]
    pub ipv6_interface: String,
    /// One Unix user per partition when running as root.
    #[serde(default = "default_true")]
    pub isolation: bool,
    /// A partition is processed again at least this often, changed or not.
    #[serde(default = "default_periodicity")]
    pub periodicity_seconds: u64,
    #[serde(default = "default_promise_timeout")]
    pub promise_timeout_seconds: u64,
    #[serde(default = "default_usage_interval")]
    pub usage_interval_seconds: u64,
    /// How often the promises of a started partition are checked between deployments.
    #[serde(default = "default_promise_interval")]
    pub promise_interval_seconds: u64,
    /// How long one long poll of the change stream waits at the master.
    #[serde(default = "default_poll_wait")]
    pub poll_wait_seconds: u64,
    /// Software releases built at once.
    #[serde(default = "default_parallel_builds")]
    pub parallel_builds: usize,
    /// What the computer gives its partitions, reported to the master for placing sizes:
    /// CPU cores (`"4"`, `"1.5"`), memory and disk (`"8G"`). Measured when left out (the
    /// CPUs, the memory, the file system of the instance root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_cores: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_disk: Option<String>,
    /// Enforce partitions' sizes with cgroups (as root, where the kernel offers them).
    #[serde(default = "default_true")]
    pub enforce_sizes: bool,
    /// Where to serve Prometheus's `/metrics` (plain HTTP, no credentials: an address
    /// only Prometheus reaches, such as loopback); none: not served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

fn default_software_root() -> PathBuf {
    PathBuf::from("/opt/grove/software")
}
fn default_instance_root() -> PathBuf {
    PathBuf::from("/srv/grove/instance")
}
fn default_partitions() -> u32 {
    10
}
fn default_partition_base() -> String {
    "slappart".to_owned()
}
fn default_user_base() -> String {
    "slapuser".to_owned()
}
fn default_build_user() -> String {
    "slapsoft".to_owned()
}
fn default_ipv4_base() -> Ipv4Addr {
    Ipv4Addr::new(127, 77, 0, 1)
}
fn default_interface() -> String {
    "lo".to_owned()
}
fn default_true() -> bool {
    true
}
fn default_periodicity() -> u64 {
    86_400
}
fn default_promise_timeout() -> u64 {
    20
}
fn default_usage_interval() -> u64 {
    60
}
fn default_promise_interval() -> u64 {
    60
}
fn default_poll_wait() -> u64 {
    30
}
fn default_parallel_builds() -> usize {
    2
}

impl Config {
    /// A configuration with every default, for these credentials.
    pub fn new(master_url: &str, computer: &str, token: &str) -> Config {
        Config {
            master_url: master_url.to_owned(),
            computer: computer.to_owned(),
            token: token.to_owned(),
            ca_certificate: None,
            certificate: None,
            key: None,
            software_root: default_software_root(),
            instance_root: default_instance_root(),
            partitions: default_partitions(),
            partition_base: default_partition_base(),
            user_base: default_user_base(),
            build_user: default_build_user(),
            ipv4_base: default_ipv4_base(),
            ipv4_interface: None,
            ipv6_prefix: None,
            ipv6_interface: default_interface(),
            isolation: true,
            periodicity_seconds: default_periodicity(),
            promise_timeout_seconds: default_promise_timeout(),
            usage_interval_seconds: default_usage_interval(),
            promise_interval_seconds: default_promise_interval(),
            poll_wait_seconds: default_poll_wait(),
            parallel_builds: default_parallel_builds(),
            capacity_cores: None,
            capacity_memory: None,
            capacity_disk: None,
            enforce_sizes: true,
            metrics_listen: None,
        }
    }

    /// Reads a configuration file and applies the environment's overrides.
    pub fn load(path: &Path) -> Result<Config, NodeError> {
        let text = std::fs::read_to_string(path).map_err(|source| NodeError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::parse(&text).map_err(|message| NodeError::Config {
            path: path.to_owned(),
            message,
        })?;
        config
            .apply_env(std::env::vars())
            .map_err(|message| NodeError::Config {
                path: path.to_owned(),
                message,
            })?;
        Ok(config)
    }

    /// Who the node is to the master: its token or its certificate, and the CA it trusts
    /// (the files are read now).
    pub fn identity(&self) -> Result<crate::Identity, NodeError> {
        let read = |path: &PathBuf| {
            std::fs::read_to_string(path).map_err(|source| NodeError::Io {
                path: path.clone(),
                source,
            })
        };
        let certificate = match (&self.certificate, &self.key) {
            (Some(certificate), Some(key)) => Some((read(certificate)?, read(key)?)),
            (None, None) => None,
            _ => {
                return Err(NodeError::Failed(
                    "certificate and key go together: give both or neither".to_owned(),
                ));
            }
        };
        if certificate.is_none() && self.token.is_empty() {
            return Err(NodeError::Failed(
                "no credentials: the configuration has neither a token nor a certificate"
                    .to_owned(),
            ));
        }
        Ok(crate::Identity {
            token: (!self.token.is_empty()).then(|| self.token.clone()),
            ca_pem: self.ca_certificate.as_ref().map(read).transpose()?,
            certificate,
        })
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    /// Checks the settings that a file or the environment could get wrong.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let invalid = |setting: &'static str, rule: String| Err(InvalidSetting { setting, rule });
        if grove_api::masters::Masters::parse(&self.master_url)
            .urls()
            .is_empty()
        {
            return invalid("master_url", "at least one URL".to_owned());
        }
        if self.partitions == 0 || self.partitions > 10_000 {
            return invalid("partitions", "between 1 and 10000".to_owned());
        }
        if self.parallel_builds == 0 {
            return invalid("parallel_builds", "at least 1".to_owned());
        }
        for (name, value) in [
            ("partition_base", &self.partition_base),
            ("user_base", &self.user_base),
            ("build_user", &self.build_user),
            ("computer", &self.computer),
        ] {
            let valid = !value.is_empty()
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !valid {
                return invalid(
                    name,
                    format!("{value:?} must be letters, digits, '-', '_' or '.'"),
                );
            }
        }
        if u32::from(self.ipv4_base)
            .checked_add(self.partitions)
            .is_none()
        {
            return invalid("ipv4_base", "too high for the partition count".to_owned());
        }
        if let Some(cores) = &self.capacity_cores
            && let Err(e) = grove_api::units::parse_cores(cores)
        {
            return invalid("capacity_cores", e.to_string());
        }
        for (name, value) in [
            ("capacity_memory", &self.capacity_memory),
            ("capacity_disk", &self.capacity_disk),
        ] {
            if let Some(value) = value
                && let Err(e) = grove_api::units::parse_bytes(value)
            {
                return invalid(name, e.to_string());
            }
        }
        Ok(())
    }

    /// The configured capacity (validated): thousandths of a core, bytes, bytes.
    pub fn configured_capacity(&self) -> (Option<u64>, Option<u64>, Option<u64>) {
        (
            self.capacity_cores
                .as_deref()
                .and_then(|c| grove_api::units::parse_cores(c).ok()),
            self.capacity_memory
                .as_deref()
                .and_then(|m| grove_api::units::parse_bytes(m).ok()),
            self.capacity_disk
                .as_deref()
                .and_then(|d| grove_api::units::parse_bytes(d).ok()),
        )
    }

    /// `GROVE_NODE_<FIELD>` variables override the file (e.g. `GROVE_NODE_MASTER_URL`).
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), String> {
        let mut table = toml::Table::try_from(&*self).map_err(|e| e.to_string())?;
        let mut changed = false;
        for (name, value) in vars {
            // GROVE_NODE_CONFIG names the file itself.
            let Some(field) = name.strip_prefix("GROVE_NODE_").filter(|f| *f != "CONFIG") else {
                continue;
            };
            let field = field.to_ascii_lowercase();
            let parsed = match table.get(&field) {
                Some(toml::Value::Integer(_)) => value
                    .parse::<i64>()
                    .map(toml::Value::Integer)
                    .map_err(|_| format!("{name}: {value:?} is not an integer"))?,
                Some(toml::Value::Boolean(_)) => value
                    .parse::<bool>()
                    .map(toml::Value::Boolean)
                    .map_err(|_| format!("{name}: {value:?} is not true or false"))?,
                Some(_) => toml::Value::String(value),
                // Settings without a default value.
                None if matches!(
                    field.as_str(),
                    "ipv6_prefix"
                        | "ipv4_interface"
                        | "ca_certificate"
                        | "certificate"
                        | "key"
                        | "capacity_cores"
                        | "capacity_memory"
                        | "capacity_disk"
                        | "metrics_listen"
                ) =>
                {
                    toml::Value::String(value)
                }
                None => return Err(format!("{name}: no such setting")),
            };
            table.insert(field, parsed);
            changed = true;
        }
        if changed {
            *self = table
                .try_into()
                .map_err(|e: toml::de::Error| e.to_string())?;
            self.validate().map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    pub fn to_toml(&self) -> String {
        // Serializing plain fields cannot fail.
        toml::to_string(self).unwrap_or_default()
    }

    pub fn periodicity(&self) -> Duration {
        Duration::from_secs(self.periodicity_seconds)
    }

    pub fn promise_timeout(&self) -> Duration {
        Duration::from_secs(self.promise_timeout_seconds)
    }

    pub fn usage_interval(&self) -> Duration {
        Duration::from_secs(self.usage_interval_seconds.max(1))
    }

    pub fn promise_interval(&self) -> Duration {
        Duration::from_secs(self.promise_interval_seconds.max(1))
    }

    /// Where the running agent answers `grove node status`.
    pub fn status_socket(&self) -> PathBuf {
        self.instance_root.join(".grove-node.sock")
    }

    pub fn partition_path(&self, reference: &str) -> PathBuf {
        self.instance_root.join(reference)
    }

    /// Where a service's output goes: below its partition, which its user controls.
    pub fn service_log(&self, partition: &str, service: &str) -> grove_supervisor::LogFile {
        grove_supervisor::LogFile {
            root: self.partition_path(partition),
            relative: PathBuf::from(LOG_DIR).join(format!("{service}.log")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_what_the_file_leaves_out() {
        let config = Config::parse(
            "master_url = \"http://127.0.0.1:1\"\ncomputer = \"c\"\ntoken = \"t\"\npartitions = 3\n",
        )
        .expect("parses");
        assert_eq!(config.partitions, 3);
        assert_eq!(config.partition_base, "slappart");
        assert_eq!(config.promise_timeout(), Duration::from_secs(20));
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let error = Config::parse("master_url = 1").expect_err("wrong type");
        assert!(error.contains("master_url"), "{error}");
        let error = Config::parse("master_url = \"u\"\ncomputer = \"c\"\ntoken = \"t\"\nfoo = 1")
            .expect_err("unknown key");
        assert!(error.contains("foo"), "{error}");
        let error =
            Config::parse("master_url = \"u\"\ncomputer = \"c/..\"\ntoken = \"t\"").expect_err("");
        assert!(error.starts_with("computer:"), "{error}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut config = Config::new("http://a", "c", "t");
        config
            .apply_env([
                ("GROVE_NODE_MASTER_URL".to_owned(), "http://b".to_owned()),
                ("GROVE_NODE_PARTITIONS".to_owned(), "4".to_owned()),
                ("GROVE_NODE_ISOLATION".to_owned(), "false".to_owned()),
                ("GROVE_NODE_IPV6_PREFIX".to_owned(), "fd00:77::".to_owned()),
                ("OTHER".to_owned(), "x".to_owned()),
            ])
            .expect("applies");
        assert_eq!(config.master_url, "http://b");
        assert_eq!(config.partitions, 4);
        assert!(!config.isolation);
        assert_eq!(config.ipv6_prefix, Some("fd00:77::".parse().expect("ip")));
        let error = config
            .apply_env([("GROVE_NODE_PARTITIONS".to_owned(), "many".to_owned())])
            .expect_err("not a number");
        assert!(error.contains("GROVE_NODE_PARTITIONS"), "{error}");
        let error = config
            .apply_env([("GROVE_NODE_COLOUR".to_owned(), "blue".to_owned())])
            .expect_err("unknown");
        assert!(error.contains("no such setting"), "{error}");
    }

    #[test]
    fn several_masters_as_an_array_or_a_comma_list() {
        let config = Config::parse(
            "master_url = [\"http://a:8080\", \"http://b:8080\"]\ncomputer = \"c\"\ntoken = \"t\"\n",
        )
        .expect("parses");
        assert_eq!(config.master_url, "http://a:8080,http://b:8080");
        assert_eq!(
            Config::parse(&config.to_toml()).expect("reads back"),
            config
        );
        let error = Config::parse("master_url = []\ncomputer = \"c\"\ntoken = \"t\"\n")
            .expect_err("no URL");
        assert_eq!(error, "master_url: at least one URL");
    }

    #[test]
    fn written_configuration_reads_back() {
        let config = Config::new("http://a", "c", "t");
        assert_eq!(Config::parse(&config.to_toml()).expect("parses"), config);
    }
}
