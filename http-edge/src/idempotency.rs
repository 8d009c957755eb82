//! `Idempotency-Key` on POST, PUT and PATCH: a retried request with the same key and body gets
//! the first answer (status, body, consistency token) and appends nothing.
//!
//! Keys are scoped to the caller (the token's subject) and kept in PostgreSQL for a day. The
//! first request with a key records it as in progress before running; a concurrent duplicate
//! gets 409 until the first one finishes; a key reused with another request gets 400. A 5xx
//! answer is not recorded, so the request can be retried. A key left in progress by a crash is
//! taken over after a minute.

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::auth::Caller;
use crate::body::read_whole;
use crate::envelope::{ApiError, CONSISTENCY_TOKEN};
use crate::EdgeState;

pub const HEADER: &str = "idempotency-key";
/// Set on an answer that was replayed from an earlier request.
pub const REPLAYED: &str = "idempotent-replayed";
const MAX_KEY_LENGTH: usize = 255;

/// The table of remembered answers, created if missing.
pub async fn prepare(pool: &PgPool) -> sqlx::Result<()> {
    crate::tables::create(
        pool,
        "userledger idempotency_keys",
        &[
            "CREATE TABLE IF NOT EXISTS idempotency_keys (
            caller       text        NOT NULL,
            key          text        NOT NULL,
            request_hash bytea       NOT NULL,
            status       smallint,
            body         bytea,
            position     text,
            created_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (caller, key)
        )",
            // Tables made when answers were kept as `jsonb`, which refuses a NUL in a string and
            // gives numbers back in another form (one beyond f64 then failed the replay).
            "DO $$ BEGIN
           IF (SELECT atttypid = 'jsonb'::regtype FROM pg_attribute
                WHERE attrelid = 'idempotency_keys'::regclass AND attname = 'body') THEN
             ALTER TABLE idempotency_keys
               ALTER COLUMN body TYPE bytea USING convert_to(body::text, 'UTF8');
           END IF;
         END $$",
        ],
    )
    .await
}

#[derive(sqlx::FromRow)]
struct StoredAnswer {
    request_hash: Vec<u8>,
    status: Option<i16>,
    body: Option<Vec<u8>>,
    position: Option<String>,
}

enum Remembered {
    /// This request holds the key now: run it and record its answer.
    Claimed,
    InProgress,
    DifferentRequest,
    /// The first answer, its body byte for byte.
    Answer {
        status: u16,
        body: Vec<u8>,
        position: Option<String>,
    },
}

/// Runs a write of `caller` that its route's policy makes idempotent: the first answer for its
/// key, or the answer remembered for it.
pub(crate) async fn run(
    edge: &EdgeState,
    caller: &Caller,
    request: Request,
    next: Next,
) -> Response {
    let Some(pool) = edge.database.clone() else {
        return run_writing(edge, request, next).await;
    };
    let Some(key) = request.headers().get(HEADER).cloned() else {
        return run_writing(edge, request, next).await;
    };
    let key = match key.to_str() {
        Ok(key) if !key.is_empty() && key.len() <= MAX_KEY_LENGTH => key.to_owned(),
        _ => {
            return ApiError::ClientInput(json!({ "errors": [{
                "type": "header", "msg": format!("Idempotency-Key must be 1..{MAX_KEY_LENGTH} visible characters"),
                "path": HEADER, "location": "headers" }] }))
            .into_response()
        }
    };
    let (parts, body) = request.into_parts();
    let caller = format!("{:?}:{}", caller.claims.kind, caller.claims.sub);
    let settings = &edge.settings;
    let bytes = match read_whole(body, settings.body_limit, settings.body_read_timeout).await {
        Ok(bytes) => bytes,
        Err(refused) => return refused.into_response(),
    };
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str());
    hasher.update(b" ");
    hasher.update(parts.uri.path());
    hasher.update(b"\n");
    hasher.update(&bytes);
    let request_hash = hasher.finalize().to_vec();

    match remember(&pool, &caller, &key, &request_hash).await {
        Err(error) => ApiError::internal(error).into_response(),
        Ok(Remembered::InProgress) => ApiError::InProgress.into_response(),
        Ok(Remembered::DifferentRequest) => ApiError::ClientInput(json!({ "errors": [{
            "type": "header", "value": key,
            "msg": "this Idempotency-Key was used with a different request",
            "path": HEADER, "location": "headers" }] }))
        .into_response(),
        Ok(Remembered::Answer {
            status,
            body,
            position,
        }) => {
            let mut response = (
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                [(
                    axum::http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response();
            let headers = response.headers_mut();
            if let Some(position) = position.and_then(|p| HeaderValue::from_str(&p).ok()) {
                headers.insert(CONSISTENCY_TOKEN, position);
            }
            headers.insert(REPLAYED, HeaderValue::from_static("true"));
            response
        }
        Ok(Remembered::Claimed) => {
            let response =
                run_writing(edge, Request::from_parts(parts, Body::from(bytes)), next).await;
            record(&pool, &caller, &key, response).await
        }
    }
}

/// Runs the write among the writes in flight (its place is taken here, not by the policy, so
/// that looking up and recording the key take none).
async fn run_writing(edge: &EdgeState, request: Request, next: Next) -> Response {
    match crate::policy::place(edge, &edge.writes).await {
        Ok(_permit) => next.run(request).await,
        Err(refused) => refused,
    }
}

/// Forgets every stored answer that names `subject` (a user's id, in the objects answered) or
/// that `subject` asked for: what an erasure leaves of a person here. A request repeated
/// after it runs again.
pub async fn forget(pool: &PgPool, subject: &str) -> sqlx::Result<u64> {
    // A database no service has served yet has no such table (an operator's `erase`).
    let kept: bool = sqlx::query_scalar("SELECT to_regclass('idempotency_keys') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !kept {
        return Ok(0);
    }
    // Callers are kept as `<kind>:<subject>` (`Delegated:<user id>`).
    Ok(sqlx::query(
        "DELETE FROM idempotency_keys \
          WHERE split_part(caller, ':', 2) = $1 \
             OR position(convert_to($1, 'UTF8') IN body) > 0",
    )
    .bind(subject)
    .execute(pool)
    .await?
    .rows_affected())
}

async fn remember(
    pool: &PgPool,
    caller: &str,
    key: &str,
    request_hash: &[u8],
) -> sqlx::Result<Remembered> {
    // Expired keys and keys abandoned in progress are free again.
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE caller = $1 AND key = $2 \
           AND (created_at < now() - interval '1 day' \
                OR (status IS NULL AND created_at < now() - interval '1 minute'))",
    )
    .bind(caller)
    .bind(key)
    .execute(pool)
    .await?;
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (caller, key, request_hash) VALUES ($1, $2, $3) \
         ON CONFLICT (caller, key) DO NOTHING",
    )
    .bind(caller)
    .bind(key)
    .bind(request_hash)
    .execute(pool)
    .await?
    .rows_affected()
        == 1;
    if claimed {
        return Ok(Remembered::Claimed);
    }
    let row: Option<StoredAnswer> = sqlx::query_as(
        "SELECT request_hash, status, body, position FROM idempotency_keys \
          WHERE caller = $1 AND key = $2",
    )
    .bind(caller)
    .bind(key)
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        // Deleted in between (expired): treat as in progress; the client retries.
        None => Remembered::InProgress,
        Some(stored) if stored.request_hash != request_hash => Remembered::DifferentRequest,
        Some(StoredAnswer { status: None, .. }) => Remembered::InProgress,
        Some(StoredAnswer {
            status: Some(status),
            body,
            position,
            ..
        }) => Remembered::Answer {
            status: status as u16,
            body: body.unwrap_or_default(),
            position,
        },
    })
}

/// Stores the answer (or frees the key after a 5xx) and passes the response on.
async fn record(pool: &PgPool, caller: &str, key: &str, response: Response) -> Response {
    let status = response.status();
    if status.is_server_error() {
        let _ = sqlx::query("DELETE FROM idempotency_keys WHERE caller = $1 AND key = $2")
            .bind(caller)
            .bind(key)
            .execute(pool)
            .await;
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = match to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(error) => {
            return ApiError::internal(anyhow::anyhow!("reading an answer: {error}"))
                .into_response()
        }
    };
    let position = parts
        .headers
        .get(CONSISTENCY_TOKEN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Err(error) = sqlx::query(
        "UPDATE idempotency_keys SET status = $3, body = $4, position = $5 \
          WHERE caller = $1 AND key = $2",
    )
    .bind(caller)
    .bind(key)
    .bind(status.as_u16() as i16)
    .bind(bytes.as_ref())
    .bind(position)
    .execute(pool)
    .await
    {
        tracing::error!(error = %error, "could not record an idempotent answer");
    }
    Response::from_parts(parts, Body::from(bytes))
}
