//! Request bodies as the contract wants them refused: unparseable JSON or a wrong content type
//! is 400 ClientInputError, a body over the limit is 413.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use serde_json::Value;

use crate::envelope::ApiError;
use crate::EdgeState;

/// A JSON body, parsed but not yet validated: handlers validate field by field so that every
/// invalid field is reported.
#[derive(Debug, Clone)]
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let limit = request
            .extensions()
            .get::<Arc<EdgeState>>()
            .map_or(usize::MAX, |edge| edge.settings.body_limit);
        let is_json = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::Body(
                "the body must be JSON (Content-Type: application/json)".into(),
            ));
        }
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection| match rejection.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => ApiError::BodyTooLarge { limit },
                    _ => ApiError::Body(rejection.body_text()),
                })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|error| ApiError::Body(format!("the body is not valid JSON: {error}")))
    }
}
