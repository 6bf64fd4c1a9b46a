//! `grove app agent`: the program a Roboconf root instance's partition runs as a
//! service, as the partition's user. It waits at the master for the root's subtree
//! (`appPartition`), brings it about with `grove_roboconf::runtime::reconcile` (the
//! components' scripts from the application's archive), and reports the states back.
//! What it holds of each instance is kept in `roboconf/observed.json`, so that a
//! restarted agent goes on where it was.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use grove_api::apps as wire;
use grove_client::{Client, ClientError};
use grove_recipes::roboconf::AgentConfig;
use grove_recipes::slap::ConnectionError;
use grove_roboconf::autonomic::{self, Measure};
use grove_roboconf::deploy;
use grove_roboconf::lifecycle::clean_path;
use grove_roboconf::runtime::{self, Desired, Observed, Runner};
use grove_roboconf::script::{self, Action};
use grove_roboconf::tree::Tree;

/// Why the agent cannot run at all (a master that does not answer is waited for).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot read the agent's configuration {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("cannot reach the master: {0}")]
    Client(#[from] ClientError),
}

/// How long to wait before asking a master that failed again.
const RETRY: Duration = Duration::from_secs(1);

/// What the agent keeps below the partition.
const STATE_DIR: &str = "roboconf";

/// How often the probes of started instances are taken.
const PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// What the probes look at: the subtree as last reconciled, and the archive.
#[derive(Default)]
struct Seen {
    desired: Vec<Desired>,
    started: Vec<String>,
    app: Option<std::sync::Arc<Tree>>,
}

/// Runs the agent until it is killed.
pub fn run(config_path: &Path, dir: &Path) -> Result<(), AgentError> {
    let config = read_config(config_path)?;
    let client = client(&config)?;
    let state_dir = dir.join(STATE_DIR);
    std::fs::create_dir_all(&state_dir).map_err(|e| AgentError::Config {
        path: state_dir.clone(),
        message: e.to_string(),
    })?;
    let observed_path = state_dir.join("observed.json");
    let mut observed: BTreeMap<String, Observed> = std::fs::read(&observed_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Seen::default()));
    {
        let seen = seen.clone();
        let prober = client.clone();
        let state_dir = state_dir.clone();
        std::thread::spawn(move || probe_loop(&prober, &seen, &state_dir));
    }
    let mut shell: Option<(String, Shell)> = None;
    let mut after = None;
    // The root's address first: the subtree's `ip` exports are this partition's.
    let mut reported: Option<wire::AppReport> = loop {
        let report = report_of(&config, &observed);
        match client.report_app(&report) {
            Ok(()) => break Some(report),
            Err(e) => {
                tracing::warn!(error = %e, "cannot report this partition's address");
                std::thread::sleep(RETRY);
            }
        }
    };
    loop {
        let doc = match client.app_partition(after) {
            Ok(doc) => doc,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read this partition's instances");
                std::thread::sleep(RETRY);
                continue;
            }
        };
        if shell
            .as_ref()
            .is_none_or(|(digest, _)| *digest != doc.archive)
        {
            match client
                .app_archive()
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    Tree::from_zip_bytes(&bytes, Path::new("application.zip"))
                        .map_err(|e| e.to_string())
                }) {
                Ok(tree) => {
                    shell = Some((
                        doc.archive.clone(),
                        Shell {
                            app: std::sync::Arc::new(tree),
                            dir: state_dir.clone(),
                            tell: Some((client.clone(), config.clone())),
                        },
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the application's archive");
                    std::thread::sleep(RETRY);
                    continue;
                }
            }
        }
        let Some((_, runner)) = shell.as_mut() else {
            continue;
        };
        let desired: Vec<Desired> = doc.instances.iter().filter_map(deploy::from_wire).collect();
        let done = runtime::reconcile(&desired, &mut observed, runner);
        for step in &done {
            tracing::info!(
                instance = %step.path,
                action = step.action.as_str(),
                ok = step.ok,
                "script run"
            );
        }
        {
            let mut seen = seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            seen.desired = desired.clone();
            seen.started = observed
                .iter()
                .filter(|(_, o)| o.state() == grove_roboconf::lifecycle::State::DeployedStarted)
                .map(|(p, _)| p.clone())
                .collect();
            seen.app = Some(runner.app.clone());
        }
        if let Ok(text) = serde_json::to_vec(&observed) {
            let _ = std::fs::write(&observed_path, text);
        }
        let report = report_of(&config, &observed);
        if reported.as_ref() != Some(&report) {
            match client.report_app(&report) {
                Ok(()) => reported = Some(report),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot report this partition's instances");
                    std::thread::sleep(RETRY);
                    continue;
                }
            }
        }
        after = Some(doc.generation);
    }
}

/// Every few seconds, the probes of the started instances (`probes/<Component>.measures`);
/// what they raise goes to the master, whose autonomic rules react.
fn probe_loop(client: &Client, seen: &std::sync::Mutex<Seen>, state_dir: &Path) {
    let mut reported_errors = std::collections::BTreeSet::new();
    loop {
        std::thread::sleep(PROBE_INTERVAL);
        let (desired, started, app) = {
            let seen = seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (seen.desired.clone(), seen.started.clone(), seen.app.clone())
        };
        let Some(app) = app else { continue };
        let mut events = Vec::new();
        for d in desired.iter().filter(|d| started.contains(&d.path)) {
            let file = format!("probes/{}.measures", d.component);
            let Some(text) = app.text(&file) else {
                continue;
            };
            let (probes, errors) = autonomic::probes(&text, &d.exports);
            for e in errors {
                if reported_errors.insert((file.clone(), e.line)) {
                    tracing::warn!(file = %file, error = %e, "a probe is not taken");
                }
            }
            let files = state_dir
                .join("instances")
                .join(clean_path(&d.path))
                .join("files");
            for probe in probes {
                if let Some(cause) = measure(&probe.measure, &files) {
                    events.push(wire::AppEvent {
                        instance: d.path.clone(),
                        event: probe.event,
                        cause,
                    });
                }
            }
        }
        if events.is_empty() {
            continue;
        }
        match client.report_app_events(&wire::AppEvents { events }) {
            Ok(reaction) if !reaction.commands.is_empty() => {
                tracing::info!(commands = ?reaction.commands, "the autonomic rules ran commands");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot send the probes' events"),
        }
    }
}

/// Takes one measure: what was seen when it holds.
fn measure(measure: &Measure, files: &Path) -> Option<String> {
    match measure {
        Measure::File {
            path,
            delete,
            when_missing,
        } => {
            let at = files.join(path);
            let exists = std::fs::symlink_metadata(&at).is_ok();
            match (exists, when_missing) {
                (false, true) => Some(format!("{} does not exist", at.display())),
                (true, false) => {
                    if *delete {
                        let _ = std::fs::remove_file(&at).or_else(|_| std::fs::remove_dir_all(&at));
                    }
                    Some(format!("{} exists", at.display()))
                }
                _ => None,
            }
        }
        Measure::Rest {
            url,
            name,
            op,
            value,
        } => {
            let body = ureq::get(url)
                .config()
                .timeout_global(Some(Duration::from_secs(5)))
                .build()
                .call()
                .ok()?
                .body_mut()
                .read_to_string()
                .ok()?;
            let object: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&body).ok()?;
            let measured = match object.get(name)? {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            op.holds(&measured, value)
                .then(|| format!("{url}: {name} = {measured}"))
        }
    }
}

fn report_of(config: &AgentConfig, observed: &BTreeMap<String, Observed>) -> wire::AppReport {
    wire::AppReport {
        address: config.address.clone(),
        instances: observed
            .iter()
            .map(|(path, o)| {
                (
                    path.clone(),
                    wire::AppObserved {
                        state: o.state().as_str().to_owned(),
                        error: o.error.clone(),
                    },
                )
            })
            .collect(),
    }
}

fn read_config(path: &Path) -> Result<AgentConfig, AgentError> {
    let bad = |message: String| AgentError::Config {
        path: path.to_owned(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))
}

fn client(config: &AgentConfig) -> Result<Client, AgentError> {
    config.connection.client().map_err(|e| match e {
        ConnectionError::Read { path, source } => AgentError::Config {
            path,
            message: source.to_string(),
        },
        ConnectionError::Client(e) => AgentError::Client(e),
    })
}

/// Runs the components' scripts from the archive, each instance with its own folder
/// (`roboconf/instances/<clean path>/`, its component's `files/` copied in) and log.
struct Shell {
    /// Shared with the probes' thread.
    app: std::sync::Arc<Tree>,
    dir: PathBuf,
    /// Where to say that a script runs, and what the partition is.
    tell: Option<(Client, AgentConfig)>,
}

/// How much of a failed script's log its error quotes.
const ERROR_TAIL: u64 = 2048;

impl Shell {
    fn instance_dir(&self, instance: &Desired) -> PathBuf {
        self.dir.join("instances").join(clean_path(&instance.path))
    }

    /// The folder of the instance's component's scripts in the archive, and their names.
    fn scripts(&self, instance: &Desired) -> (String, Vec<String>) {
        let folder = format!("graph/{}/scripts", instance.component);
        let names = self.app.files_in(&folder).map(str::to_owned).collect();
        (folder, names)
    }

    /// The instance's folder, its component's files copied in the first time.
    fn prepare(&self, instance: &Desired) -> Result<PathBuf, String> {
        let dir = self.instance_dir(instance);
        let files = dir.join("files");
        if !files.is_dir() {
            let prefix = format!("graph/{}/files/", instance.component);
            for (path, bytes) in self.app.files.iter() {
                let Some(rest) = path.strip_prefix(&prefix) else {
                    continue;
                };
                let to = files.join(rest);
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                }
                std::fs::write(&to, bytes).map_err(|e| format!("{}: {e}", to.display()))?;
            }
            std::fs::create_dir_all(&files).map_err(|e| format!("{}: {e}", files.display()))?;
        }
        Ok(dir)
    }
}

impl Runner for Shell {
    fn run(
        &mut self,
        instance: &Desired,
        action: Action,
        env: BTreeMap<String, String>,
    ) -> Result<(), String> {
        let (scripts, names) = self.scripts(instance);
        let Some(name) = script::find(&names, action) else {
            return Ok(());
        };
        let dir = self.prepare(instance)?;
        // The whole folder: a script may source its neighbours.
        let bin = dir.join("scripts");
        std::fs::create_dir_all(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
        for other in &names {
            let to = bin.join(other);
            std::fs::write(&to, &self.app.files[&format!("{scripts}/{other}")])
                .map_err(|e| format!("{}: {e}", to.display()))?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("{}: {e}", to.display()))?;
        }
        let file = bin.join(name);
        let bytes = &self.app.files[&format!("{scripts}/{name}")];
        // The log, not a pipe: a script that leaves a server running in the background
        // must not keep the agent waiting for the end of its output.
        let log_path = dir.join("script.log");
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        let start = log.seek(SeekFrom::End(0)).unwrap_or(0);
        let mut command = if bytes.starts_with(b"#!") {
            Command::new(&file)
        } else {
            let mut sh = Command::new("/bin/sh");
            sh.arg(&file);
            sh
        };
        let status = command
            .current_dir(&dir)
            .env_clear()
            .env("PATH", crate::instance::SERVICE_PATH)
            .env("HOME", self.dir.parent().unwrap_or(&self.dir))
            .envs(&env)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log.try_clone().map_err(|e| e.to_string())?)
            .status()
            .map_err(|e| format!("cannot run {}: {e}", file.display()))?;
        if status.success() {
            return Ok(());
        }
        let mut tail = String::new();
        if let Ok(mut read) = std::fs::File::open(&log_path) {
            let end = read.seek(SeekFrom::End(0)).unwrap_or(0);
            let from = start.max(end.saturating_sub(ERROR_TAIL));
            if read.seek(SeekFrom::Start(from)).is_ok() {
                let _ = read.take(ERROR_TAIL).read_to_string(&mut tail);
            }
        }
        Err(format!("{name} {status}: {}", tail.trim()))
    }

    fn files_dir(&self, instance: &Desired) -> String {
        self.instance_dir(instance)
            .join("files")
            .display()
            .to_string()
    }

    /// Reports the instance as deploying, starting... while its script runs: a long
    /// script shows, and an exporter stopping is no exporter any more. (Without a script
    /// the step is over at once: nothing to tell.)
    fn transient(
        &mut self,
        instance: &Desired,
        action: Action,
        observed: &BTreeMap<String, Observed>,
    ) {
        let (_, names) = self.scripts(instance);
        if !instance.installer.eq_ignore_ascii_case("script")
            || script::find(&names, action).is_none()
        {
            return;
        }
        if let Some((client, config)) = &self.tell
            && let Err(e) = client.report_app(&report_of(config, observed))
        {
            tracing::warn!(error = %e, "cannot report a step under way");
        }
    }
}
