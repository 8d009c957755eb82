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
//!   With `USERLEDGER_STATUS_LISTEN`, `project` serves `/health`, `/projections/status` and
//!   `/metrics` there, for health checks;
//! - `config` prints the effective configuration, secrets masked, with where each value
//!   came from.
//!
//! Configuration: defaults, then a TOML file (`--config <path>` anywhere on the command line,
//! or `USERLEDGER_CONFIG`), then environment variables; the keys are in `config::KEYS` and the
//! README. An invalid value stops every command before it starts, naming the key.

use std::sync::Arc;

use anyhow::{bail, Context};
use event_store::eventstoredb::EventStoreDbStore;
use event_store::postgres::PostgresEventStore;
use events::store::EventStore;
use opentelemetry_sdk::trace::SdkTracerProvider;
use secrecy::ExposeSecret;
use userledger::config::{self, Config, LogFormat};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let config_file = config::take_config_flag(&mut args)?;
    let command = if args.is_empty() {
        "serve".to_owned()
    } else {
        args.remove(0)
    };
    if matches!(command.as_str(), "help" | "--help" | "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    let config = Config::from_process(config_file)?;
    let traces = init_logs(&config)?;
    // Only where logs are the output: replay and config print their results on standard output.
    if matches!(command.as_str(), "serve" | "command" | "query" | "project") {
        warn_of_unknown_variables();
    }

    let done = match command.as_str() {
        "serve" => serve(&config, Role::Everything).await,
        "command" => serve(&config, Role::Command).await,
        "query" => serve(&config, Role::Query).await,
        "project" => project(&config).await,
        "rebuild" => rebuild(&config).await,
        "republish" => republish(&config, args).await,
        "replay" => replay(&config, args).await,
        "verify" => verify(&config).await,
        "migrate" => {
            connect_postgres(&config).await?;
            tracing::info!("the PostgreSQL event store is up to date");
            Ok(())
        }
        "config" => {
            print!("{}", config.render());
            Ok(())
        }
        other => Err(anyhow::anyhow!("unknown command {other:?}; {USAGE}")),
    };
    if let Some(provider) = traces {
        // The spans still in the batch go out before the process ends.
        let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    }
    done
}

const USAGE: &str = "usage: userledger [--config FILE] [serve|command|query|project|rebuild|migrate|verify|config]
       userledger replay [--stream STREAM | --category CATEGORY] [--from TIME|POSITION] [--to TIME|POSITION]
       userledger republish [--from POSITION]";

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
    for name in config::unknown_variables(names.iter().map(String::as_str)) {
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
    let (store, postgres) = event_store(config).await?;
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
            .map(|url| projectors(&store, url, kafka, stopped)),
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
    tracing::info!(address = %app.local_addr()?, role = ?role, "userledger is serving");
    let served = app.run_until_stopped(shutdown_signal()).await;
    let _ = stop.send(true);
    if let Some(read_models) = read_models {
        read_models.stopped().await;
    }
    served
}

/// Runs the projectors of every read model until Ctrl-C or SIGTERM.
async fn project(config: &Config) -> anyhow::Result<()> {
    let (store, postgres) = event_store(config).await?;
    let url = read_models_url(config)?;
    let kafka = kafka_settings(config);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let read_models = projectors(&store, &url, kafka, stopped);
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
async fn republish(config: &Config, arguments: Vec<String>) -> anyhow::Result<()> {
    let mut arguments = arguments.into_iter();
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
    let settings = kafka_settings(config).context("set KAFKA_BROKERS to republish")?;
    let (store, _postgres) = event_store(config).await?;
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

/// Kafka as configured (`KAFKA_BROKERS`); publishing is off without it.
fn kafka_settings(config: &Config) -> Option<projections::KafkaSettings> {
    if config.kafka.is_none() {
        tracing::info!("KAFKA_BROKERS is not set: publishing to Kafka is off");
    }
    config.kafka.clone()
}

/// Rebuilds the read models from the whole log, with a progress bar on standard error.
async fn rebuild(config: &Config) -> anyhow::Result<()> {
    let (store, _postgres) = event_store(config).await?;
    let url = read_models_url(config)?;
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
async fn replay(config: &Config, arguments: Vec<String>) -> anyhow::Result<()> {
    use std::io::Write;
    let selection = events::audit::replay::Selection::from_args(arguments)
        .map_err(|reason| anyhow::anyhow!("{reason}; {USAGE}"))?;
    let (store, _postgres) = event_store(config).await?;
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
async fn verify(config: &Config) -> anyhow::Result<()> {
    let (store, _postgres) = event_store(config).await?;
    let url = read_models_url(config)?;
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
fn read_models_url(config: &Config) -> anyhow::Result<String> {
    config
        .database_url
        .as_ref()
        .map(|url| url.expose_secret().to_owned())
        .context("DATABASE_URL must name the PostgreSQL database of the read models")
}

/// The event store (EventStoreDB with `EVENTSTORE_URL`, else PostgreSQL), and PostgreSQL when
/// `DATABASE_URL` is set (it holds the read-side tables, and the events without EventStoreDB).
async fn event_store(
    config: &Config,
) -> anyhow::Result<(Arc<dyn EventStore>, Option<PostgresEventStore>)> {
    let postgres = match config.database_url {
        Some(_) => Some(connect_postgres(config).await?),
        None => None,
    };
    let store: Arc<dyn EventStore> = match (&config.eventstore_url, &postgres) {
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
    Ok((store, postgres))
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
