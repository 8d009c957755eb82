//! `PUT custom-data`: `{target, customData}` replaces the whole value; customData is an object,
//! `null`, `true` or `false`, at most `Settings::custom_data_limit` bytes serialised.

use axum::extract::State;
use events::user::{User, UserCommand};
use events::values::CustomData;
use serde_json::Value;

use super::{object, target};
use crate::pipeline::execute;
use crate::AppState;
use http_edge::auth::Caller;
use http_edge::envelope::{Answer, ApiError, FieldError, FieldErrors};
use http_edge::extract::JsonBody;

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub, edge = caller.edge.as_str()))]
pub async fn replace_custom_data(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Answer, ApiError> {
    let map = object(&body)?;
    let mut errors = FieldErrors::new();
    let target = target(&mut errors, map);
    // `null` is a value here (it replaces the data with null), so only an absent key is missing.
    let custom_data = match map.get("customData") {
        None => {
            errors.push(FieldError::body("customData", Value::Null, "is required"));
            None
        }
        Some(value) => errors.parse("customData", value, |value| {
            CustomData::parse(value.clone(), state.settings.custom_data_limit)
        }),
    };
    errors.into_result()?;
    let (Some(target), Some(custom_data)) = (target, custom_data) else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "a parsed field is missing"
        )));
    };
    let outcome = execute::<User, _>(
        &*state.store,
        &target,
        &caller.command_context(),
        state.settings.command_attempts,
        |_| Ok(UserCommand::ReplaceCustomData(custom_data.clone())),
    )
    .await?;
    Ok(Answer::done().at(outcome.position))
}
