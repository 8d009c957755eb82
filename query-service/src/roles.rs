//! `GET /roles/list` (API.md §5): every live role, most powerful first.

use crate::AppState;
use axum::extract::State;
use http_edge::auth::Caller;
use http_edge::envelope::Answer;
use projections::roles;
use serde_json::{json, Value};

use crate::consistency::Consistency;
use crate::database;
use crate::error::ReadError;

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
pub async fn list_roles(
    State(state): State<AppState>,
    caller: Caller,
    consistency: Consistency,
) -> Result<Answer, ReadError> {
    let database = database(&state)?;
    consistency.wait(database, roles::NAME).await?;
    let roles: Vec<Value> = sqlx::query_scalar(
        "SELECT document FROM read_models.roles
         ORDER BY (document->>'ranking')::bigint, id",
    )
    .fetch_all(database)
    .await?;
    Ok(Answer::ok(json!({ "roles": roles })))
}
