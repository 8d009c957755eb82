//! `POST ban`, `POST restrict` (both edges) and `POST verify` (admin only): `{target, state,
//! reason?}`. The event records the reason and who did it; its metadata, when.
//!
//! Banning and restricting also need the caller to out-rank the target's role (unless
//! super_admin), as `update` does: otherwise a low-ranked client could ban an administrator.

use axum::extract::State;
use events::user::{Toggle, User, UserCommand};
use events::values::{Reason, RoleId};
use serde_json::json;

use super::{
    boolean, load_user, object, optional, require_outranks_user, required, single_target, text,
};
use crate::pipeline::{execute, Failure};
use crate::AppState;
use http_edge::auth::Caller;
use http_edge::envelope::{Answer, ApiError, FieldErrors};
use http_edge::extract::JsonBody;

#[derive(Debug, Clone, Copy)]
enum Flag {
    Ban,
    Restrict,
    Verify,
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub, edge = caller.edge.as_str()))]
pub async fn ban_user(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Answer, ApiError> {
    set_flag(&state, &caller, &body, Flag::Ban).await
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub, edge = caller.edge.as_str()))]
pub async fn restrict_user(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Answer, ApiError> {
    set_flag(&state, &caller, &body, Flag::Restrict).await
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub, edge = caller.edge.as_str()))]
pub async fn verify_user(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Answer, ApiError> {
    set_flag(&state, &caller, &body, Flag::Verify).await
}

async fn set_flag(
    state: &AppState,
    caller: &Caller,
    body: &serde_json::Value,
    flag: Flag,
) -> Result<Answer, ApiError> {
    let map = object(body)?;
    let mut errors = FieldErrors::new();
    let target = single_target(&mut errors, map);
    let on = required(&mut errors, map, "", "state", boolean);
    let reason = optional(&mut errors, map, "", "reason", text(Reason::parse));
    errors.into_result()?;
    let (Some(target), Some(on)) = (target, on) else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "a parsed field is missing"
        )));
    };
    let toggle = Toggle { state: on, reason };

    let checked_role = match flag {
        Flag::Ban | Flag::Restrict => {
            let user = load_user(state, &target).await?;
            require_outranks_user(state, caller, &user.role).await?;
            Some(user.role)
        }
        Flag::Verify => None,
    };
    let outcome = execute::<User, _>(
        &*state.store,
        &target,
        &caller.command_context(),
        state.settings.command_attempts,
        |current| {
            if let Some(role) = &checked_role {
                role_unchanged(current, role)?;
            }
            Ok(match flag {
                Flag::Ban => UserCommand::SetBanned(toggle.clone()),
                Flag::Restrict => UserCommand::SetRestricted(toggle.clone()),
                Flag::Verify => UserCommand::SetVerified(toggle.clone()),
            })
        },
    )
    .await?;
    if matches!(flag, Flag::Ban) {
        // Revocation is immediate in this process (other processes: within the cache TTL).
        state.edge.access.forget(&target.to_string());
    }
    tracing::info!(user = %target, ?flag, state = on, changed = !outcome.events.is_empty(), "flag set");
    Ok(Answer::done().at(outcome.position))
}

/// The ranking was checked against `role`; if the user's role changed since, refuse rather
/// than act on a check that no longer holds.
pub(crate) fn role_unchanged(
    current: &Option<events::user::User>,
    role: &RoleId,
) -> Result<(), Failure> {
    match current {
        Some(user) if &user.role != role => Err(Failure::Api(ApiError::ResourceConflict(
            json!({ "reason": "the target's role changed during the request; retry it" }),
        ))),
        _ => Ok(()),
    }
}
