//! `GET /roles/list` (API.md §5): every live role, most powerful first.

use axum::extract::State;
use command_service::auth::caller::insufficient;
use command_service::auth::Caller;
use command_service::envelope::Answer;
use command_service::AppState;
use projections::roles;
use serde_json::{json, Value};

use crate::consistency::Consistency;
use crate::database;
use crate::error::ReadError;

/// The scope `/roles/list` needs (shared-session: the token and its client both grant it, or
/// the caller is a super_admin).
const ROLES_READ: &str = "delegated:roles:read";

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
pub async fn list_roles(
    State(state): State<AppState>,
    caller: Caller,
    consistency: Consistency,
) -> Result<Answer, ReadError> {
    if !(caller.session(ROLES_READ) || caller.is_super_admin()) {
        return Err(insufficient(ROLES_READ).into());
    }
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
