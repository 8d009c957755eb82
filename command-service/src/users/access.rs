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
use events::scopes::{Scope, ScopeHolder, ScopeOperation};
use events::user::{User, UserCommand};
use events::values::{ApplicationId, RoleId, UserId, ValidationError};
use serde_json::json;
use utoipa::ToSchema;

use super::{caller_outranks, outranked, require_outranks_user, unknown_role};
use crate::pipeline::{execute, load_aggregate};
use crate::AppState;
use http_edge::auth::Caller;
use http_edge::body::{Body, Fields, JsonBody};
use http_edge::envelope::{Answer, ApiError, FieldError, FieldErrors};

/// `access`: changes the scope of users, applications or roles. Every scope must exist and
/// be held by the caller's own token.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct AccessBody {
    /// User `_id`s, application `_id`s or role ids, as `targetType` says.
    #[schema(value_type = Vec<String>, min_items = 1)]
    pub targets: Targets,
    pub target_type: ScopeHolder,
    pub scope: Vec<Scope>,
    pub operation: ScopeOperation,
}

/// The targets of an `access` request, of the kind its `targetType` names.
#[derive(Debug)]
pub enum Targets {
    Users(Vec<UserId>),
    Clients(Vec<ApplicationId>),
    Roles(Vec<RoleId>),
}

impl Body for AccessBody {
    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let target_type = fields.required("targetType");
        let operation = fields.required("operation");
        let scope = fields.list("scope", false);
        let names: Option<Vec<String>> = fields.list("targets", true);
        let targets = match (target_type, names) {
            (Some(kind), Some(names)) => read_targets(fields, kind, &names),
            _ => None,
        };
        Some(Self {
            targets: targets?,
            target_type: target_type?,
            scope: scope?,
            operation: operation?,
        })
    }
}

/// Each of `names` as an id of `kind`, every invalid one reported at `targets[i]`.
fn read_targets(fields: &mut Fields<'_>, kind: ScopeHolder, names: &[String]) -> Option<Targets> {
    fn each<T>(
        fields: &mut Fields<'_>,
        names: &[String],
        parse: impl Fn(&str) -> Result<T, ValidationError>,
    ) -> Option<Vec<T>> {
        let mut ids = Vec::with_capacity(names.len());
        for (index, name) in names.iter().enumerate() {
            match parse(name) {
                Ok(id) => ids.push(id),
                Err(error) => fields.error(&format!("targets[{index}]"), json!(name), error.msg),
            }
        }
        (ids.len() == names.len()).then_some(ids)
    }
    match kind {
        ScopeHolder::User => each(fields, names, UserId::parse).map(Targets::Users),
        ScopeHolder::Client => each(fields, names, ApplicationId::parse).map(Targets::Clients),
        ScopeHolder::Role => each(fields, names, RoleId::parse).map(Targets::Roles),
    }
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub, edge = caller.edge.as_str()))]
pub async fn change_access(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(raw): JsonBody,
) -> Result<Answer, ApiError> {
    let mut errors = FieldErrors::new();
    let body = AccessBody::read_json(&raw, &mut errors)?;
    // Nobody hands out more than they hold: known scopes the caller lacks are refused with the
    // unknown ones.
    let named = raw["scope"].as_array().into_iter().flatten().enumerate();
    for (index, item) in named {
        let Some(scope) = item.as_str().and_then(|s| Scope::parse(s).ok()) else {
            continue;
        };
        if !caller.holds(scope.as_str()) {
            errors.push(FieldError::body(
                format!("scope[{index}]"),
                item.clone(),
                format!("{scope} is not granted to the caller, who cannot hand it out"),
            ));
        }
    }
    errors.into_result()?;
    let Some(AccessBody {
        targets,
        scope: scopes,
        operation,
        ..
    }) = body
    else {
        return Err(ApiError::internal(anyhow::anyhow!("a body read no value")));
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
