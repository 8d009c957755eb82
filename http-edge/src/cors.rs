//! CORS (API.md §1): admin UIs and single-page apps call from another origin and send
//! `Content-Type: application/json` even on GET, so every route answers preflights. Allowed:
//! the configured origins (`USERLEDGER_CORS_ORIGINS`), and the origin of every redirect URI an
//! application registered, so that an app registered for sign-in can call the API without more
//! configuration. The registered origins are read from the applications read model (PostgreSQL
//! beside the log), at most every few seconds, and again when an origin not seen before asks.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderName, HeaderValue, Method};
use sqlx::PgPool;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::envelope::CONSISTENCY_TOKEN;
use crate::{idempotency, telemetry};

/// How long the registered origins are trusted before they are read again.
const FRESH_FOR: Duration = Duration::from_secs(30);
/// How often an unknown origin may cause a read (a flood of strangers costs one query a second).
const UNKNOWN_AT_MOST_EVERY: Duration = Duration::from_secs(1);

/// The origins of the applications' redirect URIs, as last read.
struct Registered {
    origins: HashSet<String>,
    read_at: Option<Instant>,
}

/// The CORS layer of a process: `configured` origins, and those of registered redirect URIs
/// when `database` holds the applications read model.
pub fn layer(configured: &[String], database: Option<PgPool>) -> CorsLayer {
    let configured: Arc<HashSet<String>> = Arc::new(
        configured
            .iter()
            .map(|origin| origin.trim_end_matches('/').to_owned())
            .collect(),
    );
    let registered = Arc::new(RwLock::new(Registered {
        origins: HashSet::new(),
        read_at: None,
    }));
    let allow = AllowOrigin::async_predicate(move |origin: HeaderValue, _| {
        let (configured, registered, database) =
            (configured.clone(), registered.clone(), database.clone());
        async move {
            let Ok(origin) = origin.to_str() else {
                return false;
            };
            if configured.contains(origin) {
                return true;
            }
            let Some(pool) = database else {
                return false;
            };
            allowed(&registered, &pool, origin).await
        }
    });
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static(idempotency::HEADER),
            HeaderName::from_static(CONSISTENCY_TOKEN),
            telemetry::REQUEST_ID,
            telemetry::CORRELATION_ID,
        ])
        .expose_headers([
            HeaderName::from_static(CONSISTENCY_TOKEN),
            telemetry::REQUEST_ID,
            telemetry::CORRELATION_ID,
        ])
}

/// Whether `origin` is a registered redirect URI's, reading them again when they are stale, or
/// when the origin is unknown and they were not read in the last second.
async fn allowed(registered: &RwLock<Registered>, pool: &PgPool, origin: &str) -> bool {
    let (known, age) = {
        let registered = registered.read().unwrap_or_else(|p| p.into_inner());
        let age = registered.read_at.map(|at| at.elapsed());
        (registered.origins.contains(origin), age)
    };
    // Known and fresh, or unknown but read a moment ago: the answer stands.
    let read_again = match age {
        None => true,
        Some(age) if known => age > FRESH_FOR,
        Some(age) => age >= UNKNOWN_AT_MOST_EVERY,
    };
    if !read_again {
        return known;
    }
    match read(pool).await {
        Ok(origins) => {
            let found = origins.contains(origin);
            let mut registered = registered.write().unwrap_or_else(|p| p.into_inner());
            registered.origins = origins;
            registered.read_at = Some(Instant::now());
            found
        }
        Err(error) => {
            tracing::warn!(%error, "could not read the registered redirect URIs for CORS");
            known
        }
    }
}

/// The origins (`scheme://host[:port]`) of every live application's redirect URIs.
async fn read(pool: &PgPool) -> sqlx::Result<HashSet<String>> {
    let uris: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT jsonb_array_elements_text(document->'redirectUris')
           FROM read_models.applications",
    )
    .fetch_all(pool)
    .await
    .or_else(|error| match &error {
        // No read model here (yet): nothing is registered.
        sqlx::Error::Database(database) if database.code().as_deref() == Some("42P01") => {
            Ok(Vec::new())
        }
        _ => Err(error),
    })?;
    Ok(uris
        .iter()
        .filter_map(|uri| url::Url::parse(uri).ok())
        .map(|url| url.origin())
        .filter(|origin| origin.is_tuple())
        .map(|origin| origin.ascii_serialization())
        .collect())
}
