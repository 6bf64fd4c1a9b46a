//! Load on a real master over loopback HTTP (keep-alive `grove-client` clients on their own threads; the
//! master on a one-worker runtime, so on one core). Results go to BENCHMARKS.md.
//!
//! `cargo bench -p grove-master --bench api` (set `GROVE_BENCH_SECONDS`, default 5,
//! `GROVE_BENCH_COMPUTERS`, default 10000, `GROVE_BENCH_STORE=postgres` for a fresh
//! database on the server `GROVE_TEST_POSTGRES` names, default SQLite, and
//! `GROVE_BENCH_PLACEMENT`, default simple; `GROVE_BENCH_TLS=1` for HTTPS with the
//! master's own CA, tokens over TLS).

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::time::{Duration, Instant};

use grove_api as api;
use grove_client::{Client, Identity};
use serde_json::{Value, json};

const SR: &str = "https://example.test/bench/software.cfg";

/// The master's CA certificate when it serves HTTPS (`GROVE_BENCH_TLS=1`).
static CA: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The typed client with this token, trusting the master's CA when it has one.
fn client(base: &str, token: &str) -> Client {
    Client::new(
        base,
        &Identity {
            token: Some(token.to_owned()),
            ca_pem: CA.get().cloned(),
            certificate: None,
        },
    )
    .expect("client")
}

fn partitions(prefix: &str, count: usize) -> Vec<api::PartitionDeclaration> {
    (0..count)
        .map(|i| api::PartitionDeclaration {
            reference: format!("{prefix}{i}"),
            addresses: vec![],
        })
        .collect()
}

fn supply(release: &str) -> api::Supply {
    api::Supply {
        software_release: release.to_owned(),
        state: api::SupplyState::Available,
        project: None,
    }
}

fn instance(title: String, release: &str, parameters: &Value) -> api::InstanceRequest {
    api::InstanceRequest {
        parameters: parameters.as_object().cloned().unwrap_or_default(),
        ..api::InstanceRequest::new(title, release)
    }
}

fn computer(reference: &str) -> api::NewComputer {
    api::NewComputer {
        reference: reference.to_owned(),
        labels: Default::default(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index"
    )]
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Runs `threads` clients doing `op` until `seconds` pass; returns the rate and latencies.
fn load(threads: usize, seconds: u64, op: impl Fn(usize, usize) + Sync) -> (f64, Vec<Duration>) {
    let stop = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut latencies: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let op = &op;
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    let mut i = 0;
                    while Instant::now() < stop {
                        let start = Instant::now();
                        op(t, i);
                        mine.push(start.elapsed());
                        i += 1;
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("client thread"))
            .collect()
    });
    latencies.sort_unstable();
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
    (rate, latencies)
}

fn report(what: &str, rate: f64, latencies: &[Duration]) {
    println!(
        "{what}: {rate:.0}/s, p50 {:.2?}, p99 {:.2?}",
        percentile(latencies, 0.5),
        percentile(latencies, 0.99)
    );
}

/// Runs wrk (one thread, 8 connections) against `url`; with `post_body_prefix`, each request
/// is a POST of an instance request with a fresh title. Prints requests/s and latencies.
fn wrk(what: &str, seconds: u64, token: &str, url: &str, post: Option<(&str, &str)>) {
    let mut command = std::process::Command::new("wrk");
    command.args(["-t1", "-c8", &format!("-d{seconds}s"), "--latency", "-H"]);
    command.arg(format!("Authorization: Bearer {token}"));
    let script;
    if let Some((prefix, software)) = post {
        script = tempfile::NamedTempFile::new().expect("script");
        let lua = format!(
            "local n = 0\n\
             wrk.method = \"POST\"\n\
             wrk.headers[\"Content-Type\"] = \"application/json\"\n\
             request = function()\n\
               n = n + 1\n\
               local body = '{{\"title\": \"{prefix}' .. n .. '\", \"software_release\": \"{software}\"}}'\n\
               return wrk.format(nil, nil, nil, body)\n\
             end\n\
             response = function(status, headers, body)\n\
               if status ~= 200 then print(\"status \" .. status .. \" \" .. body) end\n\
             end\n"
        );
        std::fs::write(script.path(), lua).expect("write script");
        command.arg("-s").arg(script.path());
    }
    command.arg(url);
    match command.output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let pick = |prefix: &str| {
                text.lines()
                    .find(|l| l.trim_start().starts_with(prefix))
                    .map(|l| l.trim().to_owned())
                    .unwrap_or_default()
            };
            let failures = text.lines().filter(|l| l.starts_with("status ")).count();
            println!(
                "{what} with wrk (1 thread, 8 connections): {} | {} | {} | non-200: {failures}",
                pick("Requests/sec:"),
                pick("50%"),
                pick("99%")
            );
        }
        _ => println!("({what}: wrk not found; install Debian's wrk for the lighter client)"),
    }
}

fn main() {
    let seconds: u64 = std::env::var("GROVE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let computers: usize = std::env::var("GROVE_BENCH_COMPUTERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut config = grove_master::MasterConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        dir.path().to_owned(),
    );
    if std::env::var("GROVE_BENCH_STORE").as_deref() == Ok("postgres") {
        let location = runtime
            .block_on(grove_store::scratch::database())
            .unwrap_or_else(|e| panic!("GROVE_BENCH_STORE=postgres: {e}"));
        config.store = Some(location);
    }
    if let Ok(policy) = std::env::var("GROVE_BENCH_PLACEMENT") {
        config.placement = policy.parse().expect("GROVE_BENCH_PLACEMENT");
    }
    let tls = std::env::var("GROVE_BENCH_TLS").as_deref() == Ok("1");
    if tls {
        config.transport = grove_master::Transport::Https(grove_master::TlsOptions::default());
    }
    println!(
        "(transport: {}, store: {}, placement: {})",
        if tls { "https" } else { "http" },
        config
            .store
            .as_ref()
            .map_or("sqlite".to_owned(), ToString::to_string),
        config.placement
    );
    let master = runtime
        .block_on(grove_master::start(&config))
        .expect("master");
    if let Some((path, _)) = &master.ca {
        CA.set(std::fs::read_to_string(path).expect("ca.pem"))
            .expect("set once");
    }
    let base = master.url();
    let admin = std::fs::read_to_string(&master.admin_token_path)
        .expect("token")
        .trim()
        .to_owned();
    let admin_client = client(&base, &admin);

    // A node with 10 partitions, all in use.
    let created = admin_client
        .register_computer(&computer("NODE-0"))
        .expect("register");
    let node_token = created.token;
    let node = client(&base, &node_token);
    node.declare_partitions("NODE-0", &partitions("slappart", 10))
        .expect("partitions");
    admin_client.supply("NODE-0", &supply(SR)).expect("supply");
    for i in 0..10 {
        admin_client
            .request_instance(&instance(format!("seed{i}"), SR, &json!({"i": i})))
            .expect("seed");
    }
    let clients: Vec<Client> = (0..8).map(|_| client(&base, &node_token)).collect();
    let url = format!("{base}/v1/computers/NODE-0/desired");
    let (rate, lat) = load(8, seconds, |t, _| {
        // The typed client parses the document, as the agent does.
        let desired = clients[t]
            .desired("NODE-0", None, Duration::ZERO)
            .expect("answer");
        assert_eq!(desired.partitions.len(), 10);
    });
    report(
        "desired-state reads, node of 10 partitions, 8 keep-alive clients, master on 1 core",
        rate,
        &lat,
    );
    // The same with wrk, a client light enough not to compete with the master for the CPU.
    wrk("desired-state reads", seconds, &node_token, &url, None);

    // Durable requests: each a new instance on a big node (allocation, insert, commit).
    let created = admin_client
        .register_computer(&computer("BIG"))
        .expect("register");
    let big = client(&base, &created.token);
    for chunk in 0..20 {
        big.declare_partitions("BIG", &partitions(&format!("p{chunk}-"), 5_000))
            .expect("partitions");
    }
    admin_client
        .supply("BIG", &supply("big.cfg"))
        .expect("supply");
    let users: Vec<Client> = (0..8).map(|_| client(&base, &admin)).collect();
    let (rate, lat) = load(8, seconds, |t, i| {
        let request = instance(format!("r{t}-{i}"), "big.cfg", &json!({"n": i}));
        users[t].request_instance(&request).expect("placed");
    });
    report("durable requests, 8 concurrent clients", rate, &lat);
    let instances = format!("{base}/v1/instances");
    wrk(
        "durable requests",
        seconds,
        &admin,
        &instances,
        Some(("wrk-r", "big.cfg")),
    );

    // Placements among many computers: register them, then request.
    let setup = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..8 {
            let (base, admin) = (&base, &admin);
            scope.spawn(move || {
                let user = client(base, admin);
                for c in (t..computers).step_by(8) {
                    let reference = format!("C{c}");
                    let created = user
                        .register_computer(&computer(&reference))
                        .expect("register");
                    let node = client(base, &created.token);
                    node.declare_partitions(&reference, &partitions("slappart", 10))
                        .expect("partitions");
                    node.report_capacity(
                        &reference,
                        &api::Capacity {
                            millicores: 16_000,
                            memory: 64 << 30,
                            disk: 1 << 40,
                            enforced: true,
                        },
                    )
                    .expect("capacity");
                    user.supply(&reference, &supply("fleet.cfg"))
                        .expect("supply");
                }
            });
        }
    });
    println!(
        "(registered {computers} computers of 10 partitions in {:.1?})",
        setup.elapsed()
    );
    if let Some(grove_store::Location::Postgres(url)) = &config.store {
        runtime.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
            sqlx::raw_sql(grove_store::scratch::ANALYZE_BULK_LOAD)
                .execute(&mut conn)
                .await
                .expect("analyze");
        });
        println!("(analyzed)");
    }
    // Placements of each kind: plain, in a project with quotas (far from reached) and of a
    // size, of a size alone, in a project alone. The first two alternate, twice: the
    // computers' index churns as they fill, so each is compared with its neighbours.
    admin_client
        .create_size(&api::Size {
            name: "small".to_owned(),
            millicores: 500,
            memory: 512 << 20,
            disk: 1 << 30,
        })
        .expect("size");
    admin_client.create_project("bench").expect("project");
    admin_client
        .set_project_quota(
            "bench",
            &api::Quota {
                instances: Some(10_000_000),
                partitions: Some(10_000_000),
                shared: Some(10_000_000),
                millicores: Some(1 << 50),
                memory: Some(1 << 50),
                disk: Some(1 << 50),
            },
        )
        .expect("quota");
    let kinds = [
        ("plain", None, None),
        (
            "in a project with quotas, sized",
            Some("bench"),
            Some("small"),
        ),
        ("plain", None, None),
        (
            "in a project with quotas, sized",
            Some("bench"),
            Some("small"),
        ),
        ("sized", None, Some("small")),
        ("in a project with quotas, not sized", Some("bench"), None),
    ];
    for (round, (what, project, size)) in kinds.into_iter().enumerate() {
        let (rate, lat) = load(8, seconds, |t, i| {
            let mut request = instance(format!("f{round}-{t}-{i}"), "fleet.cfg", &Value::Null);
            request.project = project.map(str::to_owned);
            if let Some(size) = size {
                request.sla.insert("size".to_owned(), size.to_owned());
            }
            users[t].request_instance(&request).expect("placed");
        });
        report(
            &format!("placements among {computers} computers of 10 partitions, {what}"),
            rate,
            &lat,
        );
    }
    wrk(
        "placements",
        seconds,
        &admin,
        &instances,
        Some(("wrk-f", "fleet.cfg")),
    );
    runtime.block_on(master.stop());
    if let Some(location) = &config.store {
        runtime
            .block_on(grove_store::scratch::drop_database(location))
            .expect("drop the bench's database");
    }
}
