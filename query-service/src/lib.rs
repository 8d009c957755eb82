//! The read side of userledger: every read route of the contract (API.md §3 to §5), served
//! from the PostgreSQL read models only (the `read_models` schema the `projections` crate keeps);
//! and the auditors' history routes, which read the event log (see [`history`]).
//!
//! # Layout
//! - [`router`]: the routes, as a `Router<AppState>` to merge beside the write side's.
//! - [`consistency`]: read-your-writes (invariant 7): a request presenting a write's
//!   `X-Consistency-Token` waits, at most [`consistency::WAIT_LIMIT`], until the read model it
//!   reads has applied that log position.
//! - [`error`]: [`error::ReadError`], the contract's errors plus "not caught up" (503).
//! - [`paging`]: the query string: `limit` and `offset` as Liquid reads them.
//! - [`projection_status`]: `GET /projections/status` and `GET /metrics`, each read model's
//!   position and lag.
//! - [`users`] (list, retrieve-user-info, user-info, invite-codes), [`configuration`]
//!   (editable-fields, subscription-tiers), [`clients`] (`/client/admin-api/list`), [`roles`]
//!   (`/roles/list`), [`social`] (block-status, follow-status, followers, following; client
//!   edge only).
//! - [`history`]: history and point-in-time state of a user, role or application, for
//!   auditors. The one exception to "read models only": it reads the event log, the audit
//!   trail itself.
//!
//! Authentication and scopes use the command service's [`command_service::auth::Caller`], so
//! both sides check tokens the same way.

pub mod clients;
pub mod configuration;
pub mod consistency;
pub mod error;
pub mod history;
pub mod paging;
pub mod projection_status;
pub mod roles;
pub mod social;
pub mod users;

use axum::routing::{get, post};
use axum::{Extension, Router};
use command_service::envelope::ApiError;
use command_service::AppState;
pub use projection_status::ProjectorsHere;

/// Every read route, in a process that runs no projector. Mount it beside the write routes:
/// `command_service::router(state.clone()).merge(query_service::router().with_state(state))`.
pub fn router() -> Router<AppState> {
    router_with_projectors(ProjectorsHere::default())
}

/// Every read route, in a process that also runs the projectors whose progress `here` follows
/// (`projections::ReadModels::progress`): the status routes tell which are active here.
pub fn router_with_projectors(here: ProjectorsHere) -> Router<AppState> {
    let mut router = status_routes()
        .route(
            "/user/admin-api/subscription-tiers",
            get(configuration::subscription_tiers),
        )
        .route("/client/admin-api/list", get(clients::list_clients))
        .route("/roles/list", get(roles::list_roles))
        .route("/roles/admin-api/history", get(history::role_history))
        .route("/client/admin-api/history", get(history::client_history))
        .merge(social::router());
    for edge in ["admin", "client"] {
        router = router
            .route(&format!("/user/{edge}-api/list"), get(users::list_users))
            .route(
                &format!("/user/{edge}-api/retrieve-user-info"),
                post(users::retrieve_user_info),
            )
            .route(
                &format!("/user/{edge}-api/user-info"),
                get(users::user_info),
            )
            .route(
                &format!("/user/{edge}-api/editable-fields"),
                get(configuration::editable_fields),
            )
            .route(
                &format!("/user/{edge}-api/invite-codes"),
                get(users::invite_codes),
            )
            .route(
                &format!("/user/{edge}-api/history"),
                get(history::user_history),
            );
    }
    router.layer(Extension(here))
}

/// Only `/projections/status` and `/metrics`: what a process that runs projectors and no read
/// route (`userledger project`) serves for its health checks.
pub fn status_router(here: ProjectorsHere) -> Router<AppState> {
    status_routes().layer(Extension(here))
}

fn status_routes() -> Router<AppState> {
    Router::new()
        .route("/projections/status", get(projection_status::status))
        .route("/metrics", get(projection_status::metrics))
}

/// The read models' database, or a 500 when the service runs without one.
fn database(state: &AppState) -> Result<&sqlx::PgPool, ApiError> {
    state.database.as_ref().ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "the query service needs PostgreSQL (DATABASE_URL) for its read models"
        ))
    })
}
