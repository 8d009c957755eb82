//! `POST subscription`: `{target, state, expiry? (required when state is true), tier?,
//! subscriptionIdentifier?}`, tiers from `Settings::subscription_tiers`; and
//! `POST subscription-cancel`: `{target, cancelled}`. Readers see an expired or base-tier
//! subscription as not subscribed (hydration, in the user view).

use axum::extract::State;
use chrono::{DateTime, Utc};
use events::user::{SubscriptionChange, User, UserCommand};
use events::values::{SubscriptionIdentifier, UserId};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::pipeline::execute;
use crate::AppState;
use http_edge::auth::Caller;
use http_edge::body::{Body, Fields, Json};
use http_edge::envelope::{Answer, ApiError, FieldError};

/// `subscription`.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct SubscriptionBody {
    /// The user's `_id`.
    pub target: UserId,
    pub state: bool,
    /// Required when `state` is true.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expiry: Option<DateTime<Utc>>,
    /// One of the configured tiers (see `subscription-tiers`).
    pub tier: Option<String>,
    pub subscription_identifier: Option<SubscriptionIdentifier>,
}

impl Body for SubscriptionBody {
    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let target = fields.required("target");
        let state = fields.required("state");
        let expiry = fields.optional("expiry");
        let tier = fields.optional("tier");
        let subscription_identifier = fields.optional("subscriptionIdentifier");
        if state == Some(true) && !fields.has_value("expiry") {
            fields.error("expiry", Value::Null, "is required when state is true");
            return None;
        }
        Some(Self {
            target: target?,
            state: state?,
            expiry: expiry?,
            tier: tier?,
            subscription_identifier: subscription_identifier?,
        })
    }
}

/// `subscription-cancel`.
#[derive(Debug, ToSchema)]
pub struct SubscriptionCancelBody {
    /// The user's `_id`.
    pub target: UserId,
    pub cancelled: bool,
}

impl Body for SubscriptionCancelBody {
    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let target = fields.required("target");
        let cancelled = fields.required("cancelled");
        Some(Self {
            target: target?,
            cancelled: cancelled?,
        })
    }
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub, edge = caller.edge.as_str()))]
pub async fn change_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<SubscriptionBody>,
) -> Result<Answer, ApiError> {
    let invalid = |field: &str, value: Value, msg: String| {
        ApiError::validation(FieldError::body(field, value, msg))
    };
    let tier = match &body.tier {
        Some(tier) => Some(
            state
                .settings
                .subscription_tiers
                .parse(tier)
                .map_err(|error| invalid("tier", json!(tier), error.msg))?,
        ),
        None => None,
    };
    let target = body.target;
    let change = SubscriptionChange::from_request(
        body.state,
        body.expiry,
        tier,
        body.subscription_identifier,
    )
    .map_err(|error| invalid(error.field, Value::Null, error.msg))?;
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
    Json(body): Json<SubscriptionCancelBody>,
) -> Result<Answer, ApiError> {
    let SubscriptionCancelBody { target, cancelled } = body;
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
