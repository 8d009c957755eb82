//! Group commit: appends that arrive together share one transaction and one WAL flush.
//!
//! At most [`WRITERS`] groups are written at once. An append that finds a writer free is written
//! at once by its caller, never held back for company; otherwise it waits in one queue that the
//! writer tasks drain, taking turns: a writer takes what waits (up to [`MAX_MEMBERS`] appends and
//! [`MAX_EVENTS`] events), and again what arrived while it waited to write. So under load the
//! appends that arrive during a commit share the next one. A group is written as:
//! - one append: alone (one statement without claims, a short transaction with them);
//! - appends without claims: one INSERT of all their events, in autocommit;
//! - appends with claims among them: a transaction in which each of those releases, claims and
//!   inserts inside a savepoint of its own, then the others' one INSERT, then one commit.
//!
//! Each member keeps its own expected revision and claims, and fails alone: a revision that
//! does not hold gives that member no rows, a claim already taken rolls back its savepoint.
//! When the INSERT fails whole because another process appended one of its revisions first (the
//! unique `(stream_id, revision)`), nothing of it was written and its members are appended alone
//! afterwards, each deciding its own fate. A member whose append at any revision lost the race
//! is appended alone again too. Two appends to one stream never share a group: the later waits
//! for the next one, so their order is kept.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use sqlx::{Acquire, PgPool};
use tokio::sync::{mpsc, oneshot, Mutex, Notify, Semaphore};

use events::store::{AppendRequest, AppendResult, ExpectedRevision, StoreError};

use super::{append_alone, append_in, insert_events, wrong_revision, InsertError};

/// Writer tasks of a store: at most this many groups are in flight at once. Two rather than
/// four (measured on two cores, 64 clients, in one session): fewer, larger groups took follows
/// from 0.48-0.49 to 0.50-0.51 of pgbench's raw appends and ban from 0.45 to 0.51.
pub const WRITERS: usize = 2;
/// At most this many appends share a group.
const MAX_MEMBERS: usize = 256;
/// At most this many events share a group (far below the 65,536 of one transaction); a lone
/// larger append is still written, alone.
const MAX_EVENTS: usize = 4_096;

/// The queue of appends, shared by the clones of a store; its writers end with the last one.
#[derive(Clone)]
pub(super) struct Writers {
    queue: mpsc::UnboundedSender<Pending>,
    /// One per writer: held while writing, by a writer task or by a caller writing alone.
    permits: Arc<Semaphore>,
    pool: PgPool,
    appended: Arc<Notify>,
}

/// An append waiting for a writer, and where its outcome goes.
struct Pending {
    request: AppendRequest,
    reply: oneshot::Sender<Result<AppendResult, StoreError>>,
}

impl Writers {
    /// Spawns `writers` writer tasks (at least one) on the current Tokio runtime. Each wakes
    /// `appended` after every group it writes.
    pub(super) fn start(pool: &PgPool, appended: &Arc<Notify>, writers: usize) -> Self {
        let writers = writers.max(1);
        let pool = appends_pool(pool, writers);
        let (queue, waiting) = mpsc::unbounded_channel();
        let waiting = Arc::new(Mutex::new(waiting));
        let permits = Arc::new(Semaphore::new(writers));
        for _ in 0..writers {
            tokio::spawn(write(
                pool.clone(),
                appended.clone(),
                waiting.clone(),
                permits.clone(),
            ));
        }
        Self {
            queue,
            permits,
            pool: pool.clone(),
            appended: appended.clone(),
        }
    }

    /// Appends through the writers; the outcome of this append alone. When a writer is free
    /// (and so nothing waits in the queue: a waiting group is handed the next free permit
    /// first), the caller writes it at once itself, without handing it to a writer task.
    pub(super) async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        if let Ok(_permit) = self.permits.try_acquire() {
            let outcome = append_alone(&self.pool, &request).await;
            if outcome.is_ok() {
                self.appended.notify_waiters();
            }
            return outcome;
        }
        let (reply, outcome) = oneshot::channel();
        self.queue
            .send(Pending { request, reply })
            .map_err(|_| StoreError::Backend("the event store's writers have stopped".into()))?;
        outcome
            .await
            .map_err(|_| StoreError::Backend("the event store's writer stopped".into()))?
    }
}

/// The connections appends are written on, to the store's database: two per writer (a group's
/// own, and one to read a refused stream's revision while it is held), set to plan every
/// statement once (`plan_cache_mode = force_generic_plan`). Otherwise PostgreSQL plans the
/// INSERT anew for each append, its arrays' lengths being parameters, and planning took longer
/// than executing: a lone append took 0.46 ms at p50 instead of 0.34 ms before group commit.
fn appends_pool(pool: &PgPool, writers: usize) -> PgPool {
    super::pool_options(2 * writers as u32)
        .after_connect(|connection, _| {
            Box::pin(async move {
                sqlx::query("SET plan_cache_mode = force_generic_plan")
                    .execute(connection)
                    .await?;
                Ok(())
            })
        })
        .connect_lazy_with((*pool.connect_options()).clone())
}

/// One writer: takes a group, waits for a permit, tops the group up with what arrived
/// meanwhile, writes it and answers its members, until the queue closes.
async fn write(
    pool: PgPool,
    appended: Arc<Notify>,
    waiting: Arc<Mutex<mpsc::UnboundedReceiver<Pending>>>,
    permits: Arc<Semaphore>,
) {
    // Appends taken from the queue whose stream was already in the group: the next group's.
    let mut deferred = VecDeque::new();
    while let Some(mut group) = next_group(&waiting, &mut deferred).await {
        let Ok(_permit) = permits.acquire().await else {
            return;
        };
        group.top_up(&waiting, &mut deferred);
        let group = group.members;
        let members = group.len();
        let outcomes = write_group(&pool, &group).await;
        tracing::debug!(members, "appended a group");
        appended.notify_waiters();
        for (pending, outcome) in group.into_iter().zip(outcomes) {
            // The caller may have gone; what was written stays written.
            let _ = pending.reply.send(outcome);
        }
    }
}

/// The appends deferred from the last group, then what waits in the queue (waiting for one
/// when there is nothing), up to the limits; `None` once the queue is closed and empty.
async fn next_group(
    waiting: &Mutex<mpsc::UnboundedReceiver<Pending>>,
    deferred: &mut VecDeque<Pending>,
) -> Option<Group> {
    let mut group = Group::default();
    let mut later = VecDeque::new();
    for pending in deferred.drain(..) {
        group.offer(pending, &mut later);
    }
    *deferred = later;
    if group.members.is_empty() {
        let first = waiting.lock().await.recv().await?;
        group.offer(first, deferred);
    }
    group.top_up(waiting, deferred);
    Some(group)
}

#[derive(Default)]
struct Group {
    members: Vec<Pending>,
    streams: HashSet<String>,
    events: usize,
}

impl Group {
    /// Takes `pending` into the group, or puts it in `later` when its stream is already in
    /// the group or the group is full (a group always takes its first member).
    fn offer(&mut self, pending: Pending, later: &mut VecDeque<Pending>) {
        let events = pending.request.events.len();
        let fits =
            self.members.is_empty() || (!self.is_full() && self.events + events <= MAX_EVENTS);
        if fits && self.streams.insert(pending.request.stream.clone()) {
            self.events += events;
            self.members.push(pending);
        } else {
            later.push_back(pending);
        }
    }

    /// Takes what waits in the queue, up to the limits, unless another writer is at the queue:
    /// with appends in hand a writer never waits for it, since the writer there may be waiting
    /// for an append that only comes once these are answered.
    fn top_up(
        &mut self,
        waiting: &Mutex<mpsc::UnboundedReceiver<Pending>>,
        later: &mut VecDeque<Pending>,
    ) {
        let Ok(mut waiting) = waiting.try_lock() else {
            return;
        };
        while !self.is_full() {
            match waiting.try_recv() {
                Ok(pending) => self.offer(pending, later),
                Err(_) => break,
            }
        }
    }

    fn is_full(&self) -> bool {
        self.members.len() >= MAX_MEMBERS || self.events >= MAX_EVENTS
    }
}

/// What became of one member of a group.
enum Outcome {
    Decided(Result<AppendResult, StoreError>),
    /// Not written in the group; to be appended alone.
    Alone,
}

/// `error`, which failed a whole group, for one of its members: of the same kind (unreachable
/// or not), with its message.
fn shared(error: &StoreError) -> StoreError {
    match error {
        StoreError::Unreachable(cause) => StoreError::Unreachable(cause.to_string().into()),
        other => StoreError::Backend(other.to_string().into()),
    }
}

/// Writes a group: each member's outcome, in order.
async fn write_group(pool: &PgPool, group: &[Pending]) -> Vec<Result<AppendResult, StoreError>> {
    let requests: Vec<&AppendRequest> = group.iter().map(|p| &p.request).collect();
    if let [request] = requests.as_slice() {
        return vec![append_alone(pool, request).await];
    }
    let outcomes = match write_together(pool, &requests).await {
        Ok(outcomes) => outcomes,
        Err(error) => {
            // The transaction failed, or its commit did not answer: nothing of it is known to
            // be written, and nothing is written again.
            let error = super::store_error(error);
            return requests.iter().map(|_| Err(shared(&error))).collect();
        }
    };
    let mut results = Vec::with_capacity(outcomes.len());
    for (request, outcome) in requests.into_iter().zip(outcomes) {
        results.push(match outcome {
            Outcome::Decided(result) => result,
            Outcome::Alone => append_alone(pool, request).await,
        });
    }
    results
}

/// Writes the members in one transaction (one statement when none has claims).
async fn write_together(
    pool: &PgPool,
    requests: &[&AppendRequest],
) -> Result<Vec<Outcome>, sqlx::Error> {
    let claims = |r: &AppendRequest| !r.claims.is_empty() || !r.releases.is_empty();
    let (claiming, mut plain): (Vec<usize>, Vec<usize>) =
        (0..requests.len()).partition(|&i| claims(requests[i]));
    // Every group inserts its streams in one order, so that two groups never wait for each
    // other's rows in a cycle.
    plain.sort_by_key(|&i| &requests[i].stream);
    let members: Vec<&AppendRequest> = plain.iter().map(|&i| requests[i]).collect();
    let mut outcomes: Vec<Option<Outcome>> = requests.iter().map(|_| None).collect();

    if claiming.is_empty() {
        let mut connection = pool.acquire().await?;
        let written = insert_events(&mut connection, &members, 0).await;
        for (i, outcome) in insert_outcomes(pool, &members, &plain, written).await {
            outcomes[i] = Some(outcome);
        }
        return Ok(outcomes.into_iter().flatten().collect());
    }

    let mut transaction = pool.begin().await?;
    let mut appended = 0;
    for &i in &claiming {
        let request = requests[i];
        let mut savepoint = transaction.begin().await?;
        outcomes[i] = Some(
            match append_in(pool, &mut savepoint, request, appended).await {
                Ok(result) => {
                    savepoint.commit().await?;
                    appended += request.events.len();
                    Outcome::Decided(Ok(result))
                }
                Err(error) => {
                    savepoint.rollback().await?;
                    match error {
                        StoreError::ClaimTaken { .. } | StoreError::InvalidAppend(_) => {
                            Outcome::Decided(Err(error))
                        }
                        StoreError::WrongExpectedRevision { .. }
                            if request.expected != ExpectedRevision::Any =>
                        {
                            Outcome::Decided(Err(error))
                        }
                        // A race at any revision, or a failure of this member's statements
                        // (a deadlock with another process's claims): alone, afterwards.
                        _ => Outcome::Alone,
                    }
                }
            },
        );
    }
    if !plain.is_empty() {
        let mut savepoint = transaction.begin().await?;
        let written = insert_events(&mut savepoint, &members, appended).await;
        match written {
            Ok(_) => savepoint.commit().await?,
            Err(_) => savepoint.rollback().await?,
        }
        for (i, outcome) in insert_outcomes(pool, &members, &plain, written).await {
            outcomes[i] = Some(outcome);
        }
    }
    transaction.commit().await?;
    Ok(outcomes.into_iter().flatten().collect())
}

/// The outcomes of the members of one INSERT (`members[k]` is the group's `indices[k]`).
async fn insert_outcomes(
    pool: &PgPool,
    members: &[&AppendRequest],
    indices: &[usize],
    written: Result<Vec<Option<AppendResult>>, InsertError>,
) -> Vec<(usize, Outcome)> {
    let written = match written {
        Ok(written) => written,
        Err(InsertError::Conflict) => {
            return indices.iter().map(|&i| (i, Outcome::Alone)).collect();
        }
        Err(InsertError::Store(error)) => {
            return indices
                .iter()
                .map(|&i| (i, Outcome::Decided(Err(shared(&error)))))
                .collect();
        }
    };
    let mut outcomes = Vec::with_capacity(members.len());
    for ((request, &i), result) in members.iter().zip(indices).zip(written) {
        outcomes.push((
            i,
            match result {
                Some(result) => Outcome::Decided(Ok(result)),
                None if request.expected == ExpectedRevision::Any => Outcome::Alone,
                None => Outcome::Decided(Err(wrong_revision(pool, request).await)),
            },
        ));
    }
    outcomes
}
