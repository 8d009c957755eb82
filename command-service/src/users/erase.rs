//! `POST /user/admin-api/erase` `{target}` (userledger's own; README, "Erasure"): forget a
//! person. Their key is destroyed first, so that from that moment no reader sees their
//! personal data and no write can seal more of it; then `UserErased` is appended, which frees
//! their username and email and removes them from the read models. The events stay: the log
//! is whole and its hash chains verify.
//!
//! Scope `admin:profile:erase:write`, and by default the `super_admin` role
//! (`USERLEDGER_ERASURE_SUPER_ADMIN_ONLY`); otherwise the caller must out-rank the user. An
//! erasure cut off between its two steps (the person reads as erased, but is still there) is
//! finished by sending it again; a person already erased is 404, like any missing user.
//!
//! What else held the person goes too: the objects kept for answers, the revocation cache's
//! entry, the stream cache's copies of their streams, the answers kept for repeated requests
//! (`Idempotency-Key`) that show them.

use axum::extract::State;
use events::metadata::CommandContext;
use events::store::Position;
use events::user::{User, UserCommand};
use events::values::UserId;
use serde_json::json;
use utoipa::ToSchema;

use super::require_outranks_user;
use super::toggles::OneTarget;
use crate::pipeline::{execute, load_known};
use crate::AppState;
use http_edge::auth::Caller;
use http_edge::body::{Body, Fields, Json};
use http_edge::envelope::{Answer, ApiError};

/// `erase`: the user to forget.
#[derive(Debug, ToSchema)]
pub struct EraseBody {
    pub target: OneTarget,
}

impl Body for EraseBody {
    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let target = fields.required("target");
        Some(Self { target: target? })
    }
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
pub async fn erase_user(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<EraseBody>,
) -> Result<Answer, ApiError> {
    let OneTarget(target) = body.target;
    let user = existing(&state, target).await?;
    if state.settings.erasure_super_admin_only {
        if !caller.is_super_admin() {
            return Err(ApiError::InsufficientPrivileges(json!({
                "reason": "only a super_admin may erase a person \
                           (USERLEDGER_ERASURE_SUPER_ADMIN_ONLY)"
            })));
        }
    } else {
        require_outranks_user(&state, &caller, &user.role).await?;
    }
    let position = erase(&state, target, &caller.command_context()).await?;
    Ok(Answer::done().at(Some(position)))
}

/// The user `target`, deleted or not, or 404 when there is none (or they were erased).
async fn existing(state: &AppState, target: UserId) -> Result<User, ApiError> {
    let (user, _) = load_known::<User>(&*state.store, &target).await?;
    user.ok_or_else(ApiError::not_found)
}

/// Forgets `target` (who must exist; the caller is authorized): destroys their key, then
/// appends `UserErased`. The position of that event, the consistency token of the answer.
/// Also what `userledger erase` runs.
pub async fn erase(
    state: &AppState,
    target: UserId,
    context: &CommandContext,
) -> Result<Position, ApiError> {
    existing(state, target).await?;
    state.store.shred_key(target).await?;
    // Their object, as the last write answered it, is personal data too.
    state.user_views.forget(target);
    state.edge.access.forget(&target.to_string());
    let outcome = execute::<User, _>(
        &*state.store,
        &target,
        context,
        state.settings.command_attempts,
        |_| Ok(UserCommand::Erase),
    )
    .await?;
    // Answers kept for repeated requests may show the person (an update answers the user).
    if let Some(pool) = &state.edge.database {
        http_edge::idempotency::forget(pool, &target.to_string())
            .await
            .map_err(|error| ApiError::internal(anyhow::anyhow!(error)))?;
    }
    tracing::info!(user = %target, "erased");
    outcome.position.ok_or_else(ApiError::not_found)
}
