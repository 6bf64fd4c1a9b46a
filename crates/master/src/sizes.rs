//! Sizes and capacity: the cloud admin defines sizes (Nova's flavors) and dedicates
//! computers to projects; a node reports what its computer gives its partitions. Placing
//! an instance by its size and counting it against quotas is the store's (its rules).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use grove_api as api;
use grove_store::Store;

use crate::Master;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::routes::{Body, Caller, own_computer, validate_name};

type App<S> = State<Arc<Master<S>>>;

/// The largest amount a size or a capacity may have (1 PiB of bytes, 2^50 thousandths of
/// a core): sums of them then never overflow the store's integers.
const MAX_AMOUNT: u64 = 1 << 50;

fn check_amounts(what: &str, amounts: [(&str, u64); 3]) -> Result<(), ApiError> {
    match amounts.iter().find(|(_, value)| *value > MAX_AMOUNT) {
        Some((name, value)) => Err(ApiError::bad_request(format!(
            "{what}: {name} {value} is more than {MAX_AMOUNT}"
        ))),
        None => Ok(()),
    }
}

fn cloud_admin_only(caller: &Principal, what: &str) -> Result<(), ApiError> {
    match caller {
        Principal::Admin { .. } => Ok(()),
        _ => Err(ApiError::forbidden(format!("only the cloud admin {what}"))),
    }
}

/// `POST /v1/sizes`: the cloud admin.
pub(crate) async fn create<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Body(size): Body<api::Size>,
) -> Result<(StatusCode, Json<api::Size>), ApiError> {
    cloud_admin_only(&caller, "defines sizes")?;
    validate_name("size name", &size.name)?;
    check_amounts(
        &format!("size {:?}", size.name),
        [
            ("millicores", size.millicores),
            ("memory", size.memory),
            ("disk", size.disk),
        ],
    )?;
    if size.millicores == 0 || size.memory == 0 {
        return Err(ApiError::bad_request(format!(
            "size {:?}: millicores and memory must be more than 0",
            size.name
        )));
    }
    m.store.create_size(size.clone()).await?;
    Ok((StatusCode::CREATED, Json(size)))
}

/// `GET /v1/sizes`: every user (they ask for sizes by name).
pub(crate) async fn list<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
) -> Result<Json<Vec<api::Size>>, ApiError> {
    if !matches!(caller, Principal::Admin { .. } | Principal::User { .. }) {
        return Err(ApiError::forbidden("only users and the admin list sizes"));
    }
    Ok(Json(m.store.sizes().await?))
}

/// `DELETE /v1/sizes/{name}`: the cloud admin.
pub(crate) async fn delete<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    cloud_admin_only(&caller, "deletes sizes")?;
    m.store.delete_size(name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /v1/computers/{reference}/capacity`: the computer's node.
pub(crate) async fn report_capacity<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Path(reference): Path<String>,
    Body(capacity): Body<api::Capacity>,
) -> Result<StatusCode, ApiError> {
    let row = own_computer(&m, &caller, &reference).await?;
    check_amounts(
        "capacity",
        [
            ("millicores", capacity.millicores),
            ("memory", capacity.memory),
            ("disk", capacity.disk),
        ],
    )?;
    m.store.set_capacity(row.id, capacity).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /v1/computers/{reference}/project`: the cloud admin.
pub(crate) async fn dedicate<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Path(reference): Path<String>,
    Body(dedication): Body<api::Dedication>,
) -> Result<StatusCode, ApiError> {
    cloud_admin_only(&caller, "dedicates computers")?;
    let computer = m
        .computer_by_reference(&reference)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no computer {reference:?}")))?;
    let project = match dedication.project {
        Some(name) => Some(
            m.store
                .project_by_name(name.clone())
                .await?
                .ok_or_else(|| ApiError::not_found(format!("no project {name:?}")))?
                .id,
        ),
        None => None,
    };
    m.store.dedicate_computer(computer.id, project).await?;
    Ok(StatusCode::NO_CONTENT)
}
