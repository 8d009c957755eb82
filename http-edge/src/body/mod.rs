//! Request bodies. Each route's JSON body is a type that parses and documents itself: a
//! [`Body`] derives its schema (`ToSchema`) from its fields' value types, whose schemas state
//! the rules their parse enforces (`events::values::rules`), and reads itself from the JSON
//! through [`Fields`], which reports every invalid field. The route's [`crate::Doc`] names the
//! same type (`json_body::<T>()`), so the document states what the handler enforces.
//!
//! Refusals, as the contract wants them: unparseable JSON (an object naming a key twice
//! included: [`strict`]) or a wrong content type is 400 ClientInputError, a body over the limit is 413, invalid fields are 400 ClientInputError
//! listing each one (`additionalInfo.errors`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use events::values::{FieldValue, ValidationError};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::envelope::{ApiError, FieldError, FieldErrors};
use crate::EdgeState;

mod strict;

/// A request body that reads itself from a JSON object, field by field.
pub trait Body: ToSchema + Sized {
    /// Whether a field the body does not read is refused (and the schema says
    /// `additionalProperties: false`).
    const CLOSED: bool = false;

    /// Reads every field through `fields`, which records each invalid one; `None` when any
    /// was invalid.
    fn read(fields: &mut Fields<'_>) -> Option<Self>;

    /// The body of `value`, or 400 listing every invalid field.
    fn from_json(value: &Value) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::new();
        let body = Self::read_json(value, &mut errors)?;
        errors.into_result()?;
        body.ok_or_else(|| ApiError::internal(anyhow::anyhow!("a body read no value")))
    }

    /// Reads `value` into `errors` without answering yet, for a handler that adds errors of
    /// its own (rules that depend on the caller) and answers with all of them. Fails only when
    /// `value` is not an object.
    fn read_json(value: &Value, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        let object = value
            .as_object()
            .ok_or_else(|| ApiError::Body("the body must be a JSON object".into()))?;
        Ok(Self::read_object(object, "", errors))
    }

    /// Reads `object`, found at `prefix` (`""`, or `"[2]."` in a list), into `errors`.
    fn read_object(
        object: &Map<String, Value>,
        prefix: &str,
        errors: &mut FieldErrors,
    ) -> Option<Self> {
        let mut fields = Fields {
            object,
            prefix,
            errors,
            read: Vec::new(),
        };
        let body = Self::read(&mut fields);
        if Self::CLOSED {
            fields.refuse_unread();
        }
        body
    }
}

/// The fields of one JSON object being read into a [`Body`].
pub struct Fields<'a> {
    object: &'a Map<String, Value>,
    prefix: &'a str,
    errors: &'a mut FieldErrors,
    read: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    /// A field that must be present and not `null`.
    pub fn required<T: FieldValue>(&mut self, name: &'static str) -> Option<T> {
        self.required_with(name, T::from_json)
    }

    /// A required field read with `parse`.
    pub fn required_with<T>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(&Value) -> Result<T, ValidationError>,
    ) -> Option<T> {
        match self.value(name) {
            None => {
                self.error(name, Value::Null, "is required");
                None
            }
            Some(value) => self.errors.parse(&self.path(name), value, parse),
        }
    }

    /// A field that may be absent or `null` (`Some(None)`); `None` when it is invalid.
    pub fn optional<T: FieldValue>(&mut self, name: &'static str) -> Option<Option<T>> {
        self.optional_with(name, T::from_json)
    }

    /// An optional field read with `parse`.
    pub fn optional_with<T>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(&Value) -> Result<T, ValidationError>,
    ) -> Option<Option<T>> {
        match self.value(name) {
            None => Some(None),
            Some(value) => self.errors.parse(&self.path(name), value, parse).map(Some),
        }
    }

    /// An array field, each item read as `T`, each invalid item reported at `name[i]`;
    /// `non_empty` refuses `[]`.
    pub fn list<T: FieldValue>(&mut self, name: &'static str, non_empty: bool) -> Option<Vec<T>> {
        let Some(value) = self.value(name) else {
            self.error(name, Value::Null, "is required");
            return None;
        };
        self.items(name, value, non_empty)
    }

    /// An optional array field (see [`Fields::list`]).
    pub fn optional_list<T: FieldValue>(&mut self, name: &'static str) -> Option<Option<Vec<T>>> {
        match self.value(name) {
            None => Some(None),
            Some(value) => self.items(name, value, false).map(Some),
        }
    }

    fn items<T: FieldValue>(
        &mut self,
        name: &'static str,
        value: &Value,
        non_empty: bool,
    ) -> Option<Vec<T>> {
        let items = match value.as_array() {
            Some(items) if !(non_empty && items.is_empty()) => items,
            _ => {
                let msg = if non_empty {
                    "must be a non-empty array"
                } else {
                    "must be an array"
                };
                self.error(name, value.clone(), msg);
                return None;
            }
        };
        let mut parsed = Vec::with_capacity(items.len());
        let mut valid = true;
        for (index, item) in items.iter().enumerate() {
            let path = format!("{}[{index}]", self.path(name));
            match self.errors.parse(&path, item, T::from_json) {
                Some(value) => parsed.push(value),
                None => valid = false,
            }
        }
        valid.then_some(parsed)
    }

    /// The raw value of a field, `None` when absent or `null`; the field counts as read.
    pub fn value(&mut self, name: &'static str) -> Option<&'a Value> {
        self.read.push(name);
        self.object.get(name).filter(|value| !value.is_null())
    }

    /// Whether the field is in the object at all (`null` included).
    pub fn has(&self, name: &str) -> bool {
        self.object.contains_key(name)
    }

    /// Whether the field holds a value (present and not `null`).
    pub fn has_value(&self, name: &str) -> bool {
        self.object.get(name).is_some_and(|value| !value.is_null())
    }

    /// Records an error at a field (a rule across fields).
    pub fn error(&mut self, name: &str, value: Value, msg: impl Into<String>) {
        let path = self.path(name);
        self.errors.push(FieldError::body(path, value, msg));
    }

    fn path(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Reports every field that was not read.
    fn refuse_unread(&mut self) {
        let unread: Vec<(&String, &Value)> = self
            .object
            .iter()
            .filter(|(key, _)| !self.read.contains(&key.as_str()))
            .collect();
        for (key, value) in unread {
            let path = self.path(key);
            self.errors.push(FieldError::body(
                path,
                value.clone(),
                "is not a field of this body",
            ));
        }
    }
}

/// A JSON object body of type `T`, read and validated.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: Body> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let JsonBody(value) = JsonBody::from_request(request, state).await?;
        T::from_json(&value).map(Json)
    }
}

/// A JSON array body of at least one `T` (every invalid field of every item reported at
/// `[i].field`).
#[derive(Debug, Clone)]
pub struct JsonList<T>(pub Vec<T>);

impl<S: Send + Sync, T: Body> FromRequest<S> for JsonList<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let JsonBody(value) = JsonBody::from_request(request, state).await?;
        let items = match &value {
            Value::Array(items) if !items.is_empty() => items,
            Value::Array(_) => {
                return Err(ApiError::Body(
                    "the body must hold at least one item".into(),
                ))
            }
            _ => return Err(ApiError::Body("the body must be a JSON array".into())),
        };
        let mut errors = FieldErrors::new();
        let mut list = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let Some(object) = item.as_object() else {
                errors.push(FieldError::body(
                    format!("[{index}]"),
                    item.clone(),
                    "must be an object",
                ));
                continue;
            };
            if let Some(body) = T::read_object(object, &format!("[{index}]."), &mut errors) {
                list.push(body);
            }
        }
        errors.into_result()?;
        Ok(JsonList(list))
    }
}

/// A body of type `T` sent as JSON or as an HTML form (`application/x-www-form-urlencoded`,
/// whose values are strings), as Liquid's login page posts it.
#[derive(Debug, Clone)]
pub struct JsonOrForm<T>(pub T);

impl<S: Send + Sync, T: Body> FromRequest<S> for JsonOrForm<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let is_form = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|mime| {
                mime.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            let Json(body) = Json::<T>::from_request(request, state).await?;
            return Ok(JsonOrForm(body));
        }
        let (limit, deadline) = body_bounds(&request);
        let bytes = read_whole(request.into_body(), limit, deadline).await?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|error| ApiError::Body(format!("the form is malformed: {error}")))?;
        let mut object = Map::new();
        for (name, value) in pairs {
            if object.contains_key(&name) {
                return Err(ApiError::Body(format!(
                    "the form is malformed: the field {name:?} appears twice"
                )));
            }
            object.insert(name, Value::String(value));
        }
        T::from_json(&Value::Object(object)).map(JsonOrForm)
    }
}

/// A JSON body, parsed but not read into a type: for the handlers that must look at the raw
/// fields before reading them (`update` refuses fields by privilege first).
#[derive(Debug, Clone)]
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        let (limit, deadline) = body_bounds(&request);
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
        let bytes = read_whole(request.into_body(), limit, deadline).await?;
        strict::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|error| ApiError::Body(format!("the body is not valid JSON: {error}")))
    }
}

/// The edge's body limit and body read timeout for `request` (none outside an edge).
fn body_bounds(request: &Request) -> (usize, Duration) {
    request
        .extensions()
        .get::<Arc<EdgeState>>()
        .map_or((usize::MAX, Duration::MAX), |edge| {
            (edge.settings.body_limit, edge.settings.body_read_timeout)
        })
}

/// A body read whole: at most `limit` bytes (413 past it), all arrived within `deadline` of
/// being asked for (400 otherwise; the timeout between frames alone would let a client trickle
/// a byte at a time for as long as it likes, holding its place among the requests in flight).
pub async fn read_whole(
    body: axum::body::Body,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, ApiError> {
    let read = axum::body::to_bytes(body, limit);
    match tokio::time::timeout(deadline, read).await {
        Err(_) => Err(ApiError::Body(format!(
            "the body did not arrive within {} s",
            deadline.as_secs()
        ))),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(error)) => {
            let too_large = std::iter::successors(
                Some(&error as &(dyn std::error::Error + 'static)),
                |error| error.source(),
            )
            .any(|error| error.is::<http_body_util::LengthLimitError>());
            Err(if too_large {
                ApiError::BodyTooLarge { limit }
            } else {
                ApiError::Body(format!("the body could not be read: {error}"))
            })
        }
    }
}
