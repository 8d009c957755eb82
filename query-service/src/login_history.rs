//! Sign-in attempts (`projections::login_history`): `GET /user/admin-api/login-history` and
//! `/user/client-api/login-history` for a `target` user, `GET /user/login-history` for the
//! caller's own. Newest first; `limit` as `list` reads it; `offset` the `_id` of the last record
//! of the previous page (keyset: no record is skipped or repeated while new ones arrive).

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use http_edge::auth::Caller;
use http_edge::envelope::{Answer, ApiError};
use projections::{login_history, users};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::consistency::Consistency;
use crate::database;
use crate::error::ReadError;
use crate::paging::{Page, QueryString};
use crate::users::{require_known_user, required_target};
use crate::AppState;

/// One sign-in attempt, in Liquid's shape.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct LoginRecord {
    #[serde(rename = "_id")]
    #[schema(value_type = String, format = "uuid")]
    pub id: Uuid,
    /// The user who signed in (or tried).
    #[schema(value_type = String, format = "uuid")]
    pub target_id: Uuid,
    pub success: bool,
    /// Why it was refused: `password_rejected`, `banned` or `locked`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `password`.
    pub source: String,
    /// The application signed in to, when known.
    pub client_id: Option<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

/// `login-history`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginRecords {
    pub records: Vec<LoginRecord>,
}

/// `GET /user/{admin,client}-api/login-history?target=`.
pub async fn of_target(
    State(state): State<AppState>,
    _: Caller,
    consistency: Consistency,
    RawQuery(query): RawQuery,
) -> Result<Response, ReadError> {
    let query = QueryString::parse(query.as_deref())?;
    let target = required_target(&query)?;
    let page = Page::from_query(&query)?;
    let database = database(&state)?;
    consistency.wait(database, users::NAME).await?;
    consistency.wait(database, login_history::NAME).await?;
    require_known_user(database, target).await?;
    answer(database, target, page).await
}

/// `GET /user/login-history`: the caller's own attempts.
pub async fn own(
    State(state): State<AppState>,
    caller: Caller,
    consistency: Consistency,
    RawQuery(query): RawQuery,
) -> Result<Response, ReadError> {
    let query = QueryString::parse(query.as_deref())?;
    let page = Page::from_query(&query)?;
    let user = Uuid::parse_str(&caller.claims.sub).map_err(ApiError::internal)?;
    let database = database(&state)?;
    consistency.wait(database, login_history::NAME).await?;
    answer(database, user, page).await
}

async fn answer(database: &PgPool, user: Uuid, page: Page) -> Result<Response, ReadError> {
    let records: Vec<LoginRecord> = sqlx::query_as(
        "SELECT id, user_id AS target_id, success, reason, source, client_id, ip_address,
                user_agent, created_at
           FROM read_models.login_history
          WHERE user_id = $1 AND ($2::uuid IS NULL OR id < $2)
          ORDER BY id DESC
          LIMIT $3",
    )
    .bind(user)
    .bind(page.after)
    .bind(page.limit)
    .fetch_all(database)
    .await?;
    Ok(Answer::ok(LoginRecords { records }).into_response())
}
