//! `PUT custom-data`: `{target, customData}` replaces the whole value; customData is an object,
//! `null`, `true` or `false`, at most `Settings::custom_data_limit` bytes serialised.

use axum::extract::State;
use events::user::{User, UserCommand};
use events::values::{CustomData, UserId};
use serde_json::Value;
use utoipa::ToSchema;

use crate::pipeline::execute;
use crate::AppState;
use http_edge::auth::Caller;
use http_edge::body::{Body, Fields, Json};
use http_edge::envelope::{Answer, ApiError, FieldError};

/// `custom-data`: replaces the whole value.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct CustomDataBody {
    /// The user's `_id`.
    pub target: UserId,
    /// An object, `null`, `true` or `false`, at most 16 KiB serialised. Required: `null` is a
    /// value here.
    pub custom_data: Value,
}

impl Body for CustomDataBody {
    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let target = fields.required("target");
        // `null` is a value here (it replaces the data with null), so only an absent key is
        // missing.
        let present = fields.has("customData");
        let custom_data = fields.value("customData").cloned();
        if !present {
            fields.error("customData", Value::Null, "is required");
        }
        Some(Self {
            target: target?,
            custom_data: present.then(|| custom_data.unwrap_or(Value::Null))?,
        })
    }
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub, edge = caller.edge.as_str()))]
pub async fn replace_custom_data(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CustomDataBody>,
) -> Result<Answer, ApiError> {
    let target = body.target;
    let custom_data = CustomData::parse(body.custom_data.clone(), state.settings.custom_data_limit)
        .map_err(|error| {
            ApiError::validation(FieldError::body("customData", body.custom_data, error.msg))
        })?;
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
