//! The social graph at scale: a user with 100,000 followers. A page of their followers (limit
//! 100, at random deep offsets) read over HTTP by 16 clients, beside pgbench running the same
//! SELECT on the same PostgreSQL in the same run; and follows and unfollows of that user by 64
//! people at once, beside pgbench's raw rate of single-row appends (as `commands` measures it).
//!
//! `cargo run --release -p userledger-bench --bin social`
//!
//! Starts a throwaway durable PostgreSQL (or uses `BENCH_DATABASE_URL`), writes 100,000
//! `UserCreated` events and 100,000 `Followed` events with SQL (follow ids derived from a
//! counter, so pgbench can pick offsets), rebuilds the read models, then serves the service in
//! this process with its projectors. `BENCH_SECONDS` sets each scenario's length (default
//! 10). Prints a table and writes `bench/results/social.json`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use chrono::Utc;
use command_service::hashing::Hasher;
use command_service::pipeline::execute;
use event_store::postgres::PostgresEventStore;
use events::metadata::{encode_all, Actor, CommandContext};
use events::social::{Edge, SocialEvent};
use events::store::EventStore;
use events::user::{User, UserCommand};
use events::values::UserId;
use serde_json::json;
use userledger_bench::seeding::{bench_user, seed, user_id};
use userledger_bench::{
    drive, http1, machine, pgbench, scenario_duration, user_token, write_results, Measurement,
};
use uuid::Uuid;

const FOLLOWERS: u64 = 100_000;
const PAGE_CLIENTS: usize = 16;
const WRITE_CLIENTS: usize = 64;
const MAX_OPERATIONS: u64 = 2_000_000;
const PASSWORD: &str = "benchmark-password";
/// The id of follow `n` (1-based), in `n` order, computable in SQL too.
const SQL_FOLLOW_ID: &str =
    "('01910000-0000-7000-8000-' || lpad(to_hex(:n::bigint), 12, '0'))::uuid";
/// One event-sized row in one autocommit INSERT (the `commands` benchmark's raw append).
const RAW_APPEND: &str = "INSERT INTO events (position, stream_id, revision, tx, event_id, event_type, data, metadata) VALUES ((pg_current_xact_id()::text::bigint << 16), 'raw-' || gen_random_uuid(), 0, pg_current_xact_id(), gen_random_uuid(), 'Followed', '{\"source\": \"01900000-0000-7000-8000-000000000001\", \"target\": \"01900000-0000-7000-8000-000000000002\"}', '{\"actor\": {\"id\": \"bench\", \"kind\": \"system\"}, \"correlationId\": \"01900000-0000-7000-8000-000000000003\", \"schemaVersion\": 1}');\n";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let duration = scenario_duration(10);
    let database = userledger_bench::durable_database().await?;
    let url = database.url().to_owned();
    let store = Arc::new(PostgresEventStore::connect(&url, 100).await?);

    println!("seeding {FOLLOWERS} users and their follows of one user ...");
    seed(&store, FOLLOWERS).await?;
    let star = register(&store, "bench_star").await?;
    let viewer = register(&store, "bench_viewer").await?;
    let mut fans = Vec::new();
    for i in 0..WRITE_CLIENTS {
        let name = format!("bench_fan{i}");
        fans.push((register(&store, &name).await?, name));
    }
    seed_follows(&store, star).await?;
    let log: Arc<dyn EventStore> = store.clone();
    projections::rebuild(log, &url, |_| {}).await?;
    sqlx::query("ANALYZE read_models.follows")
        .execute(store.pool())
        .await?;

    let (base, _read_models, _stop) = userledger_bench::serve_with_projectors(&store, &url).await?;
    let http = reqwest::Client::new();
    let viewer_token = user_token(&http, &base, "bench_viewer", PASSWORD).await?;
    let mut fan_tokens = Vec::new();
    for (_, name) in &fans {
        fan_tokens.push(user_token(&http, &base, name, PASSWORD).await?);
    }

    println!(
        "{:<18} {:>10} {:>8} {:>8} | {:>10} {:>8} {:>8} | {:>6}",
        "scenario", "http/s", "p50 ms", "p99 ms", "raw/s", "p50 ms", "p99 ms", "ratio"
    );
    let page = followers_pages(&base, &viewer_token, star, duration).await?;
    let page_sql = format!(
        "\\set n random(100, {FOLLOWERS})\n\
         SELECT f.id, f.created_at, u.document::text,
                EXISTS (SELECT 1 FROM read_models.follows v
                         WHERE v.source = '{viewer}' AND v.target = u.id AND v.approved)
           FROM read_models.follows f JOIN read_models.users u ON u.id = f.source
          WHERE f.target = '{star}' AND f.approved AND f.id < {SQL_FOLLOW_ID}
            AND NOT EXISTS (SELECT 1 FROM read_models.blocks b
                             WHERE b.source = f.source AND b.target = '{viewer}')
          ORDER BY f.id DESC LIMIT 100;\n"
    );
    let raw_page = pgbench(&page_sql, PAGE_CLIENTS, &url, duration, "")?;
    row("followers page", &page, &raw_page);

    let writes = follows_and_unfollows(&base, &fan_tokens, star, duration).await?;
    let raw_append = pgbench(RAW_APPEND, WRITE_CLIENTS, &url, duration, "")?;
    row("follow/unfollow", &writes, &raw_append);

    let targets = json!([
        { "scenario": "followers page", "ratio": page.per_second / raw_page.per_second, "min_ratio": 0.5, "met": page.per_second / raw_page.per_second >= 0.5 && page.errors == 0 },
        { "scenario": "follow/unfollow", "ratio": writes.per_second / raw_append.per_second, "min_ratio": 0.5, "met": writes.per_second / raw_append.per_second >= 0.5 && writes.errors == 0 },
    ]);
    for target in targets.as_array().into_iter().flatten() {
        println!(
            "target {}: ratio {:.2} (>= 0.5): {}",
            target["scenario"],
            target["ratio"].as_f64().unwrap_or_default(),
            if target["met"] == true {
                "met"
            } else {
                "NOT met"
            }
        );
    }
    let path = write_results(
        "social.json",
        &json!({
            "benchmark": "social",
            "machine": machine(),
            "setup": format!("one user with {FOLLOWERS} followers; service in-process with its projectors on a throwaway durable PostgreSQL; {PAGE_CLIENTS} clients reading followers pages (limit 100, random offsets) and pgbench running the same SELECT; {WRITE_CLIENTS} people following and unfollowing the user and pgbench's single-row INSERT with as many clients; {}s per scenario", duration.as_secs()),
            "followers_page": { "http": page, "raw_select_pgbench": raw_page },
            "follow_unfollow": { "http": writes, "raw_append_pgbench": raw_append },
            "targets": targets,
        }),
    )?;
    println!("wrote {}", path.display());
    Ok(())
}

fn row(name: &str, measured: &Measurement, raw: &Measurement) {
    println!(
        "{:<18} {:>10.0} {:>8.2} {:>8.2} | {:>10.0} {:>8.2} {:>8.2} | {:>6.2}  ({} errors)",
        name,
        measured.per_second,
        measured.p50_ms,
        measured.p99_ms,
        raw.per_second,
        raw.p50_ms,
        raw.p99_ms,
        measured.per_second / raw.per_second,
        measured.errors
    );
}

/// A user who can sign in with [`PASSWORD`], created through the domain.
async fn register(store: &Arc<PostgresEventStore>, name: &str) -> anyhow::Result<UserId> {
    let id = UserId::new();
    let create = bench_user(id, name, Hasher::new(1, 1).hash(PASSWORD).await?)?;
    let context = CommandContext::new(Uuid::now_v7(), Actor::system(), Utc::now());
    execute::<User, _>(&**store, &id, &context, 1, |_| {
        Ok(UserCommand::Create(create.clone()))
    })
    .await
    .map_err(|e| anyhow::anyhow!("creating {name}: {e:?}"))?;
    Ok(id)
}

/// Seeded user `n` follows `star`, for every `n`: one `Followed` event each, on the pair's
/// relation stream, written with SQL from one event the domain encoded.
async fn seed_follows(store: &PostgresEventStore, star: UserId) -> anyhow::Result<()> {
    let template = UserId::from_uuid(Uuid::parse_str(&user_id(0))?);
    let event = SocialEvent::Followed(Edge {
        source: template,
        target: star,
    });
    let context = CommandContext::new(Uuid::now_v7(), Actor::system(), Utc::now());
    let encoded = encode_all(&[event], &context)?;
    let (data, metadata) = (encoded[0].data.to_string(), encoded[0].metadata.to_string());
    // Seeded ids sort before the star's (a UUIDv7 of now): the pair's stream names them first.
    sqlx::query(
        "INSERT INTO events (position, stream_id, revision, tx, event_id, event_type, data, metadata)
         SELECT (pg_current_xact_id()::text::bigint << 16) + g - 1,
                'relation-' || u.id || '-' || $3, 0, pg_current_xact_id(),
                ('01910000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, 'Followed',
                replace($1, $4, u.id)::jsonb, $2::jsonb
           FROM generate_series(1, $5::bigint) g,
                LATERAL (SELECT '01900000-0000-7000-8000-' || lpad(to_hex(g), 12, '0') AS id) u",
    )
    .bind(&data)
    .bind(&metadata)
    .bind(star.to_string())
    .bind(user_id(0))
    .bind(FOLLOWERS as i64)
    .execute(store.pool())
    .await?;
    sqlx::query("ANALYZE events").execute(store.pool()).await?;
    Ok(())
}

fn rand_between(low: u64, high: u64) -> u64 {
    use rand::Rng;
    rand::rng().random_range(low..=high)
}

/// `GET /user/{star}/followers?limit=100&offset=<follow id>` at random deep offsets.
async fn followers_pages(
    base: &str,
    token: &str,
    star: UserId,
    duration: Duration,
) -> anyhow::Result<Measurement> {
    let address = base.trim_start_matches("http://").to_owned();
    let connections = http1::open_all(&address, PAGE_CLIENTS).await?;
    let token = token.to_owned();
    Ok(
        drive(PAGE_CLIENTS, duration, MAX_OPERATIONS, move |worker, _| {
            let n = rand_between(100, FOLLOWERS);
            let offset = format!("01910000-0000-7000-8000-{n:012x}");
            let request = http1::request(
                "GET",
                &format!("/user/{star}/followers?limit=100&offset={offset}"),
                &address,
                &token,
                None,
            );
            let connections = connections.clone();
            async move {
                let answer = connections[worker].lock().await.send(&request).await?;
                if answer.status != 200 {
                    bail!("followers page: {}", answer.status);
                }
                // 99 or 100 records: checked by counting, not parsed (and with a fast search:
                // the load generator shares the machine with the service).
                let records = memchr::memmem::find_iter(&answer.body, b"\"source\":").count();
                if records < 99 {
                    bail!("followers page: {records} records");
                }
                Ok(())
            }
        })
        .await,
    )
}

/// Each of the fans follows and unfollows the star in turn.
async fn follows_and_unfollows(
    base: &str,
    tokens: &[String],
    star: UserId,
    duration: Duration,
) -> anyhow::Result<Measurement> {
    let address = base.trim_start_matches("http://").to_owned();
    let connections = http1::open_all(&address, tokens.len()).await?;
    let tokens = Arc::new(tokens.to_vec());
    let turns: Arc<Vec<AtomicU64>> =
        Arc::new((0..tokens.len()).map(|_| AtomicU64::new(0)).collect());
    let body = json!({ "target": star.to_string() }).to_string();
    Ok(
        drive(tokens.len(), duration, MAX_OPERATIONS, move |worker, _| {
            let turn = turns[worker].fetch_add(1, Ordering::Relaxed);
            let route = if turn.is_multiple_of(2) {
                "follow"
            } else {
                "unfollow"
            };
            let request = http1::request(
                "POST",
                &format!("/user/{route}"),
                &address,
                &tokens[worker],
                Some(&body),
            );
            let connections = connections.clone();
            async move {
                let answer = connections[worker].lock().await.send(&request).await?;
                if answer.status != 200 {
                    bail!(
                        "{route}: {} {}",
                        answer.status,
                        String::from_utf8_lossy(&answer.body)
                    );
                }
                Ok(())
            }
        })
        .await,
    )
}
