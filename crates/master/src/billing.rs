//! Billing: the cloud admin's price list, and a project's invoice for a month from its
//! instances' hourly ledger (the arithmetic is `grove-billing`'s).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use grove_api as api;
use grove_billing::{Month, PriceList, Used};
use grove_store::Store;

use crate::Master;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::routes::{Body, Caller};

type App<S> = State<Arc<Master<S>>>;

async fn price_list<S: Store>(m: &Master<S>) -> Result<PriceList, ApiError> {
    let text = m
        .store
        .prices()
        .await?
        .ok_or_else(|| ApiError::not_found("no price list yet: the cloud admin sets one"))?;
    let prices: api::Prices = serde_json::from_str(&text)
        .map_err(|e| ApiError::internal(format!("the stored price list: {e}")))?;
    PriceList::parse(&prices).map_err(|e| ApiError::internal(format!("the stored price list: {e}")))
}

/// `PUT /v1/billing/prices`: the cloud admin.
pub(crate) async fn set_prices<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Body(prices): Body<api::Prices>,
) -> Result<Json<api::Prices>, ApiError> {
    if !matches!(caller, Principal::Admin { .. }) {
        return Err(ApiError::forbidden("only the cloud admin sets prices"));
    }
    let parsed = PriceList::parse(&prices).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let shown = parsed.to_api();
    let json = serde_json::to_string(&shown).map_err(|e| ApiError::internal(e.to_string()))?;
    m.store.set_prices(json).await?;
    Ok(Json(shown))
}

/// `GET /v1/billing/prices`: users and the cloud admin.
pub(crate) async fn show_prices<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
) -> Result<Json<api::Prices>, ApiError> {
    if !matches!(caller, Principal::Admin { .. } | Principal::User { .. }) {
        return Err(ApiError::forbidden("only users and the admin read prices"));
    }
    Ok(Json(price_list(&m).await?.to_api()))
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct InvoiceQuery {
    month: String,
}

/// `GET /v1/projects/{name}/invoice?month=YYYY-MM`: the cloud admin and the project's
/// project-admins.
pub(crate) async fn project_invoice<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    query: Result<Query<InvoiceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(StatusCode, Json<api::Invoice>), ApiError> {
    let project = crate::projects::acting_in(&m, &caller, &name, api::Role::ProjectAdmin).await?;
    let Query(query) = query.map_err(|_| ApiError::bad_request("month=YYYY-MM is required"))?;
    let month = Month::parse(&query.month).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let prices = price_list(&m).await?;
    let (from, to) = month.bounds();
    let used: Vec<(String, Used)> = m
        .store
        .project_ledger(project.id, from, to)
        .await?
        .into_iter()
        .map(|(title, row)| {
            (
                title,
                Used {
                    partition_seconds: row.partition_seconds,
                    cpu_ms: row.cpu_ms,
                    memory_byte_seconds: row.memory_byte_seconds,
                },
            )
        })
        .collect();
    Ok((
        StatusCode::OK,
        Json(grove_billing::invoice(&project.name, month, &prices, &used)),
    ))
}
