//! The HTTP server of a process: its routes (the write side's, the read side's, or both) inside
//! what every request meets: request ids and metrics, CORS, the edge's state, the body limit;
//! beside them `/health`, `/openapi.json` and `/docs`, and the contract's 404 for the rest.
//! Start-up binds the address; shutdown stops accepting and finishes the requests in flight.
//!
//! Connections are served by hyper directly (not `axum::serve`, which sets no timer): a client
//! must send its request headers within [`EdgeSettings::header_read_timeout`] (a connection
//! that sends nothing is closed after as long) and its whole body within
//! [`EdgeSettings::body_read_timeout`], and at most [`EdgeSettings::max_connections`]
//! are open at once (one more is closed as soon as it is accepted), so that slow or idle
//! clients cannot hold the process's connections and memory.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, OriginalUri};
use axum::http::{Method, Request};
use axum::{Extension, Router};
use events::store::EventStore;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::envelope::ApiError;
use crate::openapi::{self, Routes};
use crate::{cors, health, telemetry, EdgeSettings, EdgeState};

/// Connections open at once on the liveness port: its probers, not its callers.
const LIVENESS_CONNECTIONS: usize = 64;

/// A bound server, ready to run.
pub struct Server {
    listener: TcpListener,
    router: Router,
    max_connections: usize,
    header_read_timeout: Duration,
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
        Ok(Self {
            listener: bound(listen).await?,
            max_connections: edge.settings.max_connections,
            header_read_timeout: edge.settings.header_read_timeout,
            router: router(edge, routes),
        })
    }

    /// Binds `listen` to serve `router` outside every edge (the liveness port,
    /// [`health::serve_apart`]): a few connections, the edge's header timeout, the contract's
    /// 404 for any other route.
    pub(crate) async fn liveness(
        listen: SocketAddr,
        router: Router,
        header_read_timeout: Duration,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            listener: bound(listen).await?,
            max_connections: LIVENESS_CONNECTIONS,
            header_read_timeout,
            router: router.fallback(unknown_route),
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
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout);
        let open = Arc::new(Semaphore::new(self.max_connections));
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors, or a connection reset before it was
                        // accepted: wait a moment rather than spin.
                        tracing::warn!(%error, "accepting a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let Ok(permit) = open.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "too many connections: one more is closed");
                continue;
            };
            let _ = stream.set_nodelay(true);
            // The peer's address reaches the policies (rate limits per IP address).
            let service = self
                .router
                .clone()
                .map_request(move |mut request: Request<_>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request.map(Body::new)
                });
            let (builder, watcher) = (builder.clone(), graceful.watcher());
            let header_read_timeout = self.header_read_timeout;
            tokio::spawn(async move {
                // hyper's header timer starts only once it has read enough to tell HTTP/1
                // from HTTP/2: a client that sends nothing at all is closed here.
                let mut first = [0u8; 1];
                let sent = tokio::time::timeout(header_read_timeout, stream.peek(&mut first));
                if matches!(sent.await, Ok(Ok(1..))) {
                    let connection = builder.serve_connection_with_upgrades(
                        TokioIo::new(stream),
                        TowerToHyperService::new(service),
                    );
                    if let Err(error) = watcher.watch(connection.into_owned()).await {
                        tracing::debug!(%error, "a connection ended");
                    }
                }
                drop(permit);
            });
        }
        drop(self.listener);
        graceful.shutdown().await;
        Ok(())
    }
}

/// A listener on `listen` (port 0 picks a free port).
async fn bound(listen: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))
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
        .layer(RequestBodyTimeoutLayer::new(
            edge.settings.body_read_timeout,
        ))
        .layer(Extension(edge))
        .layer(cors)
        .layer(axum::middleware::from_fn(telemetry::middleware))
}

async fn unknown_route(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::no_route(method.as_str(), uri.path())
}
