//! One method per operation of the API (`grove_api::endpoints`), in the table's order.
//! Each takes its path argument and body typed, and returns the answer typed.

use std::time::Duration;

use grove_api as api;
use grove_api::actions;
use grove_api::apps;
use grove_api::endpoints::Operation;

use crate::transport::{Call, LONG_POLL_MARGIN, segment};
use crate::{Client, ClientError};

type Result<T> = std::result::Result<T, ClientError>;

impl Client {
    /// `health`: whether the master answers.
    pub fn health(&self) -> Result<serde_json::Value> {
        self.answer(&Call::new(Operation::Health))
    }

    /// `createUser` (the admin): a user and its token.
    pub fn create_user(&self, name: &str) -> Result<api::Credentials> {
        self.answer(&Call::new(Operation::CreateUser).body(&api::NewUser {
            name: name.to_owned(),
        })?)
    }

    /// `registerComputer`: a computer owned by the caller, and its node's token.
    pub fn register_computer(&self, computer: &api::NewComputer) -> Result<api::Credentials> {
        self.answer(&Call::new(Operation::RegisterComputer).body(computer)?)
    }

    /// `listComputers`: the computers the caller may see.
    pub fn list_computers(&self) -> Result<Vec<api::Computer>> {
        self.answer(&Call::new(Operation::ListComputers))
    }

    /// `showComputer`.
    pub fn show_computer(&self, reference: &str) -> Result<api::Computer> {
        self.answer(&Call::new(Operation::ShowComputer).on(reference))
    }

    /// `declarePartitions` (the computer's node).
    pub fn declare_partitions(
        &self,
        reference: &str,
        partitions: &[api::PartitionDeclaration],
    ) -> Result<()> {
        self.done(
            &Call::new(Operation::DeclarePartitions)
                .on(reference)
                .body(partitions)?,
        )
    }

    /// `setComputerLabels`: replaces the computer's labels.
    pub fn set_computer_labels(&self, reference: &str, labels: &api::Labels) -> Result<()> {
        self.done(
            &Call::new(Operation::SetComputerLabels)
                .on(reference)
                .body(labels)?,
        )
    }

    /// `supply`: asks the computer to install (or remove) a software release.
    pub fn supply(&self, reference: &str, supply: &api::Supply) -> Result<()> {
        self.done(&Call::new(Operation::Supply).on(reference).body(supply)?)
    }

    /// `reportSoftware` (the computer's node).
    pub fn report_software(&self, reference: &str, report: &api::SoftwareReport) -> Result<()> {
        self.done(
            &Call::new(Operation::ReportSoftware)
                .on(reference)
                .body(report)?,
        )
    }

    /// `desiredState` (the computer's node): at once without `after`; else once the
    /// revision is newer than `after`, waiting up to `wait` (a long poll).
    pub fn desired(
        &self,
        reference: &str,
        after: Option<i64>,
        wait: Duration,
    ) -> Result<api::DesiredState> {
        let mut call = Call::new(Operation::DesiredState).on(reference);
        if let Some(after) = after {
            call.query = Some(format!("after={after}&wait={}", wait.as_secs()));
            call.timeout = wait + LONG_POLL_MARGIN;
        }
        self.answer(&call)
    }

    /// `reportUsage` (the computer's node).
    pub fn report_usage(&self, reference: &str, usage: &api::UsageReport) -> Result<()> {
        self.done(
            &Call::new(Operation::ReportUsage)
                .on(reference)
                .body(usage)?,
        )
    }

    /// `requestInstance`: creates or updates the caller's instance of that title (a
    /// partition requests its children so).
    pub fn request_instance(&self, request: &api::InstanceRequest) -> Result<api::Instance> {
        self.answer(&Call::new(Operation::RequestInstance).body(request)?)
    }

    /// `listInstances`: the instances the caller may see.
    pub fn list_instances(&self) -> Result<Vec<api::Instance>> {
        self.answer(&Call::new(Operation::ListInstances))
    }

    /// `showInstance`.
    pub fn show_instance(&self, id: i64) -> Result<api::Instance> {
        let id = id.to_string();
        self.answer(&Call::new(Operation::ShowInstance).on(&id))
    }

    /// `reportState` (the node the instance is on).
    pub fn report_state(&self, id: i64, report: &api::StateReport) -> Result<()> {
        let id = id.to_string();
        self.done(&Call::new(Operation::ReportState).on(&id).body(report)?)
    }

    /// `publish` (the instance's partition, or its node).
    pub fn publish(&self, id: i64, publish: &api::Publish) -> Result<()> {
        let id = id.to_string();
        self.done(&Call::new(Operation::Publish).on(&id).body(publish)?)
    }

    /// `setChildren`: the children the instance's last run requested (the others go).
    pub fn set_children(&self, id: i64, children: &api::Children) -> Result<()> {
        let id = id.to_string();
        self.done(&Call::new(Operation::SetChildren).on(&id).body(children)?)
    }

    /// `instanceUsage`: what the instance's partition consumed.
    pub fn instance_usage(&self, id: i64) -> Result<Vec<api::UsageSample>> {
        let id = id.to_string();
        self.answer(&Call::new(Operation::InstanceUsage).on(&id))
    }

    /// `issuePartitionCertificate` (the node the instance runs on): the master signs
    /// `csr` for the instance's partition.
    pub fn issue_partition_certificate(
        &self,
        id: i64,
        csr: &str,
    ) -> Result<api::PartitionCertificate> {
        let id = id.to_string();
        self.answer(
            &Call::new(Operation::IssuePartitionCertificate)
                .on(&id)
                .body(&api::CertificateRequest {
                    csr: csr.to_owned(),
                })?,
        )
    }

    /// `renewCertificate` (the computer's node): the master signs `csr` for it.
    pub fn renew_certificate(&self, reference: &str, csr: &str) -> Result<api::Joined> {
        self.answer(&Call::new(Operation::RenewCertificate).on(reference).body(
            &api::CertificateRequest {
                csr: csr.to_owned(),
            },
        )?)
    }

    /// `revokeCertificate`: the node's certificate is refused from now on.
    pub fn revoke_certificate(&self, reference: &str) -> Result<()> {
        self.done(&Call::new(Operation::RevokeCertificate).on(reference))
    }

    /// `caCertificate`: the master's CA (see [`Client::unverified`] before trusting it).
    pub fn ca_certificate(&self) -> Result<api::CaCertificate> {
        self.answer(&Call::new(Operation::CaCertificate))
    }

    /// `createJoinToken`: a one-time token a new node joins with.
    pub fn create_join_token(&self, token: &api::NewJoinToken) -> Result<api::JoinToken> {
        self.answer(&Call::new(Operation::CreateJoinToken).body(token)?)
    }

    /// `join`: with a join token, the master signs the request's CSR for its computer.
    pub fn join(&self, request: &api::JoinRequest) -> Result<api::Joined> {
        self.answer(&Call::new(Operation::Join).body(request)?)
    }

    /// `issueUserCertificate`: a client certificate bundle for the user `name`.
    pub fn issue_user_certificate(&self, name: &str) -> Result<api::CertificateBundle> {
        self.answer(&Call::new(Operation::IssueUserCertificate).on(name))
    }

    /// `createProject` (the cloud admin).
    pub fn create_project(&self, name: &str) -> Result<api::Project> {
        self.answer(&Call::new(Operation::CreateProject).body(&api::NewProject {
            name: name.to_owned(),
        })?)
    }

    /// `listProjects`: all for the cloud admin, a user's own for a user.
    pub fn list_projects(&self) -> Result<Vec<api::Project>> {
        self.answer(&Call::new(Operation::ListProjects))
    }

    /// `showProject`: its members and quota, what it holds.
    pub fn show_project(&self, name: &str) -> Result<api::Project> {
        self.answer(&Call::new(Operation::ShowProject).on(name))
    }

    /// `deleteProject` (the cloud admin, once its instances are destroyed).
    pub fn delete_project(&self, name: &str) -> Result<()> {
        self.done(&Call::new(Operation::DeleteProject).on(name))
    }

    /// `setProjectMember` (the cloud admin or a project-admin): a role, or `None` to remove.
    pub fn set_project_member(
        &self,
        project: &str,
        user: &str,
        role: Option<api::Role>,
    ) -> Result<api::Project> {
        self.answer(
            &Call::new(Operation::SetProjectMember)
                .on(project)
                .body(&api::Membership {
                    user: user.to_owned(),
                    role,
                })?,
        )
    }

    /// `setProjectQuota` (the cloud admin): replaced whole.
    pub fn set_project_quota(&self, project: &str, quota: &api::Quota) -> Result<api::Project> {
        self.answer(
            &Call::new(Operation::SetProjectQuota)
                .on(project)
                .body(quota)?,
        )
    }

    /// `setPrices` (the cloud admin): the price list, answered as stored.
    pub fn set_prices(&self, prices: &api::Prices) -> Result<api::Prices> {
        self.answer(&Call::new(Operation::SetPrices).body(prices)?)
    }

    /// `showPrices`.
    pub fn show_prices(&self) -> Result<api::Prices> {
        self.answer(&Call::new(Operation::ShowPrices))
    }

    /// `projectInvoice` (the cloud admin or a project-admin): `month` is `YYYY-MM`.
    pub fn project_invoice(&self, project: &str, month: &str) -> Result<api::Invoice> {
        let mut call = Call::new(Operation::ProjectInvoice).on(project);
        call.query = Some(format!("month={}", crate::transport::segment(month)));
        self.answer(&call)
    }

    /// `setProjectCredit` (the cloud admin): what the project's use may cost in all, a
    /// decimal string, or `None` for no limit.
    pub fn set_project_credit(&self, project: &str, amount: Option<&str>) -> Result<api::Project> {
        self.answer(
            &Call::new(Operation::SetProjectCredit)
                .on(project)
                .body(&api::Credit {
                    amount: amount.map(str::to_owned),
                })?,
        )
    }

    /// `projectEstimate` (the cloud admin or a member): month-by-month totals.
    pub fn project_estimate(&self, project: &str) -> Result<api::Estimate> {
        self.answer(&Call::new(Operation::ProjectEstimate).on(project))
    }

    /// `createSize` (the cloud admin).
    pub fn create_size(&self, size: &api::Size) -> Result<api::Size> {
        self.answer(&Call::new(Operation::CreateSize).body(size)?)
    }

    /// `listSizes`.
    pub fn list_sizes(&self) -> Result<Vec<api::Size>> {
        self.answer(&Call::new(Operation::ListSizes))
    }

    /// `deleteSize` (the cloud admin): instances given it keep what they were given.
    pub fn delete_size(&self, name: &str) -> Result<()> {
        self.done(&Call::new(Operation::DeleteSize).on(name))
    }

    /// `reportCapacity` (the computer's node).
    pub fn report_capacity(&self, reference: &str, capacity: &api::Capacity) -> Result<()> {
        self.done(
            &Call::new(Operation::ReportCapacity)
                .on(reference)
                .body(capacity)?,
        )
    }

    /// `dedicateComputer` (the cloud admin): to a project, or `None` to share it again.
    pub fn dedicate_computer(&self, reference: &str, project: Option<&str>) -> Result<()> {
        self.done(
            &Call::new(Operation::DedicateComputer)
                .on(reference)
                .body(&api::Dedication {
                    project: project.map(str::to_owned),
                })?,
        )
    }

    /// `deployApp`: stores the application's archive (a ZIP) and deploys it, under
    /// `name` (the descriptor's when `None`), in `project` if given.
    pub fn deploy_app(
        &self,
        archive: Vec<u8>,
        name: Option<&str>,
        project: Option<&str>,
    ) -> Result<apps::AppView> {
        self.deploy(archive, "application/octet-stream", name, project)
    }

    /// `deployApp` with a ConPaaS manifest (JSON text): a manager instance per service.
    pub fn deploy_manifest(
        &self,
        manifest: Vec<u8>,
        name: Option<&str>,
        project: Option<&str>,
    ) -> Result<apps::AppView> {
        self.deploy(manifest, "application/json", name, project)
    }

    fn deploy(
        &self,
        body: Vec<u8>,
        content_type: &'static str,
        name: Option<&str>,
        project: Option<&str>,
    ) -> Result<apps::AppView> {
        let mut query = Vec::new();
        if let Some(name) = name {
            query.push(format!("name={}", segment(name)));
        }
        if let Some(project) = project {
            query.push(format!("project={}", segment(project)));
        }
        let mut call = Call::new(Operation::DeployApp).bytes(body, content_type);
        call.query = (!query.is_empty()).then(|| query.join("&"));
        call.timeout = LONG;
        self.answer(&call)
    }

    /// `listAppTypes`: the ConPaaS service types and the releases they run.
    pub fn list_app_types(&self) -> Result<Vec<apps::AppType>> {
        self.answer(&Call::new(Operation::ListAppTypes))
    }

    /// `setAppType` (the admin): the release a ConPaaS service type runs.
    pub fn set_app_type(&self, name: &str, release: Option<&str>) -> Result<apps::AppType> {
        self.answer(
            &Call::new(Operation::SetAppType)
                .on(name)
                .body(&apps::AppTypeRelease {
                    release: release.map(str::to_owned),
                })?,
        )
    }

    /// `listApps`: the applications the caller may see.
    pub fn list_apps(&self) -> Result<Vec<apps::AppSummary>> {
        self.answer(&Call::new(Operation::ListApps))
    }

    /// `appPartition` (a root instance's partition): its subtree, at once without
    /// `after`, else once the application's generation is past `after` (or 25 seconds
    /// went by).
    pub fn app_partition(&self, after: Option<i64>) -> Result<apps::AppPartition> {
        let mut call = Call::new(Operation::AppPartition);
        if let Some(after) = after {
            call.query = Some(format!("after={after}"));
            call.timeout = APP_WAIT + LONG_POLL_MARGIN;
        }
        self.answer(&call)
    }

    /// `appArchive` (a root instance's partition): the application's ZIP.
    pub fn app_archive(&self) -> Result<Vec<u8>> {
        let mut call = Call::new(Operation::AppArchive);
        call.timeout = LONG;
        self.bytes(&call)
    }

    /// `reportApp` (a root instance's partition): the states of its subtree.
    pub fn report_app(&self, report: &apps::AppReport) -> Result<()> {
        self.done(&Call::new(Operation::ReportApp).body(report)?)
    }

    /// `reportAppEvents` (a root instance's partition): what its probes raised; the
    /// commands the application's autonomic rules ran.
    pub fn report_app_events(&self, events: &apps::AppEvents) -> Result<apps::AppReaction> {
        let mut call = Call::new(Operation::ReportAppEvents).body(events)?;
        call.timeout = LONG;
        self.answer(&call)
    }

    /// `runAppCommand`: runs a commands file of the application.
    pub fn run_app_command(&self, name: &str, command: &str) -> Result<apps::AppView> {
        let mut call = Call::new(Operation::RunAppCommand)
            .on(name)
            .body(&apps::AppCommand {
                command: command.to_owned(),
            })?;
        call.timeout = LONG;
        self.answer(&call)
    }

    /// `bindApp`: the application's external imports under `prefix` resolve from
    /// `other`'s published variables (or, with `unbind`, no longer).
    pub fn bind_app(
        &self,
        name: &str,
        prefix: &str,
        other: &str,
        unbind: bool,
    ) -> Result<apps::AppView> {
        self.answer(
            &Call::new(Operation::BindApp)
                .on(name)
                .body(&apps::AppBinding {
                    prefix: prefix.to_owned(),
                    application: other.to_owned(),
                    unbind,
                })?,
        )
    }

    /// `showApp`: the instance tree with states, exports and imports.
    pub fn show_app(&self, name: &str) -> Result<apps::AppView> {
        self.answer(&Call::new(Operation::ShowApp).on(name))
    }

    /// `deleteApp`: an undeployed application, its partitions destroyed.
    pub fn delete_app(&self, name: &str) -> Result<()> {
        self.done(&Call::new(Operation::DeleteApp).on(name))
    }

    /// `undeployApp`: every instance but the partitions goes.
    pub fn undeploy_app(&self, name: &str) -> Result<apps::AppView> {
        self.answer(&Call::new(Operation::UndeployApp).on(name))
    }

    /// `addAppInstance`.
    pub fn add_app_instance(
        &self,
        name: &str,
        instance: &apps::NewAppInstance,
    ) -> Result<apps::AppView> {
        self.answer(
            &Call::new(Operation::AddAppInstance)
                .on(name)
                .body(instance)?,
        )
    }

    /// `removeAppInstance`: the instance and its descendants are undeployed, then go.
    pub fn remove_app_instance(&self, name: &str, path: &str) -> Result<apps::AppView> {
        let mut call = Call::new(Operation::RemoveAppInstance).on(name);
        call.query = Some(format!("path={}", segment(path)));
        self.answer(&call)
    }

    /// `setAppInstanceState`: what is wanted of an instance.
    pub fn set_app_instance_state(
        &self,
        name: &str,
        path: &str,
        state: &str,
    ) -> Result<apps::AppView> {
        self.answer(&Call::new(Operation::SetAppInstanceState).on(name).body(
            &apps::AppInstanceState {
                path: path.to_owned(),
                state: state.to_owned(),
            },
        )?)
    }

    /// `runAction`: asks the instance for an action; with `request.wait`, the master
    /// answers once it ended or when the wait is over (still pending).
    pub fn run_action(&self, id: i64, request: &actions::ActionRequest) -> Result<actions::Action> {
        let id = id.to_string();
        let mut call = Call::new(Operation::RunAction).on(&id).body(request)?;
        call.timeout = Duration::from_secs(request.wait.unwrap_or(0)) + LONG_POLL_MARGIN;
        self.answer(&call)
    }

    /// `listActions`: the instance's latest actions, newest first.
    pub fn list_actions(&self, id: i64) -> Result<Vec<actions::Action>> {
        let id = id.to_string();
        self.answer(&Call::new(Operation::ListActions).on(&id))
    }

    /// `showAction`.
    pub fn show_action(&self, id: i64) -> Result<actions::Action> {
        let id = id.to_string();
        self.answer(&Call::new(Operation::ShowAction).on(&id))
    }

    /// `finishAction` (the node the instance runs on): how the action ended.
    pub fn finish_action(&self, id: i64, outcome: &actions::ActionOutcome) -> Result<()> {
        let id = id.to_string();
        self.done(&Call::new(Operation::FinishAction).on(&id).body(outcome)?)
    }
}

/// How long the master holds an `appPartition` call at most.
const APP_WAIT: Duration = Duration::from_secs(25);
/// Deploying places every root instance; reading an archive may take a while.
const LONG: Duration = Duration::from_secs(120);
