//! Erasure (issue 17): a person whose email, names, custom data, bio and sign-in user agent are
//! distinctive strings is erased through `POST /user/admin-api/erase` from a `userledger serve`
//! that publishes to Kafka and logs at debug level. Afterwards none of the strings is anywhere:
//! not in a `pg_dump` of the whole database, not in any message of any topic, not in the
//! service's logs, not in `userledger replay`'s output, which shows the fields as `[erased]`;
//! `userledger verify` still passes (the chains are over the sealed form, and the read models
//! match a rebuild); the username can be taken again. `userledger erase` does the same for an
//! operator.

use std::time::Duration;

use serde_json::{json, Value};
use test_support::eventually;
use test_support::kafka::{Broker, TopicReader};
use test_support::process::{self, user_holding, Userledger};
use test_support::TestDatabase;
use tokio::process::Command;
use uuid::Uuid;

const CLIENT_ID: &str = "erasure_client";
const CLIENT_SECRET: &str = "erasure-client-secret-1";
const ADMIN: &str = "erasure_admin";
const ADMIN_PASSWORD: &str = "erasure-admin-password-1";
const TOKEN_SECRET: &str = "a-token-secret-for-the-erasure-test-0123456";

const USERNAME: &str = "quillmarch7f3k";
const PASSWORD: &str = "a-good-password-1";
const USER_AGENT: &str = "ErasureAgent/7f3k";
/// What must be found nowhere once the person is erased (compared in lowercase).
const DISTINCTIVE: &[&str] = &[
    USERNAME,
    "marchbanks",
    "quillonia",
    "xylophagous93731",
    "zephyrine-bio-5521",
    "erasureagent/7f3k",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_person_is_nowhere_and_the_log_still_verifies() {
    let brokers = Broker::shared().expect("a broker");
    let database = TestDatabase::new().await.expect("a test database");
    let suffix = Uuid::now_v7().simple().to_string();
    let topics = [
        format!("erasure-users-{suffix}"),
        format!("erasure-others-{suffix}"),
        format!("erasure-social-{suffix}"),
    ];
    let log_file = std::env::temp_dir().join(format!("userledger-erasure-{suffix}.log"));
    let settings = [
        ("USERLEDGER_TOKEN_SECRET", TOKEN_SECRET),
        ("USERLEDGER_BOOTSTRAP_CLIENT_ID", CLIENT_ID),
        ("USERLEDGER_BOOTSTRAP_CLIENT_SECRET", CLIENT_SECRET),
        ("USERLEDGER_BOOTSTRAP_ADMIN_USERNAME", ADMIN),
        (
            "USERLEDGER_BOOTSTRAP_ADMIN_EMAIL",
            "erasure-admin@example.com",
        ),
        ("USERLEDGER_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("KAFKA_BROKERS", brokers),
        ("KAFKA_USER_TOPIC", &topics[0]),
        ("KAFKA_ROLE_APPLICATION_TOPIC", &topics[1]),
        ("KAFKA_SOCIAL_TOPIC", &topics[2]),
    ];
    let service = Userledger::start_logged(
        env!("CARGO_BIN_EXE_userledger"),
        "serve",
        database.url(),
        &settings,
        &log_file,
        "debug",
    )
    .await;
    let base = service.base.clone();
    let http = reqwest::Client::new();
    let admin = service
        .token(&[
            ("grant_type", "password"),
            ("username", ADMIN),
            ("password", ADMIN_PASSWORD),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .await;

    // The person, as a caller would leave traces of them: created, updated with an
    // Idempotency-Key (whose answer, the user object, is kept), signed in with their agent.
    let (status, body) = create(
        &http,
        &base,
        &admin,
        [
            USERNAME,
            "Quill.Marchbanks.7f3k@erasure.example",
            "Quillonia",
            "Marchbanks",
        ],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = user_holding(database.url(), USERNAME).await;
    let answer = http
        .patch(format!("{base}/user/admin-api/update"))
        .bearer_auth(&admin)
        .header("Idempotency-Key", "erasure-update-1")
        .json(&json!({ "target": id, "bio": "zephyrine-bio-5521" }))
        .send()
        .await
        .expect("update answers");
    assert_eq!(answer.status(), 200);
    let (status, body) = send(
        &http,
        reqwest::Method::PUT,
        &format!("{base}/user/admin-api/custom-data"),
        &admin,
        &json!({ "target": id, "customData": { "favouriteWord": "xylophagous93731" } }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sign_in(&http, &base).await, 200);
    // The read models show them, and Kafka has carried their changes.
    let shown = user_info(&http, &base, &admin, &id, None).await;
    assert!(shown.contains("Quillonia"), "{shown}");
    let dump = pg_dump(database.url()).await;
    assert!(
        dump.to_lowercase().contains("quillonia"),
        "before the erasure the read models hold the person"
    );

    let erased = http
        .post(format!("{base}/user/admin-api/erase"))
        .bearer_auth(&admin)
        .json(&json!({ "target": id }))
        .send()
        .await
        .expect("erase answers");
    assert_eq!(erased.status(), 200);
    let token = erased
        .headers()
        .get("X-Consistency-Token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let again = send(
        &http,
        reqwest::Method::POST,
        &format!("{base}/user/admin-api/erase"),
        &admin,
        &json!({ "target": id }),
    )
    .await;
    assert_eq!(again.0, 404, "an erased person is gone: {}", again.1);
    let shown = user_info(&http, &base, &admin, &id, token.as_deref()).await;
    assert!(!shown.contains(&id), "the read models drop them: {shown}");
    assert_ne!(
        sign_in(&http, &base).await,
        200,
        "an erased person cannot sign in"
    );

    // Kafka: every message of every topic, up to the tombstone that follows the erasure.
    let messages = {
        let (brokers, topics, id) = (brokers.to_owned(), topics.clone(), id.clone());
        tokio::task::spawn_blocking(move || {
            let mut texts = Vec::new();
            for topic in &topics {
                let mut reader = TopicReader::new(&brokers, topic).expect("a reader");
                let received = if topic == &topics[0] {
                    reader
                        .read_until(Duration::from_secs(60), |received| {
                            received.iter().any(|r| r.key == id && r.text.is_empty())
                        })
                        .expect("the tombstone arrives")
                } else {
                    reader.read_for(Duration::from_secs(2)).expect("a topic")
                };
                texts.extend(received.iter().map(|r| {
                    let headers: Vec<String> = r.headers.values().cloned().collect();
                    format!("{} {} {}", r.key, r.text, headers.join(" "))
                }));
            }
            texts
        })
        .await
        .unwrap()
    };
    assert!(messages.len() >= 6, "{} messages", messages.len());
    assert_nowhere("Kafka", &messages.join("\n"));

    // The log: replayed, their fields read as erased; verified, the chains hold.
    let replayed = userledger(
        database.url(),
        &["replay", "--stream", &format!("user-{id}")],
    )
    .await;
    assert!(replayed.contains("[erased]"), "{replayed}");
    assert_nowhere("userledger replay", &replayed);
    assert_nowhere(
        "userledger replay of the whole log",
        &userledger(database.url(), &["replay"]).await,
    );
    let verified = userledger(database.url(), &["verify"]).await;
    assert!(
        verified.contains("verified: the log's hash chains hold"),
        "{verified}"
    );

    assert_nowhere("pg_dump", &pg_dump(database.url()).await);

    // An operator erases another person from the command line.
    let (status, body) = create(
        &http,
        &base,
        &admin,
        [
            "second_person",
            "second@erasure.example",
            "Second",
            "Person",
        ],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let second = user_holding(database.url(), "second_person").await;
    let printed = userledger(database.url(), &["erase", &second]).await;
    assert!(printed.contains(&format!("erased {second}")), "{printed}");
    eventually(
        Duration::from_secs(30),
        "the second person is dropped",
        || {
            let (http, base, admin, second) =
                (http.clone(), base.clone(), admin.clone(), second.clone());
            async move {
                let shown = user_info(&http, &base, &admin, &second, None).await;
                if shown.contains(&second) {
                    Err(shown)
                } else {
                    Ok(())
                }
            }
        },
    )
    .await;

    // The username and the email are free again.
    let (status, body) = create(
        &http,
        &base,
        &admin,
        [
            USERNAME,
            "Quill.Marchbanks.7f3k@erasure.example",
            "Another",
            "Person",
        ],
    )
    .await;
    assert_eq!(
        status, 201,
        "the freed username and email are taken again: {body}"
    );

    drop(service);
    let logs = std::fs::read_to_string(&log_file).expect("the service's logs");
    let _ = std::fs::remove_file(&log_file);
    assert!(logs.lines().count() > 20, "the service logged: {logs}");
    assert_nowhere("the service's logs", &logs);
}

/// Creates a user of `[username, email, first name, last name]`; the status and the answer.
async fn create(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    [username, email, first, last]: [&str; 4],
) -> (u16, Value) {
    let user = json!([{ "username": username, "password": PASSWORD, "email": email,
                        "firstName": first, "lastName": last }]);
    let url = format!("{base}/user/admin-api/create");
    send(http, reqwest::Method::POST, &url, admin, &user).await
}

/// The person signs in (password grant) with their user agent; the status.
async fn sign_in(http: &reqwest::Client, base: &str) -> u16 {
    http.post(format!("{base}/oauth/token"))
        .header("User-Agent", USER_AGENT)
        .form(&[
            ("grant_type", "password"),
            ("username", USERNAME),
            ("password", PASSWORD),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .expect("the token endpoint answers")
        .status()
        .as_u16()
}

/// Fails naming `place` if any distinctive string is in `text`.
fn assert_nowhere(place: &str, text: &str) {
    let text = text.to_lowercase();
    for needle in DISTINCTIVE {
        if let Some(at) = text.find(needle) {
            let start = at.saturating_sub(200);
            let end = (at + 200).min(text.len());
            panic!(
                "{needle:?} is in {place}: ...{}...",
                text.get(start..end).unwrap_or(&text[at..])
            );
        }
    }
}

async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: &Value,
) -> (u16, Value) {
    let answer = http
        .request(method, url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("the service answers");
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

/// `GET user-info` of `id` as text, after `consistency` when given.
async fn user_info(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
    consistency: Option<&str>,
) -> String {
    let mut request = http
        .get(format!("{base}/user/admin-api/user-info?targets={id}"))
        .bearer_auth(token);
    if let Some(consistency) = consistency {
        request = request.header("X-Consistency-Token", consistency);
    }
    request
        .send()
        .await
        .expect("user-info answers")
        .text()
        .await
        .expect("a text")
}

/// A plain-text dump of the whole database.
async fn pg_dump(url: &str) -> String {
    let bin = test_support::postgres::postgres_bin_dir().expect("PostgreSQL's programs");
    let output = Command::new(bin.join("pg_dump"))
        .args(["--no-owner", "--dbname", url])
        .output()
        .await
        .expect("pg_dump runs");
    assert!(
        output.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("a UTF-8 dump")
}

/// `userledger <args>` on the database at `url`.
async fn userledger(url: &str, args: &[&str]) -> String {
    process::run(env!("CARGO_BIN_EXE_userledger"), url, args).await
}
