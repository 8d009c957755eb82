//! The state of each subject after each event, which every message carries. Kept in memory
//! for the subjects seen lately; a subject not in memory (after a restart, an eviction, or a
//! re-publication that starts mid-log) is folded again from its stream, up to the event.

use std::collections::HashMap;

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

    /// The subject's state after `recorded` (decoded as `decoded`).
    pub async fn after(
        &mut self,
        store: &dyn EventStore,
        recorded: &RecordedEvent,
        decoded: &Decoded<S::Event>,
    ) -> anyhow::Result<S::State> {
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
        if self.young.len() >= self.capacity {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(
            recorded.stream.clone(),
            Folded {
                next_revision: recorded.revision + 1,
                state: after.clone(),
            },
        );
        Ok(after)
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
