//! `POST create`: a JSON array of new users, all or nothing (API.md §3).
//!
//! Each user is a stream of its own, and the store appends one stream atomically, so "all or
//! nothing" is kept in three steps:
//! 1. everything that can be checked without writing is checked for the whole batch first:
//!    every field of every item, duplicates inside the batch, roles (exist, out-ranked by the
//!    caller), usernames and emails already claimed by another user; then every password is
//!    hashed. Any failure answers before anything is appended.
//! 2. the users are appended one by one, each with its username and email claims, so that of
//!    concurrent duplicates exactly one wins (invariant 2).
//! 3. if an append still fails (a concurrent request claimed a value after step 1, or the
//!    store failed), the users of this batch appended so far are deleted again (compensation,
//!    under the same correlation id), which releases their claims. The log then holds their
//!    creation and deletion, and no live user of the batch remains.

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use events::metadata::CommandContext;
use events::store::UniqueClaim;
use events::user::{CreateUser, User, UserCommand, EMAIL_CLAIM, USERNAME_CLAIM};
use events::values::{
    Credits, Email, InviteCode, Password, PersonName, Phone, PhoneCountryCode, RoleId, UserId,
    UserRole, Username,
};
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::{caller_outranks, invite_codes, outranked, role_rank};
use crate::pipeline::{execute, load_aggregate, Failure};
use crate::schemas::InsertedCount;
use crate::AppState;
use http_edge::auth::Caller;
use http_edge::body::{Body, Fields, JsonList};
use http_edge::envelope::{Answer, ApiError};

/// Invite codes each new user gets when the invite-only option is on.
const INVITE_CODES_PER_NEW_USER: usize = 5;

/// One user of a `create` body; the password is hashed once the whole batch passed its checks.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct NewUser {
    /// Unique, case-insensitively.
    pub username: Username,
    pub password: Password,
    /// Unique on its sanitized form.
    pub email: Email,
    pub first_name: PersonName,
    pub last_name: PersonName,
    pub middle_name: Option<PersonName>,
    /// An existing role that the caller out-ranks (default: `user`).
    pub role: Option<UserRole>,
    pub phone_country_code: Option<PhoneCountryCode>,
    pub phone: Option<Phone>,
}

impl Body for NewUser {
    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let username = fields.required("username");
        let password = fields.required("password");
        let email = fields.required("email");
        let first_name = fields.required("firstName");
        let last_name = fields.required("lastName");
        let middle_name = fields.optional("middleName");
        let role = fields.optional("role");
        let phone = fields.optional("phone");
        let phone_country_code = fields.optional("phoneCountryCode");
        Some(Self {
            username: username?,
            password: password?,
            email: email?,
            first_name: first_name?,
            last_name: last_name?,
            middle_name: middle_name?,
            role: role?,
            phone_country_code: phone_country_code?,
            phone: phone?,
        })
    }
}

impl NewUser {
    /// The role the user gets.
    fn role(&self) -> RoleId {
        self.role
            .as_ref()
            .map_or_else(RoleId::user, |role| role.0.clone())
    }
}

#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub, edge = caller.edge.as_str(), count))]
pub async fn create_users(
    State(state): State<AppState>,
    caller: Caller,
    JsonList(users): JsonList<NewUser>,
) -> Result<Answer, ApiError> {
    tracing::Span::current().record("count", users.len());

    check_batch_duplicates(&users)?;
    check_roles(&state, &caller, &users).await?;
    check_taken(&state, &users).await?;

    let workers = state.settings.hashing_workers.max(1);
    let passwords: Vec<Password> = users.iter().map(|user| user.password.clone()).collect();
    let hashes: Vec<_> = futures::stream::iter(passwords)
        .map(|password| {
            let hasher = state.hasher.clone();
            async move { hasher.hash(password.expose()).await }
        })
        .buffered(workers)
        .try_collect()
        .await?;

    let context = caller.command_context();
    let mut created: Vec<UserId> = Vec::with_capacity(users.len());
    let mut position = None;
    for (index, (user, password_hash)) in users.into_iter().zip(hashes).enumerate() {
        let id = UserId::new();
        let invite_codes = if state.settings.invite_only {
            invite_codes::draw(INVITE_CODES_PER_NEW_USER, Utc::now())
        } else {
            Vec::<InviteCode>::new()
        };
        let (username, email, role) = (user.username.clone(), user.email.clone(), user.role());
        let create = CreateUser {
            id,
            username: user.username,
            email: user.email,
            password_hash,
            first_name: user.first_name,
            last_name: user.last_name,
            middle_name: user.middle_name,
            role,
            phone: user.phone,
            phone_country_code: user.phone_country_code,
            credits: Credits::new(state.settings.initial_credits),
            invite_codes,
            invited_by: None,
        };
        let outcome = execute::<User, _>(&*state.store, &id, &context, 1, |_| {
            Ok(UserCommand::Create(create.clone()))
        })
        .await;
        match outcome {
            Ok(outcome) => {
                created.push(id);
                position = outcome.position.or(position);
            }
            Err(failure) => {
                compensate(&state, &context, &created).await;
                return Err(match failure {
                    Failure::Taken(_) => existing_users(vec![json!({
                        "index": index,
                        "username": username.as_str(),
                        "email": email.as_str(),
                    })]),
                    Failure::Api(error) => error,
                });
            }
        }
    }
    Ok(Answer::ok(InsertedCount {
        inserted_count: created.len() as u64,
    })
    .with_status(StatusCode::CREATED)
    .at(position))
}

/// 400 ClientInputError with `existingUsers`.
fn existing_users(users: Vec<Value>) -> ApiError {
    ApiError::ClientInput(json!({
        "errors": [{
            "type": "field",
            "msg": "a username or email is already taken or repeated in the batch",
            "location": "body",
        }],
        "existingUsers": users,
    }))
}

/// A username or (sanitized) email repeated inside the batch: the clashing items.
fn check_batch_duplicates(users: &[NewUser]) -> Result<(), ApiError> {
    let mut seen: HashMap<UniqueClaim, usize> = HashMap::new();
    let mut clashing: BTreeMap<usize, ()> = BTreeMap::new();
    for (index, user) in users.iter().enumerate() {
        for claim in claims(user) {
            if let Some(first) = seen.insert(claim, index) {
                clashing.insert(first, ());
                clashing.insert(index, ());
            }
        }
    }
    if clashing.is_empty() {
        return Ok(());
    }
    Err(existing_users(
        clashing
            .keys()
            .map(|&index| {
                json!({
                    "index": index,
                    "username": users[index].username.as_str(),
                    "email": users[index].email.as_str(),
                })
            })
            .collect(),
    ))
}

fn claims(user: &NewUser) -> [UniqueClaim; 2] {
    [
        UniqueClaim::new(USERNAME_CLAIM, user.username.as_str()),
        UniqueClaim::new(EMAIL_CLAIM, user.email.sanitized().as_str()),
    ]
}

/// Every role named must exist (400 NotFound, Liquid's code for an unknown role) and be
/// out-ranked by the caller (super_admin included).
async fn check_roles(state: &AppState, caller: &Caller, users: &[NewUser]) -> Result<(), ApiError> {
    let mut roles: BTreeMap<RoleId, usize> = BTreeMap::new();
    for (index, user) in users.iter().enumerate() {
        roles.entry(user.role()).or_insert(index);
    }
    for (role, index) in roles {
        let role = &role;
        if role_rank(state, role).await?.is_none() {
            return Err(ApiError::Refused {
                code: "NotFound",
                info: Some(json!({
                    "role": role.as_str(),
                    "path": format!("[{index}].role"),
                    "reason": "the role does not exist",
                })),
            });
        }
        if !caller_outranks(state, caller, role).await? {
            return Err(outranked("the role", role));
        }
    }
    Ok(())
}

/// Usernames and emails another user already holds: the clashing users.
async fn check_taken(state: &AppState, users: &[NewUser]) -> Result<(), ApiError> {
    let mut holders: BTreeMap<String, ()> = BTreeMap::new();
    for user in users {
        for claim in claims(user) {
            if let Some(stream) = state.store.claim_holder(&claim).await? {
                holders.insert(stream, ());
            }
        }
    }
    if holders.is_empty() {
        return Ok(());
    }
    let mut existing = Vec::new();
    for stream in holders.keys() {
        let id = stream
            .strip_prefix("user-")
            .and_then(|id| UserId::parse(id).ok());
        let user = match id {
            Some(id) => load_aggregate::<User>(&*state.store, &id).await?.0,
            None => None,
        };
        existing.push(match user {
            Some(user) => json!({
                "_id": user.id.to_string(),
                "username": user.username.as_str(),
                "email": user.email.as_str(),
            }),
            None => json!({ "stream": stream }),
        });
    }
    Err(existing_users(existing))
}

/// Deletes the users of a failed batch that were appended, releasing their claims.
async fn compensate(state: &AppState, context: &CommandContext, created: &[UserId]) {
    for id in created {
        let deleted = execute::<User, _>(
            &*state.store,
            id,
            context,
            state.settings.command_attempts,
            |_| Ok(UserCommand::Delete),
        )
        .await;
        match deleted {
            Ok(_) => {
                tracing::warn!(user = %id, "batch create failed; deleted a user it had created")
            }
            Err(failure) => tracing::error!(
                user = %id,
                error = %ApiError::from(failure),
                "batch create failed and a user it created could not be deleted"
            ),
        }
    }
}
