//! Projects: the cloud admin makes them and sets their quotas; a project-admin manages its
//! members; members (and project-admins) request, change and destroy the project's
//! instances; readers read them. Quotas are the store's to check, in the transaction that
//! creates an instance.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use grove_api as api;
use grove_store::{ProjectRow, Store};

use crate::Master;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::routes::{Body, Caller, validate_name};

type App<S> = State<Arc<Master<S>>>;

fn cloud_admin_only(caller: &Principal, what: &str) -> Result<(), ApiError> {
    match caller {
        Principal::Admin { .. } => Ok(()),
        _ => Err(ApiError::forbidden(format!("only the cloud admin {what}"))),
    }
}

async fn named<S: Store>(m: &Master<S>, name: &str) -> Result<ProjectRow, ApiError> {
    m.store
        .project_by_name(name.to_owned())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no project {name:?}")))
}

/// The project, if the caller may act in it with at least `needed`: the cloud admin
/// always; a user by their role. A user who is not a member is told the project does
/// not exist, as for one that does not.
pub(crate) async fn acting_in<S: Store>(
    m: &Master<S>,
    caller: &Principal,
    name: &str,
    needed: api::Role,
) -> Result<ProjectRow, ApiError> {
    let project = named(m, name).await?;
    let role = match caller {
        Principal::Admin { .. } => return Ok(project),
        Principal::User { id } => m.store.role(project.id, *id).await?,
        Principal::Node { .. } | Principal::Partition { .. } => None,
    };
    match role {
        Some(role) if role >= needed => Ok(project),
        Some(role) => Err(ApiError::forbidden(format!(
            "a {} of project {name:?} may not do this (it takes a {})",
            role.as_str(),
            needed.as_str()
        ))),
        None => Err(ApiError::not_found(format!("no project {name:?}"))),
    }
}

async fn view<S: Store>(m: &Master<S>, project: ProjectRow) -> Result<api::Project, ApiError> {
    let balance = crate::billing::balance(m, &project).await?;
    Ok(api::Project {
        members: m.store.members(project.id).await?,
        usage: m.store.project_usage(project.id).await?,
        balance: balance.map(|b| format!("{b:.2}")),
        credit: project.credit,
        quota: project.quota,
        name: project.name,
    })
}

/// The project as its members see it, read again.
pub(crate) async fn shown<S: Store>(m: &Master<S>, name: &str) -> Result<api::Project, ApiError> {
    view(m, named(m, name).await?).await
}

/// `POST /v1/projects`: the cloud admin.
pub(crate) async fn create<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Body(new): Body<api::NewProject>,
) -> Result<(StatusCode, Json<api::Project>), ApiError> {
    cloud_admin_only(&caller, "makes projects")?;
    validate_name("project name", &new.name)?;
    m.store.create_project(new.name.clone()).await?;
    let project = named(&m, &new.name).await?;
    Ok((StatusCode::CREATED, Json(view(&m, project).await?)))
}

/// `GET /v1/projects`: all for the cloud admin, a user's own for a user.
pub(crate) async fn list<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
) -> Result<Json<Vec<api::Project>>, ApiError> {
    let member = match caller {
        Principal::Admin { .. } => None,
        Principal::User { id } => Some(id),
        Principal::Node { .. } | Principal::Partition { .. } => {
            return Err(ApiError::forbidden(
                "only users and the admin list projects",
            ));
        }
    };
    let mut out = Vec::new();
    for project in m.store.projects(member).await? {
        out.push(view(&m, project).await?);
    }
    Ok(Json(out))
}

/// `GET /v1/projects/{name}`: its members and the cloud admin.
pub(crate) async fn show<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<Json<api::Project>, ApiError> {
    let project = acting_in(&m, &caller, &name, api::Role::Reader).await?;
    Ok(Json(view(&m, project).await?))
}

/// `DELETE /v1/projects/{name}`: the cloud admin, once its instances are destroyed.
pub(crate) async fn delete<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    cloud_admin_only(&caller, "deletes projects")?;
    let project = named(&m, &name).await?;
    m.store.delete_project(project.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /v1/projects/{name}/members`: the cloud admin, or a project-admin of it.
pub(crate) async fn set_member<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    Body(membership): Body<api::Membership>,
) -> Result<Json<api::Project>, ApiError> {
    let project = acting_in(&m, &caller, &name, api::Role::ProjectAdmin).await?;
    let user = m
        .store
        .principal_by_name(membership.user.clone())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user {:?}", membership.user)))?;
    if user.admin {
        return Err(ApiError::bad_request(
            "the cloud admin is in every project already",
        ));
    }
    m.store
        .set_member(project.id, user.id, membership.role)
        .await?;
    Ok(Json(view(&m, project).await?))
}

/// `PUT /v1/projects/{name}/quota`: the cloud admin.
pub(crate) async fn set_quota<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    Body(quota): Body<api::Quota>,
) -> Result<Json<api::Project>, ApiError> {
    cloud_admin_only(&caller, "sets quotas")?;
    let project = named(&m, &name).await?;
    m.store.set_quota(project.id, quota).await?;
    let project = named(&m, &name).await?;
    Ok(Json(view(&m, project).await?))
}
