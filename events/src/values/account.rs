//! What identifies a user and lets them in: username, email, password, names, phone.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::text::{is_letter, is_mark};
use super::{ruled, text_value, TextRule, ValidationError};

/// The username pattern, which application ids share.
pub(super) const USERNAME_PATTERN: &str = "^[a-zA-Z_][a-zA-Z0-9._]*$";
pub(super) const USERNAME_PATTERN_WHY: &str =
    "must start with a letter or underscore and contain only letters, digits, dots and underscores";

text_value!(
    /// A username: 6..30 characters, a letter or underscore first, then letters, digits, dots
    /// and underscores. Kept lowercased, so `Alice_01` and `alice_01` are one username.
    Username,
    TextRule::with_pattern("username", 6, 30, USERNAME_PATTERN, USERNAME_PATTERN_WHY)
);

impl Username {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::rule().check(value)?;
        Ok(Self(value.to_lowercase()))
    }
}

/// A password as the caller typed it (8..128 characters). It exists only long enough to be
/// hashed by the write side: it cannot be serialised, and `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

ruled!(
    Password,
    TextRule::new("password", 8, 128),
    "A password: 8..128 characters. Only ever hashed (argon2id)."
);

impl Password {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::rule().check(value)?;
        Ok(Self(value.to_owned()))
    }

    /// The raw password, for the hasher and the verifier only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl TryFrom<&str> for Password {
    type Error = ValidationError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

/// An application secret as the caller sent it (8..256 characters); like [`Password`], it is
/// only ever hashed, never stored or shown.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

ruled!(
    ClientSecret,
    TextRule::new("secret", 8, 256),
    "An application secret: 8..256 characters. Only ever hashed (argon2id) and shown once, \
     in the create answer."
);

impl ClientSecret {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::rule().check(value)?;
        Ok(Self(value.to_owned()))
    }

    /// The raw secret, for the hasher and the verifier only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

impl TryFrom<&str> for ClientSecret {
    type Error = ValidationError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

/// An argon2 hash in PHC string form (`$argon2id$v=19$...`) of a password or client secret: the
/// only form in which a secret enters an event. `Debug` hides it all the same, so that a logged
/// event or state cannot leak it into logs (DESIGN.md invariant 6).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretHash(String);

impl SecretHash {
    /// Accepts a PHC string of the argon2 family; hashing itself is the write side's job.
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        if !value.starts_with("$argon2") || value.split('$').count() < 5 {
            return Err(ValidationError::new(
                "password",
                "must be an argon2 hash in PHC string form",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The PHC string, for the verifier only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(<redacted>)")
    }
}

text_value!(
    /// An email address as the caller wrote it: ASCII, 3..254 characters, 1..64 before the
    /// `@`, a dotted host name after it. Unique on its sanitized form (lowercased; at gmail.com
    /// also without a `+tag` and dots).
    Email,
    TextRule::with_format("email", 3, 254, "email")
);

impl Email {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        let invalid = |why: &str| {
            ValidationError::new("email", format!("must be a valid email address ({why})"))
        };
        Self::rule().check(value)?;
        let (local, domain) = value.rsplit_once('@').ok_or_else(|| invalid("no @"))?;
        if local.is_empty() || local.len() > 64 {
            return Err(invalid("the part before @ must be 1 to 64 characters"));
        }
        const LOCAL_SPECIALS: &str = "!#$%&'*+/=?^_`{|}~-.";
        if !local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || LOCAL_SPECIALS.contains(c))
            || local.starts_with('.')
            || local.ends_with('.')
            || local.contains("..")
        {
            return Err(invalid(
                "the part before @ has a character or dot out of place",
            ));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |label: &&str| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        let top_level_ok = labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
        if labels.len() < 2 || !labels.iter().all(label_ok) || !top_level_ok {
            return Err(invalid("the domain is not a valid host name"));
        }
        let email = Self(value.to_owned());
        if email.sanitized().as_str().starts_with('@') {
            return Err(invalid(
                "nothing is left of the address once its +tag is dropped",
            ));
        }
        Ok(email)
    }

    /// The form uniqueness is decided on: lowercased; for `@gmail.com`, also without a `+tag`
    /// and without dots in the local part, since Gmail delivers all those variants to one inbox.
    pub fn sanitized(&self) -> SanitizedEmail {
        let lowered = self.0.to_lowercase();
        let sanitized = match lowered.rsplit_once('@') {
            Some((local, "gmail.com")) => {
                let untagged = local.split('+').next().unwrap_or_default();
                format!("{}@gmail.com", untagged.replace('.', ""))
            }
            _ => lowered,
        };
        SanitizedEmail(sanitized)
    }
}

text_value!(
    /// The lowercased, Gmail-normalised form of an [`Email`]: the value email uniqueness is
    /// decided on.
    SanitizedEmail
);

impl SanitizedEmail {
    /// Parses an address and sanitises it (for look-ups by `sanitizedEmail`).
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Email::parse(value).map(|email| email.sanitized())
    }
}

impl From<&Email> for SanitizedEmail {
    fn from(email: &Email) -> Self {
        email.sanitized()
    }
}

text_value!(
    /// A first, middle or last name: 1..32 letters of any script, their combining marks, `'`
    /// and `-`.
    PersonName,
    TextRule::new("firstName", 1, 32)
);

impl PersonName {
    /// Parses a name, reporting errors against `firstName`.
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::parse_field("firstName", value)
    }

    /// Parses a name, reporting errors against `field` (`firstName`, `middleName`, `lastName`).
    pub fn parse_field(field: &'static str, value: &str) -> Result<Self, ValidationError> {
        Self::rule()
            .check(value)
            .map_err(|error| ValidationError::new(field, error.msg))?;
        if !value
            .chars()
            .all(|c| is_letter(c) || is_mark(c) || c == '\'' || c == '-')
        {
            return Err(ValidationError::new(
                field,
                "must contain only letters, apostrophes and hyphens",
            ));
        }
        Ok(Self(value.to_owned()))
    }
}

text_value!(
    /// A phone number without its country code: 10..12 digits.
    Phone,
    TextRule::with_pattern("phone", 10, 12, "^[0-9]*$", "must contain only digits")
);

impl Phone {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::rule().check(value)?;
        Ok(Self(value.to_owned()))
    }
}

text_value!(
    /// A phone country code: 2..4 characters, 1 to 3 digits after a `+`, or digits only
    /// (`+1`, `+44`, `91`, `1684`).
    PhoneCountryCode,
    TextRule::with_pattern(
        "phoneCountryCode",
        2,
        4,
        r"^(\+[0-9]{1,3}|[0-9]{1,4})$",
        "must be 1 to 3 digits after an optional +, or 1 to 4 digits"
    )
);

impl PhoneCountryCode {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::rule().check(value)?;
        Ok(Self(value.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lowercased_and_follow_the_pattern() {
        assert_eq!(Username::parse("Alice_01").unwrap().as_str(), "alice_01");
        assert!(Username::parse("_under.score9").is_ok());
        assert!(Username::parse("alice").is_err(), "too short");
        assert!(Username::parse(&"a".repeat(31)).is_err(), "too long");
        assert!(Username::parse(&"a".repeat(30)).is_ok());
        assert!(Username::parse("1alice99").is_err(), "starts with a digit");
        assert!(Username::parse(".alice99").is_err(), "starts with a dot");
        assert!(Username::parse("alice-99").is_err(), "hyphen");
        assert!(Username::parse("alice 99").is_err(), "space");
        assert!(Username::parse("älice99").is_err(), "non-ASCII");
        assert_eq!(Username::parse("bad").unwrap_err().field, "username");
    }

    #[test]
    fn passwords_are_checked_for_length_and_never_shown() {
        let password = Password::parse("correct horse").unwrap();
        assert_eq!(password.expose(), "correct horse");
        assert!(!format!("{password:?}").contains("horse"));
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"p".repeat(128)).is_ok());
        assert!(Password::parse(&"p".repeat(129)).is_err());
    }

    #[test]
    fn client_secrets_are_checked_for_length_and_never_shown() {
        let secret = ClientSecret::parse("s3cret-value").unwrap();
        assert!(!format!("{secret:?}").contains("s3cret"));
        assert!(ClientSecret::parse("1234567").is_err());
        assert!(ClientSecret::parse(&"s".repeat(257)).is_err());
    }

    #[test]
    fn secret_hashes_are_argon2_phc_strings_and_never_shown() {
        let hash = SecretHash::parse("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA").unwrap();
        assert!(!format!("{hash:?}").contains("argon2"));
        assert!(SecretHash::parse("plain text password").is_err());
        assert!(SecretHash::parse("$2b$12$bcrypt").is_err());
    }

    #[test]
    fn valid_email_addresses() {
        for address in [
            "alice@example.com",
            "Alice.Smith+news@Example.co.uk",
            "o'hara@mail-server.io",
            "x@a.bc",
        ] {
            assert!(Email::parse(address).is_ok(), "{address}");
        }
    }

    #[test]
    fn invalid_email_addresses() {
        for address in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "alice@example",
            "alice@example.c",
            "alice@-example.com",
            "al ice@example.com",
            ".alice@example.com",
            "alice..smith@example.com",
            "alice@exa_mple.com",
            "+tag@gmail.com",
        ] {
            let error = Email::parse(address).unwrap_err();
            assert_eq!(error.field, "email", "{address}");
        }
        let long = format!("{}@example.com", "a".repeat(65));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn emails_keep_their_case_but_sanitize_to_lowercase() {
        let email = Email::parse("Alice@Example.COM").unwrap();
        assert_eq!(email.as_str(), "Alice@Example.COM");
        assert_eq!(email.sanitized().as_str(), "alice@example.com");
    }

    #[test]
    fn gmail_addresses_lose_their_tag_and_dots() {
        let email = Email::parse("Test.User+x@Gmail.com").unwrap();
        assert_eq!(email.sanitized().as_str(), "testuser@gmail.com");
        assert_eq!(
            SanitizedEmail::parse("t.e.s.t.user@gmail.com")
                .unwrap()
                .as_str(),
            "testuser@gmail.com"
        );
    }

    #[test]
    fn other_domains_keep_their_tag_and_dots() {
        let email = Email::parse("Test.User+x@example.com").unwrap();
        assert_eq!(email.sanitized().as_str(), "test.user+x@example.com");
        let googlemail = Email::parse("a.b+c@gmail.com.evil.io").unwrap();
        assert_eq!(googlemail.sanitized().as_str(), "a.b+c@gmail.com.evil.io");
    }

    #[test]
    fn person_names_allow_letters_of_any_script_marks_apostrophes_and_hyphens() {
        for name in [
            "Anne-Marie",
            "O'Brien",
            "Zoë",
            "Zoe\u{0308}",
            "Владимир",
            "李",
            "हिन्दी",
        ] {
            assert!(PersonName::parse(name).is_ok(), "{name}");
        }
        for name in ["", "John Smith", "R2D2", "Ann.", &"a".repeat(33)] {
            assert!(PersonName::parse(name).is_err(), "{name}");
        }
        assert_eq!(
            PersonName::parse_field("lastName", "").unwrap_err().field,
            "lastName"
        );
    }

    #[test]
    fn phones_are_10_to_12_digits() {
        assert!(Phone::parse("5551234567").is_ok());
        assert!(Phone::parse("555123456789").is_ok());
        assert!(Phone::parse("555123456").is_err());
        assert!(Phone::parse("5551234567890").is_err());
        assert!(Phone::parse("555-123-456").is_err());
    }

    #[test]
    fn phone_country_codes_follow_the_pattern() {
        for code in ["+1", "+44", "+358", "91", "1684"] {
            assert!(PhoneCountryCode::parse(code).is_ok(), "{code}");
        }
        for code in ["1", "+", "+1234", "12345", "+4a", "++1", "44+"] {
            assert!(PhoneCountryCode::parse(code).is_err(), "{code}");
        }
    }
}
