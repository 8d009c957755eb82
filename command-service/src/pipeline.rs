//! The command pipeline: load the stream, decide, seal the events onto the stream's hash chain,
//! append at the revision the decision was made on, and on a conflict reload and decide again
//! (a bounded number of times). Invariant 1.
//!
//! Every append states the revision it decided on (never `Any`), so the events are sealed
//! knowing their predecessor: the hash chain costs no extra read or round trip.
//!
//! Commands on one stream in one process take turns ([`turn`]): each decides on the state its
//! predecessor left (the stream cache holds it), so concurrent requests on a hot stream queue
//! instead of racing to conflict and retry. Conflicts, and their retries, remain for writes
//! from other processes. The turn keeps the state the last command left ([`Snapshot`]), so
//! the next one on the stream decodes only the events after it.

use events::audit::ChainHead;
use events::metadata::{encode_all, CommandContext};
use events::store::{
    AppendRequest, EventStore, ExpectedRevision, Position, StoreError, UniqueClaim,
};
use events::{load, uniqueness_changes, Aggregate, DomainError, Loaded};
use serde_json::json;

use http_edge::envelope::ApiError;

/// What a command did: the state after it, the events it appended (none when nothing
/// changed), and the log position of its last event (the consistency token).
#[derive(Debug)]
pub struct Outcome<A: Aggregate> {
    pub state: A::State,
    pub events: Vec<A::Event>,
    pub position: Option<Position>,
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
        DomainError::CreditsOverflow { .. }
        | DomainError::InviteCodeAlreadyExists(_)
        | DomainError::InviteCodeNotFound(_)
        | DomainError::InviteCodeAlreadyRedeemed(_)
        | DomainError::PublicClientWithSecret
        | DomainError::PublicClientWithClientCredentials
        | DomainError::ConfidentialClientWithoutSecret => ApiError::ClientInput(
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
/// rarely do (which only makes one wait for the other's append).
const STRIPES: usize = 4096;

/// The state the last command on one of a stripe's streams left, kept with the stripe's turn:
/// the next command on that stream decodes and applies only the events after it, instead of
/// the whole stream (a hot user's stream grows by hundreds of events a second).
struct Snapshot {
    store: usize,
    stream: String,
    revision: u64,
    state: Box<dyn std::any::Any + Send>,
}

/// A stripe's turn, holding its snapshot.
type Turn = tokio::sync::MutexGuard<'static, Option<Snapshot>>;

/// Waits for the turn of commands on `stream` of `store` (a process may hold several stores,
/// as a test holds several services): held while the command loads, decides and appends.
async fn turn(store: &dyn EventStore, stream: &str) -> Turn {
    use std::hash::{Hash, Hasher};
    static TURNS: std::sync::LazyLock<Vec<tokio::sync::Mutex<Option<Snapshot>>>> =
        std::sync::LazyLock::new(|| {
            (0..STRIPES)
                .map(|_| tokio::sync::Mutex::new(None))
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

/// Loads `stream` as read, from the turn's snapshot when it is this stream's (taking it: a
/// command that does not leave a new one leaves none).
fn load_in_turn<A: Aggregate>(
    turn: &mut Turn,
    store: &dyn EventStore,
    stream: &str,
    recorded: &[events::store::RecordedEvent],
) -> Result<Loaded<A>, ApiError>
where
    A::State: Send + 'static,
{
    let known = turn
        .take()
        .filter(|s| s.store == store_key(store) && s.stream == stream)
        .and_then(|s| Some((s.revision, *s.state.downcast::<A::State>().ok()?)));
    match known {
        Some((revision, state)) => events::load_after::<A>(recorded, state, revision),
        None => load::<A>(recorded),
    }
    .map_err(ApiError::internal)
}

/// Leaves `state` at `revision` of `stream` in the turn for the next command.
fn leave_snapshot<A: Aggregate>(
    turn: &mut Turn,
    store: &dyn EventStore,
    stream: &str,
    revision: Option<u64>,
    state: &A::State,
) where
    A::State: Send + 'static,
{
    **turn = revision.map(|revision| Snapshot {
        store: store_key(store),
        stream: stream.to_owned(),
        revision,
        state: Box::new(state.clone()),
    });
}

/// Loads the aggregate `id` and its revision.
pub async fn load_aggregate<A: Aggregate>(
    store: &dyn EventStore,
    id: &A::Id,
) -> Result<(A::State, Option<u64>), ApiError> {
    let recorded = store.read_stream_shared(&A::stream_name(id)).await?;
    let loaded = load::<A>(&recorded).map_err(ApiError::internal)?;
    Ok((loaded.state, loaded.revision))
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
    let mut turn = turn(store, &stream).await;
    let mut attempt = 0;
    loop {
        attempt += 1;
        // Shared with the stream cache, not copied; let go before the append, which extends
        // the cached stream in place when nobody else holds it.
        let recorded = store.read_stream_shared(&stream).await?;
        let Loaded {
            state,
            revision,
            head,
        } = load_in_turn::<A>(&mut turn, store, &stream, &recorded)?;
        drop(recorded);
        let events = A::decide(&state, command(&state)?, context)?;
        if events.is_empty() {
            leave_snapshot::<A>(&mut turn, store, &stream, revision, &state);
            return Ok(Outcome {
                state,
                events,
                position: None,
            });
        }
        let changes = uniqueness_changes::<A>(&state, &events);
        let mut encoded = encode_all(&events, context).map_err(ApiError::internal)?;
        // Chained to the stream as loaded: an append at any other revision is refused anyway.
        head.seal(&stream, &mut encoded);
        let mut request = AppendRequest::new(
            stream.clone(),
            ExpectedRevision::from_current(revision),
            encoded,
        );
        request.claims = changes.claims;
        request.releases = changes.releases;
        match store.append(request).await {
            Ok(appended) => {
                let state = events
                    .iter()
                    .fold(state, |state, event| A::evolve(state, event));
                leave_snapshot::<A>(&mut turn, store, &stream, Some(appended.revision), &state);
                return Ok(Outcome {
                    state,
                    events,
                    position: Some(appended.position),
                });
            }
            Err(StoreError::WrongExpectedRevision { .. }) => {
                after_conflict::<A>(&stream, attempt, attempts).await?;
            }
            Err(other) => return Err(other.into()),
        }
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
        head.seal(&stream, &mut encoded);
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
