//! `POST /oauth/token` (API.md §2): each grant's happy path and what each token carries, and
//! every refusal in OAuth's error shape.
//!
//! Applications and users other than the bootstrap ones are written straight through the
//! command pipeline, so that these tests depend on the token endpoint only.

use command_service::hashing::Hasher;
use command_service::pipeline::execute;
use events::application::{Application, ApplicationCommand, CreateApplication, CLIENT_ID_CLAIM};
use events::metadata::{Actor, CommandContext};
use events::scopes::Scope;
use events::store::{EventStore, UniqueClaim};
use events::user::{Toggle, User, UserCommand, USERNAME_CLAIM};
use events::values::{ApplicationDisplayName, ApplicationId, ClientId, ClientRole, Grant, UserId};
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use test_support::app::{
    ADMIN_EMAIL, ADMIN_PASSWORD, ADMIN_USERNAME, CLIENT_ID, CLIENT_SECRET, TOKEN_SECRET,
};
use test_support::{spawn_app, TestApp};

fn context() -> CommandContext {
    CommandContext::new(uuid::Uuid::now_v7(), Actor::system(), chrono::Utc::now())
}

/// The claims of a token, checked against the test key.
fn claims(token: &str) -> Value {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    decode::<Value>(token, &DecodingKey::from_secret(TOKEN_SECRET), &validation)
        .expect("a token signed with the test key")
        .claims
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

struct NewClient<'a> {
    client_id: &'a str,
    secret: Option<&'a str>,
    role: ClientRole,
    grants: &'a [Grant],
    scope: &'a [&'a str],
}

async fn register_client(app: &TestApp, client: NewClient<'_>) -> ApplicationId {
    let secret_hash = match client.secret {
        Some(secret) => Some(Hasher::new(1, 1).hash(secret).await.expect("hashed")),
        None => None,
    };
    let id = ApplicationId::new();
    let create = CreateApplication {
        id,
        client_id: ClientId::parse(client.client_id).expect("a client id"),
        display_name: ApplicationDisplayName::parse("A test application").expect("a name"),
        role: client.role,
        grants: client.grants.to_vec(),
        redirect_uris: Vec::new(),
        is_public: client.secret.is_none(),
        secret_hash,
        scope: client
            .scope
            .iter()
            .map(|s| Scope::parse(s).expect("a known scope"))
            .collect(),
    };
    execute::<Application, _>(&*app.store, &id, &context(), 1, |_| {
        Ok(ApplicationCommand::Create(create.clone()))
    })
    .await
    .expect("the application is created");
    id
}

async fn ban(app: &TestApp, id: UserId) {
    execute::<User, _>(&*app.store, &id, &context(), 1, |_| {
        Ok(UserCommand::SetBanned(Toggle::on(None)))
    })
    .await
    .expect("the user is banned");
}

async fn holder_id(app: &TestApp, kind: &str, value: &str) -> String {
    let stream = app
        .store
        .claim_holder(&UniqueClaim::new(kind, value))
        .await
        .expect("the store answers")
        .expect("a holder");
    stream.split_once('-').expect("category-id").1.to_owned()
}

fn assert_oauth_error(status: u16, body: &Value, expected_status: u16, error: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{body}");
}

// ---------------------------------------------------------------------------------------------
// client_credentials
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn client_credentials_issue_a_client_token_with_all_the_clients_scope() {
    let app = spawn_app().await;
    let (status, body) = app
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(
        body["expires_in"],
        app.settings.access_token_ttl.as_secs(),
        "{body}"
    );
    assert!(body.get("refresh_token").is_none(), "{body}");

    let application_id = holder_id(&app, CLIENT_ID_CLAIM, CLIENT_ID).await;
    let claims = claims(body["access_token"].as_str().expect("a token"));
    assert_eq!(claims["kind"], "client");
    assert_eq!(claims["use"], "access");
    assert_eq!(claims["sub"], application_id.as_str());
    assert_eq!(claims["client"], application_id.as_str());
    assert_eq!(claims["role"], "internal_client");
    assert_eq!(strings(&claims["client_scope"]), ["*"]);
    // Its own scope plus its role's.
    assert_eq!(strings(&claims["scope"]), ["*", "client:all"]);
    assert!(claims["exp"].as_u64() > claims["iat"].as_u64());
}

#[tokio::test]
async fn client_credentials_with_a_scope_get_exactly_that_scope() {
    let app = spawn_app().await;
    let (status, body) = app
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("scope", "client:profile:read  client:roles:write"),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    let claims = claims(body["access_token"].as_str().expect("a token"));
    assert_eq!(
        strings(&claims["scope"]),
        ["client:profile:read", "client:roles:write"]
    );
}

#[tokio::test]
async fn client_credentials_accept_http_basic_authentication() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["cache-control"].to_str().ok(),
        Some("no-store")
    );
}

#[tokio::test]
async fn a_wrong_secret_and_an_unknown_client_get_the_same_answer() {
    let app = spawn_app().await;
    let (status, wrong_secret) = app
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", "not-the-secret"),
        ])
        .await;
    assert_oauth_error(status, &wrong_secret, 401, "invalid_client");
    let (status, unknown) = app
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", "nobody_knows_me"),
            ("client_secret", CLIENT_SECRET),
        ])
        .await;
    assert_oauth_error(status, &unknown, 401, "invalid_client");
    assert_eq!(wrong_secret, unknown);
}

#[tokio::test]
async fn a_scope_the_client_may_not_have_is_invalid_scope() {
    let app = spawn_app().await;
    register_client(
        &app,
        NewClient {
            client_id: "external_app",
            secret: Some("external-secret"),
            role: ClientRole::ExternalClient,
            grants: &[Grant::ClientCredentials],
            scope: &["delegated:all", "client:profile:read"],
        },
    )
    .await;
    let request = |scope: &'static str| {
        [
            ("grant_type", "client_credentials"),
            ("client_id", "external_app"),
            ("client_secret", "external-secret"),
            ("scope", scope),
        ]
    };
    for refused in [
        "client:profile:write",
        "client:profile:read admin:all",
        "no:such:scope",
    ] {
        let (status, body) = app.token_request(&request(refused)).await;
        assert_oauth_error(status, &body, 401, "invalid_scope");
    }
    let (status, body) = app.token_request(&request("client:profile:read")).await;
    assert_eq!(status, 200, "{body}");
    let claims = claims(body["access_token"].as_str().expect("a token"));
    assert_eq!(claims["role"], "external_client");
    assert_eq!(
        strings(&claims["client_scope"]),
        ["client:profile:read", "delegated:all"]
    );
}

#[tokio::test]
async fn a_public_client_cannot_use_client_credentials() {
    let app = spawn_app().await;
    register_client(
        &app,
        NewClient {
            client_id: "public_app",
            secret: None,
            role: ClientRole::ExternalClient,
            grants: &[Grant::AuthorizationCode],
            scope: &["delegated:all"],
        },
    )
    .await;
    for secret in ["", "anything-at-all"] {
        let (status, body) = app
            .token_request(&[
                ("grant_type", "client_credentials"),
                ("client_id", "public_app"),
                ("client_secret", secret),
            ])
            .await;
        let expected = if secret.is_empty() {
            (400, "invalid_request")
        } else {
            (401, "invalid_client")
        };
        assert_oauth_error(status, &body, expected.0, expected.1);
    }
}

#[tokio::test]
async fn a_client_without_the_grant_is_refused() {
    let app = spawn_app().await;
    register_client(
        &app,
        NewClient {
            client_id: "code_only_app",
            secret: Some("code-only-secret"),
            role: ClientRole::ExternalClient,
            grants: &[Grant::AuthorizationCode],
            scope: &["delegated:all"],
        },
    )
    .await;
    let (status, body) = app
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", "code_only_app"),
            ("client_secret", "code-only-secret"),
        ])
        .await;
    assert_oauth_error(status, &body, 401, "invalid_client");
    let (status, body) = app
        .token_request(&[
            ("grant_type", "password"),
            ("username", ADMIN_USERNAME),
            ("password", ADMIN_PASSWORD),
            ("client_id", "code_only_app"),
            ("client_secret", "code-only-secret"),
        ])
        .await;
    assert_oauth_error(status, &body, 401, "invalid_client");
}

#[tokio::test]
async fn malformed_requests_are_invalid_request_and_unknown_grants_unsupported() {
    let app = spawn_app().await;
    let (status, body) = app
        .token_request(&[("grant_type", "implicit"), ("client_id", CLIENT_ID)])
        .await;
    assert_oauth_error(status, &body, 400, "unsupported_grant_type");

    let (status, body) = app.token_request(&[("client_id", CLIENT_ID)]).await;
    assert_oauth_error(status, &body, 400, "invalid_request");

    let (status, body) = app
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_secret", CLIENT_SECRET),
        ])
        .await;
    assert_oauth_error(status, &body, 400, "invalid_request");

    let response = app
        .http
        .post(app.url("/oauth/token"))
        .json(&json!({
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }))
        .send()
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("JSON");
    assert_oauth_error(status, &body, 400, "invalid_request");
}

// ---------------------------------------------------------------------------------------------
// password
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_password_grant_issues_a_delegated_token_and_a_refresh_token() {
    let app = spawn_app().await;
    let (status, body) = app
        .token_request(&[
            ("grant_type", "password"),
            ("username", ADMIN_USERNAME),
            ("password", ADMIN_PASSWORD),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    let user_id = holder_id(&app, USERNAME_CLAIM, ADMIN_USERNAME).await;
    let application_id = holder_id(&app, CLIENT_ID_CLAIM, CLIENT_ID).await;

    let access = claims(body["access_token"].as_str().expect("a token"));
    assert_eq!(access["kind"], "delegated");
    assert_eq!(access["use"], "access");
    assert_eq!(access["sub"], user_id.as_str());
    assert_eq!(access["role"], "super_admin");
    assert_eq!(access["client"], application_id.as_str());
    assert_eq!(strings(&access["client_scope"]), ["*"]);
    // Through an internal client: the user's scope plus the role's.
    assert_eq!(strings(&access["scope"]), ["*", "delegated:all"]);

    let refresh = claims(body["refresh_token"].as_str().expect("a refresh token"));
    assert_eq!(refresh["use"], "refresh");
    assert_eq!(refresh["sub"], user_id.as_str());
    assert_ne!(refresh["jti"], access["jti"]);
    assert!(refresh["exp"].as_u64() > access["exp"].as_u64());
}

#[tokio::test]
async fn users_sign_in_by_email_in_any_case() {
    let app = spawn_app().await;
    let (status, body) = app
        .token_request(&[
            ("grant_type", "password"),
            ("username", &ADMIN_EMAIL.to_uppercase()),
            ("password", ADMIN_PASSWORD),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    let user_id = holder_id(&app, USERNAME_CLAIM, ADMIN_USERNAME).await;
    assert_eq!(
        claims(body["access_token"].as_str().expect("a token"))["sub"],
        user_id.as_str()
    );
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let app = spawn_app().await;
    let attempt = |username: &'static str, password: &'static str| {
        [
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ]
    };
    let (status, wrong) = app
        .token_request(&attempt(ADMIN_USERNAME, "not-the-password"))
        .await;
    assert_oauth_error(status, &wrong, 401, "invalid_grant");
    let (status, unknown) = app
        .token_request(&attempt("nobody_at_all", ADMIN_PASSWORD))
        .await;
    assert_oauth_error(status, &unknown, 401, "invalid_grant");
    assert_eq!(wrong, unknown);

    // The client's secret is checked before the user's password.
    let (status, body) = app
        .token_request(&[
            ("grant_type", "password"),
            ("username", ADMIN_USERNAME),
            ("password", ADMIN_PASSWORD),
            ("client_id", CLIENT_ID),
            ("client_secret", "not-the-secret"),
        ])
        .await;
    assert_oauth_error(status, &body, 401, "invalid_client");
}

#[tokio::test]
async fn a_banned_user_cannot_sign_in() {
    let app = spawn_app().await;
    let id = app
        .register_user("banned_bob", "bob-password-1", "user")
        .await;
    app.user_token("banned_bob", "bob-password-1").await;
    ban(&app, id).await;
    let (status, body) = app
        .token_request(&[
            ("grant_type", "password"),
            ("username", "banned_bob"),
            ("password", "bob-password-1"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .await;
    assert_oauth_error(status, &body, 401, "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("banned")),
        "{body}"
    );
}

#[tokio::test]
async fn through_an_external_client_a_user_gets_what_both_may_have() {
    let app = spawn_app().await;
    register_client(
        &app,
        NewClient {
            client_id: "partner_app",
            secret: Some("partner-secret"),
            role: ClientRole::ExternalClient,
            grants: &[Grant::Password],
            scope: &["delegated:all", "admin:profile:read"],
        },
    )
    .await;
    app.register_user("plain_alice", "alice-password-1", "user")
        .await;
    let sign_in = |scope: Option<&'static str>| {
        let mut form = vec![
            ("grant_type", "password"),
            ("username", "plain_alice"),
            ("password", "alice-password-1"),
            ("client_id", "partner_app"),
            ("client_secret", "partner-secret"),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        form
    };
    let (status, body) = app
        .token_request(&sign_in(Some("delegated:all admin:profile:read")))
        .await;
    assert_eq!(status, 200, "{body}");
    // admin:profile:read: the client may, the user may not.
    let access = claims(body["access_token"].as_str().expect("a token"));
    assert_eq!(strings(&access["scope"]), ["delegated:all"]);
    assert_eq!(access["role"], "user");
    assert!(body.get("refresh_token").is_none(), "{body}");

    let (status, body) = app.token_request(&sign_in(None)).await;
    assert_eq!(status, 200, "{body}");
    let access = claims(body["access_token"].as_str().expect("a token"));
    assert_eq!(strings(&access["scope"]), ["delegated:all"]);

    // The super_admin may have everything, the client only its scope.
    let (status, body) = app
        .token_request(&[
            ("grant_type", "password"),
            ("username", ADMIN_USERNAME),
            ("password", ADMIN_PASSWORD),
            ("client_id", "partner_app"),
            ("client_secret", "partner-secret"),
            ("scope", "admin:profile:read admin:profile:write"),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    let access = claims(body["access_token"].as_str().expect("a token"));
    assert_eq!(strings(&access["scope"]), ["admin:profile:read"]);
}

// ---------------------------------------------------------------------------------------------
// refresh_token
// ---------------------------------------------------------------------------------------------

async fn password_tokens(app: &TestApp, username: &str, password: &str) -> Value {
    let (status, body) = app
        .token_request(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn a_refresh_token_gets_a_new_access_token() {
    let app = spawn_app().await;
    let first = password_tokens(&app, ADMIN_USERNAME, ADMIN_PASSWORD).await;
    let refresh_token = first["refresh_token"].as_str().expect("a refresh token");
    let (status, body) = app
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    let old = claims(first["access_token"].as_str().expect("a token"));
    let new = claims(body["access_token"].as_str().expect("a token"));
    assert_eq!(new["use"], "access");
    assert_eq!(new["sub"], old["sub"]);
    assert_eq!(new["client"], old["client"]);
    assert_eq!(new["scope"], old["scope"]);
    assert_ne!(new["jti"], old["jti"]);
    assert_eq!(
        claims(body["refresh_token"].as_str().expect("a new refresh token"))["use"],
        "refresh"
    );

    // With the client's credentials too (refresh tokens rotate: the new one).
    let rotated = body["refresh_token"]
        .as_str()
        .expect("a rotated refresh token");
    let (status, body) = app
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rotated),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn only_a_valid_refresh_token_of_an_active_user_refreshes() {
    let app = spawn_app().await;
    let id = app
        .register_user("refresh_rita", "rita-password-1", "user")
        .await;
    let tokens = password_tokens(&app, "refresh_rita", "rita-password-1").await;
    let access_token = tokens["access_token"].as_str().expect("a token");
    let refresh_token = tokens["refresh_token"].as_str().expect("a refresh token");

    for presented in [access_token, "not.a.token", &format!("{refresh_token}x")] {
        let (status, body) = app
            .token_request(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", presented),
            ])
            .await;
        assert_oauth_error(status, &body, 401, "invalid_grant");
    }
    let (status, body) = app.token_request(&[("grant_type", "refresh_token")]).await;
    assert_oauth_error(status, &body, 400, "invalid_request");

    ban(&app, id).await;
    let (status, body) = app
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await;
    assert_oauth_error(status, &body, 401, "invalid_grant");
}

#[tokio::test]
async fn a_refresh_token_is_not_an_access_token() {
    let app = spawn_app().await;
    let tokens = password_tokens(&app, ADMIN_USERNAME, ADMIN_PASSWORD).await;
    let refresh_token = tokens["refresh_token"].as_str().expect("a refresh token");
    let body = json!({ "id": "refreshed_role", "displayName": "Refreshed", "ranking": 50 });
    let before = app.log_length().await;
    let (status, answer) = app
        .post("/roles/admin-api/create", refresh_token, &body)
        .await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["error"], "Unauthorized", "{answer}");
    assert_eq!(app.log_length().await, before);

    let access_token = tokens["access_token"].as_str().expect("a token");
    let (status, answer) = app
        .post("/roles/admin-api/create", access_token, &body)
        .await;
    assert_eq!(status, 200, "{answer}");
}
