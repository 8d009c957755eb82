//! A person's own account (issue 14): `GET /user/me` and `PATCH /user/me`.

use serde_json::{json, Value};
use test_support::spawn_app;

#[tokio::test]
async fn a_signed_in_user_reads_their_own_account_after_their_writes() {
    let app = spawn_app().await;
    let id = app
        .register_user("own_olivia", "olivia-password-1", "user")
        .await;
    let token = app.user_token("own_olivia", "olivia-password-1").await;

    // An admin renames her; with the write's consistency token her next read shows it.
    let admin = app.admin_token().await;
    let (status, body, consistency) = app
        .send(
            reqwest::Method::PATCH,
            "/user/admin-api/update",
            &admin,
            &json!({ "target": id.to_string(), "firstName": "Olivia" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let response = app
        .http
        .get(app.url("/user/me"))
        .bearer_auth(&token)
        .header(
            http_edge::envelope::CONSISTENCY_TOKEN,
            consistency.expect("a consistency token"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let user = &body["data"]["user"];
    assert_eq!(user["_id"], id.to_string());
    assert_eq!(user["username"], "own_olivia");
    assert_eq!(user["firstName"], "Olivia");
    assert!(user.get("password").is_none(), "{user}");
    assert_eq!(
        body["data"]["editableFields"],
        json!([
            "firstName",
            "lastName",
            "middleName",
            "password",
            "bio",
            "pronouns",
            "customLink",
            "organization",
            "gender",
            "preferredLanguage"
        ])
    );

    // Nobody else's: without a token, or with a client's, it is 401.
    let response = app.http.get(app.url("/user/me")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let client = app.client_token().await;
    let (status, _) = app
        .call(reqwest::Method::GET, "/user/me", &client, None)
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_person_changes_their_own_profile_and_nothing_else() {
    let app = spawn_app().await;
    let id = app
        .register_user("own_pablo", "pablo-password-1", "user")
        .await;
    let token = app.user_token("own_pablo", "pablo-password-1").await;
    let me = |body: Value| {
        let (app, token) = (&app, token.clone());
        async move { app.patch("/user/me", &token, &body).await }
    };

    let (status, body) = me(json!({
        "firstName": "Pablo", "bio": "Cartographer of small towns", "pronouns": "he/him",
        "middleName": "__unset__",
    }))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["user"]["firstName"], "Pablo");
    assert_eq!(body["data"]["user"]["bio"], "Cartographer of small towns");
    let events = app.stream(&format!("user-{id}")).await;
    let before = events.len();

    // Fields a person may not change on their own account: 400 naming each, nothing written.
    for (field, value) in [
        ("email", json!("elsewhere@example.com")),
        ("username", json!("own_pablo_two")),
        ("role", json!("super_admin")),
        ("credits", json!(1000)),
        ("isDeleted", json!(true)),
        ("target", json!(id.to_string())),
    ] {
        let (status, body) = me(json!({ "bio": "Another bio here", field: value })).await;
        assert_eq!(status, 400, "{field}: {body}");
        assert_eq!(body["additionalInfo"]["errors"][0]["path"], field, "{body}");
    }
    // Invalid values: 400 naming each.
    let (status, body) = me(json!({ "firstName": "", "preferredLanguage": "klingon" })).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        test_support::app::error_paths(&body),
        ["firstName", "preferredLanguage"]
    );

    // A new password needs the current one.
    let (status, body) = me(json!({ "password": "pablo-password-2" })).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["additionalInfo"]["errors"][0]["path"],
        "currentPassword"
    );
    let (status, body) = me(json!({
        "password": "pablo-password-2", "currentPassword": "not-my-password",
    }))
    .await;
    assert_eq!(
        (status, &body["error"]),
        (401, &json!("Unauthorized")),
        "{body}"
    );
    assert_eq!(
        app.stream(&format!("user-{id}")).await.len(),
        before,
        "nothing written"
    );

    let (status, body) = me(json!({
        "password": "pablo-password-2", "currentPassword": "pablo-password-1",
    }))
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["user"].get("password").is_none());
    let (status, _) = app
        .token_request(&[
            ("grant_type", "password"),
            ("username", "own_pablo"),
            ("password", "pablo-password-1"),
            ("client_id", test_support::app::CLIENT_ID),
            ("client_secret", test_support::app::CLIENT_SECRET),
        ])
        .await;
    assert_ne!(status, 200, "the old password no longer signs in");
    app.user_token("own_pablo", "pablo-password-2").await;

    // Only a signed-in person: not without a token, not with an application's.
    let client = app.client_token().await;
    let (status, _) = app
        .patch("/user/me", &client, &json!({ "bio": "Not mine at all" }))
        .await;
    assert_eq!(status, 401);
}
