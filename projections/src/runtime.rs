//! Feeding a projection from the global log, exactly once in effect.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use events::store::{EventStore, Position, RecordedEvent};
use futures::StreamExt;
use sqlx::{Connection, PgConnection};
use tokio::sync::watch;

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
        events: &[RecordedEvent],
    ) -> anyhow::Result<()>;
}

/// Where a projection is: the position of the last event it applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    pub position: Option<Position>,
    /// Milliseconds between the last applied event's commit and its application.
    pub lag_ms: u64,
}

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
        // A connection of its own holds the advisory lock for as long as this instance is the
        // active one; if the process dies, PostgreSQL releases the lock with the connection.
        let mut lock = PgConnection::connect(&self.database_url)
            .await
            .context("connecting the projection's lock")?;
        let key = lock_key(self.projection.name());
        loop {
            let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(key)
                .fetch_one(&mut lock)
                .await?;
            if locked {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.changed() => return Ok(()),
            }
            if *shutdown.borrow() {
                return Ok(());
            }
        }
        tracing::info!(projection = self.projection.name(), "active");

        let mut writer = PgConnection::connect(&self.database_url).await?;
        self.prepare(&mut writer).await?;
        let checkpoint = self.checkpoint(&mut writer).await?;
        let _ = self.progress.send(Progress {
            position: checkpoint,
            lag_ms: 0,
        });

        let mut events = self
            .store
            .subscribe_all(checkpoint)
            .ready_chunks(self.batch);
        loop {
            let batch = tokio::select! {
                batch = events.next() => batch,
                _ = shutdown.changed() => None,
            };
            let Some(batch) = batch else { break };
            let batch: Vec<RecordedEvent> = batch.into_iter().collect::<Result<_, _>>()?;
            self.commit(&mut writer, &batch).await?;
            if *shutdown.borrow() {
                break;
            }
        }
        tracing::info!(projection = self.projection.name(), "stopped");
        Ok(())
    }

    async fn prepare(&self, connection: &mut PgConnection) -> anyhow::Result<()> {
        let mut transaction = connection.begin().await?;
        // `IF NOT EXISTS` is not safe against a concurrent creator (two projectors starting
        // together fail on pg_namespace's or pg_type's unique index): serialise the DDL of
        // every projection on one lock, released at commit.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(lock_key("schema preparation"))
            .execute(&mut *transaction)
            .await?;
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {}", self.schema))
            .execute(&mut *transaction)
            .await?;
        self.use_schema(&mut transaction).await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS projection_checkpoints (
                projection text PRIMARY KEY,
                commit_position bigint NOT NULL,
                prepare_position bigint NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .execute(&mut *transaction)
        .await?;
        self.projection.prepare(&mut transaction).await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn checkpoint(&self, connection: &mut PgConnection) -> anyhow::Result<Option<Position>> {
        let mut transaction = connection.begin().await?;
        self.use_schema(&mut transaction).await?;
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT commit_position, prepare_position FROM projection_checkpoints WHERE projection = $1",
        )
        .bind(self.projection.name())
        .fetch_optional(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(row.map(|(commit, prepare)| Position::new(commit as u64, prepare as u64)))
    }

    /// Applies a batch and moves the checkpoint, in one transaction.
    async fn commit(
        &self,
        connection: &mut PgConnection,
        batch: &[RecordedEvent],
    ) -> anyhow::Result<()> {
        let Some(last) = batch.last() else {
            return Ok(());
        };
        let mut transaction = connection.begin().await?;
        self.use_schema(&mut transaction).await?;
        self.projection.apply(&mut transaction, batch).await?;
        sqlx::query(
            "INSERT INTO projection_checkpoints (projection, commit_position, prepare_position) \
             VALUES ($1, $2, $3) \
             ON CONFLICT (projection) DO UPDATE \
                SET commit_position = EXCLUDED.commit_position, \
                    prepare_position = EXCLUDED.prepare_position, updated_at = now()",
        )
        .bind(self.projection.name())
        .bind(last.position.commit as i64)
        .bind(last.position.prepare as i64)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        let lag = chrono::Utc::now().signed_duration_since(last.recorded_at);
        let _ = self.progress.send(Progress {
            position: Some(last.position),
            lag_ms: lag.num_milliseconds().max(0) as u64,
        });
        Ok(())
    }

    async fn use_schema(&self, connection: &mut PgConnection) -> anyhow::Result<()> {
        sqlx::query("SELECT set_config('search_path', $1, true)")
            .bind(&self.schema)
            .execute(connection)
            .await?;
        Ok(())
    }
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
