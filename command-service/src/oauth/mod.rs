//! `POST /oauth/token` (API.md §2): the `client_credentials`, `password` and `refresh_token`
//! grants, answered in OAuth's shape (RFC 6749 §5).
//!
//! There is no read model on the write side: an application is found by its OAuth `client_id`
//! through the store's `client-id` uniqueness claim, a user by the `username` or `email` claim,
//! and both are loaded from their streams. A wrong secret and an unknown client get the same
//! answer, and an unknown user costs a password check all the same, so that neither a message
//! nor a timing tells which one exists.

use std::time::Duration;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, PRAGMA};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use events::application::{Application, CLIENT_ID_CLAIM};
use events::role::Role;
use events::scopes::{self, Scope};
use events::store::{RecordedEvent, UniqueClaim};
use events::user::{User, EMAIL_CLAIM, USERNAME_CLAIM};
use events::values::{
    ApplicationId, ClientRole, Email, Grant, RoleId, SecretHash, UserId, Username,
};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::pipeline::load_aggregate;
use crate::signin::guard::Refusal;
use crate::signin::sessions::Redeemed;
use crate::AppState;
use http_edge::auth::revocation::{self, Rotation};
use http_edge::auth::{TokenClaims, TokenKind, TokenUse};
use http_edge::envelope::{ApiError, OAuthError};
use http_edge::rate_limit::ClientAddress;
use http_edge::{Doc, Edge, Routes};
use sha2::Digest;

pub mod introspect;

/// The token and introspection endpoints, with their documentation.
pub fn router() -> Routes<AppState> {
    let introspection = Doc::post("/oauth/introspect", "Introspect a token (RFC 7662)")
        .session(Edge::Client, "client:oauth:introspect")
        .json_body::<introspect::IntrospectionRequest>()
        .describe(
            "`token` as a form (RFC 7662) or JSON. The answer is Liquid's envelope \
             (`data.tokenInfo`, `null` for a token that is not live: unknown, expired, revoked, \
             a refresh token) with RFC 7662's members beside it: `active`, and for a live token \
             `scope` (space-separated), `client_id`, `sub`, `username`, `token_type`, `exp`, \
             `iat`.",
        )
        .ok::<introspect::Introspection>("what the token is");
    Routes::new()
        .route(introspection, introspect::introspect)
        .route(
            Doc::post("/oauth/token", "Issue an access token")
                .public()
                .describe(
                    "Grants: `client_credentials` (`client_id`, `client_secret`, `scope`), \
                 `password` (`username` or email, `password`, `client_id`, `client_secret`; the \
                 application must list the grant) and `refresh_token`. Client credentials may \
                 also come as HTTP Basic authentication. Errors are in OAuth's shape.",
                )
                .token_requests()
                .form_body::<TokenRequest>()
                .plain::<TokenResponse>("application/json", "the token")
                .oauth_errors()
                .error(
                    400,
                    "invalid_request",
                    "the form is malformed or lacks a field",
                )
                .error(401, "invalid_client", "unknown application or wrong secret")
                .error(
                    429,
                    "RateLimitError",
                    "over the token rate limit of this `client_id` or IP address (`Retry-After`; \
                 `USERLEDGER_RATE_LIMIT_TOKEN_PER_MINUTE`), in the contract's error envelope",
                )
                .error(
                    401,
                    "invalid_grant",
                    "wrong username or password, or a bad refresh token",
                )
                .error(
                    401,
                    "invalid_scope",
                    "a requested scope is not allowed to the application",
                )
                .error(
                    400,
                    "unsupported_grant_type",
                    "a grant type this server does not know (RFC 6749 §5.2)",
                )
                .error(
                    500,
                    "server_error",
                    "an unexpected failure (logged, never detailed)",
                )
                .error(
                    503,
                    "temporarily_unavailable",
                    "the password hashing pool is saturated",
                ),
            token,
        )
}

/// A token request (form-urlencoded); which fields matter depends on `grant_type`. Client
/// credentials may also come as HTTP Basic authentication.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// An unknown grant is 400 unsupported_grant_type.
    #[schema(pattern = "^(client_credentials|password|refresh_token|authorization_code)$")]
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    /// Space-separated scopes (`client_credentials`): each must be allowed by the
    /// application's scope plus its role's.
    scope: Option<String>,
    /// `password` grant: a username or an email.
    username: Option<String>,
    /// `password` grant.
    password: Option<String>,
    /// `refresh_token` grant.
    refresh_token: Option<String>,
    /// `authorization_code` grant: the code `/oauth/authorize` sent back.
    code: Option<String>,
    /// `authorization_code` grant: the `redirect_uri` the code was asked with.
    redirect_uri: Option<String>,
    /// `authorization_code` grant: the PKCE verifier (43..128 characters) whose S256 digest
    /// was the `code_challenge`.
    code_verifier: Option<String>,
}

/// A token (RFC 6749 §5.1), outside the API's envelope like every OAuth answer; sent with
/// `Cache-Control: no-store`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// A JWT, valid 15 minutes.
    access_token: String,
    #[schema(pattern = "^Bearer$")]
    token_type: &'static str,
    /// Seconds.
    expires_in: u64,
    /// With the `password` and `refresh_token` grants (valid 14 days).
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

impl IntoResponse for TokenResponse {
    fn into_response(self) -> Response {
        let mut response = Json(self).into_response();
        // RFC 6749 §5.1: tokens must not be cached.
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
        response
    }
}

const BAD_CLIENT: &str = "client authentication failed";
const BAD_USER: &str = "the username or password is incorrect";

#[tracing::instrument(skip_all, fields(grant_type))]
async fn token(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Result<TokenResponse, OAuthError> {
    let Form(mut request) = form.map_err(|rejection| {
        OAuthError::invalid_request(format!(
            "the body must be application/x-www-form-urlencoded: {}",
            rejection.body_text()
        ))
    })?;
    basic_credentials(&headers, &mut request)?;
    let grant_type = required(&request.grant_type, "grant_type")?.to_owned();
    tracing::Span::current().record("grant_type", grant_type.as_str());
    match grant_type.as_str() {
        "client_credentials" => client_credentials(&state, &request).await,
        "password" => {
            let user_agent = headers
                .get(axum::http::header::USER_AGENT)
                .and_then(|value| value.to_str().ok());
            password(&state, &request, address, user_agent).await
        }
        "refresh_token" => refresh(&state, &request).await,
        "authorization_code" => authorization_code(&state, &request).await,
        other => Err(OAuthError::unsupported_grant_type(format!(
            "the grant type {other:?} is not supported"
        ))),
    }
}

/// RFC 6749 §2.3.1 also lets a client authenticate with HTTP Basic; credentials in the body
/// take precedence.
fn basic_credentials(headers: &HeaderMap, request: &mut TokenRequest) -> Result<(), OAuthError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(());
    };
    let Some(encoded) = value.to_str().ok().and_then(|v| {
        v.strip_prefix("Basic ")
            .or_else(|| v.strip_prefix("basic "))
    }) else {
        return Ok(());
    };
    if request.client_id.is_some() {
        return Ok(());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| OAuthError::invalid_request("malformed Basic credentials"))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| OAuthError::invalid_request("malformed Basic credentials"))?;
    request.client_id = Some(id.to_owned());
    request.client_secret = Some(secret.to_owned());
    Ok(())
}

fn required<'a>(field: &'a Option<String>, name: &str) -> Result<&'a str, OAuthError> {
    field
        .as_deref()
        .filter(|value| !value.is_empty())
        .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
}

/// The space-separated `scope` of a request; `None` when absent or blank.
fn requested_scopes(request: &TokenRequest) -> Option<Vec<String>> {
    let scopes: Vec<String> = request
        .scope
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    (!scopes.is_empty()).then_some(scopes)
}

// ---------------------------------------------------------------------------------------------
// The grants
// ---------------------------------------------------------------------------------------------

async fn client_credentials(
    state: &AppState,
    request: &TokenRequest,
) -> Result<TokenResponse, OAuthError> {
    let client_id = required(&request.client_id, "client_id")?;
    let secret = required(&request.client_secret, "client_secret")?;
    let application = authenticate_client(state, client_id, secret).await?;
    require_grant(&application, Grant::ClientCredentials)?;
    let allowed = client_may_have(state, &application).await?;
    let scope = match requested_scopes(request) {
        None => allowed,
        Some(requested) => {
            if let Some(refused) = requested.iter().find(|s| !scopes::set_grants(&allowed, s)) {
                return Err(OAuthError::new(
                    "invalid_scope",
                    format!("the client may not have the scope {refused:?}"),
                ));
            }
            scopes::sorted(requested)
        }
    };
    let claims = TokenClaims {
        sub: application.id.to_string(),
        kind: TokenKind::Client,
        token_use: TokenUse::Access,
        role: application.role.as_str().to_owned(),
        scope,
        client: application.id.to_string(),
        client_scope: strings(&application.scope),
        iat: 0,
        exp: 0,
        jti: Uuid::nil(),
        family: None,
    };
    tracing::info!(application = %application.id, "client token issued");
    respond(state, claims, None).await
}

async fn password(
    state: &AppState,
    request: &TokenRequest,
    address: Option<std::net::IpAddr>,
    user_agent: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let login = required(&request.username, "username")?;
    let password = required(&request.password, "password")?;
    let client_id = required(&request.client_id, "client_id")?;
    let secret = required(&request.client_secret, "client_secret")?;
    let application = authenticate_client(state, client_id, secret).await?;
    require_grant(&application, Grant::Password)?;

    let attempted = crate::signin::guard::Attempted {
        login,
        password,
        address,
        user_agent,
        client_id: Some(client_id),
    };
    let Account { user, .. } = crate::signin::guard::attempt(state, attempted)
        .await?
        .map_err(|refusal| match refusal {
            // Only said to a caller who knows the password.
            Refusal::NotAllowed => OAuthError::new("invalid_grant", "the user is banned"),
            Refusal::Locked | Refusal::WrongCredentials => {
                OAuthError::new("invalid_grant", BAD_USER)
            }
        })?;

    let requested = requested_scopes(request);
    let (user_may_have, client_may_have) = may_have(state, &application, &user).await?;
    let scope = scopes::user_token_scope(
        &user_may_have,
        client_may_have.as_deref(),
        requested.as_deref(),
    );
    let claims = delegated_claims(&application, &user, scope);
    tracing::info!(user = %user.id, application = %application.id, "user token issued");
    let family = Family::Open(Uuid::now_v7());
    respond(state, claims, refreshable(&application, family)).await
}

async fn refresh(state: &AppState, request: &TokenRequest) -> Result<TokenResponse, OAuthError> {
    let presented = required(&request.refresh_token, "refresh_token")?;
    let invalid = || OAuthError::new("invalid_grant", "the refresh token is not valid");
    let claims = state.edge.tokens.verify(presented).map_err(|_| invalid())?;
    if claims.token_use != TokenUse::Refresh || claims.kind != TokenKind::Delegated {
        return Err(invalid());
    }
    let application_id = ApplicationId::parse(&claims.client).map_err(|_| invalid())?;
    let application = match request.client_id.as_deref().filter(|id| !id.is_empty()) {
        // A confidential client that authenticates must be the one the token was issued to.
        Some(client_id) => {
            let secret = required(&request.client_secret, "client_secret")?;
            let application = authenticate_client(state, client_id, secret).await?;
            if application.id != application_id {
                return Err(invalid());
            }
            application
        }
        None => load_application(state, application_id)
            .await?
            .ok_or_else(invalid)?,
    };
    if !application.allows(Grant::RefreshToken) {
        return Err(invalid());
    }
    let user_id = UserId::parse(&claims.sub).map_err(|_| invalid())?;
    let (user, _) = load_aggregate::<User>(&*state.log, &user_id).await?;
    let user = user.ok_or_else(invalid)?;
    check_user_may_sign_in(&user)?;
    // Never more than the first token had, and nothing the user or client has lost since.
    let (user_may_have, client_may_have) = may_have(state, &application, &user).await?;
    let scope =
        scopes::refreshed_token_scope(&user_may_have, client_may_have.as_deref(), &claims.scope);
    // Rotation: this refresh token is spent; presenting it again revokes the family.
    let family = match claims.family {
        Some(family) => Family::Rotate {
            family,
            presented: claims.jti,
        },
        // Issued before families existed: the tokens it gets now start one.
        None => Family::Open(Uuid::now_v7()),
    };
    let presented = claims;
    if let Some(pool) = &state.edge.database {
        let user = user.id.as_uuid();
        if revocation::is_revoked(pool, user, presented.family, presented.iat)
            .await
            .map_err(ApiError::from)?
        {
            return Err(invalid());
        }
    }
    let claims = delegated_claims(&application, &user, scope);
    respond(state, claims, Some(family)).await
}

/// RFC 6749 §4.1.3 with RFC 7636 §4.6: a code from `/oauth/authorize`, once, by the
/// application it was issued to, with the same `redirect_uri` and the PKCE verifier. A public
/// application sends no secret (and is refused if it sends one); a confidential one sends its
/// secret.
async fn authorization_code(
    state: &AppState,
    request: &TokenRequest,
) -> Result<TokenResponse, OAuthError> {
    let code = required(&request.code, "code")?;
    let client_id = required(&request.client_id, "client_id")?;
    let application = match request.client_secret.as_deref() {
        Some(secret) => authenticate_client(state, client_id, secret).await?,
        None => find_application(state, client_id)
            .await?
            .filter(|application| application.is_public)
            .ok_or_else(|| OAuthError::new("invalid_client", BAD_CLIENT))?,
    };
    require_grant(&application, Grant::AuthorizationCode)?;
    let invalid = |why: &str| OAuthError::new("invalid_grant", why);
    let database = crate::signin::database(state)?;
    let (grant, family) = match crate::signin::sessions::redeem(database, code)
        .await
        .map_err(ApiError::from)?
    {
        Redeemed::Fresh { grant, family } => (grant, family),
        Redeemed::Replayed { family, user } => {
            // RFC 6749 §4.1.2: the tokens the code issued are revoked too, even those its first
            // presentation is issuing at this moment.
            revocation::revoke_family_before_opening(database, family, user.as_uuid())
                .await
                .map_err(ApiError::from)?;
            state.edge.access.forget_family(family);
            tracing::warn!(%family, "an authorization code was presented twice: its tokens are revoked");
            return Err(invalid("the code was used already"));
        }
        Redeemed::Invalid => return Err(invalid("the code is unknown or expired")),
    };
    if grant.application != application.id {
        return Err(invalid("the code was issued to another application"));
    }
    if request.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str()) {
        return Err(invalid(
            "redirect_uri differs from the one the code was asked with",
        ));
    }
    match (&grant.code_challenge, request.code_verifier.as_deref()) {
        (Some(challenge), Some(verifier)) if pkce_s256(verifier).as_deref() == Some(challenge) => {}
        (Some(_), _) => {
            return Err(invalid(
                "the code_verifier does not match the code_challenge",
            ))
        }
        (None, Some(_)) => return Err(invalid("the code was asked for without a code_challenge")),
        (None, None) => {}
    }
    let (user, _) = load_aggregate::<User>(&*state.log, &grant.user).await?;
    let user = user.ok_or_else(|| invalid("the user does not exist"))?;
    check_user_may_sign_in(&user)?;
    let (user_may_have, client_may_have) = may_have(state, &application, &user).await?;
    let scope = scopes::user_token_scope(
        &user_may_have,
        client_may_have.as_deref(),
        grant.scope.as_deref(),
    );
    let claims = delegated_claims(&application, &user, scope);
    tracing::info!(user = %user.id, application = %application.id, "user token issued for a code");
    respond(
        state,
        claims,
        refreshable(&application, Family::Open(family)),
    )
    .await
}

/// BASE64URL(SHA-256(verifier)) for a verifier of RFC 7636's form (43..128 unreserved
/// characters); `None` for any other.
fn pkce_s256(verifier: &str) -> Option<String> {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    well_formed.then(|| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()))
    })
}

// ---------------------------------------------------------------------------------------------
// Clients, users and scopes
// ---------------------------------------------------------------------------------------------

/// The live application whose OAuth `client_id` is `client_id` and whose secret is `secret`,
/// or `invalid_client` (the same answer for an unknown client, a public one, or a wrong secret).
async fn authenticate_client(
    state: &AppState,
    client_id: &str,
    secret: &str,
) -> Result<Application, OAuthError> {
    let application = find_application(state, client_id).await?;
    let hash = application
        .as_ref()
        .filter(|application| !application.is_public)
        .and_then(|application| application.secret_hash.clone());
    let verified = match &hash {
        Some(hash) => state.hasher.verify(secret, hash).await?,
        None => {
            state
                .hasher
                .verify(secret, dummy_hash(state).await?)
                .await?;
            false
        }
    };
    match application {
        Some(application) if verified => Ok(application),
        _ => Err(OAuthError::new("invalid_client", BAD_CLIENT)),
    }
}

fn require_grant(application: &Application, grant: Grant) -> Result<(), OAuthError> {
    if application.allows(grant) {
        Ok(())
    } else {
        // After authentication, so it reveals nothing to a caller without the secret. The
        // contract names four error codes; RFC 6749's `unauthorized_client` is not one of them.
        Err(OAuthError::new(
            "invalid_client",
            format!("the client may not use the {grant} grant"),
        ))
    }
}

/// The live application whose OAuth `client_id` is `client_id`.
pub(crate) async fn find_application(
    state: &AppState,
    client_id: &str,
) -> Result<Option<Application>, ApiError> {
    let claim = UniqueClaim::new(CLIENT_ID_CLAIM, client_id);
    let Some((stream, recorded)) = state.log.read_claimed_stream(&claim).await? else {
        return Ok(None);
    };
    if !stream.starts_with("client-") {
        return Ok(None);
    }
    live_application(&recorded)
}

async fn load_application(
    state: &AppState,
    id: ApplicationId,
) -> Result<Option<Application>, ApiError> {
    let recorded = state
        .log
        .read_stream(&Application::stream_name(id), 0)
        .await?;
    live_application(&recorded)
}

/// The application an application's stream holds, unless it was deleted.
fn live_application(recorded: &[RecordedEvent]) -> Result<Option<Application>, ApiError> {
    let application = events::load::<Application>(recorded)
        .map_err(ApiError::internal)?
        .state;
    Ok(application.filter(|application| !application.deleted))
}

/// Whether `password` is `user`'s, after the same work whether or not there is a user (no
/// user is checked against a dummy hash), so that timing does not tell them apart.
pub(crate) async fn check_password(
    state: &AppState,
    user: Option<&User>,
    password: &str,
) -> Result<bool, ApiError> {
    match user.and_then(|user| user.password_hash.as_ref()) {
        Some(hash) => state.hasher.verify(password, hash).await,
        None => {
            state
                .hasher
                .verify(password, dummy_hash(state).await?)
                .await?;
            Ok(false)
        }
    }
}

/// A user found by a login, with the events it was folded from (which the answer of a
/// sign-in shows).
pub struct Account {
    pub user: User,
    pub recorded: Vec<RecordedEvent>,
}

/// The user a login names: by username first, then by (sanitized) email, each found with one
/// read. Deleted users are not found.
pub(crate) async fn find_user(state: &AppState, login: &str) -> Result<Option<Account>, ApiError> {
    let mut claims = Vec::new();
    if let Ok(username) = Username::parse(login) {
        claims.push(UniqueClaim::new(USERNAME_CLAIM, username.as_str()));
    }
    if let Ok(email) = Email::parse(login) {
        claims.push(UniqueClaim::new(EMAIL_CLAIM, email.sanitized().as_str()));
    }
    for claim in claims {
        let Some((stream, recorded)) = state.log.read_claimed_stream(&claim).await? else {
            continue;
        };
        if !stream.starts_with("user-") {
            continue;
        }
        let user = events::load::<User>(&recorded)
            .map_err(ApiError::internal)?
            .state;
        if let Some(user) = user.filter(|user| !user.deleted) {
            return Ok(Some(Account { user, recorded }));
        }
    }
    Ok(None)
}

fn check_user_may_sign_in(user: &User) -> Result<(), OAuthError> {
    if user.deleted {
        Err(OAuthError::new("invalid_grant", "the user does not exist"))
    } else if user.banned {
        Err(OAuthError::new("invalid_grant", "the user is banned"))
    } else {
        Ok(())
    }
}

/// A role's scope; nothing for a missing or deleted role.
async fn role_scope(state: &AppState, id: &RoleId) -> Result<Vec<Scope>, OAuthError> {
    let (role, _) = load_aggregate::<Role>(&*state.log, id).await?;
    Ok(role
        .filter(|role| !role.deleted)
        .map(|role| role.scope)
        .unwrap_or_default())
}

/// Everything a client may hold: its own scope plus its role's.
async fn client_may_have(
    state: &AppState,
    application: &Application,
) -> Result<Vec<String>, OAuthError> {
    let role = role_scope(state, &application.role.role_id()).await?;
    Ok(scopes::sorted(
        strings(&application.scope)
            .into_iter()
            .chain(strings(&role))
            .collect(),
    ))
}

/// Everything a user may hold: their own scope plus their role's.
async fn user_may_have(state: &AppState, user: &User) -> Result<Vec<String>, OAuthError> {
    let role = role_scope(state, &user.role).await?;
    Ok(scopes::sorted(
        strings(&user.scope)
            .into_iter()
            .chain(strings(&role))
            .collect(),
    ))
}

/// What the user may hold and, unless the application is an internal client, what the
/// application may hold: the inputs of the token-scope rule ([`scopes::user_token_scope`]).
async fn may_have(
    state: &AppState,
    application: &Application,
    user: &User,
) -> Result<(Vec<String>, Option<Vec<String>>), OAuthError> {
    let user_may_have = user_may_have(state, user).await?;
    let client_may_have = match application.role {
        ClientRole::InternalClient => None,
        ClientRole::ExternalClient => Some(client_may_have(state, application).await?),
    };
    Ok((user_may_have, client_may_have))
}

fn delegated_claims(application: &Application, user: &User, scope: Vec<String>) -> TokenClaims {
    TokenClaims {
        sub: user.id.to_string(),
        kind: TokenKind::Delegated,
        token_use: TokenUse::Access,
        role: user.role.as_str().to_owned(),
        scope,
        client: application.id.to_string(),
        client_scope: strings(&application.scope),
        iat: 0,
        exp: 0,
        jti: Uuid::nil(),
        family: None,
    }
}

/// The grant a delegated token pair belongs to.
#[derive(Debug, Clone, Copy)]
enum Family {
    /// A new sign-in: a family of its own, whose refresh token is this pair's.
    Open(Uuid),
    /// A refresh: the family of the presented refresh token, which this pair's replaces.
    Rotate { family: Uuid, presented: Uuid },
}

/// The family of a new sign-in's tokens, with a refresh token when the application may
/// refresh (`None`: an access token alone).
fn refreshable(application: &Application, family: Family) -> Option<Family> {
    application.allows(Grant::RefreshToken).then_some(family)
}

/// Signs the access token and, with a `family`, a refresh token of that family, recording it
/// as the family's one usable refresh token (a refresh presented twice revokes the family).
async fn respond(
    state: &AppState,
    mut claims: TokenClaims,
    family: Option<Family>,
) -> Result<TokenResponse, OAuthError> {
    let ttl = state.settings.access_token_ttl;
    let refresh_token = match family {
        None => None,
        Some(family) => {
            let refresh_jti = Uuid::now_v7();
            let id = match family {
                Family::Open(id) | Family::Rotate { family: id, .. } => id,
            };
            if let Some(pool) = &state.edge.database {
                let user = Uuid::parse_str(&claims.sub).map_err(ApiError::internal)?;
                let recorded = match family {
                    Family::Open(id) => {
                        revocation::open_family(pool, id, user, Some(refresh_jti))
                            .await
                            .map_err(ApiError::from)?;
                        Rotation::Rotated
                    }
                    Family::Rotate { family, presented } => {
                        revocation::rotate(pool, family, presented, refresh_jti)
                            .await
                            .map_err(ApiError::from)?
                    }
                };
                if recorded == Rotation::Reused {
                    state.edge.access.forget_family(id);
                    tracing::warn!(family = %id, "a refresh token was presented twice: its family is revoked");
                    return Err(OAuthError::new(
                        "invalid_grant",
                        "the refresh token was used already",
                    ));
                }
            }
            claims.family = Some(id);
            let refresh = TokenClaims {
                token_use: TokenUse::Refresh,
                jti: refresh_jti,
                ..claims.clone()
            };
            Some(sign(state, refresh, state.settings.refresh_token_ttl)?)
        }
    };
    Ok(TokenResponse {
        access_token: sign(state, claims, ttl)?,
        token_type: "Bearer",
        expires_in: ttl.as_secs(),
        refresh_token,
    })
}

fn sign(state: &AppState, claims: TokenClaims, ttl: Duration) -> Result<String, OAuthError> {
    state
        .edge
        .tokens
        .issue(claims, ttl)
        .map_err(|error| OAuthError::from(ApiError::Internal(error)))
}

/// An argon2id hash of nothing anybody knows, with the parameters real hashes use: verifying
/// against it costs what a real check costs.
async fn dummy_hash(state: &AppState) -> Result<&'static SecretHash, ApiError> {
    static DUMMY: OnceCell<SecretHash> = OnceCell::const_new();
    DUMMY
        .get_or_try_init(|| async {
            // The result of a check against it is ignored, so its secret needs no secrecy.
            state.hasher.hash("no account has this secret").await
        })
        .await
}

fn strings(scopes: &[Scope]) -> Vec<String> {
    scopes.iter().map(|s| s.as_str().to_owned()).collect()
}
