//! The schemas of the document: the envelopes, the objects the API answers (user, role,
//! application) and the write side's bodies, written after API.md. They only describe: the
//! handlers read bodies as JSON values field by field (so that every invalid field is
//! reported) and build answers from the domain's views; `tests/tests/openapi.rs` checks that
//! the objects' properties are the keys the API really answers.

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

/// A token request (form-urlencoded); which fields matter depends on `grant_type`. Client
/// credentials may also come as HTTP Basic authentication.
#[derive(Serialize, ToSchema)]
pub struct TokenRequest {
    #[schema(pattern = "^(client_credentials|password|refresh_token)$")]
    pub grant_type: String,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// Space-separated scopes (`client_credentials`): each must be allowed by the
    /// application's scope plus its role's.
    pub scope: Option<String>,
    /// `password` grant: a username or an email.
    pub username: Option<String>,
    /// `password` grant.
    pub password: Option<String>,
    /// `refresh_token` grant.
    pub refresh_token: Option<String>,
}

/// A token (RFC 6749 §5.1), outside the envelope; sent with `Cache-Control: no-store`.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// A JWT, valid 15 minutes.
    pub access_token: String,
    #[schema(pattern = "^Bearer$")]
    pub token_type: String,
    /// Seconds.
    pub expires_in: u64,
    /// With the `password` and `refresh_token` grants (valid 14 days).
    pub refresh_token: Option<String>,
}

/// A user as the API shows it (admin and client views alike); no password or secret ever.
/// Dates are ISO-8601 UTC with milliseconds.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(rename = "_id")]
    pub id: String,
    pub username: String,
    pub first_name: String,
    pub middle_name: Option<String>,
    pub last_name: String,
    pub email: String,
    pub sanitized_email: String,
    pub email_verified: bool,
    pub phone: Option<String>,
    pub phone_country_code: Option<String>,
    pub phone_verified: bool,
    pub role: String,
    pub scope: Vec<String>,
    pub gender: Option<String>,
    pub bio: Option<String>,
    pub designation: Option<String>,
    pub pronouns: Option<String>,
    pub organization: Option<String>,
    pub custom_link: Option<String>,
    pub preferred_language: Option<String>,
    pub country: Option<String>,
    pub profile_picture_url: Option<String>,
    pub verified: bool,
    #[schema(format = DateTime)]
    pub verified_date: Option<String>,
    pub verified_by: Option<String>,
    pub is_private: bool,
    pub following_count: u64,
    pub follower_count: u64,
    /// `false` when the subscription is off, expired or on the base tier.
    pub is_subscribed: bool,
    pub subscription_tier: Option<String>,
    #[schema(format = DateTime)]
    pub subscription_expiry: Option<String>,
    #[schema(format = DateTime)]
    pub subscription_activated_at: Option<String>,
    pub subscription_identifier: Option<String>,
    pub subscription_cancelled: bool,
    #[schema(format = DateTime)]
    pub subscription_cancelled_at: Option<String>,
    pub credits: u64,
    pub is_banned: bool,
    #[schema(format = DateTime)]
    pub banned_date: Option<String>,
    pub banned_by: Option<String>,
    pub banned_reason: Option<String>,
    pub is_restricted: bool,
    #[schema(format = DateTime)]
    pub restricted_date: Option<String>,
    pub restricted_by: Option<String>,
    pub restricted_reason: Option<String>,
    pub is_deleted: bool,
    #[schema(format = DateTime)]
    pub deleted_date: Option<String>,
    /// Any JSON object, `null`, `true` or `false`.
    pub custom_data: Value,
    pub invited_by: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// One user of a `create` body.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewUser {
    /// Stored lowercased; unique, case-insensitively.
    #[schema(min_length = 6, max_length = 30, pattern = "^[a-zA-Z_][a-zA-Z0-9._]*$")]
    pub username: String,
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
    /// Unique on its sanitized form (lowercased; for gmail.com without `+tag` and dots).
    #[schema(format = Email)]
    pub email: String,
    /// Letters, marks, `'` and `-`.
    #[schema(min_length = 1, max_length = 32)]
    pub first_name: String,
    #[schema(min_length = 1, max_length = 32)]
    pub last_name: String,
    #[schema(min_length = 1, max_length = 32)]
    pub middle_name: Option<String>,
    /// An existing role that the caller out-ranks (default: the default role).
    #[schema(min_length = 3, max_length = 32)]
    pub role: Option<String>,
    #[schema(min_length = 2, max_length = 6, pattern = r"^(\+?\d{1,3}|\d{1,4})$")]
    pub phone_country_code: Option<String>,
    #[schema(min_length = 10, max_length = 12)]
    pub phone: Option<String>,
}

/// `create`'s answer (201).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InsertedCount {
    pub inserted_count: u64,
}

/// `update`: the target and any editable field. A field outside the configured editable
/// list is 401 InsufficientPrivileges; each field needs the shared
/// `E:profile:sensitive:<level>:write` of its level (low: names, bio, pronouns, customLink,
/// organization, designation, gender, preferredLanguage; medium: email; high: username,
/// password, role, country; extreme: isDeleted). `"__unset__"` clears an optional field.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserUpdate {
    /// The user's `_id`.
    pub target: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub middle_name: Option<String>,
    #[schema(min_length = 3, max_length = 256)]
    pub bio: Option<String>,
    #[schema(min_length = 3, max_length = 24)]
    pub pronouns: Option<String>,
    #[schema(max_length = 256, format = "uri")]
    pub custom_link: Option<String>,
    #[schema(min_length = 3, max_length = 128)]
    pub organization: Option<String>,
    pub designation: Option<String>,
    #[schema(min_length = 2, max_length = 128)]
    pub gender: Option<String>,
    /// ISO 639-1.
    pub preferred_language: Option<String>,
    #[schema(format = Email)]
    pub email: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub role: Option<String>,
    /// ISO 3166 alpha-2.
    pub country: Option<String>,
    pub is_deleted: Option<bool>,
}

/// `update`'s answer: the user after the change.
#[derive(Serialize, ToSchema)]
pub struct UserAnswer {
    pub user: User,
}

/// `custom-data`: replaces the whole value.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomDataBody {
    pub target: String,
    /// An object, `null`, `true` or `false`; at most 16 KiB serialised (configurable).
    pub custom_data: Value,
}

/// One user id, or a one-element array of it.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum OneTarget {
    Id(String),
    List(Vec<String>),
}

/// `ban`, `restrict`, `verify`.
#[derive(Serialize, ToSchema)]
pub struct ToggleBody {
    pub target: OneTarget,
    pub state: bool,
    #[schema(min_length = 8, max_length = 128)]
    pub reason: Option<String>,
}

/// `credits`. Credits never go negative.
#[derive(Serialize, ToSchema)]
pub struct CreditsBody {
    pub target: String,
    /// `increment`, `decrement` or `set` (`operation` is accepted as an alias).
    #[serde(rename = "type")]
    #[schema(pattern = "^(increment|decrement|set)$")]
    pub kind: String,
    pub value: u64,
}

/// `access`: changes the scope of users, applications or roles. Every scope must exist and
/// be held by the caller's own token.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessBody {
    /// User or application `_id`s, or role ids.
    pub targets: Vec<String>,
    #[schema(pattern = "^(user|client|role)$")]
    pub target_type: String,
    pub scope: Vec<String>,
    #[schema(pattern = "^(add|del|set)$")]
    pub operation: String,
}

/// A string or a number.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum TextOrNumber {
    Text(String),
    Number(f64),
}

/// `subscription`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionBody {
    pub target: String,
    pub state: bool,
    /// Required when `state` is true.
    #[schema(format = DateTime)]
    pub expiry: Option<String>,
    /// One of the configured tiers (see `subscription-tiers`).
    pub tier: Option<String>,
    pub subscription_identifier: Option<TextOrNumber>,
}

/// `subscription-cancel`.
#[derive(Serialize, ToSchema)]
pub struct SubscriptionCancelBody {
    pub target: String,
    pub cancelled: bool,
}

/// `POST invite-codes`.
#[derive(Serialize, ToSchema)]
pub struct InviteCodesBody {
    /// The owner's `_id`.
    pub target: String,
    /// Default 5, at most 15.
    #[schema(minimum = 1, maximum = 15)]
    pub count: Option<u32>,
}

/// An invite code, `ABCD-1234-<epoch millis>`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InviteCode {
    pub code: String,
    /// The user who redeemed it.
    pub target_id: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// Invite codes (the ones generated, or an owner's).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InviteCodes {
    pub invite_codes: Vec<InviteCode>,
}

/// A role.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Role {
    #[schema(min_length = 1, max_length = 128, pattern = "^[a-zA-Z0-9_]+$")]
    pub id: String,
    #[schema(min_length = 1, max_length = 128)]
    pub display_name: String,
    /// A lower number is more powerful.
    #[schema(minimum = 1)]
    pub ranking: u64,
    #[schema(min_length = 1, max_length = 512)]
    pub description: Option<String>,
    pub scope: Vec<String>,
    #[serde(rename = "type")]
    #[schema(pattern = "^user$")]
    pub kind: String,
    /// System roles cannot be updated or deleted.
    pub system: bool,
}

/// `roles create`; a `scope` is ignored (scopes are given through `access`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewRole {
    #[schema(min_length = 1, max_length = 128, pattern = "^[a-zA-Z0-9_]+$")]
    pub id: String,
    #[schema(min_length = 1, max_length = 128)]
    pub display_name: String,
    #[schema(minimum = 1)]
    pub ranking: u64,
    #[schema(min_length = 1, max_length = 512)]
    pub description: Option<String>,
}

/// `roles update`: the role (`id`, or `target`) and the fields to change.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleUpdate {
    pub id: Option<String>,
    /// Accepted instead of `id`.
    pub target: Option<String>,
    #[schema(min_length = 1, max_length = 128)]
    pub display_name: Option<String>,
    #[schema(minimum = 1)]
    pub ranking: Option<u64>,
    #[schema(min_length = 1, max_length = 512)]
    pub description: Option<String>,
}

/// `roles delete`: the role (`id`, or `target`); its users move to the default role.
#[derive(Serialize, ToSchema)]
pub struct RoleTarget {
    pub id: Option<String>,
    /// Accepted instead of `id`.
    pub target: Option<String>,
}

/// A role answered by `create` and `update`.
#[derive(Serialize, ToSchema)]
pub struct RoleAnswer {
    pub role: Role,
}

/// An OAuth application. Its secret is shown only in the create answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Client {
    /// The database id, used as `target`.
    #[serde(rename = "_id")]
    pub database_id: String,
    /// The OAuth `client_id`.
    pub id: String,
    pub display_name: String,
    #[schema(pattern = "^(internal_client|external_client)$")]
    pub role: String,
    pub grants: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub is_public: bool,
    pub scope: Vec<String>,
    /// Only in the create answer.
    pub secret: Option<String>,
}

/// `client create` (`id`, `displayName`, `role` and, unless public, `secret` are required)
/// and `client update` (`target` plus any field).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientBody {
    /// `update` only: the application's `_id`.
    pub target: Option<String>,
    /// The OAuth `client_id`, unique.
    #[schema(min_length = 8, max_length = 30, pattern = "^[a-zA-Z_][a-zA-Z0-9._]*$")]
    pub id: Option<String>,
    #[schema(min_length = 8, max_length = 96)]
    pub display_name: Option<String>,
    #[schema(pattern = "^(internal_client|external_client)$")]
    pub role: Option<String>,
    /// A subset of client_credentials, authorization_code, refresh_token, password.
    pub grants: Option<Vec<String>>,
    pub redirect_uris: Option<Vec<String>>,
    /// Public applications have no secret and no client_credentials grant.
    pub is_public: Option<bool>,
    #[schema(min_length = 8, max_length = 256)]
    pub secret: Option<String>,
    /// Known scopes, each held by the caller (default `["delegated:all"]`).
    pub scope: Option<Vec<String>>,
}

/// `client delete`.
#[derive(Serialize, ToSchema)]
pub struct ClientTarget {
    /// The application's `_id`.
    pub target: String,
}

/// An application answered by `create` and `update`.
#[derive(Serialize, ToSchema)]
pub struct ClientAnswer {
    pub client: Client,
}
