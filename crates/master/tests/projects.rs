//! Projects through the API: roles decide who requests, reads and manages; a quota holds
//! under concurrent requests and destroying an instance gives its share back.

use grove_api as api;
use grove_client::{Client, ClientError, Identity};

struct Cloud {
    runtime: tokio::runtime::Runtime,
    master: Option<grove_master::RunningMaster>,
    url: String,
    admin: Client,
    node: Client,
    _dir: tempfile::TempDir,
}

impl Cloud {
    /// A master (on SQLite, or on a fresh PostgreSQL database) and one computer of
    /// `partitions` partitions supplied with `sr.cfg`.
    fn new(partitions: usize, postgres: bool) -> Cloud {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = grove_master::MasterConfig::new(
            "127.0.0.1:0".parse().expect("addr"),
            dir.path().join("m"),
        );
        if postgres {
            config.store = Some(
                runtime
                    .block_on(grove_store::scratch::database())
                    .unwrap_or_else(|e| panic!("this test needs PostgreSQL: {e}")),
            );
        }
        let master = runtime
            .block_on(grove_master::start(&config))
            .expect("master");
        let url = master.url();
        let token = std::fs::read_to_string(&master.admin_token_path).expect("token");
        let admin = Client::new(&url, &Identity::token(token.trim())).expect("client");
        let node = admin
            .register_computer(&api::NewComputer {
                reference: "C1".to_owned(),
                labels: Default::default(),
            })
            .expect("computer");
        let declared: Vec<api::PartitionDeclaration> = (0..partitions)
            .map(|i| api::PartitionDeclaration {
                reference: format!("slappart{i}"),
                addresses: vec![],
            })
            .collect();
        let node = Client::new(&url, &Identity::token(&node.token)).expect("client");
        node.declare_partitions("C1", &declared)
            .expect("partitions");
        admin
            .supply(
                "C1",
                &api::Supply {
                    software_release: "sr.cfg".to_owned(),
                    state: api::SupplyState::Available,
                },
            )
            .expect("supply");
        Cloud {
            runtime,
            master: Some(master),
            url,
            admin,
            node,
            _dir: dir,
        }
    }

    fn user(&self, name: &str) -> Client {
        let credentials = self.admin.create_user(name).expect("user");
        Client::new(&self.url, &Identity::token(&credentials.token)).expect("client")
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        if let Some(master) = self.master.take() {
            self.runtime.block_on(master.stop());
        }
    }
}

fn in_project(title: &str, project: &str) -> api::InstanceRequest {
    api::InstanceRequest {
        project: Some(project.to_owned()),
        ..api::InstanceRequest::new(title, "sr.cfg")
    }
}

fn status<T: std::fmt::Debug>(answer: Result<T, ClientError>) -> (u16, String) {
    match answer {
        Ok(_) => (200, String::new()),
        Err(ClientError::Refused { status, code, .. }) => (status, code),
        Err(e) => panic!("no answer: {e}"),
    }
}

#[test]
fn roles_decide_who_requests_reads_and_manages_a_project() {
    let cloud = Cloud::new(10, false);
    let admin = &cloud.admin;
    admin.create_project("shop").expect("project");
    let (alice, bob, carol, dave) = (
        cloud.user("alice"),
        cloud.user("bob"),
        cloud.user("carol"),
        cloud.user("dave"),
    );
    admin
        .set_project_member("shop", "alice", Some(api::Role::ProjectAdmin))
        .expect("alice");
    // A project-admin manages the members; a member does not.
    alice
        .set_project_member("shop", "bob", Some(api::Role::Member))
        .expect("bob, by the project-admin");
    assert_eq!(
        status(bob.set_project_member("shop", "carol", Some(api::Role::Reader))),
        (403, "forbidden".to_owned())
    );
    alice
        .set_project_member("shop", "carol", Some(api::Role::Reader))
        .expect("carol");
    // Who may request in the project: a member, not a reader, not a stranger (to whom
    // the project does not exist).
    let web = bob
        .request_instance(&in_project("web", "shop"))
        .expect("a member requests");
    assert_eq!(web.project.as_deref(), Some("shop"));
    assert_eq!(
        status(carol.request_instance(&in_project("db", "shop"))),
        (403, "forbidden".to_owned())
    );
    assert_eq!(
        status(dave.request_instance(&in_project("db", "shop"))),
        (404, "not_found".to_owned())
    );
    // The title is the project's: the project-admin changes bob's instance by asking for
    // it again.
    let mut again = in_project("web", "shop");
    again.parameters.insert("colour".to_owned(), "blue".into());
    let changed = alice.request_instance(&again).expect("changed");
    assert_eq!(changed.id, web.id);
    // Members read the project's instances; others do not see them.
    for reader in [&alice, &bob, &carol] {
        let titles: Vec<String> = reader
            .list_instances()
            .expect("list")
            .into_iter()
            .map(|i| i.title)
            .collect();
        assert_eq!(titles, ["web"]);
        assert_eq!(reader.show_instance(web.id).expect("show").id, web.id);
    }
    assert_eq!(dave.list_instances().expect("list"), vec![]);
    assert_eq!(status(dave.show_instance(web.id)).0, 403);
    assert_eq!(status(dave.show_project("shop")).0, 404);
    // Quotas and deletion are the cloud admin's.
    assert_eq!(
        status(alice.set_project_quota("shop", &api::Quota::default())).0,
        403
    );
    assert_eq!(status(alice.delete_project("shop")).0, 403);
    // A project with instances is not deleted; removing a member ends their access.
    assert_eq!(
        status(admin.delete_project("shop")),
        (409, "conflict".to_owned())
    );
    alice
        .set_project_member("shop", "carol", None)
        .expect("removed");
    assert_eq!(carol.list_instances().expect("list"), vec![]);
    let names: Vec<String> = bob
        .list_projects()
        .expect("projects")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["shop"]);
    assert_eq!(carol.list_projects().expect("projects"), vec![]);
}

#[test]
fn a_quota_holds_under_concurrent_requests_on_sqlite() {
    a_quota_holds_under_concurrent_requests_and_destroying_gives_back(false);
}

#[test]
fn a_quota_holds_under_concurrent_requests_on_postgres() {
    a_quota_holds_under_concurrent_requests_and_destroying_gives_back(true);
}

fn a_quota_holds_under_concurrent_requests_and_destroying_gives_back(postgres: bool) {
    let cloud = Cloud::new(30, postgres);
    let admin = &cloud.admin;
    admin.create_project("lab").expect("project");
    let bob = cloud.user("bob");
    admin
        .set_project_member("lab", "bob", Some(api::Role::Member))
        .expect("bob");
    let shown = admin
        .set_project_quota(
            "lab",
            &api::Quota {
                partitions: Some(5),
                ..api::Quota::default()
            },
        )
        .expect("quota");
    assert_eq!(shown.quota.partitions, Some(5));
    // 20 requests at once against 5 partitions: exactly 5 placed.
    let outcomes: Vec<(u16, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let bob = bob.clone();
                scope.spawn(move || {
                    status(bob.request_instance(&in_project(&format!("i{i}"), "lab")))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let placed = outcomes.iter().filter(|(s, _)| *s == 200).count();
    let refused = outcomes
        .iter()
        .filter(|(s, code)| *s == 403 && code == "quota_exceeded")
        .count();
    assert_eq!((placed, refused), (5, 15), "{outcomes:?}");
    let lab = admin.show_project("lab").expect("lab");
    assert_eq!(lab.usage.partitions, 5);
    // The refusal says which quota, what is held and the limit.
    let over = bob
        .request_instance(&in_project("more", "lab"))
        .expect_err("over");
    assert!(
        over.to_string()
            .contains("project \"lab\" holds 5 partitions of 5"),
        "{over}"
    );
    // Destroying one gives its share back at once.
    let held: Vec<api::Instance> = bob.list_instances().expect("list");
    let mut destroy = in_project(&held[0].title, "lab");
    destroy.state = api::RequestedState::Destroyed;
    bob.request_instance(&destroy).expect("destroyed");
    bob.request_instance(&in_project("more", "lab"))
        .expect("room again");
    assert_eq!(
        status(bob.request_instance(&in_project("yet-more", "lab"))).1,
        "quota_exceeded"
    );
    // A user's own instances, outside projects, are not the project's to count.
    bob.request_instance(&api::InstanceRequest::new("mine", "sr.cfg"))
        .expect("outside the project");
}

/// A project's invoice for a month, from its instances' usage reports (sent late, twice
/// and out of order): exact to the cent, and nothing of another month.
#[test]
fn an_invoice_of_a_month_from_usage_reports() {
    let cloud = Cloud::new(3, false);
    let admin = &cloud.admin;
    admin.create_project("lab").expect("project");
    let pat = cloud.user("pat");
    admin
        .set_project_member("lab", "pat", Some(api::Role::ProjectAdmin))
        .expect("pat");
    admin
        .set_prices(&api::Prices {
            currency: "EUR".to_owned(),
            partition_hour: "0.015".to_owned(),
            cpu_hour: "0.04".to_owned(),
            memory_gib_hour: "0.005".to_owned(),
        })
        .expect("prices");
    let a = pat.request_instance(&in_project("a", "lab")).expect("a");
    let b = pat.request_instance(&in_project("b", "lab")).expect("b");
    let partition = |i: &api::Instance| i.partition.clone().expect("placed");
    // 2026-11-10 00:00 UTC, then every ten minutes: a for three hours, b for an hour and a
    // half; each uses a tenth of a CPU and 1 GiB.
    let start = 1_794_268_800;
    let mut reports = Vec::new();
    for k in 0..=18_i64 {
        let sample = |reference: String| api::PartitionUsage {
            reference,
            cpu_seconds: 60.0 * f64::from(u32::try_from(k).expect("small")),
            memory_bytes: 1 << 30,
            restarts: 0,
        };
        let mut partitions = vec![sample(partition(&a))];
        if k <= 9 {
            partitions.push(sample(partition(&b)));
        }
        reports.push(api::UsageReport {
            partitions,
            at: Some(start + k * 600),
        });
    }
    // October's last minutes: another month, and too far from November's first sample to
    // count anything.
    reports.push(api::UsageReport {
        partitions: vec![api::PartitionUsage {
            reference: partition(&a),
            cpu_seconds: 0.0,
            memory_bytes: 1 << 30,
            restarts: 0,
        }],
        at: Some(1_793_491_200 - 600),
    });
    reports.reverse();
    let again = reports[3].clone();
    reports.push(again);
    for report in &reports {
        cloud.node.report_usage("C1", report).expect("report");
    }
    let invoice = pat.project_invoice("lab", "2026-11").expect("invoice");
    let lines: Vec<(&str, &str, &str, &str)> = invoice
        .lines
        .iter()
        .map(|l| {
            (
                l.instance.as_str(),
                l.resource.as_str(),
                l.quantity.as_str(),
                l.amount.as_str(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("a", "partition-hours", "3", "0.05"),
            ("a", "cpu-hours", "0.3", "0.01"),
            ("a", "memory-gib-hours", "3", "0.02"),
            ("b", "partition-hours", "1.5", "0.02"),
            ("b", "cpu-hours", "0.15", "0.01"),
            ("b", "memory-gib-hours", "1.5", "0.01"),
        ]
    );
    assert_eq!(
        (invoice.total.as_str(), invoice.currency.as_str()),
        ("0.12", "EUR")
    );
    let october = pat.project_invoice("lab", "2026-10").expect("invoice");
    assert_eq!((october.lines.len(), october.total.as_str()), (0, "0.00"));
    // Month by month: October's lone sample counted nothing, November is the invoice's.
    let estimate = pat.project_estimate("lab").expect("estimate");
    let months: Vec<(&str, &str)> = estimate
        .months
        .iter()
        .map(|m| (m.month.as_str(), m.total.as_str()))
        .collect();
    assert_eq!(months, [("2026-11", "0.12")]);

    // A credit the use has spent: requests refused (402), destroying still allowed.
    let lab = admin
        .set_project_credit("lab", Some("0.12"))
        .expect("credit");
    assert_eq!(lab.balance.as_deref(), Some("0.00"));
    assert_eq!(
        status(pat.request_instance(&in_project("c", "lab"))),
        (402, "insufficient_credit".to_owned())
    );
    let mut destroy = in_project("b", "lab");
    destroy.state = api::RequestedState::Destroyed;
    pat.request_instance(&destroy)
        .expect("destroying is allowed");
    let lab = admin.set_project_credit("lab", Some("1")).expect("credit");
    assert_eq!(lab.balance.as_deref(), Some("0.88"));
    pat.request_instance(&in_project("c", "lab"))
        .expect("credit left");
}
