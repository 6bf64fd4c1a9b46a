//! Instance actions: asked by a user (or the instance's parent partition), run by the
//! node hosting the instance, which reports how each ended. `POST` may wait for that
//! end: every master wakes its waiters when an action ends, its own or another's
//! (`Changed::actions`).

use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use grove_api as api;
use grove_api::actions::{self as wire, Action, ActionOutcome, ActionRequest};
use grove_store::{Changed, Store};
use tokio::sync::watch;

use crate::Master;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::routes::{Access, App, Body, Caller, InstanceId, access, path_id};

/// How many of an instance's actions `GET /v1/instances/{id}/actions` lists.
const LISTED: u32 = 100;
/// The longest error text kept from a node.
const MAX_ERROR: usize = 16 * 1024;

/// Wakes those waiting for an action's end: a counter every end (or a lost feed from
/// other masters) bumps; a waiter reads its action again after each.
#[derive(Debug)]
pub(crate) struct Ended(watch::Sender<u64>);

impl Default for Ended {
    fn default() -> Ended {
        Ended(watch::channel(0).0)
    }
}

impl Ended {
    pub(crate) fn notify(&self, changed: &Changed) {
        if !changed.actions.is_empty() {
            self.kick();
        }
    }

    pub(crate) fn kick(&self) {
        self.0.send_modify(|n| *n += 1);
    }
}

/// An action id from the path.
pub(crate) struct ActionId(i64);

impl<St: Send + Sync> FromRequestParts<St> for ActionId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<ActionId, ApiError> {
        path_id(parts, state, "action").await.map(ActionId)
    }
}

/// Whether the caller may ask the instance for actions: the admin, its owner or a member
/// of its project who may change it (not a reader), its own partition, or its parent's
/// (a manager acting on its agents).
async fn may_act<S: Store>(
    m: &Master<S>,
    caller: &Principal,
    instance: &api::Instance,
    rights: &[Access],
) -> Result<(), ApiError> {
    // A ConPaaS service's agents take calls from their manager only.
    let agent = grove_api::apps::BUILTIN_RELEASES.contains(&instance.software_release.as_str())
        && instance.software_release != grove_api::apps::ROBOCONF_RELEASE
        && instance.software_type != grove_conpaas::service::MANAGER;
    if agent {
        return match caller {
            Principal::Partition { instance: me, .. } if instance.parent == Some(*me) => Ok(()),
            _ => Err(ApiError::forbidden(format!(
                "instance {} is an agent of a ConPaaS service: it takes actions from its manager only",
                instance.id
            ))),
        };
    }
    let allowed = match caller {
        Principal::Admin { .. } => true,
        Principal::User { .. } => match &instance.project {
            Some(project) => {
                crate::projects::acting_in(m, caller, project, api::Role::Member).await?;
                true
            }
            None => rights.contains(&Access::Read),
        },
        Principal::Partition { instance: me, .. } => {
            *me == instance.id || instance.parent == Some(*me)
        }
        Principal::Node { .. } => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "only the owner of instance {}, its project's members and its parent ask it for actions",
            instance.id
        )))
    }
}

/// `POST /v1/instances/{id}/actions`: asks for an action; with `wait`, answers once it
/// ended (200) or when the wait is over (202, pending).
pub(crate) async fn run<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    InstanceId(id): InstanceId,
    Body(request): Body<ActionRequest>,
) -> Result<(StatusCode, Json<Action>), ApiError> {
    let (instance, rights) = access(&m, &caller, id).await?;
    may_act(&m, &caller, &instance, &rights).await?;
    if !wire::is_action_name(&request.name) {
        return Err(ApiError::bad_request(format!(
            "action name {:?}: letters, digits, '-' and '_' (at most {}), not starting with '-'",
            request.name,
            wire::MAX_NAME
        )));
    }
    let wait = request.wait.unwrap_or(0);
    if wait > wire::MAX_WAIT_SECONDS {
        return Err(ApiError::bad_request(format!(
            "wait {wait}: at most {} seconds; read the action again for longer",
            wire::MAX_WAIT_SECONDS
        )));
    }
    // Watched before the action exists, so that an end right after is not missed.
    let mut ended = m.actions.0.subscribe();
    let (action_id, changed) = m
        .store
        .request_action(id, request.name, request.parameters)
        .await?;
    m.changes.notify(&changed);
    tracing::info!(instance = id, action = action_id, "action asked");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let mut closing = m.closing.subscribe();
    loop {
        let action = read(&m, action_id).await?;
        let done = action.state != wire::ActionState::Pending;
        if done || tokio::time::Instant::now() >= deadline || *closing.borrow() {
            let status = if done {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            return Ok((status, Json(action)));
        }
        tokio::select! {
            _ = tokio::time::timeout_at(deadline, ended.changed()) => {}
            _ = closing.changed() => {}
        }
    }
}

async fn read<S: Store>(m: &Master<S>, id: i64) -> Result<Action, ApiError> {
    m.store
        .action(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no action {id}")))
}

/// `GET /v1/instances/{id}/actions`: the instance's latest actions, newest first.
pub(crate) async fn list<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    InstanceId(id): InstanceId,
) -> Result<Json<Vec<Action>>, ApiError> {
    access(&m, &caller, id).await?;
    Ok(Json(m.store.actions_of(id, LISTED).await?))
}

/// `GET /v1/actions/{id}`: for whoever may read its instance.
pub(crate) async fn show<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    ActionId(id): ActionId,
) -> Result<Json<Action>, ApiError> {
    let action = read(&m, id).await?;
    access(&m, &caller, action.instance).await?;
    Ok(Json(action))
}

/// `PUT /v1/actions/{id}`: the node hosting the instance reports how the action ended.
pub(crate) async fn finish<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    ActionId(id): ActionId,
    Body(mut outcome): Body<ActionOutcome>,
) -> Result<StatusCode, ApiError> {
    let action = read(&m, id).await?;
    let (_, rights) = access(&m, &caller, action.instance).await?;
    if !rights.contains(&Access::Host) {
        return Err(ApiError::forbidden(format!(
            "only the node running instance {} reports its actions",
            action.instance
        )));
    }
    if outcome.error.is_some() && outcome.result.is_some() {
        return Err(ApiError::bad_request(
            "an action ends with a result or an error, not both",
        ));
    }
    if let Some(error) = &mut outcome.error
        && error.len() > MAX_ERROR
    {
        let mut cut = MAX_ERROR;
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        error.truncate(cut);
    }
    let changed = m.store.finish_action(id, outcome).await?;
    m.changes.notify(&changed);
    m.actions.notify(&changed);
    Ok(StatusCode::NO_CONTENT)
}
