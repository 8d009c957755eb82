//! A person's own account (issue 14): `GET /user/me`.

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
