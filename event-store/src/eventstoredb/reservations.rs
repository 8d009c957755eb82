//! Uniqueness claims on EventStoreDB.
//!
//! ESDB has no transaction across streams, so a claim is a *reservation stream*
//! `unique-<kind>-<value>` (see [`reservation_stream`]) whose last event says who holds the
//! value: `ClaimReserved { stream, first_event_id, .. }` or `ClaimReleased`. Optimistic
//! concurrency on that stream makes reserving race-free: the reservation is appended at the
//! revision we read, so of two claimers exactly one wins.
//!
//! An append with claims (1) reserves every claim in sorted order, (2) appends the events, and
//! (3) after a successful append applies the releases. When (2) fails, the reservations made in
//! (1) are released again, unless the events may have been written after all (see
//! [`EventStoreDbStore::append`]).
//!
//! **Crash window.** This is not atomic. If the process dies (or loses the server) between (1)
//! and (2), or an append fails without telling whether it was written, the reservation stays
//! although the events may never arrive. Such a reservation becomes *stale*: a later claimer
//! that finds the value held (by another stream, or by its own stream) checks whether the
//! holder stream contains the reservation's `first_event_id`; if it does not and the reservation
//! is older than [`STALE_RESERVATION_AGE`] (far beyond any append deadline), the claimer takes
//! the value over at the revision it read. Until then the value is blocked, never shared. If
//! the process dies between (2) and (3), or a release fails, the given-up values stay held by
//! the stream that gave them up (its event is there, so they never look stale); nothing
//! recovers those automatically. An append that is still running on the server after the
//! client gave up on it and confirmed its absence (see [`EventStoreDbStore::append`]) could
//! commit after its reservation was released: a window of milliseconds, not closed here.

use std::time::Duration;

use chrono::{DateTime, Utc};
use eventstore::{
    AppendToStreamOptions, EventData, ExpectedRevision as EsExpectedRevision, ReadStreamOptions,
    RecordedEvent as EsRecordedEvent, StreamPosition,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use events::store::{AppendRequest, StoreError, UniqueClaim};

use super::mapping::{into_event, recorded_at, store_error};
use super::EventStoreDbStore;

/// Streams holding uniqueness reservations start with this; `read_all` and `subscribe_all` skip
/// them and appends to such streams are refused.
pub(super) const RESERVATION_PREFIX: &str = "unique-";
pub(super) const CLAIM_RESERVED: &str = "ClaimReserved";
const CLAIM_RELEASED: &str = "ClaimReleased";
/// How often reserving or releasing one value re-reads after losing a race.
const RESERVATION_ATTEMPTS: usize = 5;
/// Pause before re-reading a reservation after losing a race, times the attempt number. The
/// server decides `WrongExpectedVersion` from its writer's view of the stream, which includes a
/// winning write that its read index has not committed yet; a re-read at once can still find the
/// old state (no stream, or the old revision) and lose again. A short wait lets the index catch
/// up, so the attempts are not used up within one such window (5 attempts: 150 ms at most).
const RESERVATION_BACKOFF: Duration = Duration::from_millis(10);
/// A reservation whose owner stream lacks the reserved-for event is presumed abandoned once it
/// is this old. Appends have a 10 s deadline in the client (`commands::new_request`), so by then
/// the owner's append has either landed or failed.
pub const STALE_RESERVATION_AGE: Duration = Duration::from_secs(60);

impl EventStoreDbStore {
    /// Step (1): reserves every claim (sorted, deduplicated) for `request.stream`. Returns the
    /// reservations this call made, so that a failed append can give them back.
    pub(super) async fn reserve_all(
        &self,
        request: &AppendRequest,
    ) -> Result<Vec<Reserved>, StoreError> {
        let mut claims: Vec<&UniqueClaim> = request.claims.iter().collect();
        claims.sort();
        claims.dedup();
        // Stored in the reservation so that a later claimer can tell an abandoned reservation
        // from one whose append went through; `append` guarantees there is a first event.
        let first_event_id = request
            .events
            .first()
            .map(|e| e.event_id)
            .unwrap_or_default();

        let mut made = Vec::new();
        for claim in claims {
            match self.reserve(claim, &request.stream, first_event_id).await {
                Ok(Some(reserved)) => made.push(reserved),
                Ok(None) => {}
                Err(error) => {
                    self.release_reserved(&request.stream, &made).await;
                    return Err(error);
                }
            }
        }
        Ok(made)
    }

    /// Reserves one value. `Ok(None)`: the stream already held it before this call.
    async fn reserve(
        &self,
        claim: &UniqueClaim,
        stream: &str,
        first_event_id: Uuid,
    ) -> Result<Option<Reserved>, StoreError> {
        let reservation = reservation_stream(claim);
        for attempt in 0..RESERVATION_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(RESERVATION_BACKOFF * attempt as u32).await;
            }
            let expected = match self.reservation_state(&reservation).await? {
                None => EsExpectedRevision::NoStream,
                Some((revision, ReservationState::Released)) => EsExpectedRevision::Exact(revision),
                // Staleness is checked for our own stream too: a reservation left by an earlier
                // append of this stream that never landed must be renewed with this append's
                // event id, or it would later look abandoned although the value is now used.
                Some((revision, ReservationState::Reserved(holder))) => {
                    if self.is_stale(&holder).await? {
                        tracing::warn!(
                            claim = %claim,
                            holder = %holder.data.stream,
                            "taking over an abandoned uniqueness reservation"
                        );
                        EsExpectedRevision::Exact(revision)
                    } else if holder.data.stream == stream {
                        return Ok(None);
                    } else {
                        return Err(StoreError::ClaimTaken {
                            claim: claim.clone(),
                        });
                    }
                }
            };
            let data = ReservationData {
                stream: stream.to_owned(),
                kind: claim.kind().to_owned(),
                value: claim.value().to_owned(),
                first_event_id: Some(first_event_id),
            };
            match self
                .append_marker(&reservation, expected, CLAIM_RESERVED, &data)
                .await
            {
                Ok(revision) => {
                    return Ok(Some(Reserved {
                        stream: reservation,
                        claim: claim.clone(),
                        revision,
                    }))
                }
                // Someone else reserved or released in between: look again.
                Err(eventstore::Error::WrongExpectedVersion { .. }) => continue,
                Err(error) => return Err(store_error(error)),
            }
        }
        Err(StoreError::Backend(
            format!("{claim}: reservation still contended after {RESERVATION_ATTEMPTS} attempts")
                .into(),
        ))
    }

    /// Whether a reservation was abandoned: old enough that its owner's append must have
    /// finished, and that append's first event is not in the owner's stream. Reservations that
    /// predate `first_event_id` (none exist yet) are never stale.
    async fn is_stale(&self, holder: &ReservationEvent) -> Result<bool, StoreError> {
        let Some(first_event_id) = holder.data.first_event_id else {
            return Ok(false);
        };
        let age = Utc::now().signed_duration_since(holder.recorded_at);
        if !age.to_std().is_ok_and(|age| age >= STALE_RESERVATION_AGE) {
            return Ok(false);
        }
        let owner_events = self.read_stream_raw(&holder.data.stream, 0).await?;
        Ok(!owner_events.iter().any(|e| e.id == first_event_id))
    }

    /// Gives back reservations this call made. Best effort: a failure is logged and leaves the
    /// reservation to become stale (see the module docs).
    pub(super) async fn release_reserved(&self, stream: &str, reserved: &[Reserved]) {
        for reservation in reserved {
            let data = ReservationData {
                stream: stream.to_owned(),
                kind: reservation.claim.kind().to_owned(),
                value: reservation.claim.value().to_owned(),
                first_event_id: None,
            };
            let expected = EsExpectedRevision::Exact(reservation.revision);
            if let Err(error) = self
                .append_marker(&reservation.stream, expected, CLAIM_RELEASED, &data)
                .await
            {
                tracing::warn!(
                    claim = %reservation.claim,
                    %error,
                    "could not give back a uniqueness reservation after a failed append"
                );
            }
        }
    }

    /// Step (3): releases the values `stream` gives up, where it is still the holder.
    pub(super) async fn release(
        &self,
        claim: &UniqueClaim,
        stream: &str,
    ) -> Result<(), StoreError> {
        let reservation = reservation_stream(claim);
        for attempt in 0..RESERVATION_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(RESERVATION_BACKOFF * attempt as u32).await;
            }
            let revision = match self.reservation_state(&reservation).await? {
                Some((revision, ReservationState::Reserved(holder)))
                    if holder.data.stream == stream =>
                {
                    revision
                }
                // Not ours (or not held at all): nothing to give up.
                _ => return Ok(()),
            };
            let data = ReservationData {
                stream: stream.to_owned(),
                kind: claim.kind().to_owned(),
                value: claim.value().to_owned(),
                first_event_id: None,
            };
            match self
                .append_marker(
                    &reservation,
                    EsExpectedRevision::Exact(revision),
                    CLAIM_RELEASED,
                    &data,
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(eventstore::Error::WrongExpectedVersion { .. }) => continue,
                Err(error) => return Err(store_error(error)),
            }
        }
        Err(StoreError::Backend(
            format!("{claim}: release still contended after {RESERVATION_ATTEMPTS} attempts")
                .into(),
        ))
    }

    /// The last event of a reservation stream and its revision; `None` when never reserved.
    async fn reservation_state(
        &self,
        reservation: &str,
    ) -> Result<Option<(u64, ReservationState)>, StoreError> {
        // `position(End)` also turns the read backwards (`ReadStreamOptions::position`).
        let options = ReadStreamOptions::default()
            .position(StreamPosition::End)
            .max_count(1);
        let Some(event) = first_event(self.client.read_stream(reservation, &options).await)
            .await
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        let state = match event.event_type.as_str() {
            CLAIM_RESERVED => ReservationState::Reserved(ReservationEvent {
                data: serde_json::from_slice(&event.data).map_err(StoreError::backend)?,
                recorded_at: recorded_at(&event),
            }),
            CLAIM_RELEASED => ReservationState::Released,
            other => {
                return Err(StoreError::Backend(
                    format!("unexpected event type {other:?} in reservation stream {reservation}")
                        .into(),
                ))
            }
        };
        Ok(Some((event.revision, state)))
    }

    /// Appends one reservation marker; the stream's new revision on success. The raw client
    /// error is returned so callers can tell a lost race from a failure.
    async fn append_marker(
        &self,
        reservation: &str,
        expected: EsExpectedRevision,
        event_type: &str,
        data: &ReservationData,
    ) -> Result<u64, eventstore::Error> {
        let event = EventData::json(event_type, data)
            .map_err(|e| eventstore::Error::InternalParsingError(e.to_string()))?
            .id(Uuid::now_v7());
        let options = AppendToStreamOptions::default().expected_revision(expected);
        let written = self
            .client
            .append_to_stream(reservation, &options, event)
            .await?;
        Ok(written.next_expected_version)
    }

    /// The holder per the reservation stream. A stale reservation (its owner never wrote the
    /// reserved-for event) holds nothing.
    pub(super) async fn reservation_holder(
        &self,
        claim: &UniqueClaim,
    ) -> Result<Option<String>, StoreError> {
        match self.reservation_state(&reservation_stream(claim)).await? {
            Some((_, ReservationState::Reserved(holder))) => {
                if self.is_stale(&holder).await? {
                    Ok(None)
                } else {
                    Ok(Some(holder.data.stream))
                }
            }
            Some((_, ReservationState::Released)) | None => Ok(None),
        }
    }
}

/// The ESDB stream holding the reservations of one value: `unique-<kind>-<value>`, both parts
/// escaped so that the name is unambiguous (`-` is escaped too) and free of characters that
/// ESDB tooling treats specially (such as `$`, `/` or whitespace).
pub fn reservation_stream(claim: &UniqueClaim) -> String {
    format!(
        "{RESERVATION_PREFIX}{}-{}",
        escape(claim.kind()),
        escape(claim.value())
    )
}

/// Keeps ASCII letters, digits, `_` and `.`; writes every other byte of the UTF-8 as `%XX`.
fn escape(part: &str) -> String {
    let mut escaped = String::with_capacity(part.len());
    for byte in part.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'.' {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    escaped
}

/// The first event of a read, treating an unknown stream as empty.
async fn first_event(
    read: eventstore::Result<eventstore::ReadStream>,
) -> eventstore::Result<Option<EsRecordedEvent>> {
    let mut read = match read {
        Ok(read) => read,
        Err(eventstore::Error::ResourceNotFound) => return Ok(None),
        Err(error) => return Err(error),
    };
    loop {
        match read.next().await {
            Ok(Some(resolved)) => {
                if let Some(event) = into_event(resolved) {
                    return Ok(Some(event));
                }
            }
            Ok(None) | Err(eventstore::Error::ResourceNotFound) => return Ok(None),
            Err(error) => return Err(error),
        }
    }
}

/// A reservation made by this append: where it is, and the revision it was written at.
pub(super) struct Reserved {
    stream: String,
    claim: UniqueClaim,
    revision: u64,
}

/// The payload of `ClaimReserved` and `ClaimReleased`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ReservationData {
    /// The stream that holds (or held) the value.
    stream: String,
    kind: String,
    value: String,
    /// `ClaimReserved` only: the first event of the append the value was reserved for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first_event_id: Option<Uuid>,
}

struct ReservationEvent {
    data: ReservationData,
    recorded_at: DateTime<Utc>,
}

enum ReservationState {
    Reserved(ReservationEvent),
    Released,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_stream_names_are_escaped_and_unambiguous() {
        let claim = UniqueClaim::new("username", "Bob-Smith/ÿ $x");
        assert_eq!(
            reservation_stream(&claim),
            "unique-username-bob%2Dsmith%2F%C3%BF%20%24x"
        );
        assert_ne!(
            reservation_stream(&UniqueClaim::new("a-b", "c")),
            reservation_stream(&UniqueClaim::new("a", "b-c"))
        );
    }

    #[test]
    fn reservation_payload_round_trips() -> Result<(), serde_json::Error> {
        let data = ReservationData {
            stream: "user-1".into(),
            kind: "username".into(),
            value: "bob".into(),
            first_event_id: Some(Uuid::nil()),
        };
        let json = serde_json::to_vec(&data)?;
        assert_eq!(serde_json::from_slice::<ReservationData>(&json)?, data);
        let released: ReservationData =
            serde_json::from_str(r#"{"stream":"user-1","kind":"username","value":"bob"}"#)?;
        assert_eq!(released.first_event_id, None);
        Ok(())
    }
}
