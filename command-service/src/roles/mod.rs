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
use serde_json::json;
use utoipa::ToSchema;

use crate::pipeline::{execute, Failure};
use crate::schemas::RoleAnswer;
use crate::AppState;
use events::role::RoleView;
use http_edge::auth::{Caller, Edge};
use http_edge::body::{Body, Fields, Json};
use http_edge::envelope::{Answer, ApiError};
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
                .json_body::<NewRole>()
                .write()
                .ok::<RoleAnswer>("the role created")
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
                .json_body::<RoleUpdate>()
                .write()
                .ok::<RoleAnswer>("the role after the update"),
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
                .json_body::<RoleTarget>()
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
    Json(body): Json<NewRole>,
) -> Result<Answer, ApiError> {
    let NewRole {
        id,
        display_name,
        ranking,
        description,
    } = body;
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
    Json(body): Json<RoleUpdate>,
) -> Result<Answer, ApiError> {
    let RoleUpdate {
        id,
        display_name,
        ranking,
        description,
    } = body;
    let changes = UpdateRole {
        display_name,
        ranking,
        description,
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

/// `roles create`; a `scope` is ignored (scopes are given through `access`).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct NewRole {
    pub id: RoleId,
    pub display_name: RoleDisplayName,
    pub ranking: Ranking,
    pub description: Option<RoleDescription>,
}

impl Body for NewRole {
    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let id = fields.required("id");
        let display_name = fields.required("displayName");
        let ranking = fields.required("ranking");
        let description = fields.optional("description");
        Some(Self {
            id: id?,
            display_name: display_name?,
            ranking: ranking?,
            description: description?,
        })
    }
}

/// `roles update`: the role and the fields to change; any other field is refused.
/// `description: null` clears the description.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct RoleUpdate {
    /// The role's id (`target` is accepted instead).
    pub id: RoleId,
    pub display_name: Option<RoleDisplayName>,
    pub ranking: Option<Ranking>,
    #[schema(nullable)]
    pub description: Option<Option<RoleDescription>>,
}

impl Body for RoleUpdate {
    const CLOSED: bool = true;

    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let id = role_of(fields);
        let display_name = fields.optional("displayName");
        let ranking = fields.optional("ranking");
        let description = if fields.has("description") {
            fields.optional("description").map(Some)
        } else {
            Some(None)
        };
        Some(Self {
            id: id?,
            display_name: display_name?,
            ranking: ranking?,
            description: description?,
        })
    }
}

/// `roles delete`: the role; its users move to the default role.
#[derive(Debug, ToSchema)]
pub struct RoleTarget {
    /// The role's id (`target` is accepted instead).
    pub id: RoleId,
}

impl Body for RoleTarget {
    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        Some(Self {
            id: role_of(fields)?,
        })
    }
}

/// The role a request is about: `id` (Liquid's field), or `target` as this API names targets
/// elsewhere.
fn role_of(fields: &mut Fields<'_>) -> Option<RoleId> {
    let (key, other) = if fields.has("id") || !fields.has("target") {
        ("id", "target")
    } else {
        ("target", "id")
    };
    fields.value(other);
    fields.required(key)
}
