//! One Kafka message per event: key = the subject's id, value = the change and the subject's
//! public state after it, CloudEvents 1.0 binary-mode headers (DESIGN.md, "Kafka").

use chrono::SecondsFormat;
use events::metadata::Decoded;
use events::store::RecordedEvent;
use serde_json::json;

use super::subjects::Subject;

/// A message ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The subject's id (the stream's id part): every message of one subject goes to one
    /// partition, in log order.
    pub key: String,
    pub headers: Vec<(&'static str, String)>,
    pub payload: Vec<u8>,
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
    let mut payload = json!({
        "id": metadata.event_id,
        "type": recorded.event_type,
        "schemaVersion": metadata.schema_version,
        "subject": id,
        "stream": recorded.stream,
        "revision": recorded.revision,
        "position": recorded.position.to_string(),
        "occurredAt": time,
        "actor": metadata.actor,
        "correlationId": metadata.correlation_id,
        "causationId": metadata.causation_id,
        "change": events::audit::payload(&decoded.event),
    });
    payload[S::KIND] = S::public(after);
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
            ("ce_time", time),
            ("ce_subject", id.to_owned()),
            ("content-type", "application/json".to_owned()),
        ],
        payload: serde_json::to_vec(&payload).expect("a JSON value serialises"),
        timestamp_ms: metadata.occurred_at.timestamp_millis(),
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
        let text = String::from_utf8(message.payload).expect("UTF-8");
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
