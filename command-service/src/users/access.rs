//! `POST access`: `{targets, targetType: user|client|role, scope, operation: add|del|set}`
//! changes the scope list of users, applications or roles. Every scope must be in the
//! catalogue and granted by the caller's own token scope (400 naming it otherwise), so nobody
//! hands out more than they hold.
//!
//! All targets are checked to exist (404) and, for users and roles, to be out-ranked by the
//! caller (unless super_admin: otherwise an admin could strip the super_admin role's `*`)
//! before any is changed; then each target's stream gets its own command.

use axum::extract::State;
use events::application::{Application, ApplicationCommand};
use events::role::{Role, RoleCommand};
use events::scopes::{Scope, ScopeOperation};
use events::user::{User, UserCommand};
use events::values::{ApplicationId, RoleId, UserId, ValidationError};
use serde_json::{json, Value};

use super::{
    caller_outranks, object, outranked, require_outranks_user, required, text, unknown_role,
};
use crate::pipeline::{execute, load_aggregate};
use crate::AppState;
use http_edge::auth::Caller;
use http_edge::envelope::{Answer, ApiError, FieldError, FieldErrors};
use http_edge::extract::JsonBody;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TargetType {
    User,
    Client,
    Role,
}

enum Targets {
    Users(Vec<UserId>),
    Clients(Vec<ApplicationId>),
    Roles(Vec<RoleId>),
}

fn target_type(value: &str) -> Result<TargetType, ValidationError> {
    match value {
        "user" => Ok(TargetType::User),
        "client" => Ok(TargetType::Client),
        "role" => Ok(TargetType::Role),
        _ => Err(ValidationError::new(
            "targetType",
            "must be one of user, client, role",
        )),
    }
}

fn operation(value: &str) -> Result<ScopeOperation, ValidationError> {
    match value {
        "add" => Ok(ScopeOperation::Add),
        "del" => Ok(ScopeOperation::Remove),
        "set" => Ok(ScopeOperation::Set),
        _ => Err(ValidationError::new(
            "operation",
            "must be one of add, del, set",
        )),
    }
}

/// Each element of a JSON array at `key`, parsed with `parse`, errors at `key[i]`.
fn each<T>(
    errors: &mut FieldErrors,
    value: Option<&Value>,
    key: &str,
    allow_empty: bool,
    mut parse: impl FnMut(&Value) -> Result<T, ValidationError>,
) -> Option<Vec<T>> {
    let items = match value {
        Some(Value::Array(items)) if allow_empty || !items.is_empty() => items,
        other => {
            let msg = if allow_empty {
                "must be an array"
            } else {
                "must be a non-empty array"
            };
            errors.push(FieldError::body(
                key,
                other.cloned().unwrap_or(Value::Null),
                msg,
            ));
            return None;
        }
    };
    let mut parsed = Vec::with_capacity(items.len());
    let mut failed = false;
    for (index, item) in items.iter().enumerate() {
        match errors.parse(&format!("{key}[{index}]"), item, &mut parse) {
            Some(value) => parsed.push(value),
            None => failed = true,
        }
    }
    (!failed).then_some(parsed)
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub, edge = caller.edge.as_str()))]
pub async fn change_access(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Answer, ApiError> {
    let map = object(&body)?;
    let mut errors = FieldErrors::new();
    let target_type = required(&mut errors, map, "", "targetType", text(target_type));
    let operation = required(&mut errors, map, "", "operation", text(operation));
    let scopes = each(&mut errors, map.get("scope"), "scope", true, |value| {
        let scope = text(Scope::parse)(value)?;
        if caller.holds(scope.as_str()) {
            Ok(scope)
        } else {
            Err(ValidationError::new(
                "scope",
                format!("{scope} is not granted to the caller, who cannot hand it out"),
            ))
        }
    });
    let targets = match target_type {
        Some(TargetType::User) => each(&mut errors, map.get("targets"), "targets", false, |v| {
            text(UserId::parse)(v)
        })
        .map(Targets::Users),
        Some(TargetType::Client) => each(&mut errors, map.get("targets"), "targets", false, |v| {
            text(ApplicationId::parse)(v)
        })
        .map(Targets::Clients),
        Some(TargetType::Role) => each(&mut errors, map.get("targets"), "targets", false, |v| {
            text(RoleId::parse)(v)
        })
        .map(Targets::Roles),
        // The target type is invalid: the targets cannot be read, but their shape can.
        None => {
            each(&mut errors, map.get("targets"), "targets", false, |v| {
                text(|s| Ok(s.to_owned()))(v)
            });
            None
        }
    };
    errors.into_result()?;
    let (Some(operation), Some(scopes), Some(targets)) = (operation, scopes, targets) else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "a parsed field is missing"
        )));
    };

    check_targets(&state, &caller, &targets).await?;
    let context = caller.command_context();
    let attempts = state.settings.command_attempts;
    let store = &*state.store;
    let mut position = None;
    match &targets {
        Targets::Users(ids) => {
            for id in ids {
                let outcome = execute::<User, _>(store, id, &context, attempts, |_| {
                    Ok(UserCommand::ChangeScopes {
                        operation,
                        scopes: scopes.clone(),
                    })
                })
                .await?;
                position = outcome.position.or(position);
            }
        }
        Targets::Clients(ids) => {
            for id in ids {
                let outcome = execute::<Application, _>(store, id, &context, attempts, |_| {
                    Ok(ApplicationCommand::ChangeScopes {
                        operation,
                        scopes: scopes.clone(),
                    })
                })
                .await?;
                position = outcome.position.or(position);
            }
        }
        Targets::Roles(ids) => {
            for id in ids {
                let outcome = execute::<Role, _>(store, id, &context, attempts, |_| {
                    Ok(RoleCommand::ChangeScopes {
                        operation,
                        scopes: scopes.clone(),
                    })
                })
                .await?;
                position = outcome.position.or(position);
            }
        }
    }
    Ok(Answer::done().at(position))
}

/// Every target exists and, for users and roles, is out-ranked by the caller. An unknown target
/// is named with the contract's code for its kind: 404 NotFound for a user (API.md §6), 400
/// InvalidTarget for a client and 400 NotFound for a role (Liquid's codes, API.md §1).
async fn check_targets(
    state: &AppState,
    caller: &Caller,
    targets: &Targets,
) -> Result<(), ApiError> {
    let store = &*state.store;
    match targets {
        Targets::Users(ids) => {
            for id in ids {
                let (user, _) = load_aggregate::<User>(store, id).await?;
                let user = user
                    .filter(|u| !u.deleted)
                    .ok_or_else(|| ApiError::NotFound(json!({ "target": id.to_string() })))?;
                require_outranks_user(state, caller, &user.role).await?;
            }
        }
        Targets::Clients(ids) => {
            for id in ids {
                let (application, _) = load_aggregate::<Application>(store, id).await?;
                if application.is_none_or(|a| a.deleted) {
                    return Err(ApiError::Refused {
                        code: "InvalidTarget",
                        info: Some(json!({ "target": id.to_string() })),
                    });
                }
            }
        }
        Targets::Roles(ids) => {
            for id in ids {
                let (role, _) = load_aggregate::<Role>(store, id).await?;
                if role.is_none_or(|r| r.deleted) {
                    return Err(unknown_role(id));
                }
                if !caller.is_super_admin() && !caller_outranks(state, caller, id).await? {
                    return Err(outranked("the role", id));
                }
            }
        }
    }
    Ok(())
}
