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
                    project: None,
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
            disk_gib_month: None,
            size_hour: Default::default(),
            release_partition_hour: Default::default(),
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
            memory_peak_bytes: 0,
            disk_bytes: 0,
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
            memory_peak_bytes: 0,
            disk_bytes: 0,
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

#[test]
fn sizes_are_placed_by_capacity_counted_by_quota_and_given_back_on_sqlite() {
    sizes_are_placed_by_capacity_counted_by_quota_and_given_back(false);
}

#[test]
fn sizes_are_placed_by_capacity_counted_by_quota_and_given_back_on_postgres() {
    sizes_are_placed_by_capacity_counted_by_quota_and_given_back(true);
}

fn sized(title: &str, size: &str, project: Option<&str>) -> api::InstanceRequest {
    let mut request = api::InstanceRequest::new(title, "sr.cfg");
    request.sla.insert("size".to_owned(), size.to_owned());
    request.project = project.map(str::to_owned);
    request
}

fn sizes_are_placed_by_capacity_counted_by_quota_and_given_back(postgres: bool) {
    let cloud = Cloud::new(10, postgres);
    let admin = &cloud.admin;
    for (name, millicores, memory, disk) in [
        ("small", 500, 512 << 20, 1 << 30),
        ("large", 4000, 8 << 30, 10 << 30),
    ] {
        admin
            .create_size(&api::Size {
                name: name.to_owned(),
                millicores,
                memory,
                disk,
            })
            .expect("size");
    }
    admin.create_project("lab").expect("project");
    let bob = cloud.user("bob");
    admin
        .set_project_member("lab", "bob", Some(api::Role::Member))
        .expect("bob");
    // A computer whose node reported no capacity takes no sized instance.
    let (code, message) = match bob.request_instance(&sized("s1", "small", Some("lab"))) {
        Err(ClientError::Refused {
            status, message, ..
        }) => (status, message),
        other => panic!("placed without capacity: {other:?}"),
    };
    assert_eq!(code, 503);
    assert!(message.contains("has room for size small"), "{message}");
    cloud
        .node
        .report_capacity(
            "C1",
            &api::Capacity {
                millicores: 2000,
                memory: 4 << 30,
                disk: 20 << 30,
                enforced: true,
            },
        )
        .expect("capacity");
    admin
        .set_project_quota(
            "lab",
            &api::Quota {
                millicores: Some(1500),
                ..api::Quota::default()
            },
        )
        .expect("quota");
    let mut ids = Vec::new();
    for title in ["s1", "s2", "s3"] {
        let placed = bob
            .request_instance(&sized(title, "small", Some("lab")))
            .expect("placed");
        assert_eq!(placed.project.as_deref(), Some("lab"));
        assert_eq!(placed.sla.get("size").map(String::as_str), Some("small"));
        ids.push(placed.id);
    }
    let over = bob
        .request_instance(&sized("s4", "small", Some("lab")))
        .expect_err("over the cores");
    assert_eq!(status(Err::<(), _>(over.clone())).1, "quota_exceeded");
    assert!(
        over.to_string()
            .contains("holds 1.5 cores of 1.5, and this instance needs 0.5 more"),
        "{over}"
    );
    let lab = admin.show_project("lab").expect("lab");
    assert_eq!(
        (lab.usage.millicores, lab.usage.memory, lab.usage.disk),
        (1500, 3 * (512 << 20), 3 << 30)
    );
    let c1 = admin.show_computer("C1").expect("C1");
    assert_eq!(
        c1.allocated,
        api::Resources {
            millicores: 1500,
            memory: 3 * (512 << 20),
            disk: 3 << 30
        }
    );
    // The node is told each partition's size.
    let desired = cloud
        .node
        .desired("C1", None, Default::default())
        .expect("desired");
    let given: Vec<Option<&str>> = desired
        .partitions
        .iter()
        .filter_map(|p| p.instance.as_ref())
        .map(|i| i.size.as_ref().map(|s| s.name.as_str()))
        .collect();
    assert_eq!(given, [Some("small"); 3]);
    // Outside the project no quota holds, but the computer's room does.
    match bob.request_instance(&sized("big", "large", None)) {
        Err(ClientError::Refused {
            status, message, ..
        }) => {
            assert_eq!(status, 503);
            assert!(message.contains("has room for size large"), "{message}");
        }
        other => panic!("placed past the capacity: {other:?}"),
    }
    // Bad asks: a size nobody defined, a size for a shared instance, a new size for a
    // placed instance.
    assert_eq!(
        status(bob.request_instance(&sized("odd", "huge", None))).0,
        400
    );
    let mut shared = sized("sh", "small", None);
    shared.shared = true;
    assert_eq!(status(bob.request_instance(&shared)).0, 400);
    assert_eq!(
        status(bob.request_instance(&sized("s1", "large", Some("lab")))).0,
        409
    );
    // Destroying gives the quota back at once; the computer's room comes back when the
    // node reports the partition destroyed.
    // Destroying needs not name the size again.
    let mut destroy = in_project("s1", "lab");
    destroy.state = api::RequestedState::Destroyed;
    bob.request_instance(&destroy).expect("destroyed");
    assert_eq!(
        admin.show_project("lab").expect("lab").usage.millicores,
        1000
    );
    assert_eq!(
        admin.show_computer("C1").expect("C1").allocated.millicores,
        1500
    );
    cloud
        .node
        .report_state(
            ids[0],
            &api::StateReport {
                state: api::ReportedState::Destroyed,
                error: None,
                timestamp: None,
            },
        )
        .expect("reported");
    assert_eq!(
        admin.show_computer("C1").expect("C1").allocated.millicores,
        1000
    );
    bob.request_instance(&sized("s4", "small", Some("lab")))
        .expect("room again");
    // A computer dedicated to another project takes none of lab's; dedicated to lab, it
    // takes lab's only.
    admin.create_project("other").expect("project");
    admin
        .dedicate_computer("C1", Some("other"))
        .expect("dedicated");
    let plain = |title: &str, project: Option<&str>| api::InstanceRequest {
        project: project.map(str::to_owned),
        ..api::InstanceRequest::new(title, "sr.cfg")
    };
    assert_eq!(
        status(bob.request_instance(&plain("u1", Some("lab")))).0,
        503
    );
    admin
        .dedicate_computer("C1", Some("lab"))
        .expect("dedicated");
    bob.request_instance(&plain("u1", Some("lab")))
        .expect("lab's computer");
    // A project-admin supplies the computers dedicated to the project; a member does not,
    // and nobody supplies as the project a computer that is not its.
    let carol = cloud.user("carol");
    admin
        .set_project_member("lab", "carol", Some(api::Role::ProjectAdmin))
        .expect("carol");
    let supply = |project: Option<&str>| api::Supply {
        software_release: "lab.cfg".to_owned(),
        state: api::SupplyState::Available,
        project: project.map(str::to_owned),
    };
    carol
        .supply("C1", &supply(Some("lab")))
        .expect("lab's computer");
    assert_eq!(status(bob.supply("C1", &supply(Some("lab")))).0, 403);
    // Without the project, C1 is somebody else's.
    assert_eq!(status(carol.supply("C1", &supply(None))).0, 403);
    let shown = admin.show_computer("C1").expect("C1");
    assert!(
        shown
            .software
            .iter()
            .any(|s| s.software_release == "lab.cfg"),
        "{shown:?}"
    );
    assert_eq!(status(bob.request_instance(&plain("mine", None))).0, 503);
    // A project a computer is dedicated to is not deleted.
    let mut destroy_u1 = plain("u1", Some("lab"));
    destroy_u1.state = api::RequestedState::Destroyed;
    bob.request_instance(&destroy_u1).expect("destroyed");
    for title in ["s2", "s3", "s4"] {
        let mut destroy = plain(title, Some("lab"));
        destroy.state = api::RequestedState::Destroyed;
        bob.request_instance(&destroy).expect("destroyed");
    }
    let refused = admin.delete_project("lab").expect_err("dedicated");
    assert_eq!(status(Err::<(), _>(refused.clone())).0, 409, "{refused}");
    assert!(refused.to_string().contains("dedicated"), "{refused}");
    admin.dedicate_computer("C1", None).expect("shared again");
    assert_eq!(status(carol.supply("C1", &supply(Some("lab")))).0, 404);
    bob.request_instance(&plain("mine", None))
        .expect("shared again");
}
