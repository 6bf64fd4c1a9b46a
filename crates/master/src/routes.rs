//! The HTTP API under `/v1`: routes, extractors and handlers. Each handler starts by
//! checking that its caller may do what it asks.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Json, Router};
use grove_api as api;
use grove_api::endpoints::{Method, OPERATIONS, Operation};
use grove_store::{Changed, Requester, Store};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::auth::{self, Principal};
use crate::error::ApiError;
use crate::{CachedDesired, Master};

/// Requests carry small JSON documents; anything larger is refused before parsing.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The longest a node may wait on its change stream in one call.
const MAX_WAIT: Duration = Duration::from_secs(60);

pub(crate) type App<S> = State<Arc<Master<S>>>;

/// The handler of each operation: exhaustive, so an operation without a handler does not
/// compile.
fn handler<S: Store>(operation: Operation) -> MethodRouter<Arc<Master<S>>> {
    use crate::{actions, apps, billing, joining, projects};
    // The method comes from the table, not from the handler's line.
    let filter = match operation.method() {
        Method::Get => MethodFilter::GET,
        Method::Post => MethodFilter::POST,
        Method::Put => MethodFilter::PUT,
        Method::Delete => MethodFilter::DELETE,
    };
    match operation {
        Operation::Health => on(filter, health),
        Operation::CreateUser => on(filter, create_user::<S>),
        Operation::RegisterComputer => on(filter, register_computer::<S>),
        Operation::ListComputers => on(filter, list_computers::<S>),
        Operation::ShowComputer => on(filter, show_computer::<S>),
        Operation::SetComputerLabels => on(filter, set_labels::<S>),
        Operation::DeclarePartitions => on(filter, declare_partitions::<S>),
        Operation::Supply => on(filter, supply::<S>),
        Operation::ReportSoftware => on(filter, report_software::<S>),
        Operation::DesiredState => on(filter, desired_state::<S>),
        Operation::ReportUsage => on(filter, report_usage::<S>),
        Operation::RequestInstance => on(filter, request_instance::<S>),
        Operation::ListInstances => on(filter, list_instances::<S>),
        Operation::ShowInstance => on(filter, show_instance::<S>),
        Operation::ReportState => on(filter, report_state::<S>),
        Operation::Publish => on(filter, publish::<S>),
        Operation::SetChildren => on(filter, set_children::<S>),
        Operation::InstanceUsage => on(filter, instance_usage::<S>),
        Operation::IssuePartitionCertificate => on(filter, joining::partition_certificate::<S>),
        Operation::RenewCertificate => on(filter, joining::renew::<S>),
        Operation::RevokeCertificate => on(filter, joining::revoke::<S>),
        Operation::CaCertificate => on(filter, joining::ca_certificate::<S>),
        Operation::CreateJoinToken => on(filter, joining::create_join_token::<S>),
        Operation::Join => on(filter, joining::join::<S>),
        Operation::IssueUserCertificate => on(filter, joining::user_certificate::<S>),
        Operation::CreateProject => on(filter, projects::create::<S>),
        Operation::ListProjects => on(filter, projects::list::<S>),
        Operation::ShowProject => on(filter, projects::show::<S>),
        Operation::DeleteProject => on(filter, projects::delete::<S>),
        Operation::SetProjectMember => on(filter, projects::set_member::<S>),
        Operation::SetProjectQuota => on(filter, projects::set_quota::<S>),
        Operation::CreateSize => on(filter, crate::sizes::create::<S>),
        Operation::ListSizes => on(filter, crate::sizes::list::<S>),
        Operation::DeleteSize => on(filter, crate::sizes::delete::<S>),
        Operation::ReportCapacity => on(filter, crate::sizes::report_capacity::<S>),
        Operation::DedicateComputer => on(filter, crate::sizes::dedicate::<S>),
        Operation::SetPrices => on(filter, billing::set_prices::<S>),
        Operation::ShowPrices => on(filter, billing::show_prices::<S>),
        Operation::ProjectInvoice => on(filter, billing::project_invoice::<S>),
        Operation::SetProjectCredit => on(filter, billing::set_credit::<S>),
        Operation::ProjectEstimate => on(filter, billing::project_estimate::<S>),
        Operation::RunAction => on(filter, actions::run::<S>),
        Operation::ListActions => on(filter, actions::list::<S>),
        Operation::ShowAction => on(filter, actions::show::<S>),
        Operation::FinishAction => on(filter, actions::finish::<S>),
        Operation::DeployApp => on(filter, apps::deploy::<S>),
        Operation::ListAppTypes => on(filter, crate::conpaas::list_types::<S>),
        Operation::SetAppType => on(filter, crate::conpaas::set_type::<S>),
        Operation::ListApps => on(filter, apps::list::<S>),
        Operation::AppPartition => on(filter, apps::partition::<S>),
        Operation::AppArchive => on(filter, apps::archive::<S>),
        Operation::ReportApp => on(filter, apps::report::<S>),
        Operation::ShowApp => on(filter, apps::show::<S>),
        Operation::DeleteApp => on(filter, apps::delete::<S>),
        Operation::UndeployApp => on(filter, apps::undeploy::<S>),
        Operation::AddAppInstance => on(filter, apps::add_instance::<S>),
        Operation::RemoveAppInstance => on(filter, apps::remove_instance::<S>),
        Operation::SetAppInstanceState => on(filter, apps::set_state::<S>),
        Operation::RunAppCommand => on(filter, apps::command::<S>),
        Operation::BindApp => on(filter, apps::bind::<S>),
        Operation::ReportAppEvents => on(filter, apps::events::<S>),
    }
}

pub(crate) fn router<S: Store>(master: Arc<Master<S>>) -> Router {
    let mut router = Router::new();
    for operation in OPERATIONS {
        let counted = axum::middleware::from_fn_with_state(
            (Arc::clone(&master.metrics), operation.id()),
            crate::metrics::record,
        );
        let mut route = handler::<S>(*operation).layer(counted);
        if crate::console::shown(*operation) {
            route = route.layer(axum::middleware::from_fn_with_state(
                Arc::clone(&master),
                pulse_after_write::<S>,
            ));
        }
        router = router.route(operation.path(), route);
    }
    let api = router
        .route("/metrics", axum::routing::get(crate::metrics::serve::<S>))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Arc::clone(&master));
    api.clone().merge(crate::console::router(master, api))
}

/// Whatever a write changed, the console's live pages look again (`console/live.rs`).
async fn pulse_after_write<S: Store>(
    State(m): State<Arc<Master<S>>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    if response.status().is_success() {
        m.changes.pulse();
    }
    response
}

/// A JSON body whose errors are API errors (400 with the parser's message, 413).
pub(crate) struct Body<T>(pub(crate) T);

impl<T: DeserializeOwned, St: Send + Sync> FromRequest<St> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &St) -> Result<Body<T>, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(json_error(&rejection)),
        }
    }
}

fn json_error(rejection: &JsonRejection) -> ApiError {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            api::codes::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::bad_request("expected a body with content-type application/json")
        }
        _ => ApiError::bad_request(rejection.body_text()),
    }
}

/// An instance id from the path: a bad one answers the JSON error body like every 400.
pub(crate) struct InstanceId(pub(crate) i64);

impl<St: Send + Sync> FromRequestParts<St> for InstanceId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<InstanceId, ApiError> {
        path_id(parts, state, "instance").await.map(InstanceId)
    }
}

/// The `{id}` of a path: a positive 64-bit integer, else a 400 naming what it identifies.
pub(crate) async fn path_id<St: Send + Sync>(
    parts: &mut Parts,
    state: &St,
    what: &str,
) -> Result<i64, ApiError> {
    let Path(text) = Path::<String>::from_request_parts(parts, state)
        .await
        .map_err(|e| ApiError::bad_request(e.body_text()))?;
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            ApiError::bad_request(format!("{what} id {text:?}: a positive 64-bit integer"))
        })
}

/// The authenticated caller.
pub(crate) struct Caller(pub(crate) Principal);

impl<S: Store> FromRequestParts<Arc<Master<S>>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        master: &Arc<Master<S>>,
    ) -> Result<Caller, ApiError> {
        // The console, calling in process for the user signed in to it.
        if let Some(crate::console::Acting(principal)) = parts.extensions.get() {
            return Ok(Caller(principal.clone()));
        }
        let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            // No token: the client certificate, if TLS verified one.
            return match parts.extensions.get::<crate::server::Peer>() {
                Some(crate::server::Peer(Some(presented))) => {
                    crate::joining::by_certificate(master, presented).await
                }
                _ => Err(ApiError::unauthorized(
                    "no credentials: send `Authorization: Bearer <token>` or a client certificate",
                )),
            };
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::unauthorized("the authorization header is not `Bearer <token>`")
            })?;
        let invalid = || ApiError::unauthorized("invalid token");
        let parts = auth::parse_token(token.trim()).ok_or_else(invalid)?;
        let principal = match parts.kind {
            "u" => {
                let row = master.principal(parts.id).await?.ok_or_else(invalid)?;
                if !auth::constant_time_eq(&row.token_hash, &auth::hash_secret(parts.secret)) {
                    return Err(invalid());
                }
                if row.admin {
                    Principal::Admin { id: row.id }
                } else {
                    Principal::User { id: row.id }
                }
            }
            "n" => {
                let row = master.computer(parts.id).await?.ok_or_else(invalid)?;
                if !auth::constant_time_eq(&row.token_hash, &auth::hash_secret(parts.secret)) {
                    return Err(invalid());
                }
                Principal::Node { computer: row.id }
            }
            "p" => {
                if !master.partitions.verify(parts.id, parts.secret) {
                    return Err(invalid());
                }
                let instance = master.store.instance(parts.id).await?.ok_or_else(invalid)?;
                // A destroyed instance's partition speaks for no one any more.
                if instance.requested_state == api::RequestedState::Destroyed {
                    return Err(invalid());
                }
                let owner = instance_owner(&master.store, &instance).await?;
                Principal::Partition {
                    instance: instance.id,
                    owner,
                }
            }
            _ => return Err(invalid()),
        };
        Ok(Caller(principal))
    }
}

/// The user an instance belongs to (the owner of its tree's root request).
pub(crate) async fn instance_owner<S: Store>(
    store: &S,
    instance: &api::Instance,
) -> Result<i64, ApiError> {
    store
        .instance_owner(instance.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("instance {}", instance.id)))
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn create_user<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Body(user): Body<api::NewUser>,
) -> Result<(StatusCode, Json<api::Credentials>), ApiError> {
    if !matches!(caller, Principal::Admin { .. }) {
        return Err(ApiError::forbidden("only the admin creates users"));
    }
    validate_name("name", &user.name)?;
    let secret = m.secret()?;
    let id = m
        .store
        .create_user(user.name.clone(), auth::hash_secret(&secret))
        .await?;
    let token = auth::user_token(id, &secret);
    Ok((
        StatusCode::CREATED,
        Json(api::Credentials {
            id,
            name: user.name,
            token,
        }),
    ))
}

/// Names and references: 1 to 128 characters from `[A-Za-z0-9._-]`, so they are safe in
/// paths, URLs and logs.
pub(crate) fn validate_name(what: &str, name: &str) -> Result<(), ApiError> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && !name.starts_with('.');
    if valid {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid {what} {name:?}: use 1 to 128 letters, digits, '.', '_' or '-', not starting with '.'"
        )))
    }
}

pub(crate) fn user_of(caller: &Principal) -> Option<i64> {
    match caller {
        Principal::Admin { id } | Principal::User { id } => Some(*id),
        _ => None,
    }
}

async fn register_computer<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Body(new): Body<api::NewComputer>,
) -> Result<(StatusCode, Json<api::Credentials>), ApiError> {
    let owner = user_of(&caller)
        .ok_or_else(|| ApiError::forbidden("only users and the admin register computers"))?;
    validate_name("computer reference", &new.reference)?;
    validate_labels(&new.labels)?;
    let secret = m.secret()?;
    let id = m
        .store
        .create_computer(
            new.reference.clone(),
            owner,
            auth::hash_secret(&secret),
            new.labels,
        )
        .await?;
    let token = auth::node_token(id, &secret);
    Ok((
        StatusCode::CREATED,
        Json(api::Credentials {
            id,
            name: new.reference,
            token,
        }),
    ))
}

/// Labels are what placement matches an SLA against: names like references (plus `/`),
/// short values without control characters, a few per computer.
pub(crate) fn validate_labels(
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<(), ApiError> {
    const MAX_LABELS: usize = 64;
    if labels.len() > MAX_LABELS {
        return Err(ApiError::bad_request(format!(
            "labels: at most {MAX_LABELS} per computer"
        )));
    }
    for (key, value) in labels {
        let key_ok = !key.is_empty()
            && key.len() <= 63
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
            && key.starts_with(|c: char| c.is_ascii_alphanumeric());
        if !key_ok {
            return Err(ApiError::bad_request(format!(
                "label {key:?}: 1 to 63 letters, digits, '.', '_', '-' or '/', starting with a letter or digit"
            )));
        }
        if value.len() > 255 || value.chars().any(char::is_control) {
            return Err(ApiError::bad_request(format!(
                "label {key}: at most 255 characters, no control characters"
            )));
        }
    }
    Ok(())
}

/// Replaces a computer's labels (the admin's decision: placement follows them).
async fn set_labels<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Path(reference): Path<String>,
    Body(body): Body<api::Labels>,
) -> Result<StatusCode, ApiError> {
    if !matches!(caller, Principal::Admin { .. }) {
        return Err(ApiError::forbidden("only the admin sets labels"));
    }
    validate_labels(&body.labels)?;
    let row = visible_computer(&m, &caller, &reference).await?;
    m.store.set_labels(row.id, body.labels).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_computers<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
) -> Result<Json<Vec<api::Computer>>, ApiError> {
    let owner = match caller {
        Principal::Admin { .. } => None,
        Principal::User { id } => Some(id),
        _ => {
            return Err(ApiError::forbidden(
                "only users and the admin list computers",
            ));
        }
    };
    Ok(Json(m.store.computers(owner).await?))
}

/// The computer, if the caller may see it: the admin, its owner, or its own node.
async fn visible_computer<S: Store>(
    m: &Master<S>,
    caller: &Principal,
    reference: &str,
) -> Result<grove_store::ComputerRow, ApiError> {
    let not_found = || ApiError::not_found(format!("no computer {reference:?}"));
    let row = m
        .computer_by_reference(reference)
        .await?
        .ok_or_else(not_found)?;
    let allowed = match caller {
        Principal::Admin { .. } => true,
        Principal::User { id } => row.owner_id == *id,
        Principal::Node { computer } => row.id == *computer,
        Principal::Partition { .. } => false,
    };
    if allowed {
        Ok(row)
    } else {
        Err(ApiError::forbidden(format!(
            "computer {reference:?} is not yours"
        )))
    }
}

/// The computer, if the caller is its node.
pub(crate) async fn own_computer<S: Store>(
    m: &Master<S>,
    caller: &Principal,
    reference: &str,
) -> Result<grove_store::ComputerRow, ApiError> {
    let row = visible_computer(m, caller, reference).await?;
    match caller {
        Principal::Node { computer } if *computer == row.id => Ok(row),
        _ => Err(ApiError::forbidden(format!(
            "only the node of computer {reference:?} does this"
        ))),
    }
}

/// The computer, if the caller is the admin or its owner.
pub(crate) async fn managed_computer<S: Store>(
    m: &Master<S>,
    caller: &Principal,
    reference: &str,
) -> Result<grove_store::ComputerRow, ApiError> {
    let row = visible_computer(m, caller, reference).await?;
    match caller {
        Principal::Admin { .. } | Principal::User { .. } => Ok(row),
        _ => Err(ApiError::forbidden(format!(
            "only the owner of computer {reference:?} does this"
        ))),
    }
}

async fn show_computer<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Path(reference): Path<String>,
) -> Result<Json<api::Computer>, ApiError> {
    let row = visible_computer(&m, &caller, &reference).await?;
    m.store
        .computer_view(row.id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no computer {reference:?}")))
}

async fn declare_partitions<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Path(reference): Path<String>,
    Body(partitions): Body<Vec<api::PartitionDeclaration>>,
) -> Result<StatusCode, ApiError> {
    let row = own_computer(&m, &caller, &reference).await?;
    for p in &partitions {
        validate_name("partition reference", &p.reference)?;
        if let Some(bad) = p
            .addresses
            .iter()
            .find(|a| a.parse::<std::net::IpAddr>().is_err())
        {
            return Err(ApiError::bad_request(format!(
                "partition {}: address {bad:?} is not an IP address",
                p.reference
            )));
        }
    }
    let changed = m.store.declare_partitions(row.id, partitions).await?;
    m.changes.notify(&changed);
    Ok(StatusCode::NO_CONTENT)
}

async fn supply<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Path(reference): Path<String>,
    Body(supply): Body<api::Supply>,
) -> Result<StatusCode, ApiError> {
    let row = match &supply.project {
        // A project-admin supplies the computers dedicated to the project.
        Some(name) if !matches!(caller, Principal::Admin { .. }) => {
            let project =
                crate::projects::acting_in(&m, &caller, name, api::Role::ProjectAdmin).await?;
            // Read afresh: the dedication changes (on any master), the cache keeps only
            // what does not.
            m.store
                .computer_by_reference(reference.clone())
                .await?
                .filter(|row| row.project_id == Some(project.id))
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "no computer {reference:?} dedicated to project {name:?}"
                    ))
                })?
        }
        _ => managed_computer(&m, &caller, &reference).await?,
    };
    if supply.software_release.trim().is_empty() {
        return Err(ApiError::bad_request("software_release is empty"));
    }
    let changed = m.store.supply(row.id, supply).await?;
    m.changes.notify(&changed);
    Ok(StatusCode::NO_CONTENT)
}

async fn report_software<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Path(reference): Path<String>,
    Body(report): Body<api::SoftwareReport>,
) -> Result<StatusCode, ApiError> {
    let row = own_computer(&m, &caller, &reference).await?;
    let changed = m.store.report_software(row.id, report).await?;
    m.changes.notify(&changed);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DesiredQuery {
    /// Answer only once the revision is newer than this one (or the wait is over).
    #[serde(default)]
    after: Option<i64>,
    /// How long to wait, in seconds (at most 60).
    #[serde(default)]
    wait: Option<u64>,
}

async fn desired_state<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Path(reference): Path<String>,
    query: Result<Query<DesiredQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let row = own_computer(&m, &caller, &reference).await?;
    // Subscribe before reading, so that a change between the two is not missed.
    let mut changes = m.changes.subscribe(row.id);
    let mut closing = m.closing.subscribe();
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(query.wait.unwrap_or(0)).min(MAX_WAIT);
    loop {
        let document = desired_document(&m, row.id).await?;
        let fresh = query.after.is_none_or(|after| document.revision > after);
        if fresh || tokio::time::Instant::now() >= deadline || *closing.borrow() {
            let headers = [(axum::http::header::CONTENT_TYPE, "application/json")];
            return Ok((headers, document.body).into_response());
        }
        tokio::select! {
            _ = tokio::time::timeout_at(deadline, changes.changed()) => {}
            _ = closing.changed() => {}
        }
    }
}

/// The desired state of a computer as JSON, with its partitions' tokens: from the cache
/// while nothing changed for that computer, else built from the store.
async fn desired_document<S: Store>(
    m: &Master<S>,
    computer: i64,
) -> Result<CachedDesired, ApiError> {
    let generation = m.changes.generation(computer);
    if let Some(cached) = m.cached_desired(computer, generation) {
        return Ok(cached);
    }
    let mut state = m.store.desired_state(computer).await?;
    for partition in &mut state.partitions {
        if let Some(instance) = &mut partition.instance {
            instance.token = m.partitions.token(instance.id);
        }
    }
    let body = serde_json::to_vec(&state).map_err(|e| ApiError::internal(e.to_string()))?;
    let document = CachedDesired {
        generation,
        revision: state.revision,
        body: body.into(),
    };
    m.cache_desired(computer, document.clone());
    Ok(document)
}

async fn request_instance<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Body(request): Body<api::InstanceRequest>,
) -> Result<Json<api::Instance>, ApiError> {
    let (owner, requester) = match (&caller, &request.project) {
        (Principal::Admin { id } | Principal::User { id }, Some(name)) => {
            let project = crate::projects::acting_in(&m, &caller, name, api::Role::Member).await?;
            crate::billing::check_credit(&m, &project, request.state).await?;
            (
                *id,
                Requester::Project {
                    project: project.id,
                    user: *id,
                },
            )
        }
        (Principal::Admin { id } | Principal::User { id }, None) => (*id, Requester::User(*id)),
        (Principal::Partition { instance, owner }, None) => {
            (*owner, Requester::Instance(*instance))
        }
        (Principal::Partition { .. }, Some(_)) => {
            return Err(ApiError::forbidden(
                "a partition requests children in its own instance's project only: leave `project` out",
            ));
        }
        (Principal::Node { .. }, _) => {
            return Err(ApiError::forbidden("nodes do not request instances"));
        }
    };
    for (field, value, limit) in [
        ("title", &request.title, 256),
        ("software_type", &request.software_type, 256),
        ("software_release", &request.software_release, 2048),
    ] {
        if value.len() > limit || value.chars().any(char::is_control) {
            return Err(ApiError::bad_request(format!(
                "{field}: at most {limit} characters, no control characters"
            )));
        }
    }
    let placed = m.store.request(owner, requester, request).await;
    let (instance, changed) = match placed {
        Ok(placed) => placed,
        Err(e) => {
            let e = ApiError::from(e);
            m.metrics.placement(Err(e.code));
            return Err(e);
        }
    };
    m.metrics.placement(Ok(instance.partition.is_some()));
    m.changes.notify(&changed);
    Ok(Json(instance))
}

async fn list_instances<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
) -> Result<Json<Vec<api::Instance>>, ApiError> {
    let owner = match caller {
        Principal::Admin { .. } => None,
        Principal::User { id } => Some(id),
        _ => {
            return Err(ApiError::forbidden(
                "only users and the admin list instances",
            ));
        }
    };
    Ok(Json(m.store.instances(owner).await?))
}

/// What the caller may do with an instance.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read it: its owner, the admin, its parent's partition.
    Read,
    /// Report on it: the node it runs on.
    Host,
    /// Act as it: its own partition.
    Itself,
}

pub(crate) async fn access<S: Store>(
    m: &Master<S>,
    caller: &Principal,
    id: i64,
) -> Result<(api::Instance, Vec<Access>), ApiError> {
    let instance = m
        .store
        .instance(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no instance {id}")))?;
    let mut rights = Vec::new();
    match caller {
        Principal::Admin { .. } => rights.push(Access::Read),
        Principal::User { id: user } => {
            // A project's instance is its members'; the others, their owner's.
            let reads = match &instance.project {
                Some(name) => match m.store.project_by_name(name.clone()).await? {
                    Some(project) => m.store.role(project.id, *user).await?.is_some(),
                    None => false,
                },
                None => m.store.instance_owner(id).await? == Some(*user),
            };
            if reads {
                rights.push(Access::Read);
            }
        }
        Principal::Node { computer } => {
            if let Some(reference) = &instance.computer
                && let Some(row) = m.computer(*computer).await?
                && row.reference == *reference
            {
                rights.extend([Access::Read, Access::Host]);
            }
        }
        Principal::Partition { instance: me, .. } => {
            if *me == id {
                rights.extend([Access::Read, Access::Itself]);
            } else if instance.parent == Some(*me) {
                rights.push(Access::Read);
            }
        }
    }
    if rights.is_empty() {
        return Err(ApiError::forbidden(format!("instance {id} is not yours")));
    }
    Ok((instance, rights))
}

/// Whether the caller may act for the instance: its partition, or the node running it.
fn acts_as(rights: &[Access]) -> bool {
    rights
        .iter()
        .any(|r| matches!(r, Access::Itself | Access::Host))
}

async fn show_instance<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    InstanceId(id): InstanceId,
) -> Result<Json<api::Instance>, ApiError> {
    let (instance, _) = access(&m, &caller, id).await?;
    Ok(Json(instance))
}

async fn report_state<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    InstanceId(id): InstanceId,
    Body(report): Body<api::StateReport>,
) -> Result<StatusCode, ApiError> {
    let (instance, rights) = access(&m, &caller, id).await?;
    if !rights.contains(&Access::Host) {
        return Err(ApiError::forbidden(format!(
            "only the node running instance {id} reports its state"
        )));
    }
    if instance.shared {
        return Err(ApiError::bad_request(format!(
            "instance {id} is shared: its host reports for it"
        )));
    }
    let changed = m.store.report_instance(id, report).await?;
    m.changes.notify(&changed);
    Ok(StatusCode::NO_CONTENT)
}

async fn publish<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    InstanceId(id): InstanceId,
    Body(publish): Body<api::Publish>,
) -> Result<StatusCode, ApiError> {
    let (instance, rights) = access(&m, &caller, id).await?;
    if !acts_as(&rights) {
        return Err(ApiError::forbidden(format!(
            "only instance {id} publishes its parameters"
        )));
    }
    let target = match publish.shared_instance {
        None => instance,
        Some(shared) => match m.store.instance(shared).await? {
            Some(s) if s.host_instance == Some(id) => s,
            _ => {
                return Err(ApiError::forbidden(format!(
                    "instance {id} does not host instance {shared}"
                )));
            }
        },
    };
    let changed: Changed = m.store.publish(target.id, publish.parameters).await?;
    m.changes.notify(&changed);
    Ok(StatusCode::NO_CONTENT)
}

async fn set_children<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    InstanceId(id): InstanceId,
    Body(children): Body<api::Children>,
) -> Result<StatusCode, ApiError> {
    let (_, rights) = access(&m, &caller, id).await?;
    if !acts_as(&rights) {
        return Err(ApiError::forbidden(format!(
            "only instance {id} reports its children"
        )));
    }
    let changed = m.store.set_children(id, children.titles).await?;
    m.changes.notify(&changed);
    Ok(StatusCode::NO_CONTENT)
}

async fn report_usage<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Path(reference): Path<String>,
    Body(report): Body<api::UsageReport>,
) -> Result<StatusCode, ApiError> {
    let row = own_computer(&m, &caller, &reference).await?;
    if report
        .partitions
        .iter()
        .any(|p| !p.cpu_seconds.is_finite() || p.cpu_seconds < 0.0)
    {
        return Err(ApiError::bad_request(
            "cpu_seconds must be a non-negative number",
        ));
    }
    // A measurement from before the epoch or from tomorrow is a wrong clock.
    let tomorrow = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .saturating_add(86_400);
    if let Some(at) = report.at
        && !(0..=tomorrow).contains(&at)
    {
        return Err(ApiError::bad_request(format!(
            "at: {at} is not a time this node measured (seconds since the epoch, not past tomorrow)"
        )));
    }
    m.store.record_usage(row.id, report).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn instance_usage<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    InstanceId(id): InstanceId,
) -> Result<Json<Vec<api::UsageSample>>, ApiError> {
    access(&m, &caller, id).await?;
    Ok(Json(m.store.usage(id, 100).await?))
}
