//! A cache of the ends of streams for the write side: what the pipeline reads after the state
//! its turn keeps (or all of a short stream), and what writes answer from after the user
//! object they answered last. Only each stream's last [`TAIL_EVENTS`] events are kept, and at
//! most [`MAX_EVENTS`] in all, so a stream that grows by thousands of events a second costs
//! the same memory as a quiet one; a reader that needs more reads the store.
//!
//! Every command loads its stream, decides, and appends at the revision it loaded. A stale
//! cached stream is therefore safe for decisions: the append then fails on its expected
//! revision, the entry is dropped, and the pipeline reloads from the store. Appends made
//! through this cache extend the cached tail, so in one process the cache is always current;
//! writes from other processes are seen on the next conflict or after [`STREAM_CACHE_TTL`],
//! when only the events after the cached ones are read.
//!
//! Reads that must see other processes' writes at once (revocation checks, sign-in) use the
//! store directly (`AppState::log`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use events::sign_in::SignIns;
use events::store::{
    AppendRequest, AppendResult, EventStore, EventStream, NewEvent, Position, RecordedEvent,
    StoreError, UniqueClaim,
};
use events::user::User;
use events::values::UserId;
use events::Aggregate;

/// How long a cached stream is trusted without a conflict to say otherwise.
pub const STREAM_CACHE_TTL: Duration = Duration::from_secs(30);
/// How many of a stream's last events are kept: what readers that know the state before them
/// (a snapshot, a user object) read, and all of a short stream.
const TAIL_EVENTS: usize = 32;
/// Events kept at most, over all streams (about 3 KB each in memory, so about 300 MB).
const MAX_EVENTS: usize = 100_000;
/// Streams kept at most (an empty one holds no event).
const MAX_STREAMS: usize = 100_000;

/// The end of one stream as last read or appended.
struct Tail {
    /// The stream's last events, in order: all of them while it is short.
    events: VecDeque<RecordedEvent>,
    /// The revision after the last event: the stream's length.
    next_revision: u64,
    loaded_at: Instant,
}

impl Tail {
    /// The tail of a stream read from `from` on (`events`). When none are read, it holds what
    /// is known: nothing from `from` on (readers ask after a revision they know to be there,
    /// so that is the stream's end; an empty tail never answers what the last event is).
    fn read(from: u64, events: &[RecordedEvent], loaded_at: Instant) -> Self {
        let skip = events.len().saturating_sub(TAIL_EVENTS);
        Self {
            events: events[skip..].iter().cloned().collect(),
            next_revision: events.last().map_or(from, |last| last.revision + 1),
            loaded_at,
        }
    }

    fn first_revision(&self) -> u64 {
        self.next_revision - self.events.len() as u64
    }

    /// The events from `from` on, when the tail holds all of them.
    fn from(&self, from: u64) -> Option<Vec<RecordedEvent>> {
        let skip = from.checked_sub(self.first_revision())?;
        Some(self.events.iter().skip(skip as usize).cloned().collect())
    }

    fn fresh(&self, ttl: Duration) -> bool {
        self.loaded_at.elapsed() < ttl
    }

    /// Adds the events that follow the tail, dropping what falls out of it; how many events it
    /// holds more (or fewer) than before.
    fn push(&mut self, events: impl IntoIterator<Item = RecordedEvent>) -> isize {
        let before = self.events.len();
        for event in events {
            self.next_revision = event.revision + 1;
            self.events.push_back(event);
            if self.events.len() > TAIL_EVENTS {
                self.events.pop_front();
            }
        }
        self.events.len() as isize - before as isize
    }
}

/// The cached tails, and how many events they hold together.
#[derive(Default)]
struct Tails {
    streams: HashMap<String, Tail>,
    events: usize,
}

impl Tails {
    /// Caches `tail` as `stream`'s; what that pushes out is returned, to [`discard`].
    #[must_use]
    fn insert(&mut self, stream: &str, tail: Tail) -> Vec<Tail> {
        // A concurrent read or append may have brought the stream further along already.
        if let Some(known) = self.streams.get(stream) {
            if known.next_revision > tail.next_revision {
                return Vec::new();
            }
        }
        self.remove(stream);
        self.events += tail.events.len();
        self.streams.insert(stream.to_owned(), tail);
        self.bound()
    }

    /// Past either bound, takes out about half the streams (in the map's arbitrary order), to
    /// [`discard`]: a dropped stream costs its next reader one read, and no moment costs all of
    /// them one.
    #[must_use]
    fn bound(&mut self) -> Vec<Tail> {
        if self.streams.len() <= MAX_STREAMS && self.events <= MAX_EVENTS {
            return Vec::new();
        }
        let mut keep = false;
        let evicted: Vec<Tail> = self
            .streams
            .extract_if(|_, _| {
                keep = !keep;
                !keep
            })
            .map(|(_, tail)| tail)
            .collect();
        self.events -= evicted.iter().map(|tail| tail.events.len()).sum::<usize>();
        evicted
    }

    fn remove(&mut self, stream: &str) {
        if let Some(tail) = self.streams.remove(stream) {
            self.events -= tail.events.len();
        }
    }
}

/// Frees evicted tails away from the threads that serve requests, after the lock is released:
/// half the cache is tens of thousands of events, milliseconds to free, which every request
/// behind the lock or on the same worker would wait for.
fn discard(evicted: Vec<Tail>) {
    if evicted.is_empty() {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn_blocking(move || drop(evicted))),
        Err(_) => drop(evicted),
    }
}

pub struct StreamCache {
    store: Arc<dyn EventStore>,
    tails: Mutex<Tails>,
    ttl: Duration,
}

impl StreamCache {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            store,
            tails: Mutex::new(Tails::default()),
            ttl: STREAM_CACHE_TTL,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tails> {
        self.tails
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The events an append to a cached stream will add to it, when the append succeeds;
    /// `None` when there is nothing to extend (the entry is then dropped).
    fn pending(&self, request: &AppendRequest) -> Option<Vec<NewEvent>> {
        self.lock()
            .streams
            .contains_key(&request.stream)
            .then(|| request.events.clone())
    }

    /// The cached stream extended by a successful append of `recorded` (its events as
    /// recorded, opened), when the cache held exactly the revision the append was made on;
    /// otherwise (or without them) the entry is dropped and the next read reloads.
    fn extend(&self, stream: &str, recorded: Option<Vec<RecordedEvent>>, result: &AppendResult) {
        let mut tails = self.lock();
        let Some(tail) = tails.streams.get_mut(stream) else {
            return;
        };
        let Some(recorded) = recorded
            .filter(|events| tail.next_revision + events.len() as u64 == result.revision + 1)
        else {
            tails.remove(stream);
            return;
        };
        let added = tail.push(recorded);
        tails.events = tails.events.saturating_add_signed(added);
        let evicted = tails.bound();
        drop(tails);
        discard(evicted);
    }

    /// The events of a successful append as readers of the store see them: recorded (when
    /// the store tells each one's position) and opened.
    async fn recorded(
        &self,
        stream: &str,
        events: Vec<NewEvent>,
        result: &AppendResult,
    ) -> Option<Vec<RecordedEvent>> {
        let count = events.len() as u64;
        let positions = positions(result, count)?;
        let recorded_at = chrono::Utc::now();
        let first_revision = (result.revision + 1).checked_sub(count)?;
        let mut recorded: Vec<RecordedEvent> = events
            .into_iter()
            .zip(positions)
            .zip(first_revision..)
            .map(|((event, position), revision)| RecordedEvent {
                stream: stream.to_owned(),
                revision,
                position,
                event_id: event.event_id,
                event_type: event.event_type,
                data: event.data,
                metadata: event.metadata,
                recorded_at,
            })
            .collect();
        self.store.open(&mut recorded).await.ok()?;
        Some(recorded)
    }

    /// The events of `stream` from `from` on: from the cached tail while it is fresh and holds
    /// them; a stale tail that holds them is brought up to date by reading only the events
    /// after it (the log is append-only, so what was read stays true); otherwise they are read
    /// from the store, and their tail cached.
    async fn events_from(&self, stream: &str, from: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        let stale = {
            let tails = self.lock();
            match tails.streams.get(stream) {
                Some(tail) if tail.first_revision() <= from => {
                    if tail.fresh(self.ttl) {
                        return Ok(tail.from(from).unwrap_or_default());
                    }
                    Some((tail.first_revision(), Vec::from(tail.events.clone())))
                }
                _ => None,
            }
        };
        let loaded_at = Instant::now();
        let (first, mut events) = stale.unwrap_or((from, Vec::new()));
        let next = first + events.len() as u64;
        events.extend(self.store.read_stream(stream, next).await?);
        let evicted = self
            .lock()
            .insert(stream, Tail::read(first, &events, loaded_at));
        discard(evicted);
        events.retain(|event| event.revision >= from);
        Ok(events)
    }
}

/// The positions of an append's `count` events: known when there is one, or when the store
/// numbers them one after another (PostgreSQL does; EventStoreDB's positions are byte offsets,
/// and only the first and the last are told).
fn positions(result: &AppendResult, count: u64) -> Option<Vec<Position>> {
    let (first, last) = (result.first_position, result.position);
    let consecutive = last.commit.checked_sub(first.commit) == Some(count.checked_sub(1)?)
        && last.prepare.checked_sub(first.prepare) == Some(count - 1);
    match count {
        1 => Some(vec![last]),
        _ if consecutive => Some(
            (0..count)
                .map(|i| Position::new(first.commit + i, first.prepare + i))
                .collect(),
        ),
        _ => None,
    }
}

#[async_trait]
impl EventStore for StreamCache {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        // The request goes to the store whole; only what the cache will keep is copied.
        let stream = request.stream.clone();
        let events = self.pending(&request);
        match self.store.append(request).await {
            Ok(result) => {
                let recorded = match events {
                    Some(events) => self.recorded(&stream, events, &result).await,
                    None => None,
                };
                self.extend(&stream, recorded, &result);
                Ok(result)
            }
            Err(error) => {
                // A conflict means the cached stream is behind; anything else leaves it unsure.
                self.lock().remove(&stream);
                Err(error)
            }
        }
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_revision: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.events_from(stream, from_revision).await
    }

    async fn settled(&self, position: Position) -> Result<(), StoreError> {
        self.store.settled(position).await
    }

    async fn seal(&self, stream: &str, events: &mut [NewEvent]) -> Result<(), StoreError> {
        self.store.seal(stream, events).await
    }

    async fn open(&self, events: &mut [RecordedEvent]) -> Result<(), StoreError> {
        self.store.open(events).await
    }

    async fn in_the_clear(&self, stream: &str) -> Result<Vec<&'static str>, StoreError> {
        self.store.in_the_clear(stream).await
    }

    /// Also forgets the person's streams: their tails hold what was read of them, opened.
    async fn shred_key(&self, owner: UserId) -> Result<(), StoreError> {
        self.store.shred_key(owner).await?;
        let mut tails = self.lock();
        tails.remove(&User::stream_name(owner));
        tails.remove(&SignIns::stream_name(&owner));
        Ok(())
    }

    async fn last_event(&self, stream: &str) -> Result<Option<RecordedEvent>, StoreError> {
        // A stream read only for its end is not worth caching.
        let cached = {
            let tails = self.lock();
            tails
                .streams
                .get(stream)
                .filter(|tail| tail.fresh(self.ttl))
                .filter(|tail| !tail.events.is_empty() || tail.next_revision == 0)
                .map(|tail| tail.events.back().cloned())
        };
        match cached {
            Some(last) => Ok(last),
            None => self.store.last_event(stream).await,
        }
    }

    async fn read_all(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.store.read_all(after, limit).await
    }

    async fn claim_holder(&self, claim: &UniqueClaim) -> Result<Option<String>, StoreError> {
        self.store.claim_holder(claim).await
    }

    async fn read_claimed_stream(
        &self,
        claim: &UniqueClaim,
    ) -> Result<Option<(String, Vec<RecordedEvent>)>, StoreError> {
        self.store.read_claimed_stream(claim).await
    }

    fn subscribe_all(&self, after: Option<Position>) -> EventStream {
        self.store.subscribe_all(after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn appended(first: (u64, u64), last: (u64, u64)) -> AppendResult {
        AppendResult {
            revision: 9,
            first_position: Position::new(first.0, first.1),
            position: Position::new(last.0, last.1),
        }
    }

    #[test]
    fn positions_are_told_only_when_the_store_numbers_events_one_after_another() {
        let one = appended((7, 7), (7, 7));
        assert_eq!(positions(&one, 1), Some(vec![Position::new(7, 7)]));
        let consecutive = appended((7, 7), (9, 9));
        assert_eq!(
            positions(&consecutive, 3),
            Some((7..=9).map(|p| Position::new(p, p)).collect())
        );
        // EventStoreDB's byte offsets: only the first and the last are known.
        assert_eq!(positions(&appended((100, 90), (900, 890)), 3), None);
        assert_eq!(positions(&consecutive, 0), None);
    }

    fn recorded(revisions: std::ops::Range<u64>) -> Vec<RecordedEvent> {
        revisions
            .map(|revision| RecordedEvent {
                stream: "user-1".into(),
                revision,
                position: Position::at(revision + 1),
                event_id: uuid::Uuid::now_v7(),
                event_type: "UserBanned".into(),
                data: serde_json::json!({}),
                metadata: serde_json::json!({}),
                recorded_at: chrono::Utc::now(),
            })
            .collect()
    }

    fn revisions(events: &[RecordedEvent]) -> Vec<u64> {
        events.iter().map(|event| event.revision).collect()
    }

    #[test]
    fn a_tail_keeps_the_last_events_and_answers_only_what_it_holds() {
        let long = TAIL_EVENTS as u64 + 8;
        let mut tail = Tail::read(0, &recorded(0..long), Instant::now());
        assert_eq!(tail.events.len(), TAIL_EVENTS);
        assert_eq!((tail.first_revision(), tail.next_revision), (8, long));
        assert!(tail.from(7).is_none(), "revision 7 fell out of the tail");
        assert_eq!(
            revisions(&tail.from(long - 2).unwrap()),
            [long - 2, long - 1]
        );
        assert!(tail.from(long).unwrap().is_empty());

        assert_eq!(tail.push(recorded(long..long + 3)), 0);
        assert_eq!((tail.first_revision(), tail.next_revision), (11, long + 3));

        let short = Tail::read(0, &recorded(0..3), Instant::now());
        assert_eq!(revisions(&short.from(0).unwrap()), [0, 1, 2]);
        // Nothing read after a revision: nothing is there.
        let up_to_date = Tail::read(5, &[], Instant::now());
        assert_eq!(up_to_date.next_revision, 5);
        assert!(up_to_date.from(5).unwrap().is_empty());
        assert!(up_to_date.from(4).is_none());
    }

    #[test]
    fn past_the_bound_half_the_streams_are_handed_out_and_uncounted() {
        let mut tails = Tails::default();
        let mut evicted = Vec::new();
        let per_stream = TAIL_EVENTS as u64;
        for n in 0..=(MAX_EVENTS / TAIL_EVENTS) {
            let tail = Tail::read(0, &recorded(0..per_stream), Instant::now());
            evicted.extend(tails.insert(&format!("user-{n}"), tail));
        }
        let streams = MAX_EVENTS / TAIL_EVENTS + 1;
        assert_eq!(evicted.len(), streams / 2);
        assert_eq!(tails.streams.len(), streams - streams / 2);
        assert_eq!(tails.events, tails.streams.len() * TAIL_EVENTS);
    }

    #[test]
    fn the_tails_count_their_events_and_never_go_back() {
        let mut tails = Tails::default();
        assert!(tails
            .insert("user-1", Tail::read(0, &recorded(0..5), Instant::now()))
            .is_empty());
        assert!(tails
            .insert("user-2", Tail::read(0, &recorded(0..3), Instant::now()))
            .is_empty());
        assert_eq!(tails.events, 8);
        // A read that finished after an append had extended the stream further is not kept.
        assert!(tails
            .insert("user-1", Tail::read(0, &recorded(0..4), Instant::now()))
            .is_empty());
        assert_eq!(tails.streams["user-1"].next_revision, 5);
        assert!(tails
            .insert("user-1", Tail::read(0, &recorded(0..6), Instant::now()))
            .is_empty());
        assert_eq!(
            (tails.streams["user-1"].next_revision, tails.events),
            (6, 9)
        );
        tails.remove("user-2");
        assert_eq!(tails.events, 6);
    }
}
