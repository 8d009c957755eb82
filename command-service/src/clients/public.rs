//! `GET /client/{clientId}` and `GET /client?id=`: what anybody may know of an application
//! without a token, as Liquid shows it (and as the login page shows it): its `client_id`,
//! role, display name and whether it is public; never its secret, scope, grants or redirect
//! URIs. Read from the log, like the login page's, so a new application answers at once.

use axum::extract::{Path, RawQuery, State};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::oauth::find_application;
use crate::AppState;
use http_edge::envelope::{Answer, ApiError, FieldError};
use http_edge::{Doc, Routes};

/// An application's public information.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicClient {
    /// The OAuth `client_id`.
    pub id: String,
    /// `internal_client` or `external_client`.
    pub role: String,
    pub display_name: String,
    pub is_public: bool,
}

/// The answer: `client` is `null` for an unknown application, as in Liquid.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicClientAnswer {
    pub client: Option<PublicClient>,
}

pub fn router() -> Routes<AppState> {
    let answers = "its `id`, `role`, `displayName` and `isPublic`; `client: null` when unknown";
    Routes::new()
        .route(
            Doc::get("/client/{clientId}", "An application's public information")
                .public()
                .path_parameter("clientId", "the application's OAuth `client_id`")
                .ok::<PublicClientAnswer>(answers),
            by_path,
        )
        .route(
            Doc::get("/client", "An application's public information, by query")
                .public()
                .query(
                    "id",
                    true,
                    "the application's OAuth `client_id` (3..256 characters)",
                )
                .error(
                    400,
                    "ClientInputError",
                    "`id` is missing or not 3..256 characters",
                )
                .ok::<PublicClientAnswer>(answers),
            by_query,
        )
}

/// `GET /client/{clientId}`.
async fn by_path(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
) -> Result<Answer, ApiError> {
    answer(&state, &client_id).await
}

/// `GET /client?id=`.
async fn by_query(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Answer, ApiError> {
    let id = url::form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "id")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    if !(3..=256).contains(&id.chars().count()) {
        let error = FieldError::query("id", json!(id), "must be 3 to 256 characters");
        return Err(ApiError::Validation(vec![error]));
    }
    answer(&state, &id).await
}

async fn answer(state: &AppState, client_id: &str) -> Result<Answer, ApiError> {
    let client = find_application(state, client_id)
        .await?
        .map(|application| PublicClient {
            id: application.client_id.to_string(),
            role: application.role.to_string(),
            display_name: application.display_name.to_string(),
            is_public: application.is_public,
        });
    Ok(Answer::ok(PublicClientAnswer { client }))
}
