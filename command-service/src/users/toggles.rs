//! `POST ban`, `POST restrict` (both edges) and `POST verify` (admin only): `{target, state,
//! reason?}`. The event records the reason and who did it; its metadata, when.
//!
//! Banning and restricting also need the caller to out-rank the target's role (unless
//! super_admin), as `update` does: otherwise a low-ranked client could ban an administrator.

use axum::extract::State;
use events::user::{Toggle, User, UserCommand};
use events::values::{text_of, FieldValue, Reason, RoleId, UserId, ValidationError};
use serde_json::{json, Value};
use utoipa::openapi::schema::{ArrayBuilder, OneOfBuilder, Schema};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use super::{load_user, require_outranks_user};
use crate::pipeline::{execute, Failure};
use crate::AppState;
use http_edge::auth::Caller;
use http_edge::body::{Body, Fields, Json};
use http_edge::envelope::{Answer, ApiError};

/// `ban`, `restrict`, `verify`.
#[derive(Debug, ToSchema)]
pub struct ToggleBody {
    pub target: OneTarget,
    pub state: bool,
    pub reason: Option<Reason>,
}

impl Body for ToggleBody {
    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let target = fields.required("target");
        let state = fields.required("state");
        let reason = fields.optional("reason");
        Some(Self {
            target: target?,
            state: state?,
            reason: reason?,
        })
    }
}

/// `target` as `ban`, `restrict` and `verify` take it: one user `_id`, or a one-element array
/// of it (as Liquid's callers send it).
#[derive(Debug)]
pub struct OneTarget(pub UserId);

impl FieldValue for OneTarget {
    fn from_json(value: &Value) -> Result<Self, ValidationError> {
        match value {
            Value::Array(items) if items.len() == 1 => UserId::from_json(&items[0]).map(Self),
            Value::Array(_) => Err(ValidationError::new(
                "target",
                "must be one id (an array must hold exactly one)",
            )),
            other => UserId::parse(text_of(other)?).map(Self),
        }
    }
}

impl PartialSchema for OneTarget {
    fn schema() -> RefOr<Schema> {
        let id = UserId::schema();
        OneOfBuilder::new()
            .description(Some("A user's `_id`, or an array of exactly one."))
            .item(id.clone())
            .item(
                ArrayBuilder::new()
                    .items(id)
                    .min_items(Some(1))
                    .max_items(Some(1)),
            )
            .into()
    }
}

impl ToSchema for OneTarget {}

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
    Json(body): Json<ToggleBody>,
) -> Result<Answer, ApiError> {
    set_flag(&state, &caller, body, Flag::Ban).await
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub, edge = caller.edge.as_str()))]
pub async fn restrict_user(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<ToggleBody>,
) -> Result<Answer, ApiError> {
    set_flag(&state, &caller, body, Flag::Restrict).await
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub, edge = caller.edge.as_str()))]
pub async fn verify_user(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<ToggleBody>,
) -> Result<Answer, ApiError> {
    set_flag(&state, &caller, body, Flag::Verify).await
}

async fn set_flag(
    state: &AppState,
    caller: &Caller,
    body: ToggleBody,
    flag: Flag,
) -> Result<Answer, ApiError> {
    let ToggleBody {
        target: OneTarget(target),
        state: on,
        reason,
    } = body;
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
