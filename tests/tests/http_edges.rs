//! The HTTP edge the contract fixes for every route: CORS for browsers, the 404 of unknown
//! routes, and the envelope of authentication failures; and what it does with slow clients and
//! too many connections.

use std::time::{Duration, Instant};

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

/// Reads from `stream` until the server closes it or `within` passes; whether it was closed,
/// and what was read.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> (bool, String) {
    use tokio::io::AsyncReadExt;
    let mut read = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut buffer = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (true, String::from_utf8_lossy(&read).into()),
            Ok(Ok(n)) => read.extend_from_slice(&buffer[..n]),
            Err(_) => return (false, String::from_utf8_lossy(&read).into()),
        }
    }
}

#[tokio::test]
async fn a_client_that_sends_its_headers_slowly_is_cut_off() {
    use tokio::io::AsyncWriteExt;
    let mut settings = test_settings();
    settings.edge.header_read_timeout = Duration::from_secs(1);
    let app = spawn_app_with(settings).await;
    let address = app.url("").trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // One header line every 200 ms: always sending, never done.
    let started = Instant::now();
    let trickle = async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if stream.write_all(b"X-Slow: yes\r\n").await.is_err() {
                return started.elapsed();
            }
            if started.elapsed() > Duration::from_secs(10) {
                return started.elapsed();
            }
        }
    };
    let cut_after = trickle.await;
    assert!(
        cut_after < Duration::from_secs(4),
        "the connection was still taking headers after {cut_after:?}"
    );
    // A client that connects and sends nothing is closed after as long.
    let mut silent = tokio::net::TcpStream::connect(&address).await.unwrap();
    let (closed, _) = closed_within(&mut silent, Duration::from_secs(4)).await;
    assert!(closed, "a silent connection stayed open");
    // A prompt client is served as before.
    let health = app.http.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_refused_and_changes_nothing() {
    use tokio::io::AsyncWriteExt;
    let mut settings = test_settings();
    settings.edge.body_read_timeout = Duration::from_secs(1);
    let app = spawn_app_with(settings).await;
    let admin = app.admin_token().await;
    let before = app.log_length().await;
    let address = app.url("").trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let body = r#"[{"username":"slow_body","password":"a-good-password-1","#;
    let head = format!(
        "POST /user/admin-api/create HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\
         Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{body}"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // One byte every 300 ms: never a long pause, never done. The deadline is for the whole body.
    let (mut reader, mut writer) = stream.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if writer.write_all(b" ").await.is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut answer);
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    trickle.abort();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "after {:?}: {answer}",
        started.elapsed()
    );
    assert!(answer.contains("ClientInputError"), "{answer}");
    assert_eq!(app.log_length().await, before);
}

#[tokio::test]
async fn connections_past_the_limit_are_closed_at_once() {
    let mut settings = test_settings();
    settings.edge.max_connections = 4;
    let app = spawn_app_with(settings).await;
    let address = app.url("").trim_start_matches("http://").to_owned();
    let mut open = Vec::new();
    for _ in 0..4 {
        open.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    // Give the server a moment to accept the four.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fifth = tokio::net::TcpStream::connect(&address).await.unwrap();
    let (closed, _) = closed_within(&mut fifth, Duration::from_secs(2)).await;
    assert!(closed, "a fifth connection stayed open");
    // One closed, a new one is served (once the server has seen it close).
    open.pop();
    test_support::eventually(Duration::from_secs(10), "a freed place serves", || async {
        match app.http.get(app.url("/health")).send().await {
            Ok(health) if health.status().as_u16() == 200 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

#[tokio::test]
async fn over_capacity_a_request_waits_a_bounded_time_then_gets_503_and_changes_nothing() {
    let mut settings = test_settings();
    settings.edge.max_concurrent_requests = 1;
    settings.edge.queue_wait = Duration::from_millis(20);
    let app = spawn_app_with(settings).await;
    let admin = app.admin_token().await;
    let before = app.log_length().await;
    let creates = (0..24).map(|n| {
        let request = app
            .http
            .post(app.url("/user/admin-api/create"))
            .bearer_auth(&admin)
            .json(&json!([{
                "username": format!("queued_{n}"), "password": "a-good-password-1",
                "email": format!("queued_{n}@example.com"), "firstName": "Q", "lastName": "U",
            }]));
        async move {
            let started = Instant::now();
            let answer = request.send().await.unwrap();
            let status = answer.status().as_u16();
            let retry_after = answer.headers().get("retry-after").cloned();
            let body: Value = answer.json().await.unwrap();
            (status, retry_after, body, started.elapsed())
        }
    });
    let answers = futures::future::join_all(creates).await;
    let created = answers.iter().filter(|a| a.0 == 201).count();
    let refused: Vec<_> = answers.iter().filter(|a| a.0 != 201).collect();
    assert!(created >= 1 && !refused.is_empty(), "{answers:?}");
    for (status, retry_after, body, _) in &refused {
        assert_eq!(*status, 503, "{body}");
        assert_eq!(body["error"], "ServiceUnavailable", "{body}");
        assert!(retry_after.is_some(), "{body}");
    }
    // A refused request waited its bounded time, not its turn.
    let slowest_refusal = refused.iter().map(|a| a.3).max().unwrap();
    assert!(
        slowest_refusal < Duration::from_secs(2),
        "{slowest_refusal:?}"
    );
    // Each created user appended its two events; the refused ones nothing.
    assert_eq!(app.log_length().await, before + 2 * created);
    // Liveness answers throughout.
    let health = app.http.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
}
