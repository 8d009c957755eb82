//! `POST invite-codes`: `{target, count?}` generates `count` (default 5, at most 15) codes
//! `ABCD-1234-<epoch millis>` for the user. The random parts are drawn here, not in the domain,
//! which keeps `decide` deterministic.

use std::collections::BTreeSet;

use axum::extract::State;
use chrono::{DateTime, Utc};
use events::user::{
    InviteCodeView, InviteCodesView, User, UserCommand, MAX_INVITE_CODES_PER_REQUEST,
};
use events::values::{FieldValue, InviteCode, UserId, ValidationError};
use events::DomainError;
use rand::Rng;
use serde_json::Value;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::pipeline::{domain_error, execute};
use crate::AppState;
use http_edge::auth::Caller;
use http_edge::body::{Body, Fields, Json};
use http_edge::envelope::{Answer, ApiError};

/// Codes made when a request names no `count` (Liquid's `user.account-creation.invites-per-person`).
pub const DEFAULT_COUNT: usize = 5;

/// `POST invite-codes`.
#[derive(Debug, ToSchema)]
pub struct InviteCodesBody {
    /// The owner's `_id`.
    pub target: UserId,
    pub count: Option<CodeCount>,
}

impl Body for InviteCodesBody {
    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let target = fields.required("target");
        let count = fields.optional("count");
        Some(Self {
            target: target?,
            count: count?,
        })
    }
}

/// How many codes to generate: at least 1 (default 5). More than 15 is refused as Liquid
/// refuses it, with 400 GenerationTargetExceededForRequest.
#[derive(Debug, Clone, Copy)]
pub struct CodeCount(usize);

impl FieldValue for CodeCount {
    fn from_json(value: &Value) -> Result<Self, ValidationError> {
        events::values::rules::whole_number_of(value)
            .filter(|count| *count >= 1)
            .map(|count| Self(usize::try_from(count).unwrap_or(usize::MAX)))
            .ok_or_else(|| ValidationError::new("count", "must be an integer of at least 1"))
    }
}

impl PartialSchema for CodeCount {
    fn schema() -> RefOr<Schema> {
        events::values::rules::whole_number_schema(
            "How many codes: default 5; more than 15 is 400 \
             GenerationTargetExceededForRequest.",
            1,
            None,
        )
    }
}

impl ToSchema for CodeCount {}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub, edge = caller.edge.as_str()))]
pub async fn generate_invite_codes(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<InviteCodesBody>,
) -> Result<Answer, ApiError> {
    let target = body.target;
    let requested = body.count.map_or(DEFAULT_COUNT, |count| count.0);
    let max = MAX_INVITE_CODES_PER_REQUEST;
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
