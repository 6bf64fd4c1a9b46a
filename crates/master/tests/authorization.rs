//! Who may call what: every operation of the API (a case or more each) against every kind
//! of principal, allowed or denied, on a real HTTPS master. An operation added to the
//! table without its rows here fails the test (and the `match` in `call` does not compile).
//!
//! Allowed: the answer is not 401, 403 or 404 (a call past authorization may still be
//! refused for what it asks: 400, 409, 503). Denied: 401, 403, or 404 where the API hides
//! what the caller may not see (another's project).

use std::collections::BTreeSet;
use std::time::Duration;

use grove_api as api;
use grove_api::endpoints::{OPERATIONS, Operation};
use grove_client::{Client, ClientError, Identity};
use grove_master::{MasterConfig, TlsOptions, Transport};

/// The principals: the cloud admin, users in every relation to what is called, nodes and
/// a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    Anonymous,
    Admin,
    /// A user who owns computer C1 and instance `web` on it.
    Owner,
    /// A user with nothing to do with C1, `web` or the project.
    Stranger,
    /// C1's node.
    Node,
    /// C2's node (C2 is the stranger's).
    OtherNode,
    /// The partition of `web`.
    Partition,
    ProjectAdmin,
    Member,
    Reader,
    /// The partition of the owner's application's root instance.
    AppPartition,
}

const EVERYONE: &[Who] = &[
    Who::Anonymous,
    Who::Admin,
    Who::Owner,
    Who::Stranger,
    Who::Node,
    Who::OtherNode,
    Who::Partition,
    Who::ProjectAdmin,
    Who::Member,
    Who::Reader,
    Who::AppPartition,
];
const USERS: &[Who] = &[
    Who::Admin,
    Who::Owner,
    Who::Stranger,
    Who::ProjectAdmin,
    Who::Member,
    Who::Reader,
];

/// A call to make: an operation, on what.
#[derive(Debug, Clone, Copy)]
enum Case {
    Op(Operation),
    /// `requestInstance` in the project `shop`.
    RequestInProject,
    /// `showInstance` of the project's instance.
    ShowProjectInstance,
    /// `showApp` of the project's application.
    ShowProjectApp,
    /// `runAction` on the project's instance.
    RunProjectAction,
}

impl Case {
    fn operation(self) -> Operation {
        match self {
            Case::Op(operation) => operation,
            Case::RequestInProject => Operation::RequestInstance,
            Case::ShowProjectInstance => Operation::ShowInstance,
            Case::ShowProjectApp => Operation::ShowApp,
            Case::RunProjectAction => Operation::RunAction,
        }
    }
}

/// The table: each case and who it allows; everyone else is denied.
fn table() -> Vec<(Case, &'static [Who])> {
    use Operation as O;
    use Who::*;
    let op = Case::Op;
    vec![
        (op(O::Health), EVERYONE),
        (op(O::CaCertificate), EVERYONE),
        // The join token is the credential: anyone holding one joins.
        (op(O::Join), EVERYONE),
        (op(O::CreateUser), &[Admin]),
        (op(O::RegisterComputer), USERS),
        (op(O::ListComputers), USERS),
        (op(O::ShowComputer), &[Admin, Owner, Node]),
        (op(O::DeclarePartitions), &[Node]),
        (op(O::SetComputerLabels), &[Admin]),
        (op(O::Supply), &[Admin, Owner]),
        (op(O::ReportSoftware), &[Node]),
        (op(O::DesiredState), &[Node]),
        (op(O::ReportUsage), &[Node]),
        (
            op(O::RequestInstance),
            &[
                Admin,
                Owner,
                Stranger,
                ProjectAdmin,
                Member,
                Reader,
                Partition,
                AppPartition,
            ],
        ),
        (Case::RequestInProject, &[Admin, ProjectAdmin, Member]),
        (op(O::ListInstances), USERS),
        (op(O::ShowInstance), &[Admin, Owner, Node, Partition]),
        (
            Case::ShowProjectInstance,
            &[Admin, ProjectAdmin, Member, Reader],
        ),
        (op(O::ReportState), &[Node]),
        (op(O::Publish), &[Node, Partition]),
        (op(O::SetChildren), &[Node, Partition]),
        (op(O::InstanceUsage), &[Admin, Owner, Node, Partition]),
        (op(O::IssuePartitionCertificate), &[Node]),
        (op(O::RenewCertificate), &[Node]),
        (op(O::RevokeCertificate), &[Admin, Owner]),
        (op(O::CreateJoinToken), USERS),
        (op(O::IssueUserCertificate), &[Admin, Owner]),
        (op(O::CreateProject), &[Admin]),
        (op(O::ListProjects), USERS),
        (op(O::ShowProject), &[Admin, ProjectAdmin, Member, Reader]),
        (op(O::DeleteProject), &[Admin]),
        (op(O::SetProjectMember), &[Admin, ProjectAdmin]),
        (op(O::SetProjectQuota), &[Admin]),
        (op(O::SetPrices), &[Admin]),
        (op(O::ShowPrices), USERS),
        (op(O::ProjectInvoice), &[Admin, ProjectAdmin]),
        (op(O::SetProjectCredit), &[Admin]),
        (op(O::ProjectEstimate), &[Admin, ProjectAdmin, Member]),
        (op(O::CreateSize), &[Admin]),
        (op(O::ListSizes), USERS),
        (op(O::DeleteSize), &[Admin]),
        (op(O::ReportCapacity), &[Node]),
        (op(O::DedicateComputer), &[Admin]),
        (op(O::DeployApp), USERS),
        (op(O::ListAppTypes), USERS),
        (op(O::SetAppType), &[Admin]),
        (op(O::ListApps), USERS),
        // A root's partition reads its own application.
        (op(O::ShowApp), &[Admin, Owner, AppPartition]),
        (Case::ShowProjectApp, &[Admin, ProjectAdmin, Member, Reader]),
        // Refused (409) for those allowed: its root reports a deployed instance.
        (op(O::DeleteApp), &[Admin, Owner]),
        (op(O::UndeployApp), &[Admin, Owner]),
        (op(O::AddAppInstance), &[Admin, Owner]),
        (op(O::RemoveAppInstance), &[Admin, Owner]),
        (op(O::SetAppInstanceState), &[Admin, Owner]),
        (op(O::AppPartition), &[AppPartition]),
        (op(O::AppArchive), &[AppPartition]),
        (op(O::ReportApp), &[AppPartition]),
        (op(O::ReportAppEvents), &[AppPartition]),
        // Refused (400) for those allowed: the application has no such commands file.
        (op(O::RunAppCommand), &[Admin, Owner]),
        // Refused (400) for those allowed: it publishes nothing under that prefix.
        (op(O::BindApp), &[Admin, Owner]),
        (op(O::RunAction), &[Admin, Owner, Partition]),
        (Case::RunProjectAction, &[Admin, ProjectAdmin, Member]),
        (op(O::ListActions), &[Admin, Owner, Node, Partition]),
        (op(O::ShowAction), &[Admin, Owner, Node, Partition]),
        (op(O::FinishAction), &[Node]),
    ]
}

/// A fresh cloud: C0 (the admin's, shared capacity) and C1 (the owner's) with `web` on
/// C1, C2 (the stranger's), the project `shop` with one instance on C0, a join token for
/// each principal.
struct Cloud {
    runtime: tokio::runtime::Runtime,
    master: Option<grove_master::RunningMaster>,
    clients: Vec<(Who, Client)>,
    web: i64,
    shop_web: i64,
    /// A pending action of `web`.
    action: i64,
    join_tokens: Vec<(Who, String)>,
    _dir: tempfile::TempDir,
}

fn declare(client: &Client, computer: &str, n: usize) {
    let partitions: Vec<api::PartitionDeclaration> = (0..n)
        .map(|i| api::PartitionDeclaration {
            reference: format!("slappart{i}"),
            addresses: vec![],
        })
        .collect();
    client
        .declare_partitions(computer, &partitions)
        .expect("partitions");
}

fn supply(client: &Client, computer: &str) {
    client
        .supply(
            computer,
            &api::Supply {
                software_release: "sr.cfg".to_owned(),
                state: api::SupplyState::Available,
                project: None,
            },
        )
        .expect("supply");
}

impl Cloud {
    fn new() -> Cloud {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config =
            MasterConfig::new("127.0.0.1:0".parse().expect("addr"), dir.path().join("m"));
        config.transport = Transport::Https(TlsOptions::default());
        let master = runtime
            .block_on(grove_master::start(&config))
            .expect("master");
        let url = master.url();
        let ca = std::fs::read_to_string(&master.ca.as_ref().expect("https").0).expect("ca");
        let with = |token: Option<&str>| {
            Client::new(
                &url,
                &Identity {
                    token: token.map(str::to_owned),
                    ca_pem: Some(ca.clone()),
                    certificate: None,
                },
            )
            .expect("client")
        };
        let token = std::fs::read_to_string(&master.admin_token_path).expect("token");
        let admin = with(Some(token.trim()));
        let user = |name: &str| with(Some(&admin.create_user(name).expect("user").token));
        let (owner, stranger, project_admin, member, reader) = (
            user("alice"),
            user("bob"),
            user("pat"),
            user("meg"),
            user("rita"),
        );
        let computer = |by: &Client, reference: &str| {
            let node = by
                .register_computer(&api::NewComputer {
                    reference: reference.to_owned(),
                    labels: Default::default(),
                })
                .expect("computer");
            with(Some(&node.token))
        };
        let c0 = computer(&admin, "C0");
        let node = computer(&owner, "C1");
        let other_node = computer(&stranger, "C2");
        declare(&c0, "C0", 8);
        declare(&node, "C1", 4);
        declare(&other_node, "C2", 1);
        supply(&admin, "C0");
        supply(&owner, "C1");
        let web = owner
            .request_instance(&api::InstanceRequest {
                sla: [("computer_guid".to_owned(), "C1".to_owned())].into(),
                ..api::InstanceRequest::new("web", "sr.cfg")
            })
            .expect("web");
        let desired = node.desired("C1", None, Duration::ZERO).expect("desired");
        let partition_token = desired
            .partitions
            .iter()
            .find_map(|p| p.instance.as_ref().filter(|i| i.id == web.id))
            .expect("web on C1")
            .token
            .clone();
        admin.create_project("shop").expect("project");
        for (name, role) in [
            ("pat", api::Role::ProjectAdmin),
            ("meg", api::Role::Member),
            ("rita", api::Role::Reader),
        ] {
            admin
                .set_project_member("shop", name, Some(role))
                .expect("member");
        }
        let shop_web = member
            .request_instance(&api::InstanceRequest {
                project: Some("shop".to_owned()),
                ..api::InstanceRequest::new("shop-web", "sr.cfg")
            })
            .expect("the project's instance");
        // The owner's application, its root on C1; the project's, deployed by a member.
        owner
            .deploy_app(application("C1"), Some("alpha"), None)
            .expect("the owner's application");
        member
            .deploy_app(application("C0"), Some("shop-app"), Some("shop"))
            .expect("the project's application");
        let desired = node.desired("C1", None, Duration::ZERO).expect("desired");
        let root_token = desired
            .partitions
            .iter()
            .filter_map(|p| p.instance.as_ref())
            .find(|i| i.title == "alpha/vm")
            .expect("alpha's root on C1")
            .token
            .clone();
        let app_partition = with(Some(&root_token));
        app_partition
            .report_app(&api::apps::AppReport {
                address: None,
                instances: [(
                    "/vm/web".to_owned(),
                    api::apps::AppObserved {
                        state: "deployed_started".to_owned(),
                        error: None,
                    },
                )]
                .into(),
            })
            .expect("the root reports");
        let clients = vec![
            (Who::Anonymous, with(None)),
            (Who::Admin, admin),
            (Who::Owner, owner),
            (Who::Stranger, stranger),
            (Who::Node, node),
            (Who::OtherNode, other_node),
            (Who::Partition, with(Some(&partition_token))),
            (Who::ProjectAdmin, project_admin),
            (Who::Member, member),
            (Who::Reader, reader),
            (Who::AppPartition, app_partition),
        ];
        let admin = &clients[1].1;
        admin.set_prices(&prices()).expect("prices");
        let action = admin
            .run_action(web.id, &action_request())
            .expect("an action of web")
            .id;
        admin.create_size(&size("gone")).expect("a size to delete");
        let join_tokens = EVERYONE
            .iter()
            .map(|who| {
                let token = admin
                    .create_join_token(&api::NewJoinToken {
                        ttl_seconds: None,
                        labels: Default::default(),
                    })
                    .expect("join token");
                (*who, token.token)
            })
            .collect();
        Cloud {
            runtime,
            master: Some(master),
            clients,
            web: web.id,
            shop_web: shop_web.id,
            action,
            join_tokens,
            _dir: dir,
        }
    }

    fn client(&self, who: Who) -> &Client {
        &self
            .clients
            .iter()
            .find(|(w, _)| *w == who)
            .expect("a client")
            .1
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        if let Some(master) = self.master.take() {
            self.runtime.block_on(master.stop());
        }
    }
}

fn prices() -> api::Prices {
    api::Prices {
        currency: "EUR".to_owned(),
        partition_hour: "0.01".to_owned(),
        cpu_hour: "0.02".to_owned(),
        memory_gib_hour: "0.003".to_owned(),
        disk_gib_month: None,
        size_hour: Default::default(),
        release_partition_hour: Default::default(),
    }
}

/// An application of one root instance (placed on `computer`) with one script instance.
fn application(computer: &str) -> Vec<u8> {
    let target = format!("id = p\nname = p\nhandler = grove\ngrove.computer = {computer}\n");
    grove_roboconf::tree::Tree::of([
        (
            "descriptor/application.properties",
            "name = a\nversion = 1.0\ndsl-id = roboconf-1.0\ngraph-entry-point = g.graph\ninstance-entry-point = i.instances\n",
        ),
        (
            "graph/g.graph",
            "VM {\n installer: target;\n children: Web;\n}\nWeb {\n installer: script;\n}\n",
        ),
        ("graph/VM/target.properties", target.as_str()),
        ("graph/Web/scripts/start.sh", "#!/bin/sh\n"),
        (
            "instances/i.instances",
            "instance of VM {\n name: vm;\n instance of Web {\n  name: web;\n }\n}\n",
        ),
    ])
    .to_zip()
    .expect("zip")
}

fn csr(identity: grove_pki::Identity) -> String {
    grove_pki::request(&identity).expect("csr").1
}

/// Makes the case's call as `who`.
fn call(case: Case, cloud: &Cloud, who: Who) -> Result<(), ClientError> {
    let c = cloud.client(who);
    let sr = "sr.cfg";
    match case {
        Case::RequestInProject => c
            .request_instance(&api::InstanceRequest {
                project: Some("shop".to_owned()),
                ..api::InstanceRequest::new(format!("by-{who:?}"), sr)
            })
            .map(drop),
        Case::ShowProjectInstance => c.show_instance(cloud.shop_web).map(drop),
        Case::ShowProjectApp => c.show_app("shop-app").map(drop),
        Case::RunProjectAction => c.run_action(cloud.shop_web, &action_request()).map(drop),
        Case::Op(operation) => match operation {
            Operation::Health => c.health().map(drop),
            Operation::CaCertificate => c.ca_certificate().map(drop),
            Operation::Join => {
                let token = cloud
                    .join_tokens
                    .iter()
                    .find(|(w, _)| *w == who)
                    .expect("a join token")
                    .1
                    .clone();
                let reference = format!("joined-{who:?}").to_lowercase();
                c.join(&api::JoinRequest {
                    token,
                    csr: csr(grove_pki::Identity::Computer(reference.clone())),
                    reference,
                })
                .map(drop)
            }
            Operation::CreateUser => c
                .create_user(&format!("u-{who:?}").to_lowercase())
                .map(drop),
            Operation::RegisterComputer => c
                .register_computer(&api::NewComputer {
                    reference: format!("r-{who:?}"),
                    labels: Default::default(),
                })
                .map(drop),
            Operation::ListComputers => c.list_computers().map(drop),
            Operation::ShowComputer => c.show_computer("C1").map(drop),
            Operation::DeclarePartitions => c
                .declare_partitions(
                    "C1",
                    &[api::PartitionDeclaration {
                        reference: "slappart0".to_owned(),
                        addresses: vec![],
                    }],
                )
                .map(drop),
            Operation::SetComputerLabels => c
                .set_computer_labels(
                    "C1",
                    &api::Labels {
                        labels: Default::default(),
                    },
                )
                .map(drop),
            Operation::Supply => c
                .supply(
                    "C1",
                    &api::Supply {
                        software_release: "other.cfg".to_owned(),
                        state: api::SupplyState::Available,
                        project: None,
                    },
                )
                .map(drop),
            Operation::ReportSoftware => c
                .report_software(
                    "C1",
                    &api::SoftwareReport {
                        software_release: sr.to_owned(),
                        state: api::SoftwareState::Available,
                        error: None,
                    },
                )
                .map(drop),
            Operation::DesiredState => c.desired("C1", None, Duration::ZERO).map(drop),
            Operation::ReportUsage => c
                .report_usage(
                    "C1",
                    &api::UsageReport {
                        partitions: vec![],
                        at: None,
                    },
                )
                .map(drop),
            Operation::RequestInstance => c
                .request_instance(&api::InstanceRequest::new(format!("by-{who:?}"), sr))
                .map(drop),
            Operation::ListInstances => c.list_instances().map(drop),
            Operation::ShowInstance => c.show_instance(cloud.web).map(drop),
            Operation::ReportState => c
                .report_state(
                    cloud.web,
                    &api::StateReport {
                        state: api::ReportedState::Started,
                        error: None,
                        timestamp: None,
                    },
                )
                .map(drop),
            Operation::Publish => c
                .publish(
                    cloud.web,
                    &api::Publish {
                        parameters: api::Parameters::new(),
                        shared_instance: None,
                    },
                )
                .map(drop),
            Operation::SetChildren => c
                .set_children(cloud.web, &api::Children { titles: vec![] })
                .map(drop),
            Operation::InstanceUsage => c.instance_usage(cloud.web).map(drop),
            Operation::IssuePartitionCertificate => c
                .issue_partition_certificate(
                    cloud.web,
                    &csr(grove_pki::Identity::Partition(cloud.web)),
                )
                .map(drop),
            Operation::RenewCertificate => c
                .renew_certificate("C1", &csr(grove_pki::Identity::Computer("C1".to_owned())))
                .map(drop),
            Operation::RevokeCertificate => c.revoke_certificate("C1").map(drop),
            Operation::CreateJoinToken => c
                .create_join_token(&api::NewJoinToken {
                    ttl_seconds: None,
                    labels: Default::default(),
                })
                .map(drop),
            Operation::IssueUserCertificate => c.issue_user_certificate("alice").map(drop),
            Operation::CreateProject => c
                .create_project(&format!("p-{who:?}").to_lowercase())
                .map(drop),
            Operation::ListProjects => c.list_projects().map(drop),
            Operation::ShowProject => c.show_project("shop").map(drop),
            Operation::DeleteProject => c.delete_project("shop").map(drop),
            Operation::SetProjectMember => c
                .set_project_member("shop", "meg", Some(api::Role::Member))
                .map(drop),
            Operation::SetProjectQuota => c
                .set_project_quota("shop", &api::Quota::default())
                .map(drop),
            Operation::SetPrices => c.set_prices(&prices()).map(drop),
            Operation::ShowPrices => c.show_prices().map(drop),
            Operation::ProjectInvoice => c.project_invoice("shop", "2026-11").map(drop),
            Operation::SetProjectCredit => c.set_project_credit("shop", Some("10")).map(drop),
            Operation::ProjectEstimate => c.project_estimate("shop").map(drop),
            Operation::CreateSize => c.create_size(&size(&format!("by-{who:?}"))).map(drop),
            Operation::ListSizes => c.list_sizes().map(drop),
            Operation::DeleteSize => c.delete_size("gone"),
            Operation::ReportCapacity => c.report_capacity(
                "C1",
                &api::Capacity {
                    millicores: 1000,
                    memory: 1 << 30,
                    disk: 1 << 30,
                    enforced: false,
                },
            ),
            Operation::DedicateComputer => c.dedicate_computer("C1", None),
            Operation::DeployApp => c
                .deploy_app(
                    application("C0"),
                    Some(&format!("by-{who:?}").to_lowercase()),
                    None,
                )
                .map(drop),
            Operation::ListApps => c.list_apps().map(drop),
            Operation::ShowApp => c.show_app("alpha").map(drop),
            Operation::DeleteApp => c.delete_app("alpha"),
            Operation::UndeployApp => c.undeploy_app("alpha").map(drop),
            Operation::AddAppInstance => c
                .add_app_instance(
                    "alpha",
                    &api::apps::NewAppInstance {
                        parent: "/vm".to_owned(),
                        component: "Web".to_owned(),
                        name: format!("by-{who:?}"),
                        properties: Default::default(),
                    },
                )
                .map(drop),
            Operation::RemoveAppInstance => c.remove_app_instance("alpha", "/vm/web").map(drop),
            Operation::SetAppInstanceState => c
                .set_app_instance_state("alpha", "/vm/web", "deployed_stopped")
                .map(drop),
            Operation::AppPartition => c.app_partition(None).map(drop),
            Operation::AppArchive => c.app_archive().map(drop),
            Operation::ReportApp => c.report_app(&api::apps::AppReport::default()).map(drop),
            Operation::ReportAppEvents => c
                .report_app_events(&api::apps::AppEvents::default())
                .map(drop),
            Operation::RunAppCommand => c.run_app_command("alpha", "nothing").map(drop),
            Operation::BindApp => c.bind_app("alpha", "X", "alpha", false).map(drop),
            Operation::RunAction => c.run_action(cloud.web, &action_request()).map(drop),
            Operation::ListAppTypes => c.list_app_types().map(drop),
            Operation::SetAppType => c
                .set_app_type("java", Some("https://sr/java.cfg"))
                .map(drop),
            Operation::ListActions => c.list_actions(cloud.web).map(drop),
            Operation::ShowAction => c.show_action(cloud.action).map(drop),
            Operation::FinishAction => c
                .finish_action(
                    cloud.action,
                    &api::actions::ActionOutcome {
                        result: Some(serde_json::json!({"ok": true})),
                        error: None,
                    },
                )
                .map(drop),
        },
    }
}

fn action_request() -> api::actions::ActionRequest {
    api::actions::ActionRequest {
        name: "status".to_owned(),
        parameters: Default::default(),
        wait: None,
    }
}

fn size(name: &str) -> api::Size {
    api::Size {
        name: name.to_owned(),
        millicores: 100,
        memory: 64 << 20,
        disk: 64 << 20,
    }
}

#[test]
fn every_operation_allows_exactly_its_principals() {
    let table = table();
    let covered: BTreeSet<&str> = table
        .iter()
        .map(|(case, _)| case.operation().id())
        .collect();
    let all: BTreeSet<&str> = OPERATIONS.iter().map(|o| o.id()).collect();
    assert_eq!(covered, all, "every operation has rows in the table");
    let mut wrong = Vec::new();
    for (case, allowed) in table {
        let cloud = Cloud::new();
        // The denied first: they change nothing the allowed ones then meet.
        let mut order: Vec<Who> = EVERYONE.to_vec();
        order.sort_by_key(|who| allowed.contains(who));
        for who in order {
            let expected = allowed.contains(&who);
            let status = match call(case, &cloud, who) {
                Ok(()) => 200,
                Err(ClientError::Refused { status, .. }) => status,
                Err(e) => panic!("{case:?} as {who:?}: no answer: {e}"),
            };
            let was_allowed = !matches!(status, 401 | 403 | 404);
            if was_allowed != expected {
                wrong.push(format!(
                    "{case:?} as {who:?}: {status}, expected {}",
                    if expected { "allowed" } else { "denied" }
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
