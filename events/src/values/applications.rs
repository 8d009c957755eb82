//! What describes an OAuth application (a client of Liquid, API.md §4).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::roles::RoleId;
use super::text::{check_free_text, check_length, matches_username_pattern};
use super::{text_value, ValidationError};

text_value!(
    /// The OAuth `client_id`: 8..30 characters with the username pattern (case-insensitive).
    /// Case is kept; uniqueness is case-insensitive (the `client-id` claim).
    ClientId
);

impl ClientId {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        check_length("id", value, 8, 30)?;
        if !matches_username_pattern(&value.to_lowercase()) {
            return Err(ValidationError::new(
                "id",
                "must start with a letter or underscore and contain only letters, digits, dots \
                 and underscores",
            ));
        }
        Ok(Self(value.to_owned()))
    }
}

text_value!(
    /// An application's display name: 8..96 characters.
    ApplicationDisplayName
);

impl ApplicationDisplayName {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        check_length("displayName", value, 8, 96)?;
        check_free_text("displayName", value)?;
        Ok(Self(value.to_owned()))
    }
}

/// The role of an application: what its client-credentials tokens may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientRole {
    InternalClient,
    ExternalClient,
}

impl ClientRole {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        match value {
            "internal_client" => Ok(Self::InternalClient),
            "external_client" => Ok(Self::ExternalClient),
            _ => Err(ValidationError::new(
                "role",
                "must be internal_client or external_client",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InternalClient => "internal_client",
            Self::ExternalClient => "external_client",
        }
    }

    /// The role's id among the roles.
    pub fn role_id(self) -> RoleId {
        match self {
            Self::InternalClient => RoleId::internal_client(),
            Self::ExternalClient => RoleId::external_client(),
        }
    }
}

impl fmt::Display for ClientRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth grant type an application may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    ClientCredentials,
    AuthorizationCode,
    RefreshToken,
    Password,
}

impl Grant {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        match value {
            "client_credentials" => Ok(Self::ClientCredentials),
            "authorization_code" => Ok(Self::AuthorizationCode),
            "refresh_token" => Ok(Self::RefreshToken),
            "password" => Ok(Self::Password),
            _ => Err(ValidationError::new(
                "grants",
                format!(
                    "{value:?} is not one of client_credentials, authorization_code, \
                     refresh_token, password"
                ),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::Password => "password",
        }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

text_value!(
    /// Where the authorization server may send a user back: an absolute URL without a fragment
    /// (RFC 6749 §3.1.2). Custom schemes are allowed, for native apps.
    RedirectUri
);

impl RedirectUri {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        check_length("redirectUris", value, 1, 2048)?;
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
