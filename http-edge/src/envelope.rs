//! The contract's envelope (API.md §1): `{"ok":1,"data":...}` on success,
//! `{"ok":0,"error":"<Code>","additionalInfo":{...}}` on failure, and the OAuth error shape on
//! `/oauth/token`. Every failure of a handler is an [`ApiError`]; internal errors are logged with
//! their cause chain and answered without details.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use events::store::{Position, StoreError};
use events::values::ValidationError;
use serde::Serialize;
use serde_json::{json, Value};

/// The header that carries a write's consistency token: the log position of its last event.
pub const CONSISTENCY_TOKEN: &str = "x-consistency-token";

/// A successful answer: the envelope around `data` (or `{"ok":1}`), a status, and the
/// consistency token of the write when there was one.
#[derive(Debug)]
pub struct Answer {
    status: StatusCode,
    data: Option<Data>,
    position: Option<Position>,
}

/// An answer's `data`: a value, or the JSON text of one (written without building it).
#[derive(Debug)]
enum Data {
    Value(Value),
    Text(String),
}

impl Answer {
    /// `data` written as JSON text straight away, without building a [`Value`] of it.
    pub fn ok(data: impl Serialize) -> Self {
        match serde_json::to_string(&data) {
            Ok(text) => Self::ok_text(text),
            Err(_) => Self::ok_value(Value::Null),
        }
    }

    /// [`Answer::ok`] of a value already built, kept as it is.
    pub fn ok_value(data: Value) -> Self {
        Self {
            status: StatusCode::OK,
            data: Some(Data::Value(data)),
            position: None,
        }
    }

    /// [`Answer::ok`] of data already written as JSON text (`text` must be one JSON value): a
    /// large page is sent as it was written.
    pub fn ok_text(text: String) -> Self {
        Self {
            status: StatusCode::OK,
            data: Some(Data::Text(text)),
            position: None,
        }
    }

    /// `{"ok":1}`: an operation with nothing to return.
    pub fn done() -> Self {
        Self {
            status: StatusCode::OK,
            data: None,
            position: None,
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Carries the log position a reader may wait for (no header when nothing was appended).
    pub fn at(mut self, position: Option<Position>) -> Self {
        self.position = position.or(self.position);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The JSON body as sent.
    pub fn body(&self) -> Value {
        envelope(self.data.as_ref().map(|data| match data {
            Data::Value(value) => value.clone(),
            Data::Text(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        }))
    }

    pub fn position(&self) -> Option<Position> {
        self.position
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = match self.data {
            Some(Data::Text(text)) => {
                let body = format!(r#"{{"ok":1,"data":{text}}}"#);
                let json = HeaderValue::from_static("application/json");
                (self.status, [(header::CONTENT_TYPE, json)], body).into_response()
            }
            Some(Data::Value(value)) => (self.status, Json(envelope(Some(value)))).into_response(),
            None => (self.status, Json(envelope(None))).into_response(),
        };
        if let Some(position) = self.position {
            if let Ok(value) = HeaderValue::from_str(&position.to_string()) {
                response.headers_mut().insert(CONSISTENCY_TOKEN, value);
            }
        }
        response
    }
}

/// `{"ok":1}`, with `"data"` when there is some: built around the data, not from a copy of it
/// (a page of users is a large tree).
fn envelope(data: Option<Value>) -> Value {
    let mut envelope = serde_json::Map::with_capacity(2);
    envelope.insert("ok".to_owned(), json!(1));
    if let Some(data) = data {
        envelope.insert("data".to_owned(), data);
    }
    Value::Object(envelope)
}

/// One invalid field, as the contract reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: Value,
    pub msg: String,
    pub path: String,
    pub location: &'static str,
}

impl FieldError {
    pub fn body(path: impl Into<String>, value: Value, msg: impl Into<String>) -> Self {
        Self {
            kind: "field",
            value,
            msg: msg.into(),
            path: path.into(),
            location: "body",
        }
    }

    pub fn query(path: impl Into<String>, value: Value, msg: impl Into<String>) -> Self {
        Self {
            location: "query",
            ..Self::body(path, value, msg)
        }
    }

    /// A path parameter (`/user/{userId}`).
    pub fn param(path: impl Into<String>, value: Value, msg: impl Into<String>) -> Self {
        Self {
            location: "params",
            ..Self::body(path, value, msg)
        }
    }
}

/// Collects every invalid field of a request before answering (API.md §1: all of them, not the
/// first one).
#[derive(Debug, Default)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, error: FieldError) {
        self.0.push(error);
    }

    /// Parses `value` (found at `path` in the body) with `parse`, recording the failure.
    pub fn parse<T>(
        &mut self,
        path: &str,
        value: &Value,
        parse: impl FnOnce(&Value) -> Result<T, ValidationError>,
    ) -> Option<T> {
        match parse(value) {
            Ok(parsed) => Some(parsed),
            Err(error) => {
                self.push(FieldError::body(path, value.clone(), error.msg.to_string()));
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was recorded, else the 400 with every error.
    pub fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    /// Unparseable JSON, a wrong content type, a body of the wrong shape.
    #[error("invalid body: {0}")]
    Body(String),
    #[error("body too large")]
    BodyTooLarge { limit: usize },
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    #[error("insufficient privileges")]
    InsufficientPrivileges(Value),
    #[error("banned")]
    Banned,
    /// No session, or one that may not do this (Liquid's `Forbidden`).
    #[error("forbidden")]
    Forbidden,
    /// The user the caller asks about has blocked them (Liquid's `Blocked`).
    #[error("blocked")]
    Blocked,
    /// The account is private and the caller does not follow it (Liquid's `Forbidden` with
    /// `reason: not_following`).
    #[error("not following")]
    NotFollowing,
    #[error("not found")]
    NotFound(Value),
    /// A 400 with a code of Liquid's (`InsufficientCredits`, `SystemRoleUpdate`, ...).
    #[error("{code}")]
    Refused {
        code: &'static str,
        info: Option<Value>,
    },
    /// A 400 ClientInputError with extra information (e.g. `existingUsers`).
    #[error("client input error")]
    ClientInput(Value),
    #[error("resource conflict")]
    ResourceConflict(Value),
    /// The same Idempotency-Key is being processed right now.
    #[error("request in progress")]
    InProgress,
    /// The service cannot take the request now: the hashing pool is saturated, or the
    /// database cannot be reached ([`ApiError::unreachable`]). Retry after this many seconds.
    #[error("busy")]
    Busy { retry_after_secs: u64 },
    /// Over a rate limit (per client or per IP): retry after this many seconds.
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// 503 ServiceUnavailable with Retry-After: the database cannot be reached now.
    pub fn unreachable() -> Self {
        ApiError::Busy {
            retry_after_secs: UNREACHABLE_RETRY_AFTER_SECS,
        }
    }

    pub fn validation(error: FieldError) -> Self {
        ApiError::Validation(vec![error])
    }

    /// 404 for a request no route serves (or one whose part of the API is turned off).
    pub fn no_route(method: &str, path: &str) -> Self {
        ApiError::NotFound(json!({ "method": method, "path": path }))
    }

    pub fn not_found() -> Self {
        ApiError::NotFound(Value::Null)
    }

    pub fn refused(code: &'static str) -> Self {
        ApiError::Refused { code, info: None }
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(error.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_)
            | ApiError::Body(_)
            | ApiError::Refused { .. }
            | ApiError::ClientInput(_) => StatusCode::BAD_REQUEST,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized(_) | ApiError::InsufficientPrivileges(_) => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Banned | ApiError::Forbidden | ApiError::Blocked | ApiError::NotFollowing => {
                StatusCode::FORBIDDEN
            }
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::ResourceConflict(_) | ApiError::InProgress => StatusCode::CONFLICT,
            ApiError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The envelope's `error` and `additionalInfo`.
    pub fn code_and_info(&self) -> (&'static str, Option<Value>) {
        match self {
            ApiError::Validation(errors) => ("ClientInputError", Some(json!({ "errors": errors }))),
            ApiError::Body(reason) => (
                "ClientInputError",
                Some(json!({ "errors": [{ "type": "body", "msg": reason, "location": "body" }] })),
            ),
            ApiError::BodyTooLarge { limit } => (
                "ClientInputError",
                Some(
                    json!({ "errors": [{ "type": "body", "msg": format!("the body is larger than {limit} bytes"), "location": "body" }] }),
                ),
            ),
            ApiError::Unauthorized(reason) => ("Unauthorized", Some(json!({ "reason": reason }))),
            ApiError::InsufficientPrivileges(info) => (
                "InsufficientPrivileges",
                Some(info.clone()).filter(|i| !i.is_null()),
            ),
            ApiError::Banned => ("Banned", None),
            ApiError::Forbidden => ("Forbidden", None),
            ApiError::Blocked => ("Blocked", Some(json!({ "reason": "blocked" }))),
            ApiError::NotFollowing => ("Forbidden", Some(json!({ "reason": "not_following" }))),
            ApiError::NotFound(info) => ("NotFound", Some(info.clone()).filter(|i| !i.is_null())),
            ApiError::Refused { code, info } => (code, info.clone()),
            ApiError::ClientInput(info) => ("ClientInputError", Some(info.clone())),
            ApiError::ResourceConflict(info) => ("ResourceConflict", Some(info.clone())),
            ApiError::InProgress => (
                "ResourceConflict",
                Some(json!({ "reason": "a request with this Idempotency-Key is in progress" })),
            ),
            ApiError::Busy { .. } => ("ServiceUnavailable", None),
            ApiError::RateLimited { retry_after_secs } => (
                "RateLimitError",
                Some(json!({ "retryAfterSeconds": retry_after_secs })),
            ),
            ApiError::Internal(_) => ("InternalServerError", None),
        }
    }

    /// The JSON body as sent.
    pub fn body(&self) -> Value {
        let (code, info) = self.code_and_info();
        match info {
            Some(info) => json!({ "ok": 0, "error": code, "additionalInfo": info }),
            None => json!({ "ok": 0, "error": code }),
        }
    }
}

/// PostgreSQL beside the log (sessions, codes, idempotency keys) failed.
impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        ApiError::Internal(error.into())
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            // The person a write was about was erased meanwhile: they are gone.
            StoreError::Erased { .. } => ApiError::not_found(),
            error => ApiError::Internal(error.into()),
        }
    }
}

/// How long a caller is told to wait when the database cannot be reached.
pub const UNREACHABLE_RETRY_AFTER_SECS: u64 = 1;

/// Whether an internal error's cause is the database being unreachable (stopped, restarting,
/// every connection busy), as the event store or one of the edge's own statements found.
fn unreachable(cause: &anyhow::Error) -> bool {
    cause.chain().any(|error| {
        matches!(error.downcast_ref(), Some(StoreError::Unreachable(_)))
            || error
                .downcast_ref::<sqlx::Error>()
                .is_some_and(event_store::postgres::unreachable)
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = match self {
            ApiError::Internal(cause) if unreachable(&cause) => {
                tracing::warn!(error = format!("{cause:#}"), "the database is unreachable");
                ApiError::unreachable()
            }
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error");
                ApiError::Internal(cause)
            }
            other => other,
        };
        let mut response = (error.status(), Json(error.body())).into_response();
        if let ApiError::Busy { retry_after_secs } | ApiError::RateLimited { retry_after_secs } =
            error
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}

/// `/oauth/token` answers errors in OAuth's shape (RFC 6749 §5.2), always 401 per API.md §2,
/// except a malformed request (400).
#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error,
            description: description.into(),
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description: description.into(),
        }
    }

    /// A `grant_type` the server does not know: 400, as RFC 6749 §5.2 and Liquid answer.
    pub fn unsupported_grant_type(description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "unsupported_grant_type",
            description: description.into(),
        }
    }
}

impl From<ApiError> for OAuthError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Busy { .. } => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                error: "temporarily_unavailable",
                description: "the server is busy; retry shortly".into(),
            },
            other => {
                if let ApiError::Internal(cause) = &other {
                    tracing::error!(error = format!("{cause:#}"), "internal error");
                }
                Self {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    error: "server_error",
                    description: "internal error".into(),
                }
            }
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": self.error, "error_description": self.description })),
        )
            .into_response()
    }
}
