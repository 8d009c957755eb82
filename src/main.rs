//! `userledger`: the one binary. `serve` runs the service; `migrate` brings the PostgreSQL
//! event store's schema up to date and exits.
//!
//! Configuration (environment):
//! - `USERLEDGER_LISTEN`: address to serve on (default `127.0.0.1:8080`);
//! - `DATABASE_URL`: PostgreSQL (the event store unless `EVENTSTORE_URL` is set);
//! - `EVENTSTORE_URL`: EventStoreDB (`esdb://...`), the production event store;
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
        "serve" => serve().await,
        "migrate" => {
            connect_postgres().await?;
            tracing::info!("the PostgreSQL event store is up to date");
            Ok(())
        }
        "help" | "--help" | "-h" => {
            println!("usage: userledger [serve|migrate]");
            Ok(())
        }
        other => bail!("unknown command {other:?}; usage: userledger [serve|migrate]"),
    }
}

async fn serve() -> anyhow::Result<()> {
    let listen: SocketAddr = std::env::var("USERLEDGER_LISTEN")
        .unwrap_or_else(|_| "127.0.0.1:8080".into())
        .parse()
        .context("USERLEDGER_LISTEN must be an address such as 127.0.0.1:8080")?;
    // PostgreSQL holds the read-side tables (and the event store without EVENTSTORE_URL).
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
    let database_url = std::env::var("DATABASE_URL").ok();
    let app = command_service::Application::build_with(
        listen,
        store.clone(),
        database,
        settings,
        query_service::router(),
    )
    .await?;

    // The read models follow the log in this process (one active instance per projection
    // across processes; others wait as standbys).
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let read_models = database_url
        .as_deref()
        .map(|url| projections::spawn_read_models(store.clone(), url, stopped));
    tracing::info!(address = %app.local_addr()?, "userledger is serving");
    let served = app.run_until_stopped(shutdown_signal()).await;
    let _ = stop.send(true);
    if let Some(read_models) = read_models {
        read_models.stopped().await;
    }
    served
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
