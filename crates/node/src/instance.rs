//! Deploying an instance in its partition: the profile run (in the agent, or in a child
//! process as the partition's user), the services and promises it leaves, and destruction.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use grove_api as api;
use grove_confine::{ConfineError, Kind, Owner, Tree};
use grove_fetch::Fetcher;
use grove_recipes::slap::Partition;
use grove_recipes::{Context, Registry, install, load_profile};
use serde::{Deserialize, Serialize};

/// Everything one run of an instance profile needs: what the agent hands to
/// `grove node run-instance` on its standard input when the run is done as the partition's
/// user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub computer: String,
    pub partition: String,
    pub path: PathBuf,
    pub addresses: Vec<String>,
    pub software_dir: PathBuf,
    pub master_url: String,
    /// The master's CA certificate (PEM), when the master serves HTTPS with its own CA.
    #[serde(default)]
    pub master_ca: Option<String>,
    pub instance: api::PartitionInstance,
    /// The partition's own certificate and key, when the master has a CA: the recipes
    /// act with it, and the run writes it into the partition.
    #[serde(default)]
    pub certificate: Option<PartitionIdentity>,
}

/// A partition's certificate and key (PEM).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionIdentity {
    pub certificate: String,
    pub key: String,
}

impl std::fmt::Debug for PartitionIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PartitionIdentity(..)")
    }
}

/// Where a partition keeps its certificate, below its directory.
pub const CERTIFICATE_DIR: &str = ".grove";
pub const CERTIFICATE_FILE: &str = "partition.pem";
pub const KEY_FILE: &str = "partition.key";

/// What a successful run leaves: the titles of the children it requested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub children: Vec<String>,
}

/// The section the agent appends to the instance profile.
fn slap_connection(job: &Job) -> String {
    let escape = |text: &str| text.replace('$', "$$").replace('\n', " ");
    let mut files = String::new();
    if job.certificate.is_some() {
        let dir = job.path.join(CERTIFICATE_DIR);
        files = format!(
            "cert-file = {}\nkey-file = {}\n",
            escape(&dir.join(CERTIFICATE_FILE).display().to_string()),
            escape(&dir.join(KEY_FILE).display().to_string()),
        );
    }
    format!(
        "\n\n# Added by grove for this partition.\n[slap-connection]\n\
         computer-id = {}\npartition-id = {}\nserver-url = {}\nsoftware-release-url = {}\n\
         requested-state = {}\ninstance-id = {}\npartition-token = {}\n{files}",
        escape(&job.computer),
        escape(&job.partition),
        escape(&job.master_url),
        escape(&job.instance.software_release),
        job.instance.requested_state.as_str(),
        job.instance.id,
        escape(&job.instance.token),
    )
}

/// Runs the instance profile of `job` in its partition.
pub fn run(job: &Job, fetcher: &Fetcher, registry: &Registry) -> Result<Outcome, String> {
    let source = ["instance.cfg", "template.cfg"]
        .iter()
        .map(|name| job.software_dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            format!(
                "the software release {} has no instance.cfg (looked in {})",
                job.instance.software_release,
                job.software_dir.display()
            )
        })?;
    let text = std::fs::read_to_string(&source)
        .map_err(|e| format!("cannot read {}: {e}", source.display()))?;
    let main = job.path.join("buildout.cfg");
    std::fs::write(&main, text + &slap_connection(job))
        .map_err(|e| format!("cannot write {}: {e}", main.display()))?;
    std::fs::set_permissions(&main, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot protect {}: {e}", main.display()))?;
    let link = job.path.join("software_release");
    if std::fs::read_link(&link).ok().as_deref() != Some(job.software_dir.as_path()) {
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&job.software_dir, &link)
            .map_err(|e| format!("cannot link {}: {e}", link.display()))?;
    }
    let profile = load_profile(&main, fetcher)?;
    // The partition acts with its certificate where it has one, else with its token.
    let identity = match &job.certificate {
        Some(own) => {
            let dir = job.path.join(CERTIFICATE_DIR);
            for (name, text) in [(CERTIFICATE_FILE, &own.certificate), (KEY_FILE, &own.key)] {
                grove_confine::write_private(&dir, name, text.as_bytes(), false)
                    .map_err(|e| format!("cannot write {}: {e}", dir.join(name).display()))?;
            }
            grove_client::Identity {
                token: None,
                ca_pem: job.master_ca.clone(),
                certificate: Some((own.certificate.clone(), own.key.clone())),
            }
        }
        None => grove_client::Identity {
            token: Some(job.instance.token.clone()),
            ca_pem: job.master_ca.clone(),
            certificate: None,
        },
    };
    let master =
        grove_client::Client::new(&job.master_url, &identity).map_err(|e| e.to_string())?;
    let connection = grove_recipes::slap::Connection {
        master_url: job.master_url.clone(),
        master_ca: job.master_ca.clone(),
        token: job
            .certificate
            .is_none()
            .then(|| job.instance.token.clone()),
        certificate: job.certificate.as_ref().map(|_| {
            let dir = job.path.join(CERTIFICATE_DIR);
            (dir.join(CERTIFICATE_FILE), dir.join(KEY_FILE))
        }),
    };
    let partition = Partition {
        computer: job.computer.clone(),
        reference: job.partition.clone(),
        addresses: job.addresses.clone(),
        instance: job.instance.clone(),
        master: &master,
        connection,
        requested: Mutex::new(Vec::new()),
    };
    let ctx = Context {
        directory: job.path.clone(),
        fetcher,
        partition: Some(&partition),
        shared_parts: Vec::new(),
    };
    install(&profile, registry, &ctx).map_err(|e| e.to_string())?;
    let children = partition
        .requested
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok(Outcome { children })
}

/// Runs the job in `grove node run-instance` as the partition's user.
pub fn run_as(job: &Job, program: &Path, uid: u32, gid: u32) -> Result<Outcome, String> {
    let input = serde_json::to_vec(job).map_err(|e| e.to_string())?;
    let stdout = crate::helper::run_as(
        program,
        &["node", "run-instance"],
        &job.path,
        (uid, gid),
        &input,
    )
    .map_err(|e| e.to_string())?;
    serde_json::from_str(stdout.trim())
        .map_err(|e| format!("the instance run answered {:?} ({e})", stdout.trim()))
}

/// What services and promises run with.
pub const SERVICE_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";

/// A program the partition asks the agent to run: a service or a promise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launcher {
    pub name: String,
    pub path: PathBuf,
    /// Changes when the launcher does (its bytes, or where a link points), so that a
    /// service is restarted when its launcher changes.
    pub digest: String,
}

/// How large a launcher the agent reads to digest it.
const LAUNCHER_LIMIT: u64 = 16 * 1024 * 1024;

/// The launchers of a partition's `etc/service` and `etc/run`, by name.
pub fn services(partition: &Tree) -> Result<Vec<Launcher>, ConfineError> {
    let mut found = Vec::new();
    for dir in ["etc/service", "etc/run"] {
        found.extend(launchers(partition, Path::new(dir))?);
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found.dedup_by(|a, b| a.name == b.name);
    Ok(found)
}

/// The executables of one directory of the partition. The agent reads them without
/// following links (a link is run as the partition's user, who may follow it; its digest
/// is where it points), and skips anything that is neither a file nor a link.
fn launchers(partition: &Tree, dir: &Path) -> Result<Vec<Launcher>, ConfineError> {
    let mut found = Vec::new();
    for entry in partition.entries(dir)? {
        let Ok(name) = entry.name.into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let relative = dir.join(&name);
        let digest = match entry.kind {
            Kind::File if entry.executable => {
                crate::software::md5_hex(&partition.read(&relative, LAUNCHER_LIMIT)?)
            }
            Kind::Link => format!("link {}", partition.read_link(&relative)?.display()),
            _ => continue,
        };
        found.push(Launcher {
            name,
            path: partition.path().join(&relative),
            digest,
        });
    }
    Ok(found)
}

/// A promise that did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromiseFailure {
    pub name: String,
    pub message: String,
}

impl std::fmt::Display for PromiseFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "promise {} failed: {}", self.name, self.message)
    }
}

/// The failures, one a line, as the instance's error.
pub fn failures_text(failures: &[PromiseFailure]) -> String {
    let lines: Vec<String> = failures.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// Runs every promise of `etc/promise`, each with `timeout`, as `user`.
pub fn check_promises(
    partition: &Path,
    user: Option<(u32, u32)>,
    timeout: Duration,
) -> Vec<PromiseFailure> {
    let owner = user.map(|(uid, gid)| Owner { uid, gid });
    let promises =
        Tree::open(partition, owner).and_then(|tree| launchers(&tree, Path::new("etc/promise")));
    let promises = match promises {
        Ok(promises) => promises,
        Err(e) => {
            return vec![PromiseFailure {
                name: "etc/promise".to_owned(),
                message: e.to_string(),
            }];
        }
    };
    promises
        .into_iter()
        .filter_map(|promise| {
            run_bounded(&promise.path, partition, user, timeout)
                .err()
                .map(|message| PromiseFailure {
                    name: promise.name,
                    message,
                })
        })
        .collect()
}

/// Reads at most `limit` bytes of a child's pipe (and one more, to tell that it wrote
/// more) on a thread of its own, so that a chatty program never blocks on a full pipe.
pub(crate) fn read_on_thread<R: Read + Send + 'static>(
    pipe: Option<R>,
    limit: u64,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(pipe) = pipe {
            let _ = pipe.take(limit + 1).read_to_end(&mut bytes);
        }
        bytes
    })
}

/// Runs a program in its own process group with a deadline; its output is the error when
/// it fails.
pub fn run_bounded(
    program: &Path,
    cwd: &Path,
    user: Option<(u32, u32)>,
    timeout: Duration,
) -> Result<(), String> {
    let mut command = Command::new(program);
    command
        .current_dir(cwd)
        .env_clear()
        .env("PATH", SERVICE_PATH)
        .env("HOME", cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let stdout = read_on_thread(child.stdout.take(), 64 * 1024);
    let stderr = read_on_thread(child.stderr.take(), 64 * 1024);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("cannot wait for {}: {e}", program.display())),
        }
    };
    let Some(status) = status else {
        let group = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
        return Err(format!("timed out after {} s", timeout.as_secs_f64()));
    };
    let mut output = String::from_utf8_lossy(&stdout.join().unwrap_or_default()).into_owned();
    output.push_str(&String::from_utf8_lossy(&stderr.join().unwrap_or_default()));
    if status.success() {
        Ok(())
    } else {
        let output = output.trim();
        Err(if output.is_empty() {
            format!("{status}")
        } else {
            format!("{status}: {output}")
        })
    }
}

/// Runs `sbin/destroy` if the instance has one, then empties the partition (keeping the
/// directory itself and its resource file). Nothing is followed: a link the instance left
/// is removed, not what it points to.
pub fn wipe(partition: &Path, user: Option<(u32, u32)>, timeout: Duration) -> Result<(), String> {
    let tree = Tree::open(partition, user.map(|(uid, gid)| Owner { uid, gid }))
        .map_err(|e| e.to_string())?;
    let destroy = Path::new("sbin/destroy");
    if matches!(tree.kind(destroy), Ok(Some(Kind::File | Kind::Link)))
        && let Err(e) = run_bounded(&partition.join(destroy), partition, user, timeout)
    {
        tracing::warn!(partition = %partition.display(), error = %e, "sbin/destroy failed");
    }
    for entry in tree.entries(Path::new(".")).map_err(|e| e.to_string())? {
        if entry.name == crate::format::RESOURCE_FILE {
            continue;
        }
        tree.remove_all(Path::new(&entry.name))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
