//! The verified caller of a request, and the contract's two scope checks (API.md §2).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use events::metadata::{Actor, CommandContext};
use events::scopes;
use events::values::{ApplicationId, RoleId, UserId};
use serde_json::json;

use super::access::{AccessCache, AccountStatus};
use super::tokens::{TokenClaims, TokenError, TokenKeys, TokenKind, TokenUse};
use crate::envelope::ApiError;
use crate::telemetry::RequestIds;

/// Which side of the API a route belongs to: `admin` routes take delegated tokens, `client`
/// routes take client tokens. It is also the `E` of the `shared E:x` check. A route declares
/// its edge in its policy ([`crate::policy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    Admin,
    Client,
}

impl Edge {
    pub fn token_kind(self) -> TokenKind {
        match self {
            Edge::Admin => TokenKind::Delegated,
            Edge::Client => TokenKind::Client,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Edge::Admin => "admin",
            Edge::Client => "client",
        }
    }
}

/// The caller of a request, verified: a valid, unexpired access token of the kind the route
/// takes, whose user and client may still act.
#[derive(Debug, Clone)]
pub struct Caller {
    pub edge: Edge,
    pub claims: TokenClaims,
    /// The request's ids: the causation and correlation ids of the events it causes.
    pub request: RequestIds,
}

impl Caller {
    pub fn kind(&self) -> TokenKind {
        self.claims.kind
    }

    pub fn role(&self) -> &str {
        &self.claims.role
    }

    pub fn is_super_admin(&self) -> bool {
        self.claims.kind == TokenKind::Delegated
            && self.claims.role == RoleId::super_admin().as_str()
    }

    /// The context this request's command is decided in: the request's id as the command id
    /// (the events' causation id), its correlation id, the caller as the actor, now.
    pub fn command_context(&self) -> CommandContext {
        CommandContext::new(self.request.request, self.actor(), chrono::Utc::now())
            .correlated_with(self.request.correlation)
    }

    /// The actor recorded in the events this caller causes.
    pub fn actor(&self) -> Actor {
        match self.claims.kind {
            TokenKind::Delegated => match UserId::parse(&self.claims.sub) {
                Ok(id) => Actor::user(id),
                Err(_) => Actor::system(),
            },
            TokenKind::Client => match ApplicationId::parse(&self.claims.sub) {
                Ok(id) => Actor::client(id),
                Err(_) => Actor::system(),
            },
        }
    }

    /// Whether the token's own scope grants `scope` (e.g. for `access`, which may only hand
    /// out scopes the caller holds).
    pub fn holds(&self, scope: &str) -> bool {
        self.is_super_admin() || scopes::set_grants(&self.claims.scope, scope)
    }

    /// The `shared E:x` check: the token grants `client:x`; or it grants `admin:x` and so does
    /// the issuing client's scope; or the caller is a super_admin.
    pub fn shared(&self, x: &str) -> bool {
        let client = format!("client:{x}");
        let admin = format!("admin:{x}");
        scopes::set_grants(&self.claims.scope, &client)
            || (scopes::set_grants(&self.claims.scope, &admin)
                && scopes::set_grants(&self.claims.client_scope, &admin))
            || self.is_super_admin()
    }

    /// The `session s` check: the token's scope and the issuing client's scope both grant `s`.
    pub fn session(&self, s: &str) -> bool {
        scopes::set_grants(&self.claims.scope, s)
            && scopes::set_grants(&self.claims.client_scope, s)
    }

    /// [`Self::shared`] with `x` given after the edge (`profile:ban:write`), or 401
    /// InsufficientPrivileges naming the scope.
    pub fn require_shared(&self, x: &str) -> Result<(), ApiError> {
        if self.shared(x) {
            Ok(())
        } else {
            Err(insufficient(&format!("{}:{x}", self.edge.as_str())))
        }
    }

    pub fn require_session(&self, s: &str) -> Result<(), ApiError> {
        if self.session(s) {
            Ok(())
        } else {
            Err(insufficient(s))
        }
    }
}

pub fn insufficient(scope: &str) -> ApiError {
    ApiError::InsufficientPrivileges(json!({ "requiredScope": scope }))
}

impl Caller {
    /// The caller of a request on `edge` whose bearer token verified as `claims`: an access
    /// token of the edge's kind whose user and client may still act.
    pub(crate) async fn admit(
        edge: Edge,
        claims: Result<TokenClaims, ApiError>,
        access: &AccessCache,
        request: RequestIds,
    ) -> Result<Caller, ApiError> {
        let claims = claims?;
        if claims.token_use != TokenUse::Access {
            return Err(ApiError::Unauthorized(
                "a refresh token is not an access token",
            ));
        }
        if claims.kind != edge.token_kind() {
            return Err(ApiError::Unauthorized(match edge {
                Edge::Admin => "this route takes a user's (delegated) token",
                Edge::Client => "this route takes a client token",
            }));
        }
        match access.status(&claims).await? {
            AccountStatus::Active => Ok(Caller {
                edge,
                claims,
                request,
            }),
            AccountStatus::Banned => Err(ApiError::Banned),
            AccountStatus::Gone => Err(ApiError::Unauthorized("the token has been revoked")),
        }
    }
}

/// The caller that the route's policy admitted (see [`crate::policy`]): the token was verified
/// once, before the handler, and the caller left in the request's extensions.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(ApiError::Unauthorized("no token is accepted here"))
    }
}

/// The verified claims of the bearer token in `headers`.
pub fn bearer_claims(headers: &HeaderMap, tokens: &TokenKeys) -> Result<TokenClaims, ApiError> {
    let header = headers
        .get(AUTHORIZATION)
        .ok_or(ApiError::Unauthorized("no bearer token"))?;
    let token = header
        .to_str()
        .ok()
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or(ApiError::Unauthorized("malformed bearer token"))?;
    tokens.verify(token).map_err(|error| match error {
        TokenError::Expired => ApiError::Unauthorized("the token has expired"),
        TokenError::Invalid => ApiError::Unauthorized("the token is not valid"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn caller(kind: TokenKind, role: &str, scope: &[&str], client_scope: &[&str]) -> Caller {
        Caller {
            request: RequestIds::new(),
            edge: match kind {
                TokenKind::Delegated => Edge::Admin,
                TokenKind::Client => Edge::Client,
            },
            claims: TokenClaims {
                sub: Uuid::now_v7().to_string(),
                kind,
                token_use: TokenUse::Access,
                role: role.into(),
                scope: scope.iter().map(|s| s.to_string()).collect(),
                client: Uuid::now_v7().to_string(),
                client_scope: client_scope.iter().map(|s| s.to_string()).collect(),
                iat: 0,
                exp: 0,
                jti: Uuid::nil(),
                family: None,
            },
        }
    }

    #[test]
    fn shared_passes_on_client_scope_or_admin_scope_held_by_both() {
        let client = caller(
            TokenKind::Client,
            "internal_client",
            &["client:all"],
            &["client:all"],
        );
        assert!(client.shared("profile:ban:write"));

        let admin = caller(
            TokenKind::Delegated,
            "admin",
            &["admin:profile:all"],
            &["admin:all"],
        );
        assert!(admin.shared("profile:ban:write"));
        let admin_via_weak_client = caller(
            TokenKind::Delegated,
            "admin",
            &["admin:profile:all"],
            &["delegated:all"],
        );
        assert!(!admin_via_weak_client.shared("profile:ban:write"));

        let super_admin = caller(TokenKind::Delegated, "super_admin", &[], &[]);
        assert!(super_admin.shared("profile:ban:write"));
        let user = caller(TokenKind::Delegated, "user", &["delegated:all"], &["*"]);
        assert!(!user.shared("profile:ban:write"));
    }

    #[test]
    fn session_needs_both_scopes_and_has_no_super_admin_bypass() {
        let both = caller(
            TokenKind::Delegated,
            "admin",
            &["admin:profile:all"],
            &["admin:all"],
        );
        assert!(both.session("admin:profile:verifications:write"));
        let token_only = caller(
            TokenKind::Delegated,
            "admin",
            &["admin:all"],
            &["delegated:all"],
        );
        assert!(!token_only.session("admin:profile:verifications:write"));
        let super_admin = caller(TokenKind::Delegated, "super_admin", &[], &[]);
        assert!(!super_admin.session("admin:profile:verifications:write"));
    }

    #[test]
    fn sensitivity_levels_are_siblings() {
        let extreme = caller(
            TokenKind::Client,
            "internal_client",
            &["client:profile:sensitive:extreme:write"],
            &["client:all"],
        );
        assert!(extreme.shared("profile:sensitive:extreme:write"));
        assert!(!extreme.shared("profile:sensitive:high:write"));
    }
}
