//! Append throughput and latency of the PostgreSQL event store, beside plain single-row INSERT
//! transactions on the same server in the same run.
//!
//! `cargo run --release -p userledger-bench --bin event_store`
//!
//! Starts a throwaway PostgreSQL with its durable defaults (fsync on) unless
//! `BENCH_DATABASE_URL` names a server; `BENCH_SECONDS` sets each scenario's length (default 8).
//! Prints a table and writes `bench/results/event_store.json`.

use std::sync::Arc;

use event_store::postgres::PostgresEventStore;
use events::store::{AppendRequest, EventStore, ExpectedRevision, NewEvent};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use userledger_bench::{drive, machine, scenario_duration, write_results};
use uuid::Uuid;

const WRITERS: [usize; 3] = [1, 16, 64];
/// Upper bound of operations per scenario, whatever its duration.
const MAX_OPERATIONS: u64 = 2_000_000;

fn payload(worker: usize, i: u64) -> serde_json::Value {
    json!({ "target": format!("user-{worker}"), "reason": "benchmark: repeated abuse of the service", "n": i })
}

fn new_event(worker: usize, i: u64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "UserBanned".into(),
        data: payload(worker, i),
        metadata: json!({ "actor": { "id": "bench", "kind": "system" }, "correlationId": Uuid::now_v7(), "schemaVersion": 1 }),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let duration = scenario_duration(8);
    let cluster_db = userledger_bench::durable_database().await?;
    let url = cluster_db.url().to_owned();
    let store = Arc::new(PostgresEventStore::connect(&url, 80).await?);
    let baseline_pool = PgPoolOptions::new()
        .max_connections(80)
        .connect(&url)
        .await?;
    sqlx::query(
        "CREATE TABLE baseline (id bigserial PRIMARY KEY, stream_id text NOT NULL, \
         data jsonb NOT NULL, metadata jsonb NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(&baseline_pool)
    .await?;

    let mut rows = Vec::new();
    println!(
        "PostgreSQL event store, single-event appends, {}s per scenario",
        duration.as_secs()
    );
    println!(
        "{:<9} {:>7} | {:>10} {:>8} {:>8} | {:>10} {:>8} {:>8} | {:>6}",
        "streams",
        "writers",
        "store/s",
        "p50 ms",
        "p99 ms",
        "insert/s",
        "p50 ms",
        "p99 ms",
        "ratio"
    );
    for writers in WRITERS {
        let pool = baseline_pool.clone();
        let baseline = drive(writers, duration, MAX_OPERATIONS, move |worker, i| {
            let pool = pool.clone();
            async move {
                let event = new_event(worker, i);
                sqlx::query("INSERT INTO baseline (stream_id, data, metadata) VALUES ($1, $2, $3)")
                    .bind(format!("user-{worker}-{i}"))
                    .bind(event.data)
                    .bind(event.metadata)
                    .execute(&pool)
                    .await?;
                Ok(())
            }
        })
        .await;
        for streams in ["distinct", "hot"] {
            let store = store.clone();
            let run = Uuid::now_v7().simple().to_string();
            let measured = drive(writers, duration, MAX_OPERATIONS, move |worker, i| {
                let store = store.clone();
                let stream = match streams {
                    "distinct" => format!("user-{run}-{worker}-{i}"),
                    _ => format!("user-{run}-hot"),
                };
                async move {
                    let expected = match streams {
                        "distinct" => ExpectedRevision::NoStream,
                        _ => ExpectedRevision::Any,
                    };
                    store
                        .append(AppendRequest::new(
                            stream,
                            expected,
                            vec![new_event(worker, i)],
                        ))
                        .await?;
                    Ok(())
                }
            })
            .await;
            let ratio = measured.per_second / baseline.per_second;
            println!(
                "{:<9} {:>7} | {:>10.0} {:>8.2} {:>8.2} | {:>10.0} {:>8.2} {:>8.2} | {:>6.2}",
                streams,
                writers,
                measured.per_second,
                measured.p50_ms,
                measured.p99_ms,
                baseline.per_second,
                baseline.p50_ms,
                baseline.p99_ms,
                ratio
            );
            rows.push(json!({
                "streams": streams,
                "writers": writers,
                "store": measured,
                "baseline": baseline.clone(),
                "ratio_store_to_baseline": ratio,
            }));
        }
    }

    let target = rows
        .iter()
        .find(|r| r["streams"] == "distinct" && r["writers"] == 64)
        .map(|r| r["ratio_store_to_baseline"].as_f64().unwrap_or(0.0))
        .unwrap_or(0.0);
    println!("target: store/baseline >= 0.70 at 64 writers, distinct streams: {target:.2}");
    let path = write_results(
        "event_store.json",
        &json!({
            "benchmark": "event_store",
            "machine": machine(),
            "postgres": "throwaway cluster, durable defaults (fsync on), shared_buffers 512MB",
            "seconds_per_scenario": duration.as_secs(),
            "event": "single UserBanned-sized event per append; distinct = a new stream per append (expected: no stream); hot = one stream (expected: any)",
            "baseline": "autocommit single-row INSERT of the same payload into a bigserial table",
            "results": rows,
            "target": { "writers": 64, "streams": "distinct", "min_ratio": 0.7, "ratio": target, "met": target >= 0.7 },
        }),
    )?;
    println!("wrote {}", path.display());
    Ok(())
}
