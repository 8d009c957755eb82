//! The write side of userledger: every write route of Liquid's admin and client APIs
//! (`contract/API.md`), the token endpoint, and first-start bootstrapping.
//!
//! # Layout
//! - [`Application`]: builds the HTTP server on an event store and runs it until stopped.
//! - [`envelope`]: the contract's success and error envelopes; [`extract`]: JSON bodies.
//! - [`auth`]: tokens, the [`auth::Caller`] extractor, the `shared`/`session` scope checks,
//!   revocation.
//! - [`pipeline`]: load, decide, append at the expected revision, retry on conflict.
//! - [`hashing`]: argon2id on a bounded pool; [`rate_limit`]: per client and per IP limits on
//!   the token endpoint and on writes.
//! - [`users`], [`roles`], [`clients`], [`oauth`]: the routes, one file per command where a
//!   family grows.
//! - [`bootstrap`]: system roles, the first super_admin and internal client.
//! - [`health`] answers `GET /health` (liveness).
//! - [`openapi`]: the OpenAPI document (`GET /openapi.json`, Swagger UI at `GET /docs`); every
//!   route is mounted through its [`openapi::Routes`], with its documentation.

pub mod auth;
pub mod bootstrap;
pub mod clients;
pub mod envelope;
pub mod extract;
pub mod hashing;
pub mod health;
pub mod idempotency;
pub mod oauth;
pub mod openapi;
pub mod pipeline;
pub mod rate_limit;
pub mod roles;
pub mod settings;
pub mod stream_cache;
pub mod telemetry;
pub mod users;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, OriginalUri};
use axum::http::Method;
use axum::Router;
use events::store::EventStore;
use serde_json::json;
use tokio::net::TcpListener;

pub use settings::Settings;

use auth::access::AccessCache;
use auth::TokenKeys;
use envelope::ApiError;
use hashing::Hasher;
pub use openapi::{Doc, Routes};

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The event store through the pipeline's stream cache: for loading, deciding, appending.
    pub store: Arc<dyn EventStore>,
    /// The event store itself, for reads that must see other processes' writes at once.
    pub log: Arc<dyn EventStore>,
    pub settings: Arc<Settings>,
    pub tokens: Arc<TokenKeys>,
    pub access: Arc<AccessCache>,
    pub hasher: Hasher,
    /// PostgreSQL for what the write side keeps beside the log (idempotency keys); `None`
    /// turns `Idempotency-Key` support off.
    pub database: Option<sqlx::PgPool>,
    pub rate_limits: Arc<rate_limit::RateLimiters>,
}

impl AppState {
    pub fn new(log: Arc<dyn EventStore>, settings: Settings) -> Self {
        let store: Arc<dyn EventStore> = Arc::new(stream_cache::StreamCache::new(log.clone()));
        Self {
            tokens: Arc::new(TokenKeys::new(&settings.token_secret)),
            access: Arc::new(AccessCache::new(log.clone(), settings.revocation_check_ttl)),
            log,
            hasher: Hasher::new(settings.hashing_workers, settings.hashing_queue),
            rate_limits: Arc::new(rate_limit::RateLimiters::new(settings.rate_limits)),
            settings: Arc::new(settings),
            store,
            database: None,
        }
    }

    /// Keeps idempotency keys in `pool` (creating its table when missing).
    pub async fn with_database(mut self, pool: sqlx::PgPool) -> anyhow::Result<Self> {
        idempotency::prepare(&pool)
            .await
            .context("creating the idempotency table")?;
        self.database = Some(pool);
        Ok(self)
    }
}

/// Every route of the write side, with the body limit and the contract's 404.
pub fn router(state: AppState) -> Router {
    router_with(state, Routes::new())
}

/// The write routes plus `extra` (the read side, when one process serves the whole API),
/// all under the same layers: CORS, body limit, idempotency, the contract's 404; and the
/// OpenAPI document of exactly these routes.
pub fn router_with(state: AppState, extra: Routes) -> Router {
    let writes = oauth::router()
        .merge(users::router())
        .merge(roles::router())
        .merge(clients::router());
    let routes = limited(extra, state.settings.max_concurrent_reads)
        .merge(limited(writes, state.settings.max_concurrent_requests));
    layered(state, routes)
}

/// `routes` alone, without the write routes (the read side in a process of its own), under
/// the same layers as [`router_with`].
pub fn router_without_writes(state: AppState, routes: Routes) -> Router {
    let routes = limited(routes, state.settings.max_concurrent_reads);
    layered(state, routes)
}

/// `routes` served at most `in_flight` at once, all together; the others wait their turn.
fn limited(routes: Routes, in_flight: usize) -> Routes {
    routes.layer(tower::limit::GlobalConcurrencyLimitLayer::new(
        in_flight.max(1),
    ))
}

fn layered(state: AppState, routes: Routes) -> Router {
    let body_limit = state.settings.body_limit;
    let (routes, documented) = routes.into_parts();
    // Liveness and the documentation stay outside the request limit.
    let (unlimited, unlimited_documented) = health::routes().into_parts();
    let (meta, meta_documented) = openapi::meta_routes().into_parts();
    let document = openapi::document([documented, unlimited_documented, meta_documented]);
    routes
        .fallback(unknown_route)
        .merge(unlimited)
        .merge(openapi::serve(meta, &document))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::middleware,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit::middleware,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(cors(&state.settings.cors_origins))
        .layer(axum::middleware::from_fn(telemetry::middleware))
        .with_state(state)
}

/// Browsers: admin UIs call from another origin and send `Content-Type: application/json` even
/// on GET, so every route answers preflights and allows the configured origins (API.md §1).
fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use axum::http::{header, HeaderName, HeaderValue};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin.trim_end_matches('/')).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static(idempotency::HEADER),
            HeaderName::from_static(envelope::CONSISTENCY_TOKEN),
            telemetry::REQUEST_ID,
            telemetry::CORRELATION_ID,
        ])
        .expose_headers([
            HeaderName::from_static(envelope::CONSISTENCY_TOKEN),
            telemetry::REQUEST_ID,
            telemetry::CORRELATION_ID,
        ])
}

async fn unknown_route(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::NotFound(json!({ "method": method.as_str(), "path": uri.path() }))
}

/// The HTTP server, bound and ready to run.
pub struct Application {
    listener: TcpListener,
    router: Router,
}

impl Application {
    /// Bootstraps (system roles, configured first accounts) and binds `listen` (port 0 picks a
    /// free port, as tests do). Serves the write routes only.
    pub async fn build(
        listen: SocketAddr,
        store: Arc<dyn EventStore>,
        database: Option<sqlx::PgPool>,
        settings: Settings,
    ) -> anyhow::Result<Self> {
        Self::build_with(
            listen,
            store,
            database,
            settings,
            telemetry::metrics_route().merge(health::ready_route()),
        )
        .await
    }

    /// [`Self::build`], also serving `extra` (the read routes) under the same base URL.
    pub async fn build_with(
        listen: SocketAddr,
        store: Arc<dyn EventStore>,
        database: Option<sqlx::PgPool>,
        settings: Settings,
        extra: Routes,
    ) -> anyhow::Result<Self> {
        let (listener, state) = Self::bind(listen, store, database, settings).await?;
        bootstrap::bootstrap(&state)
            .await
            .context("first-start bootstrap")?;
        Ok(Self {
            listener,
            router: router_with(state, extra),
        })
    }

    /// Serves `routes` only, none of the write routes, and bootstraps nothing: the read side
    /// in a process of its own (`userledger query`).
    pub async fn build_without_writes(
        listen: SocketAddr,
        store: Arc<dyn EventStore>,
        database: Option<sqlx::PgPool>,
        settings: Settings,
        routes: Routes,
    ) -> anyhow::Result<Self> {
        let (listener, state) = Self::bind(listen, store, database, settings).await?;
        Ok(Self {
            listener,
            router: router_without_writes(state, routes),
        })
    }

    async fn bind(
        listen: SocketAddr,
        store: Arc<dyn EventStore>,
        database: Option<sqlx::PgPool>,
        settings: Settings,
    ) -> anyhow::Result<(TcpListener, AppState)> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let mut state = AppState::new(store, settings);
        if let Some(pool) = database {
            state = state.with_database(pool).await?;
        }
        Ok((listener, state))
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // The peer's address reaches the handlers (rate limits per IP address).
        let app = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")
    }
}
