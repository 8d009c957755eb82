//! The schemas of the read side's answers (its one body, `retrieve-user-info`'s, is beside
//! its handler), for the OpenAPI document
//! ([`http_edge::openapi`] says how routes and their documentation are built together).
//! Written after API.md and the README's "Audit" section.

use events::application::ApplicationView;
use events::role::RoleView;
use events::user::UserView;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// `list`: a page of users in `_id` (creation) order.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsersPage {
    pub users: Vec<UserView>,
    pub total_users: u64,
}

/// `retrieve-user-info`, `user-info`: the users found, in `_id` order (targets that match
/// nobody are left out).
#[derive(Serialize, ToSchema)]
pub struct Users {
    pub users: Vec<UserView>,
}

/// `GET /user/me`: the caller's own user object and the fields they may change on it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OwnAccount {
    pub user: UserView,
    pub editable_fields: Vec<String>,
}

/// The user search routes: at most 10 users.
#[derive(Serialize, ToSchema)]
pub struct SearchResults {
    /// For `/user/search`, each as another user sees them (see `Profile`).
    pub results: Vec<UserView>,
}

/// `GET /user/{userId}`: the user as the caller sees them. Never shown: `scope`, `verifiedBy`,
/// `bannedBy`, `restrictedBy`, `customData`. A private account the caller does not follow
/// also hides `email`, `sanitizedEmail`, `phone`, `phoneCountryCode`, `isBanned` and
/// `credits`; a deleted or banned user shows only `_id`, `isDeleted`, `isBanned` and
/// `customData: {}`.
#[derive(Serialize, ToSchema)]
pub struct Profile {
    pub user: UserView,
}

/// `editable-fields`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EditableFields {
    /// The fields the caller may write (it holds their sensitivity scope).
    pub editable_fields: Vec<String>,
    /// Every configured field's write sensitivity: `low`, `medium`, `high` or `extreme`.
    pub sensitivity_levels: std::collections::BTreeMap<String, String>,
}

/// One subscription tier.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionTier {
    pub name: String,
    pub is_base_tier: bool,
}

/// `subscription-tiers`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionTiers {
    pub subscription_tiers: Vec<SubscriptionTier>,
}

/// `/client/admin-api/list` (no secrets).
#[derive(Serialize, ToSchema)]
pub struct Clients {
    pub clients: Vec<ApplicationView>,
}

/// `/roles/list`, by ranking.
#[derive(Serialize, ToSchema)]
pub struct Roles {
    pub roles: Vec<RoleView>,
}

/// `block-status`.
#[derive(Serialize, ToSchema)]
pub struct BlockStatus {
    pub blocked: bool,
}

/// `follow-status` (approved follows only).
#[derive(Serialize, ToSchema)]
pub struct FollowStatus {
    pub following: bool,
}

/// The delegated `follow-status`: `requested` only while a request waits.
#[derive(Serialize, ToSchema)]
pub struct FollowState {
    pub following: bool,
    pub requested: Option<bool>,
}

/// A follow request waiting on you: `source` asks to follow you.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FollowRequestRecord {
    /// What `PATCH /user/follow-request` takes as `request`.
    #[serde(rename = "_id")]
    pub id: String,
    /// Always `false`.
    pub approved: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// As `createdAt`: a request does not change while it waits.
    #[schema(format = DateTime)]
    pub updated_at: String,
    pub source: UserView,
}

/// The follow requests waiting on you, oldest first.
#[derive(Serialize, ToSchema)]
pub struct FollowRequestRecords {
    pub records: Vec<FollowRequestRecord>,
}

/// One accepted follow, as a person's lists show it: `source` (on followers pages) or `target`
/// (on following pages) is the other user, as a search result shows them.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersonFollowRecord {
    #[serde(rename = "_id")]
    pub id: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub source: Option<UserView>,
    pub target: Option<UserView>,
}

/// A person's `following` and `followers`, newest first.
#[derive(Serialize, ToSchema)]
pub struct PersonFollowRecords {
    pub records: Vec<PersonFollowRecord>,
}

/// One follow: `source` (on followers pages) or `target` (on following pages) is the other
/// user.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FollowRecord {
    #[serde(rename = "_id")]
    pub id: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub approved: bool,
    pub source: Option<UserView>,
    pub target: Option<UserView>,
}

/// `followers`, `following`.
#[derive(Serialize, ToSchema)]
pub struct FollowRecords {
    pub records: Vec<FollowRecord>,
}

/// Who caused an event.
#[derive(Serialize, ToSchema)]
pub struct HistoryActor {
    pub id: Option<String>,
    /// `user`, `client` or `system`.
    #[schema(pattern = "^(user|client|system)$")]
    pub kind: String,
}

/// One event of a history page.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEvent {
    /// The event's revision in its stream.
    pub revision: u64,
    /// Its log position (a consistency token).
    pub position: String,
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[schema(format = DateTime)]
    pub occurred_at: String,
    pub actor: HistoryActor,
    pub correlation_id: String,
    pub causation_id: String,
    /// The event's payload; secrets show as `"[redacted]"`.
    pub changes: Value,
    /// Its link in the stream's hash chain (absent on older events).
    pub hash: Option<String>,
}

/// A history page (without `at`), or the target as it was at `at` (with it: `user`, `role`
/// or `client` by route, plus `revision`, `position`, `occurredAt`; a deleted role or
/// application has `"deleted": true`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct History {
    pub events: Option<Vec<HistoryEvent>>,
    /// The `from` of the next page, `null` on the last one.
    pub next: Option<u64>,
    pub user: Option<UserView>,
    pub role: Option<RoleView>,
    pub client: Option<ApplicationView>,
    pub revision: Option<u64>,
    pub position: Option<String>,
    #[schema(format = DateTime)]
    pub occurred_at: Option<String>,
}

/// One read model's progress.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionProgress {
    /// The last log position applied (a consistency token), `null` before the first batch.
    pub position: Option<String>,
    /// Age of the oldest event not applied yet; 0 at the head.
    pub lag_ms: u64,
    /// Whether this process runs the projection.
    pub active: bool,
}

/// `GET /projections/status`, outside the envelope.
#[derive(Serialize, ToSchema)]
pub struct ProjectionsStatus {
    /// By read model: `users`, `roles`, `applications`, `invite_codes`, `social`.
    pub projections: std::collections::BTreeMap<String, ProjectionProgress>,
}
