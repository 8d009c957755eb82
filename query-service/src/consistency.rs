//! Read-your-writes on demand (invariant 7). Every write answers its log position in the
//! `X-Consistency-Token` header; a read that sends it back waits until the read model it
//! reads has applied that position, and no longer than [`WAIT_LIMIT`]. Without the header a
//! read answers at once, from whatever the read models hold.
//!
//! The wait polls the projection's checkpoint row, which commits in the same transaction as
//! the rows it covers (invariant 4): once the checkpoint is at the token, so are the rows. It
//! works whichever process runs the projector.

use std::time::{Duration, Instant};

use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use events::store::Position;
use http_edge::envelope::{ApiError, FieldError, CONSISTENCY_TOKEN};
use serde_json::Value;
use sqlx::PgPool;

use crate::error::ReadError;

/// How long a read waits for the read models at most before answering 503.
pub const WAIT_LIMIT: Duration = Duration::from_secs(2);

/// How often the checkpoint is read while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// The request's consistency token, if it sent one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Consistency(pub Option<Position>);

impl FromRequestParts<AppState> for Consistency {
    type Rejection = ReadError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ReadError> {
        let Some(header) = parts.headers.get(CONSISTENCY_TOKEN) else {
            return Ok(Consistency(None));
        };
        let text = header.to_str().unwrap_or_default().trim();
        text.parse()
            .map(|position| Consistency(Some(position)))
            .map_err(|_| {
                ReadError::Api(ApiError::validation(FieldError {
                    location: "headers",
                    ..FieldError::body(
                        CONSISTENCY_TOKEN,
                        Value::String(text.to_owned()),
                        "must be a consistency token from a write's answer",
                    )
                }))
            })
    }
}

impl Consistency {
    /// Waits until `projection` (a read model's name) has applied the token's position; at
    /// once when there is no token.
    pub async fn wait(self, database: &PgPool, projection: &str) -> Result<(), ReadError> {
        let Some(token) = self.0 else { return Ok(()) };
        let started = Instant::now();
        loop {
            let reached = checkpoint(database, projection).await?;
            if reached.is_some_and(|reached| reached >= token) {
                return Ok(());
            }
            if started.elapsed() >= WAIT_LIMIT {
                tracing::warn!(projection, %token, ?reached, "read model behind the consistency token");
                return Err(ReadError::NotCaughtUp {
                    token,
                    reached,
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// The position `projection` has applied; `None` before its first batch (or before its
/// projector ever ran, when the checkpoint table does not exist yet).
pub(crate) async fn checkpoint(
    database: &PgPool,
    projection: &str,
) -> Result<Option<Position>, ReadError> {
    checkpoint_in(database, projections::READ_MODEL_SCHEMA, projection).await
}

/// The checkpoint of `projection` in `schema` (the read models', or the publisher's).
pub(crate) async fn checkpoint_in(
    database: &PgPool,
    schema: &str,
    projection: &str,
) -> Result<Option<Position>, ReadError> {
    Ok(projections::checkpoint::reached(database, schema, projection).await?)
}
