//! Value types: each one is parsed once from what a caller sent and is, from then on, the proof
//! that the value follows the contract's rules (API.md §3–§5). Domain code never sees raw strings.
//!
//! Parsing fails with a [`ValidationError`] naming the wire field and a readable reason, which
//! the command service turns into a `ClientInputError` entry.
//!
//! Deserialising a value type (from an event) does **not** re-check its rules: events are facts
//! that were valid when decided, and they must stay readable even if a rule tightens later.
//! Request bodies must therefore go through `parse`/`TryFrom`, never through `Deserialize`.

mod account;
mod applications;
mod ids;
mod iso;
mod profile;
mod roles;
pub mod rules;
mod text;
mod user_state;

pub use account::{
    ClientSecret, Email, Password, PersonName, Phone, PhoneCountryCode, SanitizedEmail, SecretHash,
    Username,
};
pub use applications::{ApplicationDisplayName, ClientId, ClientRole, Grant, RedirectUri};
pub use ids::{ApplicationId, FollowEntryId, UserId};
pub use profile::{
    Bio, CountryCode, CustomLink, Designation, Gender, LanguageCode, Organization, Pronouns,
};
pub use roles::{Ranking, RoleDescription, RoleDisplayName, RoleId, UserRole};
pub use rules::{text_of, FieldValue, TextRule};
pub use user_state::{
    Credits, CreditsOperation, CustomData, InviteCode, Reason, SubscriptionIdentifier,
    SubscriptionTier, SubscriptionTiers, DEFAULT_CUSTOM_DATA_LIMIT,
};

/// Why a value was refused: the wire field and a readable reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {msg}")]
pub struct ValidationError {
    /// The field as the wire names it (`username`, `phoneCountryCode`, ...).
    pub field: &'static str,
    /// A reason a person can act on.
    pub msg: String,
}

impl ValidationError {
    pub fn new(field: &'static str, msg: impl Into<String>) -> Self {
        Self {
            field,
            msg: msg.into(),
        }
    }
}

/// Declares a string newtype whose only constructor is its `parse` function (written by hand
/// next to each use), with the conversions every text value shares. Given a [`TextRule`], the
/// type also reads itself from a body's field ([`FieldValue`]) and states the rule in its
/// schema (feature `openapi`); its `parse` must check `Self::rule()`.
macro_rules! text_value {
    ($(#[doc = $doc:literal])* $name:ident, $rule:expr) => {
        $crate::values::text_value!($(#[doc = $doc])* $name);
        $crate::values::ruled!($name, $rule, concat!($($doc, "\n"),*));
    };
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl TryFrom<&str> for $name {
            type Error = $crate::values::ValidationError;

            fn try_from(value: &str) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::values::ValidationError;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::values::ValidationError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

pub(crate) use text_value;

/// Gives a string value type (one with `parse(&str)`) its [`TextRule`], its [`FieldValue`] and
/// (feature `openapi`) its schema, described by `$doc`.
macro_rules! ruled {
    ($name:ident, $rule:expr, $doc:expr) => {
        impl $name {
            /// The length and pattern `parse` enforces, as the schema states them.
            pub fn rule() -> &'static $crate::values::TextRule {
                static RULE: $crate::values::TextRule = $rule;
                &RULE
            }
        }

        impl $crate::values::FieldValue for $name {
            fn from_json(
                value: &serde_json::Value,
            ) -> Result<Self, $crate::values::ValidationError> {
                Self::parse($crate::values::text_of(value)?)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                Self::rule().schema($doc)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

pub(crate) use ruled;
