//! Every endpoint of the API: its operation, method and path. The master routes each
//! operation with an exhaustive `match` (a new operation without a handler does not
//! compile), `openapi.json` documents the same table (a test holds them equal), and
//! clients take paths and methods from here.

/// An HTTP method the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

macro_rules! operations {
    ($($variant:ident => $method:ident $path:literal $id:literal,)*) => {
        /// What an endpoint does.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operation {
            $($variant,)*
        }

        /// Every operation, in the order `openapi.json` lists them.
        pub const OPERATIONS: &[Operation] = &[$(Operation::$variant,)*];

        impl Operation {
            pub fn method(self) -> Method {
                match self {
                    $(Operation::$variant => Method::$method,)*
                }
            }

            /// The path, with `{reference}` and `{id}` where the path names them.
            pub fn path(self) -> &'static str {
                match self {
                    $(Operation::$variant => $path,)*
                }
            }

            /// The `operationId` of `openapi.json`.
            pub fn id(self) -> &'static str {
                match self {
                    $(Operation::$variant => $id,)*
                }
            }
        }
    };
}

operations! {
    Health => Get "/v1/health" "health",
    CreateUser => Post "/v1/users" "createUser",
    RegisterComputer => Post "/v1/computers" "registerComputer",
    ListComputers => Get "/v1/computers" "listComputers",
    ShowComputer => Get "/v1/computers/{reference}" "showComputer",
    DeclarePartitions => Put "/v1/computers/{reference}/partitions" "declarePartitions",
    SetComputerLabels => Put "/v1/computers/{reference}/labels" "setComputerLabels",
    Supply => Post "/v1/computers/{reference}/supply" "supply",
    ReportSoftware => Put "/v1/computers/{reference}/software" "reportSoftware",
    DesiredState => Get "/v1/computers/{reference}/desired" "desiredState",
    ReportUsage => Post "/v1/computers/{reference}/usage" "reportUsage",
    RequestInstance => Post "/v1/instances" "requestInstance",
    ListInstances => Get "/v1/instances" "listInstances",
    ShowInstance => Get "/v1/instances/{id}" "showInstance",
    ReportState => Put "/v1/instances/{id}/state" "reportState",
    Publish => Put "/v1/instances/{id}/connection" "publish",
    SetChildren => Put "/v1/instances/{id}/children" "setChildren",
    InstanceUsage => Get "/v1/instances/{id}/usage" "instanceUsage",
    IssuePartitionCertificate => Post "/v1/instances/{id}/certificate" "issuePartitionCertificate",
    RenewCertificate => Post "/v1/computers/{reference}/certificate" "renewCertificate",
    RevokeCertificate => Post "/v1/computers/{reference}/revoke" "revokeCertificate",
    CaCertificate => Get "/v1/ca" "caCertificate",
    CreateJoinToken => Post "/v1/join-tokens" "createJoinToken",
    Join => Post "/v1/join" "join",
    IssueUserCertificate => Post "/v1/users/{name}/certificate" "issueUserCertificate",
    CreateProject => Post "/v1/projects" "createProject",
    ListProjects => Get "/v1/projects" "listProjects",
    ShowProject => Get "/v1/projects/{name}" "showProject",
    DeleteProject => Delete "/v1/projects/{name}" "deleteProject",
    SetProjectMember => Put "/v1/projects/{name}/members" "setProjectMember",
    SetProjectQuota => Put "/v1/projects/{name}/quota" "setProjectQuota",
    SetProjectCredit => Put "/v1/projects/{name}/credit" "setProjectCredit",
    SetPrices => Put "/v1/billing/prices" "setPrices",
    ShowPrices => Get "/v1/billing/prices" "showPrices",
    ProjectInvoice => Get "/v1/projects/{name}/invoice" "projectInvoice",
    ProjectEstimate => Get "/v1/projects/{name}/estimate" "projectEstimate",
    CreateSize => Post "/v1/sizes" "createSize",
    ListSizes => Get "/v1/sizes" "listSizes",
    DeleteSize => Delete "/v1/sizes/{name}" "deleteSize",
    ReportCapacity => Put "/v1/computers/{reference}/capacity" "reportCapacity",
    DedicateComputer => Put "/v1/computers/{reference}/project" "dedicateComputer",
    DeployApp => Post "/v1/apps" "deployApp",
    ListAppTypes => Get "/v1/apps/types" "listAppTypes",
    SetAppType => Put "/v1/apps/types/{name}" "setAppType",
    ListApps => Get "/v1/apps" "listApps",
    AppPartition => Get "/v1/apps/partition" "appPartition",
    AppArchive => Get "/v1/apps/partition/archive" "appArchive",
    ReportApp => Put "/v1/apps/partition/report" "reportApp",
    ReportAppEvents => Post "/v1/apps/partition/events" "reportAppEvents",
    ShowApp => Get "/v1/apps/{name}" "showApp",
    DeleteApp => Delete "/v1/apps/{name}" "deleteApp",
    UndeployApp => Post "/v1/apps/{name}/undeploy" "undeployApp",
    AddAppInstance => Post "/v1/apps/{name}/instances" "addAppInstance",
    RemoveAppInstance => Delete "/v1/apps/{name}/instances" "removeAppInstance",
    SetAppInstanceState => Put "/v1/apps/{name}/state" "setAppInstanceState",
    RunAppCommand => Post "/v1/apps/{name}/commands" "runAppCommand",
    BindApp => Put "/v1/apps/{name}/bindings" "bindApp",
    RunAction => Post "/v1/instances/{id}/actions" "runAction",
    ListActions => Get "/v1/instances/{id}/actions" "listActions",
    ShowAction => Get "/v1/actions/{id}" "showAction",
    FinishAction => Put "/v1/actions/{id}" "finishAction",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_and_routes_are_unique() {
        let mut ids = std::collections::BTreeSet::new();
        let mut routes = std::collections::BTreeSet::new();
        for operation in OPERATIONS {
            assert!(ids.insert(operation.id()), "{operation:?}");
            assert!(
                routes.insert((operation.method().as_str(), operation.path())),
                "{operation:?}"
            );
        }
    }
}
