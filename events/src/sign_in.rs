//! Sign-in attempts as facts: every attempt on an account that exists, succeeded or refused
//! (and why), with how (the source), through which application, from which address and user
//! agent. They are kept on a stream of their own per user (`signin-<user id>`), so that the
//! user aggregate stays small and a user's history of sign-ins is one read.
//!
//! Attempts on accounts that do not exist have no stream: there is nobody to keep them for.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::metadata::{CommandContext, EventFamily};
use crate::store::UniqueClaim;
use crate::values::rules::wire_enum;
use crate::values::UserId;
use crate::{Aggregate, DomainError};

/// One attempt: how, through which application, from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// `password` (the login page, `POST /user/login` and the password grant).
    pub source: String,
    /// The OAuth `client_id` of the application the person signed in to, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

wire_enum!(
    /// Why a sign-in was refused: a wrong password (`password_rejected`, Liquid's word), a
    /// banned account, or too many failures (`locked`).
    RefusalReason, "reason" {
        PasswordRejected = "password_rejected",
        Banned = "banned",
        Locked = "locked",
    }
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all_fields = "camelCase")]
pub enum SignInEvent {
    #[serde(rename = "SignInSucceeded")]
    Succeeded {
        #[serde(flatten)]
        attempt: Attempt,
    },
    #[serde(rename = "SignInRefused")]
    Refused {
        #[serde(flatten)]
        attempt: Attempt,
        reason: RefusalReason,
    },
}

impl EventFamily for SignInEvent {
    const EVENT_TYPES: &'static [&'static str] = &["SignInSucceeded", "SignInRefused"];

    fn event_type(&self) -> &'static str {
        match self {
            Self::Succeeded { .. } => "SignInSucceeded",
            Self::Refused { .. } => "SignInRefused",
        }
    }
}

/// A user's sign-in attempts: a stream that only grows.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignIns;

/// Record an attempt.
#[derive(Debug, Clone)]
pub struct Record(pub SignInEvent);

impl Aggregate for SignIns {
    type Id = UserId;
    /// How many attempts were recorded.
    type State = u64;
    type Command = Record;
    type Event = SignInEvent;

    const CATEGORY: &'static str = "signin";

    fn decide(
        _: &u64,
        Record(event): Record,
        _: &CommandContext,
    ) -> Result<Vec<SignInEvent>, DomainError> {
        Ok(vec![event])
    }

    fn evolve(state: u64, _: &SignInEvent) -> u64 {
        state + 1
    }

    fn unique_values(_: &u64) -> BTreeSet<UniqueClaim> {
        BTreeSet::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_recorded_as_they_come_in_liquid_words() {
        let attempt = Attempt {
            source: "password".into(),
            client_id: Some("nitrogen_ui".into()),
            ip_address: Some("127.0.0.1".into()),
            user_agent: None,
        };
        let refused = SignInEvent::Refused {
            attempt: attempt.clone(),
            reason: RefusalReason::PasswordRejected,
        };
        let json = serde_json::to_value(&refused).unwrap();
        assert_eq!(json["type"], "SignInRefused");
        assert_eq!(json["data"]["reason"], "password_rejected");
        assert_eq!(json["data"]["ipAddress"], "127.0.0.1");
        assert_eq!(json["data"]["clientId"], "nitrogen_ui");
        assert!(json["data"].get("userAgent").is_none());
        assert_eq!(
            serde_json::from_value::<SignInEvent>(json).unwrap(),
            refused
        );
        assert_eq!(
            SignIns::fold([&refused, &SignInEvent::Succeeded { attempt }]),
            2
        );
    }
}
