//! One Kafka message per event: key = the subject's id, value = the change and the subject's
//! public state after it, CloudEvents 1.0 binary-mode headers (DESIGN.md, "Kafka").

use std::borrow::Cow;

use chrono::SecondsFormat;
use events::metadata::{Decoded, EventFamily, EventMetadata};
use events::store::RecordedEvent;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use super::subjects::Subject;

/// A message ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The subject's id (the stream's id part): every message of one subject goes to one
    /// partition, in log order.
    pub key: String,
    pub headers: Vec<(&'static str, String)>,
    /// `None`: a tombstone, which tells a compacted topic to forget the key.
    pub payload: Option<Vec<u8>>,
    /// Milliseconds since the epoch of the event's `occurredAt` (the record's timestamp).
    pub timestamp_ms: i64,
}

/// The message of `recorded` (decoded as `decoded`), given the subject's state after it.
pub fn message<S: Subject>(
    recorded: &RecordedEvent,
    id: &str,
    decoded: &Decoded<S::Event>,
    after: &S::State,
) -> Message {
    let metadata = &decoded.metadata;
    let time = metadata
        .occurred_at
        .to_rfc3339_opts(SecondsFormat::Micros, true);
    // The change as stored (its schema version is the metadata's), but for the events that
    // hold a secret, which show every field redacted.
    let change = if decoded.event.contains_secret() {
        Cow::Owned(events::audit::payload(&decoded.event))
    } else {
        Cow::Borrowed(&recorded.data)
    };
    let payload = Payload {
        recorded,
        id,
        metadata,
        time: &time,
        change,
        kind: S::KIND,
        state: S::public(after),
    };
    Message {
        key: id.to_owned(),
        headers: vec![
            ("ce_specversion", "1.0".to_owned()),
            ("ce_id", metadata.event_id.to_string()),
            ("ce_source", format!("/userledger/{}", S::CATEGORY)),
            (
                "ce_type",
                cloud_event_type(S::KIND, &recorded.event_type, metadata.schema_version),
            ),
            ("ce_time", time.clone()),
            ("ce_subject", id.to_owned()),
            ("content-type", "application/json".to_owned()),
        ],
        payload: Some(serde_json::to_vec(&payload).expect("a payload serialises")),
        timestamp_ms: metadata.occurred_at.timestamp_millis(),
    }
}

/// The tombstone that follows `erased`, the message of a `UserErased`: the same key and time,
/// no value and no headers, so that a compacted topic forgets the person's every message.
pub fn tombstone(erased: &Message) -> Message {
    Message {
        key: erased.key.clone(),
        headers: Vec::new(),
        payload: None,
        timestamp_ms: erased.timestamp_ms,
    }
}

/// The value of a message, written straight from its parts (no intermediate JSON tree).
struct Payload<'a, P: Serialize> {
    recorded: &'a RecordedEvent,
    id: &'a str,
    metadata: &'a EventMetadata,
    time: &'a str,
    change: Cow<'a, Value>,
    /// `user`, `role` or `application`: the name of the state.
    kind: &'static str,
    state: P,
}

impl<P: Serialize> Serialize for Payload<'_, P> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(13))?;
        map.serialize_entry("id", &self.metadata.event_id)?;
        map.serialize_entry("type", &self.recorded.event_type)?;
        map.serialize_entry("schemaVersion", &self.metadata.schema_version)?;
        map.serialize_entry("subject", self.id)?;
        map.serialize_entry("stream", &self.recorded.stream)?;
        map.serialize_entry("revision", &self.recorded.revision)?;
        map.serialize_entry("position", &self.recorded.position.to_string())?;
        map.serialize_entry("occurredAt", self.time)?;
        map.serialize_entry("actor", &self.metadata.actor)?;
        map.serialize_entry("correlationId", &self.metadata.correlation_id)?;
        map.serialize_entry("causationId", &self.metadata.causation_id)?;
        map.serialize_entry("change", &self.change)?;
        map.serialize_entry(self.kind, &self.state)?;
        map.end()
    }
}

/// `io.userledger.<kind>.<fact>.v<version>`: the event type without its kind's word, in snake
/// case (`UserBanned` -> `io.userledger.user.banned.v1`, `CreditsIncreased` ->
/// `io.userledger.user.credits_increased.v1`).
pub fn cloud_event_type(kind: &str, event_type: &str, version: u32) -> String {
    let mut words: Vec<String> = Vec::new();
    for character in event_type.chars() {
        if character.is_uppercase() || words.is_empty() {
            words.push(String::new());
        }
        if let Some(word) = words.last_mut() {
            word.extend(character.to_lowercase());
        }
    }
    if words.len() > 1 && words.first().is_some_and(|first| first == kind) {
        words.remove(0);
    }
    format!("io.userledger.{kind}.{}.v{version}", words.join("_"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publisher::subjects::Users;
    use chrono::Utc;
    use events::metadata::{encode, Actor, CommandContext};
    use events::store::Position;
    use events::user::UserEvent;
    use events::values::SecretHash;
    use serde_json::Value;
    use uuid::Uuid;

    #[test]
    fn cloud_event_types_name_the_kind_once_in_snake_case() {
        assert_eq!(
            cloud_event_type("user", "UserBanned", 1),
            "io.userledger.user.banned.v1"
        );
        assert_eq!(
            cloud_event_type("user", "CreditsIncreased", 2),
            "io.userledger.user.credits_increased.v2"
        );
        assert_eq!(
            cloud_event_type("application", "ApplicationSecretSet", 1),
            "io.userledger.application.secret_set.v1"
        );
        assert_eq!(
            cloud_event_type("role", "RoleCreated", 1),
            "io.userledger.role.created.v1"
        );
    }

    #[test]
    fn a_password_change_shows_no_hash() {
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
        let event = UserEvent::PasswordSet {
            password_hash: SecretHash::parse(hash).expect("a hash"),
        };
        let context = CommandContext::new(Uuid::now_v7(), Actor::system(), Utc::now());
        let metadata = context.metadata(Uuid::now_v7());
        let new = encode(&event, &metadata).expect("encodes");
        let id = Uuid::now_v7().to_string();
        let recorded = RecordedEvent {
            stream: format!("user-{id}"),
            revision: 1,
            position: Position::at(7),
            event_id: new.event_id,
            event_type: new.event_type,
            data: new.data,
            metadata: new.metadata,
            recorded_at: Utc::now(),
        };
        let decoded = Decoded { event, metadata };
        let message = message::<Users>(&recorded, &id, &decoded, &None);
        let text = String::from_utf8(message.payload.expect("a value")).expect("UTF-8");
        assert!(!text.contains(hash), "{text}");
        assert!(!text.contains("argon2"), "{text}");
        let payload: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(payload["change"]["passwordHash"], events::audit::REDACTED);
        assert_eq!(payload["type"], "UserPasswordSet");
        assert_eq!(message.key, id);
        assert!(message
            .headers
            .contains(&("ce_type", "io.userledger.user.password_set.v1".to_owned())));
    }
}
