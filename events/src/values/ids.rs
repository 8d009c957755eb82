//! Identifiers of aggregates that the service mints itself (UUIDv7, so id order is creation order).

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ruled, TextRule, ValidationError};

macro_rules! uuid_id {
    ($(#[doc = $doc:literal])* $name:ident, $field:literal) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new id. UUIDv7 reads the clock: call it in the command service, not in `decide`.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Parses the hyphenated form a caller sends as `target`.
            pub fn parse(value: &str) -> Result<Self, ValidationError> {
                Self::rule().check(value)?;
                Uuid::parse_str(value)
                    .map(Self)
                    .map_err(|_| ValidationError::new($field, format!("{value:?} is not a valid id")))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        ruled!(
            $name,
            TextRule::with_format($field, 36, 36, "uuid"),
            concat!($($doc, "\n"),*)
        );

        impl TryFrom<&str> for $name {
            type Error = ValidationError;

            fn try_from(value: &str) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }
    };
}

uuid_id!(
    /// A user's `_id`; its stream is `user-<id>`.
    UserId,
    "target"
);
uuid_id!(
    /// An application's `_id` (the database id used as `target`, not the OAuth `client_id`);
    /// its stream is `client-<id>`.
    ApplicationId,
    "target"
);
uuid_id!(
    /// A follow's (or a follow request's) `_id` in the follow lists: the event id of the fact
    /// that began it.
    FollowEntryId,
    "entry"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_from_uuids_only() {
        let id = UserId::new();
        assert_eq!(UserId::parse(&id.to_string()), Ok(id));
        assert_eq!(UserId::parse("nope").unwrap_err().field, "target");
        assert!(ApplicationId::parse("0190a3c4-5e6f-7000-8000-000000000000").is_ok());
    }
}
