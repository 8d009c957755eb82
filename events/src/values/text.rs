//! Character rules shared by several value types.

use unicode_general_category::{get_general_category, GeneralCategory as C};

use super::ValidationError;

/// A letter of any script (general category L*).
pub(super) fn is_letter(c: char) -> bool {
    matches!(
        get_general_category(c),
        C::UppercaseLetter
            | C::LowercaseLetter
            | C::TitlecaseLetter
            | C::ModifierLetter
            | C::OtherLetter
    )
}

/// A combining mark (general category M*): accents written as separate characters, and the
/// vowel signs of many scripts, without which names in those scripts cannot be written.
pub(super) fn is_mark(c: char) -> bool {
    matches!(
        get_general_category(c),
        C::NonspacingMark | C::SpacingMark | C::EnclosingMark
    )
}

/// Free text: anything printable, but no control characters (newlines in a bio are allowed).
pub(super) fn check_free_text(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    if value.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be blank"));
    }
    Ok(())
}

/// Letters (with their combining marks) and spaces only, as organization and gender require.
pub(super) fn check_letters_and_spaces(
    field: &'static str,
    value: &str,
) -> Result<(), ValidationError> {
    if !value
        .chars()
        .all(|c| is_letter(c) || is_mark(c) || c == ' ')
    {
        return Err(ValidationError::new(
            field,
            "must contain only letters and spaces",
        ));
    }
    if value.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be blank"));
    }
    Ok(())
}

/// Checks an absolute `http`/`https` URL (its length is its value type's rule).
pub(super) fn check_web_url(field: &'static str, value: &str) -> Result<(), ValidationError> {
    let url = url::Url::parse(value)
        .map_err(|error| ValidationError::new(field, format!("must be a valid URL ({error})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(ValidationError::new(
            field,
            "must be an http or https URL with a host",
        ));
    }
    Ok(())
}
