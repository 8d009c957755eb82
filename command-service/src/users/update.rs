//! `PATCH update`: `{target, <editable fields>}` (API.md §3). The order of refusals:
//! 1. scope `profile:write` (401);
//! 2. a field outside the editable list (401 InsufficientPrivileges naming it);
//! 3. each field's write sensitivity, `profile:sensitive:<level>:write` (401 naming the scope);
//! 4. every invalid value, together (400); `"__unset__"` clears an optional field;
//! 5. the target exists (404); the caller out-ranks it and any new role, unless super_admin
//!    (401); a new role exists (400 NotFound);
//! 6. a username or email another user holds (409 ResourceConflict naming every such field;
//!    the store's claims decide races).
//!
//! The answer is the user after the update (Liquid answers the user before it; API.md §6).

use axum::extract::State;
use events::store::UniqueClaim;
use events::user::{ProfileChanges, UpdateUser, User, UserCommand, EMAIL_CLAIM, USERNAME_CLAIM};
use events::values::{
    Bio, CountryCode, CustomLink, Designation, Email, FieldValue, Gender, LanguageCode,
    Organization, Password, PersonName, Pronouns, UserId, UserRole, Username, ValidationError,
};
use serde_json::{json, Map, Value};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use super::toggles::role_unchanged;
use super::view::{user_after, UserAnswer};
use super::{
    caller_outranks, load_user, outranked, require_outranks_user, role_rank, unknown_role,
};
use crate::pipeline::execute;
use crate::AppState;
use events::user::editable::{sensitivity_scope, EDITABLE_FIELDS};
use http_edge::auth::Caller;
use http_edge::body::{Body, Fields, JsonBody};
use http_edge::envelope::{Answer, ApiError};

/// The value that clears an optional field.
pub const UNSET: &str = "__unset__";

/// `update`: the target and any editable field. A field outside the configured editable
/// list is 401 InsufficientPrivileges; each field needs the shared
/// `E:profile:sensitive:<level>:write` of its level (low: names, bio, pronouns, customLink,
/// organization, designation, gender, preferredLanguage; medium: email; high: username,
/// password, role, country; extreme: isDeleted). `"__unset__"` clears an optional field; a
/// required one (names, email, username, password, role) cannot be unset.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct UserUpdate {
    /// The user's `_id`.
    pub target: UserId,
    pub first_name: Option<PersonName>,
    pub last_name: Option<PersonName>,
    #[schema(schema_with = clearable::<PersonName>)]
    pub middle_name: Option<Clearable<PersonName>>,
    #[schema(schema_with = clearable::<Bio>)]
    pub bio: Option<Clearable<Bio>>,
    #[schema(schema_with = clearable::<Pronouns>)]
    pub pronouns: Option<Clearable<Pronouns>>,
    #[schema(schema_with = clearable::<CustomLink>)]
    pub custom_link: Option<Clearable<CustomLink>>,
    #[schema(schema_with = clearable::<Organization>)]
    pub organization: Option<Clearable<Organization>>,
    #[schema(schema_with = clearable::<Designation>)]
    pub designation: Option<Clearable<Designation>>,
    #[schema(schema_with = clearable::<Gender>)]
    pub gender: Option<Clearable<Gender>>,
    #[schema(schema_with = clearable::<LanguageCode>)]
    pub preferred_language: Option<Clearable<LanguageCode>>,
    #[schema(schema_with = clearable::<CountryCode>)]
    pub country: Option<Clearable<CountryCode>>,
    pub email: Option<Email>,
    pub username: Option<Username>,
    pub password: Option<Password>,
    pub role: Option<UserRole>,
    pub is_deleted: Option<bool>,
}

/// An optional profile field's new value, or `"__unset__"` (`Clearable(None)`), which clears
/// it.
#[derive(Debug)]
pub struct Clearable<T>(pub Option<T>);

impl<T: FieldValue> FieldValue for Clearable<T> {
    fn from_json(value: &Value) -> Result<Self, ValidationError> {
        match value {
            Value::String(s) if s == UNSET => Ok(Self(None)),
            value => T::from_json(value).map(|value| Self(Some(value))),
        }
    }
}

/// A [`Clearable`] field as a change: `Some(None)` clears it.
pub(super) fn cleared<T>(field: Option<Clearable<T>>) -> Option<Option<T>> {
    field.map(|Clearable(value)| value)
}

/// The schema of a [`Clearable`] field: the value's, or `"__unset__"`.
pub(super) fn clearable<T: PartialSchema>() -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(T::schema())
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("Clears the field."))
                .enum_values(Some([UNSET])),
        )
        .into()
}

/// A field that cannot be cleared: `"__unset__"` is refused as such.
pub(super) fn settable<T: FieldValue>(value: &Value) -> Result<T, ValidationError> {
    match value {
        Value::String(s) if s == UNSET => Err(ValidationError::new(
            "value",
            "is required and cannot be unset",
        )),
        value => T::from_json(value),
    }
}

impl Body for UserUpdate {
    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let target = fields.required("target");
        let first_name = fields.optional_with("firstName", settable);
        let last_name = fields.optional_with("lastName", settable);
        let middle_name = fields.optional("middleName");
        let bio = fields.optional("bio");
        let pronouns = fields.optional("pronouns");
        let custom_link = fields.optional("customLink");
        let organization = fields.optional("organization");
        let designation = fields.optional("designation");
        let gender = fields.optional("gender");
        let preferred_language = fields.optional("preferredLanguage");
        let country = fields.optional("country");
        let email = fields.optional_with("email", settable);
        let username = fields.optional_with("username", settable);
        let password = fields.optional_with("password", settable);
        let role = fields.optional_with("role", settable);
        let is_deleted = fields.optional("isDeleted");
        Some(Self {
            target: target?,
            first_name: first_name?,
            last_name: last_name?,
            middle_name: middle_name?,
            bio: bio?,
            pronouns: pronouns?,
            custom_link: custom_link?,
            organization: organization?,
            designation: designation?,
            gender: gender?,
            preferred_language: preferred_language?,
            country: country?,
            email: email?,
            username: username?,
            password: password?,
            role: role?,
            is_deleted: is_deleted?,
        })
    }
}

impl UserUpdate {
    /// The command's changes, and the password to hash once every check passed.
    fn into_changes(self) -> (UpdateUser, Option<Password>) {
        let profile = ProfileChanges {
            first_name: self.first_name,
            last_name: self.last_name,
            middle_name: cleared(self.middle_name),
            bio: cleared(self.bio),
            pronouns: cleared(self.pronouns),
            custom_link: cleared(self.custom_link),
            organization: cleared(self.organization),
            designation: cleared(self.designation),
            gender: cleared(self.gender),
            preferred_language: cleared(self.preferred_language),
            country: cleared(self.country),
        };
        let update = UpdateUser {
            profile,
            email: self.email,
            username: self.username,
            password_hash: None,
            role: self.role.map(|UserRole(role)| role),
            delete: self.is_deleted.unwrap_or(false),
        };
        (update, self.password)
    }
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub, edge = caller.edge.as_str()))]
pub async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Answer, ApiError> {
    // Which fields may be sent at all is decided before any value is read (the order of
    // refusals above).
    if let Some(map) = body.as_object() {
        check_editable(map)?;
        check_sensitivity(&caller, map)?;
    }
    let request = UserUpdate::from_json(&body)?;
    let target = request.target;
    let (mut update, password) = request.into_changes();

    let user = load_user(&state, &target).await?;
    require_outranks_user(&state, &caller, &user.role).await?;
    if let Some(role) = &update.role {
        if role_rank(&state, role).await?.is_none() {
            return Err(unknown_role(role));
        }
        if !caller.is_super_admin() && !caller_outranks(&state, &caller, role).await? {
            return Err(outranked("the new role", role));
        }
    }
    check_duplicates(&state, &target, &update).await?;
    if let Some(password) = password {
        update.password_hash = Some(state.hasher.hash(password.expose()).await?);
    }

    let checked_role = user.role;
    let context = caller.command_context();
    let outcome = execute::<User, _>(
        &*state.store,
        &target,
        &context,
        state.settings.command_attempts,
        |current| {
            role_unchanged(current, &checked_role)?;
            Ok(UserCommand::Update(update.clone()))
        },
    )
    .await?;
    if outcome.state.as_ref().is_some_and(|u| u.deleted) {
        state.edge.access.forget(&target.to_string());
    }
    let user = user_after(&state, target, &outcome, &context).await?;
    Ok(Answer::ok(UserAnswer { user: &user }).at(outcome.position))
}

/// 401 InsufficientPrivileges naming every field outside the editable list.
fn check_editable(map: &Map<String, Value>) -> Result<(), ApiError> {
    let refused: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|key| *key != "target" && !EDITABLE_FIELDS.iter().any(|(f, _)| f == key))
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    Err(ApiError::InsufficientPrivileges(json!({
        "reason": "these fields are not editable",
        "fields": refused,
    })))
}

/// 401 InsufficientPrivileges when the caller lacks a field's sensitivity scope.
fn check_sensitivity(caller: &Caller, map: &Map<String, Value>) -> Result<(), ApiError> {
    for (field, level) in EDITABLE_FIELDS {
        if !map.contains_key(*field) {
            continue;
        }
        let x = sensitivity_scope(level);
        if !caller.shared(&x) {
            return Err(ApiError::InsufficientPrivileges(json!({
                "requiredScope": format!("{}:{x}", caller.edge.as_str()),
                "field": field,
            })));
        }
    }
    Ok(())
}

/// 409 naming every new username or email that another user holds. The append's claims decide
/// a race that starts after this check.
async fn check_duplicates(
    state: &AppState,
    target: &UserId,
    update: &UpdateUser,
) -> Result<(), ApiError> {
    let own = User::stream_name(*target);
    let mut candidates = Vec::new();
    if let Some(username) = &update.username {
        candidates.push((
            "username",
            UniqueClaim::new(USERNAME_CLAIM, username.as_str()),
        ));
    }
    if let Some(email) = &update.email {
        candidates.push((
            "email",
            UniqueClaim::new(EMAIL_CLAIM, email.sanitized().as_str()),
        ));
    }
    let mut duplicates = Vec::new();
    for (field, claim) in candidates {
        if let Some(holder) = state.store.claim_holder(&claim).await? {
            if holder != own {
                duplicates.push(field);
            }
        }
    }
    if duplicates.is_empty() {
        Ok(())
    } else {
        Err(ApiError::ResourceConflict(
            json!({ "duplicateFields": duplicates }),
        ))
    }
}
