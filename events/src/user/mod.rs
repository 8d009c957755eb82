//! The user aggregate: one stream `user-<id>` per user.
//!
//! Rules it enforces on its own state: a command on a missing or deleted user is `NotFound`; a
//! create on an existing stream is `AlreadyExists`; credits never go negative; at most 15
//! invite codes per request; and a command that would change nothing decides no event (banning
//! a banned user, setting credits to the balance, ...), so the log holds changes only.
//!
//! It holds two unique values: `username` and `email` (the sanitized address).

mod commands;
mod decide;
pub mod editable;
mod events;
pub mod invite_codes;
#[cfg(test)]
mod tests;
pub mod view;

pub use commands::{
    CreateUser, CreditsChange, SubscriptionChange, Toggle, UpdateUser, UserCommand,
    MAX_INVITE_CODES_PER_REQUEST,
};
pub use events::{ProfileChanges, UserEvent};
pub use invite_codes::{InviteCodeView, InviteCodesView};
pub use view::UserView;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::metadata::CommandContext;
use crate::scopes::Scope;
use crate::store::UniqueClaim;
use crate::values::{
    Bio, CountryCode, Credits, CustomData, CustomLink, Designation, Email, Gender, InviteCode,
    LanguageCode, Organization, PersonName, Phone, PhoneCountryCode, Pronouns, RoleId,
    SanitizedEmail, SecretHash, SubscriptionIdentifier, SubscriptionTier, UserId, Username,
};
use crate::{Aggregate, DomainError};

/// The uniqueness kind of usernames.
pub const USERNAME_CLAIM: &str = "username";
/// The uniqueness kind of (sanitized) email addresses.
pub const EMAIL_CLAIM: &str = "email";

/// A user as far as deciding needs: `None` (the state of a new stream) until created.
pub type UserState = Option<User>;

/// What the user aggregate knows about a created user.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: UserId,
    pub username: Username,
    pub email: Email,
    pub sanitized_email: SanitizedEmail,
    pub email_verified: bool,
    pub password_hash: Option<SecretHash>,
    pub profile: Profile,
    pub role: RoleId,
    pub phone: Option<Phone>,
    pub phone_country_code: Option<PhoneCountryCode>,
    pub scope: Vec<Scope>,
    pub credits: Credits,
    pub banned: bool,
    pub restricted: bool,
    pub verified: bool,
    pub subscription: Option<Subscription>,
    pub subscription_cancelled: bool,
    pub custom_data: CustomData,
    pub invite_codes: Vec<IssuedInviteCode>,
    pub invited_by: Option<UserId>,
    pub deleted: bool,
    /// Whether the account is private: a follow of it is a request, to be accepted.
    pub private: bool,
}

/// The profile fields `update` edits at low (and, for `country`, high) sensitivity.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub first_name: PersonName,
    pub last_name: PersonName,
    pub middle_name: Option<PersonName>,
    pub bio: Option<Bio>,
    pub pronouns: Option<Pronouns>,
    pub custom_link: Option<CustomLink>,
    pub organization: Option<Organization>,
    pub designation: Option<Designation>,
    pub gender: Option<Gender>,
    pub preferred_language: Option<LanguageCode>,
    pub country: Option<CountryCode>,
}

/// An active (possibly expired: expiry is judged by readers, at read time) subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub tier: Option<SubscriptionTier>,
    pub expiry: DateTime<Utc>,
    pub identifier: Option<SubscriptionIdentifier>,
}

/// One of the user's invite codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedInviteCode {
    pub code: InviteCode,
    pub redeemed_by: Option<UserId>,
}

impl Profile {
    /// The profile after `changes`.
    fn apply(&mut self, changes: &ProfileChanges) {
        fn set<T: Clone>(field: &mut T, change: &Option<T>) {
            if let Some(value) = change {
                *field = value.clone();
            }
        }
        set(&mut self.first_name, &changes.first_name);
        set(&mut self.last_name, &changes.last_name);
        set(&mut self.middle_name, &changes.middle_name);
        set(&mut self.bio, &changes.bio);
        set(&mut self.pronouns, &changes.pronouns);
        set(&mut self.custom_link, &changes.custom_link);
        set(&mut self.organization, &changes.organization);
        set(&mut self.designation, &changes.designation);
        set(&mut self.gender, &changes.gender);
        set(&mut self.preferred_language, &changes.preferred_language);
        set(&mut self.country, &changes.country);
    }

    /// The part of `changes` that differs from this profile.
    fn changed_by(&self, changes: ProfileChanges) -> ProfileChanges {
        fn differs<T: PartialEq>(change: Option<T>, current: &T) -> Option<T> {
            change.filter(|value| value != current)
        }
        ProfileChanges {
            first_name: differs(changes.first_name, &self.first_name),
            last_name: differs(changes.last_name, &self.last_name),
            middle_name: differs(changes.middle_name, &self.middle_name),
            bio: differs(changes.bio, &self.bio),
            pronouns: differs(changes.pronouns, &self.pronouns),
            custom_link: differs(changes.custom_link, &self.custom_link),
            organization: differs(changes.organization, &self.organization),
            designation: differs(changes.designation, &self.designation),
            gender: differs(changes.gender, &self.gender),
            preferred_language: differs(changes.preferred_language, &self.preferred_language),
            country: differs(changes.country, &self.country),
        }
    }
}

impl User {
    /// The stream of the user with this id: `user-<id>`.
    pub fn stream_name(id: UserId) -> String {
        <User as Aggregate>::stream_name(&id)
    }

    /// The number of invite codes nobody has redeemed yet.
    pub fn unredeemed_invite_codes(&self) -> usize {
        self.invite_codes
            .iter()
            .filter(|c| c.redeemed_by.is_none())
            .count()
    }
}

impl Aggregate for User {
    type Id = UserId;
    type State = UserState;
    type Command = UserCommand;
    type Event = UserEvent;

    const CATEGORY: &'static str = "user";

    fn decide(
        state: &UserState,
        command: UserCommand,
        context: &CommandContext,
    ) -> Result<Vec<UserEvent>, DomainError> {
        decide::decide(state, command, context)
    }

    fn evolve(state: UserState, event: &UserEvent) -> UserState {
        evolve(state, event)
    }

    fn unique_values(state: &UserState) -> BTreeSet<UniqueClaim> {
        match state {
            Some(user) if !user.deleted => BTreeSet::from([
                UniqueClaim::new(USERNAME_CLAIM, user.username.as_str()),
                UniqueClaim::new(EMAIL_CLAIM, user.sanitized_email.as_str()),
            ]),
            _ => BTreeSet::new(),
        }
    }
}

/// The events `command` causes for a user in `state` (see [`Aggregate::decide`]).
pub fn decide(
    state: &UserState,
    command: UserCommand,
    context: &CommandContext,
) -> Result<Vec<UserEvent>, DomainError> {
    decide::decide(state, command, context)
}

/// The user after `event`. An event before `UserCreated` (which a valid stream never has)
/// leaves the state as it is.
pub fn evolve(state: UserState, event: &UserEvent) -> UserState {
    if let UserEvent::Created {
        id,
        username,
        email,
        sanitized_email,
        email_verified,
        first_name,
        last_name,
        middle_name,
        role,
        phone,
        phone_country_code,
        scope,
        credits,
        custom_data,
        invited_by,
    } = event
    {
        return Some(User {
            id: *id,
            username: username.clone(),
            email: email.clone(),
            sanitized_email: sanitized_email.clone(),
            email_verified: *email_verified,
            password_hash: None,
            profile: Profile {
                first_name: first_name.clone(),
                last_name: last_name.clone(),
                middle_name: middle_name.clone(),
                bio: None,
                pronouns: None,
                custom_link: None,
                organization: None,
                designation: None,
                gender: None,
                preferred_language: None,
                country: None,
            },
            role: role.clone(),
            phone: phone.clone(),
            phone_country_code: phone_country_code.clone(),
            scope: scope.clone(),
            credits: *credits,
            banned: false,
            restricted: false,
            verified: false,
            subscription: None,
            subscription_cancelled: false,
            custom_data: custom_data.clone(),
            invite_codes: Vec::new(),
            invited_by: *invited_by,
            deleted: false,
            private: false,
        });
    }
    if let UserEvent::Erased {} = event {
        return None;
    }
    let mut user = state?;
    match event {
        UserEvent::Created { .. } | UserEvent::Erased {} => {}
        UserEvent::PasswordSet { password_hash } => {
            user.password_hash = Some(password_hash.clone())
        }
        UserEvent::ProfileUpdated(changes) => user.profile.apply(changes),
        UserEvent::EmailChanged {
            email,
            sanitized_email,
        } => {
            user.email = email.clone();
            user.sanitized_email = sanitized_email.clone();
        }
        UserEvent::UsernameChanged { username } => user.username = username.clone(),
        UserEvent::RoleChanged { role } => user.role = role.clone(),
        UserEvent::Banned { .. } => user.banned = true,
        UserEvent::Unbanned { .. } => user.banned = false,
        UserEvent::Restricted { .. } => user.restricted = true,
        UserEvent::Unrestricted { .. } => user.restricted = false,
        UserEvent::Verified { .. } => user.verified = true,
        UserEvent::Unverified { .. } => user.verified = false,
        // Saturating, because evolve must not fail: decide already refused what would not fit.
        UserEvent::CreditsIncreased { amount } => {
            user.credits = Credits::new(user.credits.get().saturating_add(amount.get()));
        }
        UserEvent::CreditsDecreased { amount } => {
            user.credits = Credits::new(user.credits.get().saturating_sub(amount.get()));
        }
        UserEvent::CreditsSet { credits } => user.credits = *credits,
        UserEvent::ScopesChanged { scope } => user.scope = scope.clone(),
        UserEvent::SubscriptionActivated {
            tier,
            expiry,
            identifier,
        } => {
            user.subscription = Some(Subscription {
                tier: tier.clone(),
                expiry: *expiry,
                identifier: identifier.clone(),
            });
            user.subscription_cancelled = false;
        }
        UserEvent::SubscriptionDeactivated {} => user.subscription = None,
        UserEvent::SubscriptionCancelled {} => user.subscription_cancelled = true,
        UserEvent::SubscriptionCancellationWithdrawn {} => user.subscription_cancelled = false,
        UserEvent::CustomDataReplaced { custom_data } => user.custom_data = custom_data.clone(),
        UserEvent::InviteCodesGenerated { codes } => {
            user.invite_codes
                .extend(codes.iter().map(|code| IssuedInviteCode {
                    code: code.clone(),
                    redeemed_by: None,
                }));
        }
        UserEvent::InviteCodeRedeemed { code, redeemed_by } => {
            if let Some(issued) = user.invite_codes.iter_mut().find(|c| &c.code == code) {
                issued.redeemed_by = Some(*redeemed_by);
            }
        }
        UserEvent::Deleted {} => user.deleted = true,
        UserEvent::MadePrivate {} => user.private = true,
        UserEvent::MadePublic {} => user.private = false,
    }
    Some(user)
}
