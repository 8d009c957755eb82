//! Values of a user's standing: credits, reasons, subscriptions, custom data, invite codes.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::rules::wire_enum;
use super::text::check_free_text;
use super::{text_value, FieldValue, TextRule, ValidationError};

/// A credit balance or amount. Unsigned, so a balance can never be negative: decrements go
/// through [`Credits::checked_sub`] and a shortfall is a domain error, not a wrap-around.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Credits(u64);

impl Credits {
    pub const ZERO: Credits = Credits(0);

    pub const fn new(value: u64) -> Self {
        Self(value)
    }

    /// Parses a wire integer, which must not be negative.
    pub fn parse(value: i64) -> Result<Self, ValidationError> {
        u64::try_from(value)
            .map(Self)
            .map_err(|_| ValidationError::new("value", "must be an integer of at least 0"))
    }

    pub const fn get(self) -> u64 {
        self.0
    }

    pub fn checked_add(self, other: Credits) -> Option<Credits> {
        self.0.checked_add(other.0).map(Self)
    }

    pub fn checked_sub(self, other: Credits) -> Option<Credits> {
        self.0.checked_sub(other.0).map(Self)
    }
}

impl TryFrom<i64> for Credits {
    type Error = ValidationError;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

/// A whole number of at least 0: a JSON integer, or a string of one (not a float).
impl FieldValue for Credits {
    fn from_json(value: &serde_json::Value) -> Result<Self, ValidationError> {
        super::rules::whole_number_of(value)
            .and_then(|value| u64::try_from(value).ok())
            .map(Self)
            .ok_or_else(|| ValidationError::new("value", "must be an integer of at least 0"))
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Credits {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        super::rules::whole_number_schema("A number of credits: at least 0.", 0, None)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Credits {}

wire_enum!(
    /// How a `credits` request changes a balance: `increment` or `decrement` it by the value,
    /// or `set` it to the value.
    CreditsOperation, "type" {
        Increment = "increment",
        Decrement = "decrement",
        Set = "set",
    }
);

impl fmt::Display for Credits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

text_value!(
    /// Why a user was banned, restricted or verified (or the reverse): 8..128 characters of
    /// text.
    Reason,
    TextRule::new("reason", 8, 128)
);

impl Reason {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::rule().check(value)?;
        check_free_text("reason", value)?;
        Ok(Self(value.to_owned()))
    }
}

text_value!(
    /// A subscription tier's name, one of the configured [`SubscriptionTiers`].
    SubscriptionTier
);

impl SubscriptionTier {
    /// Parses against the default tiers; use [`SubscriptionTiers::parse`] with the configured ones.
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        SubscriptionTiers::default().parse(value)
    }
}

/// The configured subscription tiers and the base tier (the one a user without a subscription
/// is shown on). Defaults: `basic` and `premium`, base `basic`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionTiers {
    names: Vec<String>,
    base: String,
}

impl SubscriptionTiers {
    /// Tiers from configuration; the base tier must be one of them.
    pub fn new(names: Vec<String>, base: String) -> Result<Self, ValidationError> {
        if !names.contains(&base) {
            return Err(ValidationError::new(
                "subscriptionTiers",
                format!("the base tier {base:?} is not one of the tiers"),
            ));
        }
        Ok(Self { names, base })
    }

    pub fn parse(&self, value: &str) -> Result<SubscriptionTier, ValidationError> {
        if self.names.iter().any(|name| name == value) {
            Ok(SubscriptionTier(value.to_owned()))
        } else {
            Err(ValidationError::new(
                "tier",
                format!("must be one of {}", self.names.join(", ")),
            ))
        }
    }

    pub fn base(&self) -> SubscriptionTier {
        SubscriptionTier(self.base.clone())
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }
}

impl Default for SubscriptionTiers {
    fn default() -> Self {
        Self {
            names: vec!["basic".to_owned(), "premium".to_owned()],
            base: "basic".to_owned(),
        }
    }
}

text_value!(
    /// An identifier of the subscription in the caller's billing system. The wire allows a
    /// string or a number; a number is kept in its decimal form. 1..256 characters.
    SubscriptionIdentifier
);

impl SubscriptionIdentifier {
    const RULE: TextRule = TextRule::new("subscriptionIdentifier", 1, 256);

    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::RULE.check(value)?;
        Ok(Self(value.to_owned()))
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for SubscriptionIdentifier {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .description(Some(
                "The subscription's id in the caller's billing system: 1..256 characters, or \
                 a number (kept in its decimal form).",
            ))
            .item(Self::RULE.schema(""))
            .item(ObjectBuilder::new().schema_type(Type::Number))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for SubscriptionIdentifier {}

impl FieldValue for SubscriptionIdentifier {
    /// The identifier of a JSON string or number.
    fn from_json(value: &serde_json::Value) -> Result<Self, ValidationError> {
        match value {
            serde_json::Value::String(s) => Self::parse(s),
            serde_json::Value::Number(n) => Self::parse(&n.to_string()),
            _ => Err(ValidationError::new(
                "subscriptionIdentifier",
                "must be a string or a number",
            )),
        }
    }
}

/// The default size limit of custom data, serialised (16 KiB).
pub const DEFAULT_CUSTOM_DATA_LIMIT: usize = 16 * 1024;

/// A caller's free-form data about a user: an object, `null`, `true` or `false`, replaced as a
/// whole, at most a configured size once serialised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CustomData(serde_json::Value);

impl CustomData {
    pub fn parse(value: serde_json::Value, max_bytes: usize) -> Result<Self, ValidationError> {
        const FIELD: &str = "customData";
        if !matches!(
            value,
            serde_json::Value::Object(_) | serde_json::Value::Null | serde_json::Value::Bool(_)
        ) {
            return Err(ValidationError::new(
                FIELD,
                "must be an object, null, true or false",
            ));
        }
        super::rules::refuse_nul(&value).map_err(|error| ValidationError::new(FIELD, error.msg))?;
        let size = serde_json::to_vec(&value).map_or(usize::MAX, |bytes| bytes.len());
        if size > max_bytes {
            return Err(ValidationError::new(
                FIELD,
                format!("must be at most {max_bytes} bytes once serialised (it is {size})"),
            ));
        }
        Ok(Self(value))
    }

    /// `{}`, the custom data of a new user.
    pub fn empty() -> Self {
        Self(serde_json::Value::Object(serde_json::Map::new()))
    }

    pub fn as_json(&self) -> &serde_json::Value {
        &self.0
    }
}

impl Default for CustomData {
    fn default() -> Self {
        Self::empty()
    }
}

text_value!(
    /// An invite code: `ABCD-1234-<epoch millis>`, four uppercase letters, four digits and the
    /// time it was made. The random parts are drawn by the command service, not by `decide`.
    InviteCode
);

impl InviteCode {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        let invalid =
            || ValidationError::new("code", "must look like ABCD-1234-<epoch milliseconds>");
        let mut parts = value.split('-');
        let (Some(letters), Some(digits), Some(millis), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let letters_ok = letters.len() == 4 && letters.chars().all(|c| c.is_ascii_uppercase());
        let digits_ok = digits.len() == 4 && digits.chars().all(|c| c.is_ascii_digit());
        let millis_ok =
            (1..=16).contains(&millis.len()) && millis.chars().all(|c| c.is_ascii_digit());
        if !(letters_ok && digits_ok && millis_ok) {
            return Err(invalid());
        }
        Ok(Self(value.to_owned()))
    }

    /// A code from its random parts and the time it is made.
    pub fn compose(
        letters: &str,
        digits: &str,
        at: DateTime<Utc>,
    ) -> Result<Self, ValidationError> {
        Self::parse(&format!("{letters}-{digits}-{}", at.timestamp_millis()))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn credits_never_go_negative() {
        assert_eq!(Credits::parse(5), Ok(Credits::new(5)));
        assert!(Credits::parse(-1).is_err());
        assert_eq!(Credits::new(5).checked_sub(Credits::new(6)), None);
        assert_eq!(
            Credits::new(5).checked_sub(Credits::new(5)),
            Some(Credits::ZERO)
        );
        assert_eq!(Credits::new(u64::MAX).checked_add(Credits::new(1)), None);
    }

    #[test]
    fn reasons_are_8_to_128_characters() {
        assert!(Reason::parse("spamming the forum").is_ok());
        assert!(Reason::parse("spam").is_err());
        assert!(Reason::parse(&"r".repeat(129)).is_err());
    }

    #[test]
    fn subscription_tiers_come_from_configuration() {
        let tiers = SubscriptionTiers::default();
        assert!(tiers.parse("premium").is_ok());
        assert_eq!(tiers.parse("gold").unwrap_err().field, "tier");
        assert_eq!(tiers.base().as_str(), "basic");
        let custom = SubscriptionTiers::new(vec!["free".into(), "gold".into()], "free".into());
        assert!(custom.unwrap().parse("gold").is_ok());
        assert!(SubscriptionTiers::new(vec!["gold".into()], "free".into()).is_err());
    }

    #[test]
    fn subscription_identifiers_are_strings_or_numbers() {
        let from_number = SubscriptionIdentifier::from_json(&serde_json::json!(42));
        assert_eq!(from_number.unwrap().as_str(), "42");
        assert!(SubscriptionIdentifier::from_json(&serde_json::json!("sub_1")).is_ok());
        assert!(SubscriptionIdentifier::from_json(&serde_json::json!([1])).is_err());
        assert!(SubscriptionIdentifier::parse("").is_err());
    }

    #[test]
    fn custom_data_is_an_object_null_or_a_boolean_within_the_limit() {
        use serde_json::json;
        for value in [json!({"a": 1}), json!(null), json!(true), json!(false)] {
            assert!(CustomData::parse(value, DEFAULT_CUSTOM_DATA_LIMIT).is_ok());
        }
        for value in [json!(1), json!("text"), json!([1, 2])] {
            assert!(CustomData::parse(value, DEFAULT_CUSTOM_DATA_LIMIT).is_err());
        }
        let big = json!({ "blob": "x".repeat(100) });
        assert!(CustomData::parse(big, 64).is_err());
        assert_eq!(CustomData::default().as_json(), &json!({}));
    }

    #[test]
    fn invite_codes_have_letters_digits_and_a_time() {
        let at = Utc.timestamp_millis_opt(1_700_000_000_123).unwrap();
        let code = InviteCode::compose("ABCD", "1234", at).unwrap();
        assert_eq!(code.as_str(), "ABCD-1234-1700000000123");
        assert!(InviteCode::parse("abcd-1234-1").is_err());
        assert!(InviteCode::parse("ABCD-12345-1").is_err());
        assert!(InviteCode::parse("ABCD-1234").is_err());
        assert!(InviteCode::parse("ABCD-1234-12-3").is_err());
        assert!(InviteCode::parse("ABCD-1234-x").is_err());
    }
}
