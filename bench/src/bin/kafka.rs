//! Kafka publishing: the publisher's throughput while it replays a log of 1,000,000 events
//! (from an empty checkpoint, as at its first start), and the end-to-end lag from a command's
//! answer to a consumer's receipt of its message, at 1,000 commands/s.
//!
//! `cargo run --release -p userledger-bench --bin kafka`
//!
//! Starts a throwaway durable PostgreSQL (or uses `BENCH_DATABASE_URL`) and a tansu broker on
//! memory storage (or uses `BENCH_KAFKA_BROKERS`), writes `BENCH_EVENTS` (default 1,000,000)
//! `UserCreated` events straight into the log, runs the publisher over them, then serves the
//! write routes in this process while a consumer reads the user topic. `BENCH_SECONDS` sets
//! the lag scenario's length (default 10). Prints its figures and writes
//! `bench/results/kafka.json`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use event_store::postgres::PostgresEventStore;
use events::store::Position;
use projections::KafkaSettings;
use serde_json::json;
use test_support::app::test_settings;
use test_support::kafka::{Broker, TopicReader};
use userledger_bench::seeding::{seed, user_id};
use userledger_bench::{admin_token, machine, scenario_duration, summarize, write_results};

/// Commands per second in the lag scenario: `WORKERS` each sending one every `PERIOD`.
const WORKERS: u64 = 20;
const PERIOD: Duration = Duration::from_millis(20);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let duration = scenario_duration(10);
    let events: u64 = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let database = userledger_bench::durable_database().await?;
    let url = database.url().to_owned();
    let store = Arc::new(PostgresEventStore::connect(&url, 40).await?);
    let _broker;
    let brokers = match std::env::var("BENCH_KAFKA_BROKERS") {
        Ok(brokers) => brokers,
        Err(_) => {
            let broker = Broker::start_in_memory()?;
            let address = broker.address().to_owned();
            _broker = broker;
            address
        }
    };
    let mut settings = KafkaSettings::new(&brokers);
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    settings.user_topic = format!("user-changes-{suffix}");
    settings.role_application_topic = format!("role-application-changes-{suffix}");
    settings.social_topic = format!("social-changes-{suffix}");

    println!("seeding {events} events into the log ...");
    let seeded = Instant::now();
    seed(&store, events).await?;
    println!("seeded in {:.1}s", seeded.elapsed().as_secs_f64());
    let head: i64 = sqlx::query_scalar("SELECT max(position) FROM events")
        .fetch_one(store.pool())
        .await?;
    let head = Position::at(head as u64);

    println!("publishing the log from an empty checkpoint ...");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let publisher = projections::ReadModels::default().with_publisher(
        store.clone(),
        &url,
        settings.clone(),
        &stopped,
    );
    let mut progress = publisher.progress[projections::publisher::NAME].clone();
    let mut last_report = Instant::now();
    loop {
        let at = progress.borrow().position;
        if at.is_some_and(|at| at >= head) {
            break;
        }
        if started.elapsed() > Duration::from_secs(900) {
            bail!("the publisher did not reach the head in 15 minutes (at {at:?})");
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            println!("  ... {:.0}s", started.elapsed().as_secs_f64());
            last_report = Instant::now();
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), progress.changed()).await;
    }
    let replay_seconds = started.elapsed().as_secs_f64();
    let replay_rate = events as f64 / replay_seconds;
    println!("published {events} events in {replay_seconds:.1}s: {replay_rate:.0} events/s");
    stop.send(true)?;
    publisher.stopped().await;

    // The lag scenario publishes to topics of its own, by a new publisher (it resumes from the
    // replay's checkpoint and knows no user's state yet): tansu's in-memory partitions slow
    // down as they grow, and a million messages would measure the broker, not the publisher.
    settings.user_topic = format!("user-changes-lag-{suffix}");
    settings.role_application_topic = format!("role-application-changes-lag-{suffix}");
    settings.social_topic = format!("social-changes-lag-{suffix}");
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let publisher = projections::ReadModels::default().with_publisher(
        store.clone(),
        &url,
        settings.clone(),
        &stopped,
    );
    publisher.progress[projections::publisher::NAME]
        .clone()
        .wait_for(|p| p.active)
        .await?;
    kafka_topics_exist(&brokers, &settings.user_topic).await?;

    // End to end: commands over HTTP, a consumer on the user topic.
    let app = command_service::Application::build(
        "127.0.0.1:0".parse()?,
        store.clone(),
        Some(store.pool().clone()),
        test_settings(),
    )
    .await?;
    let base = format!("http://{}", app.local_addr()?);
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let token = admin_token(&http, &base).await?;

    let receipts: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let reading = Arc::new(AtomicBool::new(true));
    let reader = {
        let (receipts, reading) = (receipts.clone(), reading.clone());
        let (brokers, topic) = (brokers.clone(), settings.user_topic.clone());
        std::thread::spawn(move || -> anyhow::Result<()> {
            let mut reader = TopicReader::new_at_end(&brokers, &topic)?;
            while reading.load(Ordering::Relaxed) {
                if reader.poll(Duration::from_millis(50))? {
                    let received = Instant::now();
                    for message in reader.received.drain(..) {
                        if let Some(position) = message.payload["position"].as_str() {
                            receipts
                                .lock()
                                .unwrap()
                                .insert(position.to_owned(), received);
                        }
                    }
                }
            }
            Ok(())
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;

    let answers: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let (http, base, token) = (http.clone(), base.clone(), token.clone());
            let (answers, sent) = (answers.clone(), sent.clone());
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(PERIOD);
                let mut i = 0u64;
                while started.elapsed() < duration {
                    ticks.tick().await;
                    i += 1;
                    let target = user_id(1 + (worker * 7919 + i * WORKERS) % events);
                    let Ok(response) = http
                        .post(format!("{base}/user/admin-api/credits"))
                        .bearer_auth(&token)
                        .json(&json!({ "target": target, "type": "increment", "value": 1 }))
                        .send()
                        .await
                    else {
                        continue;
                    };
                    let answered = Instant::now();
                    let Some(position) = response
                        .headers()
                        .get(http_edge::envelope::CONSISTENCY_TOKEN)
                        .and_then(|v| v.to_str().ok())
                    else {
                        continue;
                    };
                    answers
                        .lock()
                        .unwrap()
                        .insert(position.to_owned(), answered);
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await?;
    }
    let commands_per_second = sent.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    reading.store(false, Ordering::Relaxed);
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("the reader panicked"))?
        .context("reading the user topic")?;
    let answers = answers.lock().unwrap().clone();
    let receipts = receipts.lock().unwrap().clone();
    let lags: Vec<Duration> = answers
        .iter()
        .filter_map(|(position, answered)| {
            receipts
                .get(position)
                .map(|received| received.saturating_duration_since(*answered))
        })
        .collect();
    let missed = answers.len() - lags.len();
    let lag = summarize(lags, missed as u64, duration);
    println!(
        "end-to-end lag at {commands_per_second:.0} commands/s: p50 {:.1} ms, p99 {:.1} ms ({} received, {missed} not received)",
        lag.p50_ms, lag.p99_ms, lag.operations
    );

    let targets = json!([
        { "scenario": "publish while replaying", "events_per_second": replay_rate, "min": 20_000, "met": replay_rate >= 20_000.0 },
        { "scenario": "end-to-end lag", "p99_ms": lag.p99_ms, "p99_limit_ms": 200.0, "met": lag.p99_ms < 200.0 && missed == 0 },
    ]);
    for target in targets.as_array().into_iter().flatten() {
        let met = if target["met"] == true {
            "met"
        } else {
            "NOT met"
        };
        println!("target {}: {met}", target["scenario"]);
    }
    let path = write_results(
        "kafka.json",
        &json!({
            "benchmark": "kafka",
            "machine": machine(),
            "setup": format!("{events} UserCreated events in a throwaway durable PostgreSQL; tansu broker (memory storage) on 127.0.0.1; publisher in-process (idempotent producer, acks=all, batches of {}, {} in flight); lag: a new publisher on fresh topics, {WORKERS} HTTP writers at one credits increment per {}ms each on users drawn from all {events}, a consumer on the user topic in this process; {}s", projections::publisher::BATCH, projections::publisher::IN_FLIGHT, PERIOD.as_millis(), duration.as_secs()),
            "replay": { "events": events, "seconds": replay_seconds, "events_per_second": replay_rate },
            "end_to_end_lag": { "commands_per_second": commands_per_second, "lag_ms": lag, "not_received": missed },
            "targets": targets,
        }),
    )?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Waits until `topic` exists (the publisher creates it when it starts).
async fn kafka_topics_exist(brokers: &str, topic: &str) -> anyhow::Result<()> {
    let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || TopicReader::new(&brokers, &topic).map(|_| ())).await?
}
