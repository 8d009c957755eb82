//! OpenTelemetry export (issue 7): with `OTEL_EXPORTER_OTLP_ENDPOINT`, `userledger serve` sends
//! its spans (one per request) to that collector over OTLP/HTTP, and flushes them when it stops
//! on SIGTERM. The collector here is a small HTTP server of the test that records what it gets.

use std::net::TcpListener;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use test_support::TestDatabase;
use tokio::process::Command;

/// What the collector received: (content type, body length) per request.
type Received = Arc<Mutex<Vec<(String, usize)>>>;

#[tokio::test]
async fn spans_reach_the_collector_and_are_flushed_at_shutdown() {
    let received: Received = Arc::default();
    let collector = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_address = collector.local_addr().unwrap();
    let app = Router::new().route(
        "/v1/traces",
        post({
            let received = received.clone();
            move |headers: HeaderMap, body: Bytes| async move {
                let content_type = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                received.lock().unwrap().push((content_type, body.len()));
                ""
            }
        }),
    );
    tokio::spawn(async move { axum::serve(collector, app).await });

    let database = TestDatabase::new().await.expect("a test database");
    let listen = free_address();
    let mut service = Command::new(env!("CARGO_BIN_EXE_userledger"))
        .arg("serve")
        .env_clear()
        .env("DATABASE_URL", database.url())
        .env("USERLEDGER_LISTEN", &listen)
        .env(
            "USERLEDGER_TOKEN_SECRET",
            "a-token-secret-of-at-least-32-characters",
        )
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{collector_address}"),
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("userledger serve starts");

    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = http.get(format!("http://{listen}/health")).send().await;
        if answer.is_ok_and(|a| a.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the service does not answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = http
        .get(format!("http://{listen}/user/admin-api/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let terminated = Command::new("kill")
        .args(["-TERM", &service.id().unwrap().to_string()])
        .status()
        .await
        .unwrap();
    assert!(terminated.success());
    let stopped = tokio::time::timeout(Duration::from_secs(30), service.wait())
        .await
        .expect("the service stops on SIGTERM")
        .unwrap();
    assert!(stopped.success(), "{stopped}");

    let received = received.lock().unwrap().clone();
    assert!(!received.is_empty(), "no span reached the collector");
    for (content_type, length) in &received {
        assert_eq!(content_type, "application/x-protobuf");
        assert!(*length > 50, "an export of {length} bytes");
    }
}

fn free_address() -> String {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .to_string()
}
