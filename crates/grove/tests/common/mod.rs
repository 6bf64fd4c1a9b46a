//! What the end-to-end tests share: the `grove` binary, a test's own place (data
//! directory, addresses, users), daemons, waiting.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn grove() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_grove"));
    command.env("GROVE_LOG", "info,grove_store=warn");
    command
}

pub fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
        .join("software.cfg")
        .canonicalize()
        .expect("example exists")
        .display()
        .to_string()
}

/// A fresh PostgreSQL database's URL (on the server `GROVE_TEST_POSTGRES` names); fails,
/// never skips, without one.
pub fn postgres_url() -> String {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    match runtime.block_on(grove_store::scratch::database()) {
        Ok(grove_store::Location::Postgres(url)) => url,
        Ok(other) => panic!("not a PostgreSQL database: {other}"),
        Err(e) => panic!("this test needs PostgreSQL: {e}"),
    }
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A test's own place: data directory, addresses and user names.
pub struct Place {
    pub dir: tempfile::TempDir,
    pub net: u8,
}

impl Place {
    pub fn new(net: u8) -> Place {
        let dir = tempfile::tempdir().expect("tempdir");
        // Partition users must traverse it when the tests run as root.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        Place { dir, net }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn node_env(&self, command: &mut Command) {
        command
            .env("GROVE_NODE_IPV4_BASE", format!("127.78.{}.1", self.net))
            .env("GROVE_NODE_USER_BASE", format!("gt{}u", self.net))
            .env("GROVE_NODE_POLL_WAIT_SECONDS", "5")
            .env("GROVE_NODE_PROMISE_TIMEOUT_SECONDS", "5")
            .env("GROVE_NODE_PROMISE_INTERVAL_SECONDS", "1")
            .env("GROVE_NODE_USAGE_INTERVAL_SECONDS", "2");
    }

    pub fn address(&self, partition: u8) -> String {
        format!("127.78.{}.{}", self.net, partition + 1)
    }

    /// A client command against the `grove up` of this place, whatever its outcome.
    fn run_client(&self, args: &[&str]) -> Output {
        grove()
            .args(args)
            .env("GROVE_CLIENT_CONFIG", self.path().join("up/client.toml"))
            .env_remove("GROVE_MASTER_URL")
            .env_remove("GROVE_TOKEN")
            .output()
            .expect("grove runs")
    }

    /// A client command against the `grove up` of this place.
    pub fn client(&self, args: &[&str]) -> Output {
        let output = self.run_client(args);
        assert!(
            output.status.success(),
            "grove {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// A client command that must fail; what it said on stderr.
    pub fn client_fails(&self, args: &[&str]) -> String {
        let output = self.run_client(args);
        assert!(!output.status.success(), "grove {args:?} succeeded");
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    pub fn client_json(&self, args: &[&str]) -> Value {
        let mut all: Vec<&str> = args.to_vec();
        all.push("--json");
        let output = self.client(&all);
        serde_json::from_slice(&output.stdout).expect("JSON on stdout")
    }

    pub fn instance(&self, title: &str) -> Value {
        self.client_json(&["service", "info", title])
    }

    /// Writes a software release of the test's own; returns its URL (a path).
    pub fn release(&self, name: &str, profile: &str) -> String {
        let path = self.path().join(name);
        std::fs::write(&path, profile).expect("write the release");
        path.display().to_string()
    }
}

/// Whether the master on `listen` answers over HTTPS, trusting the CA in `ca` (once the
/// master wrote it).
pub fn answers_https(listen: &str, ca: &Path) -> Option<()> {
    let identity = grove_client::Identity {
        token: None,
        ca_pem: Some(std::fs::read_to_string(ca).ok()?),
        certificate: None,
    };
    grove_client::Client::new(&format!("https://{listen}"), &identity)
        .ok()?
        .health()
        .ok()
        .map(|_| ())
}

/// A cloud of separate processes in a place: `grove master` on `listen` over HTTPS with
/// its own CA, nodes registered with `urls` (one master URL, or a comma list).
pub struct Apart<'p> {
    pub place: &'p Place,
    pub listen: String,
    pub urls: String,
    pub admin: String,
    /// The master's CA certificate, which every client trusts.
    pub ca: PathBuf,
}

impl<'p> Apart<'p> {
    /// Starts `grove master` on `listen` (data in `<place>/master`); returns it once it
    /// answers, with the admin token read.
    pub fn master(place: &'p Place, listen: &str, urls: &str) -> (Apart<'p>, Daemon) {
        let daemon = Apart::start_master(place, listen);
        let admin = std::fs::read_to_string(place.path().join("master/admin.token"))
            .expect("admin token")
            .trim()
            .to_owned();
        let apart = Apart {
            place,
            listen: listen.to_owned(),
            urls: urls.to_owned(),
            admin,
            ca: place.path().join("master/ca.pem"),
        };
        (apart, daemon)
    }

    fn start_master(place: &Place, listen: &str) -> Daemon {
        let mut command = grove();
        command.args(["master", "--listen", listen]);
        command.arg("--data-dir").arg(place.path().join("master"));
        let daemon = Daemon::spawn(command, place.path().join("master.log"));
        let ca = place.path().join("master/ca.pem");
        eventually("the master to answer", || answers_https(listen, &ca));
        daemon
    }

    /// The typed client as the admin, through `urls`.
    pub fn api(&self) -> grove_client::Client {
        let identity = grove_client::Identity {
            token: Some(self.admin.clone()),
            ca_pem: Some(std::fs::read_to_string(&self.ca).expect("the master's CA")),
            certificate: None,
        };
        grove_client::Client::new(&self.urls, &identity).expect("client")
    }

    /// The master again, on the same data (after it stopped).
    pub fn restart_master(&self) -> Daemon {
        Apart::start_master(self.place, &self.listen)
    }

    /// A client command as the admin, through `urls`; its `--json` answer.
    /// A client command that must fail, as the admin; what it said on stderr.
    pub fn client_fails(&self, args: &[&str]) -> String {
        let output = grove()
            .args(args)
            .env("GROVE_MASTER_URL", &self.urls)
            .env("GROVE_TOKEN", &self.admin)
            .env("GROVE_CA_CERT", &self.ca)
            .output()
            .expect("runs");
        assert!(!output.status.success(), "grove {args:?} succeeded");
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    pub fn client(&self, args: &[&str]) -> Value {
        let output = grove()
            .args(args)
            .arg("--json")
            .env("GROVE_MASTER_URL", &self.urls)
            .env("GROVE_TOKEN", &self.admin)
            .env("GROVE_CA_CERT", &self.ca)
            .output()
            .expect("runs");
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("json")
    }

    /// Registers computer `name` with `partitions` partitions; returns its configuration
    /// file.
    pub fn register(&self, name: &str, partitions: u32) -> PathBuf {
        let config = self.place.path().join(format!("{name}.toml"));
        let partitions_text = partitions.to_string();
        let registered = grove()
            .args(["node", "register", name, "--partitions", &partitions_text])
            .args(["--master-url", &self.urls, "--token", &self.admin, "--json"])
            .arg("--ca-cert")
            .arg(&self.ca)
            .arg("--config")
            .arg(&config)
            .arg("--software-root")
            .arg(self.place.path().join("software"))
            .arg("--instance-root")
            .arg(self.place.path().join("instance"))
            .output()
            .expect("runs");
        assert!(registered.status.success());
        let answer: Value = serde_json::from_slice(&registered.stdout).expect("JSON on stdout");
        assert_eq!(answer["computer"], name);
        // The formatted partitions, as `node format --json` lists them.
        let mut format = grove();
        format
            .args(["node", "format", "--json", "--config"])
            .arg(&config);
        self.place.node_env(&mut format);
        let formatted = format.output().expect("runs");
        assert!(
            formatted.status.success(),
            "{}",
            String::from_utf8_lossy(&formatted.stderr)
        );
        let slots: Value = serde_json::from_slice(&formatted.stdout).expect("JSON on stdout");
        assert_eq!(slots.as_array().map(Vec::len), Some(partitions as usize));
        config
    }

    /// `grove node` with `config`.
    pub fn node(&self, config: &Path) -> Daemon {
        let mut command = grove();
        command.arg("node").arg("--config").arg(config);
        self.place.node_env(&mut command);
        Daemon::spawn(command, self.place.path().join("node.log"))
    }
}

/// A running daemon (`grove up`, `grove master`, `grove node`), stopped with SIGINT (and
/// waited for) when dropped.
pub struct Daemon {
    child: Child,
    log: PathBuf,
    lines: mpsc::Receiver<String>,
}

impl Daemon {
    pub fn spawn(mut command: Command, log: PathBuf) -> Daemon {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log");
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(file)
            .spawn()
            .expect("grove starts");
        let stdout = child.stdout.take().expect("stdout");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon { child, log, lines }
    }

    /// The next line it prints on stdout.
    pub fn line(&self, timeout: Duration) -> String {
        self.lines
            .recv_timeout(timeout)
            .unwrap_or_else(|e| panic!("no output ({e}); log:\n{}", self.log_text()))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, signal);
    }

    /// SIGINT, then waits for it to exit.
    pub fn stop(mut self) {
        self.shutdown();
    }

    pub fn shutdown(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        self.signal(nix::sys::signal::Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// `grove up` in this place, with an example deployed; returns its connection parameters.
pub fn up(place: &Place, example: Option<&str>) -> (Daemon, Option<Value>) {
    let mut command = grove();
    command.args([
        "up",
        "--listen",
        "127.0.0.1:0",
        "--partitions",
        "3",
        "--json",
    ]);
    command.arg("--data-dir").arg(place.path().join("up"));
    if let Some(name) = example {
        command.args(["--example", name]);
    }
    place.node_env(&mut command);
    let daemon = Daemon::spawn(command, place.path().join("up.log"));
    let connection = example.map(|_| {
        let line = daemon.line(Duration::from_secs(120));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    });
    if example.is_none() {
        // Up once the client file is written.
        eventually("grove up to start", || {
            place.path().join("up/client.toml").exists().then_some(())
        });
    }
    (daemon, connection)
}

/// `grove up` with `partitions` partitions in this place.
pub fn up_with(place: &Place, partitions: u32) -> Daemon {
    let mut command = grove();
    command.args(["up", "--listen", "127.0.0.1:0", "--partitions"]);
    command.arg(partitions.to_string());
    command.arg("--data-dir").arg(place.path().join("up"));
    place.node_env(&mut command);
    let daemon = Daemon::spawn(command, place.path().join("up.log"));
    eventually("grove up to start", || {
        place.path().join("up/client.toml").exists().then_some(())
    });
    daemon
}

pub fn eventually<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    eventually_within(what, Duration::from_secs(60), check)
}

pub fn eventually_within<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

pub fn get(url: &str) -> Option<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    agent.get(url).call().ok()?.body_mut().read_to_string().ok()
}

pub fn text(value: &Value, key: &str) -> String {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {value}"))
        .to_owned()
}

/// Probes a URL every 10 ms on a thread of its own, counting failures.
pub struct Prober {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(usize, bool)>,
}

impl Prober {
    pub fn start(url: &str) -> Prober {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let url = url.to_owned();
        let flag = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let (mut failed, mut answered) = (0, false);
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                match get(&url) {
                    Some(_) => answered = true,
                    None => failed += 1,
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (failed, answered)
        });
        Prober { stop, thread }
    }

    /// Failed probes, and whether any was answered.
    pub fn stop(self) -> (usize, bool) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("prober")
    }
}

/// Kills every process working below `dir` (what a reboot would do to a test's services,
/// and what a test leaves behind).
pub fn end_processes_in(dir: &Path) {
    let own = std::process::id();
    for _ in 0..50 {
        let found: Vec<i32> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| *pid as u32 != own)
            .filter(|pid| {
                std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(dir))
            })
            .collect();
        if found.is_empty() {
            return;
        }
        for pid in found {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Place {
    /// Services that outlive their agent by design would outlive the test too.
    fn drop(&mut self) {
        end_processes_in(self.dir.path());
    }
}

/// Serves each `(path, body)` on a loopback port, from a thread of its own (404 for any
/// other path); the base URL.
pub fn serve(files: Vec<(&'static str, Vec<u8>)>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let read = std::io::Read::read(&mut stream, &mut request).unwrap_or(0);
            let line = String::from_utf8_lossy(&request[..read]);
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            let (status, body) = match files.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => ("200 OK", body.clone()),
                None => ("404 Not Found", Vec::new()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = std::io::Write::write_all(&mut stream, head.as_bytes());
            let _ = std::io::Write::write_all(&mut stream, &body);
        }
    });
    base
}

/// `dir`'s files as a `.tar.gz` written at `out` by the system's tar; its bytes.
pub fn tar_gz(dir: &Path, out: &Path) -> Vec<u8> {
    let status = Command::new("tar")
        .arg("czf")
        .arg(out)
        .arg("-C")
        .arg(dir)
        .arg(".")
        .status()
        .expect("tar runs");
    assert!(status.success());
    std::fs::read(out).expect("archive")
}

/// A node of its own in the place: roots, addresses (`127.78.<net>.<first>`) and users.
pub fn own_node(
    apart: &Apart<'_>,
    name: &str,
    partitions: u32,
    first: u8,
    users: &str,
) -> (PathBuf, Daemon) {
    let place = apart.place;
    let config = place.path().join(format!("{name}.toml"));
    let registered = grove()
        .args([
            "node",
            "register",
            name,
            "--partitions",
            &partitions.to_string(),
        ])
        .args([
            "--master-url",
            &apart.urls,
            "--token",
            &apart.admin,
            "--json",
        ])
        .arg("--ca-cert")
        .arg(&apart.ca)
        .arg("--config")
        .arg(&config)
        .arg("--software-root")
        .arg(place.path().join(format!("{name}/software")))
        .arg("--instance-root")
        .arg(place.path().join(format!("{name}/instance")))
        .output()
        .expect("runs");
    assert!(
        registered.status.success(),
        "{}",
        String::from_utf8_lossy(&registered.stderr)
    );
    let env = |command: &mut Command| {
        place.node_env(command);
        command
            .env(
                "GROVE_NODE_IPV4_BASE",
                format!("127.78.{}.{first}", place.net),
            )
            .env("GROVE_NODE_USER_BASE", users);
    };
    let mut format = grove();
    format.args(["node", "format", "--config"]).arg(&config);
    env(&mut format);
    assert!(format.status().expect("runs").success());
    let mut node = grove();
    node.arg("node").arg("--config").arg(&config);
    env(&mut node);
    let daemon = Daemon::spawn(node, place.path().join(format!("{name}.log")));
    (config, daemon)
}
