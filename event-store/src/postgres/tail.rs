//! The log's tail, read once for all the subscriptions of one store.
//!
//! Every projector of a process follows the log with a subscription of its own, and they
//! mostly follow it at its head: without sharing, each new event is read from PostgreSQL once
//! per projector (six times with the read models of today; issue 15 measured those reads at
//! more PostgreSQL time than the appends themselves). Here the subscriptions share the events
//! read last: one subscription at the head reads for all, and the others take what it read
//! (the same events, shared, not copies).
//!
//! What is kept is always one contiguous run of the log, every event in `(from, end]`: it only
//! grows by a read that starts at its end, and each read returns every event after its start
//! that can be seen without skipping one that may still commit below it ([`super::read_all`]).
//! So a subscription answered from it sees exactly what it would have read itself. A
//! subscription outside the run (catching up from far behind, or ahead of it) reads for itself.
//! The read at the head runs in a task of its own, so a subscription that stops polling
//! mid-read holds nobody back.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use events::store::{Position, RecordedEvent, StoreError};
use sqlx::PgPool;

/// The most events kept (the run drops its oldest beyond it).
const KEPT: usize = 10_000;

pub(super) struct Tail {
    pool: PgPool,
    run: Mutex<Run>,
    /// Held by the subscription that reads the head of the log for the others.
    reader: tokio::sync::Mutex<()>,
}

/// A contiguous run of the log: every event in `(from, end]`, where `end` is the last event's
/// position, or `from` when there is none. `None` positions are the log's start.
#[derive(Default)]
struct Run {
    started: bool,
    from: Option<Position>,
    events: VecDeque<Arc<RecordedEvent>>,
}

/// What the run can tell a subscription that has seen the log up to `after`.
enum Answer {
    /// The events after `after`, up to the limit.
    Events(Vec<Arc<RecordedEvent>>),
    /// Nothing after `after` yet: `after` is the run's end.
    AtEnd,
    /// `after` is outside the run: read for yourself.
    Outside,
}

impl Run {
    fn end(&self) -> Option<Position> {
        self.events
            .back()
            .map(|event| Some(event.position))
            .unwrap_or(self.from)
    }

    fn answer(&self, after: Option<Position>, limit: usize) -> Answer {
        if !self.started || after < self.from || after > self.end() {
            return Answer::Outside;
        }
        if after == self.end() {
            return Answer::AtEnd;
        }
        let first = self
            .events
            .partition_point(|event| Some(event.position) <= after);
        Answer::Events(self.events.range(first..).take(limit).cloned().collect())
    }

    /// Adds `batch`, read from `after` on, if it continues the run (or starts it).
    fn extend(&mut self, after: Option<Position>, batch: &[Arc<RecordedEvent>]) {
        if !self.started {
            self.started = true;
            self.from = after;
        } else if after != self.end() {
            return;
        }
        self.events.extend(batch.iter().cloned());
        while self.events.len() > KEPT {
            if let Some(dropped) = self.events.pop_front() {
                self.from = Some(dropped.position);
            }
        }
    }
}

impl Tail {
    pub(super) fn new(pool: PgPool) -> Self {
        Self {
            pool,
            run: Mutex::new(Run::default()),
            reader: tokio::sync::Mutex::new(()),
        }
    }

    /// Up to `limit` events after `after`, as [`super::read_all`] reads them: from the run when
    /// it holds them; read by one subscription for all when `after` is the run's end.
    ///
    /// That read runs in a task of its own: a subscription's future may be left unpolled
    /// mid-read (a projector applying the batch it has, a publisher waiting for the broker), and
    /// the others must not wait for it.
    pub(super) async fn read(
        self: &Arc<Self>,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<Arc<RecordedEvent>>, StoreError> {
        match self.answer(after, limit) {
            Answer::Events(events) => return Ok(events),
            Answer::Outside => return self.read_from_log(after, limit).await,
            Answer::AtEnd => {}
        }
        let tail = self.clone();
        let head = tokio::spawn(async move {
            let _reading = tail.reader.lock().await;
            // The read before ours may have brought what we wait for.
            match tail.answer(after, limit) {
                Answer::Events(events) => Ok(events),
                Answer::AtEnd | Answer::Outside => tail.read_from_log(after, limit).await,
            }
        });
        head.await.map_err(StoreError::backend)?
    }

    fn answer(&self, after: Option<Position>, limit: usize) -> Answer {
        self.run
            .lock()
            .expect("the tail's lock is never poisoned")
            .answer(after, limit)
    }

    async fn read_from_log(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<Arc<RecordedEvent>>, StoreError> {
        let batch: Vec<_> = super::read_all(&self.pool, after, limit)
            .await?
            .into_iter()
            .map(Arc::new)
            .collect();
        self.run
            .lock()
            .expect("the tail's lock is never poisoned")
            .extend(after, &batch);
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    fn at(position: u64) -> Arc<RecordedEvent> {
        Arc::new(RecordedEvent {
            stream: "s".into(),
            revision: position,
            position: Position::at(position),
            event_id: Uuid::now_v7(),
            event_type: "E".into(),
            data: json!({}),
            metadata: json!({}),
            recorded_at: Utc::now(),
        })
    }

    fn positions(answer: Answer) -> Option<Vec<u64>> {
        match answer {
            Answer::Events(events) => Some(events.iter().map(|e| e.position.commit).collect()),
            _ => None,
        }
    }

    #[test]
    fn a_run_answers_only_inside_itself_and_grows_only_from_its_end() {
        let mut run = Run::default();
        assert!(matches!(run.answer(None, 10), Answer::Outside));
        run.extend(Some(Position::at(10)), &[at(11), at(14)]);
        assert!(matches!(run.answer(None, 10), Answer::Outside), "before it");
        assert!(matches!(
            run.answer(Some(Position::at(9)), 10),
            Answer::Outside
        ));
        assert_eq!(
            positions(run.answer(Some(Position::at(10)), 10)),
            Some(vec![11, 14])
        );
        assert_eq!(
            positions(run.answer(Some(Position::at(11)), 10)),
            Some(vec![14])
        );
        assert_eq!(
            positions(run.answer(Some(Position::at(10)), 1)),
            Some(vec![11])
        );
        assert!(matches!(
            run.answer(Some(Position::at(14)), 10),
            Answer::AtEnd
        ));
        assert!(
            matches!(run.answer(Some(Position::at(15)), 10), Answer::Outside),
            "after it"
        );
        // A read from elsewhere does not join the run: it may have skipped events.
        run.extend(Some(Position::at(20)), &[at(21)]);
        assert!(matches!(
            run.answer(Some(Position::at(14)), 10),
            Answer::AtEnd
        ));
        run.extend(Some(Position::at(14)), &[at(16)]);
        assert_eq!(
            positions(run.answer(Some(Position::at(11)), 10)),
            Some(vec![14, 16])
        );
    }

    #[test]
    fn a_run_keeps_its_newest_events() {
        let mut run = Run::default();
        let batch: Vec<_> = (1..=KEPT as u64 + 5).map(at).collect();
        run.extend(None, &batch);
        assert_eq!(run.events.len(), KEPT);
        assert!(matches!(
            run.answer(Some(Position::at(4)), 10),
            Answer::Outside
        ));
        assert_eq!(
            positions(run.answer(Some(Position::at(5)), 1)),
            Some(vec![6])
        );
    }
}
