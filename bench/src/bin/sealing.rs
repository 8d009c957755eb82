//! What sealing personal data costs (issue 17: goal, under 10% slower), in one run on one
//! durable PostgreSQL, each measure with sealing and without, alternating:
//! - **commands**: profile updates (a new bio each time: personal data, so sealed) decided and
//!   appended through the command pipeline by 64 concurrent tasks over 1,000 users, in this
//!   process (HTTP would add the same cost to both sides and hide the difference);
//! - **rebuild**: the read models rebuilt from the log those writes left (sealed ones opened
//!   with the people's keys, read from the database with a cold cache);
//! - the raw rate of single-row appends on the same server (pgbench), for scale.
//!
//! `BENCH_SECONDS` sets each command round's length (default 10); there are two rounds of each
//! side. Writes `bench/results/sealing.json`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use command_service::pipeline::execute;
use event_store::postgres::PostgresEventStore;
use event_store::sealed::{Keyring, Sealed};
use events::metadata::{Actor, CommandContext};
use events::store::EventStore;
use events::user::{ProfileChanges, UpdateUser, User, UserCommand};
use events::values::{Bio, SecretHash, UserId};
use serde_json::json;
use test_support::postgres::{ClusterSettings, PostgresCluster};
use userledger_bench::seeding::bench_user;
use userledger_bench::{drive, machine, pgbench, scenario_duration, write_results, Measurement};
use uuid::Uuid;

const USERS: usize = 1_000;
const CLIENTS: usize = 64;
const ROUNDS: usize = 2;
const MAX_OPERATIONS: u64 = 2_000_000;
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
const RAW_APPEND: &str = "INSERT INTO events (position, stream_id, revision, tx, event_id, event_type, data, metadata) VALUES ((pg_current_xact_id()::text::bigint << 16), 'raw-' || gen_random_uuid(), 0, pg_current_xact_id(), gen_random_uuid(), 'UserBanned', '{\"state\": true, \"reason\": \"benchmark raw append\"}', '{\"actor\": {\"id\": \"bench\", \"kind\": \"system\"}, \"correlationId\": \"0190a000-0000-7000-8000-000000000000\", \"schemaVersion\": 1}');";

/// One side of the comparison: a database, and the store the pipeline writes through.
struct Side {
    name: &'static str,
    url: String,
    store: Arc<dyn EventStore>,
    users: Arc<Vec<UserId>>,
    _database: test_support::TestDatabase,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let duration = scenario_duration(10);
    let cluster = match std::env::var("BENCH_DATABASE_URL") {
        Ok(url) => PostgresCluster::from_url(&url),
        Err(_) => PostgresCluster::start_throwaway(&ClusterSettings::durable())?,
    };
    let mut sides = Vec::new();
    for name in ["plain", "sealed"] {
        let database = cluster.create_database().await?;
        let raw = Arc::new(PostgresEventStore::connect(database.url(), 20).await?);
        let store: Arc<dyn EventStore> = if name == "sealed" {
            let keyring = Keyring::prepare(raw.pool().clone()).await?;
            Arc::new(Sealed::new(raw, keyring))
        } else {
            raw
        };
        let users = seed(&store).await?;
        sides.push(Side {
            name,
            url: database.url().to_owned(),
            store,
            users,
            _database: database,
        });
    }

    // In a database of its own: its rows must not enter either side's rebuild.
    let scratch = cluster.create_database().await?;
    PostgresEventStore::connect(scratch.url(), 1).await?;
    let raw = pgbench(RAW_APPEND, CLIENTS, scratch.url(), duration, "")?;
    println!("raw appends (pgbench): {:.0}/s", raw.per_second);
    let mut rounds: Vec<(&str, Measurement)> = Vec::new();
    for round in 0..ROUNDS {
        for side in &sides {
            let measured = updates(side, duration).await;
            println!(
                "round {} {:<6} updates: {:>8.0}/s p50 {:.1} ms p99 {:.1} ms, {} errors",
                round + 1,
                side.name,
                measured.per_second,
                measured.p50_ms,
                measured.p99_ms,
                measured.errors
            );
            rounds.push((side.name, measured));
        }
    }
    let mean = |name: &str| {
        let rates: Vec<f64> = rounds
            .iter()
            .filter(|(side, _)| *side == name)
            .map(|(_, m)| m.per_second)
            .collect();
        rates.iter().sum::<f64>() / rates.len() as f64
    };
    let (plain, sealed) = (mean("plain"), mean("sealed"));
    let command_cost = 1.0 - sealed / plain;
    println!(
        "updates: plain {plain:.0}/s, sealed {sealed:.0}/s: sealing costs {:.1}%",
        command_cost * 100.0
    );

    // Each side is rebuilt in alternating rounds, after a checkpoint, so that neither pays for
    // the other's writes; the sealed log is also rebuilt as stored (not opened: the read models
    // then hold sealed strings), which tells what the larger stored form costs apart from
    // opening it.
    let mut rebuilds = Vec::new();
    let runs = (0..ROUNDS)
        .flat_map(|_| [("plain", 0, false), ("sealed", 1, true)])
        .chain([("sealed, as stored", 1, false)]);
    for (name, side, open) in runs {
        let side = &sides[side];
        // The keys are read from the database, as a rebuild in its own process reads them.
        let raw = Arc::new(PostgresEventStore::connect(&side.url, 20).await?);
        sqlx::query("CHECKPOINT").execute(raw.pool()).await?;
        let store: Arc<dyn EventStore> = if open {
            let keyring = Keyring::prepare(raw.pool().clone()).await?;
            Arc::new(Sealed::new(raw, keyring))
        } else {
            raw
        };
        let rebuilt = projections::rebuild(store, &side.url, |_| {}).await?;
        let rate = rebuilt.events as f64 / rebuilt.elapsed.as_secs_f64();
        println!(
            "rebuild {name:<17}: {} events in {:.2} s, {rate:.0} events/s",
            rebuilt.events,
            rebuilt.elapsed.as_secs_f64()
        );
        rebuilds.push((name, rebuilt.events, rate));
    }
    let mean_rebuild = |name: &str| {
        let rates: Vec<f64> = rebuilds
            .iter()
            .filter(|(side, ..)| *side == name)
            .map(|(.., rate)| *rate)
            .collect();
        rates.iter().sum::<f64>() / rates.len() as f64
    };
    let rebuild_cost = 1.0 - mean_rebuild("sealed") / mean_rebuild("plain");
    println!(
        "rebuild: plain {:.0}/s, sealed {:.0}/s: sealing costs {:.1}%",
        mean_rebuild("plain"),
        mean_rebuild("sealed"),
        rebuild_cost * 100.0
    );
    let met = |cost: f64| if cost < 0.10 { "met" } else { "NOT MET" };
    println!(
        "target commands under 10% slower: {} ({:.1}%); rebuild under 10% slower: {} ({:.1}%)",
        met(command_cost),
        command_cost * 100.0,
        met(rebuild_cost),
        rebuild_cost * 100.0
    );

    let path = write_results(
        "sealing.json",
        &json!({
            "machine": machine(),
            "setup": format!("one throwaway durable PostgreSQL, a database per side; {USERS} users; profile updates (a new bio) through the command pipeline in this process, {CLIENTS} tasks, {} s a round, {ROUNDS} rounds a side, alternating; then `projections::rebuild` of each side's log, {ROUNDS} alternating rounds each after a CHECKPOINT (sealed: keys read from the database, cold cache)", duration.as_secs()),
            "raw_appends_pgbench": raw,
            "updates": rounds.iter().map(|(side, m)| json!({ "side": side, "measured": m })).collect::<Vec<_>>(),
            "updates_per_second": { "plain": plain, "sealed": sealed, "cost": command_cost, "ratio_to_raw": { "plain": plain / raw.per_second, "sealed": sealed / raw.per_second } },
            "rebuild": rebuilds.iter().map(|(side, events, rate)| json!({ "side": side, "events": events, "events_per_second": rate })).collect::<Vec<_>>(),
            "rebuild_per_second": { "plain": mean_rebuild("plain"), "sealed": mean_rebuild("sealed") },
            "rebuild_cost": rebuild_cost,
            "targets": { "commands_under_10_percent": command_cost < 0.10, "rebuild_under_10_percent": rebuild_cost < 0.10 },
        }),
    )?;
    println!("written to {}", path.display());
    Ok(())
}

/// Creates the users (with a fixed password hash: no argon2 here).
async fn seed(store: &Arc<dyn EventStore>) -> anyhow::Result<Arc<Vec<UserId>>> {
    let context = CommandContext::new(Uuid::now_v7(), Actor::system(), Utc::now());
    let mut ids = Vec::with_capacity(USERS);
    for chunk in (0..USERS).collect::<Vec<_>>().chunks(32) {
        let mut tasks = Vec::new();
        for &n in chunk {
            let (store, context) = (store.clone(), context.clone());
            tasks.push(tokio::spawn(async move {
                let id = UserId::new();
                let hash = SecretHash::parse(HASH).map_err(|e| anyhow::anyhow!(e.msg))?;
                let create = bench_user(id, &format!("sealing_{n}"), hash)?;
                execute::<User, _>(&*store, &id, &context, 1, |_| {
                    Ok(UserCommand::Create(create.clone()))
                })
                .await
                .map_err(|e| anyhow::anyhow!("seeding: {e:?}"))?;
                anyhow::Ok(id)
            }));
        }
        for task in tasks {
            ids.push(task.await??);
        }
    }
    Ok(Arc::new(ids))
}

/// Profile updates from [`CLIENTS`] tasks for `duration`, each a new bio of a user.
async fn updates(side: &Side, duration: Duration) -> Measurement {
    let (store, users) = (side.store.clone(), side.users.clone());
    drive(CLIENTS, duration, MAX_OPERATIONS, move |worker, i| {
        let (store, users) = (store.clone(), users.clone());
        async move {
            let id = users[(worker * 7919 + i as usize * 31) % users.len()];
            let bio = Bio::parse(&format!("a bio written by worker {worker}, update {i}"))
                .map_err(|e| anyhow::anyhow!(e.msg))?;
            let update = UpdateUser {
                profile: ProfileChanges {
                    bio: Some(Some(bio)),
                    ..ProfileChanges::default()
                },
                ..UpdateUser::default()
            };
            let context = CommandContext::new(Uuid::now_v7(), Actor::system(), Utc::now());
            execute::<User, _>(&*store, &id, &context, 16, |_| {
                Ok(UserCommand::Update(update.clone()))
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            Ok(())
        }
    })
    .await
}
