//! The editable profile fields a user shows to others (API.md §3, update).

use super::iso::{COUNTRY_CODES, LANGUAGE_CODES};
use super::text::{check_free_text, check_letters_and_spaces, check_web_url};
use super::{text_value, TextRule, ValidationError};

text_value!(
    /// A bio: 3..256 characters of text (newlines allowed, no other control
    /// characters, not blank).
    Bio,
    TextRule::new("bio", 3, 256)
);

impl Bio {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::rule().check(value)?;
        check_free_text("bio", value)?;
        Ok(Self(value.to_owned()))
    }
}

text_value!(
    /// Pronouns: 3..24 characters of text (`she/her`, `they/them`).
    Pronouns,
    TextRule::new("pronouns", 3, 24)
);

impl Pronouns {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::rule().check(value)?;
        check_free_text("pronouns", value)?;
        Ok(Self(value.to_owned()))
    }
}

text_value!(
    /// An `http` or `https` URL with a host, of at most 256 characters.
    CustomLink,
    TextRule::with_format("customLink", 1, 256, "uri")
);

impl CustomLink {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::rule().check(value)?;
        check_web_url("customLink", value)?;
        Ok(Self(value.to_owned()))
    }
}

text_value!(
    /// An organization: 3..128 letters (of any script) and spaces, not blank.
    Organization,
    TextRule::new("organization", 3, 128)
);

impl Organization {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::rule().check(value)?;
        check_letters_and_spaces("organization", value)?;
        Ok(Self(value.to_owned()))
    }
}

text_value!(
    /// A job title: 3..128 characters of text (titles hold digits and punctuation:
    /// `VP, R&D`).
    Designation,
    TextRule::new("designation", 3, 128)
);

impl Designation {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::rule().check(value)?;
        check_free_text("designation", value)?;
        Ok(Self(value.to_owned()))
    }
}

text_value!(
    /// A gender: 2..128 letters (of any script) and spaces, not blank.
    Gender,
    TextRule::new("gender", 2, 128)
);

impl Gender {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::rule().check(value)?;
        check_letters_and_spaces("gender", value)?;
        Ok(Self(value.to_owned()))
    }
}

text_value!(
    /// An ISO 639-1 language code in any case, kept lowercase (`en`).
    LanguageCode,
    TextRule::with_pattern("preferredLanguage", 2, 2, "^[a-zA-Z]{2}$", "must be an ISO 639-1 language code")
);

impl LanguageCode {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::rule().check(value)?;
        let lowered = value.to_ascii_lowercase();
        if !LANGUAGE_CODES.contains(&lowered.as_str()) {
            return Err(ValidationError::new(
                "preferredLanguage",
                format!("{value:?} is not an ISO 639-1 language code"),
            ));
        }
        Ok(Self(lowered))
    }
}

text_value!(
    /// An ISO 3166-1 alpha-2 country code in any case, kept uppercase (`DE`).
    CountryCode,
    TextRule::with_pattern("country", 2, 2, "^[a-zA-Z]{2}$", "must be an ISO 3166-1 alpha-2 country code")
);

impl CountryCode {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::rule().check(value)?;
        let raised = value.to_ascii_uppercase();
        if !COUNTRY_CODES.contains(&raised.as_str()) {
            return Err(ValidationError::new(
                "country",
                format!("{value:?} is not an ISO 3166-1 alpha-2 country code"),
            ));
        }
        Ok(Self(raised))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bios_are_3_to_256_characters_of_text() {
        assert!(Bio::parse("Hi!").is_ok());
        assert!(Bio::parse("Line one\nline two").is_ok());
        assert!(Bio::parse("Hi").is_err());
        assert!(Bio::parse(&"b".repeat(257)).is_err());
        assert!(Bio::parse("   ").is_err());
        assert!(Bio::parse("bell\u{7}").is_err());
    }

    #[test]
    fn pronouns_are_3_to_24_characters() {
        assert!(Pronouns::parse("she/her").is_ok());
        assert!(Pronouns::parse("he").is_err());
        assert!(Pronouns::parse(&"x".repeat(25)).is_err());
    }

    #[test]
    fn custom_links_are_web_urls_of_at_most_256_characters() {
        assert!(CustomLink::parse("https://example.com/me").is_ok());
        assert!(CustomLink::parse("http://example.com").is_ok());
        assert!(CustomLink::parse("example.com").is_err());
        assert!(CustomLink::parse("javascript:alert(1)").is_err());
        assert!(CustomLink::parse("ftp://example.com").is_err());
        let long = format!("https://example.com/{}", "a".repeat(240));
        assert!(CustomLink::parse(&long).is_err());
        assert_eq!(CustomLink::parse("").unwrap_err().field, "customLink");
    }

    #[test]
    fn organizations_are_letters_and_spaces() {
        assert!(Organization::parse("Liquid Labs").is_ok());
        assert!(Organization::parse("Société Générale").is_ok());
        assert!(Organization::parse("AB").is_err());
        assert!(Organization::parse("ACME Inc.").is_err());
        assert!(Organization::parse("Area 51").is_err());
    }

    #[test]
    fn designations_are_free_text() {
        assert!(Designation::parse("VP, R&D").is_ok());
        assert!(Designation::parse("VP").is_err());
        assert!(Designation::parse(&"d".repeat(129)).is_err());
    }

    #[test]
    fn genders_are_2_to_128_letters_and_spaces() {
        assert!(Gender::parse("female").is_ok());
        assert!(Gender::parse("non binary").is_ok());
        assert!(Gender::parse("m").is_err());
        assert!(Gender::parse("non-binary").is_err());
    }

    #[test]
    fn language_codes_are_iso_639_1() {
        assert_eq!(LanguageCode::parse("EN").unwrap().as_str(), "en");
        assert!(LanguageCode::parse("zu").is_ok());
        assert!(LanguageCode::parse("xx").is_err());
        assert!(LanguageCode::parse("eng").is_err());
        assert_eq!(
            LanguageCode::parse("").unwrap_err().field,
            "preferredLanguage"
        );
    }

    #[test]
    fn country_codes_are_iso_3166_alpha_2() {
        assert_eq!(CountryCode::parse("de").unwrap().as_str(), "DE");
        assert!(CountryCode::parse("SS").is_ok());
        assert!(CountryCode::parse("UK").is_err());
        assert!(CountryCode::parse("USA").is_err());
        assert_eq!(CountryCode::parse("").unwrap_err().field, "country");
    }
}
