//! The configuration read routes of API.md §3: `editable-fields` (both edges) and
//! `subscription-tiers` (admin only). They read the service's settings, not a read model.

use crate::AppState;
use axum::extract::State;
use events::user::editable::{sensitivity_scope, EDITABLE_FIELDS};
use http_edge::auth::Caller;
use http_edge::envelope::Answer;
use serde_json::{json, Map, Value};

use crate::error::ReadError;

/// `GET editable-fields`: as Liquid, `editableFields` names the configured fields this caller
/// may write (it holds their `profile:sensitive:<level>:write`); `sensitivityLevels` gives
/// every configured field's level.
#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub, edge = caller.edge.as_str()))]
pub async fn editable_fields(caller: Caller) -> Result<Answer, ReadError> {
    let writable: Vec<&str> = EDITABLE_FIELDS
        .iter()
        .filter(|(_, level)| caller.shared(&sensitivity_scope(level)))
        .map(|(field, _)| *field)
        .collect();
    let levels: Map<String, Value> = EDITABLE_FIELDS
        .iter()
        .map(|(field, level)| ((*field).to_owned(), json!(level)))
        .collect();
    Ok(Answer::ok(json!({
        "editableFields": writable,
        "sensitivityLevels": levels,
    })))
}

/// `GET subscription-tiers` (admin only): the configured tiers, as Liquid lists them.
#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
pub async fn subscription_tiers(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Answer, ReadError> {
    let tiers = &state.subscription_tiers;
    let base = tiers.base();
    let listed: Vec<Value> = tiers
        .names()
        .iter()
        .map(|name| json!({ "name": name, "isBaseTier": name.as_str() == base.as_str() }))
        .collect();
    Ok(Answer::ok(json!({ "subscriptionTiers": listed })))
}
