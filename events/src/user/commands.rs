//! What a caller can ask of a user. Every command holds parsed values only; authorization
//! (scopes, ranking) is checked by the command service before a command is decided.

use chrono::{DateTime, Utc};

use super::events::ProfileChanges;
use crate::scopes::{Scope, ScopeOperation};
use crate::values::{
    Credits, CustomData, Email, InviteCode, PersonName, Phone, PhoneCountryCode, Reason, RoleId,
    SecretHash, SubscriptionIdentifier, SubscriptionTier, UserId, Username, ValidationError,
};

/// The most invite codes one request may generate.
pub const MAX_INVITE_CODES_PER_REQUEST: usize = 15;

#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    Create(CreateUser),
    Update(UpdateUser),
    /// Replace the whole custom data.
    ReplaceCustomData(CustomData),
    /// `ban` with `state` true (ban) or false (lift the ban).
    SetBanned(Toggle),
    /// `restrict` with `state` true or false.
    SetRestricted(Toggle),
    /// `verify` with `state` true or false.
    SetVerified(Toggle),
    ChangeCredits(CreditsChange),
    /// `access` on a user target.
    ChangeScopes {
        operation: ScopeOperation,
        scopes: Vec<Scope>,
    },
    ChangeSubscription(SubscriptionChange),
    /// `subscription-cancel` with `cancelled` true or false.
    SetSubscriptionCancelled(bool),
    /// Add these codes (drawn by the command service) to the user's invite codes.
    GenerateInviteCodes(Vec<InviteCode>),
    /// Mark one of the user's codes as used by `redeemed_by`.
    RedeemInviteCode {
        code: InviteCode,
        redeemed_by: UserId,
    },
    /// Give the user another role, as when their role is deleted.
    ChangeRole(RoleId),
    /// Delete the user (`isDeleted: true`).
    Delete,
    /// `private` with `state` true (make the account private) or false (public).
    SetPrivate(bool),
    /// Forget the person (`erase`), deleted or not.
    Erase,
}

/// A new user, as `create` sends one (after hashing the password).
#[derive(Debug, Clone, PartialEq)]
pub struct CreateUser {
    /// Minted by the command service (UUIDv7); also the stream id.
    pub id: UserId,
    pub username: Username,
    pub email: Email,
    pub password_hash: SecretHash,
    pub first_name: PersonName,
    pub last_name: PersonName,
    pub middle_name: Option<PersonName>,
    /// The role, already checked to exist and to be out-ranked by the caller.
    pub role: RoleId,
    pub phone: Option<Phone>,
    pub phone_country_code: Option<PhoneCountryCode>,
    /// The configured initial credit count.
    pub credits: Credits,
    /// Codes generated with the user when the invite-only option is on.
    pub invite_codes: Vec<InviteCode>,
    /// The owner of the invite code the user signed up with.
    pub invited_by: Option<UserId>,
}

/// An `update` request: any of the editable fields. Fields that already hold the asked value
/// cause no event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateUser {
    pub profile: ProfileChanges,
    pub email: Option<Email>,
    pub username: Option<Username>,
    /// The hash of a new password.
    pub password_hash: Option<SecretHash>,
    pub role: Option<RoleId>,
    /// `isDeleted: true`. (`false` asks for nothing: a deleted user is not found.)
    pub delete: bool,
}

/// A `state: bool` request with an optional reason, as `ban`, `restrict` and `verify` send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toggle {
    pub state: bool,
    pub reason: Option<Reason>,
}

impl Toggle {
    pub fn on(reason: Option<Reason>) -> Self {
        Self {
            state: true,
            reason,
        }
    }

    pub fn off(reason: Option<Reason>) -> Self {
        Self {
            state: false,
            reason,
        }
    }
}

/// A `credits` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditsChange {
    Increment(Credits),
    Decrement(Credits),
    Set(Credits),
}

/// A `subscription` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionChange {
    /// `state: true`. `tier: None` keeps the current tier (the base tier for a new subscription).
    Activate {
        tier: Option<SubscriptionTier>,
        expiry: DateTime<Utc>,
        identifier: Option<SubscriptionIdentifier>,
    },
    /// `state: false`.
    Deactivate,
}

impl SubscriptionChange {
    /// Reads a `subscription` body: activating needs an expiry.
    pub fn from_request(
        state: bool,
        expiry: Option<DateTime<Utc>>,
        tier: Option<SubscriptionTier>,
        identifier: Option<SubscriptionIdentifier>,
    ) -> Result<Self, ValidationError> {
        if !state {
            return Ok(Self::Deactivate);
        }
        let expiry = expiry
            .ok_or_else(|| ValidationError::new("expiry", "is required when state is true"))?;
        Ok(Self::Activate {
            tier,
            expiry,
            identifier,
        })
    }
}
