//! The social graph's writes, for the signed-in person (delegated, session scopes; API.md §2):
//! `POST /user/follow`, `/user/unfollow`, `/user/block` and `/user/unblock`, each `{target}`;
//! `PATCH /user/follow-request` `{request}` (accept a request) and `DELETE /user/follow-entry`
//! `{entry}` (remove a follower, refuse or withdraw a request, unfollow), each naming a follow
//! by its `_id` in the lists; `POST /user/private` `{state}`.
//!
//! Each write between two people is one command on their relation stream
//! ([`events::social`]), so a follow and a block between the same two are decided one after the
//! other. The refusals, in order: the scope (401); the body (400); the caller themselves as the
//! target (400 ClientInputError); a target that is not a live user (404); for a follow, a
//! target who blocks the caller (403 Blocked).
//!
//! Privacy is the account's own fact, on its user stream. A follow of a private account is a
//! request. Going public accepts every waiting request: the account's requests are looked up in
//! the social read model once it has applied the change, and each is accepted on its relation
//! stream. A request that raced the change is accepted by the follow itself, which reads the
//! account again after appending the request, once every append below it has landed
//! ([`events::store::EventStore::settled`]): a change below the request is then seen by the
//! follow, and one above it finds the request in the read model.
//!
//! The entry routes and going public are the write side's only reads of a read model (a
//! departure from DESIGN.md, where the write side reads the log only): the write side has no
//! index from a follow's `_id`, or from an account, to the relation streams. The read model
//! only names the two users; what holds between them is decided on their stream.

use std::time::{Duration, Instant};

use axum::extract::State;
use events::social::{Edge as Follow, Pair, Social, SocialCommand, SocialEvent};
use events::store::Position;
use events::user::{User, UserCommand};
use events::values::{FollowEntryId, UserId};
use events::Aggregate;
use futures::{StreamExt, TryStreamExt};
use http_edge::auth::{Caller, Edge};
use http_edge::body::{Body, Fields, Json};
use http_edge::envelope::{Answer, ApiError};
use http_edge::{Doc, Feature, Routes};
use projections::social::lookups;
use serde::Serialize;
use utoipa::ToSchema;

use crate::pipeline::{domain_error, execute, load_aggregate};
use crate::users::load_user;
use crate::AppState;

/// How long going public waits for the social read model to apply the change before it
/// answers 503 (the account is public by then; the same request again accepts the requests).
const READ_MODEL_WAIT: Duration = Duration::from_secs(5);

/// Requests accepted at once when an account goes public.
const ACCEPTS_IN_FLIGHT: usize = 16;

/// `{target}`: the user to follow, unfollow, block or unblock.
#[derive(Debug, ToSchema)]
pub struct SocialTarget {
    /// The user's `_id`.
    pub target: UserId,
}

impl Body for SocialTarget {
    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let target = fields.required("target");
        Some(Self { target: target? })
    }
}

/// `{request}`: the follow request to accept.
#[derive(Debug, ToSchema)]
pub struct FollowRequest {
    /// The request's `_id`, as `GET /user/follow-requests` lists it.
    pub request: FollowEntryId,
}

impl Body for FollowRequest {
    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let request = fields.required("request");
        Some(Self { request: request? })
    }
}

/// `{entry}`: the follow (or request) to end.
#[derive(Debug, ToSchema)]
pub struct FollowEntry {
    /// The follow's `_id`, as the follow lists show it.
    pub entry: FollowEntryId,
}

impl Body for FollowEntry {
    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let entry = fields.required("entry");
        Some(Self { entry: entry? })
    }
}

/// `{state}`: whether the account is to be private.
#[derive(Debug, ToSchema)]
pub struct Privacy {
    /// `true`: private (follows become requests); `false`: public (waiting requests are
    /// accepted).
    pub state: bool,
}

impl Body for Privacy {
    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let state = fields.required("state");
        Some(Self { state: state? })
    }
}

/// What a follow or a block did.
#[derive(Debug, Serialize, ToSchema)]
pub struct SocialStatus {
    /// `following` (a new follow), `requested` (the account is private: a request waits),
    /// `duplicate` (already following, or already requested), `blocked`.
    pub status: &'static str,
}

/// What going public did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WentPublic {
    /// The follow requests accepted.
    pub accepted_count: usize,
}

pub fn router() -> Routes<AppState> {
    let write = |doc: Doc, scope: &str| {
        doc.session(Edge::Admin, scope).write().error(
            400,
            "ClientInputError",
            "the body is not as described",
        )
    };
    let on_target = |path: &str, summary: &str, scope: &str| {
        write(Doc::post(path, summary), scope)
            .json_body::<SocialTarget>()
            .error(400, "ClientInputError", "`target` is the caller")
            .error(404, "NotFound", "no live user has this `target`")
    };
    let on_entry = |doc: Doc, scope: &str| {
        write(doc, scope).part_of(Feature::FollowApis).error(
            404,
            "NotFound",
            "no current follow has this `_id`",
        )
    };
    Routes::new()
        .route(
            on_target(
                "/user/follow",
                "Follow a user",
                "delegated:social:follow:request",
            )
            .part_of(Feature::FollowApis)
            .ok::<SocialStatus>(
                "`following`; `requested` when the account is private; `duplicate` when \
                 already following or requested",
            )
            .error(403, "Blocked", "the user blocks you"),
            follow,
        )
        .route(
            on_target(
                "/user/unfollow",
                "Stop following a user, or withdraw a follow request",
                "delegated:social:follow:unfollow",
            )
            .part_of(Feature::FollowApis)
            .done("not following the user (any more)"),
            unfollow,
        )
        .route(
            on_target(
                "/user/block",
                "Block a user",
                "delegated:social:block:write",
            )
            .ok::<SocialStatus>("`blocked`; every follow and request between you two ends"),
            block,
        )
        .route(
            on_target(
                "/user/unblock",
                "Stop blocking a user",
                "delegated:social:block:write",
            )
            .done("not blocking the user (any more)"),
            unblock,
        )
        .route(
            on_entry(
                Doc::patch("/user/follow-request", "Accept a follow request"),
                "delegated:social:follow:accept",
            )
            .json_body::<FollowRequest>()
            .done("the requester follows you (also when accepted before)")
            .error(404, "NotFound", "the request is not to you"),
            accept_request,
        )
        .route(
            on_entry(
                Doc::delete(
                    "/user/follow-entry",
                    "Remove a follower, refuse or withdraw a request, or unfollow",
                ),
                "delegated:social:follow:remove",
            )
            .json_body::<FollowEntry>()
            .done("the follow (or request) is over")
            .error(
                401,
                "Unauthorized",
                "the follow is neither yours nor to you",
            ),
            remove_entry,
        )
        .route(
            write(
                Doc::post("/user/private", "Make your account private or public"),
                "delegated:profile:write",
            )
            .json_body::<Privacy>()
            .ok::<WentPublic>(
                "going public (`state: false`) accepts every waiting follow request and \
                 answers how many; going private answers `{\"ok\":1}`",
            )
            .error(
                503,
                "ServiceUnavailable",
                "going public: the follow requests could not be listed in time (the account \
                 is public; send it again to accept them)",
            ),
            private,
        )
}

/// The caller's user id.
fn caller_id(caller: &Caller) -> Result<UserId, ApiError> {
    UserId::parse(&caller.claims.sub)
        .map_err(|_| ApiError::Unauthorized("the token is not a user's"))
}

/// Decides `command` on the relation of `edge`'s two users: the events it appended, and where
/// the last of them is in the log (the answer's consistency token).
async fn decide(
    state: &AppState,
    caller: &Caller,
    edge: Follow,
    command: SocialCommand,
) -> Result<(Vec<SocialEvent>, Option<Position>), ApiError> {
    let pair = Pair::of(edge.source, edge.target).map_err(domain_error)?;
    let outcome = execute::<Social, _>(
        &*state.store,
        &pair,
        &caller.command_context(),
        state.settings.command_attempts,
        |_| Ok(command.clone()),
    )
    .await?;
    Ok((outcome.events, outcome.position))
}

/// Decides `command` on the relation of the caller and `target`, a live user.
async fn decide_with(
    state: &AppState,
    caller: &Caller,
    target: UserId,
    command: impl Fn(Follow) -> SocialCommand,
) -> Result<(Vec<SocialEvent>, Option<Position>), ApiError> {
    let source = caller_id(caller)?;
    Pair::of(source, target).map_err(domain_error)?;
    load_user(state, &target).await?;
    let edge = Follow { source, target };
    decide(state, caller, edge, command(edge)).await
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
async fn follow(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<SocialTarget>,
) -> Result<Answer, ApiError> {
    let source = caller_id(&caller)?;
    let pair = Pair::of(source, body.target).map_err(domain_error)?;
    let target = load_user(&state, &body.target).await?;
    let edge = Follow {
        source,
        target: body.target,
    };
    let command = SocialCommand::Follow {
        edge,
        target_private: target.private,
    };
    let (events, position) = decide(&state, &caller, edge, command).await?;
    let status = match events.as_slice() {
        [] => "duplicate",
        [SocialEvent::FollowRequested(_)] => {
            // The account may have gone public since it was read, and going public may have
            // listed the waiting requests before this one landed: look again, once every append
            // below this one has landed (a change to public below it is then readable; one
            // above it lists this request), and accept it here if so.
            if let Some(position) = position {
                // A transaction held open elsewhere must not turn a request already appended into
                // an error: look with what can be read (the request then waits, as it would have).
                if let Err(error) = state.log.settled(position).await {
                    tracing::warn!(error = %error, "the follow request looks at its target unsettled");
                }
            }
            let (now, _) = load_aggregate::<User>(&*state.log, &body.target).await?;
            if now.is_some_and(|user| !user.private) {
                let (_, accepted) =
                    decide(&state, &caller, edge, SocialCommand::Accept(edge)).await?;
                let accepted = match accepted {
                    Some(position) => Some(position),
                    // Going public accepted it first: the token is where that landed.
                    None => last_position(&state, &Social::stream_name(&pair)).await?,
                };
                let following = SocialStatus {
                    status: "following",
                };
                return Ok(Answer::ok(following).at(accepted.or(position)));
            }
            "requested"
        }
        _ => "following",
    };
    Ok(Answer::ok(SocialStatus { status }).at(position))
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
async fn unfollow(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<SocialTarget>,
) -> Result<Answer, ApiError> {
    let (_, position) = decide_with(&state, &caller, body.target, SocialCommand::Unfollow).await?;
    Ok(Answer::done().at(position))
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
async fn block(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<SocialTarget>,
) -> Result<Answer, ApiError> {
    let (_, position) = decide_with(&state, &caller, body.target, SocialCommand::Block).await?;
    Ok(Answer::ok(SocialStatus { status: "blocked" }).at(position))
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
async fn unblock(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<SocialTarget>,
) -> Result<Answer, ApiError> {
    let (_, position) = decide_with(&state, &caller, body.target, SocialCommand::Unblock).await?;
    Ok(Answer::done().at(position))
}

/// The read models' database (500 without one: the lookups of this module need it).
fn read_models(state: &AppState) -> Result<&sqlx::PgPool, ApiError> {
    state.edge.database.as_ref().ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "the follow lookups need the read models' PostgreSQL (DATABASE_URL)"
        ))
    })
}

/// The follow whose `_id` is `entry`, as the social read model knows it; 404 when it knows none.
async fn entry_edge(state: &AppState, entry: FollowEntryId) -> Result<Follow, ApiError> {
    let found = lookups::entry(read_models(state)?, entry.as_uuid())
        .await
        .map_err(ApiError::internal)?;
    let (source, target) = found.ok_or_else(ApiError::not_found)?;
    Ok(Follow {
        source: source.into(),
        target: target.into(),
    })
}

/// `PATCH /user/follow-request`: the caller accepts a request to follow them.
#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
async fn accept_request(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<FollowRequest>,
) -> Result<Answer, ApiError> {
    let edge = entry_edge(&state, body.request).await?;
    if edge.target != caller_id(&caller)? {
        return Err(ApiError::not_found());
    }
    let (_, position) = decide(&state, &caller, edge, SocialCommand::Accept(edge)).await?;
    Ok(Answer::done().at(position))
}

/// `DELETE /user/follow-entry`: the followed removes a follower (or refuses a request), or the
/// follower unfollows (or withdraws the request).
#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
async fn remove_entry(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<FollowEntry>,
) -> Result<Answer, ApiError> {
    let edge = entry_edge(&state, body.entry).await?;
    let me = caller_id(&caller)?;
    let command = if me == edge.target {
        SocialCommand::RemoveFollower(edge)
    } else if me == edge.source {
        SocialCommand::Unfollow(edge)
    } else {
        return Err(ApiError::Unauthorized(
            "the follow is neither yours nor to you",
        ));
    };
    let (_, position) = decide(&state, &caller, edge, command).await?;
    Ok(Answer::done().at(position))
}

/// `POST /user/private`: the account becomes private, or public (accepting every waiting
/// request: `{acceptedCount}`).
#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
async fn private(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<Privacy>,
) -> Result<Answer, ApiError> {
    let me = caller_id(&caller)?;
    if !body.state {
        read_models(&state)?;
    }
    let outcome = execute::<User, _>(
        &*state.store,
        &me,
        &caller.command_context(),
        state.settings.command_attempts,
        |_| Ok(UserCommand::SetPrivate(body.state)),
    )
    .await?;
    if body.state {
        return Ok(Answer::done().at(outcome.position));
    }
    // The read model must have applied the change to public before it is asked for the
    // requests; when this request changed nothing (public already: a retry after a 503), the
    // change is the user's last event.
    let changed = match outcome.position {
        Some(position) => Some(position),
        None => last_position(&state, &<User as Aggregate>::stream_name(&me)).await?,
    };
    if let Some(position) = changed {
        read_model_reached(&state, position).await?;
    }
    let requesters = lookups::requesters(read_models(&state)?, me.as_uuid())
        .await
        .map_err(ApiError::internal)?;
    // Where each acceptance landed; nothing for a request accepted, withdrawn or removed since
    // it was listed.
    let accepted: Vec<Position> = futures::stream::iter(requesters)
        .map(|source| {
            let edge = Follow {
                source: source.into(),
                target: me,
            };
            let (state, caller) = (&state, &caller);
            async move {
                match decide(state, caller, edge, SocialCommand::Accept(edge)).await {
                    Ok((_, position)) => Ok(position),
                    Err(ApiError::NotFound(_)) => Ok(None),
                    Err(error) => Err(error),
                }
            }
        })
        .buffer_unordered(ACCEPTS_IN_FLIGHT)
        .try_filter_map(|accepted| async move { Ok(accepted) })
        .try_collect()
        .await?;
    let position = accepted.iter().max().copied().or(outcome.position);
    Ok(Answer::ok(WentPublic {
        accepted_count: accepted.len(),
    })
    .at(position))
}

/// Where the last event of `stream` is in the log.
async fn last_position(state: &AppState, stream: &str) -> Result<Option<Position>, ApiError> {
    let last = state.log.last_event(stream).await?;
    Ok(last.map(|event| event.position))
}

/// Waits until the social read model has applied the log up to `position`; 503 after
/// [`READ_MODEL_WAIT`].
async fn read_model_reached(state: &AppState, position: Position) -> Result<(), ApiError> {
    let started = Instant::now();
    while !lookups::reached(read_models(state)?, position)
        .await
        .map_err(ApiError::internal)?
    {
        if started.elapsed() >= READ_MODEL_WAIT {
            tracing::warn!(%position, "the social read model did not reach a change to public in time");
            return Err(ApiError::Busy {
                retry_after_secs: 1,
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
