//! Step (2) of an append: the events themselves, at the expected revision, and their `$all`
//! positions read back; and, after a failure of unknown effect, whether they were written.

use eventstore::{
    AppendToStreamOptions, CurrentRevision, Position as EsPosition, ReadStreamOptions,
    StreamPosition,
};

use events::store::{AppendRequest, AppendResult, Position, StoreError};

use super::mapping::{from_es_position, into_event, store_error, to_es_expected, to_event_data};
use super::reservations::RESERVATION_PREFIX;
use super::EventStoreDbStore;

impl EventStoreDbStore {
    /// Step (2) and what follows it: appends the events, then reads them back for their
    /// positions.
    pub(super) async fn append_events(
        &self,
        request: &AppendRequest,
    ) -> Result<AppendResult, AppendFailure> {
        let events = request
            .events
            .iter()
            .map(to_event_data)
            .collect::<Result<Vec<_>, _>>()
            .map_err(AppendFailure::NotWritten)?;
        let options =
            AppendToStreamOptions::default().expected_revision(to_es_expected(request.expected));
        let written = match self
            .client
            .append_to_stream(request.stream.as_str(), &options, events)
            .await
        {
            Ok(written) => written,
            Err(eventstore::Error::WrongExpectedVersion { current, .. }) => {
                return Err(AppendFailure::NotWritten(
                    StoreError::WrongExpectedRevision {
                        stream: request.stream.clone(),
                        expected: request.expected,
                        actual: match current {
                            CurrentRevision::Current(revision) => Some(revision),
                            CurrentRevision::NoStream => None,
                        },
                    },
                ))
            }
            Err(error) => return Err(AppendFailure::Unknown(store_error(error))),
        };

        // `WriteResult::next_expected_version` is, despite its name, the stream's revision
        // after the write: the server's `current_revision` (see `From<append_resp::Success>`
        // in the client's `event_store/generated.rs`).
        let revision = written.next_expected_version;
        let count = request.events.len() as u64;
        let first_revision = revision.saturating_sub(count.saturating_sub(1));
        let write_position = from_es_position(written.position);
        let (first_position, position) =
            match self.appended_positions(request, first_revision).await {
                Some(positions) => positions,
                None => (write_position, write_position),
            };
        Ok(AppendResult {
            revision,
            first_position,
            position,
        })
    }

    /// The `$all` positions of the first and last events just appended, read back from the
    /// stream. `None` when they cannot be read or the server does not fill positions on stream
    /// reads; the caller then falls back to the write's position.
    async fn appended_positions(
        &self,
        request: &AppendRequest,
        first_revision: u64,
    ) -> Option<(Position, Position)> {
        let options = ReadStreamOptions::default()
            .forwards()
            .position(StreamPosition::Position(first_revision))
            .max_count(request.events.len());
        let mut read = self
            .client
            .read_stream(request.stream.as_str(), &options)
            .await
            .ok()?;
        let mut positions = Vec::with_capacity(request.events.len());
        while let Ok(Some(resolved)) = read.next().await {
            positions.extend(into_event(resolved).map(|e| (e.id, e.position)));
        }
        let ids_match = positions.len() == request.events.len()
            && positions
                .iter()
                .zip(&request.events)
                .all(|((id, _), event)| *id == event.event_id);
        // The server fills a stream read's positions only for events it knows the commit of
        // (every event of a plain append is "self-committed" and reads as `(log, log)`); an
        // unknown part is sent as `u64::MAX` (`Position.FromInt64(-1, ..)` in its gRPC layer),
        // an absent one reads as 0. Either would make a wrong consistency token.
        let populated = positions.iter().all(|(_, p)| {
            *p != EsPosition::start() && p.commit != u64::MAX && p.prepare != u64::MAX
        });
        match (positions.first(), positions.last()) {
            (Some((_, first)), Some((_, last))) if ids_match && populated => {
                Some((from_es_position(*first), from_es_position(*last)))
            }
            _ => None,
        }
    }

    /// Whether the first event of `request` is in its stream: decides, after an append failed
    /// in a way that does not say whether it was written, if the reservations can be given back.
    pub(super) async fn was_written(&self, request: &AppendRequest) -> Result<bool, StoreError> {
        let Some(first) = request.events.first() else {
            return Ok(false);
        };
        let events = self.read_stream_raw(&request.stream, 0).await?;
        Ok(events.iter().any(|e| e.id == first.event_id))
    }
}

/// What makes an append impossible here, checked before anything is written.
pub(super) fn validate(request: &AppendRequest) -> Result<(), StoreError> {
    if request.events.is_empty() {
        return Err(StoreError::InvalidAppend(
            "an append needs at least one event".into(),
        ));
    }
    if request.stream.is_empty()
        || request.stream.starts_with('$')
        || request.stream.starts_with(RESERVATION_PREFIX)
    {
        return Err(StoreError::InvalidAppend(format!(
            "stream name {:?} is empty or reserved (`$…`, `{RESERVATION_PREFIX}…`)",
            request.stream
        )));
    }
    Ok(())
}

/// Why the events append failed, as far as the reservations are concerned.
pub(super) enum AppendFailure {
    /// Certainly not written (a wrong expected revision, an event that cannot be encoded).
    NotWritten(StoreError),
    /// Maybe written: the server's answer was lost or was an error of unknown effect.
    Unknown(StoreError),
}

#[cfg(test)]
mod tests {
    use events::store::{ExpectedRevision, NewEvent};
    use uuid::Uuid;

    use super::*;

    #[test]
    fn empty_appends_and_reserved_streams_are_refused() {
        let event = NewEvent {
            event_id: Uuid::nil(),
            event_type: "E".into(),
            data: serde_json::Value::Null,
            metadata: serde_json::Value::Null,
        };
        let ok = AppendRequest::new("user-1", ExpectedRevision::Any, vec![event.clone()]);
        assert!(validate(&ok).is_ok());
        for request in [
            AppendRequest::new("user-1", ExpectedRevision::Any, vec![]),
            AppendRequest::new("$user-1", ExpectedRevision::Any, vec![event.clone()]),
            AppendRequest::new("unique-x-y", ExpectedRevision::Any, vec![event]),
        ] {
            assert!(matches!(
                validate(&request),
                Err(StoreError::InvalidAppend(_))
            ));
        }
    }
}
