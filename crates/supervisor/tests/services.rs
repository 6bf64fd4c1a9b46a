//! The supervisor with real processes: restarts, stops, process groups and logs.

use std::path::Path;
use std::time::{Duration, Instant};

use grove_supervisor::{LogFile, Policy, Record, Records, ServiceSpec, State, Supervisor};

fn quick() -> Policy {
    Policy {
        first_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_millis(800),
        stable_after: Duration::from_secs(30),
        stop_timeout: Duration::from_millis(500),
        max_log_bytes: 1024 * 1024,
        log_check: Duration::from_millis(50),
    }
}

fn script(dir: &Path, name: &str, body: &str) -> ServiceSpec {
    let path = dir.join(format!("{name}.sh"));
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    let mut env = std::collections::BTreeMap::new();
    env.insert("PATH".into(), "/usr/bin:/bin".into());
    ServiceSpec {
        name: name.to_owned(),
        program: "/bin/sh".into(),
        args: vec![path.into()],
        cwd: dir.to_owned(),
        env,
        log: LogFile {
            root: dir.to_owned(),
            relative: format!("log/{name}.log").into(),
        },
        user: None,
        revision: String::new(),
        cgroups: Vec::new(),
    }
}

/// Alive and not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[tokio::test]
async fn a_crashing_service_is_restarted_with_growing_delays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let times = dir.path().join("times");
    let spec = script(
        dir.path(),
        "crash",
        &format!("date +%s%N >> {}\nexit 3", times.display()),
    );
    let mut supervisor = Supervisor::new(quick());
    supervisor.start(spec).expect("start");
    let starts = || {
        std::fs::read_to_string(&times)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    wait_for("four starts", || starts() >= 4).await;
    let stamps: Vec<u128> = std::fs::read_to_string(&times)
        .expect("times")
        .lines()
        .map(|l| l.trim().parse().expect("nanoseconds"))
        .collect();
    let gaps: Vec<u128> = stamps
        .windows(2)
        .map(|w| (w[1] - w[0]) / 1_000_000)
        .collect();
    // 200 ms, then 400 ms, then 800 ms (the cap), each plus the time to start.
    assert!(gaps[0] >= 190, "first delay {gaps:?}");
    assert!(
        gaps[1] >= 390 && gaps[1] > gaps[0],
        "the delay doubles: {gaps:?}"
    );
    assert!(
        gaps[2] >= 790 && gaps[2] > gaps[1],
        "and doubles again: {gaps:?}"
    );
    let status = supervisor.status().pop().expect("status");
    assert!(status.restarts >= 3, "{status:?}");
    assert!(
        status.last_exit.as_deref().is_some_and(|e| e.contains('3')),
        "{status:?}"
    );
    supervisor.stop_all().await;
}

#[tokio::test]
async fn a_service_ignoring_sigterm_is_killed_with_its_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let child_pid = dir.path().join("child.pid");
    let body = format!(
        "trap '' TERM\nsleep 1000 &\necho $! > {}\nwhile true; do sleep 0.1; done",
        child_pid.display()
    );
    let mut supervisor = Supervisor::new(quick());
    supervisor
        .start(script(dir.path(), "stubborn", &body))
        .expect("start");
    wait_for("the grandchild", || read_pid(&child_pid).is_some()).await;
    let pid = supervisor.status()[0].pid.expect("running");
    let grandchild = read_pid(&child_pid).expect("pid");
    assert!(alive(pid) && alive(grandchild));
    supervisor.stop("stubborn").await.expect("stop");
    wait_for("the service to die", || !alive(pid)).await;
    wait_for("the grandchild to die", || !alive(grandchild)).await;
    assert!(supervisor.status().is_empty());
}

#[tokio::test]
async fn grandchildren_die_when_their_service_exits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let child_pid = dir.path().join("child.pid");
    let body = format!(
        "sleep 1000 &\necho $! > {}\nsleep 0.3\nexit 1",
        child_pid.display()
    );
    let mut supervisor = Supervisor::new(Policy {
        first_backoff: Duration::from_secs(30),
        ..quick()
    });
    supervisor
        .start(script(dir.path(), "leaky", &body))
        .expect("start");
    wait_for("the grandchild", || read_pid(&child_pid).is_some()).await;
    let grandchild = read_pid(&child_pid).expect("pid");
    wait_for("the exit", || {
        supervisor.status()[0].state == State::Backoff
    })
    .await;
    wait_for("the grandchild to die", || !alive(grandchild)).await;
    supervisor.stop_all().await;
}

#[tokio::test]
async fn output_goes_to_a_log_rotated_by_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = "echo to-stdout\necho to-stderr >&2\nsleep 1000";
    let mut supervisor = Supervisor::new(quick());
    let spec = script(dir.path(), "talker", body);
    let log = spec.log.path();
    supervisor.start(spec).expect("start");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    wait_for("both lines", || {
        read(&log).contains("to-stdout") && read(&log).contains("to-stderr")
    })
    .await;

    // Two bursts, far enough apart to be read apart: the second one does not fit. Then a
    // line now and then: what is written while a rotation copies is lost (by design), so
    // the test waits for output that keeps coming.
    let flood = "i=0\nwhile [ $i -lt 50 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); \
                 if [ $i -eq 25 ]; then sleep 0.3; fi; done\nwhile true; do echo tail; sleep 0.1; done";
    let mut small = Supervisor::new(Policy {
        max_log_bytes: 500,
        ..quick()
    });
    let spec = script(dir.path(), "flood", flood);
    let log = spec.log.path();
    let rotated = dir.path().join("log").join("flood.log.1");
    small.start(spec).expect("start");
    wait_for("output after a rotation", || {
        rotated.exists() && read(&log).contains("tail")
    })
    .await;
    assert!(rotated.exists(), "rotated");
    // The log is checked every 50 ms: once past the limit it is copied aside and emptied,
    // so what is on disk is the newest output, the older one was moved aside.
    let current = read(&log);
    assert!(
        !current.contains("line-0-"),
        "the oldest lines left the current log:\n{current}\n---\n{}",
        read(&rotated)
    );
    supervisor.stop_all().await;
    small.stop_all().await;
}

#[tokio::test]
async fn a_missing_program_is_reported_and_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = script(dir.path(), "ghost", "true");
    spec.program = dir.path().join("no-such-program");
    let mut supervisor = Supervisor::new(quick());
    supervisor.start(spec).expect("start");
    wait_for("a failed start", || {
        supervisor.status()[0].state == State::Failed
    })
    .await;
    let status = supervisor.status().pop().expect("status");
    assert!(
        status
            .last_exit
            .as_deref()
            .is_some_and(|e| e.contains("no-such-program")),
        "{status:?}"
    );
    wait_for("a retry", || supervisor.status()[0].restarts >= 1).await;
    supervisor.stop_all().await;
    assert!(
        supervisor
            .start(script(dir.path(), "twice", "sleep 10"))
            .is_ok()
    );
    assert!(
        supervisor
            .start(script(dir.path(), "twice", "sleep 10"))
            .is_err(),
        "names are unique"
    );
    supervisor.stop_all().await;
}

/// A supervisor that goes away leaves its services running with their records; the next
/// one adopts them (same process), restarts them when they exit, and stops them.
#[tokio::test]
async fn services_outlive_their_supervisor_and_are_adopted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let records = Records::new(&dir.path().join("records"));
    let spec = script(dir.path(), "keep", "echo $$ >> pids; exec sleep 60");
    let pids = dir.path().join("pids");
    let mut first = Supervisor::new(quick()).with_records(records.clone());
    first.start(spec.clone()).expect("starts");
    wait_for("the first pid", || read_pid(&pids).is_some()).await;
    let pid = read_pid(&pids).expect("pid");
    first.detach_all().await;
    drop(first);
    assert!(alive(pid), "the service outlived its supervisor");

    let found = records.all();
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].pid, &found[0].spec), (pid, &spec));
    assert!(found[0].is_alive());
    let mut second = Supervisor::new(quick()).with_records(records.clone());
    second.adopt(&found[0]).expect("adopts");
    let status = second.status_of("keep").expect("status");
    assert_eq!((status.state, status.pid), (State::Running, Some(pid)));

    // It exits: the adopting supervisor starts it again.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    wait_for("a restart", || {
        second
            .status_of("keep")
            .is_some_and(|s| s.state == State::Running && s.pid != Some(pid))
    })
    .await;
    let restarted = second.status_of("keep").and_then(|s| s.pid).expect("pid");
    assert_eq!(
        records.all()[0].pid,
        restarted,
        "the record follows the restart"
    );

    second.stop_all().await;
    wait_for("the service to stop", || !alive(restarted)).await;
    assert!(
        records.all().is_empty(),
        "a stopped service leaves no record"
    );
}

/// A record whose pid now belongs to another process is not adopted.
#[tokio::test]
async fn a_record_of_a_reused_pid_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut other = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("sleep");
    let record = Record {
        spec: script(dir.path(), "gone", "exit 0"),
        pid: other.id(),
        start_time: grove_supervisor::start_time(other.id()).expect("start time") + 1,
    };
    assert!(!record.is_alive());
    let mut supervisor = Supervisor::new(quick());
    let error = supervisor.adopt(&record).expect_err("refused");
    assert!(error.to_string().contains("another process"), "{error}");
    assert!(alive(other.id()), "the other process is left alone");
    other.kill().expect("kill");
    other.wait().expect("wait");
}
