//! `POST credits`: `{target, type: increment|decrement|set, value}` (`operation` is accepted as
//! an alias of `type`). Credits never go negative: a decrement beyond the balance is 400
//! InsufficientCredits and appends nothing. Concurrent changes are serialised by the stream's
//! expected revision (invariant 1): a conflict reloads the balance and decides again.

use axum::extract::State;
use events::user::{CreditsChange, User, UserCommand};
use events::values::{Credits, CreditsOperation, UserId};
use utoipa::ToSchema;

use crate::pipeline::execute;
use crate::AppState;
use http_edge::auth::Caller;
use http_edge::body::{Body, Fields, Json};
use http_edge::envelope::{Answer, ApiError};

/// `credits`. Credits never go negative.
#[derive(Debug, ToSchema)]
pub struct CreditsBody {
    /// The user's `_id`.
    pub target: UserId,
    /// `operation` is accepted as an alias.
    #[schema(rename = "type")]
    pub operation: CreditsOperation,
    pub value: Credits,
}

impl Body for CreditsBody {
    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let target = fields.required("target");
        let alias = !fields.has_value("type") && fields.has("operation");
        let operation = fields.required(if alias { "operation" } else { "type" });
        let value = fields.required("value");
        Some(Self {
            target: target?,
            operation: operation?,
            value: value?,
        })
    }
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub, edge = caller.edge.as_str()))]
pub async fn change_credits(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreditsBody>,
) -> Result<Answer, ApiError> {
    let CreditsBody {
        target,
        operation,
        value,
    } = body;
    let change = match operation {
        CreditsOperation::Increment => CreditsChange::Increment(value),
        CreditsOperation::Decrement => CreditsChange::Decrement(value),
        CreditsOperation::Set => CreditsChange::Set(value),
    };
    let outcome = execute::<User, _>(
        &*state.store,
        &target,
        &caller.command_context(),
        state.settings.command_attempts,
        |_| Ok(UserCommand::ChangeCredits(change)),
    )
    .await?;
    Ok(Answer::done().at(outcome.position))
}
