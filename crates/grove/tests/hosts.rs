//! Hosts on one machine: a master and two nodes, each in a network namespace of its own
//! joined by a bridge (made here, removed after, as root). Nodes join with join tokens
//! over HTTPS; a service on one node is reached from another over the namespaces'
//! network; a capture of that network shows the services' traffic and no secret in clear.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

mod common;
use common::{Daemon, Place, eventually, example, is_root, text};

const GROVE: &str = env!("CARGO_BIN_EXE_grove");

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        output.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Namespaces `<tag>-m`, `<tag>-a`, `<tag>-b` on bridge `<tag>`: 10.77.0.1 (the
/// master), 10.77.0.2 and 10.77.0.3 (the nodes), all in 10.77.0.0/16 so that the
/// partitions' addresses (10.77.1.x on node a, 10.77.2.x on node b) are on the segment.
struct Hosts {
    tag: String,
}

impl Hosts {
    fn new() -> Hosts {
        assert!(
            is_root(),
            "this test makes network namespaces: run it as root (CI does)"
        );
        let tag = format!("gt{}", std::process::id() % 100_000);
        let hosts = Hosts { tag };
        let bridge = hosts.tag.as_str();
        ip(&["link", "add", bridge, "type", "bridge"]);
        ip(&["link", "set", bridge, "up"]);
        for (index, host) in ["m", "a", "b"].into_iter().enumerate() {
            let ns = hosts.ns(host);
            let outside = format!("{}{host}", hosts.tag);
            ip(&["netns", "add", &ns]);
            ip(&[
                "link", "add", &outside, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ]);
            ip(&["link", "set", &outside, "master", bridge, "up"]);
            let address = format!("10.77.0.{}/16", index + 1);
            ip(&["-n", &ns, "addr", "add", &address, "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        hosts
    }

    fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.tag)
    }

    /// `grove` in a host's namespace.
    fn grove(&self, host: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.ns(host), GROVE]);
        command
    }

    fn bridge(&self) -> &str {
        &self.tag
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for host in ["m", "a", "b"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(host)])
                .status();
        }
        let _ = Command::new("ip").args(["link", "del", &self.tag]).status();
    }
}

fn ok(output: Output, what: &str) -> Output {
    assert!(
        output.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Everything tcpdump sees on the bridge, whole packets, written as it comes.
struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    fn start(interface: &str, file: &Path) -> Capture {
        let child = Command::new("tcpdump")
            .args(["-i", interface, "-s", "0", "-U", "-w"])
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tcpdump runs (apt-get install tcpdump)");
        // tcpdump opens the file once it listens.
        eventually("tcpdump to listen", || file.exists().then_some(()));
        std::thread::sleep(Duration::from_millis(300));
        Capture {
            child,
            file: file.to_owned(),
        }
    }

    fn stop(mut self) -> Vec<u8> {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid")),
            nix::sys::signal::Signal::SIGINT,
        );
        let _ = self.child.wait();
        std::fs::read(&self.file).expect("capture")
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[test]
fn nodes_in_their_own_namespaces_join_deploy_and_reach_each_others_services() {
    let place = Place::new(20);
    let hosts = Hosts::new();
    let capture = Capture::start(hosts.bridge(), &place.path().join("bridge.pcap"));

    // The master, in its namespace, on its address.
    let mut command = hosts.grove("m");
    command
        .args(["master", "--listen", "10.77.0.1:8443"])
        .args(["--mtls-listen", "10.77.0.1:8444", "--data-dir"])
        .arg(place.path().join("master"));
    let master = Daemon::spawn(command, place.path().join("master.log"));
    let line = master.line(Duration::from_secs(60));
    let fingerprint = line
        .strip_prefix("CA fingerprint: ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_owned();
    let ca = place.path().join("master/ca.pem");
    let admin = std::fs::read_to_string(place.path().join("master/admin.token"))
        .expect("admin token")
        .trim()
        .to_owned();
    let url = "https://10.77.0.1:8443";
    let cli = |host: &str, args: &[&str]| {
        ok(
            hosts
                .grove(host)
                .args(args)
                .env("GROVE_MASTER_URL", url)
                .env("GROVE_TOKEN", &admin)
                .env("GROVE_CA_CERT", &ca)
                .output()
                .expect("runs"),
            &format!("{args:?}"),
        )
    };

    // The second listener requires a client certificate: without one, the TLS handshake
    // fails (curl: 35 or 56), where the main listener answers.
    let health = |port: u16| {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &hosts.ns("a"),
                "curl",
                "-sS",
                "--max-time",
                "5",
            ])
            .arg("--cacert")
            .arg(&ca)
            .arg(format!("https://10.77.0.1:{port}/v1/health"))
            .output()
            .expect("curl runs")
    };
    assert!(health(8443).status.success(), "the main listener answers");
    let refused = health(8444);
    assert!(
        matches!(refused.status.code(), Some(35 | 56)),
        "refused at the handshake: {:?} {}",
        refused.status,
        String::from_utf8_lossy(&refused.stderr)
    );

    // Each node joins from its namespace with a token of its own, then runs.
    let mut tokens = Vec::new();
    let mut nodes = Vec::new();
    for (host, net) in [("a", 1), ("b", 2)] {
        let token = String::from_utf8(cli("m", &["node", "join-token"]).stdout)
            .expect("utf-8")
            .trim()
            .to_owned();
        let dir = place.path().join(format!("node-{host}"));
        let config = dir.join("node.toml");
        let name = format!("node-{host}");
        ok(
            hosts
                .grove(host)
                .args(["node", "join", url, &name, "--partitions", "3"])
                .args([
                    "--token",
                    &token,
                    "--ca-fingerprint",
                    &fingerprint,
                    // Joined, the node talks to the listener that requires certificates.
                    "--node-url",
                    "https://10.77.0.1:8444",
                    "--config",
                ])
                .arg(&config)
                .arg("--software-root")
                .arg(dir.join("software"))
                .arg("--instance-root")
                .arg(dir.join("instance"))
                .output()
                .expect("runs"),
            "join",
        );
        let env = |command: &mut Command| {
            command
                .env("GROVE_NODE_IPV4_BASE", format!("10.77.{net}.1"))
                .env("GROVE_NODE_IPV4_INTERFACE", "eth0")
                .env("GROVE_NODE_USER_BASE", format!("gt20{host}u"))
                .env("GROVE_NODE_POLL_WAIT_SECONDS", "5")
                .env("GROVE_NODE_PROMISE_TIMEOUT_SECONDS", "5")
                .env("GROVE_NODE_PROMISE_INTERVAL_SECONDS", "1");
        };
        let mut format = hosts.grove(host);
        format.args(["node", "format", "--config"]).arg(&config);
        env(&mut format);
        ok(format.output().expect("runs"), "format");
        let mut daemon = hosts.grove(host);
        daemon.args(["node", "--config"]).arg(&config);
        env(&mut daemon);
        nodes.push(Daemon::spawn(
            daemon,
            place.path().join(format!("node-{host}.log")),
        ));
        tokens.push(token);
    }

    // A request placed on node b by its SLA; its service answers node a's namespace at
    // node b's partition address.
    let sr = example("hello");
    cli("m", &["supply", &sr, "node-b"]);
    let requested = cli(
        "m",
        &[
            "request",
            "hello",
            &sr,
            "--wait",
            "--param",
            "name=b",
            "--sla",
            "computer_guid=node-b",
            "--json",
        ],
    );
    let answer: serde_json::Value = serde_json::from_slice(&requested.stdout).expect("json");
    let service = text(&answer, "url");
    assert!(
        service.contains("10.77.2."),
        "placed on node b's addresses: {service}"
    );
    let curl_in = |host: &str, url: &str| {
        let output = Command::new("ip")
            .args([
                "netns",
                "exec",
                &hosts.ns(host),
                "curl",
                "-fsS",
                "--max-time",
                "5",
                url,
            ])
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let page = eventually("node b's service to answer in node a's namespace", || {
        curl_in("a", &service)
    });
    assert_eq!(page, "Hello b!\n");

    // The partition acted with its own certificate: in its directory, its user's, 0600,
    // naming its instance.
    let info = cli("m", &["service", "info", "hello", "--json"]);
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).expect("json");
    let partition = place
        .path()
        .join("node-b/instance")
        .join(info["partition"].as_str().expect("partition"));
    let owner = std::fs::metadata(&partition).expect("partition").uid();
    for file in [".grove/partition.pem", ".grove/partition.key"] {
        let meta = std::fs::symlink_metadata(partition.join(file)).expect(file);
        assert!(meta.is_file(), "{file}");
        assert_eq!(meta.uid(), owner, "{file}: the partition user's");
        assert_ne!(owner, 0, "partitions are not root's");
        assert_eq!(meta.mode() & 0o777, 0o600, "{file}");
    }
    let pem = std::fs::read_to_string(partition.join(".grove/partition.pem")).expect("pem");
    let der = grove_pki::certificates_der(&pem, "the partition's certificate").expect("pem");
    let presented = grove_pki::presented(&der[0]).expect("certificate");
    assert_eq!(
        presented.identity,
        grove_pki::Identity::Partition(info["id"].as_i64().expect("id"))
    );

    let deployed = |title: &str| {
        let info = cli("m", &["service", "info", title, "--json"]);
        let info: serde_json::Value = serde_json::from_slice(&info.stdout).expect("json");
        info["connection"]["url"].as_str().map(str::to_owned)
    };

    // The webapp example split across the nodes: its web service on node a, the Redis it
    // requests on node b (the `redis-computer` parameter), reached over the namespaces'
    // network.
    let webapp = example("webapp");
    cli("m", &["supply", &webapp, "node-a"]);
    cli("m", &["supply", &webapp, "node-b"]);
    let requested = cli(
        "m",
        &[
            "request",
            "shop",
            &webapp,
            "--wait",
            "--param",
            "redis-computer=node-b",
            "--sla",
            "computer_guid=node-a",
            "--json",
        ],
    );
    let answer: serde_json::Value = serde_json::from_slice(&requested.stdout).expect("json");
    let shop = text(&answer, "url");
    assert!(
        shop.contains("10.77.1."),
        "the web service on node a: {shop}"
    );
    let redis = cli("m", &["service", "info", "redis", "--json"]);
    let redis: serde_json::Value = serde_json::from_slice(&redis.stdout).expect("json");
    assert_eq!(redis["computer"], "node-b", "{redis}");
    let redis_url = redis["connection"]["url"].as_str().expect("redis url");
    assert!(
        redis_url.contains("10.77.2."),
        "Redis on node b: {redis_url}"
    );
    assert_eq!(
        eventually("the web service to answer", || curl_in("b", &shop)),
        "Hello, visitor number 1!\n"
    );
    assert_eq!(
        curl_in("m", &shop).as_deref(),
        Some("Hello, visitor number 2!\n"),
        "the count is kept in Redis on node b"
    );

    // Node b's link is cut for 30 s: its service keeps answering in its namespace, and a
    // request made meanwhile is deployed once the link is back.
    let link = format!("{}b", hosts.tag);
    ip(&["link", "set", &link, "down"]);
    assert_eq!(curl_in("a", &service), None, "the link is down");
    cli(
        "m",
        &[
            "request",
            "during-cut",
            &sr,
            "--param",
            "name=cut",
            "--sla",
            "computer_guid=node-b",
        ],
    );
    std::thread::sleep(Duration::from_secs(30));
    assert_eq!(curl_in("b", &service).as_deref(), Some("Hello b!\n"));
    assert_eq!(deployed("during-cut"), None, "nothing reached node b");
    ip(&["link", "set", &link, "up"]);
    let back = std::time::Instant::now();
    let cut_url = eventually("the pending request to be deployed", || {
        deployed("during-cut")
    });
    eprintln!("deployed {:.1?} after the link came back", back.elapsed());
    assert_eq!(
        eventually("its service", || curl_in("a", &cut_url)),
        "Hello cut!\n"
    );

    // kill -9 of the master: the services keep running; once it is back, the nodes
    // reconnect and deploy what is asked.
    master.signal(nix::sys::signal::Signal::SIGKILL);
    drop(master);
    assert_eq!(curl_in("a", &service).as_deref(), Some("Hello b!\n"));
    let mut command = hosts.grove("m");
    command
        .args(["master", "--listen", "10.77.0.1:8443"])
        .args(["--mtls-listen", "10.77.0.1:8444", "--data-dir"])
        .arg(place.path().join("master"));
    let master = Daemon::spawn(command, place.path().join("master-again.log"));
    assert_eq!(
        master.line(Duration::from_secs(60)),
        format!("CA fingerprint: {fingerprint}"),
        "the same CA after a restart"
    );
    cli("m", &["supply", &sr, "node-a"]);
    cli(
        "m",
        &[
            "request",
            "after-restart",
            &sr,
            "--wait",
            "--param",
            "name=again",
            "--sla",
            "computer_guid=node-a",
        ],
    );
    let again = eventually("the new instance", || deployed("after-restart"));
    assert!(again.contains("10.77.1."), "on node a: {again}");
    assert_eq!(
        eventually("its service", || curl_in("b", &again)),
        "Hello again!\n"
    );
    assert_eq!(curl_in("a", &service).as_deref(), Some("Hello b!\n"));

    for node in nodes {
        node.stop();
    }
    master.stop();
    let captured = capture.stop();
    // The capture saw the traffic: the service's plain HTTP page crossed the bridge...
    assert!(
        contains(&captured, "Hello b!"),
        "the capture holds the service's page"
    );
    // ...and no secret did: the admin token, the join tokens, the nodes' keys.
    assert!(
        !contains(&captured, &admin),
        "the admin token crossed in clear"
    );
    for token in &tokens {
        assert!(!contains(&captured, token), "a join token crossed in clear");
    }
    for host in ["a", "b"] {
        let key = std::fs::read_to_string(place.path().join(format!("node-{host}/node.key")))
            .expect("key");
        let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(
            !contains(&captured, &body[..40]),
            "a node key crossed in clear"
        );
    }
}
