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
    Bio, CountryCode, CustomLink, Designation, Email, Gender, LanguageCode, Organization, Password,
    PersonName, Pronouns, RoleId, UserId, Username, ValidationError,
};
use serde_json::{json, Map, Value};

use super::toggles::role_unchanged;
use super::view::user_view;
use super::{
    boolean, caller_outranks, load_user, object, outranked, require_outranks_user, role_rank,
    target, text, unknown_role,
};
use crate::pipeline::execute;
use crate::AppState;
use events::user::editable::{sensitivity_scope, EDITABLE_FIELDS};
use http_edge::auth::Caller;
use http_edge::envelope::{Answer, ApiError, FieldError, FieldErrors};
use http_edge::extract::JsonBody;

/// The value that clears an optional field.
pub const UNSET: &str = "__unset__";

/// A parsed `update` request; the password is hashed after every check passed.
struct Requested {
    target: UserId,
    update: UpdateUser,
    password: Option<Password>,
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub, edge = caller.edge.as_str()))]
pub async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Answer, ApiError> {
    let map = object(&body)?;
    check_editable(map)?;
    check_sensitivity(&caller, map)?;
    let Requested {
        target,
        mut update,
        password,
    } = parse(map)?;

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
    let outcome = execute::<User, _>(
        &*state.store,
        &target,
        &caller.command_context(),
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
    let user = user_view(&state, target, outcome.position).await?;
    Ok(Answer::ok(json!({ "user": user })).at(outcome.position))
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

/// A field that `"__unset__"` clears: `Some(None)`.
fn clearable<T>(
    errors: &mut FieldErrors,
    map: &Map<String, Value>,
    key: &str,
    parse: impl FnOnce(&str) -> Result<T, ValidationError>,
) -> Option<Option<T>> {
    match map.get(key)? {
        Value::String(s) if s == UNSET => Some(None),
        value => errors.parse(key, value, text(parse)).map(Some),
    }
}

/// A field that cannot be cleared.
fn settable<T>(
    errors: &mut FieldErrors,
    map: &Map<String, Value>,
    key: &str,
    parse: impl FnOnce(&str) -> Result<T, ValidationError>,
) -> Option<T> {
    match map.get(key)? {
        value @ Value::String(s) if s == UNSET => {
            errors.push(FieldError::body(
                key,
                value.clone(),
                "is required and cannot be unset",
            ));
            None
        }
        value => errors.parse(key, value, text(parse)),
    }
}

fn parse(map: &Map<String, Value>) -> Result<Requested, ApiError> {
    let mut errors = FieldErrors::new();
    let target = target(&mut errors, map);
    let name = |field| move |value: &str| PersonName::parse_field(field, value);
    let profile = ProfileChanges {
        first_name: settable(&mut errors, map, "firstName", name("firstName")),
        last_name: settable(&mut errors, map, "lastName", name("lastName")),
        middle_name: clearable(&mut errors, map, "middleName", name("middleName")),
        bio: clearable(&mut errors, map, "bio", Bio::parse),
        pronouns: clearable(&mut errors, map, "pronouns", Pronouns::parse),
        custom_link: clearable(&mut errors, map, "customLink", CustomLink::parse),
        organization: clearable(&mut errors, map, "organization", Organization::parse),
        designation: clearable(&mut errors, map, "designation", Designation::parse),
        gender: clearable(&mut errors, map, "gender", Gender::parse),
        preferred_language: clearable(&mut errors, map, "preferredLanguage", LanguageCode::parse),
        country: clearable(&mut errors, map, "country", CountryCode::parse),
    };
    let email = settable(&mut errors, map, "email", Email::parse);
    let username = settable(&mut errors, map, "username", Username::parse);
    let password = settable(&mut errors, map, "password", Password::parse);
    let role = settable(&mut errors, map, "role", RoleId::parse_user_role);
    let delete = match map.get("isDeleted") {
        None => false,
        Some(value) => errors.parse("isDeleted", value, boolean).unwrap_or(false),
    };
    errors.into_result()?;
    let target = target.ok_or_else(|| ApiError::internal(anyhow::anyhow!("no target")))?;
    Ok(Requested {
        target,
        update: UpdateUser {
            profile,
            email,
            username,
            password_hash: None,
            role,
            delete,
        },
        password,
    })
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
