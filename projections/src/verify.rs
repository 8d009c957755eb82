//! Verifying the read models and the log: every stream's hash chain is checked
//! ([`events::audit::chain`]), and every read model is rebuilt from the log in a scratch schema
//! and compared, row for row, with the live one. Every difference is reported.
//!
//! The live projectors may be running meanwhile. The scratch replay first catches up to the
//! lowest live checkpoint; then, in one transaction that holds the live checkpoints (a `SHARE`
//! lock: projector batches wait, reads go on), each scratch read model is brought to its live
//! twin's checkpoint and the tables are compared. The scratch schema is dropped at the end.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use events::audit::{ChainHead, Link};
use events::store::{EventStore, Position};
use serde_json::Value;
use sqlx::{Connection, PgConnection};

use crate::rebuild::{BulkLoad, Replay, PAGE};
use crate::runtime::{prepare, read_page, use_schema, Projection};
use crate::{read_models, READ_MODEL_SCHEMA};

/// What [`verify`] is doing, for a progress bar: the phase and the events it went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Checking every stream's hash chain.
    Chains,
    /// Replaying the log into the scratch read models.
    Rebuild,
    /// Comparing the scratch read models with the live ones.
    Compare,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Chains => "checking hash chains",
            Phase::Rebuild => "rebuilding the read models",
            Phase::Compare => "comparing with the live read models",
        })
    }
}

/// An event whose link in its stream's hash chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub stream: String,
    pub revision: u64,
    pub position: Position,
    pub reason: String,
}

impl fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "broken chain: {} revision {} (position {}): {}",
            self.stream, self.revision, self.position, self.reason
        )
    }
}

/// One way a live read model differs from its rebuild.
#[derive(Debug, Clone, PartialEq)]
pub enum Difference {
    /// A row the live table has and the rebuild has not (an altered row shows as this and as
    /// [`Difference::OnlyRebuilt`]).
    OnlyLive { table: String, row: Value },
    /// A row the rebuild has and the live table has not.
    OnlyRebuilt { table: String, row: Value },
    /// A table the live read models lack, or whose columns differ.
    Table { table: String, reason: String },
}

impl Difference {
    pub fn table(&self) -> &str {
        match self {
            Difference::OnlyLive { table, .. }
            | Difference::OnlyRebuilt { table, .. }
            | Difference::Table { table, .. } => table,
        }
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::OnlyLive { table, row } => {
                write!(f, "{table}: only in the live read model: {row}")
            }
            Difference::OnlyRebuilt { table, row } => {
                write!(f, "{table}: only in the rebuild from the log: {row}")
            }
            Difference::Table { table, reason } => write!(f, "{table}: {reason}"),
        }
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default)]
pub struct Verification {
    /// Events whose chain was checked.
    pub events: u64,
    pub streams: u64,
    /// Events whose hash holds.
    pub chained: u64,
    /// Events written before the hash chain existed.
    pub unchained: u64,
    pub broken: Vec<BrokenLink>,
    /// Rows compared, live and rebuilt.
    pub rows: u64,
    pub differences: Vec<Difference>,
    pub elapsed: Duration,
}

impl Verification {
    /// No broken link and no difference.
    pub fn is_clean(&self) -> bool {
        self.broken.is_empty() && self.differences.is_empty()
    }
}

/// Checks every stream's hash chain in `stored` (the log as kept: the chains are over personal
/// data sealed), rebuilds every read model from `store` (the log as readers see it) in a
/// scratch schema and compares it with the live one. `on_progress` hears the phase and the
/// events gone through in it.
pub async fn verify(
    store: Arc<dyn EventStore>,
    stored: &dyn EventStore,
    database_url: &str,
    mut on_progress: impl FnMut(Phase, u64),
) -> anyhow::Result<Verification> {
    let started = Instant::now();
    let mut verification = check_chains(stored, &mut on_progress).await?;
    let mut connection = PgConnection::connect(database_url)
        .await
        .context("connecting to the read models' database")?;
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let schema = format!("{READ_MODEL_SCHEMA}_verify_{unix}");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut connection)
        .await
        .with_context(|| format!("creating {schema}"))?;
    let compared = rebuild_and_compare(&store, &mut connection, &schema, &mut on_progress).await;
    // A scratch schema serves nobody, whatever happened.
    let dropped = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&mut connection)
        .await;
    let (rows, differences) = compared?;
    dropped.with_context(|| format!("dropping {schema}"))?;
    verification.rows = rows;
    verification.differences = differences;
    verification.elapsed = started.elapsed();
    Ok(verification)
}

/// Follows every stream's chain through the whole log.
async fn check_chains(
    store: &dyn EventStore,
    on_progress: &mut impl FnMut(Phase, u64),
) -> anyhow::Result<Verification> {
    let mut heads: HashMap<String, ChainHead> = HashMap::new();
    let mut verification = Verification::default();
    let mut after = None;
    loop {
        let page = store.read_all(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.position);
        for event in &page {
            let head = heads.entry(event.stream.clone()).or_default();
            match head.follow(event) {
                Link::Chained => verification.chained += 1,
                Link::Unchained => verification.unchained += 1,
                Link::Broken(reason) => verification.broken.push(BrokenLink {
                    stream: event.stream.clone(),
                    revision: event.revision,
                    position: event.position,
                    reason,
                }),
            }
        }
        verification.events += page.len() as u64;
        on_progress(Phase::Chains, verification.events);
    }
    verification.streams = heads.len() as u64;
    Ok(verification)
}

/// The rows compared and the differences found.
async fn rebuild_and_compare(
    store: &Arc<dyn EventStore>,
    connection: &mut PgConnection,
    schema: &str,
    on_progress: &mut impl FnMut(Phase, u64),
) -> anyhow::Result<(u64, Vec<Difference>)> {
    let models = read_models();
    for model in &models {
        prepare(&mut *connection, schema, model).await?;
    }
    // Scratch tables: never logged, and no secondary index to keep up.
    BulkLoad::start(&mut *connection, schema).await?;
    let live = live_checkpoints(&mut *connection, &models).await?;
    // Every live read model is at or beyond the lowest checkpoint (checkpoints only advance).
    let floor = models
        .iter()
        .map(|model| live.get(model.name()).copied().flatten())
        .min()
        .flatten();
    let mut replay = Replay {
        schema,
        models: &models,
        events: 0,
        position: None,
        until: floor,
    };
    if floor.is_some() {
        replay
            .catch_up(store, &mut *connection, &mut |events| {
                on_progress(Phase::Rebuild, events)
            })
            .await?;
    }
    let mut transaction = connection.begin().await?;
    if live_table_exists(&mut transaction, "projection_checkpoints").await? {
        // Projector batches move their checkpoint first: with the table held, none commits
        // until the comparison is over, and every read model stays at the checkpoint read now.
        sqlx::query(&format!(
            "LOCK TABLE {READ_MODEL_SCHEMA}.projection_checkpoints IN SHARE MODE"
        ))
        .execute(&mut *transaction)
        .await?;
    }
    let live = live_checkpoints(&mut transaction, &models).await?;
    for model in &models {
        let target = live.get(model.name()).copied().flatten();
        if target > replay.position {
            catch_up_one(
                store,
                &mut transaction,
                schema,
                model,
                replay.position,
                target,
            )
            .await?;
        }
    }
    on_progress(Phase::Compare, replay.events);
    let compared = compare(&mut transaction, schema).await?;
    transaction.commit().await?;
    Ok(compared)
}

/// Applies the events after `after` up to `until` (inclusive) to one scratch read model.
async fn catch_up_one(
    store: &Arc<dyn EventStore>,
    connection: &mut PgConnection,
    schema: &str,
    model: &dyn Projection,
    mut after: Option<Position>,
    until: Option<Position>,
) -> anyhow::Result<()> {
    loop {
        let mut page = read_page(store.as_ref(), after, PAGE).await?;
        page.retain(|event| Some(event.position) <= until);
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = Some(last.position);
        use_schema(&mut *connection, schema).await?;
        model.apply(&mut *connection, &page).await?;
    }
}

/// Each live read model's checkpoint (`None`: it has applied nothing).
async fn live_checkpoints(
    connection: &mut PgConnection,
    models: &[Box<dyn Projection>],
) -> anyhow::Result<HashMap<&'static str, Option<Position>>> {
    let mut positions = HashMap::new();
    if !live_table_exists(&mut *connection, "projection_checkpoints").await? {
        return Ok(positions);
    }
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(&format!(
        "SELECT projection, commit_position, prepare_position
           FROM {READ_MODEL_SCHEMA}.projection_checkpoints"
    ))
    .fetch_all(&mut *connection)
    .await?;
    for model in models {
        let position = rows
            .iter()
            .find(|(name, _, _)| name == model.name())
            .map(|(_, commit, prepare)| Position::new(*commit as u64, *prepare as u64));
        positions.insert(model.name(), position);
    }
    Ok(positions)
}

async fn live_table_exists(connection: &mut PgConnection, table: &str) -> anyhow::Result<bool> {
    let found: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(format!("{READ_MODEL_SCHEMA}.{table}"))
        .fetch_one(connection)
        .await?;
    Ok(found.is_some())
}

/// Compares every table of `schema` (but the checkpoints) with its live twin, as multisets of
/// rows (`EXCEPT ALL` both ways).
async fn compare(
    connection: &mut PgConnection,
    schema: &str,
) -> anyhow::Result<(u64, Vec<Difference>)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables
          WHERE schemaname = $1 AND tablename <> 'projection_checkpoints' ORDER BY tablename",
    )
    .bind(schema)
    .fetch_all(&mut *connection)
    .await?;
    let mut rows = 0;
    let mut differences = Vec::new();
    for table in tables {
        let columns = |schema: &str| {
            sqlx::query_scalar::<_, Option<String>>(
                "SELECT string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY a.attnum)
                   FROM pg_attribute a
                  WHERE a.attrelid = to_regclass(format('%I.%I', $1::text, $2::text))
                    AND a.attnum > 0 AND NOT a.attisdropped",
            )
            .bind(schema.to_owned())
            .bind(table.clone())
        };
        let rebuilt: Option<String> = columns(schema).fetch_one(&mut *connection).await?;
        let live: Option<String> = columns(READ_MODEL_SCHEMA)
            .fetch_one(&mut *connection)
            .await?;
        match live {
            None => {
                differences.push(Difference::Table {
                    table,
                    reason: "the live read models have no such table".into(),
                });
                continue;
            }
            Some(live) if Some(&live) != rebuilt.as_ref() => {
                differences.push(Difference::Table {
                    table,
                    reason: format!(
                        "the live columns ({live}) are not the rebuilt ones ({})",
                        rebuilt.unwrap_or_default()
                    ),
                });
                continue;
            }
            Some(_) => {}
        }
        // `json` has no equality: its columns compare as the `jsonb` of their text (the same
        // object whatever the order of its keys).
        let select: String = sqlx::query_scalar(
            "SELECT string_agg(CASE WHEN a.atttypid = 'json'::regtype
                                    THEN format('%I::jsonb AS %I', a.attname, a.attname)
                                    ELSE format('%I', a.attname) END, ', ' ORDER BY a.attnum)
               FROM pg_attribute a
              WHERE a.attrelid = to_regclass(format('%I.%I', $1::text, $2::text))
                AND a.attnum > 0 AND NOT a.attisdropped",
        )
        .bind(schema)
        .bind(&table)
        .fetch_one(&mut *connection)
        .await?;
        let (live, rebuilt) = (
            format!("{READ_MODEL_SCHEMA}.{table}"),
            format!("{schema}.{table}"),
        );
        let counted: i64 = sqlx::query_scalar(&format!(
            "SELECT (SELECT count(*) FROM {live}) + (SELECT count(*) FROM {rebuilt})"
        ))
        .fetch_one(&mut *connection)
        .await?;
        rows += counted as u64;
        let found: Vec<(bool, Value)> = sqlx::query_as(&format!(
            "SELECT true, to_jsonb(d) FROM (SELECT {select} FROM {live} EXCEPT ALL SELECT {select} FROM {rebuilt}) d
             UNION ALL
             SELECT false, to_jsonb(d) FROM (SELECT {select} FROM {rebuilt} EXCEPT ALL SELECT {select} FROM {live}) d"
        ))
        .fetch_all(&mut *connection)
        .await?;
        differences.extend(found.into_iter().map(|(only_live, row)| {
            let table = table.clone();
            if only_live {
                Difference::OnlyLive { table, row }
            } else {
                Difference::OnlyRebuilt { table, row }
            }
        }));
    }
    Ok((rows, differences))
}
