//! Tokens stop working once their user is banned (403 Banned) or deleted (401), or their client
//! is deleted (401): at once in the process that made the change.

use serde_json::json;
use test_support::spawn_app;

#[tokio::test]
async fn a_banned_or_deleted_users_token_stops_working() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let banned = app
        .register_user("banned_betty", "betty-password-1", "user")
        .await;
    let deleted = app
        .register_user("deleted_dan", "dan-password-1", "user")
        .await;
    let betty = app.user_token("banned_betty", "betty-password-1").await;
    let dan = app.user_token("deleted_dan", "dan-password-1").await;
    for token in [&betty, &dan] {
        let (status, body) = app
            .call(reqwest::Method::GET, "/roles/list", token, None)
            .await;
        assert_eq!(status, 200, "a fresh token works: {body}");
    }

    let (status, body) = app
        .post(
            "/user/admin-api/ban",
            &admin,
            &json!({ "target": banned.to_string(), "state": true, "reason": "spamming the forum" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .patch(
            "/user/admin-api/update",
            &admin,
            &json!({ "target": deleted.to_string(), "isDeleted": true }),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = app
        .call(reqwest::Method::GET, "/roles/list", &betty, None)
        .await;
    assert_eq!(
        (status, body["error"].clone()),
        (403, json!("Banned")),
        "{body}"
    );
    let (status, body) = app
        .call(reqwest::Method::GET, "/roles/list", &dan, None)
        .await;
    assert_eq!(
        (status, body["error"].clone()),
        (401, json!("Unauthorized")),
        "{body}"
    );

    // Nor can they get new ones.
    let (status, body) = app
        .token_request(&[
            ("grant_type", "password"),
            ("username", "banned_betty"),
            ("password", "betty-password-1"),
            ("client_id", test_support::app::CLIENT_ID),
            ("client_secret", test_support::app::CLIENT_SECRET),
        ])
        .await;
    assert_eq!(
        (status, body["error"].clone()),
        (401, json!("invalid_grant")),
        "{body}"
    );
}
