//! Shared pieces of the benchmark programs: a bounded closed-loop load driver and the result
//! files under `bench/results/`.
//!
//! # Layout
//! - this file: [`Measurement`], the load driver, the durable PostgreSQL the programs measure,
//!   and writing results; [`http1`]: a lean kept-alive HTTP/1.1 client (as cheap as pgbench's
//!   libpq); [`seeding`]: users written straight into the log; [`service`]: the service in a
//!   process of its own; [`pgbench`]: the raw rate of SQL on the same server.
//! - `src/bin/`: one program per target: `event_store`, `commands`, `queries`, `kafka`.

pub mod http1;
pub mod seeding;
pub mod service;

/// The allocator the service binary uses (`src/main.rs`), so that the programs that run the
/// service in their own process measure it as deployed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

/// One measured load: operations per second and latency percentiles.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub operations: u64,
    pub errors: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Runs `concurrency` workers, each calling `operation(worker, i)` in a loop, until `duration`
/// has passed or `max_operations` have been made in all. Bounded in time and count.
pub async fn drive<F, Fut>(
    concurrency: usize,
    duration: Duration,
    max_operations: u64,
    operation: F,
) -> Measurement
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let operation = Arc::new(operation);
    let per_worker = max_operations.div_ceil(concurrency as u64);
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let operation = operation.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                for i in 0..per_worker {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let begun = Instant::now();
                    match operation(worker, i).await {
                        Ok(()) => latencies.push(begun.elapsed()),
                        Err(_) => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (mut l, e) = worker.await.expect("a benchmark worker panicked");
        latencies.append(&mut l);
        errors += e;
    }
    summarize(latencies, errors, started.elapsed())
}

/// Figures of a set of latencies measured over `elapsed`.
pub fn summarize(mut latencies: Vec<Duration>, errors: u64, elapsed: Duration) -> Measurement {
    let seconds = elapsed.as_secs_f64();
    latencies.sort();
    Measurement {
        operations: latencies.len() as u64,
        errors,
        seconds,
        per_second: latencies.len() as f64 / seconds,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
    }
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1_000.0
}

/// Writes `bench/results/<name>` (pretty JSON) and returns its path.
pub fn write_results(name: &str, value: &impl Serialize) -> anyhow::Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(value)? + "\n")?;
    Ok(path)
}

/// A short description of the machine the figures come from.
pub fn machine() -> serde_json::Value {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_default();
    serde_json::json!({ "cpus": cpus, "cpu": model })
}

/// A database of its own on `BENCH_DATABASE_URL`'s server, or on a throwaway PostgreSQL with
/// durable settings (fsync on), removed when the program ends.
pub async fn durable_database() -> anyhow::Result<test_support::TestDatabase> {
    use test_support::postgres::{ClusterSettings, PostgresCluster};
    let cluster = match std::env::var("BENCH_DATABASE_URL") {
        Ok(url) => PostgresCluster::from_url(&url),
        Err(_) => PostgresCluster::start_throwaway(&ClusterSettings::durable())?,
    };
    cluster.create_database().await
}

/// `BENCH_SECONDS` (default `default`): how long each scenario runs.
pub fn scenario_duration(default: u64) -> Duration {
    let seconds = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    Duration::from_secs(seconds)
}

/// A delegated token of the test settings' bootstrap super_admin, from the service at `base`.
pub async fn admin_token(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    use test_support::app::{ADMIN_PASSWORD, ADMIN_USERNAME};
    user_token(http, base, ADMIN_USERNAME, ADMIN_PASSWORD).await
}

/// A delegated token of `username` (password grant through the test settings' client).
pub async fn user_token(
    http: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
) -> anyhow::Result<String> {
    use test_support::app::{CLIENT_ID, CLIENT_SECRET};
    let answer: serde_json::Value = http
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await?
        .json()
        .await?;
    match answer["access_token"].as_str() {
        Some(token) => Ok(token.to_owned()),
        None => anyhow::bail!("no token for {username}: {answer}"),
    }
}

/// The service with its projectors, as `userledger serve` runs it, in this process on a free
/// 127.0.0.1 port, with the test settings: its base URL and its read models (which run until
/// they are dropped with their stop signal, the second value).
pub async fn serve_with_projectors(
    store: &Arc<event_store::postgres::PostgresEventStore>,
    url: &str,
) -> anyhow::Result<(
    String,
    projections::ReadModels,
    tokio::sync::watch::Sender<bool>,
)> {
    use test_support::app::test_settings;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let read_models = projections::spawn_read_models(store.clone(), url, stopped);
    let app = command_service::Application::build_with(
        "127.0.0.1:0".parse()?,
        store.clone(),
        Some(store.pool().clone()),
        test_settings(),
        query_service::router_with_projectors(
            query_service::AppState::new(
                store.clone(),
                Some(store.pool().clone()),
                test_settings().subscription_tiers,
            ),
            query_service::ProjectorsHere::new(read_models.progress.clone()),
        ),
    )
    .await?;
    let base = format!("http://{}", app.local_addr()?);
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    Ok((base, read_models, stop))
}

/// This machine's raw argon2id rate (hashes a second, with the service's parameters) on
/// `workers` threads: what every password check costs.
pub async fn raw_hash_rate(workers: usize, duration: Duration) -> anyhow::Result<f64> {
    let hasher = command_service::hashing::Hasher::new(workers, workers * 4);
    let measured = drive(workers, duration, 1_000_000, move |_, _| {
        let hasher = hasher.clone();
        async move {
            hasher
                .hash("benchmark-password")
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(())
        }
    })
    .await;
    if measured.operations == 0 {
        anyhow::bail!("no hash finished");
    }
    Ok(measured.per_second)
}

/// Runs `load` with a sequential reader of each of `probes` (URLs of `/health`) beside it,
/// every 2 ms for as long as the load runs: the load's figures and each reader's. A reader is
/// a prober from outside, as an orchestrator's is: a thread and runtime of its own, so that
/// its figures are the service's latency and not this load generator's own queue.
pub async fn with_health(
    probes: &[String],
    load: impl Future<Output = Measurement>,
) -> (Measurement, Vec<Measurement>) {
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = probes
        .iter()
        .map(|url| {
            let (url, done) = (url.clone(), done.clone());
            std::thread::spawn(move || probe(&url, &done))
        })
        .collect();
    let measured = load.await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut health = Vec::new();
    for reader in readers {
        let joined = tokio::task::spawn_blocking(move || reader.join()).await;
        health.push(joined.ok().and_then(Result::ok).unwrap_or(Measurement {
            operations: 0,
            errors: 1,
            seconds: 0.0,
            per_second: 0.0,
            p50_ms: f64::NAN,
            p99_ms: f64::NAN,
        }));
    }
    (measured, health)
}

/// `GET url` one after the other, 2 ms apart, until `done`: the latencies.
fn probe(url: &str, done: &std::sync::atomic::AtomicBool) -> Measurement {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for a health reader");
    runtime.block_on(async move {
        let http = reqwest::Client::new();
        let started = Instant::now();
        let mut latencies = Vec::new();
        let mut errors = 0;
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            let begun = Instant::now();
            match http.get(url).send().await {
                Ok(response) if response.status().is_success() => latencies.push(begun.elapsed()),
                _ => errors += 1,
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        summarize(latencies, errors, started.elapsed())
    })
}

/// Serves the write side over `store` with `settings` on a free 127.0.0.1 port, in this
/// process, until it ends; its base URL.
pub async fn serve_write_side(
    store: &Arc<event_store::postgres::PostgresEventStore>,
    settings: command_service::Settings,
) -> anyhow::Result<String> {
    let app = command_service::Application::build(
        "127.0.0.1:0".parse()?,
        store.clone(),
        Some(store.pool().clone()),
        settings,
    )
    .await?;
    let base = format!("http://{}", app.local_addr()?);
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    Ok(base)
}

/// Runs `script` (pgbench's script language) with `clients` clients on 2 threads for
/// `duration`, prepared statements, `options` as `PGOPTIONS`: its rate and latencies, from
/// pgbench's per-transaction log.
pub fn pgbench(
    script: &str,
    clients: usize,
    url: &str,
    duration: Duration,
    options: &str,
) -> anyhow::Result<Measurement> {
    use anyhow::Context;
    let dir = std::env::temp_dir().join(format!(
        "userledger-pgbench-{}",
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("script.sql");
    std::fs::write(&path, script)?;
    let output = std::process::Command::new("pgbench")
        .current_dir(&dir)
        .env("PGOPTIONS", options)
        .args([
            "-n",
            "-M",
            "prepared",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
        ])
        .arg(duration.as_secs().to_string())
        .args(["-l", "-f"])
        .arg(&path)
        .arg(url)
        .output()
        .context("running pgbench (PostgreSQL's client tools)")?;
    if !output.status.success() {
        anyhow::bail!(
            "pgbench failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // Per-transaction logs: "client_id transaction_no time_us script_no time_epoch time_us_frac".
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if !path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("pgbench_log"))
        {
            continue;
        }
        for line in std::fs::read_to_string(&path)?.lines() {
            if let Some(micros) = line
                .split_whitespace()
                .nth(2)
                .and_then(|v| v.parse::<u64>().ok())
            {
                latencies.push(Duration::from_micros(micros));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(summarize(latencies, 0, duration))
}
