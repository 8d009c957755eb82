//! `POST invite-codes`: `{target, count?}` generates `count` (default 5, at most 15) codes
//! `ABCD-1234-<epoch millis>` for the user. The random parts are drawn here, not in the domain,
//! which keeps `decide` deterministic.

use std::collections::BTreeSet;

use axum::extract::State;
use chrono::{DateTime, Utc};
use events::user::{
    InviteCodeView, InviteCodesView, User, UserCommand, MAX_INVITE_CODES_PER_REQUEST,
};
use events::values::InviteCode;
use events::DomainError;
use rand::Rng;

use super::{object, optional, target};
use crate::pipeline::{domain_error, execute};
use crate::AppState;
use http_edge::auth::Caller;
use http_edge::envelope::{Answer, ApiError, FieldErrors};
use http_edge::extract::JsonBody;

const DEFAULT_COUNT: u64 = 5;

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub, edge = caller.edge.as_str()))]
pub async fn generate_invite_codes(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Answer, ApiError> {
    let map = object(&body)?;
    let mut errors = FieldErrors::new();
    let target = target(&mut errors, map);
    let count = optional(&mut errors, map, "", "count", |value| {
        value.as_u64().filter(|count| *count >= 1).ok_or_else(|| {
            events::values::ValidationError::new("count", "must be an integer of at least 1")
        })
    });
    errors.into_result()?;
    let (Some(target), count) = (target, count.unwrap_or(DEFAULT_COUNT)) else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "a parsed field is missing"
        )));
    };
    let max = MAX_INVITE_CODES_PER_REQUEST;
    let requested = usize::try_from(count).unwrap_or(usize::MAX);
    if requested > max {
        return Err(domain_error(
            DomainError::GenerationTargetExceededForRequest { requested, max },
        ));
    }
    let now = Utc::now();
    let codes = draw(requested, now);
    let outcome = execute::<User, _>(
        &*state.store,
        &target,
        &caller.command_context(),
        state.settings.command_attempts,
        |_| Ok(UserCommand::GenerateInviteCodes(codes.clone())),
    )
    .await?;
    let invite_codes = codes
        .iter()
        .map(|code| InviteCodeView::new(code.as_str(), None, &now, &now))
        .collect();
    Ok(Answer::ok(InviteCodesView { invite_codes }).at(outcome.position))
}

/// `count` distinct codes made at `at`: four random uppercase letters, four random digits and
/// the epoch milliseconds.
pub fn draw(count: usize, at: DateTime<Utc>) -> Vec<InviteCode> {
    let mut rng = rand::rng();
    let mut codes = BTreeSet::new();
    let mut drawn = Vec::with_capacity(count);
    while drawn.len() < count {
        let letters: String = (0..4)
            .map(|_| char::from(rng.random_range(b'A'..=b'Z')))
            .collect();
        let digits: String = (0..4)
            .map(|_| char::from(rng.random_range(b'0'..=b'9')))
            .collect();
        // Letters and digits drawn from these ranges always make a valid code.
        if let Ok(code) = InviteCode::compose(&letters, &digits, at) {
            if codes.insert(code.clone()) {
                drawn.push(code);
            }
        }
    }
    drawn
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawn_codes_are_distinct_and_well_formed() {
        let at = Utc::now();
        let codes = draw(15, at);
        assert_eq!(codes.len(), 15);
        let distinct: BTreeSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), 15);
        for code in &codes {
            assert!(InviteCode::parse(code.as_str()).is_ok());
            assert!(code.as_str().ends_with(&at.timestamp_millis().to_string()));
        }
    }
}
