//! What describes an OAuth application (a client of Liquid, API.md §4).

use super::account::{USERNAME_PATTERN, USERNAME_PATTERN_WHY};
use super::roles::RoleId;
use super::rules::wire_enum;
use super::text::check_free_text;
use super::{text_value, TextRule, ValidationError};

text_value!(
    /// The OAuth `client_id`: 8..30 characters, a letter or underscore first, then letters,
    /// digits, dots and underscores. Case is kept; unique case-insensitively.
    ClientId,
    TextRule::with_pattern("id", 8, 30, USERNAME_PATTERN, USERNAME_PATTERN_WHY)
);

impl ClientId {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::rule().check(value)?;
        Ok(Self(value.to_owned()))
    }
}

text_value!(
    /// An application's display name: 8..96 characters of text.
    ApplicationDisplayName,
    TextRule::new("displayName", 8, 96)
);

impl ApplicationDisplayName {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::rule().check(value)?;
        check_free_text("displayName", value)?;
        Ok(Self(value.to_owned()))
    }
}

wire_enum!(
    /// The role of an application: what its client-credentials tokens may do.
    ClientRole, "role" {
        InternalClient = "internal_client",
        ExternalClient = "external_client",
    }
);

impl ClientRole {
    /// The role's id among the roles.
    pub fn role_id(self) -> RoleId {
        match self {
            Self::InternalClient => RoleId::internal_client(),
            Self::ExternalClient => RoleId::external_client(),
        }
    }
}

wire_enum!(
    /// An OAuth grant type an application may use.
    Grant, "grants" {
        ClientCredentials = "client_credentials",
        AuthorizationCode = "authorization_code",
        RefreshToken = "refresh_token",
        Password = "password",
    }
);

text_value!(
    /// Where the authorization server may send a user back: an absolute URL of 1..2048
    /// characters without a fragment (RFC 6749 §3.1.2). Custom schemes are allowed, for native
    /// apps.
    RedirectUri,
    TextRule::with_format("redirectUris", 1, 2048, "uri")
);

impl RedirectUri {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::rule().check(value)?;
        let url = url::Url::parse(value).map_err(|error| {
            ValidationError::new("redirectUris", format!("must be an absolute URL ({error})"))
        })?;
        if url.fragment().is_some() {
            return Err(ValidationError::new(
                "redirectUris",
                "must not contain a fragment",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The origin (`scheme://host[:port]`), which browsers send and CORS compares.
    pub fn origin(&self) -> Option<String> {
        let origin = url::Url::parse(&self.0).ok()?.origin();
        origin.is_tuple().then(|| origin.ascii_serialization())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_follow_the_username_pattern() {
        assert_eq!(
            ClientId::parse("Nitrogen_UI").unwrap().as_str(),
            "Nitrogen_UI"
        );
        assert!(ClientId::parse("short").is_err());
        assert!(ClientId::parse(&"c".repeat(31)).is_err());
        assert!(ClientId::parse("9client_x").is_err());
        assert!(ClientId::parse("client-one").is_err());
    }

    #[test]
    fn application_display_names_are_8_to_96_characters() {
        assert!(ApplicationDisplayName::parse("Nitrogen admin").is_ok());
        assert!(ApplicationDisplayName::parse("Short").is_err());
        assert!(ApplicationDisplayName::parse(&"n".repeat(97)).is_err());
    }

    #[test]
    fn client_roles_are_the_two_client_roles() {
        assert_eq!(
            ClientRole::parse("internal_client"),
            Ok(ClientRole::InternalClient)
        );
        assert_eq!(
            ClientRole::ExternalClient.role_id(),
            RoleId::external_client()
        );
        assert!(ClientRole::parse("admin").is_err());
    }

    #[test]
    fn grants_are_the_four_supported_ones() {
        for grant in [
            Grant::ClientCredentials,
            Grant::AuthorizationCode,
            Grant::RefreshToken,
            Grant::Password,
        ] {
            assert_eq!(Grant::parse(grant.as_str()), Ok(grant));
        }
        assert!(Grant::parse("implicit").is_err());
    }

    #[test]
    fn redirect_uris_are_absolute_urls_without_fragments() {
        let uri = RedirectUri::parse("https://admin.example.com:8443/callback?x=1").unwrap();
        assert_eq!(
            uri.origin().as_deref(),
            Some("https://admin.example.com:8443")
        );
        assert!(RedirectUri::parse("com.example.app:/oauth").is_ok());
        assert!(RedirectUri::parse("/callback").is_err());
        assert!(RedirectUri::parse("https://example.com/cb#frag").is_err());
    }
}
