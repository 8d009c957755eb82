//! The social read routes of API.md §3, on the client edge only (client tokens; the admin edge
//! does not serve them): `block-status`, `follow-status`, `user-followers` (alias `followers`)
//! and `user-following` (alias `following`), read from the `social` read model's `follows` and
//! `blocks` tables. Until the domain has follow and block events, those tables are empty and
//! the routes answer "not blocked", "not following" and empty pages.
//!
//! Every user named in the query must exist (404 NotFound otherwise, as API.md §6 does for
//! writes); the users in a page are the contract's user object, hydrated for the time of
//! reading like every other read of a user.

use crate::AppState;
use axum::extract::{RawQuery, State};
use chrono::{DateTime, Utc};
use events::user::view::format_date;
use events::user::UserView;
use http_edge::auth::{Caller, Edge};
use http_edge::envelope::{Answer, ApiError, FieldError};
use http_edge::{Doc, Feature, Routes};
use projections::{social, users};
use serde_json::{json, Value};
use sqlx::types::Json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::consistency::Consistency;
use crate::database;
use crate::error::ReadError;
use crate::openapi::{BlockStatus, FollowRecords, FollowStatus};
use crate::paging::{Page, QueryString};

/// The session scope of `block-status`.
const BLOCK_READ: &str = "client:social:block:read";
/// The session scope of `follow-status`, `followers` and `following`.
const FOLLOW_READ: &str = "client:social:follow:read";

/// The social routes, on the client edge only (API.md §3: "no" in the admin column), with
/// their documentation.
pub fn router() -> Routes<AppState> {
    let status = |path: &str, summary: &str, scope: &str| {
        Doc::get(format!("/user/client-api/{path}"), summary)
            .read()
            .session(Edge::Client, scope)
            .query(
                "source",
                true,
                "the user whose relation is asked about (`_id`)",
            )
            .query("target", true, "the other user (`_id`)")
            .error(
                400,
                "ClientInputError",
                "`source` or `target` is missing or not an id",
            )
            .error(404, "NotFound", "no user has `source` or `target`")
    };
    let page = |path: &str, summary: &str| {
        Doc::get(format!("/user/client-api/{path}"), summary)
            .read()
            .session(Edge::Client, FOLLOW_READ)
            .query("target", true, "the user whose follows are listed (`_id`)")
            .paged()
            .error(
                400,
                "ClientInputError",
                "`target` or `offset` is missing or not an id",
            )
            .error(404, "NotFound", "no user has `target`")
            .ok::<FollowRecords>("a page of follows in creation order")
            .part_of(Feature::FollowApis)
    };
    let who_follows = "Who follows a user (pending requests have `approved: false`)";
    let whom_followed = "Whom a user follows";
    Routes::new()
        .route(
            status(
                "block-status",
                "Whether `source` blocks `target`",
                BLOCK_READ,
            )
            .ok::<BlockStatus>("`{blocked}`"),
            block_status,
        )
        .route(
            status(
                "follow-status",
                "Whether `source` follows `target` (approved follows only)",
                FOLLOW_READ,
            )
            .ok::<FollowStatus>("`{following}`")
            .part_of(Feature::FollowApis),
            follow_status,
        )
        .route(page("user-followers", who_follows), followers)
        .route(page("followers", who_follows), followers)
        .route(page("user-following", whom_followed), following)
        .route(page("following", whom_followed), following)
}

/// `GET block-status?source=&target=` -> `{blocked}`: whether `source` blocks `target`.
#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
pub async fn block_status(
    State(state): State<AppState>,
    caller: Caller,
    consistency: Consistency,
    RawQuery(query): RawQuery,
) -> Result<Answer, ReadError> {
    let (source, target) = source_and_target(&QueryString::parse(query.as_deref())?)?;
    let database = database(&state)?;
    caught_up(database, consistency).await?;
    require_users(database, &[source, target]).await?;
    let blocked: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM read_models.blocks WHERE source = $1 AND target = $2)",
    )
    .bind(source)
    .bind(target)
    .fetch_one(database)
    .await?;
    Ok(Answer::ok(json!({ "blocked": blocked })))
}

/// `GET follow-status?source=&target=` -> `{following}`: whether `source` follows `target`,
/// counting approved follows only (a pending request is not following yet).
#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
pub async fn follow_status(
    State(state): State<AppState>,
    caller: Caller,
    consistency: Consistency,
    RawQuery(query): RawQuery,
) -> Result<Answer, ReadError> {
    let (source, target) = source_and_target(&QueryString::parse(query.as_deref())?)?;
    let database = database(&state)?;
    caught_up(database, consistency).await?;
    require_users(database, &[source, target]).await?;
    let following: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM read_models.follows
                         WHERE source = $1 AND target = $2 AND approved)",
    )
    .bind(source)
    .bind(target)
    .fetch_one(database)
    .await?;
    Ok(Answer::ok(json!({ "following": following })))
}

/// `GET user-followers` / `followers` `?target=&limit=&offset=` ->
/// `{records:[{_id, createdAt, approved, source:{user}}]}`: who follows `target` (pending
/// requests included, `approved: false`), in `_id` (creation) order after `offset`.
#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
pub async fn followers(
    State(state): State<AppState>,
    caller: Caller,
    consistency: Consistency,
    RawQuery(query): RawQuery,
) -> Result<Answer, ReadError> {
    follows_page(&state, consistency, query.as_deref(), Side::Followers).await
}

/// `GET user-following` / `following` `?target=&limit=&offset=` ->
/// `{records:[{_id, createdAt, approved, target:{user}}]}`: whom `target` follows, as
/// [`followers`] pages.
#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
pub async fn following(
    State(state): State<AppState>,
    caller: Caller,
    consistency: Consistency,
    RawQuery(query): RawQuery,
) -> Result<Answer, ReadError> {
    follows_page(&state, consistency, query.as_deref(), Side::Following).await
}

/// Which end of the follows of the queried user a page lists.
#[derive(Debug, Clone, Copy)]
enum Side {
    /// The follows whose target is the user; each record shows the follower (`source`).
    Followers,
    /// The follows whose source is the user; each record shows the followed (`target`).
    Following,
}

impl Side {
    /// The page's rows, each with the other end's user document. A follow whose other end is
    /// not in the users read model yet (the two projectors move independently) shows `null`,
    /// as a populate of a missing reference does, rather than vanishing from the page.
    fn query(self) -> &'static str {
        match self {
            Side::Followers => {
                "SELECT f.id, f.created_at, f.approved, u.document
                   FROM read_models.follows f LEFT JOIN read_models.users u ON u.id = f.source
                  WHERE f.target = $1 AND ($2::uuid IS NULL OR f.id > $2)
                  ORDER BY f.id LIMIT $3"
            }
            Side::Following => {
                "SELECT f.id, f.created_at, f.approved, u.document
                   FROM read_models.follows f LEFT JOIN read_models.users u ON u.id = f.target
                  WHERE f.source = $1 AND ($2::uuid IS NULL OR f.id > $2)
                  ORDER BY f.id LIMIT $3"
            }
        }
    }

    /// The key under which a record shows the other end's user.
    fn shown_as(self) -> &'static str {
        match self {
            Side::Followers => "source",
            Side::Following => "target",
        }
    }
}

/// One row of a followers or following page.
#[derive(sqlx::FromRow)]
struct FollowRow {
    id: Uuid,
    created_at: DateTime<Utc>,
    approved: bool,
    document: Option<Json<UserView>>,
}

async fn follows_page(
    state: &AppState,
    consistency: Consistency,
    query: Option<&str>,
    side: Side,
) -> Result<Answer, ReadError> {
    let query = QueryString::parse(query)?;
    let (target, page) = match (user_id(&query, "target"), Page::from_query(&query)) {
        (Ok(target), Ok(page)) => (target, page),
        (target, page) => {
            let mut errors: Vec<FieldError> = target.err().into_iter().collect();
            match page {
                Ok(_) => {}
                Err(ApiError::Validation(invalid)) => errors.extend(invalid),
                Err(other) => return Err(other.into()),
            }
            return Err(ApiError::Validation(errors).into());
        }
    };
    let database = database(state)?;
    caught_up(database, consistency).await?;
    require_users(database, &[target]).await?;
    let rows: Vec<FollowRow> = sqlx::query_as(side.query())
        .bind(target)
        .bind(page.after)
        .bind(page.limit)
        .fetch_all(database)
        .await?;
    let now = Utc::now();
    let tiers = &state.subscription_tiers;
    let records: Vec<Value> = rows
        .into_iter()
        .map(|row| {
            let user = row.document.map(|Json(view)| view.hydrated(tiers, now));
            let mut record = json!({
                "_id": row.id,
                "createdAt": format_date(&row.created_at),
                "approved": row.approved,
            });
            record[side.shown_as()] = json!(user);
            record
        })
        .collect();
    Ok(Answer::ok(json!({ "records": records })))
}

/// `source` and `target`, both required user ids; every invalid one reported.
fn source_and_target(query: &QueryString) -> Result<(Uuid, Uuid), ApiError> {
    match (user_id(query, "source"), user_id(query, "target")) {
        (Ok(source), Ok(target)) => Ok((source, target)),
        (source, target) => Err(ApiError::Validation(
            source.err().into_iter().chain(target.err()).collect(),
        )),
    }
}

/// The required user id `key` of the query string.
pub(crate) fn user_id(query: &QueryString, key: &str) -> Result<Uuid, FieldError> {
    match query.get(key).map(str::trim) {
        None | Some("") => Err(FieldError::query(key, Value::Null, "is required")),
        Some(raw) => Uuid::parse_str(raw).map_err(|_| {
            FieldError::query(key, Value::String(raw.to_owned()), "is not a valid id")
        }),
    }
}

/// Read-your-writes over both read models these routes read.
pub(crate) async fn caught_up(
    database: &PgPool,
    consistency: Consistency,
) -> Result<(), ReadError> {
    consistency.wait(database, users::NAME).await?;
    consistency.wait(database, social::NAME).await
}

/// 404 NotFound unless every one of `ids` is a user.
async fn require_users(database: &PgPool, ids: &[Uuid]) -> Result<(), ReadError> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let known: i64 =
        sqlx::query_scalar("SELECT count(*) FROM read_models.users WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_one(database)
            .await?;
    if known as usize == ids.len() {
        Ok(())
    } else {
        Err(ApiError::not_found().into())
    }
}
