//! Role writes (API.md §5): create, update and delete on both edges, their scope checks, their
//! validation (every refusal appends nothing), system roles, and moving a deleted role's users
//! to the default role through events.

use serde_json::{json, Value};
use test_support::app::error_paths;
use test_support::{spawn_app, TestApp};

fn moderator() -> Value {
    json!({
        "id": "moderator",
        "displayName": "Moderator",
        "ranking": 10,
        "description": "Moderates the forum",
        "scope": ["*"],
    })
}

async fn event_types(app: &TestApp, stream: &str) -> Vec<String> {
    app.stream(stream)
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// create
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_admin_creates_a_role_and_a_body_scope_is_ignored() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let (status, body, position) = app
        .send(
            reqwest::Method::POST,
            "/roles/admin-api/create",
            &token,
            &moderator(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(position.is_some(), "a consistency token");
    assert_eq!(
        body,
        json!({ "ok": 1, "data": { "role": {
            "id": "moderator",
            "displayName": "Moderator",
            "ranking": 10,
            "description": "Moderates the forum",
            "scope": [],
            "type": "user",
            "system": false,
        } } })
    );
    assert_eq!(event_types(&app, "role-moderator").await, ["RoleCreated"]);
}

#[tokio::test]
async fn a_ranking_may_come_as_a_string_of_digits_as_liquid_takes_it() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    // Liquid's admin UI sends the ranking it read from a text field.
    let body = json!({ "id": "editor", "displayName": "Editor", "ranking": "60" });
    let (status, body) = app.post("/roles/admin-api/create", &token, &body).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["role"]["ranking"], 60, "answered as a number");
    let update = json!({ "id": "editor", "ranking": "+45" });
    let (status, body) = app.patch("/roles/admin-api/update", &token, &update).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["role"]["ranking"], 45);
}

#[tokio::test]
async fn a_client_creates_a_role_on_the_client_edge() {
    let app = spawn_app().await;
    let token = app.client_token().await;
    let (status, body) = app
        .post(
            "/roles/client-api/create",
            &token,
            &json!({ "id": "Partner_1", "displayName": "Partner", "ranking": 50 }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["role"]["id"], "Partner_1");
    assert!(body["data"]["role"].get("description").is_none(), "{body}");
}

#[tokio::test]
async fn a_role_id_is_taken_once_in_any_case() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let (status, _) = app
        .post("/roles/admin-api/create", &token, &moderator())
        .await;
    assert_eq!(status, 200);
    let before = app.log_length().await;
    for id in ["moderator", "MODERATOR", "user", "Super_Admin"] {
        let mut body = moderator();
        body["id"] = json!(id);
        let (status, answer) = app.post("/roles/admin-api/create", &token, &body).await;
        assert_eq!(status, 400, "{id}: {answer}");
        assert_eq!(answer["error"], "DuplicateResource", "{answer}");
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
            "/roles/admin-api/create",
            &token,
            &json!({ "id": "bad id!", "displayName": "", "ranking": 0, "description": "" }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "ClientInputError");
    assert_eq!(
        error_paths(&body),
        ["id", "displayName", "ranking", "description"]
    );
    assert_eq!(body["additionalInfo"]["errors"][0]["value"], "bad id!");
    assert_eq!(body["additionalInfo"]["errors"][0]["location"], "body");

    for (invalid, paths) in [
        (json!({}), vec!["id", "displayName", "ranking"]),
        (
            json!({ "id": "r", "displayName": "R", "ranking": 2.5 }),
            vec!["ranking"],
        ),
        (
            json!({ "id": "r", "displayName": "R", "ranking": "five" }),
            vec!["ranking"],
        ),
        (
            json!({ "id": "r", "displayName": "R", "ranking": "0" }),
            vec!["ranking"],
        ),
        (
            json!({ "id": 7, "displayName": ["R"], "ranking": -1 }),
            vec!["id", "displayName", "ranking"],
        ),
        (
            json!({ "id": "r".repeat(129), "displayName": "R", "ranking": 1 }),
            vec!["id"],
        ),
    ] {
        let (status, body) = app.post("/roles/admin-api/create", &token, &invalid).await;
        assert_eq!(status, 400, "{invalid}: {body}");
        assert_eq!(error_paths(&body), paths, "{invalid}");
    }

    let (status, body) = app
        .post("/roles/admin-api/create", &token, &json!([moderator()]))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("ClientInputError"))
    );
    let response = app
        .http
        .post(app.url("/roles/admin-api/create"))
        .bearer_auth(&token)
        .body("id=moderator")
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(app.log_length().await, before);
}

#[tokio::test]
async fn role_writes_take_the_roles_scopes() {
    let app = spawn_app().await;
    app.register_user("plain_user", "plain-password-1", "user")
        .await;
    let token = app.user_token("plain_user", "plain-password-1").await;
    let before = app.log_length().await;
    let (status, body) = app
        .post("/roles/admin-api/create", &token, &moderator())
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "InsufficientPrivileges");
    let (status, body) = app
        .patch(
            "/roles/admin-api/update",
            &token,
            &json!({ "id": "admin", "ranking": 3 }),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("InsufficientPrivileges"))
    );
    let (status, body) = app
        .delete("/roles/admin-api/delete", &token, &json!({ "id": "admin" }))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("InsufficientPrivileges"))
    );
    assert_eq!(app.log_length().await, before);
}

#[tokio::test]
async fn each_edge_takes_its_own_kind_of_token() {
    let app = spawn_app().await;
    let client = app.client_token().await;
    let admin = app.admin_token().await;
    let before = app.log_length().await;
    for (path, token) in [
        ("/roles/admin-api/create", &client),
        ("/roles/client-api/create", &admin),
    ] {
        let (status, body) = app.post(path, token, &moderator()).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(body["error"], "Unauthorized");
    }
    let (status, body) = app
        .post("/roles/admin-api/create", "not-a-token", &moderator())
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("Unauthorized"))
    );
    assert_eq!(app.log_length().await, before);
}

// ---------------------------------------------------------------------------------------------
// update
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_update_changes_the_given_fields_and_answers_the_role_after() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    app.post("/roles/admin-api/create", &token, &moderator())
        .await;
    let (status, body, position) = app.send(reqwest::Method::PATCH,
        "/roles/admin-api/update",
        &token,
        &json!({ "id": "MODERATOR", "ranking": 20, "displayName": "Forum moderator", "description": null }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(position.is_some());
    assert_eq!(
        body["data"]["role"],
        json!({
            "id": "moderator",
            "displayName": "Forum moderator",
            "ranking": 20,
            "scope": [],
            "type": "user",
            "system": false,
        })
    );
    assert_eq!(
        event_types(&app, "role-moderator").await,
        ["RoleCreated", "RoleUpdated"]
    );

    // The same values again: nothing to record.
    let before = app.log_length().await;
    let (status, _, position) = app
        .send(
            reqwest::Method::PATCH,
            "/roles/admin-api/update",
            &token,
            &json!({ "id": "moderator", "ranking": 20 }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(position, None);
    assert_eq!(app.log_length().await, before);

    let client = app.client_token().await;
    let (status, body) = app
        .patch(
            "/roles/client-api/update",
            &client,
            &json!({ "id": "moderator", "description": "Keeps the peace" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["role"]["description"], "Keeps the peace");
}

#[tokio::test]
async fn updates_refuse_unknown_fields_unknown_roles_and_system_roles() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    app.post("/roles/admin-api/create", &token, &moderator())
        .await;
    let before = app.log_length().await;

    let (status, body) = app
        .patch(
            "/roles/admin-api/update",
            &token,
            &json!({ "id": "moderator", "scope": ["*"], "system": true, "ranking": 0 }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "ClientInputError");
    let mut paths = error_paths(&body);
    paths.sort();
    assert_eq!(paths, ["ranking", "scope", "system"]);

    let (status, body) = app
        .patch("/roles/admin-api/update", &token, &json!({ "ranking": 3 }))
        .await;
    assert_eq!((status, error_paths(&body)), (400, vec!["id".to_owned()]));

    let (status, body) = app
        .patch(
            "/roles/admin-api/update",
            &token,
            &json!({ "id": "no_such_role", "ranking": 3 }),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("NotFound")),
        "{body}"
    );

    for system in [
        "super_admin",
        "admin",
        "user",
        "internal_client",
        "external_client",
    ] {
        let (status, body) = app
            .patch(
                "/roles/admin-api/update",
                &token,
                &json!({ "id": system, "ranking": 3 }),
            )
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("SystemRoleUpdate")),
            "{system}: {body}"
        );
    }
    assert_eq!(app.log_length().await, before);
}

// ---------------------------------------------------------------------------------------------
// delete
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn deleting_a_role_moves_its_users_to_the_default_role() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    app.post("/roles/admin-api/create", &token, &moderator())
        .await;
    let first = app
        .register_user("mod_one", "mod-password-1", "moderator")
        .await;
    let second = app
        .register_user("mod_two", "mod-password-2", "moderator")
        .await;
    let other = app
        .register_user("not_a_mod", "other-password", "user")
        .await;
    let other_events = event_types(&app, &format!("user-{other}")).await;

    let (status, body, position) = app
        .send(
            reqwest::Method::DELETE,
            "/roles/admin-api/delete",
            &token,
            &json!({ "id": "Moderator" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "ok": 1 }));
    assert!(position.is_some());
    assert_eq!(
        event_types(&app, "role-moderator").await,
        ["RoleCreated", "RoleDeleted"]
    );
    for user in [first, second] {
        let stream = app.stream(&format!("user-{user}")).await;
        let last = stream.last().expect("events");
        assert_eq!(last.event_type, "UserRoleChanged");
        assert_eq!(last.data["role"], "user");
    }
    assert_eq!(
        event_types(&app, &format!("user-{other}")).await,
        other_events
    );

    // Gone: a second delete and an update find nothing; the id is free again.
    let before = app.log_length().await;
    let (status, body) = app
        .delete(
            "/roles/admin-api/delete",
            &token,
            &json!({ "id": "moderator" }),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("NotFound")));
    assert_eq!(app.log_length().await, before);
    let (status, body) = app
        .post("/roles/admin-api/create", &token, &moderator())
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn system_and_unknown_roles_cannot_be_deleted() {
    let app = spawn_app().await;
    let token = app.client_token().await;
    let before = app.log_length().await;
    for system in [
        "super_admin",
        "admin",
        "user",
        "internal_client",
        "external_client",
    ] {
        let (status, body) = app
            .delete("/roles/client-api/delete", &token, &json!({ "id": system }))
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("SystemRoleDelete")),
            "{system}: {body}"
        );
    }
    let (status, body) = app
        .delete(
            "/roles/client-api/delete",
            &token,
            &json!({ "id": "nobody" }),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("NotFound")));
    let (status, body) = app
        .delete(
            "/roles/client-api/delete",
            &token,
            &json!({ "id": "no way" }),
        )
        .await;
    assert_eq!((status, error_paths(&body)), (400, vec!["id".to_owned()]));
    assert_eq!(app.log_length().await, before);
}
