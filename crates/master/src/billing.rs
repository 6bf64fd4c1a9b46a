//! Billing: the cloud admin's price list, and a project's invoice for a month from its
//! instances' hourly ledger (the arithmetic is `grove-billing`'s).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use grove_api as api;
use grove_billing::{Item, Month, PriceList, Used};
use grove_store::{ProjectRow, Store};

use crate::Master;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::routes::{Body, Caller};

type App<S> = State<Arc<Master<S>>>;

async fn price_list<S: Store>(m: &Master<S>) -> Result<PriceList, ApiError> {
    stored_prices(m)
        .await?
        .ok_or_else(|| ApiError::not_found("no price list yet: the cloud admin sets one"))
}

async fn stored_prices<S: Store>(m: &Master<S>) -> Result<Option<PriceList>, ApiError> {
    let Some(text) = m.store.prices().await? else {
        return Ok(None);
    };
    let prices: api::Prices = serde_json::from_str(&text)
        .map_err(|e| ApiError::internal(format!("the stored price list: {e}")))?;
    PriceList::parse(&prices)
        .map(Some)
        .map_err(|e| ApiError::internal(format!("the stored price list: {e}")))
}

async fn used_between<S: Store>(
    m: &Master<S>,
    project: i64,
    from: i64,
    to: i64,
) -> Result<Vec<Item>, ApiError> {
    Ok(m.store
        .project_ledger(project, from, to)
        .await?
        .into_iter()
        .map(|instance| Item {
            title: instance.title,
            software_release: instance.software_release,
            size: instance.size,
            used: Used {
                partition_seconds: instance.used.partition_seconds,
                cpu_ms: instance.used.cpu_ms,
                memory_byte_seconds: instance.used.memory_byte_seconds,
                disk_byte_seconds: instance.used.disk_byte_seconds,
            },
        })
        .collect())
}

/// A project's balance: its credit less what its use cost so far at the current prices
/// (nothing without a price list); none without a credit.
pub(crate) async fn balance<S: Store>(
    m: &Master<S>,
    project: &ProjectRow,
) -> Result<Option<rust_decimal::Decimal>, ApiError> {
    let Some(credit) = &project.credit else {
        return Ok(None);
    };
    let credit = grove_billing::parse_amount(credit)
        .map_err(|e| ApiError::internal(format!("the stored credit: {e}")))?;
    let charged = match stored_prices(m).await? {
        Some(prices) => {
            grove_billing::charged(&prices, &used_between(m, project.id, 0, i64::MAX).await?)
        }
        None => rust_decimal::Decimal::ZERO,
    };
    Ok(Some(credit - charged))
}

/// Refuses a request in a project whose credit is spent (402), but a destroy.
pub(crate) async fn check_credit<S: Store>(
    m: &Master<S>,
    project: &ProjectRow,
    state: api::RequestedState,
) -> Result<(), ApiError> {
    if state == api::RequestedState::Destroyed {
        return Ok(());
    }
    match balance(m, project).await? {
        Some(left) if left <= rust_decimal::Decimal::ZERO => Err(ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            api::codes::INSUFFICIENT_CREDIT,
            format!(
                "project {:?} has spent its credit of {} (balance {left:.2}): \
                 its running instances go on, new requests wait for more credit",
                project.name,
                project.credit.as_deref().unwrap_or_default()
            ),
        )),
        _ => Ok(()),
    }
}

/// `GET /v1/projects/{name}/estimate`: what the project's use cost month by month at the
/// current prices; the cloud admin and the project's members.
pub(crate) async fn project_estimate<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<Json<api::Estimate>, ApiError> {
    let project = crate::projects::acting_in(&m, &caller, &name, api::Role::Member).await?;
    let prices = price_list(&m).await?;
    let mut months = Vec::new();
    if let Some((first, last)) = m.store.project_ledger_span(project.id).await? {
        let mut month = Month::of(first);
        while month <= Month::of(last) {
            let (from, to) = month.bounds();
            let total =
                grove_billing::charged(&prices, &used_between(&m, project.id, from, to).await?);
            months.push(api::MonthTotal {
                month: month.to_string(),
                total: format!("{total:.2}"),
            });
            month = Month::of(to);
        }
    }
    Ok(Json(api::Estimate {
        project: project.name,
        currency: prices.currency,
        months,
    }))
}

/// `PUT /v1/projects/{name}/credit`: the cloud admin.
pub(crate) async fn set_credit<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    Body(credit): Body<api::Credit>,
) -> Result<Json<api::Project>, ApiError> {
    if !matches!(caller, Principal::Admin { .. }) {
        return Err(ApiError::forbidden("only the cloud admin gives credit"));
    }
    let amount = match &credit.amount {
        Some(text) => Some(
            grove_billing::parse_amount(text)
                .map_err(|e| ApiError::bad_request(e.to_string()))?
                .to_string(),
        ),
        None => None,
    };
    let project = m
        .store
        .project_by_name(name.clone())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no project {name:?}")))?;
    m.store.set_credit(project.id, amount).await?;
    Ok(Json(crate::projects::shown(&m, &name).await?))
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
    let used = used_between(&m, project.id, from, to).await?;
    Ok((
        StatusCode::OK,
        Json(grove_billing::invoice(&project.name, month, &prices, &used)),
    ))
}
