//! The schemas of the write side's bodies and answers, written after API.md. They only
//! describe: the handlers read bodies as JSON values field by field (so that every invalid
//! field is reported) and build answers from the domain's views, whose schemas are derived from
//! them (`events`, feature `openapi`).

use events::application::ApplicationView;
use events::role::RoleView;
use events::user::UserView;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

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
    pub user: UserView,
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
    pub role: RoleView,
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
    pub client: CreatedClient,
}

/// An application with, in the create answer only, its secret (shown nowhere else).
#[derive(Serialize, ToSchema)]
pub struct CreatedClient {
    #[serde(flatten)]
    pub application: ApplicationView,
    /// Only in the create answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}
