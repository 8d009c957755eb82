//! Application writes (API.md §4): `create`, `update` and `delete` under `/client/admin-api/`,
//! for delegated tokens, behind the `session admin:system:<internal|external>-client:<write|
//! delete>` checks chosen by the application's role.
//!
//! Secrets are hashed (argon2id) before anything is decided and shown once, in the create
//! answer; the log, the answers of update and the read side never hold them in plain.

pub mod public;

use axum::extract::State;
use events::application::{
    Application, ApplicationChanges, ApplicationCommand, CreateApplication, UpdateApplication,
};
use events::scopes::Scope;
use events::values::{
    ApplicationDisplayName, ApplicationId, ClientId, ClientRole, ClientSecret, Grant, RedirectUri,
};
use serde_json::json;
use utoipa::ToSchema;

use crate::pipeline::{execute, load_aggregate};
use crate::schemas::{ClientAnswer, CreatedClient};
use crate::AppState;
use events::application::ApplicationView;
use http_edge::auth::{Caller, Edge};
use http_edge::body::{Body, Fields, Json};
use http_edge::envelope::{Answer, ApiError};
use http_edge::{Doc, Routes};

/// The application writes, with their documentation.
pub fn router() -> Routes<AppState> {
    const WRITE: [&str; 2] = [
        "admin:system:internal-client:write",
        "admin:system:external-client:write",
    ];
    const DELETE: [&str; 2] = [
        "admin:system:internal-client:delete",
        "admin:system:external-client:delete",
    ];
    let missing = |doc: Doc| {
        doc.error(
            400,
            "InvalidTarget",
            "no application has this `_id` (Liquid's code)",
        )
    };
    Routes::new()
        .route(
            Doc::post("/client/admin-api/create", "Register an OAuth application")
                .session_any(
                    Edge::Admin,
                    &WRITE,
                    "`admin:system:internal-client:write` or \
                     `admin:system:external-client:write`, by the body's `role`.",
                )
                .json_body::<NewClient>()
                .write()
                .hashes()
                .ok::<ClientAnswer>("the application, with its secret (shown only here)")
                .error(
                    409,
                    "ResourceConflict",
                    "an application has this `id` already",
                )
                .error(
                    401,
                    "InsufficientPrivileges",
                    "a `scope` the caller does not hold",
                ),
            create,
        )
        .route(
            missing(
                Doc::patch("/client/admin-api/update", "Update an OAuth application")
                    .session_any(
                        Edge::Admin,
                        &WRITE,
                        "the write scope of the application's current role and of its new \
                         `role`: `admin:system:internal-client:write` or \
                         `admin:system:external-client:write`.",
                    )
                    .json_body::<ClientUpdate>()
                    .write()
                    .hashes()
                    .ok::<ClientAnswer>("the application after the update (no secret)"),
            )
            .error(
                409,
                "ResourceConflict",
                "an application has the new `id` already",
            )
            .error(
                401,
                "InsufficientPrivileges",
                "a `scope` the caller does not hold",
            ),
            update,
        )
        .route(
            missing(
                Doc::delete("/client/admin-api/delete", "Delete an OAuth application")
                    .session_any(
                        Edge::Admin,
                        &DELETE,
                        "`admin:system:internal-client:delete` or \
                         `admin:system:external-client:delete`, by the application's role.",
                    )
                    .json_body::<ClientTarget>()
                    .write()
                    .done("deleted; its tokens stop working"),
            ),
            remove,
        )
}

/// `{"client": ...}`: a live application as the API shows it, with `secret` only when it was
/// just set by `create` (shown that once; only its hash is kept).
fn client_answer(
    application: &Application,
    secret: Option<String>,
) -> Result<ClientAnswer, ApiError> {
    let application = ApplicationView::of(application)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a deleted application has no view")))?;
    Ok(ClientAnswer {
        client: CreatedClient {
            application,
            secret,
        },
    })
}

/// The session scope that writing (`write`) or deleting (`delete`) an application of `role`
/// takes.
fn scope_for(role: ClientRole, action: &str) -> String {
    let kind = match role {
        ClientRole::InternalClient => "internal-client",
        ClientRole::ExternalClient => "external-client",
    };
    format!("admin:system:{kind}:{action}")
}

/// Unknown applications are 400 InvalidTarget (Liquid's code).
fn invalid_target() -> ApiError {
    ApiError::Refused {
        code: "InvalidTarget",
        info: Some(json!({ "reason": "no application has this _id" })),
    }
}

/// `client create`. Unless the application is public, `secret` is required.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct NewClient {
    /// The OAuth `client_id`, unique.
    pub id: ClientId,
    pub display_name: ApplicationDisplayName,
    pub role: ClientRole,
    /// Default none.
    pub grants: Option<Vec<Grant>>,
    /// Default none.
    pub redirect_uris: Option<Vec<RedirectUri>>,
    /// Public applications have no secret and no client_credentials grant (default false).
    pub is_public: Option<bool>,
    /// Required unless `isPublic`.
    pub secret: Option<ClientSecret>,
    /// Scopes the caller holds (default `["delegated:all"]`).
    pub scope: Option<Vec<Scope>>,
}

impl Body for NewClient {
    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let id = fields.required("id");
        let display_name = fields.required("displayName");
        let role = fields.required("role");
        let grants = fields.optional_list("grants");
        let redirect_uris = fields.optional_list("redirectUris");
        let is_public = fields.optional("isPublic");
        let secret = if is_public == Some(Some(true)) {
            fields.optional("secret")
        } else {
            fields.required("secret").map(Some)
        };
        let scope = fields.optional_list("scope");
        Some(Self {
            id: id?,
            display_name: display_name?,
            role: role?,
            grants: grants?,
            redirect_uris: redirect_uris?,
            is_public: is_public?,
            secret: secret?,
            scope: scope?,
        })
    }
}

/// `client update`: the application and the fields to change; any other field is refused.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ClientUpdate {
    /// The application's `_id`.
    pub target: ApplicationId,
    /// The OAuth `client_id`, unique.
    pub id: Option<ClientId>,
    pub display_name: Option<ApplicationDisplayName>,
    pub role: Option<ClientRole>,
    pub grants: Option<Vec<Grant>>,
    pub redirect_uris: Option<Vec<RedirectUri>>,
    pub is_public: Option<bool>,
    pub secret: Option<ClientSecret>,
    /// Scopes the caller holds.
    pub scope: Option<Vec<Scope>>,
}

impl Body for ClientUpdate {
    const CLOSED: bool = true;

    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let target = fields.required("target");
        let id = fields.optional("id");
        let display_name = fields.optional("displayName");
        let role = fields.optional("role");
        let grants = fields.optional_list("grants");
        let redirect_uris = fields.optional_list("redirectUris");
        let is_public = fields.optional("isPublic");
        let secret = fields.optional("secret");
        let scope = fields.optional_list("scope");
        Some(Self {
            target: target?,
            id: id?,
            display_name: display_name?,
            role: role?,
            grants: grants?,
            redirect_uris: redirect_uris?,
            is_public: is_public?,
            secret: secret?,
            scope: scope?,
        })
    }
}

/// `client delete`.
#[derive(Debug, ToSchema)]
pub struct ClientTarget {
    /// The application's `_id`.
    pub target: ApplicationId,
}

impl Body for ClientTarget {
    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        Some(Self {
            target: fields.required("target")?,
        })
    }
}

/// An application may be given only scopes its creator holds: otherwise an admin allowed to
/// manage clients could mint a client more powerful than themselves.
fn check_scopes_held(caller: &Caller, scopes: &[Scope]) -> Result<(), ApiError> {
    let missing: Vec<&str> = scopes
        .iter()
        .map(Scope::as_str)
        .filter(|scope| !caller.holds(scope))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::InsufficientPrivileges(json!({
            "reason": "an application cannot be given a scope the caller does not hold",
            "scopes": missing,
        })))
    }
}

#[tracing::instrument(skip_all, fields(application))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(fields): Json<NewClient>,
) -> Result<Answer, ApiError> {
    let (client_id, display_name, role) = (fields.id, fields.display_name, fields.role);
    caller.require_session(&scope_for(role, "write"))?;
    let scope = fields.scope.unwrap_or_else(|| vec![Scope::delegated_all()]);
    check_scopes_held(&caller, &scope)?;
    let secret_hash = match &fields.secret {
        Some(secret) => Some(state.hasher.hash(secret.expose()).await?),
        None => None,
    };
    let id = ApplicationId::new();
    tracing::Span::current().record("application", tracing::field::display(id));
    let create = CreateApplication {
        id,
        client_id,
        display_name,
        role,
        grants: fields.grants.unwrap_or_default(),
        redirect_uris: fields.redirect_uris.unwrap_or_default(),
        is_public: fields.is_public.unwrap_or(false),
        secret_hash,
        scope,
    };
    let outcome = execute::<Application, _>(
        &*state.store,
        &id,
        &caller.command_context(),
        state.settings.command_attempts,
        |_| Ok(ApplicationCommand::Create(create.clone())),
    )
    .await?;
    let application = outcome
        .state
        .as_ref()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a created application has no state")))?;
    let secret = fields
        .secret
        .as_ref()
        .map(|secret| secret.expose().to_owned());
    Ok(Answer::ok(client_answer(application, secret)?).at(outcome.position))
}

#[tracing::instrument(skip_all, fields(application))]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Json(fields): Json<ClientUpdate>,
) -> Result<Answer, ApiError> {
    let id = fields.target;
    tracing::Span::current().record("application", tracing::field::display(id));

    let current = live(&state, id).await?;
    caller.require_session(&scope_for(current.role, "write"))?;
    if let Some(role) = fields.role {
        caller.require_session(&scope_for(role, "write"))?;
    }
    if let Some(scope) = &fields.scope {
        check_scopes_held(&caller, scope)?;
    }
    let secret_hash = match &fields.secret {
        Some(secret) => Some(state.hasher.hash(secret.expose()).await?),
        None => None,
    };
    let update = UpdateApplication {
        changes: ApplicationChanges {
            client_id: fields.id,
            display_name: fields.display_name,
            role: fields.role,
            grants: fields.grants,
            redirect_uris: fields.redirect_uris,
            is_public: fields.is_public,
        },
        secret_hash,
        scope: fields.scope,
    };
    let outcome = execute::<Application, _>(
        &*state.store,
        &id,
        &caller.command_context(),
        state.settings.command_attempts,
        |state| {
            // Decided again on each attempt: the role may have changed since the check above.
            let application = state
                .as_ref()
                .filter(|a| !a.deleted)
                .ok_or_else(invalid_target)?;
            caller.require_session(&scope_for(application.role, "write"))?;
            Ok(ApplicationCommand::Update(update.clone()))
        },
    )
    .await?;
    let (position, after) = (outcome.position, outcome.state);
    // Tokens carry the client's scope: drop cached answers so the change is seen at once.
    state.edge.access.forget(&id.to_string());
    let application = after.as_ref().ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!("an updated application has no state"))
    })?;
    Ok(Answer::ok(client_answer(application, None)?).at(position))
}

#[tracing::instrument(skip_all, fields(application))]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Json(ClientTarget { target: id }): Json<ClientTarget>,
) -> Result<Answer, ApiError> {
    tracing::Span::current().record("application", tracing::field::display(id));
    let current = live(&state, id).await?;
    caller.require_session(&scope_for(current.role, "delete"))?;
    let outcome = execute::<Application, _>(
        &*state.store,
        &id,
        &caller.command_context(),
        state.settings.command_attempts,
        |state| {
            let application = state
                .as_ref()
                .filter(|a| !a.deleted)
                .ok_or_else(invalid_target)?;
            caller.require_session(&scope_for(application.role, "delete"))?;
            Ok(ApplicationCommand::Delete)
        },
    )
    .await?;
    // Its tokens stop at once, not when the revocation cache expires.
    state.edge.access.forget(&id.to_string());
    tracing::info!(application = %id, "application deleted");
    Ok(Answer::done().at(outcome.position))
}

/// The live application `id`, or 400 InvalidTarget.
async fn live(state: &AppState, id: ApplicationId) -> Result<Application, ApiError> {
    let (application, _) = load_aggregate::<Application>(&*state.store, &id).await?;
    application
        .filter(|application| !application.deleted)
        .ok_or_else(invalid_target)
}
