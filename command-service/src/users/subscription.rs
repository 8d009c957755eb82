//! `POST subscription`: `{target, state, expiry? (required when state is true), tier?,
//! subscriptionIdentifier?}`, tiers from `Settings::subscription_tiers`; and
//! `POST subscription-cancel`: `{target, cancelled}`. Readers see an expired or base-tier
//! subscription as not subscribed (hydration, in the user view).

use axum::extract::State;
use chrono::{DateTime, Utc};
use events::user::{SubscriptionChange, User, UserCommand};
use events::values::{SubscriptionIdentifier, ValidationError};
use serde_json::Value;

use super::{boolean, object, optional, required, target, text};
use crate::pipeline::execute;
use crate::AppState;
use http_edge::auth::Caller;
use http_edge::envelope::{Answer, ApiError, FieldError, FieldErrors};
use http_edge::extract::JsonBody;

fn expiry(value: &str) -> Result<DateTime<Utc>, ValidationError> {
    DateTime::parse_from_rfc3339(value)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| ValidationError::new("expiry", "must be an ISO-8601 date and time"))
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub, edge = caller.edge.as_str()))]
pub async fn change_subscription(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Answer, ApiError> {
    let map = object(&body)?;
    let mut errors = FieldErrors::new();
    let target = target(&mut errors, map);
    let on = required(&mut errors, map, "", "state", boolean);
    let expiry = optional(&mut errors, map, "", "expiry", text(expiry));
    let tiers = &state.settings.subscription_tiers;
    let tier = optional(&mut errors, map, "", "tier", text(|t| tiers.parse(t)));
    let identifier = optional(
        &mut errors,
        map,
        "",
        "subscriptionIdentifier",
        SubscriptionIdentifier::from_json,
    );
    let change = on.and_then(|on| {
        match SubscriptionChange::from_request(on, expiry, tier, identifier) {
            Ok(change) => Some(change),
            Err(error) => {
                // Report a missing expiry only when it was not already reported as invalid.
                if map.get("expiry").is_none_or(Value::is_null) {
                    errors.push(FieldError::body(error.field, Value::Null, error.msg));
                }
                None
            }
        }
    });
    errors.into_result()?;
    let (Some(target), Some(change)) = (target, change) else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "a parsed field is missing"
        )));
    };
    let outcome = execute::<User, _>(
        &*state.store,
        &target,
        &caller.command_context(),
        state.settings.command_attempts,
        |_| Ok(UserCommand::ChangeSubscription(change.clone())),
    )
    .await?;
    Ok(Answer::done().at(outcome.position))
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub, edge = caller.edge.as_str()))]
pub async fn set_subscription_cancelled(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Answer, ApiError> {
    let map = object(&body)?;
    let mut errors = FieldErrors::new();
    let target = target(&mut errors, map);
    let cancelled = required(&mut errors, map, "", "cancelled", boolean);
    errors.into_result()?;
    let (Some(target), Some(cancelled)) = (target, cancelled) else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "a parsed field is missing"
        )));
    };
    let outcome = execute::<User, _>(
        &*state.store,
        &target,
        &caller.command_context(),
        state.settings.command_attempts,
        |_| Ok(UserCommand::SetSubscriptionCancelled(cancelled)),
    )
    .await?;
    Ok(Answer::done().at(outcome.position))
}
