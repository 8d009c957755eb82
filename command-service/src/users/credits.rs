//! `POST credits`: `{target, type: increment|decrement|set, value}` (`operation` is accepted as
//! an alias of `type`). Credits never go negative: a decrement beyond the balance is 400
//! InsufficientCredits and appends nothing. Concurrent changes are serialised by the stream's
//! expected revision (invariant 1): a conflict reloads the balance and decides again.

use axum::extract::State;
use events::user::{CreditsChange, User, UserCommand};
use events::values::{Credits, ValidationError};
use serde_json::Value;

use super::{object, required, target, text, whole_number};
use crate::pipeline::execute;
use crate::AppState;
use http_edge::auth::Caller;
use http_edge::envelope::{Answer, ApiError, FieldErrors};
use http_edge::extract::JsonBody;

#[derive(Debug, Clone, Copy)]
enum Operation {
    Increment,
    Decrement,
    Set,
}

fn operation(value: &str) -> Result<Operation, ValidationError> {
    match value {
        "increment" => Ok(Operation::Increment),
        "decrement" => Ok(Operation::Decrement),
        "set" => Ok(Operation::Set),
        _ => Err(ValidationError::new(
            "type",
            "must be one of increment, decrement, set",
        )),
    }
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub, edge = caller.edge.as_str()))]
pub async fn change_credits(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Answer, ApiError> {
    let map = object(&body)?;
    let mut errors = FieldErrors::new();
    let target = target(&mut errors, map);
    let key = match (map.get("type"), map.get("operation")) {
        (None | Some(Value::Null), Some(_)) => "operation",
        _ => "type",
    };
    let operation = required(&mut errors, map, "", key, text(operation));
    let value = required(&mut errors, map, "", "value", whole_number).map(Credits::new);
    errors.into_result()?;
    let (Some(target), Some(operation), Some(value)) = (target, operation, value) else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "a parsed field is missing"
        )));
    };
    let change = match operation {
        Operation::Increment => CreditsChange::Increment(value),
        Operation::Decrement => CreditsChange::Decrement(value),
        Operation::Set => CreditsChange::Set(value),
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
