//! What operators see of each request: a request id and a correlation id (from the caller's
//! `X-Request-Id` / `X-Correlation-Id` when they are UUIDs, else new), a log line per answer
//! carrying both, and Prometheus metrics. The events a request causes record the request id as
//! their causation id and the correlation id as theirs, so a trace can be followed from a log
//! line to the log of events and to Kafka.
//!
//! Metrics go through the `metrics` facade to one Prometheus recorder per process
//! ([`prometheus`]); `GET /metrics` renders it:
//! - `userledger_http_requests_total{method, route, status}` and
//!   `userledger_http_request_duration_seconds{method, route, status}` (histogram);
//! - `userledger_command_conflicts_total{aggregate}` (an append found its stream moved on) and
//!   `userledger_command_retries_total{aggregate}` (decided again after one);
//! - `userledger_hashing_in_flight`, `userledger_hashing_waiting` (gauges) and
//!   `userledger_hashing_rejected_total` (503 `ServiceUnavailable`: the pool was saturated);
//! - `userledger_rate_limited_total{limit}`;
//! - `userledger_kafka_published_total`, `userledger_kafka_publish_errors_total` (the publisher).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing::Instrument;
use uuid::Uuid;

use crate::openapi::{Doc, Routes};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");

/// Latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The ids of one request, in its extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestIds {
    /// This request: the causation id of the events it causes.
    pub request: Uuid,
    /// The chain of requests it belongs to: the correlation id of its events.
    pub correlation: Uuid,
}

impl RequestIds {
    /// Ids for a request that brought none.
    pub fn new() -> Self {
        let request = Uuid::now_v7();
        Self {
            request,
            correlation: request,
        }
    }

    /// The caller's ids where they are UUIDs, new ones otherwise.
    pub fn of(headers: &HeaderMap) -> Self {
        let uuid = |name: &HeaderName| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| Uuid::parse_str(value.trim()).ok())
        };
        let request = uuid(&REQUEST_ID).unwrap_or_else(Uuid::now_v7);
        Self {
            request,
            correlation: uuid(&CORRELATION_ID).unwrap_or(request),
        }
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

/// The process's Prometheus recorder, installed on first use (or a detached one if another
/// recorder was installed first).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .expect("latency buckets");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed: /metrics shows gauges only");
        }
        handle
    })
}

/// `GET /metrics` of a process without the read side (`userledger command`).
pub fn metrics_route() -> Routes {
    Routes::new().route(
        Doc::get("/metrics", "This process's metrics for Prometheus")
            .public()
            .describe(
                "Requests by route and status (counts and latency histograms), command conflicts \
                 and retries, hashing-pool saturation, rate-limit refusals.",
            )
            .text(200, "text/plain; version=0.0.4", "Prometheus' text format"),
        metrics,
    )
}

/// This process's metrics, in Prometheus' text format.
pub async fn metrics() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        prometheus().render(),
    )
}

/// Requests this process has answered: the sum of `userledger_http_requests_total` over its
/// labels, kept apart so that reading it does not render every metric.
static REQUESTS_HANDLED: AtomicU64 = AtomicU64::new(0);

/// How many requests this process has answered (`GET /system/{admin,client}-api/stats`).
pub fn requests_handled() -> u64 {
    REQUESTS_HANDLED.load(Ordering::Relaxed)
}

/// Gives the request its ids, logs its answer, and counts it.
pub async fn middleware(mut request: Request, next: Next) -> Response {
    prometheus();
    let ids = RequestIds::of(request.headers());
    request.extensions_mut().insert(ids);
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |path| path.as_str())
        .to_owned();
    let span = tracing::info_span!(
        "request",
        request_id = %ids.request,
        correlation_id = %ids.correlation,
        method = %method,
        route = %route,
    );
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    span.in_scope(|| {
        if route != "/health" && route != "/metrics" {
            tracing::info!(
                status,
                latency_ms = elapsed.as_secs_f64() * 1_000.0,
                "answered"
            );
        }
    });
    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("userledger_http_requests_total", &labels).increment(1);
    REQUESTS_HANDLED.fetch_add(1, Ordering::Relaxed);
    metrics::histogram!("userledger_http_request_duration_seconds", &labels)
        .record(elapsed.as_secs_f64());
    let headers = response.headers_mut();
    for (name, id) in [(REQUEST_ID, ids.request), (CORRELATION_ID, ids.correlation)] {
        if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
            headers.insert(name, value);
        }
    }
    response
}
