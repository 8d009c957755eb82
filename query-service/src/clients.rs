//! `GET /client/admin-api/list` (API.md §4): a page of applications in `_id` order, without
//! secrets (the read model never holds one).

use crate::AppState;
use axum::extract::{RawQuery, State};
use http_edge::auth::Caller;
use http_edge::envelope::Answer;
use projections::applications;
use serde_json::{json, Value};

use crate::consistency::Consistency;
use crate::database;
use crate::error::ReadError;
use crate::paging::{Page, QueryString};

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
pub async fn list_clients(
    State(state): State<AppState>,
    caller: Caller,
    consistency: Consistency,
    RawQuery(query): RawQuery,
) -> Result<Answer, ReadError> {
    let page = Page::from_query(&QueryString::parse(query.as_deref())?)?;
    let database = database(&state)?;
    consistency.wait(database, applications::NAME).await?;
    let clients: Vec<Value> = sqlx::query_scalar(
        "SELECT document FROM read_models.applications
         WHERE $1::uuid IS NULL OR id > $1 ORDER BY id LIMIT $2",
    )
    .bind(page.after)
    .bind(page.limit)
    .fetch_all(database)
    .await?;
    Ok(Answer::ok(json!({ "clients": clients })))
}
