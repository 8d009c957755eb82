//! Revocation: a token stops working once its user is banned or deleted, or its client is
//! deleted. Tokens are stateless, so every request asks the event store, through a cache of a
//! few seconds (`Settings::revocation_check_ttl`); that bounds how long a revoked token lives.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use events::application::Application;
use events::store::EventStore;
use events::user::User;
use events::values::{ApplicationId, UserId};
use events::{load, Aggregate};

use super::caller::TokenKind;
use super::tokens::TokenClaims;
use crate::envelope::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    Active,
    /// A banned user: 403 Banned.
    Banned,
    /// Deleted or never existed: the token is revoked.
    Gone,
}

/// A token's account: its kind, subject and issuing client.
type Account = (TokenKind, String, String);
type Answers = HashMap<Account, (Instant, AccountStatus)>;

#[derive(Default)]
struct Cached {
    answers: Answers,
    /// When each subject (user or application id) was last forgotten: answers cached before
    /// that are stale. Kept for one TTL, after which those answers have expired anyway.
    forgotten: HashMap<String, Instant>,
}

pub struct AccessCache {
    store: Arc<dyn EventStore>,
    ttl: Duration,
    entries: Mutex<Cached>,
}

/// Beyond this many cached answers the cache is emptied: stale answers are cheap to recompute.
const MAX_ENTRIES: usize = 100_000;

impl AccessCache {
    pub fn new(store: Arc<dyn EventStore>, ttl: Duration) -> Self {
        Self {
            store,
            ttl,
            entries: Mutex::new(Cached::default()),
        }
    }

    /// Whether the token's account (and the client that issued it) may still act.
    pub async fn status(&self, claims: &TokenClaims) -> Result<AccountStatus, ApiError> {
        let key = (claims.kind, claims.sub.clone(), claims.client.clone());
        {
            let cached = self.lock();
            if let Some((at, status)) = cached.answers.get(&key) {
                let forgotten_since =
                    |id: &String| cached.forgotten.get(id).is_some_and(|f| f >= at);
                if at.elapsed() < self.ttl && !forgotten_since(&key.1) && !forgotten_since(&key.2) {
                    return Ok(*status);
                }
            }
        }
        let asked_at = Instant::now();
        let status = self.look_up(claims).await?;
        let mut cached = self.lock();
        if cached.answers.len() >= MAX_ENTRIES {
            cached.answers.clear();
        }
        cached.answers.insert(key, (asked_at, status));
        Ok(status)
    }

    /// Forgets what is cached about an account, so that its next request is checked afresh
    /// (called by the writes that ban or delete). Constant time: it marks the subject rather
    /// than searching the answers.
    pub fn forget(&self, subject: &str) {
        let ttl = self.ttl;
        let mut cached = self.lock();
        if cached.forgotten.len() >= MAX_ENTRIES {
            cached.forgotten.retain(|_, at| at.elapsed() < ttl);
        }
        cached.forgotten.insert(subject.to_owned(), Instant::now());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cached> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
                Ok(match user {
                    Some(user) if user.deleted => AccountStatus::Gone,
                    Some(user) if user.banned => AccountStatus::Banned,
                    Some(_) => AccountStatus::Active,
                    None => AccountStatus::Gone,
                })
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
