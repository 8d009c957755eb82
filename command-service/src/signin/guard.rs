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

use events::user::User;
use http_edge::rate_limit::RateLimiter;

use crate::oauth;
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

/// Why a sign-in attempt failed, for the log (never for the caller, who is told the same
/// thing every time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many failures for the account or the address.
    Locked,
    /// A wrong password, or no such account.
    WrongCredentials,
    /// The account is banned (or deleted).
    NotAllowed,
}

/// The user whose `login` and `password` these are and who may sign in, or why not; counted
/// against the limits when it fails. The same answer and the same hashing work for an unknown
/// account as for a known one with a wrong password.
pub async fn attempt(
    state: &AppState,
    login: &str,
    password: &str,
    address: Option<IpAddr>,
) -> Result<Result<User, Refusal>, ApiError> {
    let guard = &state.sign_in_guard;
    if guard.locked(login, address) {
        tracing::warn!(?address, "a sign-in was refused: too many failures");
        return Ok(Err(Refusal::Locked));
    }
    let outcome = match oauth::verify_credentials(state, login, password).await? {
        None => Err(Refusal::WrongCredentials),
        Some(user) if user.deleted || user.banned => Err(Refusal::NotAllowed),
        Some(user) => Ok(user),
    };
    if outcome.is_err() {
        guard.failed(login, address);
    }
    Ok(outcome)
}
