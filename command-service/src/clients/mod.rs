//! Application writes (API.md §4): `create`, `update` and `delete` under `/client/admin-api/`,
//! for delegated tokens, behind the `session admin:system:<internal|external>-client:<write|
//! delete>` checks chosen by the application's role.
//!
//! Secrets are hashed (argon2id) before anything is decided and shown once, in the create
//! answer; the log, the answers of update and the read side never hold them in plain.

use axum::extract::State;
use events::application::{
    Application, ApplicationChanges, ApplicationCommand, CreateApplication, UpdateApplication,
};
use events::scopes::Scope;
use events::values::{
    ApplicationDisplayName, ApplicationId, ClientId, ClientRole, ClientSecret, Grant, RedirectUri,
    ValidationError,
};
use serde_json::{json, Map, Value};

use crate::pipeline::{execute, load_aggregate};
use crate::schemas::{self, ClientAnswer, CreatedClient};
use crate::AppState;
use events::application::ApplicationView;
use http_edge::auth::{Caller, Edge};
use http_edge::envelope::{Answer, ApiError, FieldError, FieldErrors};
use http_edge::extract::JsonBody;
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
                .json_body::<schemas::ClientBody>()
                .write()
                .hashes()
                .ok::<schemas::ClientAnswer>("the application, with its secret (shown only here)")
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
                    .json_body::<schemas::ClientBody>()
                    .write()
                    .hashes()
                    .ok::<schemas::ClientAnswer>("the application after the update (no secret)"),
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
                    .json_body::<schemas::ClientTarget>()
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

/// The fields of a create or update body, each parsed when present.
#[derive(Default)]
struct Fields {
    client_id: Option<ClientId>,
    display_name: Option<ApplicationDisplayName>,
    role: Option<ClientRole>,
    grants: Option<Vec<Grant>>,
    redirect_uris: Option<Vec<RedirectUri>>,
    is_public: Option<bool>,
    secret: Option<ClientSecret>,
    scope: Option<Vec<Scope>>,
}

const FIELDS: [&str; 8] = [
    "id",
    "displayName",
    "role",
    "grants",
    "redirectUris",
    "isPublic",
    "secret",
    "scope",
];

/// Parses every field of `body` that is present, recording each invalid one; `required` names
/// the fields that must be present.
fn parse_fields(body: &Map<String, Value>, required: &[&str], errors: &mut FieldErrors) -> Fields {
    for key in required {
        if body.get(*key).is_none_or(Value::is_null) {
            errors.push(FieldError::body(*key, Value::Null, "is required"));
        }
    }
    let present = |key: &str| body.get(key).filter(|v| !v.is_null());
    let mut fields = Fields::default();
    if let Some(value) = present("id") {
        fields.client_id = errors.parse("id", value, |v| ClientId::parse(text(v, "id")?));
    }
    if let Some(value) = present("displayName") {
        fields.display_name = errors.parse("displayName", value, |v| {
            ApplicationDisplayName::parse(text(v, "displayName")?)
        });
    }
    if let Some(value) = present("role") {
        fields.role = errors.parse("role", value, |v| ClientRole::parse(text(v, "role")?));
    }
    if let Some(value) = present("grants") {
        fields.grants = list(errors, "grants", value, Grant::parse);
    }
    if let Some(value) = present("redirectUris") {
        fields.redirect_uris = list(errors, "redirectUris", value, RedirectUri::parse);
    }
    if let Some(value) = present("isPublic") {
        fields.is_public = errors.parse("isPublic", value, |v| {
            v.as_bool()
                .ok_or_else(|| ValidationError::new("isPublic", "must be true or false"))
        });
    }
    if let Some(value) = present("secret") {
        fields.secret = errors.parse("secret", value, |v| ClientSecret::parse(text(v, "secret")?));
    }
    if let Some(value) = present("scope") {
        fields.scope = list(errors, "scope", value, Scope::parse);
    }
    fields
}

fn text<'a>(value: &'a Value, field: &'static str) -> Result<&'a str, ValidationError> {
    value
        .as_str()
        .ok_or_else(|| ValidationError::new(field, "must be a string"))
}

/// An array of strings, each parsed; every invalid item is reported at `path[i]`.
fn list<T>(
    errors: &mut FieldErrors,
    path: &str,
    value: &Value,
    parse: impl Fn(&str) -> Result<T, ValidationError>,
) -> Option<Vec<T>> {
    let Some(items) = value.as_array() else {
        errors.push(FieldError::body(
            path,
            value.clone(),
            "must be an array of strings",
        ));
        return None;
    };
    let mut parsed = Vec::with_capacity(items.len());
    let mut valid = true;
    for (index, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{index}]");
        match item
            .as_str()
            .ok_or_else(|| ValidationError::new("", "must be a string"))
            .and_then(&parse)
        {
            Ok(value) => parsed.push(value),
            Err(error) => {
                valid = false;
                errors.push(FieldError::body(item_path, item.clone(), error.msg));
            }
        }
    }
    valid.then_some(parsed)
}

fn object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.as_object()
        .ok_or_else(|| ApiError::Body("the body must be a JSON object".into()))
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
    JsonBody(body): JsonBody,
) -> Result<Answer, ApiError> {
    let body = object(&body)?;
    let mut errors = FieldErrors::new();
    let is_public = body.get("isPublic").and_then(Value::as_bool) == Some(true);
    let required: &[&str] = if is_public {
        &["id", "displayName", "role"]
    } else {
        &["id", "displayName", "role", "secret"]
    };
    let fields = parse_fields(body, required, &mut errors);
    errors.into_result()?;
    let (Some(client_id), Some(display_name), Some(role)) =
        (fields.client_id, fields.display_name, fields.role)
    else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "a parsed application body lacks a field"
        )));
    };
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
    JsonBody(body): JsonBody,
) -> Result<Answer, ApiError> {
    let body = object(&body)?;
    let mut errors = FieldErrors::new();
    for (key, value) in body {
        if key != "target" && !FIELDS.contains(&key.as_str()) {
            errors.push(FieldError::body(
                key.as_str(),
                value.clone(),
                "is not a field of an application",
            ));
        }
    }
    let id = target(&mut errors, body);
    let fields = parse_fields(body, &[], &mut errors);
    errors.into_result()?;
    let Some(id) = id else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "a parsed target is missing"
        )));
    };
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
            client_id: fields.client_id,
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
    JsonBody(body): JsonBody,
) -> Result<Answer, ApiError> {
    let body = object(&body)?;
    let mut errors = FieldErrors::new();
    let id = target(&mut errors, body);
    errors.into_result()?;
    let Some(id) = id else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "a parsed target is missing"
        )));
    };
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

/// The `target` of a request: an application `_id`.
fn target(errors: &mut FieldErrors, body: &Map<String, Value>) -> Option<ApplicationId> {
    let value = body.get("target").unwrap_or(&Value::Null);
    errors.parse("target", value, |v| match v {
        Value::Null => Err(ValidationError::new("target", "is required")),
        Value::String(id) => ApplicationId::parse(id),
        _ => Err(ValidationError::new("target", "must be an application _id")),
    })
}

/// The live application `id`, or 400 InvalidTarget.
async fn live(state: &AppState, id: ApplicationId) -> Result<Application, ApiError> {
    let (application, _) = load_aggregate::<Application>(&*state.store, &id).await?;
    application
        .filter(|application| !application.deleted)
        .ok_or_else(invalid_target)
}
