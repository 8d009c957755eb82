//! Reads over HTTP on a read model of 1,000,000 users (a page of `list`, `retrieve-user-info`,
//! `/user/me`, and a search), beside the raw rate of the same statements through pgbench on the
//! same PostgreSQL in the same run; projection lag while 1,000
//! commands/s are written; and the full rebuild rate of the 1,000,000-event log.
//!
//! `cargo run --release -p userledger-bench --bin queries`
//!
//! Starts a throwaway durable PostgreSQL (or uses `BENCH_DATABASE_URL`), writes 1,000,000
//! `UserCreated` events straight into the log with SQL (ids derived from a counter, so pgbench
//! can pick random ones), rebuilds the read models from them (`userledger rebuild`'s code, timed),
//! then runs the service in this process with its projectors. `BENCH_SECONDS` sets each
//! scenario's length (default 10), `BENCH_USERS` the directory size (default 1,000,000).
//! Prints a table and writes `bench/results/queries.json`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use event_store::postgres::PostgresEventStore;
use events::store::{EventStore, Position};
use serde_json::json;
use userledger_bench::seeding::{seed, user_id};
use userledger_bench::{
    admin_token, drive, http1, machine, scenario_duration, summarize, write_results, Measurement,
};

const CLIENTS: usize = 64;
/// Clients of the `/user/me` and search scenarios (issue 14's figure).
const SEARCH_CLIENTS: usize = 16;
const MAX_OPERATIONS: u64 = 5_000_000;
const SQL_USER_ID: &str = "('01900000-0000-7000-8000-' || lpad(to_hex(:n::bigint), 12, '0'))::uuid";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let duration = scenario_duration(10);
    let users: u64 = std::env::var("BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let database = userledger_bench::durable_database().await?;
    let url = database.url().to_owned();
    let store = Arc::new(PostgresEventStore::connect(&url, 100).await?);

    println!("seeding {users} users into the log ...");
    let seeded = Instant::now();
    seed(&store, users).await?;
    println!("seeded in {:.1}s", seeded.elapsed().as_secs_f64());

    println!("rebuilding the read models from the log ...");
    let log: Arc<dyn EventStore> = store.clone();
    // When the replay of pages ended: what follows is index builds, logging and the swap.
    let rebuild_started = Instant::now();
    let mut replayed_after = Duration::ZERO;
    let mut replayed = 0;
    let rebuilt = projections::rebuild(log, &url, |events| {
        if events > replayed {
            replayed = events;
            replayed_after = rebuild_started.elapsed();
        }
    })
    .await?;
    let rebuild_rate = rebuilt.events as f64 / rebuilt.elapsed.as_secs_f64();
    println!(
        "rebuilt {} events in {:.1}s ({:.1}s replaying pages, {:.1}s finishing and swapping): {:.0} events/s",
        rebuilt.events,
        rebuilt.elapsed.as_secs_f64(),
        replayed_after.as_secs_f64(),
        (rebuilt.elapsed - replayed_after.min(rebuilt.elapsed)).as_secs_f64(),
        rebuild_rate
    );
    sqlx::query("ANALYZE read_models.users")
        .execute(store.pool())
        .await?;

    let (base, read_models, _stop) = userledger_bench::serve_with_projectors(&store, &url).await?;
    let users_progress = read_models.progress["users"].clone();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS * 2)
        .build()?;
    let token = admin_token(&http, &base).await?;

    println!(
        "{:<22} {:>10} {:>8} {:>8} | {:>10} {:>8} {:>8} | {:>6}",
        "query", "http/s", "p50 ms", "p99 ms", "select/s", "p50 ms", "p99 ms", "ratio"
    );
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    // (read, clients, p99 limit in ms)
    for (query, clients, p99_limit) in [
        ("retrieve-user-info", CLIENTS, 10.0),
        ("list", CLIENTS, 10.0),
        ("me", SEARCH_CLIENTS, 10.0),
        ("search", SEARCH_CLIENTS, 20.0),
        ("search-infix", SEARCH_CLIENTS, 20.0),
    ] {
        let measured = http_reads(query, clients, &base, &token, users, duration).await?;
        let raw = pgbench(query, clients, &url, users, duration)?;
        let ratio = measured.per_second / raw.per_second;
        println!(
            "{:<22} {:>10.0} {:>8.2} {:>8.2} | {:>10.0} {:>8.2} {:>8.2} | {:>6.2}",
            query,
            measured.per_second,
            measured.p50_ms,
            measured.p99_ms,
            raw.per_second,
            raw.p50_ms,
            raw.p99_ms,
            ratio
        );
        let met = ratio >= 0.5 && measured.p99_ms < p99_limit;
        targets.push(json!({ "scenario": query, "clients": clients, "ratio": ratio, "min_ratio": 0.5, "p99_ms": measured.p99_ms, "p99_limit_ms": p99_limit, "met": met }));
        rows.push(
            json!({ "query": query, "clients": clients, "http": measured, "raw_select_pgbench": raw, "ratio": ratio }),
        );
    }

    let (lag, commands) =
        projection_lag(&http, &base, &token, users, duration, users_progress).await;
    println!(
        "projection lag at {:.0} commands/s: p50 {:.1} ms, p99 {:.1} ms",
        commands, lag.p50_ms, lag.p99_ms
    );
    targets.push(json!({ "scenario": "projection lag", "p99_ms": lag.p99_ms, "p99_limit_ms": 100.0, "met": lag.p99_ms < 100.0 }));
    targets.push(json!({ "scenario": "rebuild", "events_per_second": rebuild_rate, "min": 20_000, "met": rebuild_rate >= 20_000.0 }));
    for target in &targets {
        println!(
            "target {}: {}",
            target["scenario"],
            if target["met"] == true {
                "met"
            } else {
                "NOT met"
            }
        );
    }

    let path = write_results(
        "queries.json",
        &json!({
            "benchmark": "queries",
            "machine": machine(),
            "setup": format!("{users} users in the read model; service in-process with its projectors on a throwaway durable PostgreSQL; {CLIENTS} concurrent HTTP clients ({SEARCH_CLIENTS} for me and search); pgbench -c <clients> -j 2 -M prepared on the same server; {}s per scenario", duration.as_secs()),
            "reads": rows,
            "projection_lag": { "commands_per_second": commands, "lag_ms": lag },
            "rebuild": { "events": rebuilt.events, "seconds": rebuilt.elapsed.as_secs_f64(), "replaying_pages_seconds": replayed_after.as_secs_f64(), "events_per_second": rebuild_rate },
            "targets": targets,
        }),
    )?;
    println!("wrote {}", path.display());
    Ok(())
}

async fn http_reads(
    query: &'static str,
    clients: usize,
    base: &str,
    token: &str,
    users: u64,
    duration: Duration,
) -> anyhow::Result<Measurement> {
    let address = base.trim_start_matches("http://").to_owned();
    let connections = http1::open_all(&address, clients).await?;
    let token = token.to_owned();
    Ok(drive(clients, duration, MAX_OPERATIONS, move |worker, _| {
        let connections = connections.clone();
        let n = 1 + rand_below(users.saturating_sub(100).max(1));
        let request = match query {
            "list" => http1::request(
                "GET",
                &format!("/user/admin-api/list?limit=100&offset={}", user_id(n)),
                &address,
                &token,
                None,
            ),
            "me" => http1::request("GET", "/user/me", &address, &token, None),
            "search" | "search-infix" => http1::request(
                "POST",
                "/user/admin-api/search",
                &address,
                &token,
                Some(&format!(r#"{{"query":"{}"}}"#, search_term(query, n))),
            ),
            _ => http1::request(
                "POST",
                "/user/admin-api/retrieve-user-info",
                &address,
                &token,
                Some(&format!(r#"{{"targets":["{}"]}}"#, user_id(n))),
            ),
        };
        async move {
            let answer = connections[worker].lock().await.send(&request).await?;
            if answer.status != 200 {
                bail!("{query}: {}", answer.status);
            }
            // Checked, not parsed: the load generator shares the cores with the service.
            if !answer.body.windows(5).any(|w| w == b"\"_id\"") {
                bail!("{query}: no user in the answer");
            }
            Ok(())
        }
    })
    .await)
}

/// What `scenario` searches for to find the ten seeded users (usernames `u` and eight digits)
/// that share `n`'s first seven digits: `search` the start of their usernames (the word
/// index), `search-infix` the digits alone, which begin no word (the trigram index).
fn search_term(scenario: &str, n: u64) -> String {
    match scenario {
        "search" => format!("u{:07}", n / 10),
        _ => format!("{:07}", n / 10),
    }
}

fn rand_below(n: u64) -> u64 {
    use rand::Rng;
    rand::rng().random_range(0..n)
}

/// The same SELECTs as the routes make, through pgbench on the same server.
fn pgbench(
    query: &str,
    clients: usize,
    url: &str,
    users: u64,
    duration: Duration,
) -> anyhow::Result<Measurement> {
    let sql = match query {
        "list" => format!(
            "\\set n random(1, {})\nSELECT document::text FROM read_models.users WHERE id > {SQL_USER_ID} ORDER BY id LIMIT 100;\n",
            users.saturating_sub(100).max(1)
        ),
        "me" => format!(
            "\\set n random(1, {users})\nSELECT document::text FROM read_models.users WHERE id = ANY(ARRAY[{SQL_USER_ID}]);\n"
        ),
        // The route's own statement, on a connection set as the route's are (`PGOPTIONS`
        // below), the query as `search_term` makes it.
        "search" | "search-infix" => {
            let (statement, _) = query_service::search::statement(
                &search_term(query, 1),
                query_service::search::Searcher::Directory,
            );
            let term = match query {
                "search" => "('u' || lpad((:n / 10)::text, 7, '0'))",
                _ => "lpad((:n / 10)::text, 7, '0')",
            };
            let statement = statement
                .replace("$1", &format!("('''' || {term} || ''':*')"))
                .replace("$2", term)
                .replace("$3", "NULL::uuid")
                .replace("$4", &query_service::search::RESULTS.to_string())
                .replace("$5", &format!("('%' || {term} || '%')"))
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            format!("\\set n random(1, {users})\n{statement};\n")
        }
        _ => format!(
            "\\set n random(1, {users})\nSELECT id, document::text FROM read_models.users WHERE id = ANY(ARRAY[{SQL_USER_ID}]);\n"
        ),
    };
    let settings: Vec<String> = query_service::search::SETTINGS
        .iter()
        .map(|(name, value)| format!("-c {name}={value}"))
        .collect();
    let options = match query.starts_with("search") {
        true => settings.join(" "),
        false => String::new(),
    };
    userledger_bench::pgbench(&sql, clients, url, duration, &options)
}

/// Credits increments at about 1,000 a second for `duration`; for each, the time from its
/// answer until the users read model has applied it.
async fn projection_lag(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    users: u64,
    duration: Duration,
    progress: tokio::sync::watch::Receiver<projections::runtime::Progress>,
) -> (Measurement, f64) {
    const WORKERS: u64 = 20;
    const PERIOD: Duration = Duration::from_millis(20); // 20 workers x 50/s = 1,000/s
    let lags = Arc::new(Mutex::new(Vec::new()));
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let (http, base, token) = (http.clone(), base.to_owned(), token.to_owned());
            let (lags, sent, progress) = (lags.clone(), sent.clone(), progress.clone());
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(PERIOD);
                let mut i = 0u64;
                while started.elapsed() < duration {
                    ticks.tick().await;
                    i += 1;
                    let target = user_id(1 + (worker * 7919 + i * WORKERS) % users);
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
                    let position = response
                        .headers()
                        .get(http_edge::envelope::CONSISTENCY_TOKEN)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<Position>().ok());
                    let Some(position) = position else { continue };
                    sent.fetch_add(1, Ordering::Relaxed);
                    let (lags, mut progress) = (lags.clone(), progress.clone());
                    tokio::spawn(async move {
                        let reached = tokio::time::timeout(
                            Duration::from_secs(10),
                            progress.wait_for(|p| p.position.is_some_and(|at| at >= position)),
                        )
                        .await;
                        if matches!(reached, Ok(Ok(_))) {
                            lags.lock().unwrap().push(answered.elapsed());
                        }
                    });
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    let rate = sent.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let lags = lags.lock().unwrap().clone();
    let count = lags.len();
    let mut measured = summarize(lags, 0, duration);
    measured.operations = count as u64;
    (measured, rate)
}
