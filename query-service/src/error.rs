//! What a read answers when it fails: the contract's errors, and one of its own, a read model
//! that has not reached the caller's consistency token in time.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use events::store::Position;
use http_edge::envelope::ApiError;
use serde_json::json;

#[derive(Debug)]
pub enum ReadError {
    Api(ApiError),
    /// The read model is behind the consistency token after waiting `waited`: 503, retry.
    NotCaughtUp {
        token: Position,
        reached: Option<Position>,
        waited: Duration,
    },
}

impl From<ApiError> for ReadError {
    fn from(error: ApiError) -> Self {
        ReadError::Api(error)
    }
}

impl From<sqlx::Error> for ReadError {
    fn from(error: sqlx::Error) -> Self {
        ReadError::Api(ApiError::internal(error))
    }
}

impl IntoResponse for ReadError {
    fn into_response(self) -> Response {
        match self {
            ReadError::Api(error) => error.into_response(),
            ReadError::NotCaughtUp {
                token,
                reached,
                waited,
            } => {
                let body = json!({
                    "ok": 0,
                    "error": "ServiceUnavailable",
                    "additionalInfo": {
                        "reason": format!(
                            "the read models have not reached the consistency token within {} ms; retry the request",
                            waited.as_millis()
                        ),
                        "consistencyToken": token.to_string(),
                        "readModelPosition": reached.map(|p| p.to_string()),
                    },
                });
                let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
        }
    }
}
