//! The EventStoreDB event store, on the official gRPC client (`eventstore` 4).
//!
//! # Mapping
//! - Our stream is an ESDB stream of the same name; our revision is the ESDB stream revision
//!   (both count from 0); our [`Position`] is the ESDB `$all` position `(commit, prepare)`.
//! - Our `event_id` is the ESDB event id, `data` the JSON payload, `metadata` the JSON custom
//!   metadata, and `recorded_at` the server's `created` stamp.
//! - The global log is `$all` without what ESDB writes for itself (streams or event types
//!   starting with `$`) and without the reservation streams described below.
//!
//! # Uniqueness claims
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
//!
//! # TLS crypto provider
//! `eventstore` 4 installs rustls' aws-lc-rs provider as the process default itself, once, when
//! its first connection task starts, and *panics in that background task* if another provider
//! was installed first (`install_default().expect(..)` in its `grpc.rs`). So this module must
//! not install one, and nothing else in the process should either; [`EventStoreDbStore::connect`]
//! checks the connection so that such a panic shows up as an error instead of a silent hang.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use eventstore::{
    AppendToStreamOptions, Client, ClientSettings, CurrentRevision, EventData,
    ExpectedRevision as EsExpectedRevision, Position as EsPosition, ReadAllOptions,
    ReadStreamOptions, RecordedEvent as EsRecordedEvent, ResolvedEvent, StreamPosition,
    SubscribeToAllOptions, Subscription, SubscriptionFilter,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use events::store::{
    AppendRequest, AppendResult, EventStore, EventStream, ExpectedRevision, NewEvent, Position,
    RecordedEvent, StoreError, UniqueClaim,
};

/// Streams holding uniqueness reservations start with this; `read_all` and `subscribe_all` skip
/// them and appends to such streams are refused.
const RESERVATION_PREFIX: &str = "unique-";
const CLAIM_RESERVED: &str = "ClaimReserved";
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
/// Events `read_all` asks for per round trip at least / at most: it filters ESDB's own events
/// out client-side, so it may need several batches to fill `limit`.
const READ_ALL_MIN_BATCH: usize = 256;
const READ_ALL_MAX_BATCH: usize = 4_096;
/// Pause before a subscription that failed subscribes again.
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(500);

/// The [`EventStore`] on EventStoreDB. Cheap to clone: clones share the client's connection.
#[derive(Clone)]
pub struct EventStoreDbStore {
    client: Client,
}

impl EventStoreDbStore {
    /// Connects with an `esdb://` / `esdb+discover://` connection string and checks that the
    /// server answers, so a wrong URL fails at start-up rather than on the first command.
    ///
    /// Reading `$all` needs a user allowed to (by default `$admins` / `$ops`), e.g.
    /// `esdb://admin:changeit@localhost:2113?tls=false`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let settings: ClientSettings = url.parse().map_err(StoreError::backend)?;
        // `Client::new` takes the current tokio runtime handle: it must run inside a runtime,
        // which an async fn guarantees.
        let client = Client::new(settings).map_err(StoreError::backend)?;
        match client.server_info().await {
            Ok(_) => Ok(Self::from_client(client)),
            Err(eventstore::Error::ConnectionClosed) => Err(StoreError::Backend(
                "the EventStoreDB connection task stopped; if a rustls CryptoProvider was \
                 installed before the first EventStoreDB client, eventstore 4 panics there"
                    .into(),
            )),
            Err(error) => Err(StoreError::backend(error)),
        }
    }

    /// Wraps an existing client (no connection check).
    pub fn from_client(client: Client) -> Self {
        Self { client }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Step (1): reserves every claim (sorted, deduplicated) for `request.stream`. Returns the
    /// reservations this call made, so that a failed append can give them back.
    async fn reserve_all(&self, request: &AppendRequest) -> Result<Vec<Reserved>, StoreError> {
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
                Err(error) => return Err(StoreError::backend(error)),
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
    async fn release_reserved(&self, stream: &str, reserved: &[Reserved]) {
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
    async fn release(&self, claim: &UniqueClaim, stream: &str) -> Result<(), StoreError> {
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
                Err(error) => return Err(StoreError::backend(error)),
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
            .map_err(StoreError::backend)?
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

    /// A stream's events as the client returns them; an unknown stream is empty.
    async fn read_stream_raw(
        &self,
        stream: &str,
        from_revision: u64,
    ) -> Result<Vec<EsRecordedEvent>, StoreError> {
        let options = ReadStreamOptions::default()
            .forwards()
            .position(StreamPosition::Position(from_revision));
        let mut events = Vec::new();
        let mut read = match self.client.read_stream(stream, &options).await {
            Ok(read) => read,
            Err(eventstore::Error::ResourceNotFound) => return Ok(events),
            Err(error) => return Err(StoreError::backend(error)),
        };
        loop {
            match read.next().await {
                Ok(Some(resolved)) => events.extend(into_event(resolved)),
                Ok(None) => return Ok(events),
                // The server answers a read of an unknown stream with `StreamNotFound`, which
                // `ReadStream::next_read_event` turns into this error.
                Err(eventstore::Error::ResourceNotFound) => return Ok(events),
                Err(error) => return Err(StoreError::backend(error)),
            }
        }
    }

    /// Step (2) and what follows it: appends the events, then reads them back for their
    /// positions.
    async fn append_events(&self, request: &AppendRequest) -> Result<AppendResult, AppendFailure> {
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
            Err(error) => return Err(AppendFailure::Unknown(StoreError::backend(error))),
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
    async fn was_written(&self, request: &AppendRequest) -> Result<bool, StoreError> {
        let Some(first) = request.events.first() else {
            return Ok(false);
        };
        let events = self.read_stream_raw(&request.stream, 0).await?;
        Ok(events.iter().any(|e| e.id == first.event_id))
    }
}

#[async_trait]
impl EventStore for EventStoreDbStore {
    /// Reserves the claims, appends, then applies the releases (see the module docs).
    ///
    /// When the events append fails, the reservations this call made are given back, except
    /// when the failure leaves open whether the events were written (a timeout, a dropped
    /// connection) and reading the stream back does not prove they were not: then they are kept,
    /// because releasing a value whose claiming event did commit would break uniqueness, while a
    /// kept reservation only blocks the value until it is found stale. The original error is
    /// returned either way. A release that fails after a successful append is logged and does
    /// not fail the append, which has happened.
    #[tracing::instrument(skip_all, fields(stream = %request.stream, events = request.events.len()))]
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        validate(&request)?;
        let reserved = self.reserve_all(&request).await?;

        let result = match self.append_events(&request).await {
            Ok(result) => result,
            Err(AppendFailure::NotWritten(error)) => {
                self.release_reserved(&request.stream, &reserved).await;
                return Err(error);
            }
            Err(AppendFailure::Unknown(error)) => {
                if !reserved.is_empty() {
                    match self.was_written(&request).await {
                        Ok(false) => self.release_reserved(&request.stream, &reserved).await,
                        Ok(true) | Err(_) => tracing::warn!(
                            %error,
                            "append outcome unknown; keeping its uniqueness reservations"
                        ),
                    }
                }
                return Err(error);
            }
        };

        let mut releases: Vec<&UniqueClaim> = request.releases.iter().collect();
        releases.sort();
        releases.dedup();
        for claim in releases {
            if let Err(error) = self.release(claim, &request.stream).await {
                tracing::warn!(claim = %claim, %error, "could not release a uniqueness claim");
            }
        }
        Ok(result)
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_revision: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream_raw(stream, from_revision)
            .await?
            .iter()
            .map(to_recorded)
            .collect()
    }

    /// Reads `$all` in batches, dropping ESDB's own events and the reservation streams, until
    /// `limit` of our events are found or the log ends.
    ///
    /// ESDB's read from a position includes the event at that position, so events at or before
    /// `after` are skipped. `$all` is in commit order and a read only sees committed events, so
    /// nothing can later commit below what is returned.
    async fn read_all(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut found = Vec::new();
        if limit == 0 {
            return Ok(found);
        }
        let batch = limit
            .saturating_add(1)
            .clamp(READ_ALL_MIN_BATCH, READ_ALL_MAX_BATCH);
        let mut bound = after.map(to_es_position);
        loop {
            let start = bound.map_or(StreamPosition::Start, StreamPosition::Position);
            let options = ReadAllOptions::default()
                .forwards()
                .position(start)
                .max_count(batch);
            let mut read = self
                .client
                .read_all(&options)
                .await
                .map_err(StoreError::backend)?;
            let mut seen = 0usize;
            let mut last = bound;
            while let Some(resolved) = read.next().await.map_err(StoreError::backend)? {
                seen += 1;
                let Some(event) = into_event(resolved) else {
                    continue;
                };
                if bound.is_some_and(|bound| event.position <= bound) {
                    continue;
                }
                last = Some(event.position);
                if !is_ours(&event) {
                    continue;
                }
                found.push(to_recorded(&event)?);
                if found.len() == limit {
                    return Ok(found);
                }
            }
            // A short batch is the end of the log; a batch that did not move cannot be
            // continued (it would be read again).
            if seen < batch || last == bound {
                return Ok(found);
            }
            bound = last;
        }
    }

    /// The holder per the reservation stream. A stale reservation (its owner never wrote the
    /// reserved-for event) holds nothing.
    async fn claim_holder(&self, claim: &UniqueClaim) -> Result<Option<String>, StoreError> {
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

    /// A filtered catch-up subscription to `$all`: the server sends stored events after `after`
    /// and then live ones. The server-side filter drops event types starting with `$`; the rest
    /// (system streams, reservation streams, events at or before `after`) is dropped here.
    /// After an error the stream yields it and then subscribes again from the last event it saw.
    fn subscribe_all(&self, after: Option<Position>) -> EventStream {
        let state = Following {
            client: self.client.clone(),
            after: after.map(to_es_position),
            subscription: None,
            failed: false,
        };
        futures::stream::unfold(state, |mut state| async move {
            let item = state.next().await;
            Some((item, state))
        })
        .boxed()
    }
}

/// The state of [`EventStoreDbStore::subscribe_all`].
struct Following {
    client: Client,
    /// The last `$all` position seen (ours or not): where a new subscription resumes.
    after: Option<EsPosition>,
    subscription: Option<Subscription>,
    failed: bool,
}

impl Following {
    async fn next(&mut self) -> Result<RecordedEvent, StoreError> {
        loop {
            if self.subscription.is_none() {
                if self.failed {
                    tokio::time::sleep(RESUBSCRIBE_DELAY).await;
                }
                // Subscribing from a position is exclusive on the server; the check below makes
                // sure of it either way.
                let start = self
                    .after
                    .map_or(StreamPosition::Start, StreamPosition::Position);
                let options = SubscribeToAllOptions::default()
                    .position(start)
                    .filter(SubscriptionFilter::on_event_type().exclude_system_events());
                self.subscription = Some(self.client.subscribe_to_all(&options).await);
            }
            let Some(subscription) = self.subscription.as_mut() else {
                continue;
            };
            match subscription.next().await {
                Ok(resolved) => {
                    self.failed = false;
                    let Some(event) = into_event(resolved) else {
                        continue;
                    };
                    if self.after.is_some_and(|after| event.position <= after) {
                        continue;
                    }
                    self.after = Some(event.position);
                    if is_ours(&event) {
                        return to_recorded(&event);
                    }
                }
                Err(error) => {
                    // The client's `Subscription` without retry options gives up after an
                    // error; start a new one on the next poll.
                    self.subscription = None;
                    self.failed = true;
                    return Err(StoreError::backend(error));
                }
            }
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

/// What makes an append impossible here, checked before anything is written.
fn validate(request: &AppendRequest) -> Result<(), StoreError> {
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

/// Whether an `$all` event belongs to the domain log.
fn is_ours(event: &EsRecordedEvent) -> bool {
    !event.stream_id.starts_with('$')
        && !event.event_type.starts_with('$')
        && !event.stream_id.starts_with(RESERVATION_PREFIX)
}

/// The event of a read result. Links are not resolved (the default options), so `event` is the
/// record itself; `link` is a fallback that `ResolvedEvent::get_original_event` would also use,
/// without its panic when both are missing.
fn into_event(resolved: ResolvedEvent) -> Option<EsRecordedEvent> {
    resolved.event.or(resolved.link)
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

fn to_event_data(event: &NewEvent) -> Result<EventData, StoreError> {
    let invalid = |e: serde_json::Error| StoreError::InvalidAppend(e.to_string());
    Ok(EventData::json(&event.event_type, &event.data)
        .map_err(invalid)?
        .metadata_as_json(&event.metadata)
        .map_err(invalid)?
        .id(event.event_id))
}

fn to_recorded(event: &EsRecordedEvent) -> Result<RecordedEvent, StoreError> {
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
fn recorded_at(event: &EsRecordedEvent) -> DateTime<Utc> {
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

fn to_es_expected(expected: ExpectedRevision) -> EsExpectedRevision {
    match expected {
        ExpectedRevision::Any => EsExpectedRevision::Any,
        ExpectedRevision::NoStream => EsExpectedRevision::NoStream,
        ExpectedRevision::Exact(revision) => EsExpectedRevision::Exact(revision),
    }
}

fn from_es_position(position: EsPosition) -> Position {
    Position::new(position.commit, position.prepare)
}

fn to_es_position(position: Position) -> EsPosition {
    EsPosition {
        commit: position.commit,
        prepare: position.prepare,
    }
}

/// Why the events append failed, as far as the reservations are concerned.
enum AppendFailure {
    /// Certainly not written (a wrong expected revision, an event that cannot be encoded).
    NotWritten(StoreError),
    /// Maybe written: the server's answer was lost or was an error of unknown effect.
    Unknown(StoreError),
}

/// A reservation made by this append: where it is, and the revision it was written at.
struct Reserved {
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
    use std::collections::HashMap;

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
