//! The login page and the session routes: `GET /` and `/login` show the form, `POST /login`
//! signs in from it, `POST /user/login` signs in from a script (Liquid's body and answer),
//! `GET /user/session-state` tells who is signed in, `GET /user/logout` and
//! `/user/logout-all` end sessions.
//!
//! A wrong password, an unknown account and a banned one get the same answer, after the same
//! work (an unknown account is checked against a dummy hash), so neither the words nor the
//! time tell whether an account exists.

use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use axum_extra::extract::cookie::{Cookie, CookieJar};
use events::user::view::UserView;
use events::user::User;
use events::values::{Password, UserId};
use http_edge::auth::caller::bearer_claims;
use http_edge::auth::revocation;
use http_edge::auth::{TokenClaims, TokenKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::sessions::{self, Session};
use super::{
    csrf_cookie, csrf_matches, database, html_page, session_cookie, AuthorizationRequest,
    SESSION_COOKIE,
};
use super::{guard, pages};
use crate::oauth;
use crate::users::view::{user_view, view_of};
use crate::AppState;
use http_edge::body::{Body, Fields, JsonOrForm};
use http_edge::envelope::{Answer, ApiError};
use http_edge::rate_limit::ClientAddress;

/// What every refused sign-in is told.
pub const INCORRECT: &str = "The username or password is incorrect.";

/// `GET /` and `GET /login`: the form, for the application that asked (or the configured login
/// application).
pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    Query(request): Query<AuthorizationRequest>,
) -> Result<Response, ApiError> {
    let request = completed(&state, request);
    let Some(app_name) = application_name(&state, &request).await? else {
        return Ok(unknown_application());
    };
    let (csrf, cookie) = csrf_cookie(&headers);
    let page = pages::login(&app_name, "", None, &csrf, &request.pairs());
    Ok((jar.add(cookie), html_page(StatusCode::OK, page)).into_response())
}

/// The login form's fields: the credentials, its CSRF token, and the OAuth parameters it
/// passes on.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    csrf: Option<String>,
    username: Option<String>,
    password: Option<String>,
    #[serde(flatten)]
    request: AuthorizationRequest,
}

/// `POST /login`: signs in and continues to `/oauth/authorize`, or shows the form again.
pub async fn submit(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    jar: CookieJar,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, ApiError> {
    let form = match form {
        Ok(Form(form)) => form,
        Err(
            FormRejection::FailedToDeserializeForm(_)
            | FormRejection::FailedToDeserializeFormBody(_),
        ) => return Ok(malformed_form()),
        Err(other) => return Ok(other.into_response()),
    };
    if !csrf_matches(&jar, form.csrf.as_deref()) {
        return Ok(expired_form());
    }
    let request = form.request;
    let Some(app_name) = application_name(&state, &request).await? else {
        return Ok(unknown_application());
    };
    let login = form.username.unwrap_or_default();
    let attempted = guard::Attempted {
        login: &login,
        password: form.password.as_deref().unwrap_or_default(),
        address,
        user_agent: user_agent(&headers),
        client_id: request.client_id.as_deref(),
    };
    let outcome = match guard::attempt(&state, attempted).await {
        // A person gets a page, not the API's envelope: the hashing pool is saturated.
        Err(ApiError::Busy { retry_after_secs }) => return Ok(busy(retry_after_secs)),
        other => other?,
    };
    let Ok(account) = outcome else {
        let csrf = form.csrf.unwrap_or_default();
        let page = pages::login(&app_name, &login, Some(INCORRECT), &csrf, &request.pairs());
        return Ok(html_page(StatusCode::UNAUTHORIZED, page));
    };
    let user = account.user.id;
    let secret = sessions::open(database(&state)?, user, state.settings.session_ttl).await?;
    let jar = jar.add(session_cookie(secret, &headers));
    tracing::info!(%user, "signed in through the login page");
    if request.client_id.is_some() {
        let next = request.to_url("/oauth/authorize");
        Ok((jar, Redirect::to(&next)).into_response())
    } else {
        let page = pages::message("Signed in", "You are signed in. You can close this page.");
        Ok((jar, html_page(StatusCode::OK, page)).into_response())
    }
}

/// `POST /user/login`'s body, as Liquid's login page and scripts send it (JSON or a form).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct LoginBody {
    /// A username; or send `email`.
    pub username: Option<String>,
    /// An email; used when there is no `username`.
    pub email: Option<String>,
    pub password: Password,
    /// The browser's user agent, recorded with the sign-in.
    #[schema(max_length = 1024)]
    pub user_agent: Option<String>,
}

impl Body for LoginBody {
    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let username: Option<Option<String>> = fields.optional("username");
        let email: Option<Option<String>> = fields.optional("email");
        let password = fields.required("password");
        let user_agent: Option<Option<String>> = fields.optional("userAgent");
        if let Some(Some(agent)) = &user_agent {
            if agent.chars().count() > 1024 {
                fields.error(
                    "userAgent",
                    agent.clone().into(),
                    "must be at most 1024 characters",
                );
                return None;
            }
        }
        if matches!((&username, &email), (Some(None), Some(None))) {
            fields.error(
                "username",
                serde_json::Value::Null,
                "a username or an email is required",
            );
            return None;
        }
        Some(Self {
            username: username?,
            email: email?,
            password: password?,
            user_agent: user_agent?,
        })
    }
}

/// `POST /user/login`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginAnswer {
    /// Always false: two-factor sign-in is not offered yet.
    #[serde(rename = "2faEnabled")]
    pub two_factor_enabled: bool,
    #[serde(rename = "userInfo")]
    pub user_info: UserView,
}

/// `POST /user/login`: opens a session for the browser that sends it.
pub async fn sign_in(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    jar: CookieJar,
    JsonOrForm(body): JsonOrForm<LoginBody>,
) -> Result<Response, ApiError> {
    let login = body.username.or(body.email).unwrap_or_default();
    let attempted = guard::Attempted {
        login: &login,
        password: body.password.expose(),
        address,
        user_agent: body.user_agent.as_deref().or(user_agent(&headers)),
        client_id: None,
    };
    let account = guard::attempt(&state, attempted)
        .await?
        .map_err(|_| ApiError::Unauthorized("the username or password is incorrect"))?;
    let secret = sessions::open(
        database(&state)?,
        account.user.id,
        state.settings.session_ttl,
    )
    .await?;
    // The user as the password check read it: no second read.
    let user_info = view_of(&state, &account.recorded)?;
    let answer = Answer::ok(LoginAnswer {
        two_factor_enabled: false,
        user_info,
    });
    Ok((jar.add(session_cookie(secret, &headers)), answer).into_response())
}

/// `GET /user/session-state`: the signed-in user, or 403 Forbidden.
pub async fn session_state(
    State(state): State<AppState>,
    jar: CookieJar,
) -> Result<Answer, ApiError> {
    let session = current_session(&state, &jar)
        .await?
        .ok_or(ApiError::Forbidden)?;
    let user_info = user_view(&state, session.user, None).await?;
    Ok(Answer::ok(SessionState { user_info }))
}

/// `session-state`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionState {
    #[serde(rename = "userInfo")]
    pub user_info: UserView,
}

/// `GET /user/logout`: ends this browser's session and revokes the bearer token sent with it
/// (its whole family: the refresh token too). Without either, nothing happens; the answer is
/// the same.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<Response, ApiError> {
    let pool = database(&state)?;
    if let Some(family) = bearer(&state, &headers).and_then(|claims| claims.family) {
        revocation::revoke_family(pool, family).await?;
        state.edge.access.forget_family(family);
    }
    if let Some(cookie) = jar.get(SESSION_COOKIE) {
        sessions::end(pool, cookie.value()).await?;
    }
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    Ok((jar, Answer::done()).into_response())
}

/// `GET /user/logout-all`: the user of the bearer token (or of this browser's session) is
/// signed out everywhere: every token issued to them until now is revoked, every session
/// ended.
pub async fn logout_all(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<Response, ApiError> {
    let pool = database(&state)?;
    let from_token = bearer(&state, &headers)
        .filter(|claims| claims.kind == TokenKind::Delegated)
        .and_then(|claims| UserId::parse(&claims.sub).ok());
    let user = match from_token {
        Some(user) => Some(user),
        None => current_session(&state, &jar)
            .await?
            .map(|session| session.user),
    };
    if let Some(user) = user {
        revocation::sign_out_everywhere(pool, user.as_uuid()).await?;
        sessions::end_all(pool, user).await?;
        state.edge.access.forget(&user.to_string());
        tracing::info!(%user, "signed out everywhere");
    }
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    Ok((jar, Answer::done()).into_response())
}

/// The claims of a valid bearer token sent with the request, if any (logout takes one but
/// does not need one).
fn bearer(state: &AppState, headers: &HeaderMap) -> Option<TokenClaims> {
    bearer_claims(headers, &state.edge.tokens).ok()
}

/// The live session of this browser, if its user may still sign in.
pub async fn current_session(
    state: &AppState,
    jar: &CookieJar,
) -> Result<Option<Session>, ApiError> {
    let Some(cookie) = jar.get(SESSION_COOKIE) else {
        return Ok(None);
    };
    let Some(session) = sessions::find(database(state)?, cookie.value()).await? else {
        return Ok(None);
    };
    let user = crate::pipeline::load_aggregate::<User>(&*state.log, &session.user)
        .await?
        .0;
    Ok(user
        .filter(|user| !user.deleted && !user.banned)
        .map(|_| session))
}

/// The browser's `User-Agent`.
fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
}

/// The request with the configured login application when it names none, and a `state` when
/// it has none (as Liquid's login page makes one up: `/oauth/authorize` requires it).
pub fn completed(state: &AppState, mut request: AuthorizationRequest) -> AuthorizationRequest {
    if request.client_id.as_deref().is_none_or(str::is_empty) {
        request.client_id = state.settings.login_client_id.clone();
    }
    if request.client_id.is_some() && request.state.as_deref().is_none_or(str::is_empty) {
        request.state = Some(sessions::new_secret());
    }
    request
}

/// The display name of the application the request names (`None` when it names an unknown
/// one); the service's own name when it names none.
async fn application_name(
    state: &AppState,
    request: &AuthorizationRequest,
) -> Result<Option<String>, ApiError> {
    match &request.client_id {
        None => Ok(Some(state.settings.app_name.clone())),
        Some(client_id) => Ok(oauth::find_application(state, client_id)
            .await?
            .map(|application| application.display_name.to_string())),
    }
}

pub fn unknown_application() -> Response {
    html_page(
        StatusCode::BAD_REQUEST,
        pages::message(
            "Unknown application",
            "The application that sent you here is not registered with this service.",
        ),
    )
}

/// 503 with `Retry-After`: too many sign-ins at once.
fn busy(retry_after_secs: u64) -> Response {
    let mut response = html_page(
        StatusCode::SERVICE_UNAVAILABLE,
        pages::message(
            "Too many sign-ins right now",
            "The service is busy. Go back and try again in a few seconds.",
        ),
    );
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from(retry_after_secs),
    );
    response
}

/// 400: a form that cannot be read (a field named twice, a value that is not text).
fn malformed_form() -> Response {
    html_page(
        StatusCode::BAD_REQUEST,
        pages::message(
            "This form could not be read",
            "Go back, reload the page and try again.",
        ),
    )
}

pub fn expired_form() -> Response {
    html_page(
        StatusCode::FORBIDDEN,
        pages::message(
            "This form has expired",
            "Go back, reload the page and try again.",
        ),
    )
}
