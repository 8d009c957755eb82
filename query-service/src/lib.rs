//! The read side of userledger: every read route of the contract (API.md §3 to §5), served
//! from the PostgreSQL read models only (the `read_models` schema the `projections` crate keeps);
//! and the auditors' history routes, which read the event log (see [`history`]).
//!
//! # Layout
//! - [`router`]: the routes, as [`http_edge::Routes`] to serve alone or beside the write
//!   side's; [`AppState`]: what their handlers reach.
//! - [`consistency`]: read-your-writes (invariant 7): a request presenting a write's
//!   `X-Consistency-Token` waits, at most [`consistency::WAIT_LIMIT`], until the read model it
//!   reads has applied that log position.
//! - [`error`]: [`error::ReadError`], the contract's errors plus "not caught up" (503).
//! - [`paging`]: the query string: `limit` and `offset` as Liquid reads them.
//! - [`projection_status`]: `GET /projections/status` and `GET /metrics`, each read model's
//!   position and lag.
//! - [`users`] (list, retrieve-user-info, user-info, invite-codes), with
//!   [`user_lookups`] (lookups by id of concurrent requests batched into one query),
//!   [`configuration`]
//!   (editable-fields, subscription-tiers), [`clients`] (`/client/admin-api/list`), [`roles`]
//!   (`/roles/list`), [`social`] (block-status, follow-status, followers, following; client
//!   edge only).
//! - [`openapi`]: the schemas of the read side's answers for the OpenAPI document; each
//!   route's documentation is written where the route is mounted.
//! - [`login_history`]: sign-in attempts (a target's, or the caller's own).
//! - [`search`]: user search on both edges and for signed-in people; [`profiles`]: another
//!   user as a signed-in person sees them (`/user/{userId}`, and each result of their search);
//!   [`follows`]: a signed-in person's follow lists and statuses.
//! - [`system`]: the scope catalogue and the version, for callers without a token.
//! - [`history`]: history and point-in-time state of a user, role or application, for
//!   auditors. The one exception to "read models only": it reads the event log, the audit
//!   trail itself.
//!
//! Authentication and scopes use the command service's [`http_edge::auth::Caller`], so
//! both sides check tokens the same way.

pub mod clients;
pub mod configuration;
pub mod consistency;
pub mod error;
pub mod follows;
pub mod history;
pub mod login_history;
pub mod openapi;
pub mod paging;
pub mod profiles;
pub mod projection_status;
pub mod roles;
pub mod search;
pub mod social;
pub mod system;
pub mod user_lookups;
pub mod users;

use std::sync::Arc;

use axum::Extension;
use events::store::EventStore;
use events::user::InviteCodesView;
use events::values::SubscriptionTiers;
use http_edge::envelope::ApiError;
use http_edge::{Doc, Edge, Routes};
pub use projection_status::ProjectorsHere;

/// What every read handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The event log: the auditors' history routes and readiness read it.
    pub log: Arc<dyn EventStore>,
    /// The read models' database; without it every read answers 500.
    pub database: Option<sqlx::PgPool>,
    /// Connections to it for user search, set to take indexes ([`search::pool`]).
    pub searches: Option<sqlx::PgPool>,
    /// The configured subscription tiers: what a user's subscription is shown as.
    pub subscription_tiers: Arc<SubscriptionTiers>,
}

impl AppState {
    pub fn new(
        log: Arc<dyn EventStore>,
        database: Option<sqlx::PgPool>,
        subscription_tiers: SubscriptionTiers,
    ) -> Self {
        Self {
            log,
            searches: database.as_ref().map(search::pool),
            database,
            subscription_tiers: Arc::new(subscription_tiers),
        }
    }
}

/// Every read route, in a process that runs no projector, to serve alone or beside the write
/// routes.
pub fn router(state: AppState) -> Routes {
    router_with_projectors(state, ProjectorsHere::default())
}

/// Every read route, in a process that also runs the projectors whose progress `here` follows
/// (`projections::ReadModels::progress`): the status routes tell which are active here. Each
/// route comes with its entry in the route table ([`http_edge::openapi`]).
pub fn router_with_projectors(state: AppState, here: ProjectorsHere) -> Routes {
    let history_query = |doc: Doc| {
        doc.query(
            "target",
            true,
            "the user's or application's `_id`, the role's `id`",
        )
        .query(
            "limit",
            false,
            "events per page: default 100, at most 1000 (read as `list` reads it)",
        )
        .query("from", false, "the stream revision to start at (default 0)")
        .query(
            "at",
            false,
            "a time (RFC 3339) or a log position: answers the target as it was then \
                 instead of its events",
        )
        .error(
            400,
            "ClientInputError",
            "`target` is missing or malformed, `at` is neither a time nor a position, or \
                 `from` is not a revision",
        )
        .error(
            404,
            "NotFound",
            "the target never existed, or did not exist yet at `at`",
        )
        .ok::<openapi::History>("the target's events in stream order, or its state at `at`")
        .describe("Reads the event log itself (the audit trail), so it needs no consistency token.")
    };
    let routes = status_routes()
        .route(
            Doc::get("/user/me", "Your own account")
                .session(Edge::Admin, "delegated:profile:read")
                .read()
                .ok::<openapi::OwnAccount>(
                    "your user object, and the fields you may change on it (`PATCH /user/me`)",
                ),
            users::me,
        )
        .route(
            Doc::post("/user/search", "Search users")
                .session(Edge::Admin, "delegated:profile:search")
                .read()
                .json_body::<search::SearchBody>()
                .ok::<openapi::SearchResults>(
                    "at most 10 users, as another user sees them; none who blocked you",
                ),
            search::own_search,
        )
        .route(
            profile_doc(Doc::get("/user/{userId}", "Another user's profile")),
            profiles::profile,
        )
        .route(
            profile_doc(Doc::get(
                "/user/info/{userId}",
                "Another user's profile (the same as `/user/{userId}`)",
            )),
            profiles::profile,
        )
        .route(
            Doc::get("/user/scopes", "The scope catalogue")
                .public()
                .ok::<system::Scopes>("every scope by its name, with its description and parent"),
            system::scopes,
        )
        .route(
            Doc::get("/system/version", "This build's version")
                .public()
                .ok::<system::Version>("the version"),
            system::version,
        )
        .route(
            Doc::get(
                "/system/countries-insecure",
                "Countries and their calling codes",
            )
            .public()
            .ok::<system::Countries>("every ISO 3166-1 country with a calling code, by name"),
            system::countries_insecure,
        )
        .route(
            Doc::get("/user/login-history", "Your sign-in attempts, newest first")
                .session(Edge::Admin, "delegated:profile:login-history:read")
                .read()
                .newest_first_paged()
                .error(400, "ClientInputError", "`offset` is not an id")
                .ok::<login_history::LoginRecords>("the attempts"),
            login_history::own,
        )
        .route(
            Doc::get(
                "/user/admin-api/subscription-tiers",
                "The configured subscription tiers",
            )
            .shared(Edge::Admin, "configuration:read")
            .ok::<openapi::SubscriptionTiers>("every tier, the base tier marked"),
            configuration::subscription_tiers,
        )
        .route(
            Doc::get("/client/admin-api/list", "A page of OAuth applications")
                .session(Edge::Admin, "admin:system:client:read")
                .read()
                .paged()
                .error(400, "ClientInputError", "`offset` is not an id")
                .ok::<openapi::Clients>("a page in creation order, without secrets"),
            clients::list_clients,
        )
        .route(
            Doc::get("/roles/list", "Every role, by ranking")
                .session_or_super_admin(Edge::Admin, "delegated:roles:read")
                .read()
                .ok::<openapi::Roles>("every role"),
            roles::list_roles,
        )
        .route(
            history_query(
                Doc::get(
                    "/roles/admin-api/history",
                    "A role's history, or its state at a moment",
                )
                .shared(Edge::Admin, "roles:read"),
            ),
            history::role_history,
        )
        .route(
            history_query(
                Doc::get(
                    "/client/admin-api/history",
                    "An application's history, or its state at a moment",
                )
                .session(Edge::Admin, "admin:system:client:read"),
            ),
            history::client_history,
        )
        .merge(social::router())
        .merge(follows::router());
    [Edge::Admin, Edge::Client]
        .into_iter()
        .fold(routes, |routes, edge| {
            routes
                .merge(user_reads(edge, history_query))
                .merge(system_reads(edge))
        })
        .layer(Extension(here))
        .layer(Extension(Arc::new(users::UserReads::default())))
        .with_state(state)
}

/// What `/user/{userId}` and `/user/info/{userId}` document.
fn profile_doc(doc: Doc) -> Doc {
    doc.session(Edge::Admin, "delegated:profile:read")
        .read()
        .path_parameter("userId", "the user's `_id`")
        .error(400, "ClientInputError", "`userId` is not an id")
        .error(403, "Blocked", "the user has blocked you")
        .error(404, "NotFound", "no user has this `_id`")
        .ok::<openapi::Profile>(
            "the user as you see them: a private account you do not follow hides its contact \
             details, standing and credits; a deleted or banned one shows only that",
        )
}

/// The system reads of one edge: `/system/<edge>-api/stats`.
fn system_reads(edge: Edge) -> Routes<AppState> {
    Routes::new().route(
        Doc::get(
            format!("/system/{}-api/stats", edge.as_str()),
            "This process's figures",
        )
        .shared(edge, "system:all")
        .fails_internally()
        .ok::<system::Stats>(
            "process id, platform, CPU, load, uptime, requests answered and memory (MB)",
        ),
        system::stats,
    )
}

/// The user reads of one edge: `/user/<edge>-api/<path>`.
fn user_reads(edge: Edge, history_query: impl Fn(Doc) -> Doc) -> Routes<AppState> {
    let at = |path: &str| format!("/user/{}-api/{path}", edge.as_str());
    Routes::new()
        .route(
            Doc::get(at("list"), "A page of users")
                .shared(edge, "profile:read")
                .read()
                .paged()
                .error(400, "ClientInputError", "`offset` is not an id")
                .ok::<openapi::UsersPage>("a page in creation order, and the number of users"),
            users::list_users,
        )
        .route(
            Doc::post(at("search"), "Search users")
                .session(edge, &format!("{}:profile:search", edge.as_str()))
                .read()
                .json_body::<search::SearchBody>()
                .ok::<openapi::SearchResults>(
                    "at most 10 users whose username, email or name holds the query, or whose \
                     role or `_id` it is",
                ),
            search::search,
        )
        .route(
            Doc::post(at("retrieve-user-info"), "Users by id or email")
                .shared(edge, "profile:read")
                .read()
                .json_body::<users::RetrieveUserInfoBody>()
                .ok::<openapi::Users>("the users found"),
            users::retrieve_user_info,
        )
        .route(
            Doc::get(at("user-info"), "Users by id")
                .shared(edge, "profile:read")
                .read()
                .query("targets", true, "comma-separated user `_id`s")
                .error(
                    400,
                    "ClientInputError",
                    "`targets` is missing or holds a malformed id",
                )
                .ok::<openapi::Users>("the users found"),
            users::user_info,
        )
        .route(
            Doc::get(
                at("editable-fields"),
                "The profile fields the caller may write",
            )
            .shared(edge, "configuration:read")
            .ok::<openapi::EditableFields>("the writable fields and every field's level"),
            configuration::editable_fields,
        )
        .route(
            Doc::get(
                at("login-history"),
                "A user's sign-in attempts, newest first",
            )
            .shared(edge, "profile:login-history:read")
            .read()
            .query("target", true, "the user's `_id`")
            .newest_first_paged()
            .error(
                400,
                "ClientInputError",
                "`target` is missing or not an id, or `offset` is not an id",
            )
            .error(404, "NotFound", "no user has this `target`")
            .ok::<login_history::LoginRecords>("the attempts"),
            login_history::of_target,
        )
        .route(
            Doc::get(at("invite-codes"), "A user's invite codes")
                .shared(edge, "social:invite-code:read")
                .read()
                .query("target", true, "the owner's `_id`")
                .error(400, "ClientInputError", "`target` is missing or not an id")
                .ok::<InviteCodesView>("the owner's codes"),
            users::invite_codes,
        )
        .route(
            history_query(
                Doc::get(at("history"), "A user's history, or its state at a moment")
                    .shared(edge, "profile:history:read"),
            )
            .query(
                "stream",
                false,
                "`user` (the default); `signin`: the user's sign-in attempts; `relation`: the \
                 follows, follow requests and blocks between the user and the user `with`; \
                 the last two paged alike (`at` applies only to `user`)",
            )
            .query(
                "with",
                false,
                "with `stream=relation`: the other user's `_id`",
            ),
            history::user_history,
        )
}

/// Only `/projections/status` and `/metrics`: what a process that runs projectors and no read
/// route (`userledger project`) serves for its health checks.
pub fn status_router(state: AppState, here: ProjectorsHere) -> Routes {
    status_routes().layer(Extension(here)).with_state(state)
}

/// `/projections/status`, `/metrics` and `/ready`.
fn status_routes() -> Routes<AppState> {
    Routes::new()
        .route(
            Doc::get("/projections/status", "Each read model's position and lag")
                .public()
                .fails_internally()
                .plain::<openapi::ProjectionsStatus>("application/json", "by read model"),
            projection_status::status,
        )
        .route(
            Doc::get("/metrics", "This process's metrics for Prometheus")
                .public()
                .fails_internally()
                .describe(
                    "`userledger_projection_lag_seconds`, `userledger_projection_position` and \
                     `userledger_projection_active`, labelled by `projection` (the Kafka \
                     publisher is `kafka`); then requests by route and status (counts and \
                     latency histograms), command conflicts and retries, hashing-pool \
                     saturation, rate-limit refusals, Kafka messages published and publish \
                     errors.",
                )
                .text(200, "text/plain; version=0.0.4", "Prometheus' text format"),
            projection_status::metrics,
        )
        .route(
            Doc::get("/ready", "Readiness")
                .public()
                .describe(
                    "200 `{\"ok\":1,\"checks\":{...}}` when the event store and the database \
                     answer and every read model (and the Kafka publisher, when it runs) is \
                     within 10 s of the log's head; 503 with the same shape (`ok: 0`) and each \
                     failed check's reason otherwise.",
                )
                .plain::<http_edge::openapi::schemas::Done>("application/json", "ready"),
            projection_status::ready,
        )
}

/// The read models' database, or a 500 when the service runs without one.
fn database(state: &AppState) -> Result<&sqlx::PgPool, ApiError> {
    state.database.as_ref().ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "the query service needs PostgreSQL (DATABASE_URL) for its read models"
        ))
    })
}
