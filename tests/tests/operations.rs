//! What operators rely on (issue 7): request and correlation ids that reach the events' metadata
//! and the answers' headers, `/metrics` with requests by route and status, and `/ready`.

use events::user::User;
use serde_json::{json, Value};
use test_support::app::{spawn_app, test_settings};
use test_support::wait::eventually;
use test_support::TestDatabase;
use uuid::Uuid;

#[tokio::test]
async fn a_request_s_ids_reach_its_answer_and_its_events() {
    let app = spawn_app().await;
    let token = app.client_token().await;
    let user = app
        .register_user("traced_user", "traced-password-1", "user")
        .await;
    let stream = User::stream_name(user);

    // The caller's ids are kept.
    let (request_id, correlation_id) = (Uuid::now_v7(), Uuid::now_v7());
    let response = app
        .http
        .post(app.url("/user/client-api/ban"))
        .bearer_auth(&token)
        .header("x-request-id", request_id.to_string())
        .header("x-correlation-id", correlation_id.to_string())
        .json(&json!({ "target": user.to_string(), "state": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-request-id"],
        request_id.to_string().as_str()
    );
    assert_eq!(
        response.headers()["x-correlation-id"],
        correlation_id.to_string().as_str()
    );
    let banned = app.stream(&stream).await.pop().expect("the ban's event");
    assert_eq!(banned.event_type, "UserBanned");
    assert_eq!(banned.metadata["causationId"], request_id.to_string());
    assert_eq!(banned.metadata["correlationId"], correlation_id.to_string());

    // Without them (or with junk), the request gets a new id, which is both.
    let response = app
        .http
        .post(app.url("/user/client-api/ban"))
        .bearer_auth(&token)
        .header("x-request-id", "not-a-uuid")
        .json(&json!({ "target": user.to_string(), "state": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let given: Uuid = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .parse()
        .expect("a UUID");
    let unbanned = app.stream(&stream).await.pop().expect("the unban's event");
    assert_eq!(unbanned.metadata["causationId"], given.to_string());
    assert_eq!(unbanned.metadata["correlationId"], given.to_string());
}

#[tokio::test]
async fn health_answers_our_body_and_liquid_s() {
    let app = spawn_app().await;
    let response = app.http.get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({ "ok": 1, "status": "UP" }));
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = spawn_app().await;
    let token = app.client_token().await;
    let user = app
        .register_user("counted_user", "counted-password-1", "user")
        .await;
    for state in [true, false, true] {
        let (status, body) = app
            .post(
                "/user/client-api/ban",
                &token,
                &json!({ "target": user.to_string(), "state": state }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _) = app
        .post("/user/client-api/ban", &token, &json!({ "target": "nope" }))
        .await;
    assert_eq!(status, 400);
    let metrics = test_support::get_text(&app.http, &app.url("/metrics")).await;
    let line = |prefix: &str| {
        metrics
            .lines()
            .find(|line| line.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
            .to_owned()
    };
    let ok = line(
        r#"userledger_http_requests_total{method="POST",route="/user/client-api/ban",status="200"}"#,
    );
    assert!(ok.ends_with(" 3"), "{ok}");
    let refused = line(
        r#"userledger_http_requests_total{method="POST",route="/user/client-api/ban",status="400"}"#,
    );
    assert!(refused.ends_with(" 1"), "{refused}");
    line(
        r#"userledger_http_request_duration_seconds_bucket{method="POST",route="/user/client-api/ban",status="200",le="0.1"}"#,
    );
    line(r#"userledger_projection_lag_seconds{projection="users"}"#);
}

#[tokio::test]
async fn ready_answers_once_the_stores_answer_and_the_read_models_caught_up() {
    let app = spawn_app().await;
    let body: Value = eventually(std::time::Duration::from_secs(20), "ready", || async {
        let response = app.http.get(app.url("/ready")).send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        if status == 200 {
            return Ok(body);
        }
        assert_eq!(status, 503, "{body}");
        Err(body)
    })
    .await;
    assert_eq!(body["ok"], 1);
    for check in ["eventStore", "database", "users", "roles", "applications"] {
        assert_eq!(body["checks"][check]["ok"], 1, "{check}: {body}");
    }
}

#[tokio::test]
async fn a_write_only_process_serves_metrics_and_readiness_too() {
    let database = TestDatabase::new().await.unwrap();
    let store = std::sync::Arc::new(
        event_store::postgres::PostgresEventStore::connect(database.url(), 4)
            .await
            .unwrap(),
    );
    let app = command_service::Application::build(
        "127.0.0.1:0".parse().unwrap(),
        store.clone(),
        Some(store.pool().clone()),
        test_settings(),
    )
    .await
    .unwrap();
    let address = format!("http://{}", app.local_addr().unwrap());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let http = reqwest::Client::new();
    let ready = http.get(format!("{address}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["eventStore"]["ok"], 1, "{body}");
    assert_eq!(body["checks"]["database"]["ok"], 1, "{body}");
    let metrics = test_support::get_text(&http, &format!("{address}/metrics")).await;
    assert!(
        metrics.contains(
            r#"userledger_http_requests_total{method="GET",route="/ready",status="200"} 1"#
        ),
        "{metrics}"
    );
}
