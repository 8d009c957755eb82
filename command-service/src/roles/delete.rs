//! `DELETE /roles/{admin,client}-api/delete`: the role is deleted, then each of its users is
//! moved to the default role `user`, through the users' own streams (`UserRoleChanged`), so the
//! history says who lost which role and why.

use std::collections::HashMap;

use axum::extract::State;
use events::metadata::{decode, CommandContext};
use events::role::{Role, RoleCommand};
use events::store::Position;
use events::user::{User, UserCommand, UserEvent};
use events::values::{RoleId, UserId};

use super::{resolve, unknown_role, RoleTarget};
use crate::pipeline::{execute, Failure};
use crate::AppState;
use http_edge::auth::Caller;
use http_edge::body::Json;
use http_edge::envelope::{Answer, ApiError};

/// Events read per page while looking for a role's users.
const PAGE: usize = 1_000;
/// How long the scan for a role's users waits for the log to show the role's deletion.
const WAIT_FOR_THE_DELETION: std::time::Duration = std::time::Duration::from_secs(10);

#[tracing::instrument(skip_all, fields(role_id))]
pub(super) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Json(RoleTarget { id }): Json<RoleTarget>,
) -> Result<Answer, ApiError> {
    tracing::Span::current().record("role_id", id.as_str());
    let id = resolve(&state, &id).await?;
    let context = caller.command_context();
    let outcome = execute::<Role, _>(
        &*state.store,
        &id,
        &context,
        state.settings.command_attempts,
        |current| match current {
            Some(role) if !role.deleted => Ok(RoleCommand::Delete),
            _ => Err(Failure::Api(unknown_role())),
        },
    )
    .await?;
    let (moved, position) =
        move_users_to_default_role(&state, &id, &context, outcome.position).await?;
    tracing::info!(role = %id, moved, "role deleted");
    // Liquid answers a delete with `{"ok":1}`; the count goes to the log only.
    Ok(Answer::done().at(position.or(outcome.position)))
}

/// Gives every live user whose role is `deleted` the default role; answers how many moved and
/// the position of the last move.
///
/// Each move is a command of its own, decided on the user's current state: a user whose role
/// changed meanwhile keeps the new one. A crash halfway leaves some users with a deleted role,
/// which ranks as an unknown role (rank 0) until the delete is retried or they are moved.
async fn move_users_to_default_role(
    state: &AppState,
    deleted: &RoleId,
    context: &CommandContext,
    deleted_at: Option<Position>,
) -> Result<(usize, Option<Position>), ApiError> {
    let mut moved = 0;
    let mut position = None;
    for user in users_with_role(state, deleted, deleted_at).await? {
        let outcome = execute::<User, _>(
            &*state.store,
            &user,
            context,
            state.settings.command_attempts,
            |current| {
                let role = match current {
                    Some(user) if same_role(&user.role, deleted) => RoleId::user(),
                    // Moved or given another role since the scan: leave it (a no-op).
                    Some(user) => user.role.clone(),
                    None => RoleId::user(),
                };
                Ok(UserCommand::ChangeRole(role))
            },
        )
        .await;
        match outcome {
            Ok(outcome) if outcome.position.is_some() => {
                moved += 1;
                position = outcome.position.or(position);
            }
            Ok(_) => {}
            // Deleted since the scan: nothing to move.
            Err(Failure::Api(ApiError::NotFound(_))) => {}
            Err(failure) => return Err(failure.into()),
        }
    }
    Ok((moved, position))
}

/// The live users whose current role is `role`, as the log stands once it shows `until` (the
/// role's deletion): every user created before the deletion shows before it, but the log may
/// hide both for a moment while an older transaction is still in flight.
///
/// There is no users read model on the write side yet, so this folds the whole global log:
/// correct, but O(size of the log) per role delete. **Replace it with a query on the users
/// read model** (`WHERE role = $1`) once the projections exist; the moves themselves stay.
async fn users_with_role(
    state: &AppState,
    role: &RoleId,
    until: Option<Position>,
) -> Result<Vec<UserId>, ApiError> {
    let mut roles: HashMap<UserId, RoleId> = HashMap::new();
    let mut after: Option<Position> = None;
    let started = std::time::Instant::now();
    loop {
        let page = state.store.read_all(after, PAGE).await?;
        let Some(last) = page.last() else {
            let behind = until.is_some_and(|until| after.is_none_or(|after| after < until));
            if behind && started.elapsed() < WAIT_FOR_THE_DELETION {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
            break;
        };
        after = Some(last.position);
        for recorded in &page {
            if !recorded.stream.starts_with("user-")
                || !matches!(
                    recorded.event_type.as_str(),
                    "UserCreated" | "UserRoleChanged" | "UserDeleted"
                )
            {
                continue;
            }
            let Some(id) = recorded
                .stream
                .strip_prefix("user-")
                .and_then(|id| UserId::parse(id).ok())
            else {
                continue;
            };
            match decode::<UserEvent>(recorded)
                .map_err(ApiError::internal)?
                .event
            {
                UserEvent::Created { role, .. } | UserEvent::RoleChanged { role } => {
                    roles.insert(id, role);
                }
                UserEvent::Deleted {} => {
                    roles.remove(&id);
                }
                _ => {}
            }
        }
    }
    Ok(roles
        .into_iter()
        .filter(|(_, current)| same_role(current, role))
        .map(|(id, _)| id)
        .collect())
}

/// Role ids are unique case-insensitively.
fn same_role(a: &RoleId, b: &RoleId) -> bool {
    a.as_str().eq_ignore_ascii_case(b.as_str())
}
