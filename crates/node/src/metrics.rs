//! What the agent tells Prometheus at `http://<metrics_listen>/metrics`: its services by
//! state and their restarts (from the supervisor), its deployments by outcome and their
//! durations, its promise failures. Off unless `metrics_listen` is set.

use std::net::SocketAddr;

use grove_metrics::{Counter, Exposition, Family, Gauge, Histogram, SECONDS};

use crate::{Agent, NodeError};

/// What the agent counts as it works.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) deployments: Family<Counter>,
    pub(crate) deploy_seconds: Histogram,
    pub(crate) promise_failures: Counter,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            deployments: Family::new(Counter::default),
            deploy_seconds: Histogram::new(SECONDS),
            promise_failures: Counter::default(),
        }
    }
}

impl Metrics {
    pub(crate) fn deployed(&self, ok: bool, seconds: f64) {
        let outcome = if ok { "ok" } else { "failed" };
        self.deployments.get(&[outcome]).inc();
        self.deploy_seconds.observe(seconds);
    }
}

/// The text of a scrape.
pub(crate) async fn render(agent: &Agent) -> String {
    let statuses = agent.service_status().await;
    let services = Family::new(Gauge::default);
    for state in ["running", "backoff", "failed", "stopped"] {
        services.get(&[state]);
    }
    let restarts = Counter::default();
    for status in &statuses {
        let gauge = services.get(&[&status.state]);
        gauge.set(gauge.get() + 1);
        restarts.add(u64::from(status.restarts));
    }
    let metrics = &agent.shared.metrics;
    let mut out = Exposition::default();
    out.gauges(
        "grove_node_services",
        "Supervised services by state.",
        &["state"],
        &services,
    );
    out.counter(
        "grove_node_service_restarts_total",
        "Restarts of the supervised services since the agent started.",
        &restarts,
    );
    out.counters(
        "grove_node_deployments_total",
        "Partition deployments by outcome.",
        &["outcome"],
        &metrics.deployments,
    );
    out.histogram(
        "grove_node_deployment_duration_seconds",
        "How long a partition's deployment took (profile, services, promises).",
        &metrics.deploy_seconds,
    );
    out.counter(
        "grove_node_promise_failures_total",
        "Promise checks that failed, at deployments and between them.",
        &metrics.promise_failures,
    );
    out.finish()
}

/// Serves `/metrics` on `listen` (plain HTTP: bind it where only Prometheus reaches).
pub(crate) async fn serve(
    agent: Agent,
    listen: SocketAddr,
) -> Result<tokio::task::JoinHandle<()>, NodeError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| NodeError::Failed(format!("cannot serve metrics on {listen}: {e}")))?;
    tracing::info!(%listen, "serving metrics");
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let agent = agent.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        grove_metrics::CONTENT_TYPE,
                    )],
                    render(&agent).await,
                )
            }
        }),
    );
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the metrics listener stopped");
        }
    }))
}
