//! The user read routes of API.md §3, on both edges (`/user/admin-api/*` with delegated
//! tokens, `/user/client-api/*` with client tokens; the [`Caller`] extractor tells them apart):
//! `list`, `retrieve-user-info`, `user-info` and `GET invite-codes`. Every user object is
//! hydrated for the time of reading (subscriptions, API.md §3).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::AppState;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::{DateTime, Utc};
use events::user::editable::SELF_EDITABLE_FIELDS;
use events::user::{InviteCodeView, InviteCodesView};
use events::values::{text_of, FieldValue, ValidationError};
use http_edge::auth::Caller;
use http_edge::body::{Body, Fields, Json};
use http_edge::envelope::{Answer, ApiError, FieldError};
use projections::{invite_codes, users};
use serde_json::Value;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};
use uuid::Uuid;

use crate::consistency::Consistency;
use crate::database;
use crate::error::ReadError;
use crate::paging::{Page, QueryString};
use crate::user_lookups::UserLookups;

/// The most users one `retrieve-user-info` or `user-info` request may name (Liquid's
/// `get-user-max-items`).
pub const MAX_TARGETS: usize = 650;

/// `GET list`: a page of users in `_id` (creation) order, after `offset`, and the total.
/// Keyset paging: users created between two pages land after the last page, so none is
/// skipped or repeated.
#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub, edge = caller.edge.as_str()))]
pub async fn list_users(
    State(state): State<AppState>,
    Extension(reads): Extension<Arc<UserReads>>,
    caller: Caller,
    consistency: Consistency,
    RawQuery(query): RawQuery,
) -> Result<Response, ReadError> {
    let page = Page::from_query(&QueryString::parse(query.as_deref())?)?;
    let database = database(&state)?;
    consistency.wait(database, users::NAME).await?;
    // Two statements, not `$1 IS NULL OR id > $1`: a generic plan of that could not start the
    // index scan at the offset, and deep pages would read every row before them.
    let documents: Vec<String> = match page.after {
        Some(after) => {
            sqlx::query_scalar(
                "SELECT document::text FROM read_models.users WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .bind(after)
            .bind(page.limit)
            .fetch_all(database)
            .await?
        }
        None => {
            sqlx::query_scalar("SELECT document::text FROM read_models.users ORDER BY id LIMIT $1")
                .bind(page.limit)
                .fetch_all(database)
                .await?
        }
    };
    let total = reads.total_users(database).await?;
    users_answer(&state, &documents, Some(total))
}

/// Beyond this many users `totalUsers` is PostgreSQL's estimate, as Liquid's is MongoDB's: an
/// exact count reads every row, which a page of a large directory must not wait for.
const EXACT_COUNT_UP_TO: f32 = 100_000.0;

/// How long the estimate of `totalUsers` is reused: it changes slowly (autovacuum's analyze
/// moves it), and asking for it is a statement of its own on every page.
const ESTIMATE_REUSED_FOR: Duration = Duration::from_secs(1);

/// What the user reads of one router share: id lookups batched across requests, and the
/// last estimate of the number of users.
#[derive(Default)]
pub struct UserReads {
    lookups: UserLookups,
    estimate: Mutex<Option<(Instant, f32)>>,
}

impl UserReads {
    /// `totalUsers`: exact for small directories, the planner's estimate (kept by
    /// autovacuum's analyze) for large ones.
    async fn total_users(&self, database: &sqlx::PgPool) -> Result<i64, ReadError> {
        let reused = *self.estimate.lock().unwrap_or_else(|p| p.into_inner());
        let estimate = match reused {
            Some((at, estimate)) if at.elapsed() < ESTIMATE_REUSED_FOR => Some(estimate),
            _ => {
                let asked = Instant::now();
                let estimate: Option<f32> = sqlx::query_scalar(
                    "SELECT reltuples FROM pg_class WHERE oid = 'read_models.users'::regclass",
                )
                .fetch_optional(database)
                .await?;
                *self.estimate.lock().unwrap_or_else(|p| p.into_inner()) =
                    estimate.map(|estimate| (asked, estimate));
                estimate
            }
        };
        match estimate {
            Some(estimate) if estimate > EXACT_COUNT_UP_TO => Ok(estimate as i64),
            _ => Ok(sqlx::query_scalar("SELECT count(*) FROM read_models.users")
                .fetch_one(database)
                .await?),
        }
    }
}

/// `retrieve-user-info`.
#[derive(Debug, ToSchema)]
pub struct RetrieveUserInfoBody {
    /// `_id`s, or emails (as `field` says). Targets that match nobody are left out.
    #[schema(min_items = 0, max_items = 650)]
    pub targets: Vec<String>,
    pub field: Option<LookupField>,
}

impl Body for RetrieveUserInfoBody {
    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let field: Option<Option<LookupField>> = fields.optional("field");
        let targets: Vec<String> = fields.list("targets", false)?;
        if targets.len() > MAX_TARGETS {
            fields.error(
                "targets",
                Value::from(targets.len()),
                format!("must hold at most {MAX_TARGETS} targets"),
            );
            return None;
        }
        if matches!(field, Some(None | Some(LookupField::Id))) {
            let invalid: Vec<usize> = (0..targets.len())
                .filter(|index| Uuid::parse_str(&targets[*index]).is_err())
                .collect();
            for index in &invalid {
                fields.error(
                    &format!("targets[{index}]"),
                    Value::String(targets[*index].clone()),
                    "is not a valid id",
                );
            }
            if !invalid.is_empty() {
                return None;
            }
        }
        Some(Self {
            targets,
            field: field?,
        })
    }
}

/// What `retrieve-user-info`'s targets are: `_id` (the default), `email` or
/// `sanitizedEmail` (emails match without regard to case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupField {
    Id,
    Email,
    SanitizedEmail,
}

impl LookupField {
    const NAMES: [&str; 3] = ["_id", "email", "sanitizedEmail"];
}

impl FieldValue for LookupField {
    fn from_json(value: &Value) -> Result<Self, ValidationError> {
        match text_of(value)? {
            "_id" => Ok(Self::Id),
            "email" => Ok(Self::Email),
            "sanitizedEmail" => Ok(Self::SanitizedEmail),
            _ => Err(ValidationError::new(
                "field",
                format!("must be one of {}", Self::NAMES.join(", ")),
            )),
        }
    }
}

impl PartialSchema for LookupField {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "What `targets` are: `_id` (the default), `email` or `sanitizedEmail` (emails \
                 match without regard to case).",
            ))
            .enum_values(Some(Self::NAMES))
            .into()
    }
}

impl ToSchema for LookupField {}

/// `POST retrieve-user-info`: `{targets (<= 650), field?: _id|email|sanitizedEmail}` ->
/// `{users}`, in `_id` order; targets that match nobody are left out. Emails match without
/// regard to case.
#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub, edge = caller.edge.as_str()))]
pub async fn retrieve_user_info(
    State(state): State<AppState>,
    Extension(reads): Extension<Arc<UserReads>>,
    caller: Caller,
    consistency: Consistency,
    Json(body): Json<RetrieveUserInfoBody>,
) -> Result<Response, ReadError> {
    let RetrieveUserInfoBody { targets, field } = body;
    let field = field.unwrap_or(LookupField::Id);
    let database = database(&state)?;
    consistency.wait(database, users::NAME).await?;
    let documents: Vec<String> = match field {
        LookupField::Id => {
            let ids: Vec<Uuid> = targets
                .iter()
                .filter_map(|t| Uuid::parse_str(t).ok())
                .collect();
            reads.lookups.by_ids(database, &ids).await?
        }
        LookupField::Email | LookupField::SanitizedEmail => {
            let column = match field {
                LookupField::Email => "lower(email)",
                _ => "sanitized_email",
            };
            // Both sides lowercased by PostgreSQL, as the `lower(email)` index is: one rule
            // (Rust's `to_lowercase` knows more of Unicode than the database's `lower`).
            sqlx::query_scalar(&format!(
                "SELECT document::text FROM read_models.users \
                  WHERE {column} = ANY(ARRAY(SELECT lower(t) FROM unnest($1::text[]) AS t)) \
                  ORDER BY id"
            ))
            .bind(&targets)
            .fetch_all(database)
            .await?
        }
    };
    users_answer(&state, &documents, None)
}

/// `GET user-info?targets=a,b`: the users with these ids (at most 650), in `_id` order.
#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub, edge = caller.edge.as_str()))]
pub async fn user_info(
    State(state): State<AppState>,
    Extension(reads): Extension<Arc<UserReads>>,
    caller: Caller,
    consistency: Consistency,
    RawQuery(query): RawQuery,
) -> Result<Response, ReadError> {
    let query = QueryString::parse(query.as_deref())?;
    let ids = targets_of(query.get("targets"))?;
    let database = database(&state)?;
    consistency.wait(database, users::NAME).await?;
    let documents = reads.lookups.by_ids(database, &ids).await?;
    users_answer(&state, &documents, None)
}

/// `GET /user/me`: the caller's own user object, hydrated as every read hydrates it, and the
/// fields they may change on it.
#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
pub async fn me(
    State(state): State<AppState>,
    Extension(reads): Extension<Arc<UserReads>>,
    caller: Caller,
    consistency: Consistency,
) -> Result<Response, ReadError> {
    let id = Uuid::parse_str(&caller.claims.sub).map_err(ApiError::internal)?;
    let database = database(&state)?;
    consistency.wait(database, users::NAME).await?;
    let documents = reads.lookups.by_ids(database, &[id]).await?;
    let document = documents.first().ok_or_else(ApiError::not_found)?;
    let mut body = String::with_capacity(document.len() + 256);
    body.push_str(r#"{"ok":1,"data":{"user":"#);
    users::shown(document, &state.subscription_tiers, Utc::now(), &mut body)
        .map_err(ApiError::internal)?;
    body.push_str(r#","editableFields":"#);
    body.push_str(&serde_json::to_string(SELF_EDITABLE_FIELDS).map_err(ApiError::internal)?);
    body.push_str("}}");
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The `targets` query parameter: comma-separated user ids.
fn targets_of(raw: Option<&str>) -> Result<Vec<Uuid>, ApiError> {
    let raw = raw.unwrap_or_default();
    let invalid = |msg: String| {
        ApiError::validation(FieldError::query(
            "targets",
            Value::String(raw.to_owned()),
            msg,
        ))
    };
    if raw.trim().is_empty() {
        return Err(invalid("is required".into()));
    }
    let parts: Vec<&str> = raw.split(',').map(str::trim).collect();
    if parts.len() > MAX_TARGETS {
        return Err(invalid(format!("must name at most {MAX_TARGETS} targets")));
    }
    let bad: Vec<&str> = parts
        .iter()
        .copied()
        .filter(|part| Uuid::parse_str(part).is_err())
        .collect();
    if !bad.is_empty() {
        return Err(invalid(format!(
            "these are not valid ids: {}",
            bad.join(", ")
        )));
    }
    Ok(parts
        .iter()
        .filter_map(|part| Uuid::parse_str(part).ok())
        .collect())
}

/// `GET invite-codes?target=<user id>`: the user's invite codes, oldest first, each with the
/// user who redeemed it (`targetId`) once somebody did. An unknown user is 404 (API.md §6).
#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub, edge = caller.edge.as_str()))]
pub async fn invite_codes(
    State(state): State<AppState>,
    caller: Caller,
    consistency: Consistency,
    RawQuery(query): RawQuery,
) -> Result<Response, ReadError> {
    let query = QueryString::parse(query.as_deref())?;
    let target = required_target(&query)?;
    let database = database(&state)?;
    consistency.wait(database, users::NAME).await?;
    consistency.wait(database, invite_codes::NAME).await?;
    require_known_user(database, target).await?;
    let rows: Vec<InviteCodeRow> = sqlx::query_as(
        "SELECT code, target_id, created_at, updated_at FROM read_models.invite_codes
         WHERE owner = $1 ORDER BY created_at, code",
    )
    .bind(target)
    .fetch_all(database)
    .await?;
    let invite_codes = rows
        .into_iter()
        .map(|row| InviteCodeView::new(row.code, row.target_id, &row.created_at, &row.updated_at))
        .collect();
    Ok(Answer::ok(InviteCodesView { invite_codes }).into_response())
}

/// The `target` user id of a query string (400 when missing or not an id).
pub(crate) fn required_target(query: &QueryString) -> Result<Uuid, ApiError> {
    match query.get("target").map(str::trim) {
        None | Some("") => Err(ApiError::validation(FieldError::query(
            "target",
            Value::Null,
            "is required",
        ))),
        Some(target) => Uuid::parse_str(target).map_err(|_| {
            ApiError::validation(FieldError::query(
                "target",
                Value::String(target.to_owned()),
                "is not a valid id",
            ))
        }),
    }
}

/// 404 unless the users read model has `id`.
pub(crate) async fn require_known_user(database: &sqlx::PgPool, id: Uuid) -> Result<(), ReadError> {
    let known: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM read_models.users WHERE id = $1)")
            .bind(id)
            .fetch_one(database)
            .await?;
    if known {
        Ok(())
    } else {
        Err(ApiError::not_found().into())
    }
}

/// One row of `read_models.invite_codes`.
#[derive(sqlx::FromRow)]
struct InviteCodeRow {
    code: String,
    target_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// `{"ok":1,"data":{"users":[...]}}` (with `totalUsers` for `list`) around stored user
/// objects, each hydrated for now as its text is copied in (`projections::users::shown`): a
/// page of users is never parsed and re-serialised here.
fn users_answer(
    state: &AppState,
    documents: &[String],
    total: Option<i64>,
) -> Result<Response, ReadError> {
    let tiers = &state.subscription_tiers;
    let now = Utc::now();
    let mut body =
        String::with_capacity(documents.iter().map(|d| d.len() + 32).sum::<usize>() + 64);
    body.push_str(r#"{"ok":1,"data":{"users":["#);
    for (i, document) in documents.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        users::shown(document, tiers, now, &mut body).map_err(ApiError::internal)?;
    }
    body.push(']');
    if let Some(total) = total {
        body.push_str(&format!(r#","totalUsers":{total}"#));
    }
    body.push_str("}}");
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
