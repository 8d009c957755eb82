//! `GET /health`: the process is up and answering (liveness). `GET /ready` (readiness): the
//! event store and the database answer; where the read side is served, its `/ready` also wants
//! the read models caught up (`query_service`), built from [`store_checks`] and [`readiness`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Json, Router};
use events::store::EventStore;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::openapi::{schemas, Doc, Routes};
use crate::{EdgeState, Server};

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

/// How often the runtime that serves the API marks that it runs, for the liveness port.
const BEAT_EVERY: Duration = Duration::from_millis(500);
/// How long without a mark before the liveness port answers that the process is down.
const STALE_AFTER: Duration = Duration::from_secs(10);

/// Serves `GET /health` alone on `listen` from a thread with a runtime of its own, for the
/// process's life; the address it listens on. Call it from the runtime that serves the API,
/// once that serves. On the API's port `/health` waits its turn behind every request that is
/// ready to run, so a flood delays it like any request; here it waits for nothing but the
/// operating system's scheduler, and a liveness probe is answered at once even while every
/// API worker is busy. It still tells whether the API's runtime runs: that runtime marks a
/// heartbeat every 500 ms, and after 10 s without one the answer is 503 `{"ok":0,"status":
/// "DOWN"}`.
pub fn serve_apart(
    listen: SocketAddr,
    header_read_timeout: Duration,
) -> anyhow::Result<SocketAddr> {
    let heartbeat = Arc::new(Heartbeat::new());
    tokio::spawn({
        let heartbeat = heartbeat.clone();
        async move {
            loop {
                heartbeat.mark();
                tokio::time::sleep(BEAT_EVERY).await;
            }
        }
    });
    let (bound, address) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("liveness".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => return drop(bound.send(Err(anyhow::Error::from(error)))),
            };
            runtime.block_on(async move {
                let router = Router::new().route(
                    "/health",
                    get(move || {
                        let heartbeat = heartbeat.clone();
                        async move { heartbeat.liveness() }
                    }),
                );
                let server = match Server::liveness(listen, router, header_read_timeout).await {
                    Ok(server) => server,
                    Err(error) => return drop(bound.send(Err(error))),
                };
                let _ = bound.send(server.local_addr().map_err(anyhow::Error::from));
                if let Err(error) = server.run_until_stopped(std::future::pending()).await {
                    tracing::error!(error = format!("{error:#}"), "the liveness port stopped");
                }
            });
        })?;
    address.recv()?
}

/// When the API's runtime last ran, in milliseconds since `since`.
struct Heartbeat {
    since: std::time::Instant,
    last: std::sync::atomic::AtomicU64,
}

impl Heartbeat {
    fn new() -> Self {
        Self {
            since: std::time::Instant::now(),
            last: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn mark(&self) {
        let now = self.since.elapsed().as_millis() as u64;
        self.last.store(now, std::sync::atomic::Ordering::Relaxed);
    }

    /// `/health`'s answer: up while the API's runtime marked within [`STALE_AFTER`].
    fn liveness(&self) -> (StatusCode, Json<Value>) {
        let now = self.since.elapsed().as_millis() as u64;
        let silent = now.saturating_sub(self.last.load(std::sync::atomic::Ordering::Relaxed));
        if Duration::from_millis(silent) < STALE_AFTER {
            (StatusCode::OK, health_body())
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "ok": 0,
                    "status": "DOWN",
                    "reason": format!("the API's runtime has not run for {} s", silent / 1000),
                })),
            )
        }
    }
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
    health_body()
}

fn health_body() -> Json<Value> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_liveness_port_answers_down_once_the_api_runtime_stops_marking() {
        let heartbeat = Heartbeat::new();
        heartbeat.mark();
        assert_eq!(heartbeat.liveness().0, StatusCode::OK);
        // A heartbeat last marked 20 s ago.
        let stale = Heartbeat {
            since: std::time::Instant::now()
                .checked_sub(Duration::from_secs(20))
                .expect("the clock goes back 20 s"),
            last: std::sync::atomic::AtomicU64::new(0),
        };
        let (status, Json(body)) = stale.liveness();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "DOWN");
    }
}
