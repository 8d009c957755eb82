//! `userledger`: the one binary.
//! - `serve` runs the whole service in one process: write routes, read routes, projectors;
//! - `command`, `query` and `project` run one role each, for split deployments behind one
//!   base URL: `command` the write routes (and first-start bootstrap), `query` the read routes
//!   and the projection status, `project` the projectors (any number of `project` processes:
//!   one active per projection, the others standby);
//! - `rebuild` replays the whole log into fresh read models and swaps them in, while the
//!   service goes on answering from the old ones;
//! - `republish [--from <position>]` publishes the log to Kafka again from a position;
//! - `replay [--stream S | --category C] [--from M] [--to M]` prints the log (or a selection)
//!   as JSON lines on standard output, secrets redacted; M is an RFC 3339 time or a position;
//! - `verify` checks every stream's hash chain, rebuilds the read models in a scratch schema and
//!   compares them with the live ones; it prints every difference and exits with status 1 if
//!   there is any;
//! - `migrate` brings the PostgreSQL event store's schema up to date and exits.
//!
//! `rebuild`, `replay` and `verify` show a progress bar on standard error.
//!
//! Configuration (environment):
//! - `USERLEDGER_LISTEN`: address to serve on (default `127.0.0.1:8080`);
//! - `DATABASE_URL`: PostgreSQL (the event store unless `EVENTSTORE_URL` is set);
//! - `EVENTSTORE_URL`: EventStoreDB (`esdb://...`), the production event store;
//! - `KAFKA_BROKERS`: Kafka to publish to (publishing is off without it), with
//!   `KAFKA_USER_TOPIC` (default `user-changes`), `KAFKA_ROLE_APPLICATION_TOPIC` (default
//!   `role-application-changes`), `KAFKA_PARTITIONS` (6) and `KAFKA_REPLICATION_FACTOR` (1) for
//!   the topics it creates;
//! - `USERLEDGER_DATABASE_POOL`: PostgreSQL connections (default 32);
//! - `RUST_LOG`: log filter (default `info`).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context};
use events::store::eventstoredb::EventStoreDbStore;
use events::store::postgres::PostgresEventStore;
use events::store::EventStore;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx::postgres::notice=warn".into()),
        )
        .init();

    let command = std::env::args().nth(1).unwrap_or_else(|| "serve".into());
    match command.as_str() {
        "serve" => serve(Role::Everything).await,
        "command" => serve(Role::Command).await,
        "query" => serve(Role::Query).await,
        "project" => project().await,
        "rebuild" => rebuild().await,
        "republish" => republish().await,
        "replay" => replay().await,
        "verify" => verify().await,
        "migrate" => {
            connect_postgres().await?;
            tracing::info!("the PostgreSQL event store is up to date");
            Ok(())
        }
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command {other:?}; {USAGE}"),
    }
}

const USAGE: &str = "usage: userledger [serve|command|query|project|rebuild|migrate|verify]
       userledger replay [--stream STREAM | --category CATEGORY] [--from TIME|POSITION] [--to TIME|POSITION]
       userledger republish [--from POSITION]";

/// What an HTTP process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Write routes, read routes and projectors.
    Everything,
    /// Write routes only.
    Command,
    /// Read routes only (the read models are kept by `project` processes).
    Query,
}

async fn serve(role: Role) -> anyhow::Result<()> {
    let listen: SocketAddr = std::env::var("USERLEDGER_LISTEN")
        .unwrap_or_else(|_| "127.0.0.1:8080".into())
        .parse()
        .context("USERLEDGER_LISTEN must be an address such as 127.0.0.1:8080")?;
    let (store, postgres) = event_store().await?;
    let kafka = kafka_settings()?;
    let database = postgres.map(|p| p.pool().clone());
    if database.is_none() {
        tracing::warn!("DATABASE_URL is not set: Idempotency-Key support is off");
    }
    let mut settings = command_service::Settings::new(token_secret()?);
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let (Some(username), Some(email), Some(password)) = (
        var("USERLEDGER_BOOTSTRAP_ADMIN_USERNAME"),
        var("USERLEDGER_BOOTSTRAP_ADMIN_EMAIL"),
        var("USERLEDGER_BOOTSTRAP_ADMIN_PASSWORD"),
    ) {
        settings.bootstrap_admin = Some(command_service::settings::BootstrapAdmin {
            username,
            email,
            password,
        });
    }
    if let Some(origins) = var("USERLEDGER_CORS_ORIGINS") {
        settings.cors_origins = origins.split(',').map(|o| o.trim().to_owned()).collect();
    }
    if let (Some(client_id), Some(secret)) = (
        var("USERLEDGER_BOOTSTRAP_CLIENT_ID"),
        var("USERLEDGER_BOOTSTRAP_CLIENT_SECRET"),
    ) {
        settings.bootstrap_client =
            Some(command_service::settings::BootstrapClient { client_id, secret });
    }
    // With `serve`, the read models follow the log in this process (one active instance per
    // projection across processes; others wait as standbys).
    let database_url = std::env::var("DATABASE_URL").ok();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let read_models = match role {
        Role::Everything => database_url
            .as_deref()
            .map(|url| projectors(&store, url, kafka, stopped)),
        Role::Command | Role::Query => None,
    };
    let app = match role {
        Role::Everything => {
            let here = read_models
                .as_ref()
                .map(|models| query_service::ProjectorsHere::new(models.progress.clone()))
                .unwrap_or_default();
            command_service::Application::build_with(
                listen,
                store.clone(),
                database,
                settings,
                query_service::router_with_projectors(here),
            )
            .await?
        }
        Role::Command => {
            command_service::Application::build(listen, store.clone(), database, settings).await?
        }
        Role::Query => {
            if database.is_none() {
                bail!("userledger query reads the read models: set DATABASE_URL");
            }
            command_service::Application::build_without_writes(
                listen,
                store.clone(),
                database,
                settings,
                query_service::router(),
            )
            .await?
        }
    };
    tracing::info!(address = %app.local_addr()?, role = ?role, "userledger is serving");
    let served = app.run_until_stopped(shutdown_signal()).await;
    let _ = stop.send(true);
    if let Some(read_models) = read_models {
        read_models.stopped().await;
    }
    served
}

/// Runs the projectors of every read model until Ctrl-C or SIGTERM.
async fn project() -> anyhow::Result<()> {
    let (store, _postgres) = event_store().await?;
    let url = read_models_url()?;
    let kafka = kafka_settings()?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let read_models = projectors(&store, &url, kafka, stopped);
    tracing::info!("userledger is projecting");
    shutdown_signal().await;
    let _ = stop.send(true);
    read_models.stopped().await;
    Ok(())
}

/// The read models' projectors, and the Kafka publisher when `kafka` is set.
fn projectors(
    store: &Arc<dyn EventStore>,
    database_url: &str,
    kafka: Option<projections::KafkaSettings>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> projections::ReadModels {
    let models = projections::spawn_read_models(store.clone(), database_url, shutdown.clone());
    match kafka {
        Some(settings) => models.with_publisher(store.clone(), database_url, settings, &shutdown),
        None => models,
    }
}

/// Publishes the log to Kafka again from `--from <position>` (from the start without it), with
/// a progress bar on standard error. The publisher's checkpoint stays where it is.
async fn republish() -> anyhow::Result<()> {
    let mut arguments = std::env::args().skip(2);
    let mut from = None;
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--from" => {
                let position = arguments
                    .next()
                    .context("--from needs a log position (a consistency token)")?;
                from = Some(
                    position
                        .parse()
                        .with_context(|| format!("--from {position:?} is not a log position"))?,
                );
            }
            other => {
                bail!("unknown option {other:?}; usage: userledger republish [--from <position>]")
            }
        }
    }
    let settings = kafka_settings()?.context("set KAFKA_BROKERS to republish")?;
    let (store, _postgres) = event_store().await?;
    let bar = progress_bar("publishing again")?;
    let republished =
        projections::republish(store, &settings, from, |events| bar.set_position(events)).await;
    bar.finish();
    let republished = republished.context("publishing again")?;
    let seconds = republished.elapsed.as_secs_f64();
    tracing::info!(
        events = republished.events,
        seconds,
        events_per_second = (republished.events as f64 / seconds.max(1e-9)).round(),
        last_position = republished.position.map(|p| p.to_string()),
        "published again"
    );
    Ok(())
}

/// Kafka from the environment: `KAFKA_BROKERS` (publishing is off without it), and optionally
/// `KAFKA_USER_TOPIC`, `KAFKA_ROLE_APPLICATION_TOPIC`, `KAFKA_PARTITIONS`,
/// `KAFKA_REPLICATION_FACTOR`.
fn kafka_settings() -> anyhow::Result<Option<projections::KafkaSettings>> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let Some(brokers) = var("KAFKA_BROKERS") else {
        tracing::info!("KAFKA_BROKERS is not set: publishing to Kafka is off");
        return Ok(None);
    };
    let mut settings = projections::KafkaSettings::new(brokers);
    if let Some(topic) = var("KAFKA_USER_TOPIC") {
        settings.user_topic = topic;
    }
    if let Some(topic) = var("KAFKA_ROLE_APPLICATION_TOPIC") {
        settings.role_application_topic = topic;
    }
    if let Some(partitions) = var("KAFKA_PARTITIONS") {
        settings.partitions = partitions
            .parse()
            .ok()
            .filter(|p: &i32| *p > 0)
            .context("KAFKA_PARTITIONS must be a positive number")?;
    }
    if let Some(factor) = var("KAFKA_REPLICATION_FACTOR") {
        settings.replication_factor = factor
            .parse()
            .ok()
            .filter(|f: &i32| *f > 0)
            .context("KAFKA_REPLICATION_FACTOR must be a positive number")?;
    }
    if settings.user_topic == settings.role_application_topic {
        bail!("KAFKA_USER_TOPIC and KAFKA_ROLE_APPLICATION_TOPIC must name two topics");
    }
    Ok(Some(settings))
}

/// Rebuilds the read models from the whole log, with a progress bar on standard error.
async fn rebuild() -> anyhow::Result<()> {
    let (store, _postgres) = event_store().await?;
    let url = read_models_url()?;
    let bar = progress_bar("rebuilding the read models")?;
    let rebuilt = projections::rebuild(store, &url, |events| bar.set_position(events)).await;
    bar.finish();
    let rebuilt = rebuilt.context("rebuilding the read models")?;
    let seconds = rebuilt.elapsed.as_secs_f64();
    tracing::info!(
        events = rebuilt.events,
        seconds,
        events_per_second = (rebuilt.events as f64 / seconds.max(1e-9)).round(),
        position = rebuilt.position.map(|p| p.to_string()),
        "the read models are rebuilt and swapped in"
    );
    Ok(())
}

/// A spinner on standard error counting events: `{message} [elapsed] N events (rate)`.
fn progress_bar(message: &'static str) -> anyhow::Result<indicatif::ProgressBar> {
    let bar = indicatif::ProgressBar::new_spinner()
        .with_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{elapsed_precise}] {human_pos} events ({per_sec})",
            )
            .context("the progress bar's template")?,
        )
        .with_message(message);
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    Ok(bar)
}

/// Prints the log, or the selection the arguments make, as JSON lines on standard output;
/// the summary goes to standard error.
async fn replay() -> anyhow::Result<()> {
    use std::io::Write;
    let selection = events::audit::replay::Selection::from_args(std::env::args().skip(2))
        .map_err(|reason| anyhow::anyhow!("{reason}; {USAGE}"))?;
    let (store, _postgres) = event_store().await?;
    let bar = progress_bar("replaying the log")?;
    let started = std::time::Instant::now();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let replayed = events::audit::replay::replay(
        &*store,
        &selection,
        |event| -> anyhow::Result<()> {
            serde_json::to_writer(&mut out, &events::audit::replay::line(event))?;
            out.write_all(b"\n")?;
            Ok(())
        },
        |replayed| bar.set_position(replayed.read),
    )
    .await;
    bar.finish_and_clear();
    out.flush()?;
    let replayed = replayed.context("replaying the log")?;
    eprintln!(
        "replayed {} of {} events read in {:.1} s",
        replayed.selected,
        replayed.read,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Checks the hash chains and compares the read models with a rebuild; prints every finding
/// and a summary on standard output, and exits with status 1 if there is any.
async fn verify() -> anyhow::Result<()> {
    let (store, _postgres) = event_store().await?;
    let url = read_models_url()?;
    let bar = progress_bar("checking hash chains")?;
    let mut phase = projections::verify::Phase::Chains;
    let verified = projections::verify(store, &url, |now, events| {
        if now != phase {
            phase = now;
            bar.reset();
            bar.set_message(now.to_string());
        }
        bar.set_position(events);
    })
    .await;
    bar.finish_and_clear();
    let verified = verified.context("verifying")?;
    for broken in &verified.broken {
        println!("{broken}");
    }
    for difference in &verified.differences {
        println!("{difference}");
    }
    println!(
        "{} events in {} streams: {} chained, {} unchained (written before the hash chain), {} broken; \
         {} read-model rows compared: {} differences; {:.1} s",
        verified.events,
        verified.streams,
        verified.chained,
        verified.unchained,
        verified.broken.len(),
        verified.rows,
        verified.differences.len(),
        verified.elapsed.as_secs_f64()
    );
    if verified.is_clean() {
        println!("verified: the log's hash chains hold and the read models match it");
        Ok(())
    } else {
        println!("NOT VERIFIED");
        std::process::exit(1);
    }
}

/// PostgreSQL of the read models: `DATABASE_URL`.
fn read_models_url() -> anyhow::Result<String> {
    std::env::var("DATABASE_URL")
        .context("DATABASE_URL must name the PostgreSQL database of the read models")
}

/// The event store (EventStoreDB with `EVENTSTORE_URL`, else PostgreSQL), and PostgreSQL when
/// `DATABASE_URL` is set (it holds the read-side tables, and the events without EventStoreDB).
async fn event_store() -> anyhow::Result<(Arc<dyn EventStore>, Option<PostgresEventStore>)> {
    let postgres = match std::env::var("DATABASE_URL") {
        Ok(_) => Some(connect_postgres().await?),
        Err(_) => None,
    };
    let store: Arc<dyn EventStore> = match (std::env::var("EVENTSTORE_URL"), &postgres) {
        (Ok(url), _) => {
            tracing::info!("event store: EventStoreDB");
            Arc::new(
                EventStoreDbStore::connect(&url)
                    .await
                    .context("EVENTSTORE_URL")?,
            )
        }
        (Err(_), Some(postgres)) => {
            tracing::info!("event store: PostgreSQL");
            Arc::new(postgres.clone())
        }
        (Err(_), None) => {
            bail!("set DATABASE_URL (PostgreSQL), and EVENTSTORE_URL for EventStoreDB")
        }
    };
    Ok((store, postgres))
}

async fn connect_postgres() -> anyhow::Result<PostgresEventStore> {
    let url = std::env::var("DATABASE_URL")
        .context("DATABASE_URL must name the PostgreSQL database (postgres://...)")?;
    let pool = match std::env::var("USERLEDGER_DATABASE_POOL") {
        Ok(size) => size
            .parse()
            .context("USERLEDGER_DATABASE_POOL must be a number of connections")?,
        Err(_) => 32,
    };
    PostgresEventStore::connect(&url, pool)
        .await
        .context("connecting to DATABASE_URL")
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// `USERLEDGER_TOKEN_SECRET` signs tokens; without it a random key is drawn, so tokens do not
/// survive a restart (fine for a local run, said in the log).
fn token_secret() -> anyhow::Result<Vec<u8>> {
    match std::env::var("USERLEDGER_TOKEN_SECRET") {
        Ok(secret) if secret.len() >= 32 => Ok(secret.into_bytes()),
        Ok(_) => bail!("USERLEDGER_TOKEN_SECRET must be at least 32 characters"),
        Err(_) => {
            tracing::warn!("USERLEDGER_TOKEN_SECRET is not set: signing tokens with a random key");
            Ok(uuid::Uuid::new_v4().as_bytes().repeat(2))
        }
    }
}
