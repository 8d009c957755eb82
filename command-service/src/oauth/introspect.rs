//! `POST /oauth/introspect` (RFC 7662, behind Liquid's `client:oauth:introspect`): a resource
//! server asks whether a token is live, and whose it is.
//!
//! The answer serves both kinds of caller: Liquid's envelope
//! `{"ok":1,"data":{"tokenInfo":{...}}}` (`tokenInfo: null` for a token that is not live), and
//! beside it RFC 7662's members at the top level (`active`, and for a live token `scope`,
//! `client_id`, `sub`, `exp`, `iat`, `token_type`, `username`).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use events::application::ApplicationView;
use events::user::view::UserView;
use events::values::{ApplicationId, UserId};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::load_application;
use crate::users::view::user_view;
use crate::AppState;
use http_edge::auth::access::AccountStatus;
use http_edge::auth::{TokenKind, TokenUse};
use http_edge::body::{Body, Fields, JsonOrForm};
use http_edge::envelope::ApiError;

/// The token to introspect (a form, as RFC 7662 sends it, or JSON).
#[derive(Debug, ToSchema)]
pub struct IntrospectionRequest {
    pub token: String,
    /// Ignored: only access tokens are live to a resource server.
    pub token_type_hint: Option<String>,
}

impl Body for IntrospectionRequest {
    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let token = fields.required("token");
        let token_type_hint = fields.optional("token_type_hint");
        Some(Self {
            token: token?,
            token_type_hint: token_type_hint?,
        })
    }
}

/// A live token, as Liquid describes it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    pub access_token: String,
    #[schema(value_type = String, format = DateTime)]
    pub access_token_expires_at: DateTime<Utc>,
    pub scope: Vec<String>,
    /// The application the token was issued to (never its secret).
    pub client: Option<ApplicationView>,
    /// The user, for a user's (delegated) token.
    pub user: Option<UserView>,
}

/// Liquid's `data`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Introspection {
    pub token_info: Option<TokenInfo>,
}

/// `POST /oauth/introspect`.
pub async fn introspect(
    State(state): State<AppState>,
    JsonOrForm(request): JsonOrForm<IntrospectionRequest>,
) -> Result<Response, ApiError> {
    let Some(claims) = state
        .edge
        .tokens
        .verify(&request.token)
        .ok()
        .filter(|claims| claims.token_use == TokenUse::Access)
    else {
        return Ok(inactive());
    };
    if state.edge.access.status(&claims).await? != AccountStatus::Active {
        return Ok(inactive());
    }
    let client = match ApplicationId::parse(&claims.client) {
        Ok(id) => load_application(&state, id).await?,
        Err(_) => None,
    };
    let user = match (claims.kind, UserId::parse(&claims.sub)) {
        (TokenKind::Delegated, Ok(id)) => Some(user_view(&state, id, None).await?),
        _ => None,
    };
    let expires_at =
        DateTime::from_timestamp(i64::try_from(claims.exp).unwrap_or(0), 0).unwrap_or_default();
    let rfc = json!({
        "active": true,
        "scope": claims.scope.join(" "),
        "client_id": client.as_ref().map(|c| c.client_id.to_string()),
        "sub": claims.sub,
        "username": user.as_ref().map(|u| u.username.clone()),
        "token_type": "Bearer",
        "exp": claims.exp,
        "iat": claims.iat,
    });
    let info = TokenInfo {
        access_token: request.token,
        access_token_expires_at: expires_at,
        scope: claims.scope.clone(),
        client: client.as_ref().and_then(ApplicationView::of),
        user,
    };
    Ok(answer(Some(info), rfc))
}

fn inactive() -> Response {
    answer(None, json!({ "active": false }))
}

/// The envelope, with RFC 7662's members beside it.
fn answer(info: Option<TokenInfo>, rfc: Value) -> Response {
    let mut body = json!({ "ok": 1, "data": Introspection { token_info: info } });
    if let (Some(body), Some(rfc)) = (body.as_object_mut(), rfc.as_object()) {
        body.extend(rfc.clone());
    }
    let mut response = Json(body).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}
