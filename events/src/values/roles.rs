//! What names and orders roles.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::text::check_free_text;
use super::{ruled, text_value, FieldValue, TextRule, ValidationError};

const ROLE_ID_PATTERN: &str = "^[a-zA-Z0-9_]+$";
const ROLE_ID_PATTERN_WHY: &str = "must contain only letters, digits and underscores";

text_value!(
    /// A role's id: 1..128 letters, digits and underscores. Case is kept; unique
    /// case-insensitively.
    RoleId,
    TextRule::with_pattern("id", 1, 128, ROLE_ID_PATTERN, ROLE_ID_PATTERN_WHY)
);

impl RoleId {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::rule().check(value)?;
        Ok(Self(value.to_owned()))
    }

    /// Parses the `role` a user is given, which the contract bounds tighter (3..32).
    pub fn parse_user_role(value: &str) -> Result<Self, ValidationError> {
        UserRole::parse(value).map(|role| role.0)
    }

    /// A role id known to be valid (the system roles' ids).
    fn known(id: &str) -> Self {
        Self(id.to_owned())
    }

    /// `super_admin`, rank 1, scope `*`.
    pub fn super_admin() -> Self {
        Self::known("super_admin")
    }

    /// `admin`, rank 2.
    pub fn admin() -> Self {
        Self::known("admin")
    }

    /// `user`, rank 100: the default role of new users and of users whose role is deleted.
    pub fn user() -> Self {
        Self::known("user")
    }

    /// `internal_client`, rank 2, scope `client:all`.
    pub fn internal_client() -> Self {
        Self::known("internal_client")
    }

    /// `external_client`, rank 100.
    pub fn external_client() -> Self {
        Self::known("external_client")
    }

    /// Liquid's role type: `client` for the two roles applications hold, `user` for every
    /// other.
    pub fn kind(&self) -> &'static str {
        if *self == Self::internal_client() || *self == Self::external_client() {
            "client"
        } else {
            "user"
        }
    }
}

/// The role a user is given (`role` of a user's create or update body): a [`RoleId`] of
/// 3..32 characters, as the contract bounds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRole(pub RoleId);

ruled!(
    UserRole,
    TextRule::with_pattern("role", 3, 32, ROLE_ID_PATTERN, ROLE_ID_PATTERN_WHY),
    "An existing role's id: 3..32 letters, digits and underscores."
);

impl UserRole {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::rule().check(value)?;
        Ok(Self(RoleId(value.to_owned())))
    }
}

/// A role's power: 1 is the most powerful. Never 0 (the contract gives an unknown role rank 0
/// when comparing, which is why a known role cannot have it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ranking(u32);

impl Ranking {
    pub fn new(value: i64) -> Result<Self, ValidationError> {
        u32::try_from(value)
            .ok()
            .filter(|v| *v >= 1)
            .map(Self)
            .ok_or_else(|| ValidationError::new("ranking", "must be an integer of at least 1"))
    }

    pub const fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<i64> for Ranking {
    type Error = ValidationError;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

/// A whole number of at least 1: a JSON integer, or a string of one.
impl FieldValue for Ranking {
    fn from_json(value: &serde_json::Value) -> Result<Self, ValidationError> {
        super::rules::whole_number_of(value)
            .ok_or_else(|| ValidationError::new("ranking", "must be an integer of at least 1"))
            .and_then(Self::new)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Ranking {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        super::rules::whole_number_schema(
            "A role's power: 1 is the most powerful; a caller acts only on roles it out-ranks \
             (a smaller number).",
            1,
            Some(u64::from(u32::MAX)),
        )
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Ranking {}

impl fmt::Display for Ranking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

text_value!(
    /// A role's display name: 1..128 characters of text.
    RoleDisplayName,
    TextRule::new("displayName", 1, 128)
);

impl RoleDisplayName {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::rule().check(value)?;
        check_free_text("displayName", value)?;
        Ok(Self(value.to_owned()))
    }
}

text_value!(
    /// A role's description: 1..512 characters of text.
    RoleDescription,
    TextRule::new("description", 1, 512)
);

impl RoleDescription {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::rule().check(value)?;
        check_free_text("description", value)?;
        Ok(Self(value.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_ids_are_word_characters() {
        assert_eq!(
            RoleId::parse("Moderator_2").unwrap().as_str(),
            "Moderator_2"
        );
        assert!(RoleId::parse("a").is_ok());
        assert!(RoleId::parse(&"r".repeat(128)).is_ok());
        assert!(RoleId::parse(&"r".repeat(129)).is_err());
        assert!(RoleId::parse("").is_err());
        assert!(RoleId::parse("mod-role").is_err());
        assert!(RoleId::parse("mod role").is_err());
    }

    #[test]
    fn a_users_role_is_3_to_32_characters() {
        assert!(RoleId::parse_user_role("user").is_ok());
        assert_eq!(RoleId::parse_user_role("ab").unwrap_err().field, "role");
        assert!(RoleId::parse_user_role(&"r".repeat(33)).is_err());
    }

    #[test]
    fn rankings_start_at_1() {
        assert_eq!(Ranking::new(1).map(Ranking::get), Ok(1));
        assert!(Ranking::new(0).is_err());
        assert!(Ranking::new(-5).is_err());
        assert!(Ranking::new(i64::from(u32::MAX) + 1).is_err());
    }

    #[test]
    fn role_display_names_and_descriptions_have_bounds() {
        assert!(RoleDisplayName::parse("M").is_ok());
        assert!(RoleDisplayName::parse("").is_err());
        assert!(RoleDisplayName::parse(&"n".repeat(129)).is_err());
        assert!(RoleDescription::parse("Moderates the forum").is_ok());
        assert!(RoleDescription::parse(&"d".repeat(513)).is_err());
    }
}
