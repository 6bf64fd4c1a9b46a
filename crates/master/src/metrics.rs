//! What the master tells Prometheus at `/metrics` (the admin's, like the API): requests
//! and their durations by operation, the outcomes of placements, the store writer's
//! batch sizes, and what its long polls and caches hold.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use grove_metrics::{Counter, Exposition, Family, Histogram, SECONDS};
use grove_store::Store;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::routes::{App, Caller};

/// The master's own metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    requests: Family<Counter>,
    durations: Family<Histogram>,
    placements: Family<Counter>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            requests: Family::new(Counter::default),
            durations: Family::histograms(SECONDS),
            placements: Family::new(Counter::default),
        }
    }
}

impl Metrics {
    /// A request's outcome: `placed` (a partition taken), `unplaced` (a shared instance
    /// waiting for a host), or the API's error code (`no_capacity`, `quota_exceeded`...).
    pub(crate) fn placement(&self, outcome: Result<bool, &'static str>) {
        let label = match outcome {
            Ok(true) => "placed",
            Ok(false) => "unplaced",
            Err(code) => code,
        };
        self.placements.get(&[label]).inc();
    }
}

/// Counts each request of an operation and how long it took.
pub(crate) async fn record(
    State((metrics, operation)): State<(Arc<Metrics>, &'static str)>,
    request: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let response = next.run(request).await;
    metrics
        .requests
        .get(&[operation, response.status().as_str()])
        .inc();
    metrics
        .durations
        .get(&[operation])
        .observe(start.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`: the cloud admin (a Prometheus with the admin's token or certificate).
pub(crate) async fn serve<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
) -> Result<Response, ApiError> {
    if !matches!(caller, Principal::Admin { .. }) {
        return Err(ApiError::forbidden(
            "only the cloud admin reads the metrics",
        ));
    }
    let mut out = Exposition::default();
    let metrics = &m.metrics;
    out.counters(
        "grove_master_requests_total",
        "API requests by operation and status.",
        &["operation", "status"],
        &metrics.requests,
    );
    out.histograms(
        "grove_master_request_duration_seconds",
        "API request durations by operation (long polls included).",
        &["operation"],
        &metrics.durations,
    );
    out.counters(
        "grove_master_placements_total",
        "Instance requests by outcome: placed, unplaced, or the error's code.",
        &["outcome"],
        &metrics.placements,
    );
    out.histogram(
        "grove_store_batch_size",
        "Mutations per transaction of the store's writer (its group commits).",
        &m.store.batch_sizes(),
    );
    Ok((
        [(header::CONTENT_TYPE, grove_metrics::CONTENT_TYPE)],
        out.finish(),
    )
        .into_response())
}
