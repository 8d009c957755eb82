//! A cache of streams for the write side: what the pipeline reads when its turn keeps no
//! snapshot of a stream, and the streams that writes check and answer from.
//!
//! Every command loads its stream, decides, and appends at the revision it loaded. A stale
//! cached stream is therefore safe for decisions: the append then fails on its expected
//! revision, the entry is dropped, and the pipeline reloads from the store. Appends made
//! through this cache extend the cached stream, so in one process the cache is always current;
//! writes from other processes are seen on the next conflict or after [`STREAM_CACHE_TTL`],
//! when only the events after the cached ones are read.
//!
//! Reads that must see other processes' writes at once (revocation checks, sign-in) use the
//! store directly (`AppState::log`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use events::store::{
    AppendRequest, AppendResult, EventStore, EventStream, NewEvent, Position, RecordedEvent,
    StoreError, UniqueClaim,
};

/// How long a cached stream is trusted without a conflict to say otherwise.
pub const STREAM_CACHE_TTL: Duration = Duration::from_secs(30);
/// Streams kept at most; beyond, the cache starts over (a miss costs one read).
const MAX_STREAMS: usize = 200_000;

struct Cached {
    events: Arc<Vec<RecordedEvent>>,
    loaded_at: Instant,
}

pub struct StreamCache {
    store: Arc<dyn EventStore>,
    streams: Mutex<HashMap<String, Cached>>,
    ttl: Duration,
}

impl StreamCache {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            store,
            streams: Mutex::new(HashMap::new()),
            ttl: STREAM_CACHE_TTL,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn cached(&self, stream: &str) -> Option<Arc<Vec<RecordedEvent>>> {
        self.cached_since(stream)
            .and_then(|(events, loaded_at)| (loaded_at.elapsed() < self.ttl).then_some(events))
    }

    /// The cached stream and when it was last read from the store, however long ago.
    fn cached_since(&self, stream: &str) -> Option<(Arc<Vec<RecordedEvent>>, Instant)> {
        let streams = self.lock();
        let cached = streams.get(stream)?;
        Some((cached.events.clone(), cached.loaded_at))
    }

    fn store_events(&self, stream: &str, events: Arc<Vec<RecordedEvent>>, loaded_at: Instant) {
        let mut streams = self.lock();
        if streams.len() >= MAX_STREAMS {
            streams.clear();
        }
        streams.insert(stream.to_owned(), Cached { events, loaded_at });
    }

    fn forget(&self, stream: &str) {
        self.lock().remove(stream);
    }

    /// The events an append to a cached stream will add to it, when the append succeeds;
    /// `None` when there is nothing to extend (the entry is then dropped).
    fn pending(&self, request: &AppendRequest) -> Option<Vec<NewEvent>> {
        self.lock()
            .contains_key(&request.stream)
            .then(|| request.events.clone())
    }

    /// The cached stream extended by a successful append of `events`, when the cache held
    /// exactly the revision the append was made on and the store tells each event's position;
    /// otherwise the entry is dropped and the next read reloads.
    fn extend(&self, stream: &str, events: Option<Vec<NewEvent>>, result: &AppendResult) {
        let mut streams = self.lock();
        let Some(cached) = streams.get_mut(stream) else {
            return;
        };
        let count = events.as_ref().map_or(0, |events| events.len() as u64);
        let cached_revision = cached.events.last().map(|e| e.revision);
        let extends = cached_revision.map_or(0, |r| r + 1) + count == result.revision + 1;
        let (Some(events), true, Some(positions)) = (events, extends, positions(result, count))
        else {
            streams.remove(stream);
            return;
        };
        // Copies the stream only while a reader still holds the previous version.
        let recorded_at = chrono::Utc::now();
        let first_revision = result.revision + 1 - count;
        Arc::make_mut(&mut cached.events).extend(
            events.into_iter().zip(positions).zip(first_revision..).map(
                |((event, position), revision)| RecordedEvent {
                    stream: stream.to_owned(),
                    revision,
                    position,
                    event_id: event.event_id,
                    event_type: event.event_type,
                    data: event.data,
                    metadata: event.metadata,
                    recorded_at,
                },
            ),
        );
    }

    /// The stream, from the cache or loaded into it. A stream cached longer than the TTL is
    /// brought up to date by reading only the events after the cached ones: the log is
    /// append-only, so what was read stays true.
    async fn shared(&self, stream: &str) -> Result<Arc<Vec<RecordedEvent>>, StoreError> {
        let known = self.cached_since(stream);
        if let Some((events, loaded_at)) = &known {
            if loaded_at.elapsed() < self.ttl {
                return Ok(events.clone());
            }
        }
        let loaded_at = Instant::now();
        let events = match known {
            Some((mut events, _)) => {
                let next = events.last().map_or(0, |e| e.revision + 1);
                let newer = self.store.read_stream(stream, next).await?;
                Arc::make_mut(&mut events).extend(newer);
                events
            }
            None => Arc::new(self.store.read_stream(stream, 0).await?),
        };
        self.store_events(stream, events.clone(), loaded_at);
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
                self.extend(&stream, events, &result);
                Ok(result)
            }
            Err(error) => {
                // A conflict means the cached stream is behind; anything else leaves it unsure.
                self.forget(&stream);
                Err(error)
            }
        }
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_revision: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Ok(self
            .shared(stream)
            .await?
            .iter()
            .filter(|e| e.revision >= from_revision)
            .cloned()
            .collect())
    }

    async fn read_stream_shared(
        &self,
        stream: &str,
    ) -> Result<Arc<Vec<RecordedEvent>>, StoreError> {
        self.shared(stream).await
    }

    async fn last_event(&self, stream: &str) -> Result<Option<RecordedEvent>, StoreError> {
        // A stream read only for its end is not worth caching whole.
        match self.cached(stream) {
            Some(events) => Ok(events.last().cloned()),
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
}
