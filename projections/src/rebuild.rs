//! Rebuilding the read models: the whole log replayed into fresh tables in a schema of their
//! own, then swapped in for [`READ_MODEL_SCHEMA`] in one transaction. The service answers from
//! the old tables meanwhile; the live projectors find their checkpoint moved at the swap and
//! resume from the rebuilt one (see [`crate::runtime::Projector`]).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use events::store::{EventStore, Position, RecordedEvent};
use sqlx::{Connection, PgConnection};
use tokio::sync::mpsc;

use crate::runtime::{lock_schemas, prepare, read_page, use_schema, Projection};
use crate::{checkpoint, read_models, READ_MODEL_SCHEMA};

/// Events read from the log, and applied to every read model, per transaction.
pub const PAGE: usize = 20_000;

/// What a rebuild did.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    /// Events replayed (each into every read model).
    pub events: u64,
    /// Where the rebuilt read models stand: the log's head at the swap.
    pub position: Option<Position>,
    pub elapsed: Duration,
}

/// Replays the whole log into fresh read models in a new schema (`read_models_rebuild_<unix>`)
/// until it reaches the head, then swaps them in. `on_progress` hears the number of events
/// replayed so far after each page.
pub async fn rebuild(
    store: Arc<dyn EventStore>,
    database_url: &str,
    mut on_progress: impl FnMut(u64),
) -> anyhow::Result<Rebuilt> {
    let started = Instant::now();
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let schema = format!("{READ_MODEL_SCHEMA}_rebuild_{unix}");
    let models = read_models();
    let mut connection = PgConnection::connect(database_url)
        .await
        .context("connecting to the read models' database")?;
    // A plain CREATE: two rebuilds started in the same second must not share a schema.
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut connection)
        .await
        .with_context(|| format!("creating {schema}"))?;
    let replayed = async {
        for model in &models {
            prepare(&mut connection, &schema, model).await?;
        }
        let deferred = BulkLoad::start(&mut connection, &schema).await?;
        let mut replay = Replay {
            schema: &schema,
            models: &models,
            events: 0,
            position: None,
            until: None,
        };
        replay
            .catch_up(&store, &mut connection, &mut on_progress)
            .await?;
        deferred.finish(database_url).await?;
        replay.swap_in(&store, &mut connection, unix).await?;
        on_progress(replay.events);
        anyhow::Ok(replay)
    }
    .await;
    match replayed {
        Ok(replay) => Ok(Rebuilt {
            events: replay.events,
            position: replay.position,
            elapsed: started.elapsed(),
        }),
        Err(error) => {
            // Best effort: a half-built schema serves nobody.
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .execute(&mut connection)
                .await;
            Err(error)
        }
    }
}

/// Fresh tables load faster without their secondary indexes, built once at the end. They stay
/// logged: making them unlogged for the load and logged at the end wrote every table to the
/// WAL in one go after the replay (about 9 of the 13 s a 1,000,000-event rebuild spent after
/// its replay), while logged pages are written by the WAL writer as the replay goes (its
/// commits are not waited for).
pub(crate) struct BulkLoad {
    indexes: Vec<String>,
}

impl BulkLoad {
    /// Drops the indexes of `schema`'s tables that back no constraint, remembering them.
    pub(crate) async fn start(connection: &mut PgConnection, schema: &str) -> anyhow::Result<Self> {
        let indexes: Vec<(String, String)> = sqlx::query_as(
            "SELECT format('%I.%I', i.schemaname, i.indexname), i.indexdef FROM pg_indexes i
              WHERE i.schemaname = $1 AND NOT EXISTS (
                SELECT 1 FROM pg_constraint c
                 WHERE c.conindid = format('%I.%I', i.schemaname, i.indexname)::regclass)",
        )
        .bind(schema)
        .fetch_all(&mut *connection)
        .await?;
        for (index, _) in &indexes {
            sqlx::query(&format!("DROP INDEX {index}"))
                .execute(&mut *connection)
                .await?;
        }
        Ok(Self {
            indexes: indexes
                .into_iter()
                .map(|(_, definition)| definition)
                .collect(),
        })
    }

    /// Builds the indexes again, each on a connection of its own: the builds of one table share
    /// its lock, and run side by side.
    async fn finish(self, database_url: &str) -> anyhow::Result<()> {
        let builds = self.indexes.iter().map(|definition| async move {
            let mut builder = PgConnection::connect(database_url).await?;
            // Sorted in memory rather than in temporary files: a million keys fit.
            sqlx::query("SET maintenance_work_mem = '256MB'")
                .execute(&mut builder)
                .await?;
            sqlx::query(definition).execute(&mut builder).await?;
            anyhow::Ok(())
        });
        futures::future::try_join_all(builds).await?;
        Ok(())
    }
}

/// A replay of the log into the read models of `schema`.
pub(crate) struct Replay<'a> {
    pub(crate) schema: &'a str,
    pub(crate) models: &'a [Box<dyn Projection>],
    /// Events replayed so far.
    pub(crate) events: u64,
    /// The last position replayed.
    pub(crate) position: Option<Position>,
    /// Where the catch-up stops (inclusive); at the head when `None`.
    pub(crate) until: Option<Position>,
}

impl Replay<'_> {
    /// Replays pages until a read finds nothing new (or [`Self::until`] is reached). The next
    /// page is read while this one is applied.
    pub(crate) async fn catch_up(
        &mut self,
        store: &Arc<dyn EventStore>,
        connection: &mut PgConnection,
        on_progress: &mut impl FnMut(u64),
    ) -> anyhow::Result<()> {
        let (pages, mut read) = mpsc::channel::<Vec<Arc<RecordedEvent>>>(2);
        let reader = {
            let store = store.clone();
            let mut after = self.position;
            let until = self.until;
            tokio::spawn(async move {
                loop {
                    let mut page = read_page(store.as_ref(), after, PAGE).await?;
                    let read = page.len();
                    if let Some(until) = until {
                        page.retain(|event| event.position <= until);
                    }
                    let Some(last) = page.last() else {
                        return anyhow::Ok(());
                    };
                    after = Some(last.position);
                    let ended = page.len() < read;
                    if pages.send(page).await.is_err() || ended {
                        return Ok(());
                    }
                }
            })
        };
        while let Some(page) = read.recv().await {
            let mut transaction = connection.begin().await?;
            // Losing the last pages to a crash costs nothing: a crashed rebuild is started
            // again, and its schema is not served before the swap, which commits durably.
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut *transaction)
                .await?;
            self.apply(&mut transaction, &page).await?;
            transaction.commit().await?;
            on_progress(self.events);
        }
        reader.await.context("the log reader panicked")??;
        Ok(())
    }

    /// Applies one page to every read model and moves their checkpoints, in the caller's
    /// transaction.
    async fn apply(
        &mut self,
        connection: &mut PgConnection,
        page: &[Arc<RecordedEvent>],
    ) -> anyhow::Result<()> {
        let Some(last) = page.last() else {
            return Ok(());
        };
        use_schema(connection, self.schema).await?;
        for model in self.models {
            model.apply(connection, page).await?;
            checkpoint::set(connection, model.name(), last.position).await?;
        }
        self.events += page.len() as u64;
        self.position = Some(last.position);
        Ok(())
    }

    /// In one transaction: waits for the live projectors' batches in flight and holds off the
    /// next ones, replays what the log gained since the catch-up, renames the live schema away,
    /// renames the rebuilt one to [`READ_MODEL_SCHEMA`] and drops the old one.
    async fn swap_in(
        &mut self,
        store: &Arc<dyn EventStore>,
        connection: &mut PgConnection,
        unix: u64,
    ) -> anyhow::Result<()> {
        let mut transaction = connection.begin().await?;
        lock_schemas(&mut transaction).await?;
        let live: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(format!("{READ_MODEL_SCHEMA}.projection_checkpoints"))
            .fetch_one(&mut *transaction)
            .await?;
        if let Some(checkpoints) = &live {
            // Every projector batch starts by moving its checkpoint row: with the table locked,
            // none commits mid-swap, and those waiting find their checkpoint moved afterwards.
            sqlx::query(&format!(
                "LOCK TABLE {checkpoints} IN ACCESS EXCLUSIVE MODE"
            ))
            .execute(&mut *transaction)
            .await?;
        }
        loop {
            let page = read_page(store.as_ref(), self.position, PAGE).await?;
            if page.is_empty() {
                break;
            }
            self.apply(&mut transaction, &page).await?;
        }
        let schema_exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(READ_MODEL_SCHEMA)
                .fetch_one(&mut *transaction)
                .await?;
        let old = format!("{READ_MODEL_SCHEMA}_old_{unix}");
        if schema_exists {
            sqlx::query(&format!("ALTER SCHEMA {READ_MODEL_SCHEMA} RENAME TO {old}"))
                .execute(&mut *transaction)
                .await?;
        }
        sqlx::query(&format!(
            "ALTER SCHEMA {} RENAME TO {READ_MODEL_SCHEMA}",
            self.schema
        ))
        .execute(&mut *transaction)
        .await?;
        if schema_exists {
            sqlx::query(&format!("DROP SCHEMA {old} CASCADE"))
                .execute(&mut *transaction)
                .await?;
        }
        transaction
            .commit()
            .await
            .context("swapping the rebuilt read models in")?;
        Ok(())
    }
}
