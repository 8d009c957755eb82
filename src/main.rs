//! `userledger`: the one binary, one subcommand per role or task ([`Run`]; `userledger
//! --help` and `userledger <command> --help` explain each). Without a subcommand it serves.
//!
//! Configuration: defaults, then a TOML file (`--config <path>` anywhere on the command line,
//! or `USERLEDGER_CONFIG`), then environment variables; the keys are in `config::KEYS` and the
//! README. An invalid value stops every command before it starts, naming the key.

use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use event_store::eventstoredb::EventStoreDbStore;
use event_store::postgres::PostgresEventStore;
use event_store::sealed::{Keyring, Sealed};
use events::audit::replay::Selection;
use events::audit::Moment;
use events::metadata::{Actor, CommandContext};
use events::store::{EventStore, Position};
use events::values::UserId;
use opentelemetry_sdk::trace::SdkTracerProvider;
use secrecy::ExposeSecret;
use userledger::config::{Config, LogFormat};
use uuid::Uuid;

/// mimalloc rather than glibc's malloc: under many concurrent requests glibc's arenas were
/// contended (its lock waits showed in profiles of the read routes).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Users, roles and OAuth applications as event sourcing + CQRS.
///
/// Every command reads one configuration: the defaults, then a TOML file (--config, or
/// USERLEDGER_CONFIG), then environment variables; `userledger config` shows it.
#[derive(Debug, Parser)]
#[command(name = "userledger", version, args_override_self = true)]
struct Cli {
    /// The TOML configuration file, between the defaults and the environment (without it,
    /// USERLEDGER_CONFIG names one)
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<String>,

    /// What to run; `serve` without one
    #[command(subcommand)]
    command: Option<Run>,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
enum Run {
    /// Serve everything in one process: write routes, read routes and projectors (the default)
    ///
    /// Also brings the PostgreSQL event store's schema up to date at start.
    Serve,
    /// Serve the write routes (and do the first-start bootstrap), for split deployments
    Command,
    /// Serve the read routes and the projections' status, for split deployments
    ///
    /// The read models are kept by `project` processes.
    Query,
    /// Run the projectors of every read model until stopped
    ///
    /// Any number of `project` processes may run: one is active per projection, the others
    /// stand by. With USERLEDGER_STATUS_LISTEN it serves /health, /projections/status and
    /// /metrics there, for health checks.
    Project,
    /// Rebuild the read models from the whole log and swap them in
    ///
    /// The service goes on answering from the old ones meanwhile. Shows a progress bar on
    /// standard error.
    Rebuild,
    /// Publish the log to Kafka again, from a position or from the start
    ///
    /// The publisher's checkpoint stays where it is. Needs KAFKA_BROKERS.
    Republish {
        /// The log position (a consistency token) to publish from; the start without it
        #[arg(long, value_name = "POSITION")]
        from: Option<Position>,
    },
    /// Print the log, or a selection of it, as JSON lines, secrets redacted (for auditors)
    ///
    /// The summary and a progress bar go to standard error.
    Replay(ReplayArgs),
    /// Check every stream's hash chain and compare the read models with a rebuild (for auditors)
    ///
    /// The rebuild goes to a scratch schema. Prints every difference, and exits with status 1
    /// if there is any.
    Verify,
    /// Erase a person: destroy their key and append `UserErased` (for operators)
    ///
    /// Their personal data reads as "[erased]" everywhere the log is read from then on; their
    /// username and email are free, and the read models drop them. The events stay, and the
    /// hash chains still verify. Needs DATABASE_URL (the people's keys).
    Erase {
        /// The user's id (`_id`)
        #[arg(value_name = "USER_ID")]
        user: Uuid,
    },
    /// Seal the personal data of events written before sealing began, in place (PostgreSQL)
    ///
    /// One transaction per person's stream: ids, positions and revisions stay, payloads are
    /// stored sealed and the stream's hash chain is computed anew. Stop every process that
    /// writes (serve, command) first, then run `verify`. Shows a progress bar on standard
    /// error; running it again finds nothing to do.
    EncryptHistory,
    /// Bring the PostgreSQL event store's schema up to date and exit
    Migrate,
    /// Print the effective configuration, one `KEY = value (source)` line per key, secrets masked
    Config,
}

/// Which events `replay` prints; all of them without a flag.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
struct ReplayArgs {
    /// Only this stream (`user-<id>`)
    #[arg(long, value_name = "STREAM", conflicts_with = "category")]
    stream: Option<String>,
    /// Only the streams of this category (`user`, `role`, `client`)
    #[arg(long, value_name = "CATEGORY")]
    category: Option<String>,
    /// From this moment on, inclusive: an RFC 3339 time or a log position
    #[arg(long, value_name = "TIME|POSITION")]
    from: Option<Moment>,
    /// Up to this moment, inclusive: an RFC 3339 time or a log position
    #[arg(long, value_name = "TIME|POSITION")]
    to: Option<Moment>,
}

impl From<ReplayArgs> for Selection {
    fn from(args: ReplayArgs) -> Self {
        Selection {
            stream: args.stream,
            category: args.category,
            from: args.from,
            to: args.to,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Run::Serve);
    let config = Config::from_process(cli.config)?;
    let traces = init_logs(&config)?;
    // Only where logs are the output: replay and config print their results on standard output.
    if matches!(
        command,
        Run::Serve | Run::Command | Run::Query | Run::Project
    ) {
        warn_of_unknown_variables();
    }

    let done = match command {
        Run::Serve => serve(&config, Role::Everything).await,
        Run::Command => serve(&config, Role::Command).await,
        Run::Query => serve(&config, Role::Query).await,
        Run::Project => project(&config).await,
        Run::Rebuild => rebuild(&config).await,
        Run::Republish { from } => republish(&config, from).await,
        Run::Replay(selection) => replay(&config, selection.into()).await,
        Run::Verify => verify(&config).await,
        Run::Erase { user } => erase(&config, UserId::from_uuid(user)).await,
        Run::EncryptHistory => encrypt_history(&config).await,
        Run::Migrate => {
            connect_postgres(&config).await?;
            tracing::info!("the PostgreSQL event store is up to date");
            Ok(())
        }
        Run::Config => {
            print!("{}", config.render());
            Ok(())
        }
    };
    if let Some(provider) = traces {
        // The spans still in the batch go out before the process ends.
        let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    }
    done
}

/// Logs on standard output: JSON lines, or text with `USERLEDGER_LOG_FORMAT=text`. With
/// `OTEL_EXPORTER_OTLP_ENDPOINT`, spans (each request's, with its ids) also go to that
/// OpenTelemetry collector over OTLP/HTTP; the returned provider flushes them at exit.
fn init_logs(config: &Config) -> anyhow::Result<Option<SdkTracerProvider>> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let filter = tracing_subscriber::EnvFilter::new(&config.log_filter);
    let logs = match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer().json().boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().boxed(),
    };
    let provider = match &config.otel_exporter_otlp_endpoint {
        None => None,
        Some(endpoint) => {
            use opentelemetry_otlp::WithExportConfig;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
                .build()
                .context("OTEL_EXPORTER_OTLP_ENDPOINT: building the OTLP exporter")?;
            let resource = opentelemetry_sdk::Resource::builder()
                .with_service_name("userledger")
                .build();
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource)
                    .build(),
            )
        }
    };
    // Spans are exported whatever the log filter says (at info and above).
    let traces = provider.as_ref().map(|provider| {
        use opentelemetry::trace::TracerProvider as _;
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("userledger"))
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
    });
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(traces)
        .init();
    Ok(provider)
}

/// `USERLEDGER_*` variables that are no configuration key: likely typos.
fn warn_of_unknown_variables() {
    let names: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .collect();
    for name in userledger::config::unknown_variables(names.iter().map(String::as_str)) {
        tracing::warn!(variable = name, "not a configuration key: ignored");
    }
}

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

async fn serve(config: &Config, role: Role) -> anyhow::Result<()> {
    let listen = config.listen;
    let Log {
        store,
        stored,
        postgres,
    } = event_store(config).await?;
    let kafka = kafka_settings(config);
    let database = postgres.map(|p| p.pool().clone());
    if database.is_none() {
        tracing::warn!("DATABASE_URL is not set: Idempotency-Key support is off");
    }
    if config.token_secret.is_none() {
        tracing::warn!("USERLEDGER_TOKEN_SECRET is not set: signing tokens with a random key");
    }
    let settings = config.command_settings();
    // With `serve`, the read models follow the log in this process (one active instance per
    // projection across processes; others wait as standbys).
    let database_url = config
        .database_url
        .as_ref()
        .map(|url| url.expose_secret().to_owned());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let read_models = match role {
        Role::Everything => database_url
            .as_deref()
            .map(|url| projectors(&store, &stored, url, kafka, stopped)),
        Role::Command | Role::Query => None,
    };
    let app = match role {
        Role::Everything => {
            let here = read_models
                .as_ref()
                .map(|models| query_service::ProjectorsHere::new(models.progress.clone()))
                .unwrap_or_default();
            let reads = query_service::AppState::new(
                store.clone(),
                database.clone(),
                settings.subscription_tiers.clone(),
            );
            let routes = query_service::router_with_projectors(reads, here);
            command_service::Application::build_with(
                listen,
                store.clone(),
                database,
                settings,
                routes,
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
            let reads = query_service::AppState::new(
                store.clone(),
                database.clone(),
                settings.subscription_tiers.clone(),
            );
            http_edge::Server::build(
                listen,
                settings.edge,
                store.clone(),
                database,
                query_service::router(reads),
            )
            .await?
        }
    };
    serve_liveness(config)?;
    tracing::info!(address = %app.local_addr()?, role = ?role, "userledger is serving");
    let served = app.run_until_stopped(shutdown_signal()).await;
    let _ = stop.send(true);
    if let Some(read_models) = read_models {
        read_models.stopped().await;
    }
    served
}

/// Serves `/health` on the liveness port (`USERLEDGER_HEALTH_LISTEN`), when one is set.
fn serve_liveness(config: &Config) -> anyhow::Result<()> {
    if let Some(listen) = config.health_listen {
        let address = http_edge::health::serve_apart(listen, config.header_read_timeout)?;
        tracing::info!(%address, "serving /health on a port and thread of its own");
    }
    Ok(())
}

/// Runs the projectors of every read model until Ctrl-C or SIGTERM.
async fn project(config: &Config) -> anyhow::Result<()> {
    let Log {
        store,
        stored,
        postgres,
    } = event_store(config).await?;
    let url = read_models_url(config)?;
    let kafka = kafka_settings(config);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let read_models = projectors(&store, &stored, &url, kafka, stopped);
    serve_liveness(config)?;
    tracing::info!("userledger is projecting");
    match config.status_listen {
        // Health checks see this process's projectors through the status routes.
        Some(listen) => {
            let database = postgres.map(|p| p.pool().clone());
            let here = query_service::ProjectorsHere::new(read_models.progress.clone());
            let settings = config.command_settings();
            let reads = query_service::AppState::new(
                store.clone(),
                database.clone(),
                settings.subscription_tiers,
            );
            let status = http_edge::Server::build(
                listen,
                settings.edge,
                store.clone(),
                database,
                query_service::status_router(reads, here),
            )
            .await?;
            tracing::info!(address = %status.local_addr()?, "serving the projections' status");
            status.run_until_stopped(shutdown_signal()).await?;
        }
        None => shutdown_signal().await,
    }
    let _ = stop.send(true);
    read_models.stopped().await;
    Ok(())
}

/// The read models' projectors (reading `store`), and the Kafka publisher when `kafka` is set
/// (publishing the log as `stored`: personal data sealed).
fn projectors(
    store: &Arc<dyn EventStore>,
    stored: &Arc<dyn EventStore>,
    database_url: &str,
    kafka: Option<projections::KafkaSettings>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> projections::ReadModels {
    let models = projections::spawn_read_models(store.clone(), database_url, shutdown.clone());
    match kafka {
        Some(settings) => models.with_publisher(stored.clone(), database_url, settings, &shutdown),
        None => models,
    }
}

/// Publishes the log to Kafka again from `from` (from the start without it), with a progress
/// bar on standard error. The publisher's checkpoint stays where it is.
async fn republish(config: &Config, from: Option<Position>) -> anyhow::Result<()> {
    let settings = kafka_settings(config).context("set KAFKA_BROKERS to republish")?;
    let stored = event_store(config).await?.stored;
    let bar = progress_bar("publishing again", "events")?;
    let republished =
        projections::republish(stored, &settings, from, |events| bar.set_position(events)).await;
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

/// Kafka as configured (`KAFKA_BROKERS`); publishing is off without it.
fn kafka_settings(config: &Config) -> Option<projections::KafkaSettings> {
    if config.kafka.is_none() {
        tracing::info!("KAFKA_BROKERS is not set: publishing to Kafka is off");
    }
    config.kafka.clone()
}

/// Rebuilds the read models from the whole log, with a progress bar on standard error.
async fn rebuild(config: &Config) -> anyhow::Result<()> {
    let store = event_store(config).await?.store;
    let url = read_models_url(config)?;
    let bar = progress_bar("rebuilding the read models", "events")?;
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

/// A spinner on standard error counting `unit`s: `{message} [elapsed] N units (rate)`.
fn progress_bar(message: &'static str, unit: &str) -> anyhow::Result<indicatif::ProgressBar> {
    let bar = indicatif::ProgressBar::new_spinner()
        .with_style(
            indicatif::ProgressStyle::with_template(&format!(
                "{{spinner}} {{msg}} [{{elapsed_precise}}] {{human_pos}} {unit} ({{per_sec}})"
            ))
            .context("the progress bar's template")?,
        )
        .with_message(message);
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    Ok(bar)
}

/// Prints the log, or the selection the arguments make, as JSON lines on standard output;
/// the summary goes to standard error.
async fn replay(config: &Config, selection: Selection) -> anyhow::Result<()> {
    use std::io::Write;
    let store = event_store(config).await?.store;
    let bar = progress_bar("replaying the log", "events")?;
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
async fn verify(config: &Config) -> anyhow::Result<()> {
    let log = event_store(config).await?;
    let url = read_models_url(config)?;
    let bar = progress_bar("checking hash chains", "events")?;
    let mut phase = projections::verify::Phase::Chains;
    let verified = projections::verify(log.store, &*log.stored, &url, |now, events| {
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

/// Erases `user` as `POST /user/admin-api/erase` does, acting as the system.
async fn erase(config: &Config, user: UserId) -> anyhow::Result<()> {
    let log = event_store(config).await?;
    if log.postgres.is_none() {
        bail!("erasing destroys a key kept in PostgreSQL: set DATABASE_URL");
    }
    let settings = config.command_settings();
    // With the database, so that answers kept for repeated requests that show them go too.
    let edge = http_edge::EdgeState::without_database_setup(
        settings.edge.clone(),
        log.store,
        log.postgres.map(|postgres| postgres.pool().clone()),
    );
    let state = command_service::AppState::with_edge(Arc::new(edge), settings);
    let context = CommandContext::new(Uuid::now_v7(), Actor::system(), chrono::Utc::now());
    let position = command_service::users::erase::erase(&state, user, None, &context)
        .await
        .map_err(|error| match error {
            http_edge::envelope::ApiError::NotFound(_) => {
                anyhow::anyhow!("no user has this id (or they were erased already)")
            }
            http_edge::envelope::ApiError::ResourceConflict(info) => {
                anyhow::anyhow!(
                    "{} (in the clear: {} of {})",
                    info["reason"].as_str().unwrap_or_default(),
                    info["fields"],
                    info["stream"].as_str().unwrap_or_default()
                )
            }
            error => anyhow::anyhow!("{error}"),
        })
        .with_context(|| format!("erasing {user}"))?;
    println!("erased {user}: UserErased is at {position}");
    Ok(())
}

/// Seals the personal data of the events written before sealing, in place.
async fn encrypt_history(config: &Config) -> anyhow::Result<()> {
    if config.eventstore_url.is_some() {
        bail!(
            "EventStoreDB's events cannot be rewritten in place: copy the log into a new \
             database as the README's \"Erasure\" section tells"
        );
    }
    let postgres = connect_postgres(config).await?;
    let keyring = Keyring::prepare(postgres.pool().clone())
        .await
        .context("the people's keys")?;
    let bar = progress_bar("sealing personal data in the log", "streams")?;
    let done = event_store::postgres::encrypt_history::encrypt_history(
        postgres.pool(),
        &keyring,
        |streams| bar.set_position(streams),
    )
    .await;
    bar.finish();
    let done = done.context("sealing the log's personal data")?;
    println!(
        "{} people's streams looked at, {} sealed ({} events rewritten) in {:.1} s; \
         run `userledger verify` to check the chains",
        done.streams,
        done.streams_sealed,
        done.events_rewritten,
        done.elapsed.as_secs_f64()
    );
    Ok(())
}

/// PostgreSQL of the read models: `DATABASE_URL`.
fn read_models_url(config: &Config) -> anyhow::Result<String> {
    config
        .database_url
        .as_ref()
        .map(|url| url.expose_secret().to_owned())
        .context("DATABASE_URL must name the PostgreSQL database of the read models")
}

/// The log as this process uses it.
struct Log {
    /// The event store as its readers see it: personal data opened (or erased), sealed on
    /// the way in.
    store: Arc<dyn EventStore>,
    /// The event store as it keeps the events, personal data sealed: what the hash chains are
    /// over and what Kafka carries.
    stored: Arc<dyn EventStore>,
    /// PostgreSQL, when `DATABASE_URL` is set: the read-side tables and the people's keys
    /// (and the events, without EventStoreDB).
    postgres: Option<PostgresEventStore>,
}

/// The event store (EventStoreDB with `EVENTSTORE_URL`, else PostgreSQL), sealed with the
/// people's keys in PostgreSQL when `DATABASE_URL` is set.
async fn event_store(config: &Config) -> anyhow::Result<Log> {
    let postgres = match config.database_url {
        Some(_) => Some(connect_postgres(config).await?),
        None => None,
    };
    let stored: Arc<dyn EventStore> = match (&config.eventstore_url, &postgres) {
        (Some(url), _) => {
            tracing::info!("event store: EventStoreDB");
            Arc::new(
                EventStoreDbStore::connect(url.expose_secret())
                    .await
                    .context("EVENTSTORE_URL")?,
            )
        }
        (None, Some(postgres)) => {
            tracing::info!("event store: PostgreSQL");
            Arc::new(postgres.clone())
        }
        (None, None) => {
            bail!("set DATABASE_URL (PostgreSQL), and EVENTSTORE_URL for EventStoreDB")
        }
    };
    let store: Arc<dyn EventStore> = match &postgres {
        Some(postgres) => {
            let keyring = Keyring::prepare(postgres.pool().clone())
                .await
                .context("the people's keys (DATABASE_URL)")?;
            Arc::new(Sealed::new(stored.clone(), keyring))
        }
        None => {
            tracing::warn!(
                "DATABASE_URL is not set: personal data is appended unsealed and cannot be erased"
            );
            stored.clone()
        }
    };
    Ok(Log {
        store,
        stored,
        postgres,
    })
}

async fn connect_postgres(config: &Config) -> anyhow::Result<PostgresEventStore> {
    let url = config
        .database_url
        .as_ref()
        .context("DATABASE_URL must name the PostgreSQL database (postgres://...)")?;
    PostgresEventStore::connect(url.expose_secret(), config.database_pool)
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("userledger").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_is_the_default() {
        let cli = parse(&[]).expect("valid");
        assert_eq!(cli.command, None);
        assert_eq!(cli.config, None);
    }

    #[test]
    fn config_is_taken_anywhere_on_the_command_line() {
        for args in [
            &["--config", "a.toml", "serve"][..],
            &["serve", "--config", "a.toml"],
            &["--config=a.toml", "replay", "--stream", "user-1"],
            &["replay", "--stream", "user-1", "--config", "a.toml"],
            &["republish", "--config=a.toml", "--from", "10"],
            &["--config", "b.toml", "config", "--config", "a.toml"],
            &["--config", "a.toml"],
        ] {
            let cli = parse(args).unwrap_or_else(|error| panic!("{args:?}: {error}"));
            assert_eq!(cli.config.as_deref(), Some("a.toml"), "{args:?}");
        }
        assert!(parse(&["serve", "--config"]).is_err());
    }

    #[test]
    fn replay_and_republish_read_their_flags() {
        let cli = parse(&["replay", "--category", "user", "--from", "10", "--to", "20"]).unwrap();
        let Some(Run::Replay(args)) = cli.command else {
            panic!("{cli:?}")
        };
        let selection = Selection::from(args);
        assert_eq!(selection.category.as_deref(), Some("user"));
        assert_eq!(selection.from, Some("10".parse().unwrap()));
        assert_eq!(selection.to, Some("20".parse().unwrap()));
        assert!(parse(&["replay", "--stream", "a", "--category", "b"]).is_err());
        assert!(parse(&["replay", "--from", "yesterday"]).is_err());
        assert!(parse(&["replay", "--everything"]).is_err());

        let cli = parse(&["republish", "--from", "42"]).unwrap();
        assert_eq!(
            cli.command,
            Some(Run::Republish {
                from: Some("42".parse().unwrap())
            })
        );
        assert!(parse(&["republish", "--from", "nowhere"]).is_err());
        assert!(parse(&["republish", "--to", "1"]).is_err());
    }

    #[test]
    fn erase_takes_one_user_id() {
        let id = "0192e6c4-8d1b-7c3e-9a4f-3b2d1c0e5f6a";
        let cli = parse(&["erase", id]).expect("valid");
        assert_eq!(
            cli.command,
            Some(Run::Erase {
                user: id.parse().unwrap()
            })
        );
        for args in [&["erase"][..], &["erase", "not-an-id"], &["erase", id, id]] {
            assert_eq!(parse(args).expect_err("refused").exit_code(), 2, "{args:?}");
        }
        assert_eq!(
            parse(&["encrypt-history"]).expect("valid").command,
            Some(Run::EncryptHistory)
        );
    }

    #[test]
    fn unknown_commands_and_flags_are_refused() {
        for args in [
            &["serv"][..],
            &["serve", "--listen", "x"],
            &["verify", "extra"],
        ] {
            let error = parse(args).expect_err("refused");
            assert_eq!(error.exit_code(), 2, "{args:?}: {error}");
        }
    }
}
