//! What can happen to a user: one past-tense fact per meaningful change.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::metadata::{Actor, EventFamily};
use crate::scopes::Scope;
use crate::values::{
    Bio, CountryCode, Credits, CustomData, CustomLink, Designation, Email, Gender, InviteCode,
    LanguageCode, Organization, PersonName, Phone, PhoneCountryCode, Pronouns, Reason, RoleId,
    SanitizedEmail, SecretHash, SubscriptionIdentifier, SubscriptionTier, UserId, Username,
};

/// The events of a user stream (`user-<id>`). Payload field names are camelCase, as on the
/// wire. Times are not in the payloads: an event happened at its metadata's `occurredAt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all_fields = "camelCase")]
pub enum UserEvent {
    /// A user was registered. The password comes separately, as [`UserEvent::PasswordSet`], so
    /// that the only events holding a secret are the ones that hold nothing else.
    #[serde(rename = "UserCreated")]
    Created {
        id: UserId,
        username: Username,
        email: Email,
        sanitized_email: SanitizedEmail,
        email_verified: bool,
        first_name: PersonName,
        last_name: PersonName,
        middle_name: Option<PersonName>,
        role: RoleId,
        phone: Option<Phone>,
        phone_country_code: Option<PhoneCountryCode>,
        scope: Vec<Scope>,
        credits: Credits,
        custom_data: CustomData,
        invited_by: Option<UserId>,
    },
    /// The user's password became this argon2 hash (at creation or later).
    #[serde(rename = "UserPasswordSet")]
    PasswordSet { password_hash: SecretHash },
    /// Profile fields changed; the payload holds only the fields that changed.
    #[serde(rename = "UserProfileUpdated")]
    ProfileUpdated(ProfileChanges),
    /// The email address changed (its own event: it moves a uniqueness claim).
    #[serde(rename = "UserEmailChanged")]
    EmailChanged {
        email: Email,
        sanitized_email: SanitizedEmail,
    },
    /// The username changed (its own event: it moves a uniqueness claim).
    #[serde(rename = "UsernameChanged")]
    UsernameChanged { username: Username },
    #[serde(rename = "UserRoleChanged")]
    RoleChanged { role: RoleId },
    #[serde(rename = "UserBanned")]
    Banned { reason: Option<Reason>, by: Actor },
    #[serde(rename = "UserUnbanned")]
    Unbanned { reason: Option<Reason>, by: Actor },
    #[serde(rename = "UserRestricted")]
    Restricted { reason: Option<Reason>, by: Actor },
    #[serde(rename = "UserUnrestricted")]
    Unrestricted { reason: Option<Reason>, by: Actor },
    #[serde(rename = "UserVerified")]
    Verified { reason: Option<Reason>, by: Actor },
    #[serde(rename = "UserUnverified")]
    Unverified { reason: Option<Reason>, by: Actor },
    #[serde(rename = "CreditsIncreased")]
    CreditsIncreased { amount: Credits },
    #[serde(rename = "CreditsDecreased")]
    CreditsDecreased { amount: Credits },
    /// The balance was set outright.
    #[serde(rename = "CreditsSet")]
    CreditsSet { credits: Credits },
    /// The user's own scope list became this (sorted, without duplicates).
    #[serde(rename = "UserScopesChanged")]
    ScopesChanged { scope: Vec<Scope> },
    /// A subscription started or was renewed. A new activation withdraws any cancellation.
    /// `tier: None` means the user is on the base tier.
    #[serde(rename = "SubscriptionActivated")]
    SubscriptionActivated {
        tier: Option<SubscriptionTier>,
        expiry: DateTime<Utc>,
        identifier: Option<SubscriptionIdentifier>,
    },
    #[serde(rename = "SubscriptionDeactivated")]
    SubscriptionDeactivated {},
    /// The user asked not to renew; the subscription runs until it expires.
    #[serde(rename = "SubscriptionCancelled")]
    SubscriptionCancelled {},
    /// A cancellation was taken back.
    #[serde(rename = "SubscriptionCancellationWithdrawn")]
    SubscriptionCancellationWithdrawn {},
    #[serde(rename = "CustomDataReplaced")]
    CustomDataReplaced { custom_data: CustomData },
    #[serde(rename = "InviteCodesGenerated")]
    InviteCodesGenerated { codes: Vec<InviteCode> },
    /// Somebody signed up with one of this user's invite codes.
    #[serde(rename = "InviteCodeRedeemed")]
    InviteCodeRedeemed {
        code: InviteCode,
        redeemed_by: UserId,
    },
    /// The user was deleted (`isDeleted`): their username and email become free again.
    #[serde(rename = "UserDeleted")]
    Deleted {},
    /// The account became private (`isPrivate`): a follow of it is a request from now on.
    #[serde(rename = "UserMadePrivate")]
    MadePrivate {},
    /// The account became public: a follow of it is a follow at once.
    #[serde(rename = "UserMadePublic")]
    MadePublic {},
    /// The person was forgotten: their key is destroyed, so the personal data of every event
    /// of theirs reads as [`crate::personal::ERASED`] from now on; their username and email
    /// become free. Nothing can happen to the user after it.
    #[serde(rename = "UserErased")]
    Erased {},
}

impl EventFamily for UserEvent {
    const EVENT_TYPES: &'static [&'static str] = &[
        "UserCreated",
        "UserPasswordSet",
        "UserProfileUpdated",
        "UserEmailChanged",
        "UsernameChanged",
        "UserRoleChanged",
        "UserBanned",
        "UserUnbanned",
        "UserRestricted",
        "UserUnrestricted",
        "UserVerified",
        "UserUnverified",
        "CreditsIncreased",
        "CreditsDecreased",
        "CreditsSet",
        "UserScopesChanged",
        "SubscriptionActivated",
        "SubscriptionDeactivated",
        "SubscriptionCancelled",
        "SubscriptionCancellationWithdrawn",
        "CustomDataReplaced",
        "InviteCodesGenerated",
        "InviteCodeRedeemed",
        "UserDeleted",
        "UserMadePrivate",
        "UserMadePublic",
        "UserErased",
    ];

    fn event_type(&self) -> &'static str {
        match self {
            Self::Created { .. } => "UserCreated",
            Self::PasswordSet { .. } => "UserPasswordSet",
            Self::ProfileUpdated(_) => "UserProfileUpdated",
            Self::EmailChanged { .. } => "UserEmailChanged",
            Self::UsernameChanged { .. } => "UsernameChanged",
            Self::RoleChanged { .. } => "UserRoleChanged",
            Self::Banned { .. } => "UserBanned",
            Self::Unbanned { .. } => "UserUnbanned",
            Self::Restricted { .. } => "UserRestricted",
            Self::Unrestricted { .. } => "UserUnrestricted",
            Self::Verified { .. } => "UserVerified",
            Self::Unverified { .. } => "UserUnverified",
            Self::CreditsIncreased { .. } => "CreditsIncreased",
            Self::CreditsDecreased { .. } => "CreditsDecreased",
            Self::CreditsSet { .. } => "CreditsSet",
            Self::ScopesChanged { .. } => "UserScopesChanged",
            Self::SubscriptionActivated { .. } => "SubscriptionActivated",
            Self::SubscriptionDeactivated {} => "SubscriptionDeactivated",
            Self::SubscriptionCancelled {} => "SubscriptionCancelled",
            Self::SubscriptionCancellationWithdrawn {} => "SubscriptionCancellationWithdrawn",
            Self::CustomDataReplaced { .. } => "CustomDataReplaced",
            Self::InviteCodesGenerated { .. } => "InviteCodesGenerated",
            Self::InviteCodeRedeemed { .. } => "InviteCodeRedeemed",
            Self::Deleted {} => "UserDeleted",
            Self::MadePrivate {} => "UserMadePrivate",
            Self::MadePublic {} => "UserMadePublic",
            Self::Erased {} => "UserErased",
        }
    }

    fn contains_secret(&self) -> bool {
        matches!(self, Self::PasswordSet { .. })
    }
}

/// Changes to the profile fields edited through `update` (API.md §3). A field left `None` is
/// not touched. An optional field is `Some(None)` to clear it (the wire's `"__unset__"`), which
/// is written as `null` in the event; the required names cannot be cleared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<PersonName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<PersonName>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub middle_name: Option<Option<PersonName>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub bio: Option<Option<Bio>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub pronouns: Option<Option<Pronouns>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub custom_link: Option<Option<CustomLink>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub organization: Option<Option<Organization>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub designation: Option<Option<Designation>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub gender: Option<Option<Gender>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub preferred_language: Option<Option<LanguageCode>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub country: Option<Option<CountryCode>>,
}

/// A field that is present is `Some`, even when it is `null` (cleared); an absent field falls
/// back to `default` (`None`, untouched).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl ProfileChanges {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}
