//! Application writes (API.md §4): create, update and delete, their session scopes by role,
//! their validation (every refusal appends nothing), secrets kept only as argon2id hashes, and
//! a deleted application's tokens stopping at once.

use command_service::pipeline::execute;
use events::metadata::{Actor, CommandContext};
use events::role::{CreateRole, Role, RoleCommand};
use events::scopes::Scope;
use events::values::{Ranking, RoleDisplayName, RoleId};
use serde_json::{json, Value};
use test_support::{spawn_app, TestApp};

fn context() -> CommandContext {
    CommandContext::new(uuid::Uuid::now_v7(), Actor::system(), chrono::Utc::now())
}

async fn register_role(app: &TestApp, id: &str, scope: &[&str]) {
    let create = CreateRole {
        id: RoleId::parse(id).expect("a role id"),
        display_name: RoleDisplayName::parse(id).expect("a name"),
        ranking: Ranking::new(5).expect("a ranking"),
        description: None,
        scope: scope
            .iter()
            .map(|s| Scope::parse(s).expect("a scope"))
            .collect(),
        system: false,
    };
    execute::<Role, _>(&*app.store, &create.id.clone(), &context(), 1, |_| {
        Ok(RoleCommand::Create(create.clone()))
    })
    .await
    .expect("the role is created");
}

/// A delegated token of a user whose role holds `scope`.
async fn token_with_role_scope(app: &TestApp, username: &str, scope: &[&str]) -> String {
    let role = format!("{username}_role");
    register_role(app, &role, scope).await;
    app.register_user(username, "a-password-1", &role).await;
    app.user_token(username, "a-password-1").await
}

fn partner_app() -> Value {
    json!({
        "id": "partner_app",
        "displayName": "Partner application",
        "role": "external_client",
        "grants": ["password", "client_credentials", "password"],
        "redirectUris": ["https://partner.example.com/callback"],
        "secret": "partner-secret-1",
    })
}

/// The error paths of a 400, sorted.
fn error_paths(body: &Value) -> Vec<String> {
    let mut paths = test_support::app::error_paths(body);
    paths.sort();
    paths
}

async fn client_credentials(app: &TestApp, client_id: &str, secret: &str) -> (u16, Value) {
    app.token_request(&[
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_secret", secret),
    ])
    .await
}

// ---------------------------------------------------------------------------------------------
// create
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_admin_creates_an_application_and_sees_its_secret_once() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let (status, body) = app
        .post("/client/admin-api/create", &token, &partner_app())
        .await;
    assert_eq!(status, 200, "{body}");
    let client = &body["data"]["client"];
    let id = client["_id"].as_str().expect("an _id").to_owned();
    assert_eq!(
        client,
        &json!({
            "_id": id,
            "id": "partner_app",
            "displayName": "Partner application",
            "role": "external_client",
            "grants": ["client_credentials", "password"],
            "redirectUris": ["https://partner.example.com/callback"],
            "isPublic": false,
            "scope": ["delegated:all"],
            "secret": "partner-secret-1",
        })
    );

    // The log holds the hash only.
    let stream = app.stream(&format!("client-{id}")).await;
    let types: Vec<&str> = stream.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["ApplicationCreated", "ApplicationSecretSet"]);
    let logged = serde_json::to_string(&stream.iter().map(|e| e.data.clone()).collect::<Vec<_>>())
        .expect("JSON");
    assert!(!logged.contains("partner-secret-1"));
    assert!(stream[1].data["secretHash"]
        .as_str()
        .is_some_and(|h| h.starts_with("$argon2id$")));

    // And the application can sign in.
    let (status, body) = client_credentials(&app, "partner_app", "partner-secret-1").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn public_applications_have_no_secret_and_no_client_credentials() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let public = json!({
        "id": "mobile_app",
        "displayName": "Mobile application",
        "role": "external_client",
        "grants": ["authorization_code", "refresh_token"],
        "redirectUris": ["com.example.app:/oauth"],
        "isPublic": true,
        "scope": ["delegated:all", "client:profile:read"],
    });
    let (status, body) = app.post("/client/admin-api/create", &token, &public).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["client"].get("secret").is_none(), "{body}");
    assert_eq!(
        body["data"]["client"]["scope"],
        json!(["client:profile:read", "delegated:all"])
    );

    let before = app.log_length().await;
    let mut with_secret = public.clone();
    with_secret["id"] = json!("mobile_app_two");
    with_secret["secret"] = json!("a-secret-at-all");
    let mut with_client_credentials = public.clone();
    with_client_credentials["id"] = json!("mobile_app_three");
    with_client_credentials["grants"] = json!(["client_credentials"]);
    for refused in [with_secret, with_client_credentials] {
        let (status, body) = app.post("/client/admin-api/create", &token, &refused).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "ClientInputError");
    }
    assert_eq!(app.log_length().await, before);
}

#[tokio::test]
async fn an_oauth_client_id_is_taken_once_in_any_case() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    app.post("/client/admin-api/create", &token, &partner_app())
        .await;
    let before = app.log_length().await;
    for id in ["partner_app", "PARTNER_APP", "internal_app"] {
        let mut body = partner_app();
        body["id"] = json!(id);
        let (status, answer) = app.post("/client/admin-api/create", &token, &body).await;
        assert_eq!(status, 409, "{id}: {answer}");
        assert_eq!(answer["error"], "ResourceConflict");
        assert_eq!(answer["additionalInfo"]["duplicateFields"], json!(["id"]));
    }
    assert_eq!(app.log_length().await, before);
}

#[tokio::test]
async fn every_invalid_field_is_reported_and_nothing_appended() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let before = app.log_length().await;
    let (status, body) = app
        .post(
            "/client/admin-api/create",
            &token,
            &json!({
                "id": "short",
                "displayName": "Tiny",
                "role": "admin",
                "grants": ["password", "implicit"],
                "redirectUris": ["/callback"],
                "isPublic": "no",
                "secret": "short",
                "scope": ["delegated:all", "no:such:scope"],
            }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "ClientInputError");
    assert_eq!(
        error_paths(&body),
        [
            "displayName",
            "grants[1]",
            "id",
            "isPublic",
            "redirectUris[0]",
            "role",
            "scope[1]",
            "secret"
        ]
    );

    let (status, body) = app
        .post("/client/admin-api/create", &token, &json!({}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_paths(&body), ["displayName", "id", "role", "secret"]);

    let (status, body) = app
        .post(
            "/client/admin-api/create",
            &token,
            &json!({ "id": "partner_app", "displayName": "Partner application",
                     "role": "external_client", "secret": "partner-secret-1", "grants": "password" }),
        )
        .await;
    assert_eq!(
        (status, error_paths(&body)),
        (400, vec!["grants".to_owned()])
    );
    assert_eq!(app.log_length().await, before);
}

#[tokio::test]
async fn creating_takes_the_session_scope_of_the_applications_role() {
    let app = spawn_app().await;
    let external_only = token_with_role_scope(
        &app,
        "external_manager",
        &["admin:system:external-client:all", "delegated:all"],
    )
    .await;
    let plain = token_with_role_scope(&app, "plain_person", &[]).await;
    let before = app.log_length().await;

    let mut internal = partner_app();
    internal["role"] = json!("internal_client");
    for (token, body) in [(&external_only, &internal), (&plain, &partner_app())] {
        let (status, answer) = app.post("/client/admin-api/create", token, body).await;
        assert_eq!(status, 401, "{answer}");
        assert_eq!(answer["error"], "InsufficientPrivileges");
    }
    // Nor may an application get a scope its creator does not hold.
    let mut powerful = partner_app();
    powerful["scope"] = json!(["admin:all"]);
    let (status, answer) = app
        .post("/client/admin-api/create", &external_only, &powerful)
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("InsufficientPrivileges"))
    );
    assert_eq!(app.log_length().await, before);

    let (status, answer) = app
        .post("/client/admin-api/create", &external_only, &partner_app())
        .await;
    assert_eq!(status, 200, "{answer}");

    // A client token is not a user's.
    let client = app.client_token().await;
    let (status, answer) = app
        .post("/client/admin-api/create", &client, &partner_app())
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("Unauthorized"))
    );
}

// ---------------------------------------------------------------------------------------------
// update
// ---------------------------------------------------------------------------------------------

async fn create_partner(app: &TestApp, token: &str) -> String {
    let (status, body) = app
        .post("/client/admin-api/create", token, &partner_app())
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["client"]["_id"]
        .as_str()
        .expect("an _id")
        .to_owned()
}

#[tokio::test]
async fn an_update_changes_fields_and_a_new_secret_replaces_the_old() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let id = create_partner(&app, &token).await;
    let (status, body) = app
        .patch(
            "/client/admin-api/update",
            &token,
            &json!({
                "target": id,
                "id": "partner_app_v2",
                "displayName": "Partner application, v2",
                "grants": ["client_credentials"],
                "redirectUris": [],
                "secret": "a-brand-new-secret",
                "scope": ["delegated:all", "client:profile:read"],
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["client"],
        json!({
            "_id": id,
            "id": "partner_app_v2",
            "displayName": "Partner application, v2",
            "role": "external_client",
            "grants": ["client_credentials"],
            "redirectUris": [],
            "isPublic": false,
            "scope": ["client:profile:read", "delegated:all"],
        })
    );
    let (status, _) = client_credentials(&app, "partner_app_v2", "partner-secret-1").await;
    assert_eq!(status, 401);
    let (status, _) = client_credentials(&app, "partner_app", "a-brand-new-secret").await;
    assert_eq!(status, 401);
    let (status, body) = client_credentials(&app, "partner_app_v2", "a-brand-new-secret").await;
    assert_eq!(status, 200, "{body}");
    // The old client id is free again.
    let (status, body) = app
        .post("/client/admin-api/create", &token, &partner_app())
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn updates_refuse_bad_targets_bad_fields_taken_ids_and_foreign_roles() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let id = create_partner(&app, &token).await;
    let external_only = token_with_role_scope(
        &app,
        "external_manager",
        &["admin:system:external-client:all", "delegated:all"],
    )
    .await;
    let before = app.log_length().await;

    let cases = [
        (
            json!({ "displayName": "Nameless target" }),
            400,
            "ClientInputError",
        ),
        (json!({ "target": "not-an-id" }), 400, "ClientInputError"),
        (
            json!({ "target": uuid::Uuid::now_v7().to_string(), "displayName": "Somebody else" }),
            400,
            "InvalidTarget",
        ),
        (
            json!({ "target": id, "colour": "blue" }),
            400,
            "ClientInputError",
        ),
        (
            json!({ "target": id, "displayName": "Tiny" }),
            400,
            "ClientInputError",
        ),
        (
            json!({ "target": id, "id": "INTERNAL_APP" }),
            409,
            "ResourceConflict",
        ),
        (
            json!({ "target": id, "isPublic": true }),
            400,
            "ClientInputError",
        ),
    ];
    for (body, status, error) in cases {
        let (got, answer) = app.patch("/client/admin-api/update", &token, &body).await;
        assert_eq!(
            (got, answer["error"].as_str()),
            (status, Some(error)),
            "{body}: {answer}"
        );
    }
    // Turning an external application internal takes the internal scope too.
    let (status, answer) = app
        .patch(
            "/client/admin-api/update",
            &external_only,
            &json!({ "target": id, "role": "internal_client" }),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("InsufficientPrivileges"))
    );
    assert_eq!(app.log_length().await, before);

    // Making it public drops its secret.
    let (status, answer) = app
        .patch(
            "/client/admin-api/update",
            &token,
            &json!({ "target": id, "isPublic": true, "grants": ["authorization_code"] }),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let types: Vec<String> = app
        .stream(&format!("client-{id}"))
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        types.last().map(String::as_str),
        Some("ApplicationSecretRemoved")
    );
}

// ---------------------------------------------------------------------------------------------
// delete
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_deleted_applications_tokens_stop_at_once() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let mut internal = partner_app();
    internal["role"] = json!("internal_client");
    internal["scope"] = json!(["client:all"]);
    let (status, body) = app
        .post("/client/admin-api/create", &admin, &internal)
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["data"]["client"]["_id"]
        .as_str()
        .expect("an _id")
        .to_owned();
    let (status, body) = client_credentials(&app, "partner_app", "partner-secret-1").await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().expect("a token").to_owned();
    let role = json!({ "id": "partner_role", "displayName": "Partner", "ranking": 50 });
    let (status, body) = app.post("/roles/client-api/create", &token, &role).await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = app
        .delete("/client/admin-api/delete", &admin, &json!({ "target": id }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "ok": 1 }));
    let last = app.stream(&format!("client-{id}")).await;
    assert_eq!(
        last.last().map(|e| e.event_type.as_str()),
        Some("ApplicationDeleted")
    );

    let before = app.log_length().await;
    let mut other_role = role.clone();
    other_role["id"] = json!("partner_role_2");
    let (status, body) = app
        .post("/roles/client-api/create", &token, &other_role)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("Unauthorized"))
    );
    let (status, body) = client_credentials(&app, "partner_app", "partner-secret-1").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, body) = app
        .delete("/client/admin-api/delete", &admin, &json!({ "target": id }))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("InvalidTarget"))
    );
    assert_eq!(app.log_length().await, before);
}

#[tokio::test]
async fn deleting_takes_the_delete_scope_of_the_applications_role() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = create_partner(&app, &admin).await;
    let writer = token_with_role_scope(
        &app,
        "external_writer",
        &["admin:system:external-client:write", "delegated:all"],
    )
    .await;
    let internal_deleter = token_with_role_scope(
        &app,
        "internal_deleter",
        &["admin:system:internal-client:delete", "delegated:all"],
    )
    .await;
    let before = app.log_length().await;
    for token in [&writer, &internal_deleter] {
        let (status, body) = app
            .delete("/client/admin-api/delete", token, &json!({ "target": id }))
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("InsufficientPrivileges"))
        );
    }
    let (status, body) = app
        .delete("/client/admin-api/delete", &admin, &json!({ "target": 42 }))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("ClientInputError"))
    );
    assert_eq!(app.log_length().await, before);
}
