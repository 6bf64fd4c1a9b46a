//! `grove master` under idle and slow clients: connections that send nothing, or headers
//! too slowly, or sit idle after a request, are closed; past the connection limit new
//! clients wait (and the log says so) instead of the master running out of descriptors.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::free_port;

struct Master {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Master {
    fn start(extra: &[&str]) -> Master {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let log = dir.path().join("master.log");
        let child = Command::new(env!("CARGO_BIN_EXE_grove"))
            .args([
                "master",
                "--insecure-http",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(dir.path().join("data"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("grove master starts");
        let master = Master {
            child,
            port,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while master.health(Duration::from_secs(1)).is_none() {
            assert!(Instant::now() < deadline, "the master did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        master
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream
    }

    /// One request on a new connection; its status line, or none within `timeout`.
    fn health(&self, timeout: Duration) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(timeout)).ok()?;
        stream
            .write_all(b"GET /v1/health HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        answer.lines().next().map(str::to_owned)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads until the server closes the connection; how long that took.
fn closed_after(mut stream: TcpStream) -> Duration {
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return started.elapsed(),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return started.elapsed(),
            Err(e) => panic!("the master kept the connection open: {e}"),
        }
    }
}

#[test]
fn silent_slow_and_idle_connections_are_closed() {
    let master = Master::start(&["--header-timeout-seconds", "1"]);
    // Says nothing at all.
    let silent = master.connect();
    // Sends half its headers, then nothing.
    let mut slow = master.connect();
    slow.write_all(b"GET /v1/health HTTP/1.1\r\nHost: m\r\n")
        .expect("write");
    // Makes a request, then keeps the connection idle.
    let mut idle = master.connect();
    idle.write_all(b"GET /v1/health HTTP/1.1\r\nHost: m\r\n\r\n")
        .expect("write");
    for stream in [silent, slow, idle] {
        // Closed by the master (the read timeout of 10 s would fail the test).
        closed_after(stream);
    }
    assert!(
        master
            .health(Duration::from_secs(5))
            .is_some_and(|l| l.contains("200"))
    );
}

#[test]
fn past_the_connection_limit_clients_wait_and_the_log_says_so() {
    let master = Master::start(&["--max-connections", "3", "--header-timeout-seconds", "30"]);
    let held: Vec<TcpStream> = (0..3).map(|_| master.connect()).collect();
    // A fourth client is not served while the three are open...
    assert_eq!(master.health(Duration::from_millis(500)), None);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !master.log().contains("connection limit reached") {
        assert!(Instant::now() < deadline, "no log line: {}", master.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // ...and is once one closes.
    drop(held);
    let answer = master.health(Duration::from_secs(10));
    assert!(
        answer.as_deref().is_some_and(|l| l.contains("200")),
        "{answer:?}"
    );
}

/// Reads one response's head (status line and headers, lowercased).
fn response_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            other => panic!("the response ended early ({other:?}): {head:?}"),
        }
    }
    String::from_utf8_lossy(&head).to_lowercase()
}

#[test]
fn an_answer_given_before_the_body_was_read_closes_the_connection() {
    let master = Master::start(&[]);
    // The body is announced and not sent: the master answers from the method and path
    // alone (405, 404, 401). The client must learn from the answer that this connection
    // ends: its next request on it would otherwise meet a closed socket.
    for request in [
        "PATCH /v1/projects HTTP/1.1\r\nHost: m\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n",
        "POST /v1/no-such-thing HTTP/1.1\r\nHost: m\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n",
        "POST /v1/projects HTTP/1.1\r\nHost: m\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n",
    ] {
        let mut stream = master.connect();
        stream.write_all(request.as_bytes()).expect("write");
        let head = response_head(&mut stream);
        assert!(head.starts_with("http/1.1 4"), "{request}: {head}");
        assert!(
            head.contains("\r\nconnection: close\r\n"),
            "{request}: {head}"
        );
        closed_after(stream);
    }
    // A request without a body keeps its connection: the next one is answered on it.
    let mut stream = master.connect();
    for _ in 0..2 {
        stream
            .write_all(b"GET /v1/no-such-thing HTTP/1.1\r\nHost: m\r\n\r\n")
            .expect("write");
        let head = response_head(&mut stream);
        assert!(head.starts_with("http/1.1 404"), "{head}");
        assert!(!head.contains("connection: close"), "{head}");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|n| n.trim().parse().ok())
            .expect("a content length");
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).expect("body");
    }
}
