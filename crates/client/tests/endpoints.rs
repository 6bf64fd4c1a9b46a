//! Every operation of the API through its client method, against a real master over
//! HTTPS: the table (`grove_api::endpoints`) is matched exhaustively, so an operation
//! added without a client method does not compile here.

use std::collections::BTreeSet;
use std::time::Duration;

use grove_api::endpoints::{OPERATIONS, Operation};
use grove_api::{self as api};
use grove_client::{Client, ClientError, Identity};
use grove_master::{MasterConfig, TlsOptions, Transport};

/// The order the walk calls them in: each needs what an earlier one made.
const ORDER: &[Operation] = &[
    Operation::Health,
    Operation::CaCertificate,
    Operation::CreateUser,
    Operation::IssueUserCertificate,
    Operation::RegisterComputer,
    Operation::DeclarePartitions,
    Operation::SetComputerLabels,
    Operation::ListComputers,
    Operation::ShowComputer,
    Operation::Supply,
    Operation::ReportSoftware,
    Operation::RequestInstance,
    Operation::DesiredState,
    Operation::ReportState,
    Operation::Publish,
    Operation::SetChildren,
    Operation::ListInstances,
    Operation::ShowInstance,
    Operation::ReportUsage,
    Operation::ReportCapacity,
    Operation::InstanceUsage,
    Operation::RunAction,
    Operation::ShowAction,
    Operation::FinishAction,
    Operation::ListActions,
    Operation::CreateJoinToken,
    Operation::Join,
    Operation::RenewCertificate,
    Operation::RevokeCertificate,
    Operation::IssuePartitionCertificate,
    Operation::CreateProject,
    Operation::SetProjectMember,
    Operation::DedicateComputer,
    Operation::SetProjectQuota,
    Operation::ShowProject,
    Operation::ListProjects,
    Operation::SetPrices,
    Operation::ShowPrices,
    Operation::ProjectInvoice,
    Operation::ProjectEstimate,
    Operation::SetProjectCredit,
    Operation::CreateSize,
    Operation::ListSizes,
    Operation::DeleteSize,
    Operation::SetAppType,
    Operation::ListAppTypes,
    Operation::DeployApp,
    Operation::ListApps,
    Operation::AppPartition,
    Operation::AppArchive,
    Operation::ReportApp,
    Operation::ShowApp,
    Operation::RunAppCommand,
    Operation::ReportAppEvents,
    Operation::BindApp,
    Operation::AddAppInstance,
    Operation::SetAppInstanceState,
    Operation::RemoveAppInstance,
    Operation::UndeployApp,
    Operation::DeleteApp,
    Operation::DeleteProject,
];

#[derive(Default)]
struct Walk {
    node: Option<Client>,
    instance: Option<api::PartitionInstance>,
    join_token: Option<String>,
    joined: Option<(Client, String)>,
    alice: Option<Client>,
    /// The application's archive, and its root's partition.
    archive: Vec<u8>,
    root: Option<Client>,
    action: Option<i64>,
}

/// An application of one root instance with one script instance; its target's handler.
fn application(handler: &str) -> Vec<u8> {
    let target = format!("id = p\nname = p\nhandler = {handler}\n");
    grove_roboconf::tree::Tree::of([
        (
            "descriptor/application.properties",
            "name = alpha\nversion = 1.0\ndsl-id = roboconf-1.0\ngraph-entry-point = g.graph\ninstance-entry-point = i.instances\n",
        ),
        (
            "graph/g.graph",
            "VM {\n installer: target;\n exports: ip;\n children: Web;\n}\nWeb {\n installer: script;\n exports: ip, port = 80;\n}\n",
        ),
        ("graph/VM/target.properties", target.as_str()),
        ("graph/Web/scripts/start.sh", "#!/bin/sh\n"),
        (
            "instances/i.instances",
            "instance of VM {\n name: vm;\n instance of Web {\n  name: web;\n }\n}\n",
        ),
        ("commands/more.commands", "create Web as cmd under /vm\n"),
        ("commands/grow.commands", "create Web as grown under /vm\n"),
        (
            "rules.autonomic/grow.drl",
            "rule \"grow\"\n when busy\n then grow\nend\n",
        ),
    ])
    .to_zip()
    .expect("zip")
}

fn report(states: &[(&str, &str)]) -> api::apps::AppReport {
    api::apps::AppReport {
        address: Some("127.0.9.2".to_owned()),
        instances: states
            .iter()
            .map(|(path, state)| {
                (
                    (*path).to_owned(),
                    api::apps::AppObserved {
                        state: (*state).to_owned(),
                        error: None,
                    },
                )
            })
            .collect(),
    }
}

fn paths(view: &api::apps::AppView) -> Vec<(&str, &str, &str)> {
    view.instances
        .iter()
        .map(|i| (i.path.as_str(), i.state.as_str(), i.wanted.as_str()))
        .collect()
}

#[test]
fn every_operation_has_a_typed_method_that_works() {
    assert_eq!(
        ORDER.iter().map(|o| o.id()).collect::<BTreeSet<_>>().len(),
        ORDER.len(),
        "each operation once"
    );
    assert_eq!(
        ORDER.iter().map(|o| o.id()).collect::<BTreeSet<_>>(),
        OPERATIONS.iter().map(|o| o.id()).collect::<BTreeSet<_>>(),
        "the walk covers the table"
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = MasterConfig::new("127.0.0.1:0".parse().expect("addr"), dir.path().join("m"));
    config.transport = Transport::Https(TlsOptions {
        ca: None,
        names: vec![],
        mtls_listen: None,
    });
    let master = runtime
        .block_on(grove_master::start(&config))
        .expect("master");
    let url = master.url();
    let (ca_path, fingerprint) = master.ca.clone().expect("https");
    let ca_pem = std::fs::read_to_string(ca_path).expect("ca");
    let trust = |token: Option<&str>| Identity {
        token: token.map(str::to_owned),
        ca_pem: Some(ca_pem.clone()),
        certificate: None,
    };
    let admin_token = std::fs::read_to_string(&master.admin_token_path).expect("token");
    let admin = Client::new(&url, &trust(Some(admin_token.trim()))).expect("client");
    let sr = "https://sr/hello.cfg".to_owned();
    let mut walk = Walk::default();

    for &operation in ORDER {
        match operation {
            Operation::Health => {
                assert_eq!(admin.health().expect("health")["status"], "ok");
            }
            Operation::CaCertificate => {
                let shown = Client::unverified(&url).ca_certificate().expect("ca");
                assert_eq!(shown.fingerprint, fingerprint);
                assert_eq!(shown.certificate.trim(), ca_pem.trim());
            }
            Operation::CreateUser => {
                let alice = admin.create_user("alice").expect("user");
                assert_eq!(alice.name, "alice");
                let as_alice = Client::new(&url, &trust(Some(&alice.token))).expect("client");
                assert_eq!(as_alice.list_instances().expect("hers"), vec![]);
                walk.alice = Some(as_alice);
            }
            Operation::IssueUserCertificate => {
                let bundle = admin.issue_user_certificate("alice").expect("bundle");
                let by_certificate = Client::new(
                    &url,
                    &Identity {
                        token: None,
                        ca_pem: Some(bundle.ca.clone()),
                        certificate: Some((bundle.certificate, bundle.key)),
                    },
                )
                .expect("client");
                assert_eq!(by_certificate.list_computers().expect("hers"), vec![]);
            }
            Operation::RegisterComputer => {
                let credentials = admin
                    .register_computer(&api::NewComputer {
                        reference: "C1".to_owned(),
                        labels: Default::default(),
                    })
                    .expect("computer");
                walk.node =
                    Some(Client::new(&url, &trust(Some(&credentials.token))).expect("client"));
            }
            Operation::DeclarePartitions => {
                let node = walk.node.as_ref().expect("registered");
                node.declare_partitions(
                    "C1",
                    &[api::PartitionDeclaration {
                        reference: "slappart0".to_owned(),
                        addresses: vec!["127.0.9.1".to_owned()],
                    }],
                )
                .expect("declared");
            }
            Operation::SetComputerLabels => {
                let labels = api::Labels {
                    labels: [("zone".to_owned(), "eu-1".to_owned())].into(),
                };
                admin.set_computer_labels("C1", &labels).expect("labels");
            }
            Operation::ListComputers => {
                let all = admin.list_computers().expect("list");
                assert_eq!(all.len(), 1);
                assert_eq!(all[0].labels.get("zone").map(String::as_str), Some("eu-1"));
            }
            Operation::ShowComputer => {
                let one = admin.show_computer("C1").expect("show");
                assert_eq!(one.partitions.len(), 1);
                let missing = admin.show_computer("no such/computer").expect_err("none");
                assert_eq!(missing.status(), Some(404), "{missing}");
            }
            Operation::Supply => {
                admin
                    .supply(
                        "C1",
                        &api::Supply {
                            software_release: sr.clone(),
                            state: api::SupplyState::Available,
                            project: None,
                        },
                    )
                    .expect("supply");
            }
            Operation::ReportSoftware => {
                walk.node
                    .as_ref()
                    .expect("registered")
                    .report_software(
                        "C1",
                        &api::SoftwareReport {
                            software_release: sr.clone(),
                            state: api::SoftwareState::Available,
                            error: None,
                        },
                    )
                    .expect("report");
            }
            Operation::RequestInstance => {
                let web = admin
                    .request_instance(&api::InstanceRequest::new("web".to_owned(), sr.clone()))
                    .expect("request");
                assert_eq!(web.partition.as_deref(), Some("slappart0"));
            }
            Operation::DesiredState => {
                let node = walk.node.as_ref().expect("registered");
                let desired = node.desired("C1", None, Duration::ZERO).expect("desired");
                walk.instance = desired.partitions[0].instance.clone();
                assert!(walk.instance.is_some(), "the instance is on slappart0");
                // A long poll with nothing newer answers the same revision once the wait
                // is over.
                let again = node
                    .desired("C1", Some(desired.revision), Duration::from_secs(1))
                    .expect("long poll");
                assert_eq!(again.revision, desired.revision);
            }
            Operation::ReportState => {
                let instance = walk.instance.as_ref().expect("desired");
                walk.node
                    .as_ref()
                    .expect("registered")
                    .report_state(
                        instance.id,
                        &api::StateReport {
                            state: api::ReportedState::Started,
                            error: None,
                            timestamp: None,
                        },
                    )
                    .expect("state");
            }
            Operation::Publish => {
                let instance = walk.instance.as_ref().expect("desired");
                let partition = Client::new(&url, &trust(Some(&instance.token))).expect("client");
                partition
                    .publish(
                        instance.id,
                        &api::Publish {
                            parameters: [("url".to_owned(), "http://127.0.9.1/".into())]
                                .into_iter()
                                .collect(),
                            shared_instance: None,
                        },
                    )
                    .expect("publish");
            }
            Operation::SetChildren => {
                let instance = walk.instance.as_ref().expect("desired");
                let partition = Client::new(&url, &trust(Some(&instance.token))).expect("client");
                partition
                    .set_children(instance.id, &api::Children { titles: vec![] })
                    .expect("children");
            }
            Operation::ListInstances => {
                let all = admin.list_instances().expect("list");
                assert_eq!(all.len(), 1);
                assert_eq!(all[0].reported_state, Some(api::ReportedState::Started));
            }
            Operation::ShowInstance => {
                let id = walk.instance.as_ref().expect("desired").id;
                let web = admin.show_instance(id).expect("show");
                assert_eq!(web.connection["url"], "http://127.0.9.1/");
            }
            Operation::ReportUsage => {
                walk.node
                    .as_ref()
                    .expect("registered")
                    .report_usage(
                        "C1",
                        &api::UsageReport {
                            partitions: vec![api::PartitionUsage {
                                reference: "slappart0".to_owned(),
                                cpu_seconds: 1.5,
                                memory_bytes: 4096,
                                restarts: 0,
                                memory_peak_bytes: 0,
                                disk_bytes: 0,
                            }],
                            at: None,
                        },
                    )
                    .expect("usage");
            }
            Operation::ReportCapacity => {
                let capacity = api::Capacity {
                    millicores: 2000,
                    memory: 4 << 30,
                    disk: 20 << 30,
                    enforced: true,
                };
                walk.node
                    .as_ref()
                    .expect("registered")
                    .report_capacity("C1", &capacity)
                    .expect("capacity");
                let shown = admin.show_computer("C1").expect("shown");
                assert_eq!(shown.capacity, Some(capacity));
                let refused = admin
                    .report_capacity("C1", &capacity)
                    .expect_err("only its node");
                assert_eq!(refused.status(), Some(403), "{refused}");
            }
            Operation::InstanceUsage => {
                let id = walk.instance.as_ref().expect("desired").id;
                let samples = admin.instance_usage(id).expect("usage");
                assert_eq!(samples.len(), 1);
                assert_eq!(samples[0].memory_bytes, 4096);
            }
            Operation::CreateJoinToken => {
                let token = admin
                    .create_join_token(&api::NewJoinToken {
                        ttl_seconds: Some(60),
                        labels: Default::default(),
                    })
                    .expect("join token");
                assert_eq!(token.ca_fingerprint, fingerprint);
                walk.join_token = Some(token.token);
            }
            Operation::Join => {
                let (key, csr) =
                    grove_pki::request(&grove_pki::Identity::Computer("C2".to_owned()))
                        .expect("csr");
                let joined = Client::new(&url, &trust(None))
                    .expect("client")
                    .join(&api::JoinRequest {
                        token: walk.join_token.clone().expect("token"),
                        reference: "C2".to_owned(),
                        csr,
                    })
                    .expect("joined");
                let node = Client::new(
                    &url,
                    &Identity {
                        token: None,
                        ca_pem: Some(ca_pem.clone()),
                        certificate: Some((joined.certificate, key)),
                    },
                )
                .expect("client");
                node.desired("C2", None, Duration::ZERO)
                    .expect("its desired state");
                walk.joined = Some((node, "C2".to_owned()));
            }
            Operation::RenewCertificate => {
                let (node, reference) = walk.joined.as_ref().expect("joined");
                let (key, csr) =
                    grove_pki::request(&grove_pki::Identity::Computer(reference.clone()))
                        .expect("csr");
                let renewed = node.renew_certificate(reference, &csr).expect("renewed");
                node.set_identity(&Identity {
                    token: None,
                    ca_pem: Some(ca_pem.clone()),
                    certificate: Some((renewed.certificate, key)),
                })
                .expect("identity");
                node.desired(reference, None, Duration::ZERO)
                    .expect("the renewed certificate works");
            }
            Operation::RevokeCertificate => {
                let (node, reference) = walk.joined.as_ref().expect("joined");
                admin.revoke_certificate(reference).expect("revoked");
                let refused = node
                    .desired(reference, None, Duration::ZERO)
                    .expect_err("revoked");
                assert_eq!(refused.status(), Some(401), "{refused}");
            }
            Operation::IssuePartitionCertificate => {
                let instance = walk.instance.as_ref().expect("desired");
                let node = walk.node.as_ref().expect("registered");
                let issue = || {
                    let (key, csr) =
                        grove_pki::request(&grove_pki::Identity::Partition(instance.id))
                            .expect("csr");
                    let issued = node
                        .issue_partition_certificate(instance.id, &csr)
                        .expect("issued");
                    assert_eq!(issued.instance, instance.id);
                    Client::new(
                        &url,
                        &Identity {
                            token: None,
                            ca_pem: Some(ca_pem.clone()),
                            certificate: Some((issued.certificate, key)),
                        },
                    )
                    .expect("client")
                };
                let publish = |client: &Client, value: &str| {
                    client.publish(
                        instance.id,
                        &api::Publish {
                            parameters: [("url".to_owned(), value.into())].into_iter().collect(),
                            shared_instance: None,
                        },
                    )
                };
                let first = issue();
                publish(&first, "http://first/").expect("the partition acts by certificate");
                assert_eq!(
                    admin.show_instance(instance.id).expect("show").connection["url"],
                    "http://first/"
                );
                // Only the node the instance runs on asks for it.
                let (_, csr) =
                    grove_pki::request(&grove_pki::Identity::Partition(instance.id)).expect("csr");
                let refused = admin
                    .issue_partition_certificate(instance.id, &csr)
                    .expect_err("not its node");
                assert_eq!(refused.status(), Some(403), "{refused}");
                // A new certificate makes the one before refused.
                let second = issue();
                let old = publish(&first, "http://old/").expect_err("replaced");
                assert_eq!(old.status(), Some(401), "{old}");
                publish(&second, "http://second/").expect("the new one acts");
                // Destroyed: its certificate is refused at once, and none is issued.
                let destroy = api::InstanceRequest {
                    state: api::RequestedState::Destroyed,
                    ..api::InstanceRequest::new("web", sr.clone())
                };
                admin.request_instance(&destroy).expect("destroyed");
                let gone = publish(&second, "http://gone/").expect_err("destroyed");
                assert_eq!(gone.status(), Some(401), "{gone}");
                let (_, csr) =
                    grove_pki::request(&grove_pki::Identity::Partition(instance.id)).expect("csr");
                let none = node
                    .issue_partition_certificate(instance.id, &csr)
                    .expect_err("destroyed");
                assert_eq!(none.status(), Some(409), "{none}");
            }
            Operation::CreateProject => {
                let shop = admin.create_project("shop").expect("project");
                assert_eq!((shop.name.as_str(), shop.members.len()), ("shop", 0));
            }
            Operation::SetProjectMember => {
                let shop = admin
                    .set_project_member("shop", "alice", Some(api::Role::Member))
                    .expect("member");
                assert_eq!(
                    shop.members,
                    [api::Member {
                        user: "alice".to_owned(),
                        role: api::Role::Member
                    }]
                );
            }
            Operation::DedicateComputer => {
                admin
                    .dedicate_computer("C1", Some("shop"))
                    .expect("dedicated");
                let shown = admin.show_computer("C1").expect("shown");
                assert_eq!(shown.project.as_deref(), Some("shop"));
                admin.dedicate_computer("C1", None).expect("shared again");
                let shown = admin.show_computer("C1").expect("shown");
                assert_eq!(shown.project, None);
                let missing = admin
                    .dedicate_computer("C1", Some("nowhere"))
                    .expect_err("no such project");
                assert_eq!(missing.status(), Some(404), "{missing}");
            }
            Operation::SetProjectQuota => {
                let quota = api::Quota {
                    partitions: Some(1),
                    ..api::Quota::default()
                };
                let shop = admin.set_project_quota("shop", &quota).expect("quota");
                assert_eq!(shop.quota, quota);
            }
            Operation::ShowProject => {
                let alice = walk.alice.as_ref().expect("alice");
                let shop = alice.show_project("shop").expect("a member sees it");
                assert_eq!(shop.usage, api::QuotaUsage::default());
            }
            Operation::ListProjects => {
                let alice = walk.alice.as_ref().expect("alice");
                let names: Vec<String> = alice
                    .list_projects()
                    .expect("list")
                    .into_iter()
                    .map(|p| p.name)
                    .collect();
                assert_eq!(names, ["shop"]);
            }
            Operation::SetPrices => {
                let stored = admin
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
                assert_eq!(stored.partition_hour, "0.015");
            }
            Operation::ShowPrices => {
                let alice = walk.alice.as_ref().expect("alice");
                assert_eq!(alice.show_prices().expect("prices").cpu_hour, "0.04");
            }
            Operation::ProjectInvoice => {
                let invoice = admin.project_invoice("shop", "2026-11").expect("invoice");
                assert_eq!((invoice.total.as_str(), invoice.lines.len()), ("0.00", 0));
                let bad = admin
                    .project_invoice("shop", "November")
                    .expect_err("bad month");
                assert_eq!(bad.status(), Some(400), "{bad}");
            }
            Operation::ProjectEstimate => {
                let alice = walk.alice.as_ref().expect("alice");
                let estimate = alice.project_estimate("shop").expect("a member reads it");
                assert_eq!(
                    (estimate.currency.as_str(), estimate.months.len()),
                    ("EUR", 0)
                );
            }
            Operation::SetProjectCredit => {
                let shop = admin
                    .set_project_credit("shop", Some("12.50"))
                    .expect("credit");
                assert_eq!(
                    (shop.credit.as_deref(), shop.balance.as_deref()),
                    (Some("12.50"), Some("12.50"))
                );
                let bad = admin
                    .set_project_credit("shop", Some("-1"))
                    .expect_err("negative");
                assert_eq!(bad.status(), Some(400), "{bad}");
            }
            Operation::CreateSize => {
                let small = api::Size {
                    name: "small".to_owned(),
                    millicores: 500,
                    memory: 512 << 20,
                    disk: 1 << 30,
                };
                assert_eq!(admin.create_size(&small).expect("created"), small);
                let again = admin.create_size(&small).expect_err("exists");
                assert_eq!(again.status(), Some(409), "{again}");
                let alice = walk.alice.as_ref().expect("alice");
                let refused = alice.create_size(&small).expect_err("admin only");
                assert_eq!(refused.status(), Some(403), "{refused}");
            }
            Operation::ListSizes => {
                let alice = walk.alice.as_ref().expect("alice");
                let sizes = alice.list_sizes().expect("a user reads them");
                assert_eq!(
                    sizes.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
                    ["small"]
                );
            }
            Operation::DeleteSize => {
                admin.delete_size("small").expect("deleted");
                let gone = admin.delete_size("small").expect_err("gone");
                assert_eq!(gone.status(), Some(404), "{gone}");
            }
            Operation::SetAppType => {
                let java = admin
                    .set_app_type("java", Some("https://sr/java.cfg"))
                    .expect("registered");
                assert_eq!(java.release.as_deref(), Some("https://sr/java.cfg"));
                assert!(!java.builtin);
                let refused = admin
                    .set_app_type("a b", Some("https://sr/c.cfg"))
                    .expect_err("not a name");
                assert_eq!(refused.status(), Some(400), "{refused}");
                let unknown = admin.set_app_type("cobol", None).expect_err("no such type");
                assert_eq!(unknown.status(), Some(404), "{unknown}");
                let php = admin.set_app_type("php", None).expect("Grove's own");
                assert_eq!(php.release.as_deref(), Some(api::apps::CONPAAS_PHP_RELEASE));
                assert!(php.builtin);
            }
            Operation::ListAppTypes => {
                let types = admin.list_app_types().expect("types");
                let shown: Vec<(&str, Option<&str>)> = types
                    .iter()
                    .map(|t| (t.name.as_str(), t.release.as_deref()))
                    .collect();
                assert_eq!(
                    shown,
                    [
                        ("php", Some(api::apps::CONPAAS_PHP_RELEASE)),
                        ("java", Some("https://sr/java.cfg")),
                        ("mysql", Some(api::apps::CONPAAS_MYSQL_RELEASE)),
                        ("xtreemfs", None),
                        ("generic", Some(api::apps::CONPAAS_GENERIC_RELEASE)),
                    ]
                );
            }
            Operation::DeployApp => {
                let node = walk.node.as_ref().expect("registered");
                node.declare_partitions(
                    "C1",
                    &[
                        api::PartitionDeclaration {
                            reference: "slappart0".to_owned(),
                            addresses: vec!["127.0.9.1".to_owned()],
                        },
                        api::PartitionDeclaration {
                            reference: "slappart1".to_owned(),
                            addresses: vec!["127.0.9.2".to_owned()],
                        },
                    ],
                )
                .expect("declared");
                let refused = admin
                    .deploy_app(application("iaas-ec2"), None, None)
                    .expect_err("another handler");
                assert_eq!(refused.status(), Some(400), "{refused}");
                assert!(refused.to_string().contains("iaas-ec2"), "{refused}");
                let refused = admin
                    .deploy_app(b"not a zip".to_vec(), None, None)
                    .expect_err("not an archive");
                assert_eq!(refused.status(), Some(400), "{refused}");
                // A manifest is checked whole by the master too: every error, its line.
                let refused = admin
                    .deploy_manifest(
                        b"{\"Application\": \"m\",\n \"Services\": [{\"Type\": \"fake\"}, {}]}"
                            .to_vec(),
                        None,
                        None,
                    )
                    .expect_err("a bad manifest");
                assert_eq!(refused.status(), Some(400), "{refused}");
                let said = refused.to_string();
                assert!(
                    said.contains(
                        "line 2: error MANIFEST_UNKNOWN_SERVICE_TYPE at Services[0].Type"
                    ),
                    "{said}"
                );
                assert!(
                    said.contains("MANIFEST_SERVICE_MISSING_TYPE at Services[1]"),
                    "{said}"
                );
                assert!(admin.list_apps().expect("apps").is_empty());
                walk.archive = application("grove");
                let view = admin
                    .deploy_app(walk.archive.clone(), None, None)
                    .expect("deployed");
                assert_eq!(view.name, "alpha");
                assert_eq!(
                    paths(&view),
                    vec![
                        ("/vm", "not_deployed", "deployed_started"),
                        ("/vm/web", "not_deployed", "deployed_started")
                    ]
                );
                assert_eq!(view.roots.len(), 1);
                let again = admin
                    .deploy_app(walk.archive.clone(), None, None)
                    .expect_err("the name is taken");
                assert_eq!(again.status(), Some(409), "{again}");
            }
            Operation::ListApps => {
                let all = admin.list_apps().expect("listed");
                assert_eq!(all.len(), 1);
                assert_eq!((all[0].name.as_str(), all[0].instances), ("alpha", 2));
            }
            Operation::AppPartition => {
                let node = walk.node.as_ref().expect("registered");
                let desired = node.desired("C1", None, Duration::ZERO).expect("desired");
                let root = desired
                    .partitions
                    .iter()
                    .filter_map(|p| p.instance.as_ref())
                    .find(|i| i.title == "alpha/vm")
                    .expect("the root's partition");
                assert_eq!(root.software_release, api::apps::ROBOCONF_RELEASE);
                let client = Client::new(&url, &trust(Some(&root.token))).expect("client");
                let told = client.app_partition(None).expect("its subtree");
                assert_eq!(told.root, "/vm");
                let installers: Vec<(&str, &str)> = told
                    .instances
                    .iter()
                    .map(|i| (i.path.as_str(), i.installer.as_str()))
                    .collect();
                assert_eq!(installers, vec![("/vm", "target"), ("/vm/web", "script")]);
                walk.root = Some(client);
            }
            Operation::AppArchive => {
                let root = walk.root.as_ref().expect("the root");
                assert_eq!(root.app_archive().expect("archive"), walk.archive);
            }
            Operation::ReportApp => {
                let root = walk.root.as_ref().expect("the root");
                root.report_app(&report(&[
                    ("/vm", "deployed_started"),
                    ("/vm/web", "deployed_started"),
                ]))
                .expect("reported");
                let outside = root
                    .report_app(&report(&[("/other/web", "deployed_started")]))
                    .expect_err("not below its root");
                assert_eq!(outside.status(), Some(400), "{outside}");
            }
            Operation::ShowApp => {
                let view = admin.show_app("alpha").expect("shown");
                let web = &view.instances[1];
                assert_eq!(web.state, "deployed_started");
                assert_eq!(
                    web.exports.get("Web.ip").map(String::as_str),
                    Some("127.0.9.2")
                );
                let missing = admin.show_app("beta").expect_err("none");
                assert_eq!(missing.status(), Some(404), "{missing}");
            }
            Operation::RunAction => {
                let instance = walk.instance.as_ref().expect("desired");
                let request = |name: &str, wait| api::actions::ActionRequest {
                    name: name.to_owned(),
                    parameters: serde_json::json!({"x": 1})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                    wait,
                };
                // Nobody runs it: pending once the wait is over.
                let action = admin
                    .run_action(instance.id, &request("status", Some(1)))
                    .expect("action");
                assert_eq!(action.state, api::actions::ActionState::Pending);
                assert_eq!(action.name, "status");
                let listed = walk
                    .node
                    .as_ref()
                    .expect("registered")
                    .desired("C1", None, Duration::ZERO)
                    .expect("desired");
                let pending = &listed.partitions[0]
                    .instance
                    .as_ref()
                    .expect("instance")
                    .actions;
                assert_eq!(pending.len(), 1);
                assert_eq!(pending[0].id, action.id);
                assert_eq!(pending[0].parameters["x"], 1);
                for bad in ["../x", "", "a b"] {
                    let refused = admin
                        .run_action(instance.id, &request(bad, None))
                        .expect_err("a bad name");
                    assert_eq!(refused.status(), Some(400), "{refused}");
                }
                let too_long = admin
                    .run_action(instance.id, &request("status", Some(61)))
                    .expect_err("a wait too long");
                assert_eq!(too_long.status(), Some(400), "{too_long}");
                walk.action = Some(action.id);
            }
            Operation::ShowAction => {
                let id = walk.action.expect("asked");
                let shown = admin.show_action(id).expect("show");
                assert_eq!(shown.state, api::actions::ActionState::Pending);
                let missing = admin.show_action(id + 100).expect_err("no such action");
                assert_eq!(missing.status(), Some(404), "{missing}");
            }
            Operation::FinishAction => {
                let id = walk.action.expect("asked");
                let node = walk.node.as_ref().expect("registered");
                let ended = |result: Option<serde_json::Value>, error: Option<&str>| {
                    api::actions::ActionOutcome {
                        result,
                        error: error.map(str::to_owned),
                    }
                };
                let both = node
                    .finish_action(id, &ended(Some(serde_json::json!(1)), Some("no")))
                    .expect_err("a result and an error");
                assert_eq!(both.status(), Some(400), "{both}");
                node.finish_action(id, &ended(Some(serde_json::json!({"ok": true})), None))
                    .expect("finish");
                // Reported again (an answer lost): nothing changes.
                node.finish_action(id, &ended(None, Some("late")))
                    .expect("finish again");
                let shown = admin.show_action(id).expect("show");
                assert_eq!(shown.state, api::actions::ActionState::Succeeded);
                assert_eq!(shown.result, Some(serde_json::json!({"ok": true})));
                assert!(shown.finished_at.is_some());
                // A caller waiting for an action wakes when its node reports it.
                let instance = walk.instance.as_ref().expect("desired").id;
                let waiting = std::thread::scope(|scope| {
                    let waiter = scope.spawn(|| {
                        admin.run_action(
                            instance,
                            &api::actions::ActionRequest {
                                name: "slow".to_owned(),
                                parameters: Default::default(),
                                wait: Some(60),
                            },
                        )
                    });
                    let pending = loop {
                        let desired = node.desired("C1", None, Duration::ZERO).expect("desired");
                        let actions = desired.partitions[0]
                            .instance
                            .as_ref()
                            .map(|i| i.actions.clone())
                            .unwrap_or_default();
                        if let Some(action) = actions.into_iter().find(|a| a.name == "slow") {
                            break action;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    };
                    node.finish_action(pending.id, &ended(None, Some("it broke")))
                        .expect("finish");
                    waiter.join().expect("waiter")
                });
                let waited = waiting.expect("answered");
                assert_eq!(waited.state, api::actions::ActionState::Failed);
                assert_eq!(waited.error.as_deref(), Some("it broke"));
            }
            Operation::ListActions => {
                let instance = walk.instance.as_ref().expect("desired").id;
                let listed = admin.list_actions(instance).expect("list");
                let names: Vec<&str> = listed.iter().map(|a| a.name.as_str()).collect();
                assert_eq!(names, ["slow", "status"]);
            }
            Operation::RunAppCommand => {
                let view = admin.run_app_command("alpha", "more").expect("run");
                assert!(view.instances.iter().any(|i| i.path == "/vm/cmd"));
                let refused = admin
                    .run_app_command("alpha", "nothing")
                    .expect_err("no such file");
                assert_eq!(refused.status(), Some(400), "{refused}");
            }
            Operation::ReportAppEvents => {
                let root = walk.root.as_ref().expect("the root");
                let event = |name: &str| api::apps::AppEvents {
                    events: vec![api::apps::AppEvent {
                        instance: "/vm/web".to_owned(),
                        event: name.to_owned(),
                        cause: "a test".to_owned(),
                    }],
                };
                let quiet = root.report_app_events(&event("idle")).expect("sent");
                assert_eq!(quiet.commands, Vec::<String>::new());
                let reaction = root.report_app_events(&event("busy")).expect("sent");
                assert_eq!(reaction.commands, vec!["grow".to_owned()]);
                let view = admin.show_app("alpha").expect("shown");
                assert!(view.instances.iter().any(|i| i.path == "/vm/grown"));
                // What the commands made goes, so that the walk goes on as before.
                for path in ["/vm/cmd", "/vm/grown"] {
                    admin.remove_app_instance("alpha", path).expect("removed");
                }
            }
            Operation::BindApp => {
                // `alpha` imports nothing external and publishes nothing: refused, saying
                // which (the e2e tests bind two applications).
                let refused = admin
                    .bind_app("alpha", "Db", "alpha", false)
                    .expect_err("nothing published");
                assert_eq!(refused.status(), Some(400), "{refused}");
                assert!(refused.to_string().contains("prefix \"Db\""), "{refused}");
                let missing = admin
                    .bind_app("alpha", "Db", "beta", false)
                    .expect_err("no such application");
                assert_eq!(missing.status(), Some(404), "{missing}");
            }
            Operation::AddAppInstance => {
                let view = admin
                    .add_app_instance(
                        "alpha",
                        &api::apps::NewAppInstance {
                            parent: "/vm".to_owned(),
                            component: "Web".to_owned(),
                            name: "web2".to_owned(),
                            properties: [("port".to_owned(), "8080".to_owned())].into(),
                        },
                    )
                    .expect("added");
                let added = &view.instances[2];
                assert_eq!(added.path, "/vm/web2");
                assert_eq!(
                    added.exports.get("Web.port").map(String::as_str),
                    Some("8080")
                );
                let refused = admin
                    .add_app_instance(
                        "alpha",
                        &api::apps::NewAppInstance {
                            parent: "/vm/web".to_owned(),
                            component: "VM".to_owned(),
                            name: "x".to_owned(),
                            properties: Default::default(),
                        },
                    )
                    .expect_err("not a child of Web");
                assert_eq!(refused.status(), Some(400), "{refused}");
            }
            Operation::SetAppInstanceState => {
                let view = admin
                    .set_app_instance_state("alpha", "/vm/web2", "deployed_stopped")
                    .expect("set");
                assert_eq!(view.instances[2].wanted, "deployed_stopped");
                let refused = admin
                    .set_app_instance_state("alpha", "/vm/web2", "starting")
                    .expect_err("not a state one asks for");
                assert_eq!(refused.status(), Some(400), "{refused}");
                walk.root
                    .as_ref()
                    .expect("the root")
                    .report_app(&report(&[
                        ("/vm", "deployed_started"),
                        ("/vm/web", "deployed_started"),
                        ("/vm/web2", "deployed_stopped"),
                    ]))
                    .expect("reported");
            }
            Operation::RemoveAppInstance => {
                let view = admin
                    .remove_app_instance("alpha", "/vm/web2")
                    .expect("removed");
                assert_eq!(view.instances[2].wanted, "not_deployed");
                // Gone once its partition no longer holds it.
                let root = walk.root.as_ref().expect("the root");
                root.report_app(&report(&[
                    ("/vm", "deployed_started"),
                    ("/vm/web", "deployed_started"),
                ]))
                .expect("reported");
                let view = admin.show_app("alpha").expect("shown");
                assert_eq!(view.instances.len(), 2);
            }
            Operation::UndeployApp => {
                let view = admin.undeploy_app("alpha").expect("undeployed");
                assert_eq!(view.instances[1].wanted, "not_deployed");
            }
            Operation::DeleteApp => {
                let refused = admin.delete_app("alpha").expect_err("still deployed");
                assert_eq!(refused.status(), Some(409), "{refused}");
                let root = walk.root.as_ref().expect("the root");
                root.report_app(&report(&[
                    ("/vm", "deployed_started"),
                    ("/vm/web", "not_deployed"),
                ]))
                .expect("reported");
                admin.delete_app("alpha").expect("deleted");
                let gone = admin.show_app("alpha").expect_err("gone");
                assert_eq!(gone.status(), Some(404), "{gone}");
                let destroyed = admin.list_instances().expect("listed");
                assert!(
                    destroyed
                        .iter()
                        .filter(|i| i.title == "alpha/vm")
                        .all(|i| i.requested_state == api::RequestedState::Destroyed),
                    "{destroyed:?}"
                );
            }
            Operation::DeleteProject => {
                admin.delete_project("shop").expect("deleted");
                let gone = admin.show_project("shop").expect_err("gone");
                assert_eq!(gone.status(), Some(404), "{gone}");
            }
        }
    }
    // Nothing answers at a closed port: the error says where.
    let closed = Client::new("https://127.0.0.1:9", &trust(None)).expect("client");
    assert!(
        matches!(closed.health(), Err(ClientError::Unreachable { ref url, .. }) if url == "https://127.0.0.1:9"),
        "unreachable"
    );
    runtime.block_on(master.stop());
}
