//! `Idempotency-Key`: a retried write with the same key and body gets the first answer and
//! appends nothing; the key reused with another body is refused; keys belong to their caller.

use http_edge::envelope::CONSISTENCY_TOKEN;
use http_edge::idempotency::{HEADER, REPLAYED};
use serde_json::{json, Value};
use test_support::{spawn_app, TestApp};

struct Sent {
    status: u16,
    body: Value,
    token: Option<String>,
    replayed: bool,
}

async fn create_role(app: &TestApp, token: &str, key: Option<&str>, body: &Value) -> Sent {
    let mut request = app
        .http
        .post(app.url("/roles/admin-api/create"))
        .bearer_auth(token)
        .json(body);
    if let Some(key) = key {
        request = request.header(HEADER, key);
    }
    let response = request.send().await.expect("an answer");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (token, replayed) = (header(CONSISTENCY_TOKEN), header(REPLAYED).is_some());
    Sent {
        status: response.status().as_u16(),
        token,
        replayed,
        body: response.json().await.unwrap_or(Value::Null),
    }
}

fn role(id: &str) -> Value {
    json!({ "id": id, "displayName": "Moderators", "ranking": 50 })
}

#[tokio::test]
async fn a_retry_with_the_same_key_gets_the_first_answer_and_appends_nothing() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;

    let first = create_role(&app, &admin, Some("key-1"), &role("moderator")).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(!first.replayed);
    let written = app.log_length().await;

    let retry = create_role(&app, &admin, Some("key-1"), &role("moderator")).await;
    assert_eq!(
        retry.status, 200,
        "the first answer, not DuplicateResource: {}",
        retry.body
    );
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.token, first.token, "the same consistency token");
    assert!(retry.replayed);
    assert_eq!(app.log_length().await, written, "a replay appends nothing");

    // Without the key the same request is a new one, and the role exists now.
    let again = create_role(&app, &admin, None, &role("moderator")).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.body["error"], "DuplicateResource");
}

#[tokio::test]
async fn a_key_reused_with_another_body_is_refused() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let first = create_role(&app, &admin, Some("key-2"), &role("editor")).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let written = app.log_length().await;

    let other = create_role(&app, &admin, Some("key-2"), &role("reviewer")).await;
    assert_eq!(other.status, 400, "{}", other.body);
    assert_eq!(other.body["ok"], 0);
    assert_eq!(other.body["error"], "ClientInputError");
    assert_eq!(app.log_length().await, written);
}

#[tokio::test]
async fn keys_belong_to_their_caller() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let client = app.client_token().await;
    let by_admin = create_role(&app, &admin, Some("shared-key"), &role("support")).await;
    assert_eq!(by_admin.status, 200, "{}", by_admin.body);

    // Another caller with the same key is not served the admin's answer.
    let response = app
        .http
        .post(app.url("/roles/client-api/create"))
        .bearer_auth(&client)
        .header(HEADER, "shared-key")
        .json(&role("support"))
        .send()
        .await
        .unwrap();
    assert!(response.headers().get(REPLAYED).is_none());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "DuplicateResource", "{body}");
}

#[tokio::test]
async fn a_refused_request_is_replayed_as_refused() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let bad = json!({ "id": "has spaces", "displayName": "", "ranking": 0 });
    let first = create_role(&app, &admin, Some("key-3"), &bad).await;
    assert_eq!(first.status, 400);
    let retry = create_role(&app, &admin, Some("key-3"), &bad).await;
    assert_eq!(retry.status, 400);
    assert_eq!(retry.body, first.body);
    assert!(retry.replayed);
}

/// The first answer is kept byte for byte: one that echoes a number at the edge of f64 (which
/// `jsonb` gave back in a form that no longer parsed: 500 on the retry) or a string `jsonb`
/// refuses is replayed as it was sent.
#[tokio::test]
async fn an_answer_is_replayed_byte_for_byte() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let send = |key: &'static str, body: &'static str| {
        let request = app
            .http
            .post(app.url("/roles/admin-api/create"))
            .bearer_auth(&admin)
            .header(HEADER, key)
            .header("content-type", "application/json")
            .body(body);
        async move {
            let response = request.send().await.expect("an answer");
            let replayed = response.headers().get(REPLAYED).is_some();
            let status = response.status().as_u16();
            (status, replayed, response.text().await.unwrap())
        }
    };
    for (key, body) in [
        (
            "key-f64-max",
            r#"{"id": "big", "displayName": 1.7976931348623157e308, "ranking": 1}"#,
        ),
        (
            "key-tiny",
            r#"{"id": "tiny", "displayName": 5e-324, "ranking": 1}"#,
        ),
        (
            "key-unicode",
            r#"{"id": "snow", "displayName": ["\ud83d\ude00 \u00e9"], "ranking": 1}"#,
        ),
    ] {
        let first = send(key, body).await;
        assert_eq!((first.0, first.1), (400, false), "{}", first.2);
        let retry = send(key, body).await;
        assert_eq!(retry, (400, true, first.2.clone()), "{key}");
    }
}
