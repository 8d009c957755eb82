//! The write side of userledger: HTTP routes that load a stream, decide and append.
//!
//! # Layout
//! - [`Application`]: builds the HTTP server on an event store and runs it until stopped.
//! - [`health`] answers `GET /health` (liveness).
//!
//! The write routes of the contract land here next (see the open issues).

pub mod health;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use events::store::EventStore;
use tokio::net::TcpListener;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn EventStore>,
}

/// The HTTP server, bound and ready to run.
pub struct Application {
    listener: TcpListener,
    router: Router,
}

impl Application {
    /// Binds `listen` (port 0 picks a free port, as tests do).
    pub async fn build(listen: SocketAddr, store: Arc<dyn EventStore>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let router = Router::new()
            .merge(health::router())
            .with_state(AppState { store });
        Ok(Self { listener, router })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")
    }
}
