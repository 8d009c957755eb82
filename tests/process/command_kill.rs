//! The command process killed mid-write (issue 18): `userledger command` takes user creates
//! (each claiming a username and an email) and credit increments from 16 concurrent clients and
//! is SIGKILLed at a random moment, ten times, started again each time. Every acknowledged write
//! is in the log; no uniqueness claim is left without its stream; a username whose create was cut
//! off either is its user's (the create landed) or can be taken again.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde_json::json;
use test_support::process::{user_holding, Userledger};
use test_support::TestDatabase;

const CLIENT_ID: &str = "kill_client";
const CLIENT_SECRET: &str = "kill-client-secret-1";
const TOKEN_SECRET: &str = "a-token-secret-for-the-kill-test-0123456789";
const KILLS: usize = 10;
const CLIENTS: usize = 16;

/// What the clients saw: acknowledged creates and increments, and the creates with no answer.
#[derive(Default)]
struct Seen {
    created: BTreeSet<String>,
    unanswered_creates: BTreeSet<String>,
    increments: usize,
    unanswered_increments: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_sigkill_and_no_claim_is_orphaned() {
    let database = TestDatabase::new().await.expect("a test database");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));

    let mut service = command(database.url(), None).await;
    let base = service.base.clone();
    let token = client_token(&service).await;
    let target = create(&http, &base, &token, "kill_target").await;
    assert_eq!(target, 201);
    let target_id = user_holding(database.url(), "kill_target").await;
    let target = format!("user-{target_id}");
    let pool = sqlx::PgPool::connect(database.url()).await.unwrap();

    for round in 0..KILLS {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (http, base, token) = (http.clone(), base.clone(), token.clone());
                let (seen, target) = (seen.clone(), target_id.clone());
                tokio::spawn(async move {
                    for n in 0.. {
                        if client % 2 == 0 {
                            let username = format!("k{round}_{client}_{n}");
                            let status = create(&http, &base, &token, &username).await;
                            let mut seen = seen.lock().unwrap();
                            match status {
                                201 => seen.created.insert(username),
                                0 => seen.unanswered_creates.insert(username),
                                other => panic!("create {username}: {other}"),
                            };
                            if status == 0 {
                                return;
                            }
                        } else {
                            let answer = http
                                .post(format!("{base}/user/client-api/credits"))
                                .bearer_auth(&token)
                                .json(&json!({ "target": target, "type": "increment", "value": 1 }))
                                .send()
                                .await;
                            let mut seen = seen.lock().unwrap();
                            match answer.map(|a| a.status().as_u16()) {
                                Ok(200) => seen.increments += 1,
                                Ok(other) => panic!("increment: {other}"),
                                Err(_) => {
                                    seen.unanswered_increments += 1;
                                    return;
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        let lifetime = rand::rng().random_range(300..1_500);
        tokio::time::sleep(Duration::from_millis(lifetime)).await;
        service.child.kill().await.expect("SIGKILL");
        for client in clients {
            client.await.expect("a client");
        }
        service = command(database.url(), Some(&base)).await;
    }

    let seen = Arc::try_unwrap(seen).ok().unwrap().into_inner().unwrap();
    eprintln!(
        "{} creates and {} increments acknowledged; {} creates and {} increments cut off",
        seen.created.len(),
        seen.increments,
        seen.unanswered_creates.len(),
        seen.unanswered_increments
    );
    assert!(seen.created.len() > 100 && seen.increments > 100);

    // No claim without its stream.
    let orphans: Vec<(String, String)> = sqlx::query_as(
        "SELECT kind || ':' || value, stream_id FROM unique_claims c
          WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.stream_id = c.stream_id)",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(orphans.is_empty(), "claims without a stream: {orphans:?}");
    // Every acknowledged user is there.
    let claimed: Vec<String> =
        sqlx::query_scalar("SELECT value FROM unique_claims WHERE kind = 'username'")
            .fetch_all(&pool)
            .await
            .unwrap();
    let claimed: BTreeSet<String> = claimed.into_iter().collect();
    let missing: Vec<&String> = seen.created.difference(&claimed).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not in the log: {missing:?}"
    );
    // Every acknowledged increment is there, and at most those cut off besides.
    let landed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE stream_id = $1 AND event_type = 'CreditsIncreased'",
    )
    .bind(&target)
    .fetch_one(&pool)
    .await
    .unwrap();
    let landed = landed as usize;
    assert!(
        landed >= seen.increments && landed <= seen.increments + seen.unanswered_increments,
        "{landed} increments in the log, {} acknowledged, {} cut off",
        seen.increments,
        seen.unanswered_increments
    );
    eprintln!(
        "{} of the {} creates cut off had landed",
        seen.unanswered_creates.intersection(&claimed).count(),
        seen.unanswered_creates.len()
    );
    // A username whose create was cut off is its user's, or free again.
    let token = client_token(&service).await;
    for username in &seen.unanswered_creates {
        let status = create(&http, &base, &token, username).await;
        if claimed.contains(username) {
            assert_eq!(
                status, 400,
                "{username} landed: a new create names an existing user"
            );
        } else {
            assert_eq!(status, 201, "{username} was freed: it can be taken");
        }
    }
    drop(service);
}

/// Creates one user; the status, 0 when no answer came.
async fn create(http: &reqwest::Client, base: &str, token: &str, username: &str) -> u16 {
    let answer = http
        .post(format!("{base}/user/client-api/create"))
        .bearer_auth(token)
        .json(&json!([{
            "username": username, "password": "a-good-password-1",
            "email": format!("{username}@example.com"), "firstName": "Kill", "lastName": "Test",
        }]))
        .send()
        .await;
    answer.map_or(0, |answer| answer.status().as_u16())
}

async fn client_token(service: &Userledger) -> String {
    service
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .await
}

/// `userledger command` with the test's client, at `base` when given (a restart).
async fn command(database_url: &str, base: Option<&str>) -> Userledger {
    Userledger::start(
        env!("CARGO_BIN_EXE_userledger"),
        "command",
        database_url,
        base,
        &[
            ("USERLEDGER_TOKEN_SECRET", TOKEN_SECRET),
            ("USERLEDGER_BOOTSTRAP_CLIENT_ID", CLIENT_ID),
            ("USERLEDGER_BOOTSTRAP_CLIENT_SECRET", CLIENT_SECRET),
            ("USERLEDGER_HASHING_QUEUE", "4096"),
        ],
    )
    .await
}
