//! `/oauth/authorize` (RFC 6749 §4.1.1 with PKCE, RFC 7636): checks an application's request,
//! sends a browser that nobody signed in to the login page, asks an external application's
//! user for consent, and sends the browser back with a single-use code.
//!
//! Errors that cannot be trusted to go back (an unknown application, a `redirect_uri` it did
//! not register) are shown on a page, never redirected: an open redirector would hand codes or
//! phishing to any site. Every other error goes back to the registered `redirect_uri` with
//! `error`, `error_description` and `state` (§4.1.2.1).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use axum_extra::extract::cookie::CookieJar;
use events::application::Application;
use events::scopes::Scope;
use events::values::{ClientRole, Grant};
use serde::Deserialize;

use super::login::{completed, current_session, expired_form, unknown_application};
use super::sessions::{self, Session};
use super::{csrf_cookie, csrf_matches, database, html_page, pages, AuthorizationRequest};
use crate::oauth;
use crate::AppState;
use http_edge::envelope::ApiError;

/// `GET /oauth/authorize`.
pub async fn authorize(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    Query(request): Query<AuthorizationRequest>,
) -> Result<Response, ApiError> {
    let request = completed(&state, request);
    let checked = match check(&state, &request).await? {
        Ok(checked) => checked,
        Err(refusal) => return Ok(refusal),
    };
    let Some(session) = current_session(&state, &jar).await? else {
        return Ok(Redirect::to(&request.to_url("/login")).into_response());
    };
    if checked.application.role == ClientRole::ExternalClient {
        let (csrf, cookie) = csrf_cookie(&headers);
        let page = consent_page(&state, &checked, &session, &csrf, &request).await?;
        return Ok((jar.add(cookie), page).into_response());
    }
    issue(&state, &checked, &session).await
}

/// The consent form's fields.
#[derive(Debug, Deserialize)]
pub struct ConsentForm {
    csrf: Option<String>,
    consent: Option<String>,
    #[serde(flatten)]
    request: AuthorizationRequest,
}

/// `POST /oauth/authorize`: the consent page's answer.
pub async fn answer_consent(
    State(state): State<AppState>,
    jar: CookieJar,
    Form(form): Form<ConsentForm>,
) -> Result<Response, ApiError> {
    if !csrf_matches(&jar, form.csrf.as_deref()) {
        return Ok(expired_form());
    }
    let request = form.request;
    let checked = match check(&state, &request).await? {
        Ok(checked) => checked,
        Err(refusal) => return Ok(refusal),
    };
    let Some(session) = current_session(&state, &jar).await? else {
        return Ok(Redirect::to(&request.to_url("/login")).into_response());
    };
    if form.consent.as_deref() != Some("allow") {
        return Ok(checked.refuse("access_denied", "the user did not allow the application"));
    }
    issue(&state, &checked, &session).await
}

/// A request that passed every check: where the answer goes, and what the code binds.
struct Checked {
    application: Application,
    redirect_uri: String,
    state: Option<String>,
    scope: Option<Vec<String>>,
    code_challenge: Option<String>,
}

impl Checked {
    /// 302 back to the application with `error` (RFC 6749 §4.1.2.1).
    fn refuse(&self, error: &str, description: &str) -> Response {
        let mut pairs = vec![("error", error), ("error_description", description)];
        if let Some(state) = &self.state {
            pairs.push(("state", state));
        }
        found(&with_query(&self.redirect_uri, &pairs))
    }
}

/// The checks of §4.1.1 and RFC 7636 §4.3, in the order that decides where an error goes.
/// `Err` is the answer to give instead (a page, or a redirect with `error`).
async fn check(
    state: &AppState,
    request: &AuthorizationRequest,
) -> Result<Result<Checked, Response>, ApiError> {
    let Some(client_id) = request.client_id.as_deref() else {
        return Ok(Err(unknown_application()));
    };
    let Some(application) = oauth::find_application(state, client_id).await? else {
        return Ok(Err(unknown_application()));
    };
    let registered: Vec<&str> = application
        .redirect_uris
        .iter()
        .map(|u| u.as_str())
        .collect();
    let redirect_uri = match request.redirect_uri.as_deref() {
        Some(uri) if registered.contains(&uri) => uri.to_owned(),
        None if registered.len() == 1 => registered[0].to_owned(),
        _ => {
            return Ok(Err(html_page(
                StatusCode::BAD_REQUEST,
                pages::message(
                    "Unknown redirect address",
                    "The application asked to send you back to an address it has not \
                     registered, so you were not sent there.",
                ),
            )))
        }
    };
    let checked = Checked {
        redirect_uri,
        state: request.state.clone().filter(|state| !state.is_empty()),
        scope: request
            .scope
            .as_deref()
            .map(|scope| {
                scope
                    .split([' ', ','])
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|scopes| !scopes.is_empty()),
        code_challenge: request.code_challenge.clone().filter(|c| !c.is_empty()),
        application,
    };
    if request.response_type.as_deref().unwrap_or("code") != "code" {
        return Ok(Err(checked.refuse(
            "unsupported_response_type",
            "only response_type=code is supported",
        )));
    }
    if !checked.application.allows(Grant::AuthorizationCode) {
        return Ok(Err(checked.refuse(
            "unauthorized_client",
            "the application may not use the authorization_code grant",
        )));
    }
    if let Err(why) = check_pkce(&checked, request.code_challenge_method.as_deref()) {
        return Ok(Err(checked.refuse("invalid_request", why)));
    }
    if let Some(unknown) = checked
        .scope
        .iter()
        .flatten()
        .find(|scope| Scope::parse(scope).is_err())
    {
        let why = format!("{unknown:?} is not a known scope");
        return Ok(Err(checked.refuse("invalid_scope", &why)));
    }
    Ok(Ok(checked))
}

/// PKCE: `S256` only (`plain` gives away the verifier); required of public applications.
fn check_pkce(checked: &Checked, method: Option<&str>) -> Result<(), &'static str> {
    match (&checked.code_challenge, method) {
        (None, _) if checked.application.is_public => {
            Err("a public application must send code_challenge with code_challenge_method=S256")
        }
        (None, Some(_)) => Err("code_challenge_method without code_challenge"),
        (None, None) => Ok(()),
        (Some(_), Some("S256")) => Ok(()),
        (Some(_), Some("plain") | None) => {
            Err("code_challenge_method must be S256 (plain is not accepted)")
        }
        (Some(_), Some(_)) => Err("code_challenge_method must be S256"),
    }
    .and_then(|()| match &checked.code_challenge {
        Some(challenge)
            if challenge.len() != 43
                || !challenge
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Err("code_challenge must be a base64url SHA-256 digest (43 characters)")
        }
        _ => Ok(()),
    })
}

/// Issues a code for the signed-in user and sends the browser back with it.
async fn issue(
    state: &AppState,
    checked: &Checked,
    session: &Session,
) -> Result<Response, ApiError> {
    let grant = sessions::Grant {
        application: checked.application.id,
        redirect_uri: checked.redirect_uri.clone(),
        user: session.user,
        scope: checked.scope.clone(),
        code_challenge: checked.code_challenge.clone(),
    };
    let code = sessions::issue_code(
        database(state)?,
        &grant,
        state.settings.authorization_code_ttl,
    )
    .await?;
    tracing::info!(user = %session.user, application = %checked.application.id, "authorization code issued");
    let mut pairs = vec![("code", code.as_str())];
    if let Some(state) = &checked.state {
        pairs.push(("state", state));
    }
    Ok(found(&with_query(&checked.redirect_uri, &pairs)))
}

async fn consent_page(
    state: &AppState,
    checked: &Checked,
    session: &Session,
    csrf: &str,
    request: &AuthorizationRequest,
) -> Result<Response, ApiError> {
    let user = crate::users::view::user_view(state, session.user, None).await?;
    let asked: Vec<String> = checked
        .scope
        .clone()
        .unwrap_or_else(|| vec!["delegated:all".to_owned()]);
    let scopes: Vec<(String, String)> = asked
        .into_iter()
        .map(|name| {
            let description = events::scopes::describe(&name);
            (name, description)
        })
        .collect();
    let page = pages::consent(
        checked.application.display_name.as_str(),
        &user.username,
        &scopes,
        csrf,
        &request.pairs(),
    );
    Ok(html_page(StatusCode::OK, page))
}

/// `uri` with `pairs` added to its query.
fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(uri) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(pairs);
            url.to_string()
        }
        Err(_) => uri.to_owned(),
    }
}

/// 302 Found to `location` (RFC 6749's examples, and Liquid's answer).
fn found(location: &str) -> Response {
    (
        StatusCode::FOUND,
        [(axum::http::header::LOCATION, location.to_owned())],
    )
        .into_response()
}
