//! How far each read model (and the Kafka publisher, named `kafka`) has got, for operators: `GET /projections/status` (JSON) and
//! `GET /metrics` (Prometheus text format). Unauthenticated, like `/health`: positions and
//! lags are no one's data.
//!
//! A projection's position is its checkpoint: this process's own projector's, when it is the
//! active one here, else the checkpoint row (so a query-only process reports too). Its lag is
//! the age of the oldest event it has not applied yet, 0 when it is at the log's head: it grows
//! while a projector is stuck or down, which the time a batch took to apply would not show.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use crate::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use events::store::Position;
use http_edge::envelope::ApiError;
use projections::runtime::Progress;
use serde_json::{json, Map, Value};
use tokio::sync::watch;

use crate::consistency::checkpoint_in;
use crate::error::ReadError;

/// The progress of the projectors running in this process, by projection name (empty when
/// this process runs none).
#[derive(Clone, Default)]
pub struct ProjectorsHere(Arc<HashMap<&'static str, watch::Receiver<Progress>>>);

impl ProjectorsHere {
    pub fn new(progress: HashMap<&'static str, watch::Receiver<Progress>>) -> Self {
        Self(Arc::new(progress))
    }
}

/// One projection's state, as both routes report it.
struct ProjectionStatus {
    name: &'static str,
    position: Option<Position>,
    lag_ms: u64,
    active_here: bool,
}

async fn statuses(
    state: &AppState,
    here: &ProjectorsHere,
) -> Result<Vec<ProjectionStatus>, ReadError> {
    let mut statuses = Vec::new();
    let publisher = (projections::publisher::NAME, projections::publisher::SCHEMA);
    let read_models = projections::READ_MODEL_NAMES
        .into_iter()
        .map(|name| (name, projections::READ_MODEL_SCHEMA));
    for (name, schema) in read_models.chain([publisher]) {
        let local = here.0.get(name).map(|progress| *progress.borrow());
        let active_here = local.is_some_and(|progress| progress.active);
        let position = match (&state.database, local) {
            (_, Some(progress)) if active_here => progress.position,
            (Some(database), _) => checkpoint_in(database, schema, name).await?,
            (None, local) => local.and_then(|progress| progress.position),
        };
        if (name, schema) == publisher && local.is_none() && position.is_none() {
            // Publishing to Kafka is off (or never ran): nothing to report.
            continue;
        }
        let oldest_unapplied = state
            .log
            .read_all(position, 1)
            .await
            .map_err(ApiError::from)?;
        let lag_ms = oldest_unapplied.first().map_or(0, |event| {
            chrono::Utc::now()
                .signed_duration_since(event.recorded_at)
                .num_milliseconds()
                .max(0) as u64
        });
        statuses.push(ProjectionStatus {
            name,
            position,
            lag_ms,
            active_here,
        });
    }
    Ok(statuses)
}

/// `GET /projections/status`: `{"projections": {"users": {"position": "42", "lagMs": 0,
/// "active": true}, ...}}`; `position` is a consistency token (`null` before the first batch).
#[tracing::instrument(skip_all)]
pub async fn status(
    State(state): State<AppState>,
    Extension(here): Extension<ProjectorsHere>,
) -> Result<Json<Value>, ReadError> {
    let mut projections = Map::new();
    for status in statuses(&state, &here).await? {
        projections.insert(
            status.name.to_owned(),
            json!({
                "position": status.position.map(|p| p.to_string()),
                "lagMs": status.lag_ms,
                "active": status.active_here,
            }),
        );
    }
    Ok(Json(json!({ "projections": projections })))
}

/// `GET /metrics`: the projections' gauges in Prometheus' text format.
#[tracing::instrument(skip_all)]
pub async fn metrics(
    State(state): State<AppState>,
    Extension(here): Extension<ProjectorsHere>,
) -> Result<impl IntoResponse, ReadError> {
    let statuses = statuses(&state, &here).await?;
    let mut text = String::new();
    let mut gauge = |metric: &str, help: &str, value: &dyn Fn(&ProjectionStatus) -> String| {
        let _ = writeln!(text, "# HELP {metric} {help}");
        let _ = writeln!(text, "# TYPE {metric} gauge");
        for status in &statuses {
            let _ = writeln!(
                text,
                "{metric}{{projection=\"{}\"}} {}",
                status.name,
                value(status)
            );
        }
    };
    gauge(
        "userledger_projection_lag_seconds",
        "Age of the oldest event the projection has not applied yet (0 at the log's head).",
        &|status| format!("{}", status.lag_ms as f64 / 1000.0),
    );
    gauge(
        "userledger_projection_position",
        "Log position (commit part) of the last event the projection applied (0 before any).",
        &|status| status.position.map_or(0, |p| p.commit).to_string(),
    );
    gauge(
        "userledger_projection_active",
        "1 where this process runs the projection's active instance, else 0.",
        &|status| u8::from(status.active_here).to_string(),
    );
    // And what this process counted: requests, conflicts, hashing, rate limits, Kafka.
    text.push_str(&http_edge::telemetry::prometheus().render());
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}

/// How far behind the log a read model may be for the service to be ready.
pub const READY_LAG_MS: u64 = 10_000;

/// `GET /ready` where the read side is served: the event store and the database answer, and
/// every read model (and the Kafka publisher, when it runs) is within [`READY_LAG_MS`] of the
/// log's head.
pub async fn ready(
    State(state): State<AppState>,
    Extension(here): Extension<ProjectorsHere>,
) -> impl IntoResponse {
    let mut checks = http_edge::health::store_checks(&*state.log, state.database.as_ref()).await;
    match statuses(&state, &here).await {
        Ok(statuses) => {
            for status in statuses {
                let failure = (status.lag_ms > READY_LAG_MS).then(|| {
                    format!(
                        "{} ms behind the log (ready within {READY_LAG_MS} ms)",
                        status.lag_ms
                    )
                });
                checks.push((status.name, failure));
            }
        }
        Err(_) => checks.push((
            "projections",
            Some("their checkpoints cannot be read".into()),
        )),
    }
    http_edge::health::readiness(checks)
}
