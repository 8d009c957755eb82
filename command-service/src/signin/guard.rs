//! Failed sign-ins are limited, per account (the login as typed, lowercased: an account that
//! does not exist is limited alike, so the limit tells nothing) and per IP address, by the
//! same GCRA cells as the rate limits (a minute's worth at once, then the configured rate).
//! Over either limit an attempt is refused without checking the password, with the answer of a
//! wrong one. Successful sign-ins count against nothing.
//!
//! The cells are this process's: in a split deployment each command process limits what it
//! sees (with N processes behind a balancer, an attacker gets at most N times the rate).

use std::net::IpAddr;
use std::time::Instant;

use chrono::Utc;
use events::metadata::{Actor, ActorKind, CommandContext};
use events::sign_in::{Attempt, RefusalReason, SignInEvent, SignIns};
use events::values::UserId;
use http_edge::rate_limit::RateLimiter;
use uuid::Uuid;

use crate::oauth::{self, Account};
use crate::pipeline::append_facts;
use crate::AppState;
use http_edge::envelope::ApiError;

pub struct SignInGuard {
    accounts: RateLimiter,
    addresses: RateLimiter,
}

impl SignInGuard {
    /// `per_account` and `per_ip` failed sign-ins a minute; 0 turns a limit off.
    pub fn new(per_account: u32, per_ip: u32) -> Self {
        Self {
            accounts: RateLimiter::per_minute(per_account),
            addresses: RateLimiter::per_minute(per_ip),
        }
    }

    fn keys(login: &str, address: Option<IpAddr>) -> (Vec<String>, Vec<String>) {
        let account = vec![format!("account:{}", login.trim().to_lowercase())];
        let address = address.map(|ip| format!("ip:{ip}")).into_iter().collect();
        (account, address)
    }

    /// Whether attempts for `login` from `address` are refused now.
    fn locked(&self, login: &str, address: Option<IpAddr>) -> bool {
        let (account, address) = Self::keys(login, address);
        let now = Instant::now();
        !(self.accounts.allows(&account, now) && self.addresses.allows(&address, now))
    }

    /// Counts a failed attempt.
    fn failed(&self, login: &str, address: Option<IpAddr>) {
        let (account, address) = Self::keys(login, address);
        let now = Instant::now();
        // Over the limit already: the cell stays where it is (it is not pushed further out).
        let _ = self.accounts.check(&account, now);
        let _ = self.addresses.check(&address, now);
    }
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
    let refusal = if guard.locked(login, address) {
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
        guard.failed(login, address);
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
