//! The Kafka publisher: every user change to the user topic (an erasure followed by a
//! tombstone for the user's key), every role and application
//! change to a second topic, every follow, follow request and block to a third, each event as one message (see [`message`]), at least once and in log
//! order per subject (DESIGN.md invariant 5).
//!
//! It runs like a projector (one active instance, the others standby; a catch-up subscription
//! from its checkpoint, then the live tail) with one difference: its effect is outside
//! PostgreSQL, so a batch is sent first and its checkpoint moved only once the broker has
//! acknowledged every message of it. While the broker is away the batch waits (writes go on);
//! a publisher killed mid-batch sends the unacknowledged window again, with the same `ce_id`s.
//! The checkpoint lives in the schema [`SCHEMA`], apart from the read models, so a rebuild of
//! those does not publish everything again.

pub mod folds;
pub mod kafka;
pub mod message;
pub mod subjects;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use events::metadata::{decode, EventFamily};
use events::store::{EventStore, Position, RecordedEvent};
use events::user::UserEvent;
use futures::StreamExt;
use rdkafka::producer::Producer;
use sqlx::{Connection, PgConnection};
use tokio::sync::watch;

use crate::checkpoint;
use crate::runtime::{become_active, lock_schemas, read_page, use_schema, Progress};
use crate::stream_id;
use folds::Folds;
pub use kafka::KafkaSettings;
use message::Message;
use subjects::{Applications, Relations, Roles, SignInAttempts, Subject, Users};

/// The publisher's name: its checkpoint, its lock, its line in the projection status.
pub const NAME: &str = "kafka";

/// The PostgreSQL schema of the publisher's checkpoint.
pub const SCHEMA: &str = "publishers";

/// Events sent per batch (and checkpoint) at most.
pub const BATCH: usize = 5_000;

/// Batches handed to the producer and not yet acknowledged, at most.
pub const IN_FLIGHT: usize = 4;

/// Subjects whose state the publisher keeps in memory (up to twice as many).
const REMEMBERED: usize = 100_000;

/// How long a batch waits for its acknowledgements before the publisher says so (and checks
/// the topics), and again each time as long.
const STALLED: Duration = Duration::from_secs(5);

/// How long a shutdown waits for the acknowledgements of the batch in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Publishes the log to Kafka.
pub struct Publisher {
    store: Arc<dyn EventStore>,
    database_url: String,
    settings: KafkaSettings,
    progress: watch::Sender<Progress>,
}

impl Publisher {
    pub fn new(
        store: Arc<dyn EventStore>,
        database_url: impl Into<String>,
        settings: KafkaSettings,
    ) -> Self {
        Self {
            store,
            database_url: database_url.into(),
            settings,
            progress: watch::channel(Progress::default()).0,
        }
    }

    /// Follows the publisher's progress (lag metric, status route).
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Runs until `shutdown` turns true: waits to be the active instance, then publishes from
    /// the checkpoint on.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let Some(_lock) = become_active(
            &self.database_url,
            &format!("{SCHEMA}.{NAME}"),
            &mut shutdown,
        )
        .await?
        else {
            return Ok(());
        };
        tracing::info!(brokers = %self.settings.brokers, "the Kafka publisher is active");
        self.progress.send_modify(|progress| progress.active = true);
        let published = self.follow(&mut shutdown).await;
        self.progress
            .send_modify(|progress| progress.active = false);
        published
    }

    /// Publishes from the checkpoint on, up to [`IN_FLIGHT`] batches at once: the next batch is
    /// translated and handed to the producer while the broker acknowledges the previous ones;
    /// checkpoints move in log order as the acknowledgements come.
    async fn follow(&self, shutdown: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        tokio::select! {
            created = kafka::ensure_topics(&self.settings) => created?,
            _ = shutdown.changed() => return Ok(()),
        }
        let producer = kafka::producer(&self.settings)?;
        let mut connection = PgConnection::connect(&self.database_url).await?;
        prepare(&mut connection).await?;
        'from_checkpoint: loop {
            let mut committed = read_checkpoint(&mut connection).await?;
            self.progress.send_modify(|progress| {
                progress.position = committed;
                progress.lag_ms = 0;
            });
            let mut translator = Translator::new(self.store.as_ref(), &self.settings);
            let mut events = self.store.subscribe_all(committed).ready_chunks(BATCH);
            let mut in_flight: VecDeque<InFlight> = VecDeque::new();
            let mut stalled = tokio::time::interval(STALLED);
            stalled.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    acknowledged = async {
                        match in_flight.front_mut() {
                            Some(batch) => batch.acknowledged.as_mut().await,
                            None => std::future::pending().await,
                        }
                    }, if !in_flight.is_empty() => {
                        if let Err(error) = acknowledged {
                            metrics::counter!("userledger_kafka_publish_errors_total").increment(1);
                            return Err(error);
                        }
                        let batch = in_flight.pop_front().expect("the acknowledged batch");
                        metrics::counter!("userledger_kafka_published_total")
                            .increment(batch.messages);
                        if !self.checkpoint(&mut connection, &mut committed, batch.end()).await? {
                            continue 'from_checkpoint;
                        }
                    }
                    batch = events.next(), if in_flight.len() < IN_FLIGHT => {
                        let Some(batch) = batch else { return Ok(()) };
                        let batch: Vec<Arc<RecordedEvent>> =
                            batch.into_iter().collect::<Result<_, _>>()?;
                        let Some(last) = batch.last() else { continue };
                        let messages = translator.messages(&batch).await?;
                        in_flight.push_back(InFlight {
                            messages: messages.len() as u64,
                            last: last.position,
                            recorded_at: last.recorded_at,
                            sent_at: Instant::now(),
                            acknowledged: kafka::send(&producer, &messages).await?,
                        });
                    }
                    _ = stalled.tick() => {
                        if let Some(sent_at) = in_flight.front().map(|oldest| oldest.sent_at) {
                            self.stalled(sent_at).await;
                        }
                    }
                    _ = shutdown.changed() => {
                        return self.finish(&mut connection, committed, in_flight).await;
                    }
                }
            }
        }
    }

    /// Moves the checkpoint past an acknowledged batch; `false` when another instance moved it
    /// meanwhile (then this one starts again from the stored checkpoint).
    async fn checkpoint(
        &self,
        connection: &mut PgConnection,
        committed: &mut Option<Position>,
        (last, recorded_at): (Position, chrono::DateTime<chrono::Utc>),
    ) -> anyhow::Result<bool> {
        if !advance_checkpoint(connection, *committed, last).await? {
            tracing::warn!(
                expected = ?committed,
                "the publisher's checkpoint moved underneath (another instance): resuming from \
                 the stored checkpoint"
            );
            return Ok(false);
        }
        *committed = Some(last);
        let lag = chrono::Utc::now().signed_duration_since(recorded_at);
        self.progress.send_modify(|progress| {
            progress.position = Some(last);
            progress.lag_ms = lag.num_milliseconds().max(0) as u64;
        });
        Ok(true)
    }

    /// Says that the oldest batch waits for the broker, and makes sure the topics exist: a
    /// broker that came back empty (a new cluster, lost storage) has none.
    async fn stalled(&self, oldest_sent_at: Instant) {
        let waiting = oldest_sent_at.elapsed();
        if waiting < STALLED {
            return;
        }
        tracing::warn!(
            waiting_s = waiting.as_secs(),
            "the Kafka broker has not acknowledged a batch yet: publishing waits (writes go on)"
        );
        if let Err(error) = kafka::ensure_topics(&self.settings).await {
            tracing::debug!(error = format!("{error:#}"), "the broker is still away");
        }
    }

    /// At shutdown: waits a little for the batches in flight and checkpoints those the broker
    /// acknowledged; the others are sent again at the next start.
    async fn finish(
        &self,
        connection: &mut PgConnection,
        mut committed: Option<Position>,
        in_flight: VecDeque<InFlight>,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        for mut batch in in_flight {
            match tokio::time::timeout_at(deadline, batch.acknowledged.as_mut()).await {
                Ok(acknowledged) => acknowledged?,
                Err(_) => {
                    tracing::warn!(
                        "stopping with batches the broker has not acknowledged: they are sent \
                         again at the next start"
                    );
                    return Ok(());
                }
            }
            if !self
                .checkpoint(connection, &mut committed, batch.end())
                .await?
            {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// A batch handed to the producer, waiting for the broker's acknowledgements.
struct InFlight {
    messages: u64,
    /// The position of its last event: the checkpoint once it is acknowledged.
    last: Position,
    recorded_at: chrono::DateTime<chrono::Utc>,
    sent_at: Instant,
    acknowledged: kafka::Acknowledgements,
}

impl InFlight {
    /// Where the batch ends: its last event's position and commit time.
    fn end(&self) -> (Position, chrono::DateTime<chrono::Utc>) {
        (self.last, self.recorded_at)
    }
}

/// Turns events into messages, each with its subject's state after it.
struct Translator<'a> {
    store: &'a dyn EventStore,
    settings: &'a KafkaSettings,
    users: Folds<Users>,
    roles: Folds<Roles>,
    applications: Folds<Applications>,
    sign_ins: Folds<SignInAttempts>,
    relations: Folds<Relations>,
}

impl<'a> Translator<'a> {
    fn new(store: &'a dyn EventStore, settings: &'a KafkaSettings) -> Self {
        Self {
            store,
            settings,
            users: Folds::new(REMEMBERED),
            roles: Folds::new(REMEMBERED / 10),
            applications: Folds::new(REMEMBERED / 10),
            sign_ins: Folds::new(REMEMBERED / 10),
            relations: Folds::new(REMEMBERED / 10),
        }
    }

    /// The messages of a batch, in log order, each with its topic. Events of other streams
    /// (an EventStoreDB's own, uniqueness reservations) have none.
    async fn messages(
        &mut self,
        batch: &[Arc<RecordedEvent>],
    ) -> anyhow::Result<Vec<(&'a str, Message)>> {
        let users = self.settings.user_topic.as_str();
        let others = self.settings.role_application_topic.as_str();
        let social = self.settings.social_topic.as_str();
        self.users.prefetch(self.store, batch).await?;
        self.roles.prefetch(self.store, batch).await?;
        self.applications.prefetch(self.store, batch).await?;
        self.sign_ins.prefetch(self.store, batch).await?;
        self.relations.prefetch(self.store, batch).await?;
        let mut messages = Vec::with_capacity(batch.len());
        for recorded in batch {
            let stream = recorded.stream.as_str();
            let message = if let Some(id) = stream_id(stream, Users::CATEGORY) {
                let message = translate(&mut self.users, self.store, recorded, id).await?;
                if recorded.event_type == (UserEvent::Erased {}).event_type() {
                    // Compacted topics forget the person too.
                    let tombstone = message::tombstone(&message);
                    messages.push((users, message));
                    (users, tombstone)
                } else {
                    (users, message)
                }
            } else if let Some(id) = stream_id(stream, Roles::CATEGORY) {
                (
                    others,
                    translate(&mut self.roles, self.store, recorded, id).await?,
                )
            } else if let Some(id) = stream_id(stream, Applications::CATEGORY) {
                (
                    others,
                    translate(&mut self.applications, self.store, recorded, id).await?,
                )
            } else if let Some(id) = stream_id(stream, SignInAttempts::CATEGORY) {
                (
                    users,
                    translate(&mut self.sign_ins, self.store, recorded, id).await?,
                )
            } else if let Some(id) = stream_id(stream, Relations::CATEGORY) {
                (
                    social,
                    translate(&mut self.relations, self.store, recorded, id).await?,
                )
            } else {
                continue;
            };
            messages.push(message);
        }
        Ok(messages)
    }
}

async fn translate<S: Subject>(
    folds: &mut Folds<S>,
    store: &dyn EventStore,
    recorded: &RecordedEvent,
    id: &str,
) -> anyhow::Result<Message> {
    let decoded = decode::<S::Event>(recorded)
        .with_context(|| format!("decoding {} at {}", recorded.event_type, recorded.position))?;
    let after = folds.after(store, recorded, &decoded).await?;
    Ok(message::message::<S>(recorded, id, &decoded, after))
}

async fn prepare(connection: &mut PgConnection) -> anyhow::Result<()> {
    let mut transaction = connection.begin().await?;
    lock_schemas(&mut transaction).await?;
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        .execute(&mut *transaction)
        .await?;
    use_schema(&mut transaction, SCHEMA).await?;
    checkpoint::create_table(&mut transaction).await?;
    transaction.commit().await?;
    Ok(())
}

async fn read_checkpoint(connection: &mut PgConnection) -> anyhow::Result<Option<Position>> {
    let mut transaction = connection.begin().await?;
    use_schema(&mut transaction, SCHEMA).await?;
    let position = checkpoint::read(&mut transaction, NAME).await?;
    transaction.commit().await?;
    Ok(position)
}

/// Moves the checkpoint from `from` to `to` in a transaction of its own (short: the broker's
/// acknowledgement came before it); `false` when another instance moved it meanwhile.
async fn advance_checkpoint(
    connection: &mut PgConnection,
    from: Option<Position>,
    to: Position,
) -> anyhow::Result<bool> {
    let mut transaction = connection.begin().await?;
    use_schema(&mut transaction, SCHEMA).await?;
    let moved = checkpoint::advance(&mut transaction, NAME, from, to).await?;
    transaction.commit().await?;
    Ok(moved)
}

/// What a re-publication did.
#[derive(Debug, Clone)]
pub struct Republished {
    pub events: u64,
    /// The last event published again.
    pub position: Option<Position>,
    pub elapsed: Duration,
}

/// Publishes the log again from after `from` (from the start when `None`) to its head, as the
/// publisher did (same messages, same `ce_id`s), without touching the publisher's checkpoint.
/// `on_progress` hears the number of events published after each batch.
pub async fn republish(
    store: Arc<dyn EventStore>,
    settings: &KafkaSettings,
    from: Option<Position>,
    mut on_progress: impl FnMut(u64),
) -> anyhow::Result<Republished> {
    let started = Instant::now();
    kafka::ensure_topics(settings).await?;
    let producer = kafka::producer(settings)?;
    let mut translator = Translator::new(store.as_ref(), settings);
    let mut after = from;
    let mut events = 0;
    loop {
        let page = read_page(store.as_ref(), after, BATCH).await?;
        let Some(last) = page.last() else { break };
        let messages = translator.messages(&page).await?;
        kafka::deliver(&producer, &messages).await?;
        after = Some(last.position);
        events += page.len() as u64;
        on_progress(events);
        if page.len() < BATCH {
            break;
        }
    }
    producer
        .flush(Duration::from_secs(30))
        .context("flushing the Kafka producer")?;
    Ok(Republished {
        events,
        position: after.filter(|_| events > 0),
        elapsed: started.elapsed(),
    })
}
