//! Invariant 5 against real process death: while 10,000 events stream into the log, the
//! process that publishes them (`userledger project` with `KAFKA_BROKERS`) is killed with
//! SIGKILL at random moments (every other run once it has published) and started again, at
//! least 10 times. Every event arrives; an event that arrives twice (sent again from the
//! checkpoint after a kill) carries the same `ce_id`, key and payload; each user's events
//! arrive in stream order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Stdio;
use std::time::{Duration, Instant};

use events::store::{Position, RecordedEvent};
use sqlx::PgPool;
use test_support::history::write_history;
use test_support::kafka::{Broker, Received, TopicReader};
use test_support::world::World;
use tokio::process::{Child, Command};
use uuid::Uuid;

const EVENTS: usize = 10_000;
const WRITERS: usize = 4;
const USERS_PER_WRITER: usize = 25;
const MIN_KILLS: usize = 10;

struct Topics {
    users: String,
    others: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_killed_at_random_moments_loses_nothing_and_repeats_only_ids() {
    let brokers = Broker::shared().expect("a broker");
    let world = World::new().await;
    let (database, store, state) = (&world.database, &world.store, world.state());
    let suffix = Uuid::now_v7().simple();
    let topics = Topics {
        users: format!("user-changes-{suffix}"),
        others: format!("role-application-changes-{suffix}"),
    };

    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let state = state.clone();
            tokio::spawn(async move {
                write_history(&state, writer, EVENTS / WRITERS, USERS_PER_WRITER).await
            })
        })
        .collect();
    let pool = store.pool().clone();
    let started = Instant::now();
    let mut kills = 0;
    // Runs killed after they had published something (moved the checkpoint).
    let mut productive = 0;
    while kills < MIN_KILLS || writers.iter().any(|writer| !writer.is_finished()) {
        if kills % 2 == 1 && published_up_to(&pool, last_position(&pool).await).await {
            // Nothing is left to publish (the writers ran ahead of the kills, or are done):
            // a little more, so that this run too is killed with events on their way.
            write_history(&state, WRITERS + kills, 100, 5).await;
        }
        let before = checkpoint(&pool).await;
        let mut publisher = publish(database.url(), brokers, &topics);
        if kills % 2 == 1 {
            // Every other run is killed mid-stream for sure: once it has published (within
            // 20 s), at a random moment after. The others die at a random moment, start-up
            // included; on a loaded machine that is mostly before they publish.
            let deadline = Instant::now() + Duration::from_secs(20);
            while checkpoint(&pool).await <= before && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // The random moment to kill it at is the point, here and below.
            tokio::time::sleep(Duration::from_millis(rand::random_range(0..1_000))).await;
        } else {
            tokio::time::sleep(Duration::from_millis(rand::random_range(500..2_500))).await;
        }
        publisher.start_kill().expect("SIGKILL");
        publisher.wait().await.expect("the publisher is reaped");
        kills += 1;
        if checkpoint(&pool).await > before {
            productive += 1;
        }
    }
    for writer in writers {
        writer.await.expect("the writer finishes");
    }
    let head = last_position(&pool).await;
    assert!(
        productive >= MIN_KILLS / 3,
        "only {productive} of {kills} runs published before they were killed"
    );

    // One last run, to the log's head, and killed there too.
    let mut publisher = publish(database.url(), brokers, &topics);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !published_up_to(&pool, head).await {
        assert!(
            Instant::now() < deadline,
            "the publisher catches up in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publisher.start_kill().expect("SIGKILL");
    publisher.wait().await.expect("the publisher is reaped");

    let log = world.log().await;
    let events: BTreeMap<String, &RecordedEvent> = log
        .iter()
        .filter(|e| !e.stream.starts_with("unique-"))
        .map(|e| (e.event_id.to_string(), e))
        .collect();
    assert!(events.len() >= EVENTS, "{} events", events.len());
    let brokers = brokers.to_owned();
    let received = tokio::task::spawn_blocking(move || {
        let mut all = Vec::new();
        for topic in [&topics.users, &topics.others] {
            let mut reader = TopicReader::new(&brokers, topic).expect("a reader");
            // Everything was acknowledged before the last kill: read until a quiet second.
            reader
                .read_until(Duration::from_secs(60), |received| !received.is_empty())
                .expect("messages");
            let mut count = 0;
            loop {
                reader.read_for(Duration::from_secs(1)).expect("reads");
                if reader.received.len() == count {
                    break;
                }
                count = reader.received.len();
            }
            all.extend(reader.received);
        }
        all
    })
    .await
    .expect("the readers finish");

    let mut copies: HashMap<&str, Vec<&Received>> = HashMap::new();
    for message in &received {
        copies
            .entry(message.header("ce_id"))
            .or_default()
            .push(message);
    }
    let missing: Vec<&str> = events
        .keys()
        .filter(|id| !copies.contains_key(id.as_str()))
        .map(String::as_str)
        .collect();
    assert!(missing.is_empty(), "{} events never arrived", missing.len());
    let mut duplicates = 0;
    for (id, messages) in &copies {
        let event = events
            .get(*id)
            .unwrap_or_else(|| panic!("a message with a ce_id of no event: {id}"));
        assert_eq!(messages[0].key, event.stream.split_once('-').unwrap().1);
        for copy in &messages[1..] {
            assert_eq!(copy.key, messages[0].key, "{id}");
            assert_eq!(
                copy.payload, messages[0].payload,
                "{id}: the same message again"
            );
            duplicates += 1;
        }
    }

    // Per subject, the first copies arrive in stream order (one partition per key).
    let mut of_users: Vec<&Received> = received
        .iter()
        .filter(|m| m.header("ce_type").starts_with("io.userledger.user."))
        .collect();
    of_users.sort_by_key(|m| (m.partition, m.offset));
    let mut by_key: HashMap<&str, Vec<u64>> = HashMap::new();
    let mut seen = BTreeSet::new();
    for message in of_users {
        if seen.insert(message.header("ce_id")) {
            by_key
                .entry(&message.key)
                .or_default()
                .push(message.payload["revision"].as_u64().expect("a revision"));
        }
    }
    for (key, revisions) in &by_key {
        let expected: Vec<u64> = (0..revisions.len() as u64).collect();
        assert_eq!(revisions, &expected, "user {key}: in stream order");
    }
    eprintln!(
        "{kills} kills ({productive} after publishing) over {} events in {:.1} s: {} messages, \
         {duplicates} sent again",
        events.len(),
        started.elapsed().as_secs_f64(),
        received.len()
    );
}

/// `userledger project` publishing to `brokers`, in a process of its own.
fn publish(url: &str, brokers: &str, topics: &Topics) -> Child {
    Command::new(env!("CARGO_BIN_EXE_userledger"))
        .arg("project")
        .env("DATABASE_URL", url)
        .env_remove("EVENTSTORE_URL")
        .env("KAFKA_BROKERS", brokers)
        .env("KAFKA_USER_TOPIC", &topics.users)
        .env("KAFKA_ROLE_APPLICATION_TOPIC", &topics.others)
        .env("KAFKA_SOCIAL_TOPIC", format!("{}-social", topics.others))
        .env("KAFKA_PARTITIONS", "3")
        .env("USERLEDGER_DATABASE_POOL", "4")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(test_support::process_log())
        .kill_on_drop(true)
        .spawn()
        .expect("userledger project starts")
}

async fn last_position(pool: &PgPool) -> Position {
    let last: Option<i64> = sqlx::query_scalar("SELECT max(position) FROM events")
        .fetch_one(pool)
        .await
        .expect("the log's head");
    Position::at(last.expect("a log") as u64)
}

/// Whether the publisher's checkpoint has reached `head`.
async fn published_up_to(pool: &PgPool, head: Position) -> bool {
    checkpoint(pool).await >= Some(head.commit)
}

/// The commit part of the publisher's checkpoint; `None` before its first batch.
async fn checkpoint(pool: &PgPool) -> Option<u64> {
    let reached: Result<Option<i64>, _> = sqlx::query_scalar(
        "SELECT commit_position FROM publishers.projection_checkpoints WHERE projection = 'kafka'",
    )
    .fetch_optional(pool)
    .await;
    reached.ok().flatten().map(|at| at as u64)
}
