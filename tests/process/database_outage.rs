//! PostgreSQL stopped under load (issue 18): a `userledger serve` process takes 200 credit
//! increments a second while its server is stopped with `pg_ctl stop -m immediate` for 20 s and
//! then started again. Requests during the outage fail fast with 503 and Retry-After; the
//! process recovers by itself; every increment it acknowledged is in the log, and the log holds
//! none it refused beyond those that were committing when the server went away (their answer
//! was lost with the connection: the caller was told 503, and cannot know); the users read
//! model, fed by the process's projectors, the Kafka topic, fed by its publisher, and the audit
//! route (`history`) all catch up to the log exactly.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use test_support::eventually;
use test_support::kafka::{Broker, TopicReader};
use test_support::postgres::{ClusterSettings, PostgresCluster};
use test_support::process::{user_holding, Userledger};

const CLIENT_ID: &str = "outage_client";
const CLIENT_SECRET: &str = "outage-client-secret";
const TOKEN_SECRET: &str = "a-token-secret-for-the-outage-test-0123456";
const PER_SECOND: u64 = 200;
const BEFORE: Duration = Duration::from_secs(5);
const OUTAGE: Duration = Duration::from_secs(20);
const AFTER: Duration = Duration::from_secs(10);
/// How long an answer during the outage may take: the pool's wait for a connection (2 s) and
/// a margin for a loaded machine.
const FAIL_FAST: Duration = Duration::from_secs(5);
/// How long after the server is back every request must succeed again.
const RECOVERY: Duration = Duration::from_secs(5);

/// One request's fate: when it was sent (since the load began), its status (0: no answer),
/// how long it took, and whether a 503 said when to retry.
#[derive(Debug)]
struct Sent {
    at: Duration,
    status: u16,
    took: Duration,
    retry_after: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_during_a_database_outage_fail_fast_and_nothing_acknowledged_is_lost() {
    test_support::init_test_log();
    // Commits are flushed before they are acknowledged (`synchronous_commit` on), as in
    // production; `fsync` stays off, since an immediate stop loses no page the OS holds.
    let settings = ClusterSettings {
        max_connections: 100,
        options: vec![("fsync".into(), "off".into())],
    };
    let cluster = Arc::new(PostgresCluster::start_throwaway(&settings).expect("a cluster"));
    let database = cluster.create_database().await.expect("a database");
    let brokers = Broker::shared().expect("a broker");
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    let user_topic = format!("outage-users-{suffix}");
    let (other_topic, social_topic) = (
        format!("outage-others-{suffix}"),
        format!("outage-social-{suffix}"),
    );
    let service = Userledger::start(
        env!("CARGO_BIN_EXE_userledger"),
        "serve",
        database.url(),
        None,
        &[
            ("USERLEDGER_TOKEN_SECRET", TOKEN_SECRET),
            ("USERLEDGER_BOOTSTRAP_CLIENT_ID", CLIENT_ID),
            ("USERLEDGER_BOOTSTRAP_CLIENT_SECRET", CLIENT_SECRET),
            ("KAFKA_BROKERS", brokers),
            ("KAFKA_USER_TOPIC", &user_topic),
            ("KAFKA_ROLE_APPLICATION_TOPIC", &other_topic),
            ("KAFKA_SOCIAL_TOPIC", &social_topic),
        ],
    )
    .await;
    let base = service.base.clone();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let token = service
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .await;
    let created = http
        .post(format!("{base}/user/client-api/create"))
        .bearer_auth(&token)
        .json(&json!([{
            "username": "outage_target", "password": "a-good-password-1",
            "email": "outage@example.com", "firstName": "Out", "lastName": "Age",
        }]))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let target = user_holding(database.url(), "outage_target").await;
    let stream = format!("user-{target}");

    // The load: one increment every 5 ms, each on a task of its own, bounded in count.
    let started = Instant::now();
    let total = PER_SECOND * (BEFORE + OUTAGE + AFTER).as_secs();
    let load = {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        let body = json!({ "target": target, "type": "increment", "value": 1 });
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / PER_SECOND));
            let mut requests = Vec::new();
            for _ in 0..total {
                ticks.tick().await;
                let request = http
                    .post(format!("{base}/user/client-api/credits"))
                    .bearer_auth(&token)
                    .json(&body);
                requests.push(tokio::spawn(async move {
                    let at = started.elapsed();
                    let sent = Instant::now();
                    let (status, retry_after) = match request.send().await {
                        Ok(answer) => (
                            answer.status().as_u16(),
                            answer.headers().contains_key("retry-after"),
                        ),
                        Err(_) => (0, false),
                    };
                    Sent {
                        at,
                        status,
                        took: sent.elapsed(),
                        retry_after,
                    }
                }));
            }
            let mut sent = Vec::new();
            for request in requests {
                sent.push(request.await.unwrap());
            }
            sent
        })
    };

    tokio::time::sleep_until((started + BEFORE).into()).await;
    let control = cluster.clone();
    tokio::task::spawn_blocking(move || control.stop_immediately())
        .await
        .unwrap()
        .expect("the server stops");
    let stopped = started.elapsed();
    tokio::time::sleep_until((started + BEFORE + OUTAGE).into()).await;
    let control = cluster.clone();
    tokio::task::spawn_blocking(move || control.start_again())
        .await
        .unwrap()
        .expect("the server starts again");
    let restarted = started.elapsed();
    let sent = load.await.unwrap();

    let count = |f: &dyn Fn(&Sent) -> bool| sent.iter().filter(|s| f(s)).count();
    let acknowledged = count(&|s| s.status == 200);
    let refused = count(&|s| s.status == 503);
    eprintln!(
        "{} sent: {acknowledged} acknowledged, {refused} refused with 503, stopped at {stopped:?}, \
         started again at {restarted:?}",
        sent.len()
    );
    let others: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.status != 200 && s.status != 503)
        .collect();
    assert!(
        others.is_empty(),
        "answers other than 200 and 503: {others:?}"
    );
    let without_retry_after: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.status == 503 && !s.retry_after)
        .collect();
    assert!(without_retry_after.is_empty(), "{without_retry_after:?}");
    // While the server is down (from a moment after the stop), every request is refused, fast.
    let down: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.at > stopped + Duration::from_millis(500) && s.at + FAIL_FAST < restarted)
        .collect();
    assert!(
        down.len() as u64 > PER_SECOND * 10,
        "{} sent while down",
        down.len()
    );
    let slow_or_accepted: Vec<&&Sent> = down
        .iter()
        .filter(|s| s.status != 503 || s.took > FAIL_FAST)
        .collect();
    assert!(
        slow_or_accepted.is_empty(),
        "{} of {} requests during the outage were not refused fast: {:?}",
        slow_or_accepted.len(),
        down.len(),
        &slow_or_accepted[..slow_or_accepted.len().min(5)]
    );
    let slowest = down.iter().map(|s| s.took).max().unwrap_or_default();
    eprintln!("slowest refusal during the outage: {slowest:?}");
    // The process recovers without a restart.
    let late_failures: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.at > restarted + RECOVERY && s.status != 200)
        .collect();
    assert!(
        late_failures.is_empty(),
        "after recovery: {late_failures:?}"
    );
    let first_after = sent
        .iter()
        .filter(|s| s.at > restarted && s.status == 200)
        .map(|s| s.at + s.took - restarted)
        .min();
    eprintln!("first acknowledged write after the server was back: {first_after:?} later");

    // Every acknowledged increment is in the log; of the refused ones, only those in flight
    // when the server went away may be.
    let pool = sqlx::PgPool::connect(database.url()).await.unwrap();
    let landed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE stream_id = $1 AND event_type = 'CreditsIncreased'",
    )
    .bind(&stream)
    .fetch_one(&pool)
    .await
    .unwrap();
    let in_flight_at_stop = count(&|s| s.at <= stopped && s.at + s.took >= stopped);
    eprintln!(
        "{landed} increments in the log; {in_flight_at_stop} requests were in flight at the stop"
    );
    assert!(
        landed as usize >= acknowledged,
        "{landed} in the log, {acknowledged} acknowledged"
    );
    assert!(
        landed as usize <= acknowledged + in_flight_at_stop,
        "{landed} in the log, {acknowledged} acknowledged, {in_flight_at_stop} in flight"
    );
    let logged: BTreeSet<String> =
        sqlx::query_scalar::<_, uuid::Uuid>("SELECT event_id FROM events WHERE stream_id = $1")
            .bind(&stream)
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .map(|id| id.to_string())
            .collect();
    pool.close().await;

    // The read model catches up to the log: the user's credits are the increments landed.
    let credits = || async {
        let answer: Value = http
            .post(format!("{base}/user/client-api/retrieve-user-info"))
            .bearer_auth(&token)
            .json(&json!({ "targets": [target], "field": "_id" }))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(answer["data"]["users"][0]["credits"].as_i64())
    };
    eventually(
        Duration::from_secs(30),
        "the read model catches up",
        || async {
            match credits().await? {
                Some(credits) if credits == landed => Ok(()),
                other => Err(format!("credits {other:?}, {landed} landed")),
            }
        },
    )
    .await;

    // Kafka carries exactly the log's events of the user: none lost in the outage, none that
    // the log does not hold (a message sent again after a lost checkpoint is the same event).
    let published = {
        let (brokers, topic, key, logged) = (
            brokers.to_owned(),
            user_topic.clone(),
            target.to_string(),
            logged.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let mut reader = TopicReader::new(&brokers, &topic).expect("a reader");
            let ids = |received: &[test_support::kafka::Received]| -> BTreeSet<String> {
                received
                    .iter()
                    .filter(|r| r.key == key)
                    .map(|r| r.header("ce_id").to_owned())
                    .collect()
            };
            let received = reader
                .read_until(Duration::from_secs(60), |received| {
                    ids(received).is_superset(&logged)
                })
                .expect("the publisher catches up");
            let duplicates = received.iter().filter(|r| r.key == key).count() - ids(received).len();
            (ids(received), duplicates)
        })
        .await
        .unwrap()
    };
    eprintln!(
        "Kafka: {} of the user's events, {} sent more than once",
        published.0.len(),
        published.1
    );
    assert_eq!(published.0, logged, "Kafka holds exactly the log's events");

    // The audit route shows exactly the log's events too, page by page.
    let mut audited = BTreeSet::new();
    let mut from = Some(0);
    while let Some(revision) = from {
        let page: Value = http
            .get(format!(
                "{base}/user/client-api/history?target={target}&from={revision}&limit=1000"
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let events = page["data"]["events"].as_array().expect("a page of events");
        audited.extend(
            events
                .iter()
                .map(|e| e["eventId"].as_str().unwrap().to_owned()),
        );
        from = page["data"]["next"].as_u64();
    }
    assert_eq!(
        audited, logged,
        "the history shows exactly the log's events"
    );
}
