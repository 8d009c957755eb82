//! Signing in through a browser, over HTTP as a browser does it (forms, cookies, redirects
//! followed by hand): the login page, sessions, `/oauth/authorize` with PKCE and consent, the
//! `authorization_code` grant, and every refusal the flow has.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use test_support::app::spawn_app_with;
use test_support::app::{test_settings, ADMIN_PASSWORD, ADMIN_USERNAME};
use test_support::{spawn_app, TestApp};

const CALLBACK: &str = "http://127.0.0.1:9/callback";
const VERIFIER: &str = "a-verifier-of-at-least-43-characters-0123456789-abcdef";

fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A browser: its cookies, and no automatic redirects (each one is checked).
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
}

/// What a browser got: the status, `Location`, and the body.
struct Page {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Page {
    /// The value of the hidden field `name` of the page's form.
    fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no {name} in {}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].replace("&amp;", "&")
    }

    /// A query parameter of `Location`.
    fn location_param(&self, name: &str) -> Option<String> {
        let location = url::Url::parse(self.location.as_deref()?).ok()?;
        location
            .query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            base: app.address.clone(),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn keep(&mut self, response: reqwest::Response) -> Page {
        for header in response.headers().get_all(SET_COOKIE) {
            let cookie = header.to_str().unwrap();
            let (pair, attributes) = cookie.split_once(';').unwrap_or((cookie, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status: response.status().as_u16(),
            location: response
                .headers()
                .get(LOCATION)
                .map(|value| value.to_str().unwrap().to_owned()),
            body: response.text().await.unwrap(),
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let response = self
            .http
            .get(self.url(path))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(response).await
    }

    async fn post_form(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let response = self
            .http
            .post(self.url(path))
            .header(COOKIE, self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep(response).await
    }

    async fn post_json(&mut self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .header(COOKIE, self.cookie_header())
            .json(body)
            .send()
            .await
            .unwrap();
        let page = self.keep(response).await;
        (
            page.status,
            serde_json::from_str(&page.body).unwrap_or(Value::Null),
        )
    }

    /// `GET path?<authorization request of client_id>` (the S256 challenge of [`VERIFIER`]).
    async fn open_for(&mut self, path: &str, client_id: &str) -> Page {
        self.get(&format!(
            "{path}?{}",
            authorize_query(client_id, &challenge(VERIFIER))
        ))
        .await
    }

    /// Fills in the login form of `page` and submits it.
    async fn sign_in(&mut self, page: &Page, username: &str, password: &str) -> Page {
        let fields = [
            "response_type",
            "client_id",
            "redirect_uri",
            "scope",
            "state",
            "code_challenge",
            "code_challenge_method",
        ];
        let mut form: Vec<(String, String)> = vec![
            ("csrf".into(), page.hidden("csrf")),
            ("username".into(), username.into()),
            ("password".into(), password.into()),
        ];
        for field in fields {
            if page.body.contains(&format!("name=\"{field}\"")) {
                form.push((field.into(), page.hidden(field)));
            }
        }
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.post_form("/login", &form).await
    }
}

/// Registers an application; its `client_id`.
async fn register(app: &TestApp, id: &str, role: &str, public: bool) -> String {
    let admin = app.admin_token().await;
    let mut body = json!({
        "id": id, "displayName": format!("The {id} application"), "role": role,
        "grants": ["authorization_code", "refresh_token"],
        "redirectUris": [CALLBACK], "isPublic": public,
    });
    if !public {
        body["secret"] = json!(format!("{id}-secret-1"));
    }
    let (status, answer) = app.post("/client/admin-api/create", &admin, &body).await;
    assert_eq!(status, 200, "{answer}");
    id.to_owned()
}

fn authorize_query(client_id: &str, challenge: &str) -> String {
    format!(
        "client_id={client_id}&redirect_uri={}&response_type=code&state=s-123&\
         code_challenge={challenge}&code_challenge_method=S256",
        urlencode(CALLBACK)
    )
}

fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Signs in through the login page and follows to the code; the browser and the code.
async fn code_for(app: &TestApp, client_id: &str) -> (Browser, String) {
    let mut browser = Browser::new(app);
    let login = browser.open_for("/login", client_id).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let signed_in = browser
        .sign_in(&login, ADMIN_USERNAME, ADMIN_PASSWORD)
        .await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let authorized = browser.get(signed_in.location.as_deref().unwrap()).await;
    assert_eq!(authorized.status, 302, "{}", authorized.body);
    assert!(authorized
        .location
        .as_deref()
        .unwrap()
        .starts_with(CALLBACK));
    assert_eq!(authorized.location_param("state").as_deref(), Some("s-123"));
    let code = authorized.location_param("code").expect("a code");
    (browser, code)
}

async fn exchange(app: &TestApp, form: &[(&str, &str)]) -> (u16, Value) {
    app.token_request(form).await
}

/// Trades `code` as a public application does: `client_id`, the callback and the verifier.
async fn trade(app: &TestApp, client_id: &str, code: &str) -> (u16, Value) {
    exchange(
        app,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("redirect_uri", CALLBACK),
            ("code", code),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

#[tokio::test]
async fn a_person_signs_in_and_the_application_trades_the_code_for_tokens() {
    let app = spawn_app().await;
    let client_id = register(&app, "public_spa", "internal_client", true).await;

    let mut browser = Browser::new(&app);
    let login = browser.open_for("/login", &client_id).await;
    assert_eq!(login.status, 200);
    assert!(
        login.body.contains("The public_spa application"),
        "the application's name is shown"
    );
    assert!(login.body.contains("autocomplete=\"username\""));
    assert!(login.body.contains("autocomplete=\"current-password\""));
    assert!(login.body.contains("<label for=\"password\">"));
    let signed_in = browser
        .sign_in(&login, ADMIN_USERNAME, ADMIN_PASSWORD)
        .await;
    assert_eq!(signed_in.status, 303);
    assert!(browser.cookies.contains_key("userledger_session"));
    let authorized = browser.get(signed_in.location.as_deref().unwrap()).await;
    assert_eq!(authorized.status, 302);
    let code = authorized.location_param("code").unwrap();

    let (status, tokens) = trade(&app, &client_id, &code).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["expires_in"].is_u64());
    assert!(tokens["refresh_token"].is_string());
    let token = tokens["access_token"].as_str().unwrap();
    let (status, body) = app
        .call(
            reqwest::Method::GET,
            "/user/admin-api/subscription-tiers",
            token,
            None,
        )
        .await;
    assert_eq!(status, 200, "the token works: {body}");

    // A public application refreshes without a secret.
    let (status, refreshed) = refresh(&app, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{refreshed}");

    // The code works once (and presenting it again revokes what it issued: see below).
    let (status, body) = trade(&app, &client_id, &code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_grant")),
        "{body}"
    );

    // Signed in already: authorize issues a code without the form.
    let again = browser.open_for("/oauth/authorize", &client_id).await;
    assert_eq!(again.status, 302);
    assert!(again.location_param("code").is_some());
}

#[tokio::test]
async fn the_token_endpoint_refuses_every_wrong_presentation_of_a_code() {
    let app = spawn_app().await;
    let client_id = register(&app, "public_spa", "internal_client", true).await;
    let confidential = register(&app, "server_app", "internal_client", false).await;
    let refused = |status: u16, body: &Value, error: &str| {
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some(error)),
            "{body}"
        );
    };

    let (_, code) = code_for(&app, &client_id).await;
    let base = |code: &str| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("client_id", client_id.clone()),
            ("redirect_uri", CALLBACK.to_owned()),
            ("code", code.to_owned()),
        ]
    };
    let send = |form: Vec<(&'static str, String)>| {
        let app = &app;
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            exchange(app, &form).await
        }
    };
    // A wrong verifier spends the code.
    let mut wrong = base(&code);
    wrong.push(("code_verifier", format!("{VERIFIER}-wrong")));
    let (status, body) = send(wrong).await;
    refused(status, &body, "invalid_grant");
    let mut right = base(&code);
    right.push(("code_verifier", VERIFIER.to_owned()));
    let (status, body) = send(right).await;
    refused(status, &body, "invalid_grant");

    // No verifier; another redirect URI; a secret the public application does not have.
    let (_, code) = code_for(&app, &client_id).await;
    let (status, body) = send(base(&code)).await;
    refused(status, &body, "invalid_grant");
    let (_, code) = code_for(&app, &client_id).await;
    let mut other = base(&code);
    other[2].1 = "http://127.0.0.1:9/elsewhere".to_owned();
    other.push(("code_verifier", VERIFIER.to_owned()));
    let (status, body) = send(other).await;
    refused(status, &body, "invalid_grant");
    let (_, code) = code_for(&app, &client_id).await;
    let mut secret = base(&code);
    secret.push(("code_verifier", VERIFIER.to_owned()));
    secret.push(("client_secret", "guessed-secret-1".to_owned()));
    let (status, body) = send(secret).await;
    refused(status, &body, "invalid_client");

    // A code of one application presented by another.
    let (_, code) = code_for(&app, &client_id).await;
    let mut stolen = base(&code);
    stolen[1].1 = confidential.clone();
    stolen.push(("client_secret", format!("{confidential}-secret-1")));
    stolen.push(("code_verifier", VERIFIER.to_owned()));
    let (status, body) = send(stolen).await;
    refused(status, &body, "invalid_grant");

    // An unknown code.
    let mut unknown = base("no-such-code");
    unknown.push(("code_verifier", VERIFIER.to_owned()));
    let (status, body) = send(unknown).await;
    refused(status, &body, "invalid_grant");
}

#[tokio::test]
async fn a_code_expires() {
    let mut settings = test_settings();
    settings.authorization_code_ttl = Duration::from_secs(1);
    let app = spawn_app_with(settings).await;
    let client_id = register(&app, "public_spa", "internal_client", true).await;
    let (_, code) = code_for(&app, &client_id).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (status, body) = trade(&app, &client_id, &code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_grant")),
        "{body}"
    );
}

#[tokio::test]
async fn authorize_never_redirects_where_the_application_did_not_register() {
    let app = spawn_app().await;
    let client_id = register(&app, "public_spa", "internal_client", true).await;
    let mut browser = Browser::new(&app);
    let login = browser.open_for("/login", &client_id).await;
    browser
        .sign_in(&login, ADMIN_USERNAME, ADMIN_PASSWORD)
        .await;

    let evil = format!(
        "/oauth/authorize?client_id={client_id}&redirect_uri={}&response_type=code&state=x&\
         code_challenge={}&code_challenge_method=S256",
        urlencode("https://evil.example/steal"),
        challenge(VERIFIER)
    );
    let page = browser.get(&evil).await;
    assert_eq!((page.status, page.location), (400, None), "{}", page.body);
    let unknown = browser
        .get(&format!(
            "/oauth/authorize?{}",
            authorize_query("no_such_app", &challenge(VERIFIER))
        ))
        .await;
    assert_eq!((unknown.status, unknown.location), (400, None));

    // Errors about a registered redirect URI go back to it, with the state.
    let plain = browser
        .get(&format!(
            "/oauth/authorize?client_id={client_id}&redirect_uri={}&response_type=code&state=p&\
             code_challenge={}&code_challenge_method=plain",
            urlencode(CALLBACK),
            challenge(VERIFIER)
        ))
        .await;
    assert_eq!(plain.status, 302);
    assert_eq!(
        plain.location_param("error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(plain.location_param("state").as_deref(), Some("p"));
    let no_pkce = browser
        .get(&format!(
            "/oauth/authorize?client_id={client_id}&redirect_uri={}&response_type=code&state=p",
            urlencode(CALLBACK)
        ))
        .await;
    assert_eq!(
        no_pkce.location_param("error").as_deref(),
        Some("invalid_request")
    );
    assert!(no_pkce.location_param("code").is_none());
    let token_flow = browser
        .get(&format!(
            "/oauth/authorize?{}",
            authorize_query(&client_id, &challenge(VERIFIER))
                .replace("response_type=code", "response_type=token")
        ))
        .await;
    assert_eq!(
        token_flow.location_param("error").as_deref(),
        Some("unsupported_response_type")
    );
}

#[tokio::test]
async fn nobody_signed_in_is_sent_to_the_login_page_and_a_wrong_password_says_nothing_more() {
    let app = spawn_app().await;
    let client_id = register(&app, "public_spa", "internal_client", true).await;
    let mut browser = Browser::new(&app);
    let query = authorize_query(&client_id, &challenge(VERIFIER));
    let page = browser.get(&format!("/oauth/authorize?{query}")).await;
    assert_eq!(page.status, 303);
    assert!(page.location.as_deref().unwrap().starts_with("/login?"));

    let login = browser.get(page.location.as_deref().unwrap()).await;
    let wrong = browser
        .sign_in(&login, ADMIN_USERNAME, "wrong-password-1")
        .await;
    let unknown = browser
        .sign_in(&login, "nobody_at_all", "wrong-password-1")
        .await;
    assert_eq!((wrong.status, unknown.status), (401, 401));
    assert!(wrong
        .body
        .contains("The username or password is incorrect."));
    let message = |body: &str| {
        body[body.find("role=\"alert\"").unwrap()..]
            .split('<')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        message(&wrong.body),
        message(&unknown.body),
        "the same words either way"
    );
    assert!(!browser.cookies.contains_key("userledger_session"));

    // A form without its CSRF token is refused, even with the right password.
    let mut other = Browser::new(&app);
    let forged = other
        .post_form(
            "/login",
            &[
                ("username", ADMIN_USERNAME),
                ("password", ADMIN_PASSWORD),
                ("csrf", "forged"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert!(!other.cookies.contains_key("userledger_session"));

    // A form naming a field twice is refused (which username would count depends on the reader).
    let csrf = login.hidden("csrf");
    let twice = browser
        .post_form(
            "/login",
            &[
                ("csrf", csrf.as_str()),
                ("username", "nobody_at_all"),
                ("username", ADMIN_USERNAME),
                ("password", ADMIN_PASSWORD),
            ],
        )
        .await;
    assert_eq!(twice.status, 400, "{}", twice.body);
    assert!(!browser.cookies.contains_key("userledger_session"));
}

#[tokio::test]
async fn an_external_application_asks_for_consent() {
    let app = spawn_app().await;
    let client_id = register(&app, "partner_app", "external_client", false).await;
    let mut browser = Browser::new(&app);
    let query = authorize_query(&client_id, &challenge(VERIFIER));
    let login = browser.get(&format!("/login?{query}")).await;
    let signed_in = browser
        .sign_in(&login, ADMIN_USERNAME, ADMIN_PASSWORD)
        .await;
    let consent = browser.get(signed_in.location.as_deref().unwrap()).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.body.contains("The partner_app application"));

    let answer = |consent_value: &'static str| {
        let mut form: Vec<(String, String)> = vec![
            ("csrf".into(), consent.hidden("csrf")),
            ("consent".into(), consent_value.into()),
        ];
        for field in [
            "client_id",
            "redirect_uri",
            "response_type",
            "state",
            "code_challenge",
            "code_challenge_method",
        ] {
            form.push((field.into(), consent.hidden(field)));
        }
        form
    };
    let deny = answer("deny");
    let deny: Vec<(&str, &str)> = deny.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let denied = browser.post_form("/oauth/authorize", &deny).await;
    assert_eq!(denied.status, 302);
    assert_eq!(
        denied.location_param("error").as_deref(),
        Some("access_denied")
    );

    let allow = answer("allow");
    let allow: Vec<(&str, &str)> = allow
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let allowed = browser.post_form("/oauth/authorize", &allow).await;
    assert_eq!(allowed.status, 302);
    let code = allowed.location_param("code").expect("a code");
    let secret = format!("{client_id}-secret-1");
    let (status, tokens) = exchange(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("redirect_uri", CALLBACK),
            ("code", &code),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
}

#[tokio::test]
async fn a_session_opened_by_user_login_is_seen_by_session_state_until_logout() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    let state = browser.get("/user/session-state").await;
    assert_eq!(state.status, 403);

    let (status, body) = browser
        .post_json(
            "/user/login",
            &json!({ "username": ADMIN_USERNAME, "password": "wrong-password-1" }),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("Unauthorized")),
        "{body}"
    );
    let (status, body) = browser
        .post_json(
            "/user/login",
            &json!({ "username": ADMIN_USERNAME, "password": ADMIN_PASSWORD, "userAgent": "test" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["2faEnabled"], false);
    assert_eq!(body["data"]["userInfo"]["username"], ADMIN_USERNAME);

    let state = browser.get("/user/session-state").await;
    assert_eq!(state.status, 200, "{}", state.body);
    let state: Value = serde_json::from_str(&state.body).unwrap();
    assert_eq!(state["data"]["userInfo"]["username"], ADMIN_USERNAME);

    let out = browser.get("/user/logout").await;
    assert_eq!(out.status, 200);
    assert_eq!(browser.get("/user/session-state").await.status, 403);
}

#[tokio::test]
async fn the_login_page_without_a_client_id_signs_in_to_the_configured_login_application() {
    let mut settings = test_settings();
    settings.login_client_id = Some("nitrogen_ui".to_owned());
    let app = spawn_app_with(settings).await;
    register(&app, "nitrogen_ui", "internal_client", true).await;
    // As Nitrogen sends it: no client_id, no state.
    let mut browser = Browser::new(&app);
    let page = browser
        .get(&format!(
            "/?redirect_uri={}&code_challenge={}&code_challenge_method=S256",
            urlencode(CALLBACK),
            challenge(VERIFIER)
        ))
        .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("The nitrogen_ui application"));
    let signed_in = browser.sign_in(&page, ADMIN_USERNAME, ADMIN_PASSWORD).await;
    let authorized = browser.get(signed_in.location.as_deref().unwrap()).await;
    let code = authorized.location_param("code").expect("a code");
    let (status, tokens) = trade(&app, "nitrogen_ui", &code).await;
    assert_eq!(status, 200, "{tokens}");
}

/// Tokens from a code: (access, refresh).
async fn tokens_for(app: &TestApp, client_id: &str) -> (String, String) {
    let (_, code) = code_for(app, client_id).await;
    let (status, tokens) = trade(app, client_id, &code).await;
    assert_eq!(status, 200, "{tokens}");
    (
        tokens["access_token"].as_str().unwrap().to_owned(),
        tokens["refresh_token"].as_str().unwrap().to_owned(),
    )
}

/// The status of a call to a delegated route with `token`.
async fn works(app: &TestApp, token: &str) -> u16 {
    let (status, _) = app
        .call(
            reqwest::Method::GET,
            "/user/admin-api/subscription-tiers",
            token,
            None,
        )
        .await;
    status
}

async fn refresh(app: &TestApp, refresh_token: &str) -> (u16, Value) {
    exchange(
        app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

#[tokio::test]
async fn logout_revokes_the_token_and_every_token_of_its_sign_in() {
    let app = spawn_app().await;
    let client_id = register(&app, "public_spa", "internal_client", true).await;
    let (access, refresh_token) = tokens_for(&app, &client_id).await;
    let (other, _) = tokens_for(&app, &client_id).await;
    assert_eq!(works(&app, &access).await, 200);

    let response = app
        .http
        .get(app.url("/user/logout"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(works(&app, &access).await, 401, "the token is revoked");
    let (status, body) = refresh(&app, &refresh_token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_grant")),
        "{body}"
    );
    assert_eq!(
        works(&app, &other).await,
        200,
        "another sign-in's token still works"
    );
}

#[tokio::test]
async fn logout_all_revokes_every_token_the_user_holds() {
    let app = spawn_app().await;
    let client_id = register(&app, "public_spa", "internal_client", true).await;
    let (first, _) = tokens_for(&app, &client_id).await;
    let (second, refresh_token) = tokens_for(&app, &client_id).await;
    let password_grant = app.admin_token().await;

    let response = app
        .http
        .get(app.url("/user/logout-all"))
        .bearer_auth(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    for token in [&first, &second, &password_grant] {
        assert_eq!(works(&app, token).await, 401);
    }
    let (status, _) = refresh(&app, &refresh_token).await;
    assert_eq!(status, 401);

    // Signing in again (from the next second on) works.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let fresh = app.admin_token().await;
    assert_eq!(works(&app, &fresh).await, 200);
}

#[tokio::test]
async fn a_refresh_token_presented_twice_revokes_its_family() {
    let app = spawn_app().await;
    let client_id = register(&app, "public_spa", "internal_client", true).await;
    let (_, first_refresh) = tokens_for(&app, &client_id).await;
    let (status, rotated) = refresh(&app, &first_refresh).await;
    assert_eq!(status, 200, "{rotated}");
    let access = rotated["access_token"].as_str().unwrap();
    let second_refresh = rotated["refresh_token"].as_str().unwrap();
    assert_ne!(second_refresh, first_refresh, "rotated on use");
    assert_eq!(works(&app, access).await, 200);

    // The spent refresh token again: refused, and the whole family with it.
    let (status, body) = refresh(&app, &first_refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_grant")),
        "{body}"
    );
    assert_eq!(works(&app, access).await, 401);
    let (status, _) = refresh(&app, second_refresh).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_code_presented_twice_revokes_the_tokens_it_issued() {
    let app = spawn_app().await;
    let client_id = register(&app, "public_spa", "internal_client", true).await;
    let (_, code) = code_for(&app, &client_id).await;
    let (status, tokens) = trade(&app, &client_id, &code).await;
    assert_eq!(status, 200);
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(works(&app, access).await, 200);
    let (status, _) = trade(&app, &client_id, &code).await;
    assert_eq!(status, 401);
    assert_eq!(works(&app, access).await, 401);
    let (status, _) = refresh(&app, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn of_many_concurrent_presentations_of_a_code_exactly_one_gets_tokens() {
    let app = spawn_app().await;
    let client_id = register(&app, "racing_spa", "internal_client", true).await;
    let (_, code) = code_for(&app, &client_id).await;
    let presentations = (0..8).map(|_| trade(&app, &client_id, &code));
    let answers = futures::future::join_all(presentations).await;
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 401).count(),
        7,
        "{statuses:?}"
    );
    // The others were replays: the tokens the one got are revoked.
    let (_, tokens) = answers.iter().find(|(status, _)| *status == 200).unwrap();
    assert_eq!(
        works(&app, tokens["access_token"].as_str().unwrap()).await,
        401
    );
}

#[tokio::test]
async fn introspection_tells_a_resource_server_whether_a_token_is_live() {
    let app = spawn_app().await;
    let client_id = register(&app, "public_spa", "internal_client", true).await;
    let (access, _) = tokens_for(&app, &client_id).await;
    let resource_server = app.client_token().await;
    let introspect = |token: String| {
        let app = &app;
        let resource_server = resource_server.clone();
        async move {
            let response = app
                .http
                .post(app.url("/oauth/introspect"))
                .bearer_auth(resource_server)
                .form(&[("token", token)])
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, live) = introspect(access.clone()).await;
    assert_eq!(status, 200, "{live}");
    assert_eq!(live["active"], true);
    assert_eq!(live["username"], ADMIN_USERNAME);
    assert_eq!(live["client_id"], client_id);
    assert_eq!(
        live["data"]["tokenInfo"]["user"]["username"],
        ADMIN_USERNAME
    );
    assert!(live["data"]["tokenInfo"]["scope"].is_array());
    assert!(
        live.to_string().find("secret").is_none(),
        "no secret: {live}"
    );

    let (_, garbage) = introspect("not-a-token".to_owned()).await;
    assert_eq!(
        (
            garbage["active"].clone(),
            garbage["data"]["tokenInfo"].clone()
        ),
        (json!(false), Value::Null)
    );

    app.http
        .get(app.url("/user/logout"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    let (status, revoked) = introspect(access).await;
    assert_eq!(status, 200);
    assert_eq!(revoked["active"], false, "{revoked}");
}

#[tokio::test]
async fn the_origin_of_a_registered_redirect_uri_may_call_the_api_from_a_browser() {
    let app = spawn_app().await;
    let preflight = |origin: &'static str| {
        let app = &app;
        async move {
            let response = app
                .http
                .request(reqwest::Method::OPTIONS, app.url("/roles/list"))
                .header("Origin", origin)
                .header("Access-Control-Request-Method", "GET")
                .header("Access-Control-Request-Headers", "authorization")
                .send()
                .await
                .unwrap();
            response
                .headers()
                .get("access-control-allow-origin")
                .map(|value| value.to_str().unwrap().to_owned())
        }
    };
    assert_eq!(
        preflight("http://127.0.0.1:9").await,
        None,
        "not registered yet"
    );
    register(&app, "public_spa", "internal_client", true).await;
    // Once the applications read model has the registration (within seconds).
    test_support::eventually(
        Duration::from_secs(10),
        "the redirect URI's origin allowed",
        || async {
            match preflight("http://127.0.0.1:9").await {
                Some(origin) if origin == "http://127.0.0.1:9" => Ok(()),
                other => Err(other),
            }
        },
    )
    .await;
    assert_eq!(preflight("https://evil.example").await, None);
}

#[tokio::test]
async fn failed_sign_ins_lock_an_account_which_then_answers_like_a_wrong_password() {
    let mut settings = test_settings();
    settings.sign_in_failures_per_account = 3;
    settings.sign_in_failures_per_ip = 0;
    let app = spawn_app_with(settings).await;
    app.register_user("victim_user", "victim-password-1", "user")
        .await;
    let mut browser = Browser::new(&app);
    let login = |username: &'static str, password: &'static str| json!({ "username": username, "password": password });
    let wrong = browser
        .post_json("/user/login", &login("victim_user", "wrong-password-1"))
        .await;
    assert_eq!(wrong.0, 401);
    for _ in 0..2 {
        let again = browser
            .post_json("/user/login", &login("victim_user", "wrong-password-1"))
            .await;
        assert_eq!(again, wrong);
    }
    // Locked: the right password gets the answer of a wrong one, from every way in.
    let locked = browser
        .post_json("/user/login", &login("victim_user", "victim-password-1"))
        .await;
    assert_eq!(
        locked, wrong,
        "a locked account answers like a wrong password"
    );
    let (status, body) = app
        .token_request(&[
            ("grant_type", "password"),
            ("username", "victim_user"),
            ("password", "victim-password-1"),
            ("client_id", test_support::app::CLIENT_ID),
            ("client_secret", test_support::app::CLIENT_SECRET),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_grant")),
        "{body}"
    );
    // An account that does not exist locks alike (the limit tells nothing).
    for _ in 0..4 {
        let nobody = browser
            .post_json("/user/login", &login("nobody_here", "wrong-password-1"))
            .await;
        assert_eq!(nobody, wrong);
    }
    // Other accounts are not affected.
    let (status, _) = browser
        .post_json("/user/login", &login(ADMIN_USERNAME, ADMIN_PASSWORD))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn failed_sign_ins_count_across_command_processes() {
    let mut settings = test_settings();
    settings.sign_in_failures_per_account = 4;
    settings.sign_in_failures_per_ip = 0;
    let app = spawn_app_with(settings.clone()).await;
    app.register_user("shared_sam", "sam-password-1", "user")
        .await;
    // A second command process on the same log and database, as behind a balancer.
    let second = command_service::Application::build(
        "127.0.0.1:0".parse().unwrap(),
        app.store.clone(),
        Some(app.store.pool().clone()),
        settings,
    )
    .await
    .unwrap();
    let second_base = format!("http://{}", second.local_addr().unwrap());
    tokio::spawn(second.run_until_stopped(std::future::pending()));
    let mut first = Browser::new(&app);
    let mut other = Browser {
        base: second_base,
        ..Browser::new(&app)
    };
    let login = |password: &str| json!({ "username": "shared_sam", "password": password });
    for browser in [&mut first, &mut other] {
        for _ in 0..2 {
            let (status, _) = browser
                .post_json("/user/login", &login("wrong-password-1"))
                .await;
            assert_eq!(status, 401);
        }
    }
    // Four failures in all, two seen by each process: both refuse the right password now.
    for browser in [&mut first, &mut other] {
        let (status, _) = browser
            .post_json("/user/login", &login("sam-password-1"))
            .await;
        assert_eq!(status, 401, "the account is locked on every process");
    }
    // Other accounts are not.
    let admin = json!({ "username": ADMIN_USERNAME, "password": ADMIN_PASSWORD });
    assert_eq!(other.post_json("/user/login", &admin).await.0, 200);
}

#[tokio::test]
async fn failed_sign_ins_from_one_address_are_limited_across_accounts() {
    let mut settings = test_settings();
    settings.sign_in_failures_per_account = 0;
    settings.sign_in_failures_per_ip = 3;
    let app = spawn_app_with(settings).await;
    let mut browser = Browser::new(&app);
    for username in ["first_guess", "second_guess", "third_guess"] {
        let (status, _) = browser
            .post_json(
                "/user/login",
                &json!({ "username": username, "password": "wrong-password-1" }),
            )
            .await;
        assert_eq!(status, 401);
    }
    let (status, body) = browser
        .post_json(
            "/user/login",
            &json!({ "username": ADMIN_USERNAME, "password": ADMIN_PASSWORD }),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("Unauthorized")),
        "{body}"
    );
}

#[tokio::test]
async fn every_sign_in_attempt_is_a_fact_and_the_login_history_shows_it() {
    let app = spawn_app().await;
    let id = app
        .register_user("history_hana", "hana-password-1", "user")
        .await;
    let stream = format!("signin-{id}");
    let recorded = |count: usize| {
        let (app, stream) = (&app, stream.clone());
        async move {
            test_support::eventually(Duration::from_secs(10), "the attempts recorded", || async {
                let events = app.stream(&stream).await;
                if events.len() >= count {
                    Ok(events)
                } else {
                    Err(events.len())
                }
            })
            .await
        }
    };
    let mut browser = Browser::new(&app);
    let (status, _) = browser
        .post_json(
            "/user/login",
            &json!({ "username": "history_hana", "password": "wrong-password-1", "userAgent": "Agent/1" }),
        )
        .await;
    assert_eq!(status, 401);
    recorded(1).await;
    let (status, _) = browser
        .post_json(
            "/user/login",
            &json!({ "username": "history_hana", "password": "hana-password-1", "userAgent": "Agent/2" }),
        )
        .await;
    assert_eq!(status, 200);
    let token = app.user_token("history_hana", "hana-password-1").await;

    // Facts in the log, on the user's own sign-in stream, never with the password.
    let events = recorded(3).await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        ["SignInRefused", "SignInSucceeded", "SignInSucceeded"]
    );
    for event in &events {
        assert!(!event.data.to_string().contains("hana-password-1"));
    }
    assert_eq!(
        app.stream(&format!("user-{id}")).await.len(),
        2,
        "the user stream stays small"
    );

    // The admin route answers Liquid's records, newest first.
    let admin = app.admin_token().await;
    let path = format!("/user/admin-api/login-history?target={id}");
    let records = test_support::eventually(Duration::from_secs(10), "the read model", || async {
        let (status, body) = app.call(reqwest::Method::GET, &path, &admin, None).await;
        match body["data"]["records"].as_array() {
            Some(records) if status == 200 && records.len() == 3 => Ok(records.clone()),
            _ => Err(body),
        }
    })
    .await;
    assert_eq!(records[0]["success"], true);
    assert_eq!(records[0]["source"], "password");
    assert_eq!(records[0]["targetId"], id.to_string());
    assert_eq!(records[0]["clientId"], test_support::app::CLIENT_ID);
    assert_eq!(records[1]["userAgent"], "Agent/2");
    assert_eq!(records[2]["success"], false);
    assert_eq!(records[2]["reason"], "password_rejected");
    assert_eq!(records[2]["userAgent"], "Agent/1");
    assert_eq!(records[2]["ipAddress"], "127.0.0.1");

    // Keyset pages: neither skip nor repeat.
    let (_, first) = app
        .call(
            reqwest::Method::GET,
            &format!("{path}&limit=2"),
            &admin,
            None,
        )
        .await;
    let last = first["data"]["records"][1]["_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, second) = app
        .call(
            reqwest::Method::GET,
            &format!("{path}&limit=2&offset={last}"),
            &admin,
            None,
        )
        .await;
    let ids: Vec<Value> = first["data"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["data"]["records"].as_array().unwrap())
        .map(|record| record["_id"].clone())
        .collect();
    let all: Vec<Value> = records.iter().map(|record| record["_id"].clone()).collect();
    assert_eq!(ids, all);

    // The client edge, the user's own route, and an unknown target.
    let client = app.client_token().await;
    let (status, body) = app
        .call(
            reqwest::Method::GET,
            &format!("/user/client-api/login-history?target={id}"),
            &client,
            None,
        )
        .await;
    assert_eq!(
        (status, body["data"]["records"].as_array().map(Vec::len)),
        (200, Some(3))
    );
    let (status, body) = app
        .call(reqwest::Method::GET, "/user/login-history", &token, None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .all(|record| record["targetId"] == id.to_string()));
    let (status, _) = app
        .call(
            reqwest::Method::GET,
            &format!(
                "/user/admin-api/login-history?target={}",
                uuid::Uuid::now_v7()
            ),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_saturated_hashing_pool_answers_the_login_form_with_a_page_and_retry_after() {
    let mut settings = test_settings();
    settings.hashing_workers = 1;
    settings.hashing_queue = 0;
    settings.sign_in_failures_per_account = 0;
    settings.sign_in_failures_per_ip = 0;
    let app = spawn_app_with(settings).await;
    let client_id = register(&app, "public_spa", "internal_client", true).await;
    let mut browser = Browser::new(&app);
    let login = browser.open_for("/login", &client_id).await;
    let form: Vec<(String, String)> = vec![
        ("csrf".into(), login.hidden("csrf")),
        ("username".into(), ADMIN_USERNAME.into()),
        ("password".into(), "wrong-password-1".into()),
    ];
    let cookie = browser.cookie_header();
    // Thirty-two at once on one hashing worker with no queue: some are turned away.
    let attempts = (0..32).map(|_| {
        let (http, url, cookie, form) = (
            browser.http.clone(),
            browser.url("/login"),
            cookie.clone(),
            form.clone(),
        );
        async move {
            let response = http
                .post(url)
                .header(COOKIE, cookie)
                .form(&form)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").is_some();
            let html = response
                .headers()
                .get("content-type")
                .is_some_and(|value| value.to_str().unwrap().starts_with("text/html"));
            (status, retry_after, html)
        }
    });
    let answers = futures::future::join_all(attempts).await;
    assert!(
        answers
            .iter()
            .all(|(status, _, html)| *html && [401, 503].contains(status)),
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .any(|(status, retry_after, _)| *status == 503 && *retry_after),
        "{answers:?}"
    );
}

#[tokio::test]
async fn sessions_codes_and_grants_nobody_can_use_are_forgotten() {
    let app = spawn_app().await;
    let client_id = register(&app, "public_spa", "internal_client", true).await;
    let (browser, _code) = code_for(&app, &client_id).await;
    let (_, live_refresh) = tokens_for(&app, &client_id).await;
    let pool = app.store.pool();
    let count = |table: &'static str| async move {
        sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(pool)
            .await
            .unwrap()
    };
    let before = (
        count("authorization_codes").await,
        count("sign_in_sessions").await,
        count("token_families").await,
    );
    // Age one of each past any use: a code and a session that expired two days ago, a family
    // opened longer ago than a refresh token lives.
    for statement in [
        "UPDATE authorization_codes SET expires_at = now() - interval '2 days'
          WHERE code_hash = (SELECT code_hash FROM authorization_codes LIMIT 1)",
        "UPDATE sign_in_sessions SET expires_at = now() - interval '2 days'
          WHERE secret_hash = (SELECT secret_hash FROM sign_in_sessions LIMIT 1)",
        "UPDATE token_families SET created_at = now() - interval '20 days'
          WHERE family = (SELECT family FROM token_families ORDER BY created_at LIMIT 1)",
        // Failed-sign-in cells: one full again (forgotten), one still counting (kept).
        "INSERT INTO sign_in_failures (key_hash, tat)
         VALUES ('\\x01', now() - interval '1 second'), ('\\x02', now() + interval '30 seconds')",
    ] {
        sqlx::query(statement).execute(pool).await.unwrap();
    }
    let swept = command_service::signin::sweep(pool, app.settings.refresh_token_ttl)
        .await
        .unwrap();
    assert_eq!(swept, 4);
    assert_eq!(count("sign_in_failures").await, 1);
    let after = (
        count("authorization_codes").await,
        count("sign_in_sessions").await,
        count("token_families").await,
    );
    assert_eq!(after, (before.0 - 1, before.1 - 1, before.2 - 1));
    // What is live still works.
    let (status, body) = refresh(&app, &live_refresh).await;
    assert_eq!(status, 200, "{body}");
    drop(browser);
}

#[tokio::test]
async fn concurrent_sign_ins_are_all_recorded_on_one_chain_and_the_user_history_pages_them() {
    let app = spawn_app().await;
    let id = app
        .register_user("racing_rosa", "rosa-password-1", "user")
        .await;
    let logins = (0..8).map(|i| {
        let mut browser = Browser::new(&app);
        async move {
            let body = json!({
                "username": "racing_rosa", "password": "rosa-password-1",
                "userAgent": format!("Agent/{i}"),
            });
            browser.post_json("/user/login", &body).await.0
        }
    });
    let statuses = futures::future::join_all(logins).await;
    assert!(statuses.iter().all(|&status| status == 200), "{statuses:?}");

    // Each attempt was appended after reading only the stream's last event: all are there, in
    // one unbroken hash chain.
    let events = app.stream(&format!("signin-{id}")).await;
    let revisions: Vec<u64> = events.iter().map(|event| event.revision).collect();
    assert_eq!(revisions, (0..8).collect::<Vec<u64>>());
    test_support::app::whole_log(&app.store).await;
    let verification =
        projections::verify(app.log.clone(), &*app.store, app.database_url(), |_, _| {})
            .await
            .expect("verify runs");
    assert!(verification.is_clean(), "{verification:?}");

    // The auditors' history route pages them with `stream=signin`.
    let admin = app.admin_token().await;
    let history = |query: String| {
        let (app, admin) = (&app, admin.clone());
        async move {
            let path = format!("/user/admin-api/history?target={id}&{query}");
            app.call(reqwest::Method::GET, &path, &admin, None).await
        }
    };
    let (status, first) = history("stream=signin&limit=5".into()).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["data"]["next"], 5);
    let (_, second) = history("stream=signin&limit=5&from=5".into()).await;
    assert_eq!(second["data"]["next"], Value::Null);
    let shown: Vec<&Value> = first["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["data"]["events"].as_array().unwrap())
        .collect();
    assert_eq!(shown.len(), 8);
    assert!(shown.iter().all(|event| event["type"] == "SignInSucceeded"));
    assert!(!format!("{first}{second}").contains("rosa-password-1"));
    // The user's own stream stays what it was.
    let (_, own) = history(String::new()).await;
    assert_eq!(own["data"]["events"].as_array().map(Vec::len), Some(2));

    // Refusals: an unknown stream, `at` with sign-ins, an unknown user.
    let (status, body) = history("stream=sessions".into()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("ClientInputError"))
    );
    let (status, _) = history("stream=signin&at=1".into()).await;
    assert_eq!(status, 400);
    let path = format!(
        "/user/admin-api/history?target={}&stream=signin",
        uuid::Uuid::now_v7()
    );
    let (status, _) = app.call(reqwest::Method::GET, &path, &admin, None).await;
    assert_eq!(status, 404);
}
