//! The global log on EventStoreDB: `read_all` in batches and `subscribe_all` as a filtered
//! catch-up subscription, both without ESDB's own events and the reservation streams.

use std::sync::Arc;
use std::time::Duration;

use eventstore::{
    Client, Position as EsPosition, ReadAllOptions, StreamPosition, SubscribeToAllOptions,
    Subscription, SubscriptionFilter,
};
use futures::StreamExt;

use events::store::{EventStream, Position, RecordedEvent, StoreError};

use super::mapping::{into_event, is_ours, store_error, to_es_position, to_recorded};

/// Events `read_all` asks for per round trip at least / at most: it filters ESDB's own events
/// out client-side, so it may need several batches to fill `limit`.
const READ_ALL_MIN_BATCH: usize = 256;
const READ_ALL_MAX_BATCH: usize = 4_096;
/// Pause before a subscription that failed subscribes again.
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(500);

/// Reads `$all` in batches, dropping ESDB's own events and the reservation streams, until
/// `limit` of our events are found or the log ends.
///
/// ESDB's read from a position includes the event at that position, so events at or before
/// `after` are skipped. `$all` is in commit order and a read only sees committed events, so
/// nothing can later commit below what is returned.
pub(super) async fn read_all(
    client: &Client,
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
        let mut read = client.read_all(&options).await.map_err(store_error)?;
        let mut seen = 0usize;
        let mut last = bound;
        while let Some(resolved) = read.next().await.map_err(store_error)? {
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

/// A filtered catch-up subscription to `$all`: the server sends stored events after `after`
/// and then live ones. The server-side filter drops event types starting with `$`; the rest
/// (system streams, reservation streams, events at or before `after`) is dropped here.
/// After an error the stream yields it and then subscribes again from the last event it saw.
pub(super) fn subscribe_all(client: Client, after: Option<Position>) -> EventStream {
    let state = Following {
        client,
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

/// The state of [`subscribe_all`].
struct Following {
    client: Client,
    /// The last `$all` position seen (ours or not): where a new subscription resumes.
    after: Option<EsPosition>,
    subscription: Option<Subscription>,
    failed: bool,
}

impl Following {
    async fn next(&mut self) -> Result<Arc<RecordedEvent>, StoreError> {
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
                        return to_recorded(&event).map(Arc::new);
                    }
                }
                Err(error) => {
                    // The client's `Subscription` without retry options gives up after an
                    // error; start a new one on the next poll.
                    self.subscription = None;
                    self.failed = true;
                    return Err(store_error(error));
                }
            }
        }
    }
}
