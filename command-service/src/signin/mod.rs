//! Signing people in through a browser: the login page, sessions, `/oauth/authorize` with its
//! consent page, and logout. The `authorization_code` grant that ends the flow is in
//! [`crate::oauth`], beside the other grants.
//!
//! The flow (RFC 6749 §4.1 with PKCE, RFC 7636): an application sends the browser to `/login`
//! (or to `/oauth/authorize`, which sends it to `/login` when nobody is signed in) with its
//! `client_id`, `redirect_uri`, `state` and `code_challenge`; the person signs in, which opens
//! a session (a cookie, the session kept in PostgreSQL); `/oauth/authorize` checks the request
//! against the application's registration, asks an external application's user for consent,
//! and sends the browser back to the `redirect_uri` with a single-use code; the application
//! trades the code and its PKCE verifier for tokens at `/oauth/token`.
//!
//! # Layout
//! - [`sessions`]: sessions and authorization codes in PostgreSQL;
//! - [`guard`]: a sign-in attempt, and the limits on failed ones (per account, per address);
//! - [`pages`]: the HTML pages;
//! - [`login`]: `GET /`, `GET|POST /login`, `POST /user/login`, `GET /user/session-state`,
//!   `GET /user/logout`, `GET /user/logout-all`;
//! - [`authorize`]: `GET|POST /oauth/authorize`;
//! - this file: the routes, the cookies, the CSRF check and the parameters of an
//!   authorization request.

pub mod authorize;
pub mod guard;
pub mod login;
pub mod pages;
pub mod sessions;

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::Deserialize;
use sqlx::PgPool;

use crate::AppState;
use http_edge::envelope::ApiError;
use http_edge::{Doc, Routes};

/// The cookie that carries a session.
pub const SESSION_COOKIE: &str = "userledger_session";
/// The cookie that carries a form's CSRF token (double submit: the form holds the same value).
pub const CSRF_COOKIE: &str = "userledger_csrf";

/// The sign-in routes, with their entries in the route table.
pub fn router() -> Routes<AppState> {
    let page = |doc: Doc| doc.public().unlimited();
    Routes::new()
        .route(
            page(Doc::get("/", "The login page").describe(LOGIN_PARAMETERS)).text(
                200,
                "text/html",
                "the login form",
            ),
            login::page,
        )
        .route(
            page(Doc::get("/login", "The login page").describe(LOGIN_PARAMETERS))
                .text(200, "text/html", "the login form")
                .text(400, "text/html", "an unknown application"),
            login::page,
        )
        .route(
            Doc::post("/login", "Sign in through the login form")
                .public()
                .token_requests()
                .describe(
                    "A form post (`username`, `password`, `csrf` and the page's OAuth \
                     parameters). Signed in: a session cookie and 303 to `/oauth/authorize` \
                     with the parameters (or a page saying so when no application asked).",
                )
                .redirect("signed in")
                .text(
                    401,
                    "text/html",
                    "the form again: the username or password is incorrect",
                )
                .text(
                    403,
                    "text/html",
                    "the form's CSRF token does not match its cookie",
                ),
            login::submit,
        )
        .route(
            Doc::post("/user/login", "Sign in (Liquid's JSON or form body)")
                .public()
                .token_requests()
                .json_body::<login::LoginBody>()
                .describe(
                    "Opens a session (an HttpOnly, SameSite=Lax cookie) for the browser that \
                     sends it; `/oauth/authorize` then issues codes without asking again.",
                )
                .ok::<login::LoginAnswer>("signed in")
                .error(401, "Unauthorized", "the username or password is incorrect")
                .fails_internally(),
            login::sign_in,
        )
        .route(
            Doc::get("/user/session-state", "Whether this browser is signed in")
                .public()
                .ok::<login::SessionState>("the signed-in user")
                .error(403, "Forbidden", "no live session"),
            login::session_state,
        )
        .route(
            Doc::get(
                "/user/logout",
                "Sign out: this browser's session, and the bearer token",
            )
            .public()
            .describe(
                "Ends the session of the cookie sent, and revokes the bearer token sent \
                     (with every token of its sign-in: the refresh token too). Neither is \
                     required; the answer is the same.",
            )
            .done("signed out"),
            login::logout,
        )
        .route(
            Doc::get(
                "/user/logout-all",
                "End every session of the signed-in user",
            )
            .public()
            .done("every session of the user is over"),
            login::logout_all,
        )
        .route(
            page(Doc::get(
                "/oauth/authorize",
                "Authorize an application (RFC 6749 §4.1)",
            ))
            .describe(AUTHORIZE_PARAMETERS)
            .redirect(
                "302 to the `redirect_uri` with `code` and `state`, or with `error`; \
                     303 to `/login` when nobody is signed in",
            )
            .text(200, "text/html", "the consent page (external applications)")
            .text(
                400,
                "text/html",
                "an unknown application, or a `redirect_uri` it did not register",
            ),
            authorize::authorize,
        )
        .route(
            Doc::post("/oauth/authorize", "Answer the consent page")
                .public()
                .unlimited()
                .describe(
                    "A form post from the consent page: `consent=allow|deny`, `csrf` and the \
                     request's parameters.",
                )
                .redirect("302 to the `redirect_uri` with `code` and `state`, or with `error`")
                .text(400, "text/html", "an unknown application or redirect URI")
                .text(
                    403,
                    "text/html",
                    "the form's CSRF token does not match its cookie",
                ),
            authorize::answer_consent,
        )
}

const LOGIN_PARAMETERS: &str = "Query: `client_id` (else the configured login application, \
    `USERLEDGER_LOGIN_CLIENT_ID`), `redirect_uri`, `state`, `scope`, `code_challenge`, \
    `code_challenge_method` (Liquid's names, and its aliases `clientId`, `redirect`, \
    `codeChallenge`, `codeChallengeMethod`). The form passes them on to `/oauth/authorize`.";

const AUTHORIZE_PARAMETERS: &str = "Query: `response_type=code`, `client_id`, `redirect_uri` \
    (exactly one the application registered), `state`, `scope` (space-separated), \
    `code_challenge` and `code_challenge_method=S256` (required for public applications; \
    `plain` is refused).";

/// The parameters of an authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3), with the
/// aliases Liquid's login page reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthorizationRequest {
    pub response_type: Option<String>,
    #[serde(alias = "clientId")]
    pub client_id: Option<String>,
    #[serde(alias = "redirect")]
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    #[serde(alias = "codeChallenge")]
    pub code_challenge: Option<String>,
    #[serde(alias = "codeChallengeMethod")]
    pub code_challenge_method: Option<String>,
}

impl AuthorizationRequest {
    /// The parameters that are set, in a stable order (hidden fields, query strings).
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        [
            ("response_type", &self.response_type),
            ("client_id", &self.client_id),
            ("redirect_uri", &self.redirect_uri),
            ("scope", &self.scope),
            ("state", &self.state),
            ("code_challenge", &self.code_challenge),
            ("code_challenge_method", &self.code_challenge_method),
        ]
        .into_iter()
        .filter_map(|(name, value)| {
            value
                .as_ref()
                .filter(|value| !value.is_empty())
                .map(|value| (name, value.clone()))
        })
        .collect()
    }

    /// `?a=b&...` for a redirect to `path`.
    pub fn to_url(&self, path: &str) -> String {
        let query = serde_urlencoded::to_string(self.pairs()).unwrap_or_default();
        if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        }
    }
}

/// Every hour, forgets the sessions, codes and token families nobody can use any more (see
/// [`sessions::sweep`] and `http_edge::auth::revocation::sweep`): the tables stay the size of
/// what is live.
pub fn spawn_sweeper(pool: PgPool, refresh_ttl: std::time::Duration) {
    tokio::spawn(async move {
        let mut every_hour = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every_hour.tick().await;
            match sweep(&pool, refresh_ttl).await {
                Ok(0) => {}
                Ok(rows) => tracing::info!(rows, "expired sessions, codes and grants forgotten"),
                Err(error) => tracing::warn!(%error, "could not forget expired sessions and codes"),
            }
        }
    });
}

/// One sweep of [`spawn_sweeper`]: the rows forgotten.
pub async fn sweep(pool: &PgPool, refresh_ttl: std::time::Duration) -> sqlx::Result<u64> {
    let sessions = sessions::sweep(pool).await?;
    let grants = http_edge::auth::revocation::sweep(pool, refresh_ttl).await?;
    let failures = guard::sweep(pool).await?;
    Ok(sessions + grants + failures)
}

/// Creates the tables of signing in if missing: sessions, codes, failed-sign-in cells.
pub async fn prepare(pool: &PgPool) -> sqlx::Result<()> {
    let tables: Vec<&str> = [sessions::TABLES, guard::TABLES].concat();
    http_edge::tables::create(pool, "userledger sign-in", &tables).await
}

/// PostgreSQL beside the log, where sessions and codes are kept.
pub fn database(state: &AppState) -> Result<&PgPool, ApiError> {
    state.edge.database.as_ref().ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "signing in needs PostgreSQL beside the log (no database is configured)"
        ))
    })
}

/// Whether the request came over https (directly, or through a proxy that says so): cookies
/// are then `Secure`.
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// A cookie only this site's pages and requests see: HttpOnly, path `/`, `Secure` over https.
fn cookie(
    name: &'static str,
    value: String,
    same_site: SameSite,
    headers: &HeaderMap,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .path("/")
        .same_site(same_site)
        .secure(over_https(headers))
        .build()
}

/// The session cookie: SameSite=Lax, so that the redirect back from an application's
/// `/oauth/authorize` link carries it.
pub fn session_cookie(secret: String, headers: &HeaderMap) -> Cookie<'static> {
    cookie(SESSION_COOKIE, secret, SameSite::Lax, headers)
}

/// A new CSRF token and its cookie (SameSite=Strict: only this site's own form posts it).
pub fn csrf_cookie(headers: &HeaderMap) -> (String, Cookie<'static>) {
    let token = sessions::new_secret();
    let cookie = cookie(CSRF_COOKIE, token.clone(), SameSite::Strict, headers);
    (token, cookie)
}

/// Whether a form's `csrf` field matches its cookie (compared in constant time).
pub fn csrf_matches(jar: &CookieJar, presented: Option<&str>) -> bool {
    let (Some(cookie), Some(presented)) = (jar.get(CSRF_COOKIE), presented) else {
        return false;
    };
    let expected = cookie.value().as_bytes();
    let presented = presented.as_bytes();
    !expected.is_empty()
        && expected.len() == presented.len()
        && expected
            .iter()
            .zip(presented)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// An HTML page with `status`, never cached, never framed by another site.
pub fn html_page(status: axum::http::StatusCode, page: maud::Markup) -> Response {
    let mut response = (status, Html(page.into_string())).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}
