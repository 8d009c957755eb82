//! A route's policy: what it declares in its route table entry ([`crate::Doc`]) and what
//! mounting it enforces, before its handler runs:
//!
//! 1. the rate limit of its class ([`RateClass`]): per IP address and per calling client;
//! 2. its place among the requests in flight of its kind ([`Access`]): reads and writes have a
//!    limit each, and liveness and the documentation none; a request that waits for its place
//!    longer than `queue_wait` is answered 503 with Retry-After ([`place`]);
//! 3. the caller, on the routes of an edge: the bearer token is verified once (a write's
//!    limit, the caller and its idempotency key all use that one verification), the account
//!    must not be banned or deleted, and the route's [`ScopeCheck`] must pass; the admitted
//!    [`Caller`] is left in the request's extensions for the handler's extractor;
//! 4. on writes by POST, PUT and PATCH, `Idempotency-Key` (a replayed answer waits for no
//!    place among the writes in flight; a write that runs takes one).
//!
//! So a caller without the route's scope is refused before its body or its headers are
//! read: 401 comes before a 400 for a malformed body, `X-Consistency-Token` or
//! `Idempotency-Key` (the handler's extractors ran before its scope check before the policy
//! was declared with the route). Only matched routes are enforced (axum's `route_layer`): a
//! wrong method still answers 405 and an unknown path 404, neither counted against a limit.
//!
//! A handler therefore never repeats its route's checks: what it checks is what depends on the
//! data (ranking, per-field sensitivity, the role of the application it touches).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::caller::{bearer_claims, insufficient};
use crate::auth::{Caller, Edge};
use crate::envelope::ApiError;
use crate::telemetry::RequestIds;
use crate::{idempotency, rate_limit, EdgeState};

/// The scope check of API.md §2 that a route's caller must pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeCheck {
    /// `shared E:x` ([`Caller::shared`]), with `x` given after the edge (`profile:ban:write`).
    Shared(String),
    /// `session s` ([`Caller::session`]).
    Session(String),
    /// `session s`, or the caller is a super_admin (`/roles/list`).
    SessionOrSuperAdmin(String),
    /// `session s` for one of these scopes; which one applies depends on the data (an
    /// application's role), so the handler checks that one. A caller holding none is refused
    /// naming the last.
    SessionAny(Vec<String>),
}

impl ScopeCheck {
    /// `Ok` when `caller` passes, else 401 InsufficientPrivileges naming the scope.
    pub fn check(&self, caller: &Caller) -> Result<(), ApiError> {
        match self {
            ScopeCheck::Shared(x) => caller.require_shared(x),
            ScopeCheck::Session(s) => caller.require_session(s),
            ScopeCheck::SessionOrSuperAdmin(s) => {
                if caller.session(s) || caller.is_super_admin() {
                    Ok(())
                } else {
                    Err(insufficient(s))
                }
            }
            ScopeCheck::SessionAny(scopes) => {
                if scopes.iter().any(|s| caller.session(s)) {
                    Ok(())
                } else {
                    Err(insufficient(scopes.last().map_or("", String::as_str)))
                }
            }
        }
    }
}

/// Which requests in flight a route counts among.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads: [`crate::EdgeSettings::max_concurrent_reads`] at once.
    Read,
    /// Writes and token requests: [`crate::EdgeSettings::max_concurrent_requests`] at once.
    Write,
    /// Liveness and the documentation: never wait.
    Unlimited,
}

/// The rate limit a route counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateClass {
    /// `POST /oauth/token`: per `client_id` and per IP address.
    Token,
    /// Writes: per calling client (the token's `client`) and per IP address.
    Writes,
}

impl RateClass {
    pub fn as_str(self) -> &'static str {
        match self {
            RateClass::Token => "token",
            RateClass::Writes => "writes",
        }
    }
}

/// A part of the API that can be turned off by configuration; its routes then answer as
/// unknown routes do (404), as Liquid's are not mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Liquid's `privilege.can-use-follow-apis`: following, follow requests and the follow
    /// lists ([`crate::EdgeSettings::follow_apis`]). Blocking and private accounts are not part
    /// of it, as in Liquid.
    FollowApis,
}

impl Feature {
    fn on(self, settings: &crate::EdgeSettings) -> bool {
        match self {
            Feature::FollowApis => settings.follow_apis,
        }
    }
}

/// Everything a route declares about who may call it and how it is limited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The edge whose token the route takes, and its scope check; `None`: no token.
    pub caller: Option<(Edge, ScopeCheck)>,
    pub access: Access,
    /// `Idempotency-Key` is honoured.
    pub idempotent: bool,
    pub rate: Option<RateClass>,
    /// The part of the API the route belongs to, when it can be turned off.
    pub feature: Option<Feature>,
}

impl Default for Policy {
    /// A public read: no token, no rate limit.
    fn default() -> Self {
        Self {
            caller: None,
            access: Access::Read,
            idempotent: false,
            rate: None,
            feature: None,
        }
    }
}

/// Enforces `policy` on a request of its route (the middleware [`crate::Routes::route`]
/// mounts on it), then runs the handler.
pub(crate) async fn enforce(
    State(policy): State<Arc<Policy>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(edge) = request.extensions().get::<Arc<EdgeState>>().cloned() else {
        return ApiError::internal(anyhow::anyhow!(
            "a route was mounted outside the edge's server"
        ))
        .into_response();
    };
    if policy
        .feature
        .is_some_and(|feature| !feature.on(&edge.settings))
    {
        return ApiError::no_route(request.method().as_str(), request.uri().path()).into_response();
    }
    match admit(&edge, &policy, request).await {
        Ok((request, caller, _permit)) => match caller {
            Some(caller) if policy.idempotent => {
                idempotency::run(&edge, &caller, request, next).await
            }
            _ => next.run(request).await,
        },
        Err(refused) => refused,
    }
}

/// How long a caller refused for want of a place is told to wait.
const OVERLOADED_RETRY_AFTER_SECS: u64 = 1;

/// A place among the requests in flight of one kind (`places`), waited for at most
/// [`crate::EdgeSettings::queue_wait`]: past it the service is over capacity, and the request is
/// answered 503 ServiceUnavailable with Retry-After rather than queued without bound.
pub(crate) async fn place(
    edge: &EdgeState,
    places: &Arc<Semaphore>,
) -> Result<OwnedSemaphorePermit, Response> {
    match tokio::time::timeout(edge.settings.queue_wait, places.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => {
            metrics::counter!("userledger_overloaded_total").increment(1);
            Err(ApiError::Busy {
                retry_after_secs: OVERLOADED_RETRY_AFTER_SECS,
            }
            .into_response())
        }
    }
}

/// Steps 1 to 3 of the module's list: the request to run, its caller, and its permit (held
/// until the answer is made).
async fn admit(
    edge: &EdgeState,
    policy: &Policy,
    request: Request,
) -> Result<(Request, Option<Caller>, Option<OwnedSemaphorePermit>), Response> {
    let (mut request, claims) = match policy.rate {
        Some(class) => rate_limit::limit(edge, class, request).await?,
        None => (request, None),
    };
    // An idempotent write takes its place among the writes in flight only to run, not to look
    // up or record its key ([`idempotency::run`]).
    let permit = match policy.access {
        Access::Read => Some(place(edge, &edge.reads).await?),
        Access::Write if !(policy.idempotent && policy.caller.is_some()) => {
            Some(place(edge, &edge.writes).await?)
        }
        Access::Write | Access::Unlimited => None,
    };
    let Some((route_edge, check)) = &policy.caller else {
        return Ok((request, None, permit));
    };
    let claims = claims.unwrap_or_else(|| bearer_claims(request.headers(), &edge.tokens));
    let ids = request
        .extensions()
        .get::<RequestIds>()
        .copied()
        .unwrap_or_default();
    let caller = Caller::admit(*route_edge, claims, &edge.access, ids)
        .await
        .and_then(|caller| check.check(&caller).map(|()| caller))
        .map_err(IntoResponse::into_response)?;
    request.extensions_mut().insert(caller.clone());
    Ok((request, Some(caller), permit))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::auth::{TokenClaims, TokenKind, TokenUse};

    fn admin(role: &str, scope: &[&str], client_scope: &[&str]) -> Caller {
        let strings = |scopes: &[&str]| scopes.iter().map(|s| (*s).to_owned()).collect();
        Caller {
            edge: Edge::Admin,
            request: RequestIds::new(),
            claims: TokenClaims {
                sub: Uuid::now_v7().to_string(),
                kind: TokenKind::Delegated,
                token_use: TokenUse::Access,
                role: role.into(),
                scope: strings(scope),
                client: Uuid::now_v7().to_string(),
                client_scope: strings(client_scope),
                iat: 0,
                exp: 0,
                jti: Uuid::nil(),
                family: None,
            },
        }
    }

    fn refused_scope(check: &ScopeCheck, caller: &Caller) -> Option<serde_json::Value> {
        match check.check(caller) {
            Ok(()) => None,
            Err(ApiError::InsufficientPrivileges(info)) => Some(info["requiredScope"].clone()),
            Err(other) => panic!("not a scope refusal: {other:?}"),
        }
    }

    #[test]
    fn each_check_passes_its_holder_and_refuses_naming_its_scope() {
        let nobody = admin("user", &["delegated:all"], &["delegated:all"]);
        let super_admin = admin("super_admin", &[], &[]);
        let shared = ScopeCheck::Shared("profile:ban:write".into());
        assert_eq!(
            refused_scope(&shared, &nobody),
            Some(json!("admin:profile:ban:write"))
        );
        assert_eq!(refused_scope(&shared, &super_admin), None);

        let session = ScopeCheck::Session("admin:system:client:read".into());
        assert_eq!(
            refused_scope(&session, &super_admin),
            Some(json!("admin:system:client:read")),
            "a session check has no super_admin bypass"
        );
        let holder = admin("admin", &["admin:all"], &["admin:all"]);
        assert_eq!(refused_scope(&session, &holder), None);

        let roles = ScopeCheck::SessionOrSuperAdmin("delegated:roles:read".into());
        assert_eq!(refused_scope(&roles, &super_admin), None);
        let narrow = admin("user", &["delegated:all"], &["delegated:profile:read"]);
        assert_eq!(
            refused_scope(&roles, &narrow),
            Some(json!("delegated:roles:read"))
        );

        let any = ScopeCheck::SessionAny(vec![
            "admin:system:internal-client:write".into(),
            "admin:system:external-client:write".into(),
        ]);
        let external = admin(
            "admin",
            &["admin:system:external-client:write"],
            &["admin:all"],
        );
        assert_eq!(refused_scope(&any, &external), None);
        assert_eq!(
            refused_scope(&any, &nobody),
            Some(json!("admin:system:external-client:write"))
        );
    }
}
