//! The command pipeline: load the stream, decide, seal the events onto the stream's hash chain,
//! append at the revision the decision was made on, and on a conflict reload and decide again
//! (a bounded number of times). Invariant 1.
//!
//! Every append states the revision it decided on (never `Any`), so the events are sealed
//! knowing their predecessor: the hash chain costs no extra read or round trip.
//!
//! Commands on one stream in one process take turns ([`turn`]) to decide: each decides on the
//! state its predecessor left ([`Snapshot`]), without decoding the stream again, so concurrent
//! requests on a hot stream queue instead of racing to conflict and retry. The turn is held
//! only while deciding: commands that decide while an earlier append to their stream is on its
//! way are appended together, in one request, when it lands ([`Batch`]), so a hot stream takes
//! one round trip per batch instead of one per command. Conflicts, and their retries, remain
//! for writes from other processes.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use events::audit::ChainHead;
use events::metadata::{encode_all, CommandContext};
use events::store::{
    AppendRequest, AppendResult, EventStore, ExpectedRevision, NewEvent, Position, StoreError,
    UniqueClaim,
};
use events::{uniqueness_changes, Aggregate, DomainError, Loaded, UniquenessChanges};
use serde_json::json;

use crate::stream_cache::STREAM_CACHE_TTL;

use http_edge::envelope::ApiError;

/// What a command did: the state after it, the events it appended (none when nothing
/// changed), and the log position of its last event (the consistency token).
#[derive(Debug)]
pub struct Outcome<A: Aggregate> {
    pub state: A::State,
    pub events: Vec<A::Event>,
    pub position: Option<Position>,
    /// The stream's revision after the command's last event (`None` when nothing changed).
    pub revision: Option<u64>,
}

/// Why a command failed.
#[derive(Debug)]
pub enum Failure {
    /// A unique value (username, email, client id, role id) another stream holds.
    Taken(UniqueClaim),
    Api(ApiError),
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Failure::Api(error)
    }
}

impl From<DomainError> for Failure {
    fn from(error: DomainError) -> Self {
        Failure::Api(domain_error(error))
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::ClaimTaken { claim } => Failure::Taken(claim),
            other => Failure::Api(ApiError::from(other)),
        }
    }
}

/// Unless a route says otherwise, a taken value is 409 ResourceConflict naming the field,
/// except a role id: 400 DuplicateResource (API.md §1).
impl From<Failure> for ApiError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Api(error) => error,
            Failure::Taken(claim) => taken(&claim),
        }
    }
}

pub fn taken(claim: &UniqueClaim) -> ApiError {
    match claim.kind() {
        events::role::ROLE_ID_CLAIM => ApiError::Refused {
            code: "DuplicateResource",
            info: Some(json!({ "duplicateFields": ["id"] })),
        },
        events::application::CLIENT_ID_CLAIM => {
            ApiError::ResourceConflict(json!({ "duplicateFields": ["id"] }))
        }
        kind => ApiError::ResourceConflict(json!({ "duplicateFields": [kind] })),
    }
}

/// The one place where the aggregates' refusals become the contract's errors.
pub fn domain_error(error: DomainError) -> ApiError {
    let message = error.to_string();
    match error {
        DomainError::NotFound => ApiError::not_found(),
        DomainError::AlreadyExists => {
            ApiError::ResourceConflict(json!({ "reason": "it already exists" }))
        }
        DomainError::InsufficientCredits { balance, requested } => ApiError::Refused {
            code: "InsufficientCredits",
            info: Some(json!({ "credits": balance, "requested": requested })),
        },
        DomainError::GenerationTargetExceededForRequest { requested, max } => ApiError::Refused {
            code: "GenerationTargetExceededForRequest",
            info: Some(json!({ "requested": requested, "max": max })),
        },
        DomainError::SystemRoleUpdate => ApiError::refused("SystemRoleUpdate"),
        DomainError::SystemRoleDelete => ApiError::refused("SystemRoleDelete"),
        DomainError::Blocked => ApiError::Blocked,
        DomainError::CreditsOverflow { .. }
        | DomainError::InviteCodeAlreadyExists(_)
        | DomainError::InviteCodeNotFound(_)
        | DomainError::InviteCodeAlreadyRedeemed(_)
        | DomainError::PublicClientWithSecret
        | DomainError::PublicClientWithClientCredentials
        | DomainError::ConfidentialClientWithoutSecret
        | DomainError::SelfRelation => ApiError::ClientInput(
            json!({ "errors": [{ "type": "field", "msg": message, "location": "body" }] }),
        ),
    }
}

/// A random pause before deciding again, growing with the attempts (up to 64 ms), so that
/// writers racing on one stream spread out instead of colliding again in step.
fn backoff(attempt: usize) -> std::time::Duration {
    use rand::Rng;
    let ceiling_micros = 500u64 << attempt.min(7);
    std::time::Duration::from_micros(rand::rng().random_range(0..=ceiling_micros))
}

/// Turns are kept per stripe of streams: a stream's commands share a stripe, and two streams
/// rarely do (which only makes one wait for the other's decision; each keeps its snapshot).
/// Each stripe costs about 100 bytes, plus the states of its [`Snapshots`].
const STRIPES: usize = 65_536;

/// Where a stream stands after the last command on it in this process: its state, revision
/// and chain head, counting the events of batches still on their way to the store. Trusted for
/// [`STREAM_CACHE_TTL`] after the stream was read, as the stream cache is: a write from
/// elsewhere shows as a conflict, and the stream is then read again.
struct Snapshot {
    store: usize,
    stream: String,
    revision: Option<u64>,
    head: ChainHead,
    state: Box<dyn Any + Send>,
    read_at: Instant,
    /// The last batch whose events `state` counts.
    pending: Option<Arc<Batch>>,
}

impl Snapshot {
    fn is_of(&self, store: &dyn EventStore, stream: &str) -> bool {
        self.store == store_key(store) && self.stream == stream
    }

    /// The state it holds, as `A`'s.
    fn loaded<A: Aggregate>(self) -> Option<Loaded<A>>
    where
        A::State: 'static,
    {
        Some(Loaded {
            state: *self.state.downcast::<A::State>().ok()?,
            revision: self.revision,
            head: self.head,
        })
    }

    /// Whether the last batch it counts is still on its way.
    fn in_flight(&self) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|batch| batch.landing.borrow().is_none())
    }

    /// Whether every event it counts is in the store.
    fn acknowledged(&self) -> bool {
        self.pending.as_ref().is_none_or(|batch| batch.appended())
    }

    /// Whether a command may decide on it: while the last batch it counts is on its way, or
    /// while it is fresh; never once a batch it counts has failed (the stream is then read
    /// again).
    fn decidable(&self) -> bool {
        let landing = self.pending.as_ref().map(|batch| batch.landing.borrow());
        match landing.as_deref() {
            Some(None) => true,
            None | Some(Some(Landing::Appended(_))) => self.read_at.elapsed() < STREAM_CACHE_TTL,
            Some(Some(Landing::Conflict | Landing::Failed(_))) => false,
        }
    }
}

/// A stream's state as a command in its turn finds it.
struct Current<A: Aggregate> {
    loaded: Loaded<A>,
    read_at: Instant,
    pending: Option<Arc<Batch>>,
}

impl<A: Aggregate> Current<A>
where
    A::State: Send + 'static,
{
    /// `stream` as a command in its turn finds it: the turn's snapshot when it may be decided
    /// on (taking it); otherwise the stream as the store has it, read only after the snapshot
    /// when every event it counts is stored.
    async fn of(turn: &mut Turn, store: &dyn EventStore, stream: &str) -> Result<Self, ApiError> {
        match turn.take(store, stream) {
            Some(snapshot) if snapshot.decidable() => {
                let (read_at, pending) = (snapshot.read_at, snapshot.pending.clone());
                match snapshot.loaded::<A>() {
                    Some(loaded) => Ok(Self {
                        loaded,
                        read_at,
                        pending,
                    }),
                    None => Self::read(store, stream, None).await,
                }
            }
            Some(snapshot) if snapshot.acknowledged() => {
                Self::read(store, stream, snapshot.loaded::<A>()).await
            }
            _ => Self::read(store, stream, None).await,
        }
    }

    /// The stream as the store has it: `known` (its state as of a revision) with the events
    /// after it, or the whole stream.
    async fn read(
        store: &dyn EventStore,
        stream: &str,
        known: Option<Loaded<A>>,
    ) -> Result<Self, ApiError> {
        let read_at = Instant::now();
        let known = known.unwrap_or_default();
        let rest = store.read_stream(stream, known.next_revision()).await?;
        Ok(Self {
            loaded: known.followed_by(&rest).map_err(ApiError::internal)?,
            read_at,
            pending: None,
        })
    }

    /// Leaves this as the turn's snapshot of `stream` for the next command.
    fn leave(self, turn: &mut Turn, store: &dyn EventStore, stream: &str) {
        turn.keep(Snapshot {
            store: store_key(store),
            stream: stream.to_owned(),
            revision: self.loaded.revision,
            head: self.loaded.head,
            state: Box::new(self.loaded.state),
            read_at: self.read_at,
            pending: self.pending,
        });
    }
}

/// The snapshots a stripe keeps: those of the streams last decided on in it, the latest first.
/// More than one, so that two busy streams sharing a stripe do not push each other out (a
/// stream without its snapshot is read again, and a long one costs a long read).
struct Snapshots(Vec<Snapshot>);

/// Snapshots kept per stripe: at most 131,072 states in all.
const SNAPSHOTS_PER_STRIPE: usize = 2;

impl Snapshots {
    /// Takes `stream`'s snapshot, if the stripe keeps one.
    fn take(&mut self, store: &dyn EventStore, stream: &str) -> Option<Snapshot> {
        let index = self.0.iter().position(|s| s.is_of(store, stream))?;
        Some(self.0.remove(index))
    }

    /// `stream`'s snapshot, left in place.
    fn get(&self, store: &dyn EventStore, stream: &str) -> Option<&Snapshot> {
        self.0.iter().find(|s| s.is_of(store, stream))
    }

    /// Keeps `snapshot` as its stream's, in place of any before it; the oldest of the others
    /// goes when the stripe is full.
    fn keep(&mut self, snapshot: Snapshot) {
        self.0
            .retain(|s| s.store != snapshot.store || s.stream != snapshot.stream);
        self.0.insert(0, snapshot);
        self.0.truncate(SNAPSHOTS_PER_STRIPE);
    }
}

/// Commands on one stream that decided one after another while an earlier append to it was on
/// its way: their events go to the store in one append, sent by the first of them (the
/// leader) once the batch before it has landed. A lone command sends at once; a command that
/// claims or releases a unique value is a batch of its own.
struct Batch {
    /// The append, while the batch is open to more commands; the leader takes it to send it.
    request: std::sync::Mutex<Option<AppendRequest>>,
    /// The batch before it, whose events its commands counted.
    previous: std::sync::Mutex<Option<Arc<Batch>>>,
    landing: tokio::sync::watch::Sender<Option<Landing>>,
}

/// How a batch's append ended.
#[derive(Clone)]
enum Landing {
    Appended(AppendResult),
    /// The stream was not where its commands decided it was: they decide again.
    Conflict,
    Failed(Arc<StoreError>),
}

fn locked<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Batch {
    fn new(request: AppendRequest, previous: Option<Arc<Batch>>) -> Arc<Self> {
        Arc::new(Self {
            request: std::sync::Mutex::new(Some(request)),
            previous: std::sync::Mutex::new(previous),
            landing: tokio::sync::watch::Sender::new(None),
        })
    }

    /// Adds `events` to the batch when it is still open to them (it has not been sent, and
    /// neither it nor they change unique values).
    fn join(&self, events: &mut Vec<NewEvent>, changes: &UniquenessChanges) -> bool {
        let mut request = locked(&self.request);
        match request.as_mut() {
            Some(open)
                if changes.is_empty() && open.claims.is_empty() && open.releases.is_empty() =>
            {
                open.events.append(events);
                true
            }
            _ => false,
        }
    }

    fn appended(&self) -> bool {
        matches!(*self.landing.borrow(), Some(Landing::Appended(_)))
    }

    async fn landed(&self) -> Landing {
        let mut landing = self.landing.subscribe();
        let landed = landing
            .wait_for(Option::is_some)
            .await
            .expect("the batch holds its sender");
        landed.clone().expect("waited for it")
    }

    /// The leader's part: waits for the batch before, closes this one and appends it. Commands
    /// that counted a batch that did not land decide again. Should the leader's request be
    /// dropped on the way (its client gone), the batch's commands answer an error, for their
    /// events may or may not be stored, and the batches after it decide again.
    async fn send(&self, store: &dyn EventStore) -> Landing {
        let cancelled = CancelledLeader(self);
        let landing = self.append(store).await;
        std::mem::forget(cancelled);
        landing
    }

    async fn append(&self, store: &dyn EventStore) -> Landing {
        let previous = locked(&self.previous).take();
        let previous_landed = match previous {
            Some(previous) => matches!(previous.landed().await, Landing::Appended(_)),
            None => true,
        };
        let request = locked(&self.request).take().expect("a batch is sent once");
        let landing = if !previous_landed {
            Landing::Conflict
        } else {
            match store.append(request).await {
                Ok(appended) => Landing::Appended(appended),
                Err(StoreError::WrongExpectedRevision { .. }) => Landing::Conflict,
                Err(error) => Landing::Failed(Arc::new(error)),
            }
        };
        self.landing.send_replace(Some(landing.clone()));
        landing
    }
}

/// Lands a batch whose leader was dropped before it knew how its append ended: closed, if it
/// was not sent yet.
struct CancelledLeader<'a>(&'a Batch);

impl Drop for CancelledLeader<'_> {
    fn drop(&mut self) {
        let unsent = locked(&self.0.request).take().is_some();
        let landing = if unsent {
            // Nothing was stored: the commands decide again.
            Landing::Conflict
        } else {
            Landing::Failed(Arc::new(StoreError::InvalidAppend(
                "the request that carried this command's append was cancelled; whether it was stored is unknown".into(),
            )))
        };
        self.0.landing.send_replace(Some(landing));
    }
}

/// A stripe's turn, holding its snapshot.
type Turn = tokio::sync::MutexGuard<'static, Snapshots>;

/// Waits for the turn of commands on `stream` of `store` (a process may hold several stores,
/// as a test holds several services): held while the command loads and decides.
async fn turn(store: &dyn EventStore, stream: &str) -> Turn {
    use std::hash::{Hash, Hasher};
    static TURNS: std::sync::LazyLock<Vec<tokio::sync::Mutex<Snapshots>>> =
        std::sync::LazyLock::new(|| {
            (0..STRIPES)
                .map(|_| tokio::sync::Mutex::new(Snapshots(Vec::new())))
                .collect()
        });
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    store_key(store).hash(&mut hasher);
    stream.hash(&mut hasher);
    TURNS[hasher.finish() as usize % STRIPES].lock().await
}

fn store_key(store: &dyn EventStore) -> usize {
    store as *const dyn EventStore as *const () as usize
}

/// Loads the aggregate `id` and its revision as the store has them: from the turn's snapshot
/// when every event it counts is stored, and the stream read confirms its revision.
pub async fn load_aggregate<A: Aggregate>(
    store: &dyn EventStore,
    id: &A::Id,
) -> Result<(A::State, Option<u64>), ApiError>
where
    A::State: Send + 'static,
{
    let stream = A::stream_name(id);
    let mut turn = turn(store, &stream).await;
    match turn.take(store, &stream) {
        // A snapshot counting a batch on its way is the deciding commands': it stays.
        Some(snapshot) if snapshot.in_flight() => {
            turn.keep(snapshot);
            let current = Current::<A>::read(store, &stream, None).await?;
            Ok((current.loaded.state, current.loaded.revision))
        }
        // One counting a failed batch is replaced unread.
        snapshot => {
            let known = snapshot
                .filter(Snapshot::acknowledged)
                .and_then(Snapshot::loaded::<A>);
            let current = Current::<A>::read(store, &stream, known).await?;
            let answer = (current.loaded.state.clone(), current.loaded.revision);
            current.leave(&mut turn, store, &stream);
            Ok(answer)
        }
    }
}

/// The aggregate as the next command on it will find it, for the checks that precede the
/// command (its closure checks again what they depend on): the turn's snapshot while every
/// event it counts is stored and it is trusted as the stream cache is ([`STREAM_CACHE_TTL`]);
/// otherwise as [`load_aggregate`] reads it. Only for a store whose reads are trusted as long
/// (the stream cache): a check on the store itself must see other processes' writes at once.
pub async fn load_known<A: Aggregate>(
    store: &dyn EventStore,
    id: &A::Id,
) -> Result<(A::State, Option<u64>), ApiError>
where
    A::State: Send + 'static,
{
    let stream = A::stream_name(id);
    let known = turn(store, &stream)
        .await
        .get(store, &stream)
        .filter(|snapshot| snapshot.acknowledged() && snapshot.decidable())
        .and_then(|snapshot| {
            let state = snapshot.state.downcast_ref::<A::State>()?;
            Some((state.clone(), snapshot.revision))
        });
    match known {
        Some(known) => Ok(known),
        None => load_aggregate::<A>(store, id).await,
    }
}

/// Runs one command on aggregate `id`: `command` builds the command from the current state
/// (so that checks depending on it, such as ranking, run again after a conflict).
pub async fn execute<A, F>(
    store: &dyn EventStore,
    id: &A::Id,
    context: &CommandContext,
    attempts: usize,
    mut command: F,
) -> Result<Outcome<A>, Failure>
where
    A: Aggregate,
    F: FnMut(&A::State) -> Result<A::Command, Failure>,
    A::State: Send + 'static,
{
    let stream = A::stream_name(id);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut held = turn(store, &stream).await;
        let current = Current::<A>::of(&mut held, store, &stream).await?;
        let decided = command(&current.loaded.state)
            .and_then(|c| Ok(A::decide(&current.loaded.state, c, context)?));
        let events = match decided {
            Ok(events) if !events.is_empty() => events,
            other => {
                let state = current.loaded.state.clone();
                current.leave(&mut held, store, &stream);
                return other.map(|events| Outcome {
                    state,
                    events,
                    position: None,
                    revision: None,
                });
            }
        };
        let mut encoded = encode_all(&events, context).map_err(ApiError::internal)?;
        // Personal data is sealed before the events are chained: the chain is over what is
        // stored.
        if let Err(error) = store.seal(&stream, &mut encoded).await {
            current.leave(&mut held, store, &stream);
            return Err(failure_of(&error));
        }
        let Current {
            loaded,
            read_at,
            pending,
        } = current;
        let changes = uniqueness_changes::<A>(&loaded.state, &events);
        let head = loaded.head.chain(&stream, &mut encoded);
        let revision = loaded.revision.map_or(0, |r| r + 1) + events.len() as u64 - 1;
        let state = events
            .iter()
            .fold(loaded.state, |state, event| A::evolve(state, event));
        let joined = pending
            .as_ref()
            .filter(|batch| batch.join(&mut encoded, &changes))
            .cloned();
        let leader = joined.is_none();
        let batch = joined.unwrap_or_else(|| {
            let mut request = AppendRequest::new(
                stream.clone(),
                ExpectedRevision::from_current(loaded.revision),
                encoded,
            );
            request.claims = changes.claims;
            request.releases = changes.releases;
            Batch::new(request, pending.filter(|batch| !batch.appended()))
        });
        Current::<A> {
            loaded: Loaded {
                state: state.clone(),
                revision: Some(revision),
                head,
            },
            read_at,
            pending: Some(batch.clone()),
        }
        .leave(&mut held, store, &stream);
        drop(held);

        let landing = if leader {
            batch.send(store).await
        } else {
            batch.landed().await
        };
        match landing {
            Landing::Appended(appended) => {
                return Ok(Outcome {
                    state,
                    events,
                    position: Some(appended.position),
                    revision: Some(revision),
                })
            }
            Landing::Conflict => after_conflict::<A>(&stream, attempt, attempts).await?,
            Landing::Failed(error) => return Err(failure_of(&error)),
        }
    }
}

/// What a member of a batch that failed answers.
fn failure_of(error: &StoreError) -> Failure {
    match error {
        StoreError::ClaimTaken { claim } => Failure::Taken(claim.clone()),
        // The person was erased while the command was decided.
        StoreError::Erased { .. } => Failure::Api(ApiError::not_found()),
        StoreError::Unreachable(cause) => {
            tracing::warn!(error = %cause, "the event store is unreachable");
            Failure::Api(ApiError::unreachable())
        }
        other => Failure::Api(ApiError::internal(anyhow::anyhow!("{other}"))),
    }
}

/// Appends `events` to aggregate `id`'s stream as facts that depend on nothing before them (a
/// sign-in attempt): nothing is decided, so the stream is not loaded; only its last event is
/// read, for the revision to append at and the chain hash to continue. A conflict is retried
/// as [`execute`] retries. For aggregates that hold no unique values.
pub async fn append_facts<A: Aggregate>(
    store: &dyn EventStore,
    id: &A::Id,
    context: &CommandContext,
    attempts: usize,
    events: &[A::Event],
) -> Result<Position, ApiError> {
    let stream = A::stream_name(id);
    let _turn = turn(store, &stream).await;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let last = store.last_event(&stream).await?;
        let (revision, head) = match last.as_ref().map(|last| (last, ChainHead::after(last))) {
            None => (None, ChainHead::default()),
            Some((last, Some(head))) => (Some(last.revision), head),
            // Written before the hash chain: the head is computed from the whole stream.
            Some((last, None)) => (
                Some(last.revision),
                ChainHead::of(&store.read_stream(&stream, 0).await?),
            ),
        };
        let mut encoded = encode_all(events, context).map_err(ApiError::internal)?;
        store.seal(&stream, &mut encoded).await?;
        head.chain(&stream, &mut encoded);
        let request = AppendRequest::new(
            stream.clone(),
            ExpectedRevision::from_current(revision),
            encoded,
        );
        match store.append(request).await {
            Ok(appended) => return Ok(appended.position),
            Err(StoreError::WrongExpectedRevision { .. }) => {
                after_conflict::<A>(&stream, attempt, attempts).await?;
            }
            Err(other) => return Err(other.into()),
        }
    }
}

/// After a conflict on `stream`: waits to try again, or, when `attempts` are spent, the
/// caller's answer.
async fn after_conflict<A: Aggregate>(
    stream: &str,
    attempt: usize,
    attempts: usize,
) -> Result<(), ApiError> {
    metrics::counter!("userledger_command_conflicts_total", "aggregate" => A::CATEGORY)
        .increment(1);
    if attempt >= attempts {
        return Err(ApiError::ResourceConflict(json!({
            "reason": "the target kept changing; retry the request"
        })));
    }
    tracing::debug!(%stream, attempt, "conflict; deciding again");
    metrics::counter!("userledger_command_retries_total", "aggregate" => A::CATEGORY).increment(1);
    tokio::time::sleep(backoff(attempt)).await;
    Ok(())
}
