//! The follow lists and statuses a signed-in person reads (delegated, session
//! `delegated:social:follow:read`, as Liquid checks it):
//! - `GET /user/follow-status?target=` and `GET /user/follow-status/{userId}`: whether you
//!   follow the user: `{following}`, or `{following: false, requested: true}` while your
//!   request waits;
//! - `GET /user/following`, `GET /user/followers`: whom you follow, who follows you;
//! - `GET /user/{userId}/following`, `GET /user/{userId}/followers`: the same of another user,
//!   refused with 403 `Blocked` when they block you, and with 403 `Forbidden` (`reason:
//!   not_following`) when their account is private and you do not follow it (you always see
//!   your own lists, where Liquid refuses the owner of a private account).
//!
//! - `GET /user/follow-requests`: the requests waiting on you, oldest first, every one up to
//!   1000 (as Liquid lists them all), `offset` continuing after a page's last `_id`.
//!
//! All of them are Liquid's `privilege.can-use-follow-apis` part of the API
//! ([`Feature::FollowApis`]): turned off, they answer 404.
//!
//! Pages hold accepted follows, newest first, as Liquid's: `{records: [{_id, createdAt,
//! target | source}]}`, at most `limit` (10 by default, 1000 at most). `offset` continues after
//! the last record of the previous page: its `_id` (a keyset: nothing is skipped or repeated
//! while the graph changes), or, as Liquid's callers send it, its `createdAt`. Records of
//! users who block you are left out before the page is cut, so a page is short only at the
//! end. Each user is shown as on a search result ([`public_view`]): one you do not follow hides
//! their contact details, standing and credits.

use axum::extract::{Path, RawQuery, State};
use chrono::{DateTime, Utc};
use events::user::view::format_date;
use http_edge::auth::{Caller, Edge};
use http_edge::envelope::{Answer, ApiError, FieldError};
use http_edge::{Doc, Feature, Routes};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::consistency::Consistency;
use crate::database;
use crate::error::ReadError;
use crate::openapi::{FollowRequestRecords, FollowState, PersonFollowRecords};
use crate::paging::{limit, limit_within, QueryString, MAX_LIMIT};
use crate::profiles::{write_public_view, Relation, Seen};
use crate::social::{caught_up, user_id};
use crate::AppState;

const FOLLOW_READ: &str = "delegated:social:follow:read";

pub fn router() -> Routes<AppState> {
    let doc = |path: &str, summary: &str| {
        Doc::get(path, summary)
            .read()
            .session(Edge::Admin, FOLLOW_READ)
            .part_of(Feature::FollowApis)
    };
    let status = |doc: Doc| {
        doc.error(
            400,
            "ClientInputError",
            "no `target`, a `target` that is not an id, or yourself",
        )
        .error(
            404,
            "NotFound",
            "no user has this id (or the path's is not an id)",
        )
        .ok::<FollowState>("`{following}`, with `requested: true` while a request waits")
    };
    let page = |doc: Doc| {
        doc.query(
            "limit",
            false,
            "records per page (10 when absent, 1000 at most)",
        )
        .query(
            "offset",
            false,
            "the `_id` (or `createdAt`) of the last record of the previous page",
        )
        .error(
            400,
            "ClientInputError",
            "an `offset` that is neither an id nor a date",
        )
        .ok::<PersonFollowRecords>("accepted follows, newest first")
    };
    let other = |doc: Doc| {
        page(doc.path_parameter("userId", "the user's `_id`"))
            .error(403, "Blocked", "the user blocks you")
            .error(
                403,
                "Forbidden",
                "the account is private and you do not follow it",
            )
            .error(
                404,
                "NotFound",
                "no user has this `_id` (or it is not an id)",
            )
    };
    Routes::new()
        .route(
            status(doc("/user/follow-status", "Whether you follow a user")).query(
                "target",
                true,
                "the user's `_id`",
            ),
            follow_status,
        )
        .route(
            status(
                doc("/user/follow-status/{userId}", "Whether you follow a user")
                    .path_parameter("userId", "the user's `_id`"),
            ),
            follow_status_of,
        )
        .route(
            doc(
                "/user/follow-requests",
                "The follow requests waiting on you",
            )
            .query(
                "limit",
                false,
                "requests per page (all, up to 1000, when absent)",
            )
            .query(
                "offset",
                false,
                "the `_id` of the last request of the previous page",
            )
            .error(400, "ClientInputError", "an `offset` that is not an id")
            .ok::<FollowRequestRecords>("the requests, oldest first"),
            follow_requests,
        )
        .route(
            page(doc("/user/following", "Whom you follow")),
            own_list::<false>,
        )
        .route(
            page(doc("/user/followers", "Who follows you")),
            own_list::<true>,
        )
        .route(
            other(doc("/user/{userId}/following", "Whom a user follows")),
            list_of::<false>,
        )
        .route(
            other(doc("/user/{userId}/followers", "Who follows a user")),
            list_of::<true>,
        )
}

/// The caller's user id.
fn viewer(caller: &Caller) -> Result<Uuid, ReadError> {
    Uuid::parse_str(&caller.claims.sub)
        .map_err(|_| ApiError::Unauthorized("the token is not a user's").into())
}

/// The user of the path. A segment that is no id names nobody: 404, as for an unknown id (so
/// `/user/admin-api/followers`, which the admin edge does not serve, is not found).
fn path_id(raw: &str) -> Result<Uuid, ReadError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found().into())
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
async fn follow_status(
    State(state): State<AppState>,
    caller: Caller,
    consistency: Consistency,
    RawQuery(query): RawQuery,
) -> Result<Answer, ReadError> {
    let query = QueryString::parse(query.as_deref())?;
    let target = user_id(&query, "target").map_err(ApiError::validation)?;
    status(&state, &caller, consistency, target).await
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
async fn follow_status_of(
    State(state): State<AppState>,
    caller: Caller,
    consistency: Consistency,
    Path(user_id): Path<String>,
) -> Result<Answer, ReadError> {
    status(&state, &caller, consistency, path_id(&user_id)?).await
}

async fn status(
    state: &AppState,
    caller: &Caller,
    consistency: Consistency,
    target: Uuid,
) -> Result<Answer, ReadError> {
    let source = viewer(caller)?;
    if source == target {
        return Err(ApiError::validation(FieldError::query(
            "target",
            Value::String(target.to_string()),
            "is yourself",
        ))
        .into());
    }
    let database = database(state)?;
    caught_up(database, consistency).await?;
    let row: Option<(Option<bool>,)> = sqlx::query_as(
        "SELECT (SELECT approved FROM read_models.follows WHERE source = $1 AND target = u.id)
           FROM read_models.users u WHERE u.id = $2",
    )
    .bind(source)
    .bind(target)
    .fetch_optional(database)
    .await?;
    let (approved,) = row.ok_or_else(ApiError::not_found)?;
    Ok(Answer::ok(match approved {
        Some(true) => json!({ "following": true }),
        Some(false) => json!({ "following": false, "requested": true }),
        None => json!({ "following": false }),
    }))
}

/// `GET /user/follow-requests`: the requests waiting on the caller, oldest first (as Liquid
/// lists them), all of them up to 1000 unless `limit` asks for fewer; `offset`, the last `_id`
/// of a page, continues after it.
#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
async fn follow_requests(
    State(state): State<AppState>,
    caller: Caller,
    consistency: Consistency,
    RawQuery(query): RawQuery,
) -> Result<Answer, ReadError> {
    let me = viewer(&caller)?;
    let query = QueryString::parse(query.as_deref())?;
    let limit = limit_within(query.get("limit"), MAX_LIMIT, MAX_LIMIT);
    let after = match offset(&query)? {
        Offset::Start => None,
        Offset::After(id) => Some(id),
        Offset::Before(_) => {
            return Err(ApiError::validation(FieldError::query(
                "offset",
                Value::String(query.get("offset").unwrap_or_default().to_owned()),
                "is not an id",
            ))
            .into())
        }
    };
    let database = database(&state)?;
    caught_up(database, consistency).await?;
    let rows: Vec<(Uuid, DateTime<Utc>, String, bool)> = sqlx::query_as(
        "SELECT f.id, f.created_at, u.document::text,
                EXISTS (SELECT 1 FROM read_models.follows v
                         WHERE v.source = $1 AND v.target = u.id AND v.approved)
           FROM read_models.follows f JOIN read_models.users u ON u.id = f.source
          WHERE f.target = $1 AND NOT f.approved AND ($2::uuid IS NULL OR f.id > $2)
          ORDER BY f.id LIMIT $3",
    )
    .bind(me)
    .bind(after)
    .bind(limit)
    .fetch_all(database)
    .await?;
    let records = records(&state, rows, "source", |id, at| {
        format!(r#""_id":"{id}","approved":false,"createdAt":"{at}","updatedAt":"{at}""#)
    })?;
    Ok(Answer::ok_text(records))
}

/// Which end of a user's follows a page lists.
#[derive(Debug, Clone, Copy)]
enum Side {
    Followers,
    Following,
}

impl Side {
    /// `true`: the followers page, `false`: the following page (a handler's const parameter).
    fn of(followers: bool) -> Self {
        if followers {
            Side::Followers
        } else {
            Side::Following
        }
    }
}

/// `GET /user/followers` (`FOLLOWERS`) or `GET /user/following`: the caller's own.
#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
async fn own_list<const FOLLOWERS: bool>(
    State(state): State<AppState>,
    caller: Caller,
    consistency: Consistency,
    RawQuery(query): RawQuery,
) -> Result<Answer, ReadError> {
    let owner = viewer(&caller)?;
    let side = Side::of(FOLLOWERS);
    page(&state, &caller, consistency, query.as_deref(), owner, side).await
}

/// `GET /user/{userId}/followers` (`FOLLOWERS`) or `/following`: another user's.
#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
async fn list_of<const FOLLOWERS: bool>(
    State(state): State<AppState>,
    caller: Caller,
    consistency: Consistency,
    Path(user_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Answer, ReadError> {
    let owner = path_id(&user_id)?;
    let side = Side::of(FOLLOWERS);
    page(&state, &caller, consistency, query.as_deref(), owner, side).await
}

/// Where a page starts: after the record with this `_id`, or before this `createdAt`.
enum Offset {
    Start,
    After(Uuid),
    Before(DateTime<Utc>),
}

fn offset(query: &QueryString) -> Result<Offset, ApiError> {
    let Some(raw) = query
        .get("offset")
        .map(str::trim)
        .filter(|raw| !raw.is_empty())
    else {
        return Ok(Offset::Start);
    };
    if let Ok(id) = Uuid::parse_str(raw) {
        return Ok(Offset::After(id));
    }
    DateTime::parse_from_rfc3339(raw)
        .map(|at| Offset::Before(at.with_timezone(&Utc)))
        .map_err(|_| {
            ApiError::validation(FieldError::query(
                "offset",
                Value::String(raw.to_owned()),
                "is neither an id nor a date",
            ))
        })
}

async fn page(
    state: &AppState,
    caller: &Caller,
    consistency: Consistency,
    query: Option<&str>,
    owner: Uuid,
    side: Side,
) -> Result<Answer, ReadError> {
    let viewer = viewer(caller)?;
    let query = QueryString::parse(query)?;
    let offset = offset(&query)?;
    let limit = limit(query.get("limit"));
    let database = database(state)?;
    caught_up(database, consistency).await?;
    if owner != viewer {
        let row: Option<(bool, bool, bool)> = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM read_models.blocks WHERE source = u.id AND target = $2),
                    (u.document->>'isPrivate')::boolean,
                    EXISTS (SELECT 1 FROM read_models.follows
                             WHERE source = $2 AND target = u.id AND approved)
               FROM read_models.users u WHERE u.id = $1",
        )
        .bind(owner)
        .bind(viewer)
        .fetch_optional(database)
        .await?;
        let (blocks, private, follows) = row.ok_or_else(ApiError::not_found)?;
        if blocks {
            return Err(ApiError::Blocked.into());
        }
        if private && !follows {
            return Err(ApiError::NotFollowing.into());
        }
    }
    // The page's follows, each with the other user's object and whether the viewer follows
    // them; those whose other user blocks the viewer are left out before the page is cut.
    let (mine, other, shown_as) = match side {
        Side::Followers => ("target", "source", "source"),
        Side::Following => ("source", "target", "target"),
    };
    // One statement per kind of offset, the limit written in (a bounded integer): PostgreSQL
    // then keeps a generic plan for each kind and limit (a limit is one statement of the
    // connection's cache), where `$3 IS NULL OR f.id < $3` and `LIMIT $5`
    // made it plan every page anew (a generic plan of those scans every follow of the user).
    let cut = match offset {
        Offset::Start => "",
        Offset::After(_) => "AND f.id < $3",
        Offset::Before(_) => "AND f.created_at < $3",
    };
    let sql = format!(
        "SELECT f.id, f.created_at, u.document::text,
                EXISTS (SELECT 1 FROM read_models.follows v
                         WHERE v.source = $2 AND v.target = u.id AND v.approved)
           FROM read_models.follows f JOIN read_models.users u ON u.id = f.{other}
          WHERE f.{mine} = $1 AND f.approved {cut}
            AND NOT EXISTS (SELECT 1 FROM read_models.blocks b
                             WHERE b.source = f.{other} AND b.target = $2)
          ORDER BY f.id DESC LIMIT {limit}"
    );
    let query = sqlx::query_as(&sql).bind(owner).bind(viewer);
    let query = match offset {
        Offset::Start => query,
        Offset::After(id) => query.bind(id),
        Offset::Before(at) => query.bind(at),
    };
    let rows: Vec<(Uuid, DateTime<Utc>, String, bool)> = query.fetch_all(database).await?;
    let records = records(state, rows, shown_as, |id, at| {
        format!(r#""_id":"{id}","createdAt":"{at}""#)
    })?;
    Ok(Answer::ok_text(records))
}

/// `{"records":[...]}` of `rows` (a follow's `_id`, its creation, the other user's stored
/// object, whether the viewer follows them), as JSON text: each record's own fields as `head`
/// writes them from the `_id` and the creation time, then the user under `shown_as`, as a
/// search result shows them.
fn records(
    state: &AppState,
    rows: Vec<(Uuid, DateTime<Utc>, String, bool)>,
    shown_as: &str,
    head: impl Fn(&Uuid, &str) -> String,
) -> Result<String, ApiError> {
    let mut text =
        String::with_capacity(16 + rows.iter().map(|row| row.2.len() + 96).sum::<usize>());
    text.push_str(r#"{"records":["#);
    for (n, (id, created_at, document, follows)) in rows.into_iter().enumerate() {
        if n > 0 {
            text.push(',');
        }
        text.push('{');
        text.push_str(&head(&id, &format_date(&created_at)));
        text.push_str(&format!(r#","{shown_as}":"#));
        let (tiers, relation) = (&state.subscription_tiers, Relation { follows });
        write_public_view(&document, tiers, relation, Seen::SearchResult, &mut text)?;
        text.push('}');
    }
    text.push_str("]}");
    Ok(text)
}
