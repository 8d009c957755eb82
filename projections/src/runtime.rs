//! Feeding a projection from the global log, exactly once in effect.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use events::store::{EventStore, Position, RecordedEvent, StoreError};
use futures::StreamExt;
use sqlx::{Connection, PgConnection};
use tokio::sync::watch;

use crate::checkpoint;

/// A read model: tables in PostgreSQL kept up to date from the log.
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// Unique among projections: names its checkpoint and its lock.
    fn name(&self) -> &'static str;

    /// Creates the projection's tables when missing (in the transaction's `search_path`).
    async fn prepare(&self, connection: &mut PgConnection) -> anyhow::Result<()>;

    /// Applies a batch of events, in log order, inside the transaction that also stores the
    /// checkpoint: both commit or neither does.
    async fn apply(
        &self,
        connection: &mut PgConnection,
        events: &[Arc<RecordedEvent>],
    ) -> anyhow::Result<()>;
}

/// Up to `limit` events of the log after `after`, each shared as [`Projection::apply`] takes
/// them: how replays, rebuilds and republishing read the log in pages.
pub(crate) async fn read_page(
    store: &dyn EventStore,
    after: Option<Position>,
    limit: usize,
) -> Result<Vec<Arc<RecordedEvent>>, StoreError> {
    let page = store.read_all(after, limit).await?;
    Ok(page.into_iter().map(Arc::new).collect())
}

/// Any projection behind a box: how the runtime holds the read models as one list.
#[async_trait]
impl Projection for Box<dyn Projection> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    async fn prepare(&self, connection: &mut PgConnection) -> anyhow::Result<()> {
        (**self).prepare(connection).await
    }

    async fn apply(
        &self,
        connection: &mut PgConnection,
        events: &[Arc<RecordedEvent>],
    ) -> anyhow::Result<()> {
        (**self).apply(connection, events).await
    }
}

/// Where a projection is: the position of the last event it applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    pub position: Option<Position>,
    /// Milliseconds between the last applied event's commit and its application.
    pub lag_ms: u64,
    /// Whether this instance is the active one (holds the projection's lock), not a standby.
    pub active: bool,
}

/// How long a busy projector lets a batch gather after its last commit.
const GATHER: Duration = Duration::from_millis(20);

/// The default number of events applied per transaction at most.
pub const DEFAULT_BATCH: usize = 500;

/// Runs one projection.
pub struct Projector<P: Projection> {
    projection: P,
    store: std::sync::Arc<dyn EventStore>,
    database_url: String,
    /// The schema the projection's tables and checkpoint live in.
    schema: String,
    batch: usize,
    progress: watch::Sender<Progress>,
}

impl<P: Projection> Projector<P> {
    pub fn new(
        projection: P,
        store: std::sync::Arc<dyn EventStore>,
        database_url: impl Into<String>,
        schema: impl Into<String>,
    ) -> Self {
        Self {
            projection,
            store,
            database_url: database_url.into(),
            schema: schema.into(),
            batch: DEFAULT_BATCH,
            progress: watch::channel(Progress::default()).0,
        }
    }

    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Follows the projection's progress (for read-your-writes waits and lag metrics).
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Runs until `shutdown` turns true: waits for the projection's lock (standby), then
    /// catches up from the checkpoint and follows the log. The batch in hand when shutdown is
    /// asked is committed first.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let Some(_lock) = become_active(
            &self.database_url,
            &format!("{}.{}", self.schema, self.projection.name()),
            &mut shutdown,
        )
        .await?
        else {
            return Ok(());
        };
        tracing::info!(projection = self.projection.name(), "active");
        self.progress.send_modify(|progress| progress.active = true);
        let followed = self.follow(&mut shutdown).await;
        self.progress
            .send_modify(|progress| progress.active = false);
        tracing::info!(projection = self.projection.name(), "stopped");
        followed
    }

    /// Catches up from the checkpoint and follows the log, from the checkpoint again whenever
    /// it moved underneath.
    async fn follow(&self, shutdown: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut writer = PgConnection::connect(&self.database_url).await?;
        prepare(&mut writer, &self.schema, &self.projection).await?;
        loop {
            let mut committed = {
                let mut transaction = writer.begin().await?;
                use_schema(&mut transaction, &self.schema).await?;
                let position = checkpoint::read(&mut transaction, self.projection.name()).await?;
                transaction.commit().await?;
                position
            };
            self.progress.send_modify(|progress| {
                progress.position = committed;
                progress.lag_ms = 0;
            });
            let mut events = self.store.subscribe_all(committed).ready_chunks(self.batch);
            let mut last_commit: Option<Instant> = None;
            loop {
                // Under load, a batch gathers for at least [`GATHER`] since the last commit: a
                // transaction per handful of events costs the database more than the events.
                // A lone event after a quiet spell is applied at once, and so is the batch after
                // a full one (catching up). The projector sleeps meanwhile rather than taking
                // events as they come: each look at the log while waiting would read it.
                if let Some(since) = last_commit.map(|at| at.elapsed()) {
                    if since < GATHER {
                        tokio::select! {
                            _ = tokio::time::sleep(GATHER - since) => {}
                            _ = shutdown.changed() => return Ok(()),
                        }
                    }
                }
                let batch = tokio::select! {
                    batch = events.next() => batch,
                    _ = shutdown.changed() => None,
                };
                let Some(batch) = batch else { return Ok(()) };
                let batch: Vec<Arc<RecordedEvent>> = batch.into_iter().collect::<Result<_, _>>()?;
                let full = batch.len() == self.batch;
                match self.commit(&mut writer, committed, &batch).await? {
                    Some(position) => {
                        committed = Some(position);
                        last_commit = (!full).then(Instant::now);
                    }
                    None => {
                        tracing::warn!(
                            projection = self.projection.name(),
                            expected = ?committed,
                            "the checkpoint moved underneath (another instance, or a rebuild \
                             swapped in): batch rolled back, resuming from the stored checkpoint"
                        );
                        break;
                    }
                }
                if *shutdown.borrow() {
                    return Ok(());
                }
            }
        }
    }

    /// Applies a batch and moves the checkpoint from `from`, in one transaction; the new
    /// position, or `None` (and nothing applied) when the checkpoint was no longer at `from`.
    async fn commit(
        &self,
        connection: &mut PgConnection,
        from: Option<Position>,
        batch: &[Arc<RecordedEvent>],
    ) -> anyhow::Result<Option<Position>> {
        let Some(last) = batch.last() else {
            return Ok(from);
        };
        let mut transaction = connection.begin().await?;
        use_schema(&mut transaction, &self.schema).await?;
        // The checkpoint first: its row lock orders concurrent instances, and a batch that
        // would be applied twice costs no work before it is refused.
        if !checkpoint::advance(
            &mut transaction,
            self.projection.name(),
            from,
            last.position,
        )
        .await?
        {
            transaction.rollback().await?;
            return Ok(None);
        }
        self.projection.apply(&mut transaction, batch).await?;
        transaction.commit().await?;
        let lag = chrono::Utc::now().signed_duration_since(last.recorded_at);
        self.progress.send_modify(|progress| {
            progress.position = Some(last.position);
            progress.lag_ms = lag.num_milliseconds().max(0) as u64;
        });
        Ok(Some(last.position))
    }
}

/// Waits until this instance is the active one of `name` (holds its advisory lock), or until
/// shutdown (`None`). The returned connection holds the lock: drop it to give it up.
///
/// A connection of its own holds the lock for as long as the instance is active; if the
/// process dies, PostgreSQL releases the lock with the connection. Should that connection drop
/// while the process goes on, a standby takes over while this instance still writes: the
/// checkpoint's compare-and-set keeps the two from committing the same batch twice.
pub(crate) async fn become_active(
    database_url: &str,
    name: &str,
    shutdown: &mut watch::Receiver<bool>,
) -> anyhow::Result<Option<PgConnection>> {
    let mut lock = PgConnection::connect(database_url)
        .await
        .with_context(|| format!("connecting the lock of {name}"))?;
    let key = lock_key(name);
    loop {
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut lock)
            .await?;
        if locked {
            return Ok(Some(lock));
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.changed() => return Ok(None),
        }
        if *shutdown.borrow() {
            return Ok(None);
        }
    }
}

/// Creates `schema`, its checkpoint table and the projection's tables when missing.
pub(crate) async fn prepare<P: Projection + ?Sized>(
    connection: &mut PgConnection,
    schema: &str,
    projection: &P,
) -> anyhow::Result<()> {
    let mut transaction = connection.begin().await?;
    // `IF NOT EXISTS` is not safe against a concurrent creator (two projectors starting
    // together fail on pg_namespace's or pg_type's unique index): serialise the DDL of
    // every projection on one lock, released at commit. A rebuild's swap takes it too.
    lock_schemas(&mut transaction).await?;
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .execute(&mut *transaction)
        .await?;
    use_schema(&mut transaction, schema).await?;
    checkpoint::create_table(&mut transaction).await?;
    projection.prepare(&mut transaction).await?;
    transaction.commit().await?;
    Ok(())
}

/// Takes the lock that orders changes to the read models' schemas, until the transaction ends.
pub(crate) async fn lock_schemas(connection: &mut PgConnection) -> anyhow::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_key("schema preparation"))
        .execute(connection)
        .await?;
    Ok(())
}

/// Points the transaction's unqualified table names at `schema`.
pub(crate) async fn use_schema(connection: &mut PgConnection, schema: &str) -> anyhow::Result<()> {
    sqlx::query("SELECT set_config('search_path', $1, true)")
        .bind(schema)
        .execute(connection)
        .await?;
    Ok(())
}

/// The advisory lock of a projection: a stable 64-bit hash of its name.
fn lock_key(name: &str) -> i64 {
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let mut hash: u64 = 0xcbf29ce484222325;
    for byte in format!("userledger-projection:{name}").bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    hash as i64
}
