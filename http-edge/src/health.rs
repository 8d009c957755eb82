//! `GET /health`: the process is up and answering (liveness). `GET /ready` (readiness): the
//! event store and the database answer; where the read side is served, its `/ready` also wants
//! the read models caught up (`query_service`), built from [`store_checks`] and [`readiness`].

use std::sync::Arc;

use axum::http::StatusCode;
use axum::{Extension, Json};
use events::store::EventStore;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::openapi::{schemas, Doc, Routes};
use crate::EdgeState;

/// `GET /health`, outside every limit.
pub fn routes() -> Routes {
    Routes::new().route(
        Doc::get("/health", "Liveness")
            .public()
            .unlimited()
            .plain::<schemas::Done>(
                "application/json",
                "the process is up: `{\"ok\":1,\"status\":\"UP\"}` (ours and Liquid's body in one)",
            ),
        health,
    )
}

/// `GET /ready` of a process without the read side (`userledger command`).
pub fn ready_route() -> Routes {
    Routes::new().route(
        Doc::get("/ready", "Readiness")
            .public()
            .describe(
                "200 `{\"ok\":1,\"checks\":{...}}` when the event store and the database \
                 answer; 503 with the same shape (`ok: 0`) and each failed check's reason \
                 otherwise.",
            )
            .plain::<schemas::Done>("application/json", "ready"),
        ready,
    )
}

/// Our envelope's `ok` and Liquid's `status`, so that either kind of probe reads it.
async fn health() -> Json<Value> {
    Json(json!({ "ok": 1, "status": "UP" }))
}

async fn ready(Extension(edge): Extension<Arc<EdgeState>>) -> (StatusCode, Json<Value>) {
    readiness(store_checks(&*edge.log, edge.database.as_ref()).await)
}

/// The answer of `/ready` for `checks` (name, failure reason if any).
pub fn readiness(checks: Vec<(&'static str, Option<String>)>) -> (StatusCode, Json<Value>) {
    let ready = checks.iter().all(|(_, failure)| failure.is_none());
    let checks: serde_json::Map<String, Value> = checks
        .into_iter()
        .map(|(name, failure)| {
            let check = match failure {
                None => json!({ "ok": 1 }),
                Some(reason) => json!({ "ok": 0, "reason": reason }),
            };
            (name.to_owned(), check)
        })
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "ok": u8::from(ready), "checks": checks })),
    )
}

/// Whether the event store and the database answer, each within 2 s.
pub async fn store_checks(
    log: &dyn EventStore,
    database: Option<&PgPool>,
) -> Vec<(&'static str, Option<String>)> {
    let within = std::time::Duration::from_secs(2);
    let store = match tokio::time::timeout(within, log.read_all(None, 1)).await {
        Ok(Ok(_)) => None,
        Ok(Err(error)) => Some(error.to_string()),
        Err(_) => Some("no answer within 2 s".to_owned()),
    };
    let mut checks = vec![("eventStore", store)];
    if let Some(database) = database {
        let answer = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(database);
        let failure = match tokio::time::timeout(within, answer).await {
            Ok(Ok(_)) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some("no answer within 2 s".to_owned()),
        };
        checks.push(("database", failure));
    }
    checks
}
