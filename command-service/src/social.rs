//! The social graph's writes, for the signed-in person (delegated, session scopes; API.md §2):
//! `POST /user/follow`, `/user/unfollow`, `/user/block` and `/user/unblock`, each `{target}`.
//! Each is one command on the relation stream of the caller and the target
//! ([`events::social`]), so a follow and a block between the same two are decided one after
//! the other. The refusals, in order: the scope (401); the body (400); the caller themselves as
//! the target (400 ClientInputError); a target that is not a live user (404); for a follow, a
//! target who blocks the caller (403 Blocked).
//!
//! Answers as Liquid's: `follow` says `{"status": "following" | "duplicate"}`, `block`
//! `{"status": "blocked"}` (also when already blocked), the others `{"ok":1}`. Accounts are
//! all public until private accounts land: a follow is a follow at once.

use axum::extract::State;
use events::social::{Edge as Follow, Pair, Social, SocialCommand, SocialEvent};
use events::store::Position;
use events::values::UserId;
use http_edge::auth::{Caller, Edge};
use http_edge::body::{Body, Fields, Json};
use http_edge::envelope::{Answer, ApiError};
use http_edge::{Doc, Routes};
use serde::Serialize;
use utoipa::ToSchema;

use crate::pipeline::{domain_error, execute};
use crate::users::load_user;
use crate::AppState;

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

/// What a follow or a block did.
#[derive(Debug, Serialize, ToSchema)]
pub struct SocialStatus {
    /// `following` (a new follow), `duplicate` (already following), `blocked`.
    pub status: &'static str,
}

pub fn router() -> Routes<AppState> {
    let doc = |path: &str, summary: &str, scope: &str| {
        Doc::post(path, summary)
            .session(Edge::Admin, scope)
            .json_body::<SocialTarget>()
            .write()
            .error(
                400,
                "ClientInputError",
                "`target` is not a user id, or is the caller",
            )
            .error(404, "NotFound", "no live user has this `target`")
    };
    Routes::new()
        .route(
            doc(
                "/user/follow",
                "Follow a user",
                "delegated:social:follow:request",
            )
            .ok::<SocialStatus>("`following`, or `duplicate` when already following")
            .error(403, "Blocked", "the user blocks you"),
            follow,
        )
        .route(
            doc(
                "/user/unfollow",
                "Stop following a user",
                "delegated:social:follow:unfollow",
            )
            .done("not following the user (any more)"),
            unfollow,
        )
        .route(
            doc(
                "/user/block",
                "Block a user",
                "delegated:social:block:write",
            )
            .ok::<SocialStatus>("`blocked`; every follow between you two ends"),
            block,
        )
        .route(
            doc(
                "/user/unblock",
                "Stop blocking a user",
                "delegated:social:block:write",
            )
            .done("not blocking the user (any more)"),
            unblock,
        )
}

/// Decides `command` on the relation of the caller and `target`: the events it appended, and
/// where the last of them is in the log (the answer's consistency token).
async fn decide(
    state: &AppState,
    caller: &Caller,
    target: UserId,
    command: impl Fn(Follow) -> SocialCommand,
) -> Result<(Vec<SocialEvent>, Option<Position>), ApiError> {
    let source = UserId::parse(&caller.claims.sub)
        .map_err(|_| ApiError::Unauthorized("the token is not a user's"))?;
    let pair = Pair::of(source, target).map_err(domain_error)?;
    load_user(state, &target).await?;
    let edge = Follow { source, target };
    let outcome = execute::<Social, _>(
        &*state.store,
        &pair,
        &caller.command_context(),
        state.settings.command_attempts,
        |_| Ok(command(edge)),
    )
    .await?;
    Ok((outcome.events, outcome.position))
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
async fn follow(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<SocialTarget>,
) -> Result<Answer, ApiError> {
    let (events, position) = decide(&state, &caller, body.target, |edge| SocialCommand::Follow {
        edge,
        target_private: false,
    })
    .await?;
    let status = if events.is_empty() {
        "duplicate"
    } else {
        "following"
    };
    Ok(Answer::ok(SocialStatus { status }).at(position))
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
async fn unfollow(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<SocialTarget>,
) -> Result<Answer, ApiError> {
    let (_, position) = decide(&state, &caller, body.target, SocialCommand::Unfollow).await?;
    Ok(Answer::done().at(position))
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
async fn block(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<SocialTarget>,
) -> Result<Answer, ApiError> {
    let (_, position) = decide(&state, &caller, body.target, SocialCommand::Block).await?;
    Ok(Answer::ok(SocialStatus { status: "blocked" }).at(position))
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
async fn unblock(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<SocialTarget>,
) -> Result<Answer, ApiError> {
    let (_, position) = decide(&state, &caller, body.target, SocialCommand::Unblock).await?;
    Ok(Answer::done().at(position))
}
