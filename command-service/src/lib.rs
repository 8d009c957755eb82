//! The write side of userledger: every write route of Liquid's admin and client APIs
//! (`contract/API.md`), the token endpoint, and first-start bootstrapping. What a request meets
//! before its handler (the token, the scope check, rate limits, idempotency) is the HTTP edge's
//! (`http_edge`), declared in each route's entry of the route table.
//!
//! # Layout
//! - [`Application`]: the write routes (and, in one process, the read routes beside them) on an
//!   [`http_edge::Server`], after bootstrapping.
//! - [`pipeline`]: load, decide, append at the expected revision, retry on conflict;
//!   [`stream_cache`]: the states it decides on.
//! - [`hashing`]: argon2id on a bounded pool.
//! - [`signin`]: the login page, sessions, `/oauth/authorize` and logout.
//! - [`users`], [`roles`], [`clients`], [`oauth`], [`social`]: the routes, one file per command where a
//!   family grows; each family's `router` is its part of the route table.
//! - [`schemas`]: the OpenAPI schemas of the write side's answers.
//! - [`bootstrap`]: system roles, the first super_admin and internal client.
//! - [`settings`]: the command service's options, the edge's among them.

pub mod bootstrap;
pub mod clients;
pub mod hashing;
pub mod oauth;
pub mod pipeline;
pub mod roles;
pub mod schemas;
pub mod settings;
pub mod signin;
pub mod social;
pub mod stream_cache;
pub mod system;
pub mod users;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use events::store::EventStore;
use http_edge::{EdgeState, Routes, Server};

pub use settings::Settings;

use hashing::Hasher;

/// What every write handler can reach: one shared [`Parts`], so a clone (one per request, by
/// axum's `State`) is one reference count, not one per part.
#[derive(Clone)]
pub struct AppState(Arc<Parts>);

impl std::ops::Deref for AppState {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Parts {
    /// The event store through the pipeline's stream cache: for loading, deciding, appending.
    pub store: Arc<dyn EventStore>,
    /// The event store itself, for reads that must see other processes' writes at once.
    pub log: Arc<dyn EventStore>,
    pub settings: Arc<Settings>,
    /// The edge's tokens (to issue them) and revocation cache (to forget banned accounts).
    pub edge: Arc<EdgeState>,
    pub hasher: Hasher,
    /// Failed sign-ins per account and per IP address.
    pub sign_in_guard: Arc<signin::guard::SignInGuard>,
    /// The user objects writes answer with, as of a revision of their streams.
    pub user_views: users::view::Views,
}

impl AppState {
    /// The write side over `edge`'s event store.
    pub fn with_edge(edge: Arc<EdgeState>, settings: Settings) -> Self {
        let log = edge.log.clone();
        let store: Arc<dyn EventStore> = Arc::new(stream_cache::StreamCache::new(log.clone()));
        Self(Arc::new(Parts {
            hasher: Hasher::new(settings.hashing_workers, settings.hashing_queue),
            sign_in_guard: Arc::new(signin::guard::SignInGuard::new(
                settings.sign_in_failures_per_account,
                settings.sign_in_failures_per_ip,
                edge.database.clone(),
            )),
            settings: Arc::new(settings),
            user_views: users::view::Views::default(),
            store,
            log,
            edge,
        }))
    }

    /// The write side over `log`, with an edge of its own that keeps nothing in PostgreSQL
    /// (for bootstrapping and for tools that decide commands without serving them).
    pub fn new(log: Arc<dyn EventStore>, settings: Settings) -> Self {
        let edge = EdgeState::without_database_setup(settings.edge.clone(), log, None);
        Self::with_edge(Arc::new(edge), settings)
    }
}

/// Every write route, with its entry in the route table.
pub fn router(state: AppState) -> Routes {
    oauth::router()
        .merge(signin::router())
        .merge(users::router())
        .merge(roles::router())
        .merge(clients::router())
        .merge(clients::public::router())
        .merge(system::router())
        .merge(social::router())
        .with_state(state)
}

/// Builds the write side's HTTP server: the write routes (and, in one process, the read
/// routes beside them) on an [`http_edge::Server`], after bootstrapping.
pub struct Application;

impl Application {
    /// Bootstraps (system roles, configured first accounts) and binds `listen` (port 0 picks a
    /// free port, as tests do). Serves the write routes, `/metrics` and `/ready`.
    pub async fn build(
        listen: SocketAddr,
        store: Arc<dyn EventStore>,
        database: Option<sqlx::PgPool>,
        settings: Settings,
    ) -> anyhow::Result<Server> {
        let status = http_edge::telemetry::metrics_route().merge(http_edge::health::ready_route());
        Self::build_with(listen, store, database, settings, status).await
    }

    /// [`Self::build`], serving `extra` (the read routes, with their `/metrics` and `/ready`)
    /// beside the write routes under the same base URL.
    pub async fn build_with(
        listen: SocketAddr,
        store: Arc<dyn EventStore>,
        database: Option<sqlx::PgPool>,
        settings: Settings,
        extra: Routes,
    ) -> anyhow::Result<Server> {
        if let Some(pool) = &database {
            signin::prepare(pool).await.context("the sign-in tables")?;
        }
        let edge = EdgeState::new(settings.edge.clone(), store, database).await?;
        // Once the edge's tables exist too: the sweep also forgets revoked token families.
        if let Some(pool) = &edge.database {
            signin::spawn_sweeper(pool.clone(), settings.refresh_token_ttl);
        }
        let state = AppState::with_edge(edge.clone(), settings);
        bootstrap::bootstrap(&state)
            .await
            .context("first-start bootstrap")?;
        Server::bind(listen, edge, router(state).merge(extra)).await
    }
}
