//! Commands over HTTP: commands/s and p50/p99 at 64 concurrent clients on 10,000 users, for
//! ban, credits increment, credits increments on four users only (hot streams), profile
//! update, and create-user (hashing included), beside the raw rate of single-row appends to the
//! same PostgreSQL measured by pgbench in the same run (before and after the commands; their
//! mean is the baseline) and this machine's raw argon2 hash rate, while two concurrent readers
//! time `GET /health`: on the API's port, and on the liveness port (`USERLEDGER_HEALTH_LISTEN`,
//! a thread of its own), whose p99 is the goal's. Then a flood (`overload`: credits from ten times the clients, whose
//! refusals are counted, with the service's peak resident memory) and `credits-after`, which
//! must run as fast as `credits` did before it.
//!
//! `cargo run --release -p userledger-bench --bin commands`
//!
//! The service runs as deployed, in a process of its own: `userledger command` (built in
//! release mode by this program), with its defaults but rate limits off, on a throwaway
//! durable PostgreSQL (or `BENCH_DATABASE_URL`); this process only generates load. The 10,000
//! users are seeded through the domain and the store directly (personal data sealed, as the
//! service stores it), with one precomputed password
//! hash, so that seeding does not spend minutes hashing. `BENCH_SECONDS` sets each scenario's
//! length (default 10); `BENCH_SERVICE_ENV` (`KEY=value,KEY=value`) adds settings of the
//! service's. Prints a table and writes `bench/results/commands.json`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use chrono::Utc;
use command_service::hashing::Hasher;
use command_service::pipeline::execute;
use event_store::postgres::PostgresEventStore;
use event_store::sealed::{Keyring, Sealed};
use events::metadata::{Actor, CommandContext};
use events::store::{AppendRequest, EventStore, ExpectedRevision, NewEvent};
use events::user::{User, UserCommand};
use events::values::UserId;
use serde_json::json;
use test_support::app::test_settings;
use userledger_bench::seeding::bench_user;
use userledger_bench::service::Service;
use userledger_bench::{
    admin_token, drive, http1, machine, pgbench, raw_hash_rate, scenario_duration, with_health,
    write_results, Measurement,
};
use uuid::Uuid;

const USERS: usize = 10_000;
const CLIENTS: usize = 64;
const MAX_OPERATIONS: u64 = 1_000_000;
/// The users `hot-credits` writes to.
const HOT_STREAMS: usize = 4;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let duration = scenario_duration(10);
    let database = userledger_bench::durable_database().await?;
    let store = Arc::new(PostgresEventStore::connect(database.url(), 100).await?);
    let settings = test_settings();
    println!("seeding {USERS} users ...");
    // Through the store the service uses, personal data sealed: each user gets their key at
    // creation, as through the API.
    let keyring = Keyring::prepare(store.pool().clone()).await?;
    let users = seed_users(Arc::new(Sealed::new(store.clone(), keyring))).await?;

    let service_env = std::env::var("BENCH_SERVICE_ENV").unwrap_or_default();
    let service_env: Vec<(&str, &str)> = service_env
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .collect();
    let service = Service::start("command", database.url(), &service_env).await?;
    let base = service.base.clone();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS * 2)
        .build()?;
    let token = admin_token(&http, &base).await?;

    let mut rows = Vec::new();
    println!(
        "{:<16} {:>10} {:>8} {:>8} {:>7} | {:>12}",
        "scenario", "per s", "p50 ms", "p99 ms", "errors", "health p99: API port / liveness port"
    );

    let raw_before = pgbench(RAW_APPEND, CLIENTS, database.url(), duration, "")?;
    print_row("raw (pgbench)", &raw_before, None);
    let grouped = store_appends(store.clone(), duration).await;
    print_row("store appends", &grouped, None);
    rows.push(json!({ "scenario": "store appends through the event store (64 writers, distinct streams, group commit)", "measured": grouped }));

    let hash_rate = raw_hash_rate(settings.hashing_workers, duration).await?;
    println!("{:<16} {:>10.1}", "raw argon2", hash_rate);
    rows.push(json!({ "scenario": "raw argon2id hashes (all cores)", "per_second": hash_rate }));

    let mut commands = Vec::new();
    let only = std::env::var("BENCH_SCENARIOS").ok();
    for scenario in [
        "ban",
        "credits",
        "hot-credits",
        "update",
        "overload",
        "credits-after",
        "create-user",
    ] {
        if only
            .as_deref()
            .is_some_and(|only| !only.split(',').any(|s| s == scenario))
        {
            continue;
        }
        let (measured, health) = measure(scenario, &service, &token, &users, duration).await;
        print_row(scenario, &measured, Some(&health));
        let (resident, peak) = service.resident_mib()?;
        println!(
            "{:<16} service resident {resident:.0} MiB (peak {peak:.0} MiB)",
            ""
        );
        commands.push((
            scenario,
            measured,
            health,
            json!({ "now": resident, "peak": peak }),
        ));
    }
    let raw_after = pgbench(RAW_APPEND, CLIENTS, database.url(), duration, "")?;
    print_row("raw (pgbench)", &raw_after, None);
    let raw = (raw_before.per_second + raw_after.per_second) / 2.0;
    println!("raw appends: {raw:.0}/s (the mean of before and after)");
    rows.push(json!({ "scenario": "raw single-row appends (pgbench, 64 clients, autocommit INSERT of an event-sized row)", "before": raw_before, "after": raw_after, "per_second": raw }));
    let commands: Vec<_> = commands
        .into_iter()
        .map(|(scenario, measured, health, resident)| {
            let baseline = if scenario == "create-user" {
                hash_rate
            } else {
                raw
            };
            let ratio = measured.per_second / baseline;
            rows.push(json!({
                "scenario": scenario,
                "measured": measured,
                "health_reader": health.api,
                "liveness_reader": health.liveness,
                "service_resident_mib_after": resident,
                "ratio": ratio,
                "ratio_to": if scenario == "create-user" { "raw argon2 hash rate" } else { "raw append rate (pgbench)" },
            }));
            (scenario, measured, health, ratio)
        })
        .collect();

    let mut targets = Vec::new();
    let credits_rate = commands
        .iter()
        .find(|(scenario, ..)| *scenario == "credits")
        .map(|(_, measured, ..)| measured.per_second);
    for (scenario, measured, health, ratio) in &commands {
        let healthy = health.liveness.p99_ms < 5.0;
        let health_figures = format!(
            "liveness p99 {:.2} ms (< 5; /health on the API's port {:.2} ms)",
            health.liveness.p99_ms, health.api.p99_ms
        );
        let (met, target) = match *scenario {
            // The flood: liveness stays fast; refusals (503) are expected.
            "overload" => (
                healthy,
                format!(
                    "{:.0}/s served, {} refused with 503, p99 {:.1} ms; {health_figures}",
                    measured.per_second, measured.errors, measured.p99_ms
                ),
            ),
            // After the flood, credits run as fast as before it.
            "credits-after" => {
                let before = credits_rate.unwrap_or(f64::NAN);
                (
                    measured.per_second >= 0.9 * before && measured.errors == 0 && healthy,
                    format!(
                        "{:.0}/s against {before:.0}/s before the flood (>= 0.9 of it); {health_figures}",
                        measured.per_second
                    ),
                )
            }
            _ => {
                let (min_ratio, p99_limit) = if *scenario == "create-user" {
                    (0.9, None)
                } else {
                    (0.5, Some(50.0))
                };
                (
                    *ratio >= min_ratio
                        && p99_limit.is_none_or(|limit| measured.p99_ms < limit)
                        && healthy
                        && measured.errors == 0,
                    format!(
                        "ratio {ratio:.2} (>= {min_ratio}){}; {health_figures}",
                        p99_limit.map_or(String::new(), |l| format!(
                            ", p99 {:.1} ms (< {l})",
                            measured.p99_ms
                        )),
                    ),
                )
            }
        };
        println!(
            "target {scenario}: {target}: {}",
            if met { "met" } else { "NOT met" }
        );
        targets.push(
            json!({ "scenario": scenario, "ratio": ratio, "target": target,
            "p99_ms": measured.p99_ms, "health_p99_ms": health.api.p99_ms,
            "liveness_p99_ms": health.liveness.p99_ms, "met": met }),
        );
    }

    let path = write_results(
        "commands.json",
        &json!({
            "benchmark": "commands",
            "machine": machine(),
            "setup": format!("userledger command in its own process (defaults, rate limits off{}) on a throwaway durable PostgreSQL; {USERS} seeded users; {CLIENTS} concurrent HTTP clients from this process; raw rate by pgbench -c {CLIENTS} -j 2 -M prepared on the same server, before and after; {}s per scenario", if service_env.is_empty() { String::new() } else { format!(", {service_env:?}") }, duration.as_secs()),
            "results": rows,
            "targets": targets,
        }),
    )?;
    println!("wrote {}", path.display());
    Ok(())
}

fn print_row(name: &str, m: &Measurement, health: Option<&Health>) {
    println!(
        "{:<16} {:>10.0} {:>8.2} {:>8.2} {:>7} | {:>12}",
        name,
        m.per_second,
        m.p50_ms,
        m.p99_ms,
        m.errors,
        health.map_or(String::new(), |h| format!(
            "{:.2} / {:.2} ms",
            h.api.p99_ms, h.liveness.p99_ms
        ))
    );
}

/// What the two `/health` readers measured during a scenario.
struct Health {
    /// On the API's port, behind the requests in flight.
    api: Measurement,
    /// On the liveness port.
    liveness: Measurement,
}

/// Creates the users through the domain and the store, 32 at a time.
async fn seed_users(store: Arc<dyn EventStore>) -> anyhow::Result<Arc<Vec<String>>> {
    let hash = Hasher::new(1, 1)
        .hash("benchmark-password")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let context = CommandContext::new(Uuid::now_v7(), Actor::system(), Utc::now());
    let run = &Uuid::now_v7().simple().to_string()[..8];
    let mut ids = Vec::with_capacity(USERS);
    for chunk in (0..USERS).collect::<Vec<_>>().chunks(32) {
        let mut tasks = Vec::new();
        for &n in chunk {
            let (store, hash, context) = (store.clone(), hash.clone(), context.clone());
            let name = format!("seed_{run}_{n}");
            tasks.push(tokio::spawn(async move {
                let id = UserId::new();
                let create = bench_user(id, &name, hash)?;
                execute::<User, _>(&*store, &id, &context, 1, |_| {
                    Ok(UserCommand::Create(create.clone()))
                })
                .await
                .map_err(|e| anyhow::anyhow!("seeding: {:?}", e))?;
                anyhow::Ok(id.to_string())
            }));
        }
        for task in tasks {
            ids.push(task.await??);
        }
    }
    Ok(Arc::new(ids))
}

/// One event-sized row in one autocommit INSERT, as an append of a ban writes it.
const RAW_APPEND: &str = "INSERT INTO events (position, stream_id, revision, tx, event_id, event_type, data, metadata) VALUES ((pg_current_xact_id()::text::bigint << 16), 'raw-' || gen_random_uuid(), 0, pg_current_xact_id(), gen_random_uuid(), 'UserBanned', '{\"state\": true, \"reason\": \"benchmark raw append\"}', '{\"actor\": {\"id\": \"bench\", \"kind\": \"system\"}, \"correlationId\": \"0190a000-0000-7000-8000-000000000000\", \"schemaVersion\": 1}');
";

/// Appends through the event store from this process: what its group commit can take.
async fn store_appends(store: Arc<PostgresEventStore>, duration: Duration) -> Measurement {
    let run = Uuid::now_v7().simple().to_string();
    drive(CLIENTS, duration, MAX_OPERATIONS, move |worker, i| {
        let store = store.clone();
        let stream = format!("raw-{run}-{worker}-{i}");
        async move {
            let event = NewEvent {
                event_id: Uuid::now_v7(),
                event_type: "UserBanned".into(),
                data: json!({ "state": true, "reason": "benchmark raw append" }),
                metadata: json!({ "actor": { "id": "bench", "kind": "system" }, "correlationId": Uuid::now_v7(), "schemaVersion": 1 }),
            };
            store
                .append(AppendRequest::new(stream, ExpectedRevision::NoStream, vec![event]))
                .await?;
            Ok(())
        }
    })
    .await
}

/// One scenario at 64 clients, with a sequential `/health` reader on each port beside it.
async fn measure(
    scenario: &'static str,
    service: &Service,
    token: &str,
    users: &Arc<Vec<String>>,
    duration: Duration,
) -> (Measurement, Health) {
    let base = service.base.as_str();
    let counter = Arc::new(AtomicU64::new(0));
    let run = Uuid::now_v7().simple().to_string()[..8].to_owned();
    let address = base.trim_start_matches("http://").to_owned();
    // `overload`: ten times the clients, as a flood; its refusals (503) count as errors.
    let clients = if scenario == "overload" {
        10 * CLIENTS
    } else {
        CLIENTS
    };
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        match http1::Connection::open(&address).await {
            Ok(connection) => connections.push(tokio::sync::Mutex::new(connection)),
            Err(error) => panic!("{scenario}: {error}"),
        }
    }
    let (connections, token, users) = (Arc::new(connections), token.to_owned(), users.clone());
    let load = drive(clients, duration, MAX_OPERATIONS, move |worker, _| {
        let n = counter.fetch_add(1, Ordering::Relaxed) as usize;
        // `hot-credits` writes to four users only: 16 clients per stream.
        let spread = if scenario == "hot-credits" {
            HOT_STREAMS
        } else {
            users.len()
        };
        let target = &users[n % spread];
        let (method, path, body) = match scenario {
            // The first pass over the users bans them, the second lifts the bans, ...
            "ban" => (
                "POST",
                "ban",
                json!({ "target": target, "state": (n / users.len()).is_multiple_of(2), "reason": "benchmark ban reason" }),
            ),
            "credits" | "hot-credits" | "overload" | "credits-after" => (
                "POST",
                "credits",
                json!({ "target": target, "type": "increment", "value": 1 }),
            ),
            "update" => (
                "PATCH",
                "update",
                json!({ "target": target, "bio": format!("benchmark bio {n}") }),
            ),
            _ => (
                "POST",
                "create",
                json!([{
                    "username": format!("new_{run}_{n}"),
                    "password": "benchmark-password",
                    "email": format!("new_{run}_{n}@example.com"),
                    "firstName": "Bench",
                    "lastName": "User",
                }]),
            ),
        };
        let request = http1::request(
            method,
            &format!("/user/admin-api/{path}"),
            &address,
            &token,
            Some(&body.to_string()),
        );
        let connections = connections.clone();
        async move {
            let answer = connections[worker].lock().await.send(&request).await?;
            if !(200..300).contains(&answer.status) {
                bail!(
                    "{scenario}: {} {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body)
                );
            }
            Ok(())
        }
    });
    let probes = [
        format!("{base}/health"),
        format!("{}/health", service.liveness),
    ];
    let (measured, mut health) = with_health(&probes, load).await;
    let liveness = health.pop().expect("two readers");
    let api = health.pop().expect("two readers");
    (measured, Health { api, liveness })
}
