//! Rate limits (issue 7): the token endpoint and the writes answer 429 `RateLimitError` with
//! `Retry-After` once a client or an IP address is over its limit, and a refused write appends
//! nothing; reads are not limited.

use http_edge::RateLimits;
use serde_json::json;
use test_support::app::{spawn_app_with, test_settings, CLIENT_ID, CLIENT_SECRET};

#[tokio::test]
async fn the_token_endpoint_refuses_a_client_over_its_limit() {
    let mut settings = test_settings();
    settings.edge.rate_limits = RateLimits {
        token_per_minute: 4,
        writes_per_minute: 0,
    };
    let app = spawn_app_with(settings).await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ];
    for _ in 0..4 {
        let (status, body) = app.token_request(&form).await;
        assert_eq!(status, 200, "{body}");
    }
    // Wrong secrets count too: a guesser is stopped like anyone else.
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", "guess"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=15).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["ok"], 0);
    assert_eq!(body["error"], "RateLimitError");
}

#[tokio::test]
async fn writes_over_the_limit_are_refused_and_append_nothing() {
    let mut settings = test_settings();
    settings.edge.rate_limits = RateLimits {
        token_per_minute: 0,
        writes_per_minute: 3,
    };
    let app = spawn_app_with(settings).await;
    let token = app.client_token().await;
    let user = app
        .register_user("limited_user", "limited-password-1", "user")
        .await;
    let ban = json!({ "target": user.to_string(), "state": true });
    let unban = json!({ "target": user.to_string(), "state": false });
    for body in [&ban, &unban, &ban] {
        let (status, answer) = app.post("/user/client-api/ban", &token, body).await;
        assert_eq!(status, 200, "{answer}");
    }
    let before = app.log_length().await;
    let (status, answer) = app.post("/user/client-api/ban", &token, &unban).await;
    assert_eq!(status, 429, "{answer}");
    assert_eq!(answer["error"], "RateLimitError");
    assert_eq!(
        app.log_length().await,
        before,
        "a refused write appends nothing"
    );

    // Reads are not limited, not even the one sent as POST.
    for _ in 0..5 {
        let (status, answer) = app
            .call(
                reqwest::Method::GET,
                &format!("/user/client-api/user-info?targets={user}"),
                &token,
                None,
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        let (status, answer) = app
            .post(
                "/user/client-api/retrieve-user-info",
                &token,
                &json!({ "targets": [user.to_string()] }),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
    }
}
