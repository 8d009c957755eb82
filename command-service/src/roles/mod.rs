//! Role writes (API.md §5): `create`, `update` and `delete` under `/roles/admin-api/` (delegated
//! tokens) and `/roles/client-api/` (client tokens), behind the `shared E:roles:write` and
//! `shared E:roles:delete` checks.
//!
//! - this file: the routes, the bodies, and the role as the API shows it;
//! - [`delete`]: deleting a role and moving its users to the default role.

mod delete;

use axum::extract::State;
use events::role::{CreateRole, Role, RoleCommand, UpdateRole, ROLE_ID_CLAIM};
use events::store::UniqueClaim;
use events::values::{Ranking, RoleDescription, RoleDisplayName, RoleId};
use serde_json::{json, Map, Value};

use crate::pipeline::{execute, Failure};
use crate::schemas::{self, RoleAnswer};
use crate::AppState;
use events::role::RoleView;
use http_edge::auth::{Caller, Edge};
use http_edge::envelope::{Answer, ApiError, FieldError, FieldErrors};
use http_edge::extract::JsonBody;
use http_edge::{Doc, Routes};

/// The role writes of both edges, with their documentation.
pub fn router() -> Routes<AppState> {
    [Edge::Admin, Edge::Client]
        .into_iter()
        .fold(Routes::new(), |routes, edge| {
            routes.merge(edge_router(edge))
        })
}

fn edge_router(edge: Edge) -> Routes<AppState> {
    let at = |path: &str| format!("/roles/{}-api/{path}", edge.as_str());
    let missing = |doc: Doc| doc.error(400, "NotFound", "no role has this id (Liquid's code)");
    Routes::new()
        .route(
            Doc::post(at("create"), "Create a role")
                .shared(edge, "roles:write")
                .json_body::<schemas::NewRole>()
                .write()
                .ok::<schemas::RoleAnswer>("the role created")
                .error(400, "DuplicateResource", "a role has this id already"),
            create,
        )
        .route(
            missing(
                Doc::patch(
                    at("update"),
                    "Update a role's display name, ranking or description",
                )
                .shared(edge, "roles:write")
                .json_body::<schemas::RoleUpdate>()
                .write()
                .ok::<schemas::RoleAnswer>("the role after the update"),
            )
            .error(400, "SystemRoleUpdate", "the role is a system role"),
            update,
        )
        .route(
            missing(
                Doc::delete(
                    at("delete"),
                    "Delete a role; its users move to the default role",
                )
                .shared(edge, "roles:delete")
                .json_body::<schemas::RoleTarget>()
                .write()
                .done("deleted"),
            )
            .error(400, "SystemRoleDelete", "the role is a system role"),
            delete::delete,
        )
}

/// `{"role": ...}`: a live role as the API shows it.
fn role_answer(role: &Role) -> Result<RoleAnswer, ApiError> {
    RoleView::of(role)
        .map(|role| RoleAnswer { role })
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a deleted role has no view")))
}

/// Unknown roles are 400 NotFound on role routes (Liquid's code), unlike unknown users (404).
fn unknown_role() -> ApiError {
    ApiError::Refused {
        code: "NotFound",
        info: Some(json!({ "reason": "no role has this id" })),
    }
}

#[tracing::instrument(skip_all, fields(role_id))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Answer, ApiError> {
    let body = object(&body)?;
    let mut errors = FieldErrors::new();
    let id = errors.parse("id", field(body, "id"), |v| RoleId::parse(text(v, "id")?));
    let display_name = errors.parse("displayName", field(body, "displayName"), |v| {
        RoleDisplayName::parse(text(v, "displayName")?)
    });
    let ranking = errors.parse("ranking", field(body, "ranking"), ranking);
    let description = optional(&mut errors, body, "description", |v| {
        RoleDescription::parse(text(v, "description")?)
    });
    errors.into_result()?;
    let (Some(id), Some(display_name), Some(ranking), Some(description)) =
        (id, display_name, ranking, description)
    else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "a parsed role body lacks a field"
        )));
    };
    tracing::Span::current().record("role_id", id.as_str());
    // A body's `scope` is ignored (API.md §5): scopes are given through `access`.
    let create = CreateRole {
        id: id.clone(),
        display_name,
        ranking,
        description,
        scope: Vec::new(),
        system: false,
    };
    let outcome = execute::<Role, _>(
        &*state.store,
        &id,
        &caller.command_context(),
        state.settings.command_attempts,
        |current| match current {
            // The same id in the same case: the claim would say so too; answer alike.
            Some(role) if !role.deleted => {
                Err(Failure::Taken(UniqueClaim::new(ROLE_ID_CLAIM, id.as_str())))
            }
            _ => Ok(RoleCommand::Create(create.clone())),
        },
    )
    .await?;
    let role = outcome
        .state
        .as_ref()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a created role has no state")))?;
    Ok(Answer::ok(role_answer(role)?).at(outcome.position))
}

#[tracing::instrument(skip_all, fields(role_id))]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Answer, ApiError> {
    let body = object(&body)?;
    let mut errors = FieldErrors::new();
    for (key, value) in body {
        if !["id", "target", "displayName", "ranking", "description"].contains(&key.as_str()) {
            errors.push(FieldError::body(
                key.as_str(),
                value.clone(),
                "is not a field of a role that can be updated",
            ));
        }
    }
    let id = target(&mut errors, body);
    let mut changes = UpdateRole::default();
    if let Some(value) = body.get("displayName") {
        changes.display_name = errors.parse("displayName", value, |v| {
            RoleDisplayName::parse(text(v, "displayName")?)
        });
    }
    if let Some(value) = body.get("ranking") {
        changes.ranking = errors.parse("ranking", value, ranking);
    }
    changes.description = optional(&mut errors, body, "description", |v| {
        RoleDescription::parse(text(v, "description")?)
    })
    .filter(|_| body.contains_key("description"));
    errors.into_result()?;
    let Some(id) = id else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "a parsed target is missing"
        )));
    };
    tracing::Span::current().record("role_id", id.as_str());
    let id = resolve(&state, &id).await?;
    let outcome = execute::<Role, _>(
        &*state.store,
        &id,
        &caller.command_context(),
        state.settings.command_attempts,
        |current| match current {
            Some(role) if !role.deleted => Ok(RoleCommand::Update(changes.clone())),
            _ => Err(Failure::Api(unknown_role())),
        },
    )
    .await?;
    let role = outcome
        .state
        .as_ref()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("an updated role has no state")))?;
    Ok(Answer::ok(role_answer(role)?).at(outcome.position))
}

/// The stream id of the live role whose id is `id` in any case (role ids are unique
/// case-insensitively), or 400 NotFound.
async fn resolve(state: &AppState, id: &RoleId) -> Result<RoleId, ApiError> {
    let holder = state
        .store
        .claim_holder(&UniqueClaim::new(ROLE_ID_CLAIM, id.as_str()))
        .await?;
    holder
        .as_deref()
        .and_then(|stream| stream.strip_prefix("role-"))
        .and_then(|id| RoleId::parse(id).ok())
        .ok_or_else(unknown_role)
}

// ---------------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------------

fn object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.as_object()
        .ok_or_else(|| ApiError::Body("the body must be a JSON object".into()))
}

static MISSING: Value = Value::Null;

/// The value of `key`, `null` when absent (so that "is required" is reported at its path).
fn field<'a>(body: &'a Map<String, Value>, key: &str) -> &'a Value {
    body.get(key).unwrap_or(&MISSING)
}

fn text<'a>(
    value: &'a Value,
    field: &'static str,
) -> Result<&'a str, events::values::ValidationError> {
    match value {
        Value::String(text) => Ok(text),
        Value::Null => Err(events::values::ValidationError::new(field, "is required")),
        _ => Err(events::values::ValidationError::new(
            field,
            "must be a string",
        )),
    }
}

fn ranking(value: &Value) -> Result<Ranking, events::values::ValidationError> {
    match value {
        Value::Null => Err(events::values::ValidationError::new(
            "ranking",
            "is required",
        )),
        Value::Number(number) => number
            .as_i64()
            .ok_or_else(|| {
                events::values::ValidationError::new("ranking", "must be an integer of at least 1")
            })
            .and_then(Ranking::new),
        _ => Err(events::values::ValidationError::new(
            "ranking",
            "must be an integer of at least 1",
        )),
    }
}

/// An optional field: absent or `null` is `Some(None)`; a value is parsed. `None` when invalid.
fn optional<T>(
    errors: &mut FieldErrors,
    body: &Map<String, Value>,
    key: &str,
    parse: impl FnOnce(&Value) -> Result<T, events::values::ValidationError>,
) -> Option<Option<T>> {
    match body.get(key) {
        None | Some(Value::Null) => Some(None),
        Some(value) => errors.parse(key, value, parse).map(Some),
    }
}

/// The role a request is about: `id` (Liquid's field), or `target` as this API names targets
/// elsewhere.
fn target(errors: &mut FieldErrors, body: &Map<String, Value>) -> Option<RoleId> {
    let key = if body.contains_key("id") || !body.contains_key("target") {
        "id"
    } else {
        "target"
    };
    errors.parse(key, field(body, key), |v| RoleId::parse(text(v, "id")?))
}
