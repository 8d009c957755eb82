//! Failed sign-ins are limited, per account (the login as typed, lowercased: an account that
//! does not exist is limited alike, so the limit tells nothing) and per IP address, by GCRA
//! cells as the rate limits (a minute's worth at once, then the configured rate). Over either
//! limit an attempt is refused without checking the password, with the answer of a wrong one.
//! Successful sign-ins count against nothing.
//!
//! The cells are kept in PostgreSQL (`sign_in_failures`), so every command process of a split
//! deployment counts the same failures; only SHA-256 digests of their keys are stored (they
//! hold what people typed as their login). A command process without PostgreSQL (over
//! EventStoreDB alone) keeps them in memory and limits what it sees.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use chrono::Utc;
use events::metadata::{Actor, ActorKind, CommandContext};
use events::sign_in::{Attempt, RefusalReason, SignInEvent, SignIns};
use events::values::UserId;
use http_edge::rate_limit::RateLimiter;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::oauth::{self, Account};
use crate::pipeline::append_facts;
use crate::AppState;
use http_edge::envelope::ApiError;

/// The table of the shared cells: a key's digest and its theoretical arrival time.
pub const TABLES: &[&str] = &["CREATE TABLE IF NOT EXISTS sign_in_failures (
        key_hash bytea       PRIMARY KEY,
        tat      timestamptz NOT NULL
    )"];

/// The window a limit is stated over: a minute's worth of failures may come at once.
const WINDOW: Duration = Duration::from_secs(60);

pub struct SignInGuard {
    /// The time between failures each limit allows (`None`: no limit).
    per_account: Option<Duration>,
    per_address: Option<Duration>,
    cells: Cells,
}

/// Where the cells are kept.
enum Cells {
    Shared(PgPool),
    Local {
        accounts: RateLimiter,
        addresses: RateLimiter,
    },
}

impl SignInGuard {
    /// `per_account` and `per_ip` failed sign-ins a minute (0 turns a limit off), counted in
    /// `database` when there is one.
    pub fn new(per_account: u32, per_ip: u32, database: Option<PgPool>) -> Self {
        let interval = |per_minute: u32| (per_minute > 0).then(|| WINDOW / per_minute);
        Self {
            per_account: interval(per_account),
            per_address: interval(per_ip),
            cells: match database {
                Some(pool) => Cells::Shared(pool),
                None => Cells::Local {
                    accounts: RateLimiter::per_minute(per_account),
                    addresses: RateLimiter::per_minute(per_ip),
                },
            },
        }
    }

    /// The keys of an attempt's cells: its account's (the login as typed, lowercased) and, when
    /// known, its address's.
    fn keys(login: &str, address: Option<IpAddr>) -> (String, Option<String>) {
        let account = format!("account:{}", login.trim().to_lowercase());
        (account, address.map(|ip| format!("ip:{ip}")))
    }

    /// The limited cells of an attempt: their digests and intervals (in seconds).
    fn cells(&self, login: &str, address: Option<IpAddr>) -> (Vec<Vec<u8>>, Vec<f64>) {
        let (account, address) = Self::keys(login, address);
        [
            (Some(account), self.per_account),
            (address, self.per_address),
        ]
        .into_iter()
        .filter_map(|(key, interval)| Some((key?, interval?)))
        .map(|(key, interval)| (Sha256::digest(key).to_vec(), interval.as_secs_f64()))
        .unzip()
    }

    /// The keys of an attempt as the in-memory limiters take them.
    fn local_keys(login: &str, address: Option<IpAddr>) -> (Vec<String>, Vec<String>) {
        let (account, address) = Self::keys(login, address);
        (vec![account], address.into_iter().collect())
    }

    /// Whether attempts for `login` from `address` are refused now.
    async fn locked(&self, login: &str, address: Option<IpAddr>) -> Result<bool, ApiError> {
        match &self.cells {
            Cells::Shared(pool) => {
                let (keys, intervals) = self.cells(login, address);
                if keys.is_empty() {
                    return Ok(false);
                }
                let locked = sqlx::query_scalar(
                    "SELECT EXISTS (
                        SELECT 1 FROM unnest($1::bytea[], $2::float8[]) AS cell(key_hash, secs)
                          JOIN sign_in_failures USING (key_hash)
                         WHERE tat > now() + make_interval(secs => $3 - cell.secs))",
                )
                .bind(&keys)
                .bind(&intervals)
                .bind(WINDOW.as_secs_f64())
                .fetch_one(pool)
                .await?;
                Ok(locked)
            }
            Cells::Local {
                accounts,
                addresses,
            } => {
                let (account, address) = Self::local_keys(login, address);
                let now = Instant::now();
                Ok(!(accounts.allows(&account, now) && addresses.allows(&address, now)))
            }
        }
    }

    /// Counts a failed attempt. A cell over its limit already stays where it is (it is not
    /// pushed further out).
    async fn failed(&self, login: &str, address: Option<IpAddr>) -> Result<(), ApiError> {
        match &self.cells {
            Cells::Shared(pool) => {
                let (keys, intervals) = self.cells(login, address);
                if keys.is_empty() {
                    return Ok(());
                }
                sqlx::query(
                    "INSERT INTO sign_in_failures (key_hash, tat)
                     SELECT key_hash, now() + make_interval(secs => secs)
                       FROM unnest($1::bytea[], $2::float8[]) AS cell(key_hash, secs)
                     ON CONFLICT (key_hash) DO UPDATE SET tat = CASE
                         WHEN greatest(sign_in_failures.tat, now()) + (EXCLUDED.tat - now())
                              <= now() + make_interval(secs => $3)
                         THEN greatest(sign_in_failures.tat, now()) + (EXCLUDED.tat - now())
                         ELSE sign_in_failures.tat END",
                )
                .bind(&keys)
                .bind(&intervals)
                .bind(WINDOW.as_secs_f64())
                .execute(pool)
                .await?;
            }
            Cells::Local {
                accounts,
                addresses,
            } => {
                let (account, address) = Self::local_keys(login, address);
                let now = Instant::now();
                let _ = accounts.check(&account, now);
                let _ = addresses.check(&address, now);
            }
        }
        Ok(())
    }
}

/// Forgets the cells that are full again (their arrival time has passed): the rows forgotten.
pub async fn sweep(pool: &PgPool) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM sign_in_failures WHERE tat < now()")
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

/// Why a sign-in attempt failed, for the log and the record (never for the caller, who is
/// told the same thing every time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many failures for the account or the address.
    Locked,
    /// A wrong password, or no such account.
    WrongCredentials,
    /// The account is banned (or deleted).
    NotAllowed,
}

/// A sign-in attempt as it came in.
#[derive(Debug, Clone, Copy)]
pub struct Attempted<'a> {
    /// A username or an email.
    pub login: &'a str,
    pub password: &'a str,
    pub address: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
    /// The OAuth `client_id` of the application signed in to, when known.
    pub client_id: Option<&'a str>,
}

/// The user whose login and password these are and who may sign in, or why not; a failure
/// counts against the limits. An unknown account gets the same answer and costs the same
/// hashing work as a known one with a wrong password. Every attempt on an account that exists
/// is recorded on its sign-in stream: a success before answering, a refusal in the background
/// (so that recording takes no time an unknown account's answer would not take).
pub async fn attempt(
    state: &AppState,
    attempted: Attempted<'_>,
) -> Result<Result<Account, Refusal>, ApiError> {
    let Attempted {
        login,
        password,
        address,
        ..
    } = attempted;
    let guard = &state.sign_in_guard;
    let account = oauth::find_user(state, login).await?;
    let user = account.as_ref().map(|account| &account.user);
    let refusal = if guard.locked(login, address).await? {
        tracing::warn!(?address, "a sign-in was refused: too many failures");
        Some(Refusal::Locked)
    } else {
        let verified = oauth::check_password(state, user, password).await?;
        match user {
            Some(user) if verified && !user.deleted && !user.banned => None,
            Some(_) if verified => Some(Refusal::NotAllowed),
            _ => Some(Refusal::WrongCredentials),
        }
    };
    if refusal.is_some() {
        guard.failed(login, address).await?;
    }
    let Some(account) = account else {
        return Ok(Err(refusal.unwrap_or(Refusal::WrongCredentials)));
    };
    let (state, id, record) = (
        state.clone(),
        account.user.id,
        record_of(&attempted, refusal),
    );
    match refusal {
        None => {
            remember(&state, id, record).await?;
            Ok(Ok(account))
        }
        Some(refusal) => {
            tokio::spawn(async move {
                if let Err(error) = remember(&state, id, record).await {
                    tracing::error!(%error, user = %id, "a refused sign-in was not recorded");
                }
            });
            Ok(Err(refusal))
        }
    }
}

fn record_of(attempted: &Attempted<'_>, refusal: Option<Refusal>) -> SignInEvent {
    let attempt = Attempt {
        source: "password".to_owned(),
        client_id: attempted.client_id.map(str::to_owned),
        ip_address: attempted.address.map(|ip| ip.to_string()),
        user_agent: attempted
            .user_agent
            .map(|agent| agent.chars().take(1024).collect()),
    };
    match refusal {
        None => SignInEvent::Succeeded { attempt },
        Some(refusal) => SignInEvent::Refused {
            attempt,
            reason: match refusal {
                Refusal::Locked => RefusalReason::Locked,
                Refusal::WrongCredentials => RefusalReason::PasswordRejected,
                Refusal::NotAllowed => RefusalReason::Banned,
            },
        },
    }
}

/// Appends the attempt to the user's sign-in stream, as the user's own act.
async fn remember(state: &AppState, user: UserId, event: SignInEvent) -> Result<(), ApiError> {
    let actor = Actor {
        id: user.to_string(),
        kind: ActorKind::User,
    };
    let context = CommandContext::new(Uuid::now_v7(), actor, Utc::now());
    append_facts::<SignIns>(
        &*state.store,
        &user,
        &context,
        state.settings.command_attempts,
        &[event],
    )
    .await
    .map(|_| ())
}
