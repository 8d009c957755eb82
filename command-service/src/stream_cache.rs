//! A cache of streams for the command pipeline: deciding usually needs no read at all.
//!
//! Every command loads its stream, decides, and appends at the revision it loaded. A stale
//! cached stream is therefore safe for decisions: the append then fails on its expected
//! revision, the entry is dropped, and the pipeline reloads from the store. Appends made
//! through this cache extend the cached stream, so in one process the cache is always current;
//! writes from other processes are seen on the next conflict or after [`STREAM_CACHE_TTL`].
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
        let streams = self.lock();
        let cached = streams.get(stream)?;
        (cached.loaded_at.elapsed() < self.ttl).then(|| cached.events.clone())
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

    /// The event an append of one event to a cached stream will add to it, when the append
    /// succeeds; `None` when there is nothing to extend (the entry is then dropped).
    fn pending(&self, request: &AppendRequest) -> Option<NewEvent> {
        match request.events.as_slice() {
            [event] if self.lock().contains_key(&request.stream) => Some(event.clone()),
            _ => None,
        }
    }

    /// The cached stream extended by a successful append of `event`, when the cache held
    /// exactly the revision the append was made on; otherwise the entry is dropped and the
    /// next read reloads.
    fn extend(&self, stream: &str, event: Option<NewEvent>, result: &AppendResult) {
        let mut streams = self.lock();
        let Some(cached) = streams.get_mut(stream) else {
            return;
        };
        let cached_revision = cached.events.last().map(|e| e.revision);
        let extends = cached_revision.map_or(0, |r| r + 1) == result.revision;
        let (Some(event), true) = (event, extends) else {
            streams.remove(stream);
            return;
        };
        // Copies the stream only while a reader still holds the previous version.
        Arc::make_mut(&mut cached.events).push(RecordedEvent {
            stream: stream.to_owned(),
            revision: result.revision,
            position: result.position,
            event_id: event.event_id,
            event_type: event.event_type,
            data: event.data,
            metadata: event.metadata,
            recorded_at: chrono::Utc::now(),
        });
    }

    /// The stream, from the cache or loaded into it.
    async fn shared(&self, stream: &str) -> Result<Arc<Vec<RecordedEvent>>, StoreError> {
        if let Some(events) = self.cached(stream) {
            return Ok(events);
        }
        let loaded_at = Instant::now();
        let events = Arc::new(self.store.read_stream(stream, 0).await?);
        self.store_events(stream, events.clone(), loaded_at);
        Ok(events)
    }
}

#[async_trait]
impl EventStore for StreamCache {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        // The request goes to the store whole; only what the cache will keep is copied.
        let stream = request.stream.clone();
        let event = self.pending(&request);
        match self.store.append(request).await {
            Ok(result) => {
                self.extend(&stream, event, &result);
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
