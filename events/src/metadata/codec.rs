//! Events to and from the store's serialised form, with upcasting of old schema versions.
//!
//! An event family is a serde enum tagged adjacently (`type` = the event's name, `data` = its
//! payload). In the store, the name is the event type, the payload is the data, and the schema
//! version lives in the metadata. Reading an old version runs the family's upcasters, one
//! version step at a time, before the payload is deserialised, so old events stay readable.

use serde::de::value::MapDeserializer;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{CommandContext, EventMetadata};
use crate::store::{NewEvent, RecordedEvent};

/// A family of events stored in one kind of stream (`UserEvent`, `RoleEvent`, ...).
pub trait EventFamily: Serialize + DeserializeOwned {
    /// Every event type name of the family, for telling an unknown type from a broken payload.
    const EVENT_TYPES: &'static [&'static str];

    /// The upcasters of the family, each lifting one event type from one version to the next.
    const UPCASTERS: &'static [Upcaster] = &[];

    /// This event's type name, such as `UserBanned`.
    fn event_type(&self) -> &'static str;

    /// The current schema version of an event type: 1 until its shape first changes.
    fn schema_version(event_type: &str) -> u32 {
        let _ = event_type;
        1
    }

    /// Whether the payload holds a secret (a password or client-secret hash), which must never
    /// reach a read model, Kafka or a log (DESIGN.md invariant 6).
    fn contains_secret(&self) -> bool {
        false
    }
}

/// Lifts the payload of `event_type` from `from_version` to `from_version + 1`.
#[derive(Debug, Clone, Copy)]
pub struct Upcaster {
    pub event_type: &'static str,
    pub from_version: u32,
    pub upcast: fn(Value) -> Result<Value, String>,
}

/// An event read back from the store, with its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded<E> {
    pub event: E,
    pub metadata: EventMetadata,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot serialise event {event_type}: {source}")]
pub struct EncodeError {
    event_type: &'static str,
    #[source]
    source: serde_json::Error,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error(
        "event {event_type} has schema version {version}, newer than this build reads ({current})"
    )]
    FutureVersion {
        event_type: String,
        version: u32,
        current: u32,
    },
    #[error("no upcaster lifts event {event_type} from schema version {version}")]
    MissingUpcaster { event_type: String, version: u32 },
    #[error("upcasting event {event_type} from schema version {version} failed: {reason}")]
    UpcastFailed {
        event_type: String,
        version: u32,
        reason: String,
    },
    #[error("unreadable metadata of event {event_type}: {source}")]
    Metadata {
        event_type: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("unreadable payload of event {event_type}: {source}")]
    Payload {
        event_type: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Serialises an event with its metadata, stamping the metadata with the event type's
/// current schema version.
pub fn encode<E: EventFamily>(
    event: &E,
    metadata: &EventMetadata,
) -> Result<NewEvent, EncodeError> {
    let event_type = event.event_type();
    let fail = |source| EncodeError { event_type, source };
    let data = match serde_json::to_value(event).map_err(fail)? {
        Value::Object(mut tagged) => tagged.remove("data").unwrap_or(Value::Object(Map::new())),
        other => other,
    };
    let metadata = EventMetadata {
        schema_version: E::schema_version(event_type),
        ..metadata.clone()
    };
    Ok(NewEvent {
        event_id: metadata.event_id,
        event_type: event_type.to_owned(),
        data,
        metadata: serde_json::to_value(&metadata).map_err(fail)?,
    })
}

/// Serialises the events one command decided, each with a new event id (UUIDv7, so it reads
/// the clock: call it in the command service, after `decide`).
pub fn encode_all<E: EventFamily>(
    events: &[E],
    context: &CommandContext,
) -> Result<Vec<NewEvent>, EncodeError> {
    events
        .iter()
        .map(|event| encode(event, &context.metadata(Uuid::now_v7())))
        .collect()
}

/// Reads an event of family `E` back, upcasting an old payload to the current version first.
pub fn decode<E: EventFamily>(recorded: &RecordedEvent) -> Result<Decoded<E>, DecodeError> {
    decode_parts(&recorded.event_type, &recorded.data, &recorded.metadata)
}

fn decode_parts<E: EventFamily>(
    event_type: &str,
    data: &Value,
    metadata: &Value,
) -> Result<Decoded<E>, DecodeError> {
    if !E::EVENT_TYPES.contains(&event_type) {
        return Err(DecodeError::UnknownType(event_type.to_owned()));
    }
    // Read from the stored values in place (no copy of them): projections and the publisher
    // decode every event of the log.
    let metadata =
        EventMetadata::deserialize(metadata).map_err(|source| DecodeError::Metadata {
            event_type: event_type.to_owned(),
            source,
        })?;
    let upcast_data;
    let data = if metadata.schema_version == E::schema_version(event_type) {
        data
    } else {
        upcast_data = upcast::<E>(event_type, metadata.schema_version, data.clone())?;
        &upcast_data
    };
    let type_name = Value::String(event_type.to_owned());
    let tagged = MapDeserializer::<_, serde_json::Error>::new(
        [("type", &type_name), ("data", data)].into_iter(),
    );
    let event = E::deserialize(tagged).map_err(|source| DecodeError::Payload {
        event_type: event_type.to_owned(),
        source,
    })?;
    Ok(Decoded { event, metadata })
}

/// Lifts `data` from `version` to the current version of `event_type`, one step at a time.
fn upcast<E: EventFamily>(
    event_type: &str,
    version: u32,
    data: Value,
) -> Result<Value, DecodeError> {
    upcast_with(
        E::UPCASTERS,
        event_type,
        version,
        E::schema_version(event_type),
        data,
    )
}

fn upcast_with(
    upcasters: &[Upcaster],
    event_type: &str,
    mut version: u32,
    current: u32,
    mut data: Value,
) -> Result<Value, DecodeError> {
    if version > current {
        return Err(DecodeError::FutureVersion {
            event_type: event_type.to_owned(),
            version,
            current,
        });
    }
    while version < current {
        let step = upcasters
            .iter()
            .find(|u| u.event_type == event_type && u.from_version == version)
            .ok_or_else(|| DecodeError::MissingUpcaster {
                event_type: event_type.to_owned(),
                version,
            })?;
        data = (step.upcast)(data).map_err(|reason| DecodeError::UpcastFailed {
            event_type: event_type.to_owned(),
            version,
            reason,
        })?;
        version += 1;
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::metadata::Actor;

    /// A family whose `Renamed` event is at version 3: v1 had `name`, v2 renamed it to
    /// `username`, v3 added `reason`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", content = "data")]
    enum SampleEvent {
        #[serde(rename = "SampleRenamed")]
        Renamed { username: String, reason: String },
        #[serde(rename = "SampleDeleted")]
        Deleted {},
    }

    fn rename_field(mut data: Value) -> Result<Value, String> {
        let object = data.as_object_mut().ok_or("not an object")?;
        let name = object.remove("name").ok_or("no name")?;
        object.insert("username".into(), name);
        Ok(data)
    }

    fn add_reason(mut data: Value) -> Result<Value, String> {
        let object = data.as_object_mut().ok_or("not an object")?;
        object.insert("reason".into(), json!("unknown"));
        Ok(data)
    }

    impl EventFamily for SampleEvent {
        const EVENT_TYPES: &'static [&'static str] = &["SampleRenamed", "SampleDeleted"];
        const UPCASTERS: &'static [Upcaster] = &[
            Upcaster {
                event_type: "SampleRenamed",
                from_version: 1,
                upcast: rename_field,
            },
            Upcaster {
                event_type: "SampleRenamed",
                from_version: 2,
                upcast: add_reason,
            },
        ];

        fn event_type(&self) -> &'static str {
            match self {
                Self::Renamed { .. } => "SampleRenamed",
                Self::Deleted {} => "SampleDeleted",
            }
        }

        fn schema_version(event_type: &str) -> u32 {
            if event_type == "SampleRenamed" {
                3
            } else {
                1
            }
        }
    }

    fn metadata(version: u32) -> EventMetadata {
        EventMetadata {
            event_id: Uuid::nil(),
            occurred_at: chrono::DateTime::UNIX_EPOCH,
            actor: Actor::system(),
            correlation_id: Uuid::nil(),
            causation_id: None,
            schema_version: version,
            hash: None,
        }
    }

    #[test]
    fn encoding_splits_name_payload_and_versioned_metadata() {
        let event = SampleEvent::Renamed {
            username: "alice".into(),
            reason: "asked".into(),
        };
        let new = encode(&event, &metadata(1)).unwrap();
        assert_eq!(new.event_type, "SampleRenamed");
        assert_eq!(new.data, json!({"username": "alice", "reason": "asked"}));
        assert_eq!(new.metadata["schemaVersion"], json!(3));
        let decoded: Decoded<SampleEvent> =
            decode_parts(&new.event_type, &new.data, &new.metadata).unwrap();
        assert_eq!(decoded.event, event);
        assert_eq!(decoded.metadata.schema_version, 3);
    }

    #[test]
    fn empty_events_round_trip() {
        let new = encode(&SampleEvent::Deleted {}, &metadata(1)).unwrap();
        assert_eq!(new.data, json!({}));
        let decoded: Decoded<SampleEvent> =
            decode_parts(&new.event_type, &new.data, &new.metadata).unwrap();
        assert_eq!(decoded.event, SampleEvent::Deleted {});
    }

    #[test]
    fn old_versions_are_upcast_step_by_step() {
        let stored = serde_json::to_value(metadata(1)).unwrap();
        let decoded: Decoded<SampleEvent> =
            decode_parts("SampleRenamed", &json!({"name": "bob"}), &stored).unwrap();
        assert_eq!(
            decoded.event,
            SampleEvent::Renamed {
                username: "bob".into(),
                reason: "unknown".into()
            }
        );
        let from_v2 = serde_json::to_value(metadata(2)).unwrap();
        let decoded: Decoded<SampleEvent> =
            decode_parts("SampleRenamed", &json!({"username": "carol"}), &from_v2).unwrap();
        assert!(
            matches!(decoded.event, SampleEvent::Renamed { username, .. } if username == "carol")
        );
    }

    #[test]
    fn unknown_types_future_versions_and_gaps_are_errors() {
        let v1 = serde_json::to_value(metadata(1)).unwrap();
        let unknown = decode_parts::<SampleEvent>("SampleExploded", &json!({}), &v1);
        assert!(matches!(unknown, Err(DecodeError::UnknownType(t)) if t == "SampleExploded"));
        let v9 = serde_json::to_value(metadata(9)).unwrap();
        let future = decode_parts::<SampleEvent>("SampleDeleted", &json!({}), &v9);
        assert!(matches!(
            future,
            Err(DecodeError::FutureVersion {
                version: 9,
                current: 1,
                ..
            })
        ));
        let gap = upcast_with(&[], "SampleRenamed", 1, 2, json!({}));
        assert!(matches!(
            gap,
            Err(DecodeError::MissingUpcaster { version: 1, .. })
        ));
        let failing = decode_parts::<SampleEvent>("SampleRenamed", &json!({"x": 1}), &v1);
        assert!(matches!(failing, Err(DecodeError::UpcastFailed { .. })));
        let broken = decode_parts::<SampleEvent>(
            "SampleRenamed",
            &json!({"username": 1}),
            &serde_json::to_value(metadata(3)).unwrap(),
        );
        assert!(matches!(broken, Err(DecodeError::Payload { .. })));
        let no_metadata = decode_parts::<SampleEvent>("SampleDeleted", &json!({}), &json!({}));
        assert!(matches!(no_metadata, Err(DecodeError::Metadata { .. })));
    }
}
