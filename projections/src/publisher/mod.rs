//! The Kafka publisher: every user change to the user topic, every role and application change
//! to a second topic, each event as one message (see [`message`]), at least once and in log
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

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use events::metadata::decode;
use events::store::{EventStore, Position, RecordedEvent};
use futures::StreamExt;
use rdkafka::producer::{FutureProducer, Producer};
use sqlx::{Connection, PgConnection};
use tokio::sync::watch;

use crate::checkpoint;
use crate::runtime::{become_active, lock_schemas, use_schema, Progress};
use crate::stream_id;
use folds::Folds;
pub use kafka::KafkaSettings;
use message::Message;
use subjects::{Applications, Roles, Subject, Users};

/// The publisher's name: its checkpoint, its lock, its line in the projection status.
pub const NAME: &str = "kafka";

/// The PostgreSQL schema of the publisher's checkpoint.
pub const SCHEMA: &str = "publishers";

/// Events sent per batch (and checkpoint) at most.
pub const BATCH: usize = 5_000;

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

    async fn follow(&self, shutdown: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        tokio::select! {
            created = kafka::ensure_topics(&self.settings) => created?,
            _ = shutdown.changed() => return Ok(()),
        }
        let producer = kafka::producer(&self.settings)?;
        let mut connection = PgConnection::connect(&self.database_url).await?;
        prepare(&mut connection).await?;
        loop {
            let mut committed = read_checkpoint(&mut connection).await?;
            self.progress.send_modify(|progress| {
                progress.position = committed;
                progress.lag_ms = 0;
            });
            let mut translator = Translator::new(self.store.as_ref(), &self.settings);
            let mut events = self.store.subscribe_all(committed).ready_chunks(BATCH);
            loop {
                let batch = tokio::select! {
                    batch = events.next() => batch,
                    _ = shutdown.changed() => None,
                };
                let Some(batch) = batch else { return Ok(()) };
                let batch: Vec<RecordedEvent> = batch.into_iter().collect::<Result<_, _>>()?;
                let Some(last) = batch.last() else { continue };
                let messages = translator.messages(&batch).await?;
                if !deliver_unless_stopped(&producer, &messages, &self.settings, shutdown).await? {
                    return Ok(());
                }
                if !advance_checkpoint(&mut connection, committed, last.position).await? {
                    tracing::warn!(
                        expected = ?committed,
                        "the publisher's checkpoint moved underneath (another instance): \
                         resuming from the stored checkpoint"
                    );
                    break;
                }
                committed = Some(last.position);
                let lag = chrono::Utc::now().signed_duration_since(last.recorded_at);
                self.progress.send_modify(|progress| {
                    progress.position = committed;
                    progress.lag_ms = lag.num_milliseconds().max(0) as u64;
                });
                if *shutdown.borrow() {
                    return Ok(());
                }
            }
        }
    }
}

/// Delivers a batch; on shutdown, waits a little for the acknowledgements in flight. `false`
/// when it stopped before the broker acknowledged the batch (it will be sent again).
///
/// While the acknowledgements do not come, it says so in the log every [`STALLED`] and makes
/// sure the topics exist: a broker that came back empty (a new cluster, lost storage) has
/// none, and the producer would wait for them forever.
async fn deliver_unless_stopped(
    producer: &FutureProducer,
    messages: &[(&str, Message)],
    settings: &KafkaSettings,
    shutdown: &mut watch::Receiver<bool>,
) -> anyhow::Result<bool> {
    let delivery = kafka::deliver(producer, messages);
    tokio::pin!(delivery);
    let waiting_since = Instant::now();
    let mut stalled = tokio::time::interval_at(tokio::time::Instant::now() + STALLED, STALLED);
    stalled.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            delivered = &mut delivery => return delivered.map(|()| true),
            _ = shutdown.changed() => break,
            _ = stalled.tick() => {
                tracing::warn!(
                    waiting_s = waiting_since.elapsed().as_secs(),
                    messages = messages.len(),
                    "the Kafka broker has not acknowledged the batch yet: publishing waits \
                     (writes go on)"
                );
                if let Err(error) = kafka::ensure_topics(settings).await {
                    tracing::debug!(error = format!("{error:#}"), "the broker is still away");
                }
            }
        }
    }
    match tokio::time::timeout(SHUTDOWN_GRACE, delivery).await {
        Ok(delivered) => delivered.map(|()| true),
        Err(_) => {
            tracing::warn!(
                "stopping with a batch the broker has not acknowledged: it is sent again at \
                 the next start"
            );
            Ok(false)
        }
    }
}

/// Turns events into messages, each with its subject's state after it.
struct Translator<'a> {
    store: &'a dyn EventStore,
    settings: &'a KafkaSettings,
    users: Folds<Users>,
    roles: Folds<Roles>,
    applications: Folds<Applications>,
}

impl<'a> Translator<'a> {
    fn new(store: &'a dyn EventStore, settings: &'a KafkaSettings) -> Self {
        Self {
            store,
            settings,
            users: Folds::new(REMEMBERED),
            roles: Folds::new(REMEMBERED / 10),
            applications: Folds::new(REMEMBERED / 10),
        }
    }

    /// The messages of a batch, in log order, each with its topic. Events of other streams
    /// (an EventStoreDB's own, uniqueness reservations) have none.
    async fn messages(
        &mut self,
        batch: &[RecordedEvent],
    ) -> anyhow::Result<Vec<(&'a str, Message)>> {
        let users = self.settings.user_topic.as_str();
        let others = self.settings.role_application_topic.as_str();
        let mut messages = Vec::with_capacity(batch.len());
        for recorded in batch {
            let stream = recorded.stream.as_str();
            let message = if let Some(id) = stream_id(stream, Users::CATEGORY) {
                (
                    users,
                    translate(&mut self.users, self.store, recorded, id).await?,
                )
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
    Ok(message::message::<S>(recorded, id, &decoded, &after))
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
        let page = store.read_all(after, BATCH).await?;
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
