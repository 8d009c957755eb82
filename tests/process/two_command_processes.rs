//! Hot streams across processes (issue 15): two `userledger command` processes on one
//! database take 200 credit increments on one user from 32 concurrent clients, half through
//! each. Inside a process commands on one stream take turns; between the two, appends conflict
//! and are decided again. Every increment must be answered 200 and land exactly once.

use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use events::store::EventStore;
use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use test_support::world::World;
use test_support::{eventually, TestDatabase};
use tokio::process::{Child, Command};

const CLIENT_ID: &str = "two_process_client";
const CLIENT_SECRET: &str = "two-process-client-secret";
const TOKEN_SECRET: &str = "a-token-secret-shared-by-both-processes-0123";
const INCREMENTS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increments_on_one_user_through_two_processes_all_land() {
    let world = World::new().await;
    let database: &TestDatabase = &world.database;
    let user = world.create_user("two_process_target").await;
    let (first, first_url) = command(database.url());
    let (second, second_url) = command(database.url());
    let http = reqwest::Client::new();
    for url in [&first_url, &second_url] {
        eventually(Duration::from_secs(60), "the process answers", || async {
            match http.get(format!("{url}/health")).send().await {
                Ok(response) if response.status().is_success() => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    }
    let token: Value = http
        .post(format!("{first_url}/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().expect("a token").to_owned();

    let body = json!({ "target": user.to_string(), "type": "increment", "value": 1 });
    let answers: Vec<(u16, String)> = futures::stream::iter(0..INCREMENTS)
        .map(|n| {
            let url = if n % 2 == 0 { &first_url } else { &second_url };
            let request = http
                .request(Method::POST, format!("{url}/user/client-api/credits"))
                .bearer_auth(&token)
                .json(&body);
            async move {
                let response = request.send().await.expect("an answer");
                (
                    response.status().as_u16(),
                    response.text().await.unwrap_or_default(),
                )
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let refused: Vec<&(u16, String)> = answers.iter().filter(|(s, _)| *s != 200).collect();
    assert!(refused.is_empty(), "{} refused: {refused:?}", refused.len());

    // Each increment once in the user's stream.
    let stream = world
        .store
        .read_stream(&format!("user-{user}"), 0)
        .await
        .unwrap();
    let increments = stream
        .iter()
        .filter(|event| event.event_type == "CreditsIncreased")
        .count();
    assert_eq!(increments, INCREMENTS);
    // How often the two met (not asserted: it depends on timing), for whoever reads the log.
    for url in [&first_url, &second_url] {
        let metrics = test_support::get_text(&http, &format!("{url}/metrics")).await;
        let conflicts: Vec<&str> = metrics
            .lines()
            .filter(|line| line.starts_with("userledger_command_conflicts_total"))
            .collect();
        eprintln!("{url}: {conflicts:?}");
    }
    drop((first, second));
}

/// `userledger command` on a free port of 127.0.0.1, with the test's client, in a process of
/// its own; its base URL.
fn command(database_url: &str) -> (Child, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_userledger"))
        .arg("command")
        .env("DATABASE_URL", database_url)
        .env_remove("EVENTSTORE_URL")
        .env("USERLEDGER_LISTEN", format!("127.0.0.1:{port}"))
        .env("USERLEDGER_TOKEN_SECRET", TOKEN_SECRET)
        .env("USERLEDGER_BOOTSTRAP_CLIENT_ID", CLIENT_ID)
        .env("USERLEDGER_BOOTSTRAP_CLIENT_SECRET", CLIENT_SECRET)
        .env("USERLEDGER_DATABASE_POOL", "8")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(test_support::process_log())
        .kill_on_drop(true)
        .spawn()
        .expect("userledger command starts");
    (child, format!("http://127.0.0.1:{port}"))
}
