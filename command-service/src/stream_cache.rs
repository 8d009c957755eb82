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
    AppendRequest, AppendResult, EventStore, EventStream, Position, RecordedEvent, StoreError,
    UniqueClaim,
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

    /// The cached stream extended by a successful append, when the cache held exactly the
    /// revision the append was made on and the append's positions are all known (one event:
    /// its position is the result's); otherwise the entry is dropped and the next read reloads.
    fn extend(&self, request: &AppendRequest, result: &AppendResult) {
        let mut streams = self.lock();
        let Some(cached) = streams.get_mut(&request.stream) else {
            return;
        };
        let cached_revision = cached.events.last().map(|e| e.revision);
        let extends = cached_revision.map_or(0, |r| r + 1) == result.revision;
        let [event] = request.events.as_slice() else {
            streams.remove(&request.stream);
            return;
        };
        if !extends {
            streams.remove(&request.stream);
            return;
        }
        // Copies the stream only while a reader still holds the previous version.
        Arc::make_mut(&mut cached.events).push(RecordedEvent {
            stream: request.stream.clone(),
            revision: result.revision,
            position: result.position,
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            data: event.data.clone(),
            metadata: event.metadata.clone(),
            recorded_at: chrono::Utc::now(),
        });
    }
}

#[async_trait]
impl EventStore for StreamCache {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        match self.store.append(request.clone()).await {
            Ok(result) => {
                self.extend(&request, &result);
                Ok(result)
            }
            Err(error) => {
                // A conflict means the cached stream is behind; anything else leaves it unsure.
                self.forget(&request.stream);
                Err(error)
            }
        }
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_revision: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = match self.cached(stream) {
            Some(events) => events,
            None => {
                let loaded_at = Instant::now();
                let events = Arc::new(self.store.read_stream(stream, 0).await?);
                self.store_events(stream, events.clone(), loaded_at);
                events
            }
        };
        Ok(events
            .iter()
            .filter(|e| e.revision >= from_revision)
            .cloned()
            .collect())
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
