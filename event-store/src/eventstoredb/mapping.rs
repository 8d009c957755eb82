//! Our types to and from those of the `eventstore` client.
//!
//! - Our stream is an ESDB stream of the same name; our revision is the ESDB stream revision
//!   (both count from 0); our [`Position`] is the ESDB `$all` position `(commit, prepare)`.
//! - Our `event_id` is the ESDB event id, `data` the JSON payload, `metadata` the JSON custom
//!   metadata, and `recorded_at` the server's `created` stamp.
//! - The global log is `$all` without what ESDB writes for itself (streams or event types
//!   starting with `$`) and without the reservation streams (see `reservations`).

use chrono::{DateTime, Utc};
use eventstore::{
    EventData, ExpectedRevision as EsExpectedRevision, Position as EsPosition,
    RecordedEvent as EsRecordedEvent, ResolvedEvent,
};

use events::store::{ExpectedRevision, NewEvent, Position, RecordedEvent, StoreError};

use super::reservations::RESERVATION_PREFIX;

/// The store's error for a failed EventStoreDB call. [`StoreError::Unreachable`] (503 with
/// `Retry-After` for a caller) when the server could not be reached or cannot serve for now:
/// no node found, a connection dropped (gRPC `Unavailable`, which the client reports as a
/// `ServerError` of that status), a deadline passed, a follower asked to write without a known
/// leader. [`StoreError::Backend`] (500) for anything else, `ConnectionClosed` included: the
/// client's connection task has stopped and will not come back, which no retry mends.
pub(super) fn store_error(error: eventstore::Error) -> StoreError {
    use eventstore::Error;
    let unreachable = match &error {
        Error::GrpcConnectionError(_) | Error::DeadlineExceeded | Error::NotLeaderException(_) => {
            true
        }
        // `Error::from_grpc` keeps only the status's text (tonic's `status: Unavailable, ...`).
        Error::ServerError(status) => status.starts_with("status: Unavailable"),
        Error::Grpc { code, .. } => matches!(
            code,
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
        ),
        _ => false,
    };
    if unreachable {
        StoreError::Unreachable(Box::new(error))
    } else {
        StoreError::backend(error)
    }
}

/// Whether an `$all` event belongs to the domain log.
pub(super) fn is_ours(event: &EsRecordedEvent) -> bool {
    !event.stream_id.starts_with('$')
        && !event.event_type.starts_with('$')
        && !event.stream_id.starts_with(RESERVATION_PREFIX)
}

/// The event of a read result. Links are not resolved (the default options), so `event` is the
/// record itself; `link` is a fallback that `ResolvedEvent::get_original_event` would also use,
/// without its panic when both are missing.
pub(super) fn into_event(resolved: ResolvedEvent) -> Option<EsRecordedEvent> {
    resolved.event.or(resolved.link)
}

pub(super) fn to_event_data(event: &NewEvent) -> Result<EventData, StoreError> {
    let invalid = |e: serde_json::Error| StoreError::InvalidAppend(e.to_string());
    Ok(EventData::json(&event.event_type, &event.data)
        .map_err(invalid)?
        .metadata_as_json(&event.metadata)
        .map_err(invalid)?
        .id(event.event_id))
}

pub(super) fn to_recorded(event: &EsRecordedEvent) -> Result<RecordedEvent, StoreError> {
    Ok(RecordedEvent {
        stream: event.stream_id.clone(),
        revision: event.revision,
        position: from_es_position(event.position),
        event_id: event.id,
        event_type: event.event_type.clone(),
        data: json_or_null(&event.data)?,
        metadata: json_or_null(&event.custom_metadata)?,
        recorded_at: recorded_at(event),
    })
}

/// Our events always carry JSON; an empty payload (possible for events written by other tools)
/// reads as `null`.
fn json_or_null(bytes: &[u8]) -> Result<serde_json::Value, StoreError> {
    if bytes.is_empty() {
        Ok(serde_json::Value::Null)
    } else {
        serde_json::from_slice(bytes).map_err(StoreError::backend)
    }
}

/// The server's `created` stamp at full precision. The client's `RecordedEvent::created` drops
/// everything below a second (`From<read_event::RecordedEvent>` in its
/// `event_store/generated.rs`), so the raw metadata value (100 ns ticks since the Unix epoch)
/// is parsed here, with the client's value as the fallback.
pub(super) fn recorded_at(event: &EsRecordedEvent) -> DateTime<Utc> {
    event
        .metadata
        .get("created")
        .and_then(|ticks| ticks.parse::<i64>().ok())
        .and_then(from_ticks)
        .unwrap_or(event.created)
}

fn from_ticks(ticks: i64) -> Option<DateTime<Utc>> {
    const TICKS_PER_SECOND: i64 = 10_000_000;
    let seconds = ticks.div_euclid(TICKS_PER_SECOND);
    let nanos = u32::try_from(ticks.rem_euclid(TICKS_PER_SECOND) * 100).ok()?;
    DateTime::from_timestamp(seconds, nanos)
}

pub(super) fn to_es_expected(expected: ExpectedRevision) -> EsExpectedRevision {
    match expected {
        ExpectedRevision::Any => EsExpectedRevision::Any,
        ExpectedRevision::NoStream => EsExpectedRevision::NoStream,
        ExpectedRevision::Exact(revision) => EsExpectedRevision::Exact(revision),
    }
}

pub(super) fn from_es_position(position: EsPosition) -> Position {
    Position::new(position.commit, position.prepare)
}

pub(super) fn to_es_position(position: Position) -> EsPosition {
    EsPosition {
        commit: position.commit,
        prepare: position.prepare,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use uuid::Uuid;

    use super::super::reservations::CLAIM_RESERVED;
    use super::*;

    fn es_event(stream: &str, event_type: &str) -> EsRecordedEvent {
        EsRecordedEvent {
            stream_id: stream.to_owned(),
            id: Uuid::nil(),
            revision: 3,
            event_type: event_type.to_owned(),
            data: b"{\"a\":1}".to_vec().into(),
            metadata: HashMap::from([("created".to_owned(), "17000000001234567".to_owned())]),
            custom_metadata: b"{\"m\":true}".to_vec().into(),
            is_json: true,
            position: EsPosition {
                commit: 10,
                prepare: 9,
            },
            created: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn an_outage_is_unreachable_and_a_dead_client_is_a_failure() {
        let unavailable = tonic::Status::unavailable("connection reset");
        for error in [
            eventstore::Error::ServerError(unavailable.to_string()),
            eventstore::Error::DeadlineExceeded,
            eventstore::Error::GrpcConnectionError(
                eventstore::GrpcConnectionError::MaxDiscoveryAttemptReached(3),
            ),
        ] {
            assert!(
                matches!(store_error(error), StoreError::Unreachable(_)),
                "an outage"
            );
        }
        let internal = tonic::Status::internal("boom");
        for error in [
            eventstore::Error::ServerError(internal.to_string()),
            eventstore::Error::ConnectionClosed,
            eventstore::Error::AccessDenied,
        ] {
            assert!(
                matches!(store_error(error), StoreError::Backend(_)),
                "not an outage"
            );
        }
    }

    #[test]
    fn system_and_reservation_events_are_not_ours() {
        assert!(is_ours(&es_event("user-1", "UserRegistered")));
        assert!(!is_ours(&es_event(
            "$stats-0.0.0.0:2113",
            "$statsCollected"
        )));
        assert!(!is_ours(&es_event("$settings", "Settings")));
        assert!(!is_ours(&es_event("user-1", "$metadata")));
        assert!(!is_ours(&es_event("unique-username-bob", CLAIM_RESERVED)));
    }

    #[test]
    fn recorded_events_keep_payloads_positions_and_full_precision_time() -> Result<(), StoreError> {
        let recorded = to_recorded(&es_event("user-1", "UserRegistered"))?;
        assert_eq!(recorded.revision, 3);
        assert_eq!(recorded.position, Position::new(10, 9));
        assert_eq!(recorded.data, serde_json::json!({ "a": 1 }));
        assert_eq!(recorded.metadata, serde_json::json!({ "m": true }));
        assert_eq!(recorded.recorded_at.timestamp(), 1_700_000_000);
        assert_eq!(recorded.recorded_at.timestamp_subsec_nanos(), 123_456_700);
        Ok(())
    }
}
