//! The state of each subject after each event, which every message carries. Kept in memory
//! for the subjects seen lately; a subject not in memory (after a restart, an eviction, or a
//! re-publication that starts mid-log) is folded again from its stream, up to the event.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use events::metadata::{decode, Decoded};
use events::store::{EventStore, RecordedEvent};

use super::subjects::Subject;

/// Subject states by stream, in two generations: when the young one fills up, it becomes the
/// old one and the old one is dropped; a hit in the old generation moves back to the young.
/// So the subjects used lately stay, in constant time per event and bounded memory.
pub struct Folds<S: Subject> {
    young: HashMap<String, Folded<S>>,
    old: HashMap<String, Folded<S>>,
    capacity: usize,
}

struct Folded<S: Subject> {
    /// The revision of the stream's next event.
    next_revision: u64,
    state: S::State,
}

impl<S: Subject> Folds<S> {
    /// Keeps between `capacity` and twice as many subjects.
    pub fn new(capacity: usize) -> Self {
        Self {
            young: HashMap::new(),
            old: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Folds, in one read of the store, the subjects of `batch` that are not in memory at the
    /// revision their first event of the batch needs, so that [`Folds::after`] finds them.
    pub async fn prefetch(
        &mut self,
        store: &dyn EventStore,
        batch: &[Arc<RecordedEvent>],
    ) -> anyhow::Result<()> {
        let mut wanted: HashMap<&str, u64> = HashMap::new();
        for recorded in batch {
            if crate::stream_id(&recorded.stream, S::CATEGORY).is_some() {
                wanted.entry(&recorded.stream).or_insert(recorded.revision);
            }
        }
        wanted.retain(|stream, revision| *revision > 0 && !self.knows(stream, *revision));
        if wanted.is_empty() {
            return Ok(());
        }
        let streams: Vec<String> = wanted.keys().map(|s| (*s).to_owned()).collect();
        let history = store
            .read_streams(&streams)
            .await
            .context("reading the streams of a batch")?;
        let mut folded: HashMap<&str, S::State> = HashMap::new();
        for recorded in &history {
            let Some(until) = wanted.get(recorded.stream.as_str()) else {
                continue;
            };
            if recorded.revision >= *until {
                continue;
            }
            let decoded = decode::<S::Event>(recorded).with_context(|| {
                format!(
                    "decoding {} at revision {}",
                    recorded.stream, recorded.revision
                )
            })?;
            let state = folded.remove(recorded.stream.as_str()).unwrap_or_default();
            folded.insert(&recorded.stream, S::evolve(state, &decoded));
        }
        for (stream, revision) in wanted {
            let state = folded.remove(stream).unwrap_or_default();
            self.remember(stream, revision, state);
        }
        Ok(())
    }

    fn knows(&self, stream: &str, revision: u64) -> bool {
        self.young
            .get(stream)
            .or_else(|| self.old.get(stream))
            .is_some_and(|folded| folded.next_revision == revision)
    }

    /// Keeps `state` as the stream's state before its event at `next_revision`; the kept state.
    fn remember(&mut self, stream: &str, next_revision: u64, state: S::State) -> &S::State {
        if self.young.len() >= self.capacity {
            self.old = std::mem::take(&mut self.young);
        }
        let folded = self
            .young
            .entry(stream.to_owned())
            .insert_entry(Folded {
                next_revision,
                state,
            })
            .into_mut();
        &folded.state
    }

    /// The subject's state after `recorded` (decoded as `decoded`).
    pub async fn after(
        &mut self,
        store: &dyn EventStore,
        recorded: &RecordedEvent,
        decoded: &Decoded<S::Event>,
    ) -> anyhow::Result<&S::State> {
        let known = self
            .young
            .remove(&recorded.stream)
            .or_else(|| self.old.remove(&recorded.stream))
            .filter(|folded| folded.next_revision == recorded.revision);
        let before = match known {
            Some(folded) => folded.state,
            None if recorded.revision == 0 => S::State::default(),
            None => Self::fold(store, &recorded.stream, recorded.revision).await?,
        };
        let after = S::evolve(before, decoded);
        Ok(self.remember(&recorded.stream, recorded.revision + 1, after))
    }

    /// The state of `stream` before its event at `revision`, folded from the store.
    async fn fold(store: &dyn EventStore, stream: &str, revision: u64) -> anyhow::Result<S::State> {
        let history = store
            .read_stream(stream, 0)
            .await
            .with_context(|| format!("reading {stream}"))?;
        let mut state = S::State::default();
        for recorded in history.iter().take_while(|r| r.revision < revision) {
            let decoded = decode::<S::Event>(recorded)
                .with_context(|| format!("decoding {stream} at revision {}", recorded.revision))?;
            state = S::evolve(state, &decoded);
        }
        Ok(state)
    }
}
