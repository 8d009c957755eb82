//! What every event carries besides its payload: who caused it, when, and in answer to what
//! (DESIGN.md, event conventions); and how an event and its metadata become a
//! [`NewEvent`](crate::store::NewEvent) and come back from a [`RecordedEvent`](crate::store::RecordedEvent).

mod codec;

pub use codec::{
    decode, encode, encode_all, DecodeError, Decoded, EncodeError, EventFamily, Upcaster,
};

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::values::{ApplicationId, UserId};

/// What kind of party caused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ActorKind {
    /// A user, through a delegated token.
    User,
    /// An application, through a client-credentials token.
    Client,
    /// userledger itself: start-up seeding, migrations, processes that follow other events.
    System,
}

/// Who caused an event. Recorded in the metadata of every event, and in the payload of the
/// events whose read model shows it (`bannedBy`, `restrictedBy`, `verifiedBy`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    /// The user's or the application's `_id`; `system` for userledger itself.
    pub id: String,
    pub kind: ActorKind,
}

impl Actor {
    pub fn user(id: UserId) -> Self {
        Self {
            id: id.to_string(),
            kind: ActorKind::User,
        }
    }

    pub fn client(id: ApplicationId) -> Self {
        Self {
            id: id.to_string(),
            kind: ActorKind::Client,
        }
    }

    pub fn system() -> Self {
        Self {
            id: "system".to_owned(),
            kind: ActorKind::System,
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ActorKind::User => "user",
            ActorKind::Client => "client",
            ActorKind::System => "system",
        };
        write!(f, "{kind} {}", self.id)
    }
}

/// The metadata of one event, stored as the event's metadata JSON (camelCase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventMetadata {
    /// The event's id (UUIDv7): the store's idempotency key and the CloudEvents `id`.
    pub event_id: Uuid,
    /// When the command that caused it was decided.
    pub occurred_at: DateTime<Utc>,
    pub actor: Actor,
    /// Shared by every event that one request caused, across streams (a batch create, a role
    /// delete that moves users), so a trace can be followed through the log.
    pub correlation_id: Uuid,
    /// The command (request) that caused this event; `None` for events with no such cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// The version of the payload's shape, which decoding upcasts from. Old events written
    /// before the field existed are version 1.
    #[serde(default = "first_version")]
    pub schema_version: u32,
    /// The event's link in its stream's hash chain ([`crate::audit::chain`]), hex SHA-256.
    /// Set at append time; events written before the chain existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

fn first_version() -> u32 {
    1
}

/// One command being decided: who asked, when, and which request it belongs to. `decide`
/// reads the actor and the time from it (it never reads a clock), and the events it decides get
/// their metadata from it, so all of them share one correlation id and are caused by
/// `command_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandContext {
    /// The id of this command (or HTTP request): the causation id of its events.
    pub command_id: Uuid,
    /// The id shared by everything one request causes; the command id unless the request
    /// continues an earlier one.
    pub correlation_id: Uuid,
    pub actor: Actor,
    pub now: DateTime<Utc>,
}

impl CommandContext {
    /// A context for a new request; its correlation id is its own command id.
    pub fn new(command_id: Uuid, actor: Actor, now: DateTime<Utc>) -> Self {
        Self {
            command_id,
            correlation_id: command_id,
            actor,
            now,
        }
    }

    /// The same context, correlated with an earlier request (a process following an event).
    pub fn correlated_with(mut self, correlation_id: Uuid) -> Self {
        self.correlation_id = correlation_id;
        self
    }

    /// The metadata of one event this command causes. The schema version is set by
    /// [`encode`] from the event's type.
    pub fn metadata(&self, event_id: Uuid) -> EventMetadata {
        EventMetadata {
            event_id,
            occurred_at: self.now,
            actor: self.actor.clone(),
            correlation_id: self.correlation_id,
            causation_id: Some(self.command_id),
            schema_version: 1,
            hash: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    #[test]
    fn metadata_is_camel_case_json() {
        let now = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let command = Uuid::nil();
        let event = Uuid::max();
        let context = CommandContext::new(command, Actor::system(), now);
        let metadata = context.metadata(event);
        assert_eq!(
            serde_json::to_value(&metadata).unwrap(),
            json!({
                "eventId": event,
                "occurredAt": "2026-01-02T03:04:05Z",
                "actor": {"id": "system", "kind": "system"},
                "correlationId": command,
                "causationId": command,
                "schemaVersion": 1,
            })
        );
    }

    #[test]
    fn every_event_of_a_command_shares_its_correlation_and_causation() {
        let context = CommandContext::new(Uuid::now_v7(), Actor::user(UserId::new()), Utc::now())
            .correlated_with(Uuid::nil());
        let first = context.metadata(Uuid::now_v7());
        let second = context.metadata(Uuid::now_v7());
        assert_eq!(first.correlation_id, Uuid::nil());
        assert_eq!(first.correlation_id, second.correlation_id);
        assert_eq!(first.causation_id, Some(context.command_id));
        assert_eq!(first.causation_id, second.causation_id);
        assert_ne!(first.event_id, second.event_id);
    }

    #[test]
    fn old_metadata_without_a_version_is_version_1() {
        let metadata: EventMetadata = serde_json::from_value(json!({
            "eventId": Uuid::nil(),
            "occurredAt": "2026-01-02T03:04:05.123Z",
            "actor": {"id": "abc", "kind": "client"},
            "correlationId": Uuid::nil(),
        }))
        .unwrap();
        assert_eq!(metadata.schema_version, 1);
        assert_eq!(metadata.causation_id, None);
        assert_eq!(metadata.actor.kind, ActorKind::Client);
    }
}
