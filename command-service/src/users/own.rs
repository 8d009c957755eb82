//! `PATCH /user/me`: a signed-in person changes their own profile (session
//! `delegated:profile:write`). The order of refusals:
//! 1. every field outside the fields a person may change on their own account (those of
//!    [`OwnProfileUpdate`], Liquid's default `user.profile.editable-fields`, which `GET
//!    /user/me` lists) and every invalid value, together: 400 naming each. Email, username,
//!    role, scope and standing are never changed here. Values follow the admin `update`'s
//!    rules; `"__unset__"` clears an optional field;
//! 2. a new `password` needs `currentPassword` (400 when missing), and a wrong one is
//!    401 Unauthorized (Liquid's `user.profile.update.require-current-password`).
//!
//! The answer is the user after the update, as the admin `update` answers (Liquid answers the
//! user before it; API.md §6).

use axum::extract::State;
use events::user::{ProfileChanges, UpdateUser, User, UserCommand};
use events::values::{
    Bio, CustomLink, Gender, LanguageCode, Organization, Password, PersonName, Pronouns, UserId,
};
use http_edge::auth::Caller;
use http_edge::body::{Body, Fields, Json};
use http_edge::envelope::{Answer, ApiError};
use serde_json::Value;
use utoipa::ToSchema;

use super::load_user;
use super::update::{clearable, cleared, settable, Clearable};
use super::view::{user_after, UserAnswer};
use crate::pipeline::execute;
use crate::AppState;

/// `PATCH /user/me`: any of the fields a person may change on their own profile (Liquid's
/// default `user.profile.editable-fields`). `"__unset__"` clears an optional one. Changing
/// `password` needs `currentPassword`. Any other field is refused.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct OwnProfileUpdate {
    pub first_name: Option<PersonName>,
    pub last_name: Option<PersonName>,
    #[schema(schema_with = clearable::<PersonName>)]
    pub middle_name: Option<Clearable<PersonName>>,
    pub password: Option<Password>,
    /// Your password now: required with `password`.
    pub current_password: Option<String>,
    #[schema(schema_with = clearable::<Bio>)]
    pub bio: Option<Clearable<Bio>>,
    #[schema(schema_with = clearable::<Pronouns>)]
    pub pronouns: Option<Clearable<Pronouns>>,
    #[schema(schema_with = clearable::<CustomLink>)]
    pub custom_link: Option<Clearable<CustomLink>>,
    #[schema(schema_with = clearable::<Organization>)]
    pub organization: Option<Clearable<Organization>>,
    #[schema(schema_with = clearable::<Gender>)]
    pub gender: Option<Clearable<Gender>>,
    #[schema(schema_with = clearable::<LanguageCode>)]
    pub preferred_language: Option<Clearable<LanguageCode>>,
}

impl Body for OwnProfileUpdate {
    const CLOSED: bool = true;

    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let first_name = fields.optional_with("firstName", settable);
        let last_name = fields.optional_with("lastName", settable);
        let middle_name = fields.optional("middleName");
        let password = fields.optional_with("password", settable);
        let current_password = fields.optional("currentPassword");
        let bio = fields.optional("bio");
        let pronouns = fields.optional("pronouns");
        let custom_link = fields.optional("customLink");
        let organization = fields.optional("organization");
        let gender = fields.optional("gender");
        let preferred_language = fields.optional("preferredLanguage");
        let update = Self {
            first_name: first_name?,
            last_name: last_name?,
            middle_name: middle_name?,
            password: password?,
            current_password: current_password?,
            bio: bio?,
            pronouns: pronouns?,
            custom_link: custom_link?,
            organization: organization?,
            gender: gender?,
            preferred_language: preferred_language?,
        };
        if update.password.is_some() && update.current_password.is_none() {
            fields.error(
                "currentPassword",
                Value::Null,
                "is required to change the password",
            );
            return None;
        }
        Some(update)
    }
}

impl OwnProfileUpdate {
    /// The command's changes; the new password and the current one, to check and hash.
    fn into_changes(self) -> (UpdateUser, Option<(Password, String)>) {
        let profile = ProfileChanges {
            first_name: self.first_name,
            last_name: self.last_name,
            middle_name: cleared(self.middle_name),
            bio: cleared(self.bio),
            pronouns: cleared(self.pronouns),
            custom_link: cleared(self.custom_link),
            organization: cleared(self.organization),
            gender: cleared(self.gender),
            preferred_language: cleared(self.preferred_language),
            ..ProfileChanges::default()
        };
        let update = UpdateUser {
            profile,
            ..UpdateUser::default()
        };
        (update, self.password.zip(self.current_password))
    }
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
pub async fn update_own_profile(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<OwnProfileUpdate>,
) -> Result<Answer, ApiError> {
    let id = UserId::parse(&caller.claims.sub)
        .map_err(|_| ApiError::Unauthorized("the token is not a user's"))?;
    let (mut update, password) = body.into_changes();
    if let Some((password, current)) = password {
        let user = load_user(&state, &id).await?;
        let known = match &user.password_hash {
            Some(hash) => state.hasher.verify(&current, hash).await?,
            None => false,
        };
        if !known {
            return Err(ApiError::Unauthorized("the current password is not right"));
        }
        update.password_hash = Some(state.hasher.hash(password.expose()).await?);
    }

    let context = caller.command_context();
    let outcome = execute::<User, _>(
        &*state.store,
        &id,
        &context,
        state.settings.command_attempts,
        |_| Ok(UserCommand::Update(update.clone())),
    )
    .await?;
    let user = user_after(&state, id, &outcome, &context).await?;
    Ok(Answer::ok(UserAnswer { user: &user }).at(outcome.position))
}
