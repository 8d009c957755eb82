//! The HTTP edge that userledger's two services share: everything a request meets before its
//! handler and after it, and nothing of what the handler does.
//!
//! # Layout
//! - [`openapi`]: the route table. A route is mounted only through [`Routes::route`] with its
//!   [`Doc`], which declares everything about it: method, path, edge, read or write, the scope
//!   check, idempotency, the rate-limit class ([`policy::Policy`]) and its OpenAPI operation.
//!   The router, the enforcement and the OpenAPI document are all read from that one entry.
//! - [`policy`]: what mounting a route enforces, in order: the rate limit of its class, its
//!   place among the requests in flight, the caller (the bearer token verified once, the
//!   account not revoked, the scope check), then `Idempotency-Key` for writes.
//! - [`auth`]: tokens, revocation, the [`Caller`] and the `shared` / `session` checks.
//! - [`envelope`]: the contract's success and error envelopes ([`ApiError`], [`Answer`]);
//!   [`body`]: request bodies that parse and document themselves ([`body::Body`]).
//! - [`idempotency`], [`rate_limit`]: what the policy applies to writes.
//! - [`telemetry`]: request ids, the log line per answer, Prometheus metrics; [`health`]:
//!   liveness and readiness.
//! - [`cors`]: the configured origins and those of registered redirect URIs.
//! - [`server`]: the [`Server`]: CORS, the body limit, the contract's 404, `/health`,
//!   `/openapi.json` and `/docs` around a process's routes; start-up and graceful shutdown.
//! - [`settings`]: the edge's options ([`EdgeSettings`]); [`tables`]: creating the tables
//!   kept beside the log.
//!
//! The services build their routes as [`Routes`] over their own state, bind that state
//! ([`Routes::with_state`]), and hand the routes to a [`Server`] with the [`EdgeState`]: one
//! process may serve the write routes, the read routes, or both.

pub mod auth;
pub mod body;
pub mod cors;
pub mod envelope;
pub mod health;
pub mod idempotency;
pub mod openapi;
pub mod policy;
pub mod rate_limit;
pub mod server;
pub mod settings;
pub mod tables;
pub mod telemetry;

use std::sync::Arc;

use anyhow::Context;
use events::store::EventStore;
use sqlx::PgPool;
use tokio::sync::Semaphore;

pub use auth::{Caller, Edge};
pub use envelope::{Answer, ApiError};
pub use openapi::{Doc, Routes};
pub use policy::Feature;
pub use server::Server;
pub use settings::{EdgeSettings, RateLimits};

use auth::access::AccessCache;
use auth::TokenKeys;
use rate_limit::RateLimiters;

/// What the edge keeps for a process: the token keys, the revocation cache, the rate limiters,
/// the requests in flight, and PostgreSQL for `Idempotency-Key` answers. One per process,
/// shared by every route it serves (each finds it in the request's extensions).
pub struct EdgeState {
    pub settings: EdgeSettings,
    pub tokens: TokenKeys,
    /// Whether a token's account may still act; the writes that ban or delete forget here.
    pub access: AccessCache,
    /// The event store, for revocation checks and readiness.
    pub log: Arc<dyn EventStore>,
    /// PostgreSQL beside the log: idempotency keys, readiness; `None` turns `Idempotency-Key`
    /// support off.
    pub database: Option<PgPool>,
    rate_limits: RateLimiters,
    reads: Arc<Semaphore>,
    writes: Arc<Semaphore>,
}

impl EdgeState {
    /// The edge of a process over `log`, keeping idempotency keys in `database` (creating
    /// their table when missing).
    pub async fn new(
        settings: EdgeSettings,
        log: Arc<dyn EventStore>,
        database: Option<PgPool>,
    ) -> anyhow::Result<Arc<Self>> {
        if let Some(pool) = &database {
            idempotency::prepare(pool)
                .await
                .context("creating the idempotency table")?;
            auth::revocation::prepare(pool)
                .await
                .context("creating the revocation tables")?;
        }
        Ok(Arc::new(Self::without_database_setup(
            settings, log, database,
        )))
    }

    /// [`Self::new`] without touching the database (for code that only issues or verifies
    /// tokens, and tests of the domain's writes).
    pub fn without_database_setup(
        settings: EdgeSettings,
        log: Arc<dyn EventStore>,
        database: Option<PgPool>,
    ) -> Self {
        Self {
            tokens: TokenKeys::new(&settings.token_secret),
            access: AccessCache::new(log.clone(), database.clone(), settings.revocation_check_ttl),
            rate_limits: RateLimiters::new(settings.rate_limits),
            reads: Arc::new(Semaphore::new(settings.max_concurrent_reads.max(1))),
            writes: Arc::new(Semaphore::new(settings.max_concurrent_requests.max(1))),
            log,
            database,
            settings,
        }
    }
}
