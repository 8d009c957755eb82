//! The PostgreSQL event store.
//!
//! Appends are written by a few writer tasks that take turns at a queue (`group_commit`): a
//! lone append is written at once, and appends that arrive together share one transaction, one
//! INSERT statement for their events and one WAL flush, each keeping its own expected revision
//! and claims. An append without uniqueness claims is a row set of that INSERT; an append with
//! claims (creates, renames, deletes) releases, claims and inserts inside a savepoint of its
//! own, so that a claim already taken fails that append alone.
//!
//! Gap-free reading: a transaction may commit after another that wrote later. Readers expose
//! only events whose transaction id is below the oldest running transaction
//! (`pg_snapshot_xmin`), and an event's position is derived from its transaction id
//! (`(xid << 16) + its index in the transaction`), so every event a reader may still have to
//! wait for lies above every event it has been shown. No lock or sequence is shared by writers.

pub mod encrypt_history;
mod group_commit;
mod reachability;
mod tail;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use uuid::Uuid;

use events::store::{
    AppendRequest, AppendResult, EventStore, EventStream, ExpectedRevision, Position,
    RecordedEvent, StoreError, UniqueClaim,
};

/// How many events a subscription reads per query while it catches up.
const SUBSCRIPTION_BATCH: usize = 5_000;
/// How long [`EventStore::settled`] waits for the transactions below a position.
const SETTLE_LIMIT: Duration = Duration::from_secs(5);
/// How often an idle subscription looks for events written by other processes. Appends made
/// through this store wake its subscriptions at once.
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// A pooled connection idle this long is pinged before it is used again.
const CHECK_IDLE_CONNECTIONS_AFTER: Duration = Duration::from_secs(30);
/// An append with `ExpectedRevision::Any` that races another writer retries this many times.
const ANY_REVISION_ATTEMPTS: usize = 10;
/// Events one transaction may append: the low 16 bits of a position.
const EVENTS_PER_TRANSACTION: usize = 1 << 16;

/// The unique constraint that makes the loser of a race for a revision fail.
const STREAM_REVISION_KEY: &str = "events_stream_revision_key";

/// Appends the events of several streams, one row of the arrays per event: its stream, the
/// revision its append expects (-1 for no stream, null for any revision) and its place `k` in
/// its append (from 1). Each event goes after its stream's last revision when that is the
/// expected one; the statement's snapshot does not see its own rows, so all the events of an
/// append see the same last revision, and an append whose revision does not hold gets no rows
/// at all. `$1` is the number of events the transaction appended before. A concurrent append of
/// the same revision fails the statement on the unique `(stream_id, revision)`. No join and no
/// sort: a group costs one index lookup per event.
const INSERT_EVENTS: &str = "\
    INSERT INTO events (position, stream_id, revision, tx, event_id, event_type, data, metadata) \
    SELECT (pg_current_xact_id()::text::bigint << 16) + $1 + e.i - 1, e.stream, current.revision + e.k, \
           pg_current_xact_id(), e.id, e.t, e.d, e.m \
      FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::uuid[], $6::text[], $7::jsonb[], $8::jsonb[]) \
           WITH ORDINALITY AS e(stream, expected, k, id, t, d, m, i), \
           LATERAL (SELECT coalesce(max(revision), -1) AS revision \
                      FROM events WHERE stream_id = e.stream) current \
     WHERE e.expected IS NULL OR e.expected = current.revision \
    RETURNING stream_id, position, revision";

#[derive(Clone)]
pub struct PostgresEventStore {
    pool: PgPool,
    appended: Arc<Notify>,
    /// The log's tail, read once for all of this store's subscriptions.
    tail: Arc<tail::Tail>,
    writers: group_commit::Writers,
    poll_interval: Duration,
    reachability: Arc<reachability::Reachability>,
}

impl PostgresEventStore {
    /// Connects with a pool of `max_connections` and brings the schema up to date.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = pool_options(max_connections)
            .connect(url)
            .await
            .map_err(store_error)?;
        Self::migrate(&pool).await?;
        Ok(Self::new(pool))
    }

    /// Wraps a pool whose schema is already migrated, with [`group_commit::WRITERS`] writer
    /// tasks (spawned on the current Tokio runtime; they end with the last clone of the store).
    pub fn new(pool: PgPool) -> Self {
        let appended = Arc::new(Notify::new());
        Self {
            writers: group_commit::Writers::start(&pool, &appended, group_commit::WRITERS),
            tail: Arc::new(tail::Tail::new(pool.clone())),
            pool,
            appended,
            poll_interval: DEFAULT_POLL_INTERVAL,
            reachability: Arc::default(),
        }
    }

    /// The same store with `writers` writer tasks instead: at most that many groups of appends
    /// are in flight at once.
    pub fn with_writers(mut self, writers: usize) -> Self {
        self.writers = group_commit::Writers::start(&self.pool, &self.appended, writers);
        self
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

    /// Appends inside a transaction of the caller's; the events become visible when it
    /// commits. A transaction may append several times.
    pub async fn append_within(
        &self,
        transaction: &mut PgConnection,
        request: &AppendRequest,
    ) -> Result<AppendResult, StoreError> {
        let appended_before: i32 = sqlx::query_scalar(
            "SELECT coalesce(nullif(current_setting('userledger.events_in_transaction', true), ''), '0')::int",
        )
        .fetch_one(&mut *transaction)
        .await
        .map_err(store_error)?;
        let result = append_in(
            &self.pool,
            &mut *transaction,
            request,
            appended_before as usize,
        )
        .await?;
        sqlx::query("SELECT set_config('userledger.events_in_transaction', $1, true)")
            .bind((appended_before as usize + request.events.len()).to_string())
            .execute(&mut *transaction)
            .await
            .map_err(store_error)?;
        Ok(result)
    }
}

/// How long a statement waits for a connection (a new one is tried meanwhile) before the
/// store counts as unreachable: a caller then gets 503 and Retry-After, not a hung request.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether `error` says the server cannot be reached now: no connection could be made or
/// kept, none came free in time, or the server is shutting down or starting.
pub fn unreachable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // Class 08: connection exceptions (but a protocol violation, 08P01, is a bug);
        // 53300: too many connections; 57P01-57P03: shutting down, crashed, starting.
        sqlx::Error::Database(error) => error.code().is_some_and(|code| {
            (code.starts_with("08") && code != "08P01")
                || matches!(&*code, "53300" | "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

/// The store's error for a failed statement: [`StoreError::Unreachable`] when the server could
/// not be reached.
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    if unreachable(&error) {
        StoreError::Unreachable(Box::new(error))
    } else {
        StoreError::backend(error)
    }
}

/// A pool's options: connections checked only when idle long enough to have been cut (a
/// restarted server, a proxy's idle timeout), not pinged before every statement (sqlx's
/// default), which doubles the round trips of every read and append.
pub fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for >= CHECK_IDLE_CONNECTIONS_AFTER {
                    sqlx::Connection::ping(connection).await?;
                }
                Ok(true)
            })
        })
}

/// One append in its own transaction (a single statement without claims), decided again while
/// an append at any revision races other writers.
async fn append_alone(pool: &PgPool, request: &AppendRequest) -> Result<AppendResult, StoreError> {
    let attempts = match request.expected {
        ExpectedRevision::Any => ANY_REVISION_ATTEMPTS,
        _ => 1,
    };
    let mut attempt = 1;
    loop {
        match append_once(pool, request).await {
            Err(StoreError::WrongExpectedRevision { .. }) if attempt < attempts => attempt += 1,
            outcome => return outcome,
        }
    }
}

async fn append_once(pool: &PgPool, request: &AppendRequest) -> Result<AppendResult, StoreError> {
    if request.claims.is_empty() && request.releases.is_empty() {
        let mut connection = pool.acquire().await.map_err(store_error)?;
        return append_in(pool, &mut connection, request, 0).await;
    }
    let mut transaction = pool.begin().await.map_err(store_error)?;
    let result = append_in(pool, &mut transaction, request, 0).await?;
    transaction.commit().await.map_err(store_error)?;
    Ok(result)
}

/// Releases, claims and events, on `connection` (inside a transaction when there are claims or
/// releases). `appended_before` events were appended earlier in the same transaction.
async fn append_in(
    pool: &PgPool,
    connection: &mut PgConnection,
    request: &AppendRequest,
    appended_before: usize,
) -> Result<AppendResult, StoreError> {
    release(connection, request).await?;
    claim(connection, request).await?;
    match insert_events(connection, &[request], appended_before).await {
        Ok(results) => match results.into_iter().next().flatten() {
            Some(result) => Ok(result),
            None => Err(wrong_revision(pool, request).await),
        },
        Err(InsertError::Conflict) => Err(wrong_revision(pool, request).await),
        Err(InsertError::Store(error)) => Err(error),
    }
}

/// Why [`insert_events`] wrote nothing.
enum InsertError {
    /// A concurrent transaction appended one of the revisions first (or the statement was
    /// chosen to break a deadlock): it failed whole, and each member may be decided again.
    Conflict,
    Store(StoreError),
}

/// Inserts the events of `members` (at most one per stream) in one statement: each member's
/// result, in order, or `None` for a member whose expected revision did not hold (none of its
/// events is written). `appended_before` events were appended earlier in the same transaction.
async fn insert_events(
    connection: &mut PgConnection,
    members: &[&AppendRequest],
    appended_before: usize,
) -> Result<Vec<Option<AppendResult>>, InsertError> {
    let events = members.iter().map(|m| m.events.len()).sum::<usize>();
    if appended_before + events > EVENTS_PER_TRANSACTION {
        return Err(InsertError::Store(StoreError::InvalidAppend(format!(
            "at most {EVENTS_PER_TRANSACTION} events can be appended in one transaction"
        ))));
    }
    let mut expected = Vec::with_capacity(members.len());
    for member in members {
        expected.push(match member.expected {
            ExpectedRevision::NoStream => Some(-1),
            ExpectedRevision::Any => None,
            ExpectedRevision::Exact(revision) => {
                Some(to_i64(revision).map_err(InsertError::Store)?)
            }
        });
    }
    // One entry per event: (its append's stream and expected revision, its place, the event).
    let each_event = || {
        members.iter().zip(&expected).flat_map(|(m, expected)| {
            m.events
                .iter()
                .zip(1_i64..)
                .map(move |(e, k)| (m.stream.as_str(), *expected, k, e))
        })
    };
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(INSERT_EVENTS)
        .bind(appended_before as i64)
        .bind(each_event().map(|(s, ..)| s).collect::<Vec<_>>())
        .bind(each_event().map(|(_, x, ..)| x).collect::<Vec<_>>())
        .bind(each_event().map(|(_, _, k, _)| k).collect::<Vec<_>>())
        .bind(each_event().map(|(.., e)| e.event_id).collect::<Vec<_>>())
        .bind(
            each_event()
                .map(|(.., e)| e.event_type.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(each_event().map(|(.., e)| &e.data).collect::<Vec<_>>())
        .bind(each_event().map(|(.., e)| &e.metadata).collect::<Vec<_>>())
        .fetch_all(&mut *connection)
        .await
        .map_err(|error| {
            match is_violation_of(&error, STREAM_REVISION_KEY) || is_deadlock(&error) {
                true => InsertError::Conflict,
                false => InsertError::Store(store_error(error)),
            }
        })?;
    // Rows per stream: (first position, last position, last revision).
    let mut written: std::collections::HashMap<&str, (i64, i64, i64)> =
        std::collections::HashMap::with_capacity(members.len());
    for (stream, position, revision) in &rows {
        let entry = written
            .entry(stream.as_str())
            .or_insert((*position, *position, *revision));
        *entry = (
            entry.0.min(*position),
            entry.1.max(*position),
            entry.2.max(*revision),
        );
    }
    Ok(members
        .iter()
        .map(|member| {
            written
                .get(member.stream.as_str())
                .map(|&(first, last, revision)| AppendResult {
                    revision: revision as u64,
                    first_position: Position::at(first as u64),
                    position: Position::at(last as u64),
                })
        })
        .collect())
}

/// The error of an append whose expected revision did not hold, with the stream's revision as
/// it is now (read outside the failed transaction).
async fn wrong_revision(pool: &PgPool, request: &AppendRequest) -> StoreError {
    let actual: Result<Option<i64>, _> =
        sqlx::query_scalar("SELECT max(revision) FROM events WHERE stream_id = $1")
            .bind(&request.stream)
            .fetch_one(pool)
            .await;
    match actual {
        Ok(actual) => StoreError::WrongExpectedRevision {
            stream: request.stream.clone(),
            expected: request.expected,
            actual: actual.map(|r| r as u64),
        },
        Err(error) => store_error(error),
    }
}

/// Gives up the values this stream holds among `request.releases`; a value held by another
/// stream is left alone.
async fn release(connection: &mut PgConnection, request: &AppendRequest) -> Result<(), StoreError> {
    if request.releases.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "DELETE FROM unique_claims c USING unnest($2::text[], $3::text[]) AS r(kind, value) \
          WHERE c.kind = r.kind AND c.value = r.value AND c.stream_id = $1",
    )
    .bind(&request.stream)
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
    .execute(connection)
    .await
    .map_err(store_error)?;
    Ok(())
}

/// Claims every value of `request.claims` for the stream, or fails with the first one that
/// another stream holds. Claims go in one sorted order everywhere, so two appends claiming the
/// same values wait for each other instead of deadlocking. A claim of a value in flight in
/// another transaction waits for that transaction to end.
async fn claim(connection: &mut PgConnection, request: &AppendRequest) -> Result<(), StoreError> {
    let mut claims: Vec<&UniqueClaim> = request.claims.iter().collect();
    claims.sort();
    claims.dedup();
    for claim in claims {
        let holder: Option<String> = sqlx::query_scalar(
            "WITH claimed AS ( \
                INSERT INTO unique_claims (kind, value, stream_id) VALUES ($1, $2, $3) \
                ON CONFLICT (kind, value) DO NOTHING RETURNING stream_id) \
             SELECT stream_id FROM claimed \
             UNION ALL \
             SELECT stream_id FROM unique_claims WHERE kind = $1 AND value = $2 \
             LIMIT 1",
        )
        .bind(claim.kind())
        .bind(claim.value())
        .bind(&request.stream)
        .fetch_optional(&mut *connection)
        .await
        .map_err(store_error)?;
        if holder.as_deref() != Some(request.stream.as_str()) {
            return Err(StoreError::ClaimTaken {
                claim: claim.clone(),
            });
        }
    }
    Ok(())
}

#[async_trait]
impl EventStore for PostgresEventStore {
    #[tracing::instrument(skip_all, fields(stream = %request.stream, events = request.events.len()))]
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        self.reachability
            .guard(async {
                if request.events.is_empty() {
                    return Err(StoreError::InvalidAppend(
                        "an append needs at least one event".into(),
                    ));
                }
                self.writers.append(request).await
            })
            .await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_revision: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.reachability
            .guard(async {
            let rows: Vec<EventRow> = sqlx::query_as(
                "SELECT position, stream_id, revision, event_id, event_type, data, metadata, recorded_at \
                   FROM events WHERE stream_id = $1 AND revision >= $2 ORDER BY revision",
            )
            .bind(stream)
            .bind(to_i64(from_revision)?)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
            Ok(rows.into_iter().map(RecordedEvent::from).collect())
            })
            .await
    }

    /// Polls the oldest open transaction of the cluster until it is past `position`'s (a
    /// position is its transaction id shifted left 16 bits), for at most
    /// [`SETTLE_LIMIT`]: a transaction held open longer fails the wait.
    async fn settled(&self, position: Position) -> Result<(), StoreError> {
        self.reachability
            .guard(async {
            let transaction = to_i64(position.commit)? >> 16;
            let started = std::time::Instant::now();
            loop {
                let oldest_open: i64 =
                    sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
                        .fetch_one(&self.pool)
                        .await
                        .map_err(store_error)?;
                if oldest_open > transaction {
                    return Ok(());
                }
                if started.elapsed() >= SETTLE_LIMIT {
                    return Err(StoreError::backend(std::io::Error::other(format!(
                        "a transaction below position {position} is still open after {SETTLE_LIMIT:?}"
                    ))));
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            })
            .await
    }

    async fn last_event(&self, stream: &str) -> Result<Option<RecordedEvent>, StoreError> {
        self.reachability
            .guard(async {
            let row: Option<EventRow> = sqlx::query_as(
                "SELECT position, stream_id, revision, event_id, event_type, data, metadata, recorded_at \
                   FROM events WHERE stream_id = $1 ORDER BY revision DESC LIMIT 1",
            )
            .bind(stream)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
            Ok(row.map(RecordedEvent::from))
            })
            .await
    }

    async fn read_streams(&self, streams: &[String]) -> Result<Vec<RecordedEvent>, StoreError> {
        self.reachability
            .guard(async {
                let rows: Vec<EventRow> = sqlx::query_as(
                // One index lookup per wanted stream.
                "SELECT e.position, e.stream_id, e.revision, e.event_id, e.event_type, e.data, \
                        e.metadata, e.recorded_at \
                   FROM unnest($1::text[]) AS wanted(stream) \
                   JOIN events e ON e.stream_id = wanted.stream \
                  ORDER BY e.stream_id, e.revision",
            )
            .bind(streams)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
                Ok(rows.into_iter().map(RecordedEvent::from).collect())
            })
            .await
    }

    async fn read_all(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.reachability
            .guard(async { read_all(&self.pool, after, limit).await })
            .await
    }

    async fn claim_holder(&self, claim: &UniqueClaim) -> Result<Option<String>, StoreError> {
        self.reachability
            .guard(async {
                sqlx::query_scalar(
                    "SELECT stream_id FROM unique_claims WHERE kind = $1 AND value = $2",
                )
                .bind(claim.kind())
                .bind(claim.value())
                .fetch_optional(&self.pool)
                .await
                .map_err(store_error)
            })
            .await
    }

    async fn read_claimed_stream(
        &self,
        claim: &UniqueClaim,
    ) -> Result<Option<(String, Vec<RecordedEvent>)>, StoreError> {
        self.reachability
            .guard(async {
                // A claim is made by an append, so its holder always has events: no rows, no holder.
                let rows: Vec<EventRow> = sqlx::query_as(
                "SELECT e.position, e.stream_id, e.revision, e.event_id, e.event_type, e.data, \
                        e.metadata, e.recorded_at \
                   FROM unique_claims c JOIN events e ON e.stream_id = c.stream_id \
                  WHERE c.kind = $1 AND c.value = $2 \
                  ORDER BY e.revision",
            )
            .bind(claim.kind())
            .bind(claim.value())
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
                let events: Vec<RecordedEvent> =
                    rows.into_iter().map(RecordedEvent::from).collect();
                Ok(events
                    .first()
                    .map(|first| first.stream.clone())
                    .map(|stream| (stream, events)))
            })
            .await
    }

    fn subscribe_all(&self, after: Option<Position>) -> EventStream {
        let state = Subscription {
            tail: self.tail.clone(),
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
    // commit lies above the events returned here. The limit is written in (its callers use a
    // few): with `LIMIT $2` PostgreSQL planned every read anew, as a generic plan's guess of
    // the limit made it look dearer than planning.
    let rows: Vec<EventRow> = sqlx::query_as(&format!(
        "SELECT position, stream_id, revision, event_id, event_type, data, metadata, recorded_at \
           FROM events \
          WHERE position > $1 AND tx < pg_snapshot_xmin(pg_current_snapshot()) \
          ORDER BY position LIMIT {limit}"
    ))
    .bind(after)
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    Ok(rows.into_iter().map(RecordedEvent::from).collect())
}

struct Subscription {
    tail: Arc<tail::Tail>,
    appended: Arc<Notify>,
    poll_interval: Duration,
    after: Option<Position>,
    buffered: std::collections::VecDeque<Arc<RecordedEvent>>,
}

impl Subscription {
    async fn next(&mut self) -> Result<Arc<RecordedEvent>, StoreError> {
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
            let batch = self.tail.read(self.after, SUBSCRIPTION_BATCH).await?;
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

/// Whether `error` is a violation of the named constraint: the one place where a constraint
/// becomes a domain error.
fn is_violation_of(error: &sqlx::Error, constraint: &str) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.constraint())
        .is_some_and(|name| name == constraint)
}

/// Whether PostgreSQL ended `error`'s statement to break a cycle of waiting transactions: it
/// wrote nothing, and may be tried again.
fn is_deadlock(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "40P01")
}

fn to_i64(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::InvalidAppend(format!("{value} is out of range")))
}
