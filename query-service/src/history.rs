//! History and point-in-time state, for auditors: `GET /user/{admin,client}-api/history`,
//! `GET /roles/admin-api/history` and `GET /client/admin-api/history`, with `target=<id>`.
//!
//! Unlike every other read route, these read the event log itself (the audit trail), not a read
//! model: a read model only knows the present. Without `at` the answer is a page of the
//! target's events in stream order, each with its type, time, actor, correlation and the fields
//! it changed, secrets redacted ([`events::audit::payload`]). With `at` (a time or a log
//! position) it is the target as it was then, folded from its stream by the same code the read
//! models use, so it has exactly the shape `list` answers.
//!
//! Query: `target` (required), `at`, `from` (the revision to start the page at, default 0),
//! `limit` (default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`]). Answers
//! `{events: [...], next: <revision of the next page> | null}` or, with `at`,
//! `{<user|role|client>: {...}, revision, position, occurredAt}`.

use crate::AppState;
use axum::extract::{RawQuery, State};
use chrono::{DateTime, SecondsFormat, Utc};
use events::application::Application;
use events::application::ApplicationView;
use events::audit::{self, ChainHash, Moment};
use events::metadata::{decode, Decoded};
use events::role::Role;
use events::role::RoleView;
use events::sign_in::{SignInEvent, SignIns};
use events::social::{Pair, Social, SocialEvent};
use events::store::RecordedEvent;
use events::user::{User, UserView};
use events::values::{ApplicationId, RoleId, UserId, ValidationError};
use events::Aggregate;
use http_edge::auth::Caller;
use http_edge::envelope::{Answer, ApiError, FieldError, FieldErrors};
use serde_json::{json, Value};

use crate::error::ReadError;
use crate::paging::QueryString;

/// Events per page when `limit` is missing or unusable.
pub const DEFAULT_LIMIT: i64 = 100;
/// The most events one page holds.
pub const MAX_LIMIT: i64 = 1000;

/// `GET /user/{admin,client}-api/history`: shared `E:profile:history:read`. A read, like
/// `retrieve-user-info`: no ranking check.
#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub, edge = caller.edge.as_str()))]
///
/// With `stream=signin` it pages the user's sign-in attempts instead (their own stream,
/// `signin-<id>`, kept apart so that the user's stream stays small), and with
/// `stream=relation&with=<id>` the facts between the user and another (their relation stream),
/// in the same shape.
pub async fn user_history(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Answer, ReadError> {
    let parsed = QueryString::parse(query.as_deref())?;
    match parsed.get("stream").map(str::trim) {
        None | Some("") | Some("user") => history::<User>(&state, query.as_deref()).await,
        Some("signin") => sign_in_history(&state, &parsed).await,
        Some("relation") => relation_history(&state, &parsed).await,
        Some(other) => Err(refused(FieldError::query(
            "stream",
            json!(other),
            "must be `user` (the default), `signin` or `relation`",
        ))),
    }
}

/// The facts between the user and the user `with` (follows, follow requests, blocks: their
/// relation's stream, `relation-<lower id>-<higher id>`), a page in stream order; empty for two
/// users who never had one.
async fn relation_history(state: &AppState, query: &QueryString) -> Result<Answer, ReadError> {
    let parsed = HistoryQuery::parse(query, UserId::parse)?;
    let with = match query.get("with").map(str::trim) {
        None | Some("") => Err(FieldError::query(
            "with",
            Value::Null,
            "is required with `stream=relation`",
        )),
        Some(with) => {
            UserId::parse(with).map_err(|e| FieldError::query("with", json!(with), e.to_string()))
        }
    }
    .map_err(refused)?;
    if parsed.at.is_some() {
        return Err(refused(FieldError::query(
            "at",
            json!(parsed.at.map(|at| at.to_string())),
            "applies to the user's own stream, not to `stream=relation`",
        )));
    }
    let pair = Pair::of(parsed.target, with).map_err(|_| {
        refused(FieldError::query(
            "with",
            json!(with.to_string()),
            "is the target",
        ))
    })?;
    let recorded = state
        .log
        .read_stream(&Social::stream_name(&pair), 0)
        .await
        .map_err(ApiError::from)?;
    let decoded = recorded
        .iter()
        .map(decode::<SocialEvent>)
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::internal)?;
    Ok(page(&recorded, &decoded, parsed.from, parsed.limit))
}

/// 400 for one invalid query field.
fn refused(error: FieldError) -> ReadError {
    ApiError::Validation(vec![error]).into()
}

/// A user's sign-in attempts, a page in stream order; empty for a user who never signed in.
async fn sign_in_history(state: &AppState, query: &QueryString) -> Result<Answer, ReadError> {
    let query = HistoryQuery::parse(query, UserId::parse)?;
    if query.at.is_some() {
        return Err(refused(FieldError::query(
            "at",
            json!(query.at.map(|at| at.to_string())),
            "applies to the user's own stream, not to `stream=signin`",
        )));
    }
    let [user, attempts] = [
        <User as Aggregate>::stream_name(&query.target),
        SignIns::stream_name(&query.target),
    ];
    let recorded = state
        .log
        .read_streams(&[user.clone(), attempts])
        .await
        .map_err(ApiError::from)?;
    if !recorded.iter().any(|event| event.stream == user) {
        return Err(ApiError::NotFound(json!({ "target": query.target.to_string() })).into());
    }
    let recorded: Vec<RecordedEvent> = recorded
        .into_iter()
        .filter(|event| event.stream != user)
        .collect();
    let decoded = recorded
        .iter()
        .map(decode::<SignInEvent>)
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::internal)?;
    Ok(page(&recorded, &decoded, query.from, query.limit))
}

/// `GET /roles/admin-api/history`: shared `admin:roles:read`.
#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
pub async fn role_history(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Answer, ReadError> {
    history::<Role>(&state, query.as_deref()).await
}

/// `GET /client/admin-api/history`: session `admin:system:client:read`, as the list of
/// applications.
#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
pub async fn client_history(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Answer, ReadError> {
    history::<Application>(&state, query.as_deref()).await
}

/// An aggregate whose history is served: how its target is named and what it looked like.
trait Audited: Aggregate + Sized {
    /// The key of the point-in-time answer.
    const KEY: &'static str;

    fn parse_target(target: &str) -> Result<Self::Id, ValidationError>;

    /// The aggregate as the API shows it after `history` (non-empty), read at `now`; `None`
    /// when it did not exist yet.
    fn document(
        state: &AppState,
        history: &[Decoded<Self::Event>],
        now: DateTime<Utc>,
    ) -> Option<Value>;
}

impl Audited for User {
    const KEY: &'static str = "user";

    fn parse_target(target: &str) -> Result<UserId, ValidationError> {
        UserId::parse(target)
    }

    fn document(
        state: &AppState,
        history: &[Decoded<Self::Event>],
        now: DateTime<Utc>,
    ) -> Option<Value> {
        let view = UserView::from_history(history)?;
        serde_json::to_value(view.hydrated(&state.subscription_tiers, now)).ok()
    }
}

impl Audited for Role {
    const KEY: &'static str = "role";

    fn parse_target(target: &str) -> Result<RoleId, ValidationError> {
        RoleId::parse(target)
    }

    /// A deleted role is shown as it was when deleted, with `deleted: true`.
    fn document(_: &AppState, history: &[Decoded<Self::Event>], _: DateTime<Utc>) -> Option<Value> {
        let role = Role::fold(history.iter().map(|d| &d.event))?;
        let deleted = role.deleted;
        let document = RoleView::of(&Role {
            deleted: false,
            ..role
        })?;
        marked_deleted(document, deleted)
    }
}

impl Audited for Application {
    const KEY: &'static str = "client";

    fn parse_target(target: &str) -> Result<ApplicationId, ValidationError> {
        ApplicationId::parse(target)
    }

    /// A deleted application is shown as it was when deleted, with `deleted: true`. Its
    /// secret never: the document has no field for it.
    fn document(_: &AppState, history: &[Decoded<Self::Event>], _: DateTime<Utc>) -> Option<Value> {
        let application = Application::fold(history.iter().map(|d| &d.event))?;
        let deleted = application.deleted;
        let document = ApplicationView::of(&Application {
            deleted: false,
            ..application
        })?;
        marked_deleted(document, deleted)
    }
}

/// A read model's document as JSON, with `deleted` (read models drop deleted rows; history
/// shows them).
fn marked_deleted(document: impl serde::Serialize, deleted: bool) -> Option<Value> {
    let mut document = serde_json::to_value(document).ok()?;
    document["deleted"] = json!(deleted);
    Some(document)
}

/// What the query string asks.
struct HistoryQuery<Id> {
    target: Id,
    at: Option<Moment>,
    from: u64,
    limit: usize,
}

impl<Id> HistoryQuery<Id> {
    /// Every invalid field is reported (location `query`).
    fn parse(
        query: &QueryString,
        parse_target: impl FnOnce(&str) -> Result<Id, ValidationError>,
    ) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::new();
        let target = match query.get("target").map(str::trim) {
            None | Some("") => {
                errors.push(FieldError::query("target", Value::Null, "is required"));
                None
            }
            Some(target) => parse_target(target)
                .map_err(|error| {
                    errors.push(FieldError::query(
                        "target",
                        json!(target),
                        error.to_string(),
                    ))
                })
                .ok(),
        };
        let at = match query.get("at").map(str::trim) {
            None | Some("") => None,
            Some(at) => at
                .parse::<Moment>()
                .map_err(|_| {
                    errors.push(FieldError::query(
                        "at",
                        json!(at),
                        "must be an ISO-8601 time (RFC 3339, e.g. 2026-01-02T03:04:05.123Z) or a log position",
                    ))
                })
                .ok(),
        };
        let from = match query.get("from").map(str::trim) {
            None | Some("") => 0,
            Some(from) => from.parse::<u64>().unwrap_or_else(|_| {
                errors.push(FieldError::query(
                    "from",
                    json!(from),
                    "must be a stream revision (a whole number, the `next` of the previous page)",
                ));
                0
            }),
        };
        let limit = crate::paging::limit_within(query.get("limit"), DEFAULT_LIMIT, MAX_LIMIT);
        errors.into_result()?;
        Ok(Self {
            // Present: a missing or invalid target is an error above.
            target: target.ok_or_else(ApiError::not_found)?,
            at,
            from,
            limit: limit as usize,
        })
    }
}

async fn history<A: Audited>(state: &AppState, query: Option<&str>) -> Result<Answer, ReadError> {
    let query = HistoryQuery::parse(&QueryString::parse(query)?, A::parse_target)?;
    let recorded = state
        .log
        .read_stream(&A::stream_name(&query.target), 0)
        .await
        .map_err(ApiError::from)?;
    if recorded.is_empty() {
        return Err(ApiError::NotFound(json!({ "target": query.target.to_string() })).into());
    }
    let decoded = recorded
        .iter()
        .map(decode::<A::Event>)
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::internal)?;
    match query.at {
        Some(at) => state_at::<A>(state, &query.target, at, &recorded, &decoded),
        None => Ok(page(&recorded, &decoded, query.from, query.limit)),
    }
}

/// The target as it was at `at`: its stream folded up to the last event that had happened.
fn state_at<A: Audited>(
    state: &AppState,
    target: &A::Id,
    at: Moment,
    recorded: &[RecordedEvent],
    decoded: &[Decoded<A::Event>],
) -> Result<Answer, ReadError> {
    // Stream order is the order of the facts: the history ends at the first event after `at`.
    let happened = recorded
        .iter()
        .zip(decoded)
        .take_while(|(event, d)| at.covers(event.position, d.metadata.occurred_at))
        .count();
    let not_yet = || {
        ApiError::NotFound(json!({
            "target": target.to_string(),
            "at": at.to_string(),
            "reason": "it did not exist yet at that moment",
        }))
    };
    let last = happened.checked_sub(1).ok_or_else(not_yet)?;
    let now = match at {
        Moment::Time(time) => time,
        Moment::Position(_) => decoded[last].metadata.occurred_at,
    };
    let document = A::document(state, &decoded[..happened], now).ok_or_else(not_yet)?;
    Ok(Answer::ok(json!({
        A::KEY: document,
        "revision": recorded[last].revision,
        "position": recorded[last].position.to_string(),
        "occurredAt": timestamp(&decoded[last].metadata.occurred_at),
    })))
}

/// Up to `limit` events from revision `from` on.
fn page<E: events::metadata::EventFamily>(
    recorded: &[RecordedEvent],
    decoded: &[Decoded<E>],
    from: u64,
    limit: usize,
) -> Answer {
    let mut shown = recorded
        .iter()
        .zip(decoded)
        .skip_while(|(event, _)| event.revision < from)
        .peekable();
    let events: Vec<Value> = shown
        .by_ref()
        .take(limit)
        .map(|(event, d)| {
            json!({
                "revision": event.revision,
                "position": event.position.to_string(),
                "eventId": d.metadata.event_id,
                "type": event.event_type,
                "occurredAt": timestamp(&d.metadata.occurred_at),
                "actor": d.metadata.actor,
                "correlationId": d.metadata.correlation_id,
                "causationId": d.metadata.causation_id,
                "changes": audit::payload(&d.event),
                "hash": ChainHash::stored(&event.metadata).flatten().map(|h| h.to_string()),
            })
        })
        .collect();
    let next = shown.peek().map(|(event, _)| event.revision);
    Answer::ok(json!({ "events": events, "next": next }))
}

/// Full precision (unlike the contract's milliseconds): `at=<occurredAt>` of an event includes
/// that event.
fn timestamp(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}
