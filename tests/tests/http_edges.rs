//! The HTTP edge the contract fixes for every route: CORS for browsers, the 404 of unknown
//! routes, and the envelope of authentication failures.

use serde_json::{json, Value};
use test_support::app::{spawn_app_with, test_settings};
use test_support::spawn_app;

#[tokio::test]
async fn preflights_allow_configured_origins_only() {
    let mut settings = test_settings();
    settings.edge.cors_origins = vec!["https://admin.example.com".into()];
    let app = spawn_app_with(settings).await;

    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/user/admin-api/ban"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            )
            .send()
    };
    let allowed = preflight("https://admin.example.com").await.unwrap();
    assert!(allowed.status().is_success());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://admin.example.com"
    );
    let allowed_headers = allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allowed_headers.contains("authorization") && allowed_headers.contains("content-type"));

    let foreign = preflight("https://evil.example.net").await.unwrap();
    assert!(foreign
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

#[tokio::test]
async fn unknown_routes_are_404_in_the_envelope() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(app.url("/user/admin-api/no-such-route"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "ok": 0, "error": "NotFound", "additionalInfo": { "method": "POST", "path": "/user/admin-api/no-such-route" } })
    );
}

#[tokio::test]
async fn missing_and_malformed_tokens_are_401_unauthorized() {
    let app = spawn_app().await;
    for authorization in [
        None,
        Some("Basic abc"),
        Some("Bearer "),
        Some("Bearer not-a-jwt"),
    ] {
        let mut request = app
            .http
            .post(app.url("/roles/admin-api/create"))
            .json(&json!({ "id": "moderator", "displayName": "Moderators", "ranking": 50 }));
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{authorization:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["ok"], 0);
        assert_eq!(body["error"], "Unauthorized");
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert!(keys
            .iter()
            .all(|k| ["ok", "error", "additionalInfo"].contains(&k.as_str())));
    }
}
