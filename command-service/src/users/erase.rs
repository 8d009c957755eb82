//! `POST /user/admin-api/erase` `{target}` (userledger's own; README, "Erasure"): forget a
//! person. `UserErased` is appended, which frees their username and email, ends the user and
//! removes them from the read models; then their key is destroyed, so that no reader sees their
//! personal data any more. The events stay: the log is whole and its hash chains verify.
//!
//! Scope `admin:profile:erase:write`, and by default the `super_admin` role
//! (`USERLEDGER_ERASURE_SUPER_ADMIN_ONLY`); otherwise the caller must out-rank the user. An
//! erasure cut off after its event (the person is gone, but their key is not) is finished by
//! sending it again, which answers 404 like any request about a missing user. A person whose
//! streams hold personal data in the clear (written before sealing began) is refused with 409
//! until `userledger encrypt-history` has sealed it: destroying the key would not erase it.
//!
//! What else held the person goes too: the objects kept for answers, the revocation cache's
//! entry, the stream cache's copies of their streams, the answers kept for repeated requests
//! (`Idempotency-Key`) that show them.

use axum::extract::State;
use events::metadata::{CommandContext, EventFamily};
use events::sign_in::SignIns;
use events::store::Position;
use events::user::{User, UserCommand, UserEvent};
use events::values::{RoleId, UserId};
use events::Aggregate;
use serde_json::json;
use utoipa::ToSchema;

use super::require_outranks_user;
use super::toggles::{role_unchanged, OneTarget};
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
    let checked_role = if state.settings.erasure_super_admin_only {
        if !caller.is_super_admin() {
            return Err(ApiError::InsufficientPrivileges(json!({
                "reason": "only a super_admin may erase a person \
                           (USERLEDGER_ERASURE_SUPER_ADMIN_ONLY)"
            })));
        }
        None
    } else {
        let (user, _) = load_known::<User>(&*state.store, &target).await?;
        let Some(user) = user else {
            // Erased already (or never there): what an erasure cut off left is finished.
            finish_if_erased(&state, target).await?;
            return Err(ApiError::not_found());
        };
        require_outranks_user(&state, &caller, &user.role).await?;
        Some(user.role)
    };
    // In a task of its own: a caller who hangs up does not cut the erasure between its event
    // and the key.
    let context = caller.command_context();
    let position = tokio::spawn(async move { erase(&state, target, checked_role, &context).await })
        .await
        .map_err(|error| ApiError::internal(anyhow::anyhow!(error)))??;
    Ok(Answer::done().at(Some(position)))
}

/// Forgets `target` (the caller is authorized; `checked_role` is the role the ranking was
/// checked against, if it was): appends `UserErased`, which frees their username and email,
/// then destroys their key and what this process kept of them. The position of the erasure,
/// the consistency token of the answer. Also what `userledger erase` runs.
///
/// The claims are released by the erasure itself, decided on the user as read with their key:
/// the key goes after, so that a retried decision never sees their username as erased. A
/// person erased already (404) has the rest done again: an erasure cut off after its event
/// is finished by sending it again.
pub async fn erase(
    state: &AppState,
    target: UserId,
    checked_role: Option<RoleId>,
    context: &CommandContext,
) -> Result<Position, ApiError> {
    refuse_data_in_the_clear(state, target).await?;
    let erased = execute::<User, _>(
        &*state.store,
        &target,
        context,
        state.settings.command_attempts,
        |current| {
            if let Some(role) = &checked_role {
                role_unchanged(current, role)?;
            }
            Ok(UserCommand::Erase)
        },
    )
    .await
    .map_err(ApiError::from);
    let position = match erased {
        Ok(outcome) => outcome.position.ok_or_else(ApiError::not_found)?,
        Err(ApiError::NotFound(info)) => {
            finish_if_erased(state, target).await?;
            return Err(ApiError::NotFound(info));
        }
        // Whether the append landed may be unknown (the connection was lost as it committed):
        // if it did, the erasure is finished and answered as done.
        Err(error) => match finish_if_erased(state, target).await {
            Ok(Some(position)) => return Ok(position),
            _ => return Err(error),
        },
    };
    forget(state, target).await?;
    tracing::info!(user = %target, "erased");
    Ok(position)
}

/// 409 ResourceConflict when `target`'s streams hold personal data in the clear (written before
/// sealing began): destroying their key would not erase it, so nothing is done until
/// `userledger encrypt-history` has sealed it.
async fn refuse_data_in_the_clear(state: &AppState, target: UserId) -> Result<(), ApiError> {
    for stream in [User::stream_name(target), SignIns::stream_name(&target)] {
        let fields = state.store.in_the_clear(&stream).await?;
        if !fields.is_empty() {
            return Err(ApiError::ResourceConflict(json!({
                "reason": "this person's data written before sealing began is still in the \
                           clear, and destroying their key would not erase it: run \
                           `userledger encrypt-history`, then erase",
                "stream": stream,
                "fields": fields,
            })));
        }
    }
    Ok(())
}

/// When `target`'s stream ends with their erasure, destroys their key and forgets them (again,
/// or for the first time if an erasure was cut off after its event); the erasure's position.
async fn finish_if_erased(state: &AppState, target: UserId) -> Result<Option<Position>, ApiError> {
    let erasure = UserEvent::Erased {}.event_type();
    let last = state.log.last_event(&User::stream_name(target)).await?;
    match last.filter(|last| last.event_type == erasure) {
        Some(erased) => {
            forget(state, target).await?;
            Ok(Some(erased.position))
        }
        None => Ok(None),
    }
}

/// Destroys `target`'s key (from now on their personal data reads as erased, and no more of
/// it can be sealed), and forgets what this process and the edge's tables keep of them.
async fn forget(state: &AppState, target: UserId) -> Result<(), ApiError> {
    state.store.shred_key(target).await?;
    // Their object, as the last write answered it, is personal data too.
    state.user_views.forget(target);
    state.edge.access.forget(&target.to_string());
    // Answers kept for repeated requests may show the person (an update answers the user).
    if let Some(pool) = &state.edge.database {
        http_edge::idempotency::forget(pool, &target.to_string())
            .await
            .map_err(|error| ApiError::internal(anyhow::anyhow!(error)))?;
    }
    Ok(())
}
