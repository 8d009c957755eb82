//! The schemas of the envelopes and the error shapes, which every route shares. The objects
//! the API answers (user, role, application, invite codes) derive theirs from the domain's
//! views (`events`, feature `openapi`); each service's bodies live beside its routes.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// `{"ok":1}`: an operation with nothing to return.
#[derive(Serialize, ToSchema)]
pub struct Done {
    #[schema(minimum = 1, maximum = 1)]
    pub ok: u8,
}

/// `{"ok":0,"error":"<Code>","additionalInfo":{...}}`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorEnvelope {
    #[schema(minimum = 0, maximum = 0)]
    pub ok: u8,
    /// The error's code: `ClientInputError`, `Unauthorized`, `InsufficientPrivileges`,
    /// `Banned`, `NotFound`, `ResourceConflict`, ...
    pub error: String,
    /// Details: `errors` (every invalid field) for `ClientInputError`, `requiredScope` for
    /// `InsufficientPrivileges`, `duplicateFields` for `ResourceConflict`, `method` and
    /// `path` for an unknown route, ...
    pub additional_info: Option<AdditionalInfo>,
}

/// What an error adds; which keys appear depends on the error.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdditionalInfo {
    /// `ClientInputError`: every invalid field.
    pub errors: Option<Vec<FieldError>>,
    /// `InsufficientPrivileges`: the scope the check wanted.
    pub required_scope: Option<String>,
    /// `ResourceConflict`: `username`, `email`, `client-id`, ...
    pub duplicate_fields: Option<Vec<String>>,
    /// `ClientInputError` of `create`: the users or batch items that clash.
    pub existing_users: Option<Vec<Value>>,
    /// Why, in words.
    pub reason: Option<String>,
}

/// One invalid field, or (`type: body`, without `value` and `path`) a body that is not what
/// the route takes at all.
#[derive(Serialize, ToSchema)]
pub struct FieldError {
    /// `field`, or `body`.
    #[serde(rename = "type")]
    #[schema(pattern = "^(field|body)$")]
    pub kind: String,
    /// The value as sent.
    pub value: Option<Value>,
    /// A readable reason.
    pub msg: String,
    /// The field: `username`, `[0].username` in array bodies, `grants[1]`, ...
    pub path: Option<String>,
    #[schema(pattern = "^(body|query)$")]
    pub location: String,
}

/// OAuth's error shape (RFC 6749 §5.2), answered by `/oauth/token`.
#[derive(Serialize, ToSchema)]
pub struct OAuthError {
    /// `invalid_request` (400), `invalid_client`, `invalid_grant`, `invalid_scope`,
    /// `unsupported_grant_type` (401), `server_error` (500), `temporarily_unavailable` (503).
    pub error: String,
    pub error_description: String,
}

/// Any JSON document (the OpenAPI document itself).
#[derive(Serialize, ToSchema)]
pub struct OpenApiDocument {
    pub openapi: String,
    pub info: Value,
    pub paths: Value,
    pub components: Option<Value>,
}
