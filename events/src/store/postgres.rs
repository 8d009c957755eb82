//! The PostgreSQL event store.
//!
//! Appends are one call of the `append_to_stream` function (see the migration), so an append
//! costs one round trip and one commit. Readers of the global log see only events whose
//! transaction is older than the oldest running one, which, with positions taken in
//! transaction-id order, means a reader never passes a position that may still commit.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use sqlx::postgres::{PgDatabaseError, PgPoolOptions};
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use super::{
    AppendRequest, AppendResult, EventStore, EventStream, ExpectedRevision, Position,
    RecordedEvent, StoreError, UniqueClaim,
};

/// Raised by `append_to_stream` (see the migration).
const WRONG_EXPECTED_REVISION: &str = "UL001";
const CLAIM_TAKEN: &str = "UL002";

/// How many events a subscription reads per query while it catches up.
const SUBSCRIPTION_BATCH: usize = 1_000;
/// How often an idle subscription looks for events written by other processes. Appends made
/// through this store wake its subscriptions at once.
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// An append with `ExpectedRevision::Any` that races another writer retries this many times.
const ANY_REVISION_ATTEMPTS: usize = 10;

#[derive(Clone)]
pub struct PostgresEventStore {
    pool: PgPool,
    appended: Arc<Notify>,
    poll_interval: Duration,
}

impl PostgresEventStore {
    /// Connects with a pool of `max_connections` and brings the schema up to date.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(StoreError::backend)?;
        Self::migrate(&pool).await?;
        Ok(Self::new(pool))
    }

    /// Wraps a pool whose schema is already migrated.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            appended: Arc::new(Notify::new()),
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }

    pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations")
            .run(pool)
            .await
            .map_err(StoreError::backend)
    }

    pub fn with_poll_interval(mut self, poll_interval: Duration) -> Self {
        self.poll_interval = poll_interval;
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Appends inside a transaction of the caller's, which must not have written anything yet
    /// (the store function refuses otherwise). The events become visible to readers when that
    /// transaction commits.
    pub async fn append_within(
        transaction: &mut sqlx::PgConnection,
        request: &AppendRequest,
    ) -> Result<AppendResult, StoreError> {
        call_append(transaction, request).await
    }
}

async fn call_append<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
    request: &AppendRequest,
) -> Result<AppendResult, StoreError> {
    let (expected_kind, expected) = match request.expected {
        ExpectedRevision::Any => ("any", None),
        ExpectedRevision::NoStream => ("no_stream", None),
        ExpectedRevision::Exact(revision) => ("exact", Some(to_i64(revision)?)),
    };
    let events = &request.events;
    // Claims in one order everywhere, so two appends claiming the same values cannot
    // deadlock.
    let mut claims: Vec<&UniqueClaim> = request.claims.iter().collect();
    claims.sort();
    claims.dedup();

    let row: (i64, i64, i64) = sqlx::query_as(
        "SELECT revision, first_position, last_position \
               FROM append_to_stream($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&request.stream)
    .bind(expected_kind)
    .bind(expected)
    .bind(events.iter().map(|e| e.event_id).collect::<Vec<Uuid>>())
    .bind(
        events
            .iter()
            .map(|e| e.event_type.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(events.iter().map(|e| &e.data).collect::<Vec<_>>())
    .bind(events.iter().map(|e| &e.metadata).collect::<Vec<_>>())
    .bind(claims.iter().map(|c| c.kind()).collect::<Vec<_>>())
    .bind(claims.iter().map(|c| c.value()).collect::<Vec<_>>())
    .bind(
        request
            .releases
            .iter()
            .map(|c| c.kind())
            .collect::<Vec<_>>(),
    )
    .bind(
        request
            .releases
            .iter()
            .map(|c| c.value())
            .collect::<Vec<_>>(),
    )
    .fetch_one(executor)
    .await
    .map_err(|error| append_error(request, error))?;

    let (revision, first, last) = row;
    Ok(AppendResult {
        revision: revision as u64,
        first_position: Position::at(first as u64),
        position: Position::at(last as u64),
    })
}

#[async_trait]
impl EventStore for PostgresEventStore {
    #[tracing::instrument(skip_all, fields(stream = %request.stream, events = request.events.len()))]
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        if request.events.is_empty() {
            return Err(StoreError::InvalidAppend(
                "an append needs at least one event".into(),
            ));
        }
        let attempts = match request.expected {
            ExpectedRevision::Any => ANY_REVISION_ATTEMPTS,
            _ => 1,
        };
        let mut attempt = 1;
        loop {
            match call_append(&self.pool, &request).await {
                Err(StoreError::WrongExpectedRevision { .. }) if attempt < attempts => {
                    attempt += 1;
                }
                Ok(result) => {
                    self.appended.notify_waiters();
                    return Ok(result);
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_revision: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT position, stream_id, revision, event_id, event_type, data, metadata, recorded_at \
               FROM events WHERE stream_id = $1 AND revision >= $2 ORDER BY revision",
        )
        .bind(stream)
        .bind(to_i64(from_revision)?)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::backend)?;
        Ok(rows.into_iter().map(RecordedEvent::from).collect())
    }

    async fn read_all(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        read_all(&self.pool, after, limit).await
    }

    fn subscribe_all(&self, after: Option<Position>) -> EventStream {
        let state = Subscription {
            pool: self.pool.clone(),
            appended: self.appended.clone(),
            poll_interval: self.poll_interval,
            after,
            buffered: std::collections::VecDeque::new(),
        };
        futures::stream::unfold(state, |mut state| async move {
            match state.next().await {
                Ok(event) => Some((Ok(event), state)),
                Err(error) => Some((Err(error), state)),
            }
        })
        .boxed()
    }
}

async fn read_all(
    pool: &PgPool,
    after: Option<Position>,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let after = after.map_or(Ok(0), |p| to_i64(p.commit))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // pg_current_snapshot() is this statement's snapshot: every transaction below its xmin has
    // finished, and (positions being taken in transaction-id order) every event that may still
    // commit lies above the events returned here.
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT position, stream_id, revision, event_id, event_type, data, metadata, recorded_at \
           FROM events \
          WHERE position > $1 AND tx < pg_snapshot_xmin(pg_current_snapshot()) \
          ORDER BY position LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(StoreError::backend)?;
    Ok(rows.into_iter().map(RecordedEvent::from).collect())
}

struct Subscription {
    pool: PgPool,
    appended: Arc<Notify>,
    poll_interval: Duration,
    after: Option<Position>,
    buffered: std::collections::VecDeque<RecordedEvent>,
}

impl Subscription {
    async fn next(&mut self) -> Result<RecordedEvent, StoreError> {
        loop {
            if let Some(event) = self.buffered.pop_front() {
                self.after = Some(event.position);
                return Ok(event);
            }
            // Register interest before reading, so an append that lands between the read and
            // the wait still wakes us.
            let appended = self.appended.notified();
            tokio::pin!(appended);
            appended.as_mut().enable();
            let batch = read_all(&self.pool, self.after, SUBSCRIPTION_BATCH).await?;
            if batch.is_empty() {
                let _ = tokio::time::timeout(self.poll_interval, appended).await;
            }
            self.buffered.extend(batch);
        }
    }
}

#[derive(sqlx::FromRow)]
struct EventRow {
    position: i64,
    stream_id: String,
    revision: i64,
    event_id: Uuid,
    event_type: String,
    data: serde_json::Value,
    metadata: serde_json::Value,
    recorded_at: DateTime<Utc>,
}

impl From<EventRow> for RecordedEvent {
    fn from(row: EventRow) -> Self {
        RecordedEvent {
            stream: row.stream_id,
            revision: row.revision as u64,
            position: Position::at(row.position as u64),
            event_id: row.event_id,
            event_type: row.event_type,
            data: row.data,
            metadata: row.metadata,
            recorded_at: row.recorded_at,
        }
    }
}

/// The one place where the store function's errors become domain errors.
fn append_error(request: &AppendRequest, error: sqlx::Error) -> StoreError {
    let Some(db) = error
        .as_database_error()
        .and_then(|e| e.try_downcast_ref::<PgDatabaseError>())
    else {
        return StoreError::backend(error);
    };
    match db.code() {
        WRONG_EXPECTED_REVISION => StoreError::WrongExpectedRevision {
            stream: request.stream.clone(),
            expected: request.expected,
            actual: db.detail().and_then(|d| d.parse().ok()),
        },
        CLAIM_TAKEN => StoreError::ClaimTaken {
            claim: UniqueClaim::new(
                db.detail().unwrap_or_default(),
                db.hint().unwrap_or_default(),
            ),
        },
        _ => StoreError::backend(error),
    }
}

fn to_i64(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::InvalidAppend(format!("{value} is out of range")))
}
