//! The HTTP server of a process: its routes (the write side's, the read side's, or both) inside
//! what every request meets: request ids and metrics, CORS, the edge's state, the body limit;
//! beside them `/health`, `/openapi.json` and `/docs`, and the contract's 404 for the rest.
//! Start-up binds the address; shutdown stops accepting and finishes the requests in flight.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, OriginalUri};
use axum::http::Method;
use axum::{Extension, Router};
use events::store::EventStore;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::envelope::ApiError;
use crate::openapi::{self, Routes};
use crate::{cors, health, telemetry, EdgeSettings, EdgeState};

/// A bound server, ready to run.
pub struct Server {
    listener: TcpListener,
    router: Router,
}

impl Server {
    /// Binds `listen` to serve `routes` on an edge of their own over `log` (keeping
    /// idempotency keys in `database`): a process that serves the read side alone.
    pub async fn build(
        listen: SocketAddr,
        settings: EdgeSettings,
        log: Arc<dyn EventStore>,
        database: Option<PgPool>,
        routes: Routes,
    ) -> anyhow::Result<Self> {
        let edge = EdgeState::new(settings, log, database).await?;
        Self::bind(listen, edge, routes).await
    }

    /// Binds `listen` (port 0 picks a free port, as tests do) to serve `routes` on `edge`.
    pub async fn bind(
        listen: SocketAddr,
        edge: Arc<EdgeState>,
        routes: Routes,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        Ok(Self {
            listener,
            router: router(edge, routes),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // The peer's address reaches the policies (rate limits per IP address).
        let app = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")
    }
}

/// `routes` with `/health` and the documentation beside them, under the edge's layers, and
/// the OpenAPI document of exactly these routes.
pub fn router(edge: Arc<EdgeState>, routes: Routes) -> Router {
    let body_limit = edge.settings.body_limit;
    let cors = cors::layer(&edge.settings.cors_origins, edge.database.clone());
    let (routes, documented) = routes.into_parts();
    let (health, health_documented) = health::routes().into_parts();
    let (meta, meta_documented) = openapi::meta_routes().into_parts();
    let document = openapi::document([documented, health_documented, meta_documented]);
    routes
        .fallback(unknown_route)
        .merge(health)
        .merge(openapi::serve(meta, &document))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(Extension(edge))
        .layer(cors)
        .layer(axum::middleware::from_fn(telemetry::middleware))
}

async fn unknown_route(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::no_route(method.as_str(), uri.path())
}
