//! What a value type enforces on the wire, stated once: its `parse` checks the rule, and (with
//! the `openapi` feature) its OpenAPI schema states the same rule, so the document's lengths,
//! patterns, bounds and enums are exactly the ones enforced. What a schema cannot state (an
//! email's syntax, letters of any script, a URL's host) stays in `parse` and in the value's
//! description.
//!
//! [`FieldValue`] reads a value from one field of a JSON body; request bodies are built from
//! such values (`http_edge::body`).

use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

use super::ValidationError;

/// The length (in Unicode scalar values, as JSON Schema counts them) and pattern of a text
/// value.
#[derive(Debug)]
pub struct TextRule {
    /// The wire field errors name when the value is parsed outside a body.
    pub field: &'static str,
    pub min: usize,
    pub max: usize,
    pattern: Option<Pattern>,
    /// A JSON Schema `format` (`email`, `uri`, `uuid`); informative, `parse` checks it.
    pub format: Option<&'static str>,
}

/// A regular expression (the ECMA-262 subset that both JSON Schema and the `regex` crate read
/// alike: anchors, classes, groups, alternation, counted repetition) and what to tell a caller
/// whose value does not match it.
#[derive(Debug)]
struct Pattern {
    source: &'static str,
    why: &'static str,
    compiled: OnceLock<Regex>,
}

impl TextRule {
    pub const fn new(field: &'static str, min: usize, max: usize) -> Self {
        Self {
            field,
            min,
            max,
            pattern: None,
            format: None,
        }
    }

    /// A rule with a pattern; `why` is the refusal a person can act on.
    pub const fn with_pattern(
        field: &'static str,
        min: usize,
        max: usize,
        source: &'static str,
        why: &'static str,
    ) -> Self {
        Self {
            field,
            min,
            max,
            pattern: Some(Pattern {
                source,
                why,
                compiled: OnceLock::new(),
            }),
            format: None,
        }
    }

    /// A rule with a JSON Schema `format`.
    pub const fn with_format(
        field: &'static str,
        min: usize,
        max: usize,
        format: &'static str,
    ) -> Self {
        Self {
            field,
            min,
            max,
            pattern: None,
            format: Some(format),
        }
    }

    /// The pattern's source, as the schema states it.
    pub fn pattern(&self) -> Option<&'static str> {
        self.pattern.as_ref().map(|pattern| pattern.source)
    }

    /// Checks the length, then the pattern; a NUL character is refused in every value, however
    /// it came (a JSON body, a form, a query string).
    pub fn check(&self, value: &str) -> Result<(), ValidationError> {
        if value.contains('\0') {
            return Err(ValidationError::new(self.field, nul_refused().msg));
        }
        let length = value.chars().count();
        if length < self.min || length > self.max {
            return Err(ValidationError::new(
                self.field,
                format!(
                    "must be between {} and {} characters long (it is {length})",
                    self.min, self.max
                ),
            ));
        }
        if let Some(pattern) = &self.pattern {
            let regex = pattern.compiled.get_or_init(|| {
                Regex::new(pattern.source).expect("a value type's pattern compiles")
            });
            if !regex.is_match(value) {
                return Err(ValidationError::new(self.field, pattern.why));
            }
        }
        Ok(())
    }

    /// The OpenAPI schema of a string that follows this rule.
    #[cfg(feature = "openapi")]
    pub fn schema(
        &self,
        description: &str,
    ) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        let format = self.format.map(|format| match format {
            "email" => SchemaFormat::KnownFormat(KnownFormat::Email),
            other => SchemaFormat::Custom(other.to_owned()),
        });
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description_of(description)))
            .min_length(Some(self.min))
            .max_length(Some(self.max))
            .pattern(self.pattern())
            .format(format)
            .into()
    }
}

/// A doc comment as one paragraph.
#[cfg(feature = "openapi")]
pub(crate) fn description_of(doc: &str) -> String {
    doc.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A value read from one field of a JSON request body. The body names the field in errors;
/// the error's own `field` is ignored there.
pub trait FieldValue: Sized {
    fn from_json(value: &Value) -> Result<Self, ValidationError>;
}

/// A whole number as Liquid's validators take one (express-validator's `isInt` reads the
/// value as a string): a JSON integer, or a string of one, such as `"5"`, `"+5"` or `"05"`.
pub fn whole_number_of(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) if WHOLE_NUMBER.is_match(text) => text.parse().ok(),
        _ => None,
    }
}

/// What [`whole_number_of`] reads from a string, as a JSON Schema pattern.
pub const WHOLE_NUMBER_PATTERN: &str = "^[+-]?[0-9]+$";

static WHOLE_NUMBER: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
    Regex::new(WHOLE_NUMBER_PATTERN).expect("the whole-number pattern compiles")
});

/// The schema of a whole number read by [`whole_number_of`]: an integer of at least
/// `minimum`, or a string of one.
#[cfg(feature = "openapi")]
pub fn whole_number_schema(
    description: &str,
    minimum: i64,
    maximum: Option<u64>,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::String]))
        .description(Some(format!(
            "{description} A JSON integer, or a string of one (as Liquid takes it)."
        )))
        .minimum(Some(minimum as f64))
        .maximum(maximum.map(|maximum| maximum as f64))
        .pattern(Some(WHOLE_NUMBER_PATTERN))
        .into()
}

/// The string of a field, or "must be a string". A NUL character is refused in every string
/// a request brings: PostgreSQL can hold it neither in `text` nor in `jsonb`.
pub fn text_of(value: &Value) -> Result<&str, ValidationError> {
    let text = value
        .as_str()
        .ok_or_else(|| ValidationError::new("value", "must be a string"))?;
    if text.contains('\0') {
        return Err(nul_refused());
    }
    Ok(text)
}

fn nul_refused() -> ValidationError {
    ValidationError::new("value", "must not contain a NUL character (\\u0000)")
}

/// Refuses `value` if a string anywhere in it (a key or a value, at any depth) holds a NUL
/// character.
pub(crate) fn refuse_nul(value: &Value) -> Result<(), ValidationError> {
    if holds_nul(value) {
        return Err(nul_refused());
    }
    Ok(())
}

fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(fields) => fields
            .iter()
            .any(|(key, value)| key.contains('\0') || holds_nul(value)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

impl FieldValue for bool {
    fn from_json(value: &Value) -> Result<Self, ValidationError> {
        value
            .as_bool()
            .ok_or_else(|| ValidationError::new("value", "must be true or false"))
    }
}

/// Any string, for fields whose rule lives elsewhere (a configured list, a lookup).
impl FieldValue for String {
    fn from_json(value: &Value) -> Result<Self, ValidationError> {
        text_of(value).map(str::to_owned)
    }
}

/// Any JSON value without a NUL character in it, for fields checked against configuration
/// (custom data and its size limit).
impl FieldValue for Value {
    fn from_json(value: &Value) -> Result<Self, ValidationError> {
        refuse_nul(value)?;
        Ok(value.clone())
    }
}

/// An ISO 8601 date and time with an offset (RFC 3339).
impl FieldValue for chrono::DateTime<chrono::Utc> {
    fn from_json(value: &Value) -> Result<Self, ValidationError> {
        chrono::DateTime::parse_from_rfc3339(text_of(value)?)
            .map(|at| at.with_timezone(&chrono::Utc))
            .map_err(|_| ValidationError::new("value", "must be an ISO-8601 date and time"))
    }
}

/// Declares a closed set of wire names: an enum whose `parse` (and serde form) accepts exactly
/// `NAMES`, and whose schema (feature `openapi`) is `{"type":"string","enum":NAMES}`.
macro_rules! wire_enum {
    (
        $(#[doc = $doc:literal])*
        $name:ident, $field:literal { $($variant:ident = $wire:literal),+ $(,)? }
    ) => {
        $(#[doc = $doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash,
            serde::Serialize, serde::Deserialize,
        )]
        pub enum $name {
            $(#[serde(rename = $wire)] $variant),+
        }

        impl $name {
            /// Every wire name, in order.
            pub const NAMES: &'static [&'static str] = &[$($wire),+];

            pub fn parse(value: &str) -> Result<Self, $crate::values::ValidationError> {
                match value {
                    $($wire => Ok(Self::$variant),)+
                    _ => Err($crate::values::ValidationError::new(
                        $field,
                        format!("{value:?} is not one of {}", Self::NAMES.join(", ")),
                    )),
                }
            }

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::values::FieldValue for $name {
            fn from_json(value: &serde_json::Value) -> Result<Self, $crate::values::ValidationError> {
                Self::parse($crate::values::text_of(value)?)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some($crate::values::rules::description_of(
                        concat!($($doc, "\n"),*),
                    )))
                    .enum_values(Some(Self::NAMES.iter().copied()))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

pub(crate) use wire_enum;

#[cfg(test)]
mod tests {
    use super::*;

    static RULE: TextRule = TextRule::with_pattern("code", 2, 4, "^[a-z]+$", "lowercase only");

    #[test]
    fn a_rule_checks_its_length_in_characters_then_its_pattern() {
        assert!(RULE.check("ab").is_ok());
        assert!(RULE.check("abcd").is_ok());
        assert!(RULE.check("a").is_err());
        assert!(RULE.check("abcde").is_err());
        assert_eq!(RULE.check("aB").unwrap_err().msg, "lowercase only");
        let long = TextRule::new("name", 1, 2);
        assert!(long.check("ää").is_ok(), "two characters, four bytes");
    }
}
