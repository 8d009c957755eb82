//! `GET /health`: the process is up and answering.

use axum::Json;
use serde_json::{json, Value};

use crate::openapi::{schemas, Doc, Routes};

pub fn routes() -> Routes {
    Routes::new().route(
        Doc::get("/health", "Liveness")
            .public()
            .plain::<schemas::Done>("application/json", "the process is up: `{\"ok\":1}`"),
        health,
    )
}

async fn health() -> Json<Value> {
    Json(json!({ "ok": 1 }))
}
