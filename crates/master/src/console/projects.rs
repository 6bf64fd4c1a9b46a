//! Projects: members and roles, quotas against use, the month-by-month estimate as a
//! table and a chart, and each month's invoice as CSV.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use grove_api as api;
use grove_api::units::{format_bytes, format_cores};
use grove_store::Store;
use minijinja::{Value, context};
use serde::Deserialize;

use super::charts::{self, Point};
use super::{Shared, Viewer, percent_encode};

pub(crate) async fn list<S: Store>(State(console): Shared<S>, viewer: Viewer) -> Response {
    match console
        .api(&viewer)
        .get::<Vec<api::Project>>("/v1/projects")
        .await
    {
        Ok(projects) => {
            let rows: Vec<Value> = projects
                .iter()
                .map(|p| context! {
                    name => &p.name,
                    members => p.members.len(),
                    instances => p.usage.instances,
                    role => p.members.iter().find(|m| m.user == viewer.name).map(|m| m.role.as_str()),
                    balance => &p.balance,
                })
                .collect();
            console.page("projects.html", &viewer, context! { projects => rows })
        }
        Err(refusal) => console.refused(&viewer, &refusal),
    }
}

/// How a quantity is shown.
type Show = fn(u64) -> String;

/// Each quota with what is held against it.
pub(crate) fn quotas(quota: &api::Quota, usage: &api::QuotaUsage) -> Vec<Value> {
    let count: Show = |n| n.to_string();
    let rows: [(&str, Option<u64>, u64, Show); 6] = [
        ("instances", quota.instances, usage.instances, count),
        ("partitions", quota.partitions, usage.partitions, count),
        ("shared instances", quota.shared, usage.shared, count),
        ("CPU", quota.millicores, usage.millicores, format_cores),
        ("memory", quota.memory, usage.memory, format_bytes),
        ("disk", quota.disk, usage.disk, format_bytes),
    ];
    rows.into_iter()
        .map(|(what, limit, used, show)| {
            // A quota of zero is full from the start.
            let percent = limit.map(|l| {
                used.saturating_mul(100)
                    .checked_div(l)
                    .map_or(100, |p| p.min(100))
            });
            context! { what, used => show(used), limit => limit.map(show), percent }
        })
        .collect()
}

pub(crate) async fn show<S: Store>(
    State(console): Shared<S>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Response {
    let api = console.api(&viewer);
    let path = format!("/v1/projects/{}", percent_encode(&name));
    let project = match console.read::<api::Project>(&viewer, &path).await {
        Ok(project) => project,
        Err(page) => return page,
    };
    let (estimate, estimate_error) =
        match api.get::<api::Estimate>(&format!("{path}/estimate")).await {
            Ok(estimate) => (Some(estimate), None),
            Err(refusal) => (None, Some(refusal.message)),
        };
    let chart = estimate.as_ref().filter(|e| !e.months.is_empty()).map(|e| {
        let points: Vec<Point> = e
            .months
            .iter()
            .map(|m| Point {
                label: m.month.clone(),
                value: m.total.parse().unwrap_or(0.0),
            })
            .collect();
        charts::bars(&points, &e.currency, "cost by month")
    });
    let page = context! {
        name => &project.name,
        members => project.members.iter().map(|m| context! { user => &m.user, role => m.role.as_str() }).collect::<Vec<_>>(),
        quotas => quotas(&project.quota, &project.usage),
        credit => &project.credit,
        balance => &project.balance,
        currency => estimate.as_ref().map(|e| e.currency.clone()),
        months => estimate.as_ref().map(|e| e.months.iter().rev().map(|m| context! { month => &m.month, total => &m.total }).collect::<Vec<_>>()),
        estimate_error,
        chart,
    };
    console.page("project.html", &viewer, page)
}

#[derive(Debug, Deserialize)]
pub(crate) struct MonthQuery {
    month: String,
}

/// A month's invoice as a CSV download.
pub(crate) async fn invoice_csv<S: Store>(
    State(console): Shared<S>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(query): Query<MonthQuery>,
) -> Response {
    let path = format!(
        "/v1/projects/{}/invoice?month={}",
        percent_encode(&name),
        percent_encode(&query.month)
    );
    match console.api(&viewer).get::<api::Invoice>(&path).await {
        Ok(invoice) => {
            let file = format!(
                "attachment; filename=\"invoice-{}-{}.csv\"",
                invoice.project, invoice.month
            );
            let disposition =
                HeaderValue::from_str(&file).unwrap_or(HeaderValue::from_static("attachment"));
            (
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/csv; charset=utf-8"),
                    ),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                grove_billing::invoice_csv(&invoice),
            )
                .into_response()
        }
        Err(refusal) => console.refused(&viewer, &refusal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_show_use_against_limits() {
        let quota = api::Quota {
            instances: Some(4),
            memory: Some(1 << 30),
            ..api::Quota::default()
        };
        let usage = api::QuotaUsage {
            instances: 3,
            memory: 1 << 29,
            ..api::QuotaUsage::default()
        };
        let rows = quotas(&quota, &usage);
        assert_eq!(rows.len(), 6);
        assert_eq!(
            rows[0]
                .get_attr("percent")
                .expect("in the context")
                .as_usize(),
            Some(75)
        );
        assert_eq!(
            rows[0]
                .get_attr("limit")
                .expect("in the context")
                .to_string(),
            "4"
        );
        assert!(
            rows[1].get_attr("limit").expect("in the context").is_none(),
            "no quota on partitions"
        );
        assert_eq!(
            rows[4]
                .get_attr("percent")
                .expect("in the context")
                .as_usize(),
            Some(50)
        );
    }
}
