//! Revocation: a token stops working once its user is banned or deleted, or its client is
//! deleted, or its grant was revoked ([`super::revocation`]: signed out, a code or refresh token
//! presented twice). Tokens are stateless, so every request asks the event store (and
//! PostgreSQL beside it), through a cache of a few seconds (`EdgeSettings::revocation_check_ttl`,
//! kept by `moka`); that bounds how long a revoked token lives in another process. The process
//! that revokes forgets its cached answers at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use events::application::Application;
use events::store::EventStore;
use events::user::User;
use events::values::{ApplicationId, UserId};
use events::{load, Aggregate};
use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use super::revocation;
use super::tokens::{TokenClaims, TokenKind};
use crate::envelope::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    Active,
    /// A banned user: 403 Banned.
    Banned,
    /// Deleted or never existed: the token is revoked.
    Gone,
}

/// A token's account and grant: its kind, subject, issuing client, family and issue time.
type Account = (TokenKind, String, String, Option<uuid::Uuid>, u64);

/// Answers kept at most, and subjects remembered as forgotten at most: beyond them the least
/// used go (a dropped answer is cheap to recompute).
const MAX_ENTRIES: u64 = 100_000;

pub struct AccessCache {
    store: Arc<dyn EventStore>,
    /// Where revoked grants are kept; `None`: only accounts are checked.
    database: Option<sqlx::PgPool>,
    /// How long an answer counts from when it was asked for (moka's own expiry counts from
    /// its insertion, after the look-up).
    ttl: Duration,
    /// Each account's status, and when it was asked for; kept one TTL.
    answers: Cache<Account, (Instant, AccountStatus)>,
    /// When each subject (user or application id) was last forgotten: answers asked for
    /// before that are stale, even one whose look-up was under way when the subject was
    /// forgotten. Kept one TTL, after which those answers have expired anyway.
    forgotten: Cache<String, Instant>,
}

/// A cache of at most [`MAX_ENTRIES`], each kept `ttl`; when full, the least recently used
/// goes (never a new entry: a subject just forgotten must be remembered as such).
fn bounded<K, V>(ttl: Duration) -> Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(MAX_ENTRIES)
        .time_to_live(ttl)
        .eviction_policy(EvictionPolicy::lru())
        .build()
}

impl AccessCache {
    pub fn new(store: Arc<dyn EventStore>, database: Option<sqlx::PgPool>, ttl: Duration) -> Self {
        Self {
            store,
            database,
            ttl,
            answers: bounded(ttl),
            forgotten: bounded(ttl),
        }
    }

    /// Whether the token's account (and the client that issued it) may still act.
    pub async fn status(&self, claims: &TokenClaims) -> Result<AccountStatus, ApiError> {
        let key = (
            claims.kind,
            claims.sub.clone(),
            claims.client.clone(),
            claims.family,
            claims.iat,
        );
        if let Some((at, status)) = self.answers.get(&key) {
            let forgotten_since = |id: &String| self.forgotten.get(id).is_some_and(|f| f >= at);
            let family_forgotten = key.3.is_some_and(|f| forgotten_since(&f.to_string()));
            if at.elapsed() < self.ttl
                && !forgotten_since(&key.1)
                && !forgotten_since(&key.2)
                && !family_forgotten
            {
                return Ok(status);
            }
        }
        let asked_at = Instant::now();
        let status = self.look_up(claims).await?;
        self.answers.insert(key, (asked_at, status));
        Ok(status)
    }

    /// Forgets what is cached about an account, so that its next request is checked afresh
    /// (called by the writes that ban or delete). Constant time: it marks the subject rather
    /// than searching the answers.
    pub fn forget(&self, subject: &str) {
        self.forgotten.insert(subject.to_owned(), Instant::now());
    }

    /// Forgets what is cached about a family's tokens (called when it is revoked).
    pub fn forget_family(&self, family: uuid::Uuid) {
        self.forget(&family.to_string());
    }

    async fn look_up(&self, claims: &TokenClaims) -> Result<AccountStatus, ApiError> {
        if !self.client_is_active(&claims.client).await? {
            return Ok(AccountStatus::Gone);
        }
        match claims.kind {
            TokenKind::Client => Ok(AccountStatus::Active),
            TokenKind::Delegated => {
                let Ok(id) = UserId::parse(&claims.sub) else {
                    return Ok(AccountStatus::Gone);
                };
                let recorded = self
                    .store
                    .read_stream(&<User as Aggregate>::stream_name(&id), 0)
                    .await?;
                let user = load::<User>(&recorded).map_err(ApiError::internal)?.state;
                let status = match user {
                    Some(user) if user.deleted => AccountStatus::Gone,
                    Some(user) if user.banned => AccountStatus::Banned,
                    Some(_) => AccountStatus::Active,
                    None => AccountStatus::Gone,
                };
                if status != AccountStatus::Active {
                    return Ok(status);
                }
                match &self.database {
                    Some(pool)
                        if revocation::is_revoked(
                            pool,
                            id.as_uuid(),
                            claims.family,
                            claims.iat,
                        )
                        .await? =>
                    {
                        Ok(AccountStatus::Gone)
                    }
                    _ => Ok(status),
                }
            }
        }
    }

    async fn client_is_active(&self, client: &str) -> Result<bool, ApiError> {
        let Ok(id) = ApplicationId::parse(client) else {
            return Ok(false);
        };
        let recorded = self
            .store
            .read_stream(&<Application as Aggregate>::stream_name(&id), 0)
            .await?;
        let application = load::<Application>(&recorded)
            .map_err(ApiError::internal)?
            .state;
        Ok(application.is_some_and(|a| !a.deleted))
    }
}
