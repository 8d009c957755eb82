//! The event store: append to a stream at an expected revision together with uniqueness
//! claims, read a stream, and read or follow the global log.
//!
//! Two adapters implement [`EventStore`], in the `event-store` crate:
//! `event_store::postgres::PostgresEventStore` (sqlx) and
//! `event_store::eventstoredb::EventStoreDbStore` (the `eventstore` crate). Both pass the
//! contract suite in `tests/tests/event_store_contract.rs`.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::values::UserId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The revision a writer decided on. Revisions count from 0: a stream holding one event is at
/// revision 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedRevision {
    /// Append whatever the stream holds (no concurrency check).
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must be at this revision.
    Exact(u64),
}

impl ExpectedRevision {
    /// The expectation that matches a stream whose last revision is `current` (`None`: no stream).
    pub fn from_current(current: Option<u64>) -> Self {
        current.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact)
    }
}

/// A value that at most one stream may hold at a time, such as a username. Values are compared
/// case-insensitively: the constructor lowercases them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UniqueClaim {
    kind: String,
    value: String,
}

impl UniqueClaim {
    pub fn new(kind: impl Into<String>, value: impl AsRef<str>) -> Self {
        Self {
            kind: kind.into(),
            value: value.as_ref().to_lowercase(),
        }
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }

    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for UniqueClaim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.kind, self.value)
    }
}

/// An event about to be appended: already serialised, with its metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub data: serde_json::Value,
    pub metadata: serde_json::Value,
}

/// One atomic write: events appended to one stream at an expected revision, uniqueness values
/// claimed for that stream and values it gives up. All of it happens, or none of it.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub stream: String,
    pub expected: ExpectedRevision,
    pub events: Vec<NewEvent>,
    pub claims: Vec<UniqueClaim>,
    pub releases: Vec<UniqueClaim>,
}

impl AppendRequest {
    pub fn new(
        stream: impl Into<String>,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Self {
        Self {
            stream: stream.into(),
            expected,
            events,
            claims: Vec::new(),
            releases: Vec::new(),
        }
    }

    pub fn claim(mut self, claim: UniqueClaim) -> Self {
        self.claims.push(claim);
        self
    }

    pub fn release(mut self, claim: UniqueClaim) -> Self {
        self.releases.push(claim);
        self
    }
}

/// A place in the global log. Ordered; the PostgreSQL store uses one number for both parts,
/// EventStoreDB has a commit and a prepare position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    pub commit: u64,
    pub prepare: u64,
}

impl Position {
    pub const fn new(commit: u64, prepare: u64) -> Self {
        Self { commit, prepare }
    }

    /// A position whose two parts are one number, as in the PostgreSQL store.
    pub const fn at(position: u64) -> Self {
        Self::new(position, position)
    }
}

/// Written as `N` when both parts agree, else `COMMIT/PREPARE`: the form of the consistency token.
impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.commit == self.prepare {
            write!(f, "{}", self.commit)
        } else {
            write!(f, "{}/{}", self.commit, self.prepare)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a log position: {0:?}")]
pub struct InvalidPosition(String);

impl FromStr for Position {
    type Err = InvalidPosition;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidPosition(s.to_owned());
        match s.split_once('/') {
            None => s.parse().map(Position::at).map_err(|_| invalid()),
            Some((commit, prepare)) => Ok(Position::new(
                commit.parse().map_err(|_| invalid())?,
                prepare.parse().map_err(|_| invalid())?,
            )),
        }
    }
}

/// What a successful append tells the writer next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResult {
    /// The stream's revision after the append: that of its last event.
    pub revision: u64,
    /// Global position of the first appended event.
    pub first_position: Position,
    /// Global position of the last appended event: the consistency token.
    pub position: Position,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub stream: String,
    pub revision: u64,
    pub position: Position,
    pub event_id: Uuid,
    pub event_type: String,
    pub data: serde_json::Value,
    pub metadata: serde_json::Value,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stream {stream} is not at the expected revision {expected:?} (it is at {actual:?})")]
    WrongExpectedRevision {
        stream: String,
        expected: ExpectedRevision,
        /// The stream's revision as last seen; `None` when it does not exist.
        actual: Option<u64>,
    },
    #[error("{claim} is already taken")]
    ClaimTaken { claim: UniqueClaim },
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    #[error("event store failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The person `stream` is about was erased: nothing more can be written about them.
    #[error("the person of {stream} was erased")]
    Erased { stream: String },
    /// The store cannot be reached now (stopped, restarting, or every connection busy): nothing
    /// was written by the request that failed so, unless the connection was lost while it
    /// committed; a retry later may succeed.
    #[error("event store unreachable: {0}")]
    Unreachable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Backend(Box::new(error))
    }
}

/// The live part of [`EventStore::subscribe_all`]: catch-up first, then new events as they commit.
/// Each event is shared: a store may hand the same one to every subscription of a process.
pub type EventStream = BoxStream<'static, Result<Arc<RecordedEvent>, StoreError>>;

#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends atomically: the events, the claims and the releases all take effect or none does.
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError>;

    /// Seals the personal data of `events`, about to be appended to `stream`, in place
    /// ([`crate::personal`]): before they are chained, since the chain is over what is stored.
    /// A store that keeps no people's keys (by default) stores them as they are.
    async fn seal(&self, stream: &str, events: &mut [NewEvent]) -> Result<(), StoreError> {
        let _ = (stream, events);
        Ok(())
    }

    /// `events`, in the form the store below keeps them, as this store's readers see them
    /// (opened, where it seals): what a layer above that keeps appended events shows of them.
    async fn open(&self, events: &mut [RecordedEvent]) -> Result<(), StoreError> {
        let _ = events;
        Ok(())
    }

    /// The personal fields that `stream` holds in the clear, each named once: written before
    /// sealing began, and left so until `userledger encrypt-history` seals them (an erasure
    /// would not reach them). A store that does not seal knows of none.
    async fn in_the_clear(&self, stream: &str) -> Result<Vec<&'static str>, StoreError> {
        let _ = stream;
        Ok(Vec::new())
    }

    /// Destroys the key `owner`'s personal data is sealed with (erasure, [`crate::personal`]):
    /// from now on it reads as erased, and nothing more can be sealed for them. Only a store
    /// that keeps people's keys can (by default this fails).
    async fn shred_key(&self, owner: UserId) -> Result<(), StoreError> {
        let _ = owner;
        Err(StoreError::Backend(
            "this event store keeps no personal keys (they are kept in PostgreSQL: set \
             DATABASE_URL)"
                .into(),
        ))
    }

    /// The events of one stream from `from_revision` on, in revision order. An unknown stream is
    /// empty.
    async fn read_stream(
        &self,
        stream: &str,
        from_revision: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The last event of a stream, if it has any (one small read where the store can; by
    /// default the whole stream is read): what appending a fact that depends on nothing before
    /// it needs (its revision and chain hash).
    async fn last_event(&self, stream: &str) -> Result<Option<RecordedEvent>, StoreError> {
        Ok(self.read_stream(stream, 0).await?.pop())
    }

    /// Waits until no append below `position` can still commit: afterwards every event below it
    /// is readable, or never will be. A store whose positions are taken at commit (EventStoreDB)
    /// has nothing to wait for; PostgreSQL's are taken at insert, so transactions below may
    /// still be open. A write that reads another stream after appending (a follow request
    /// reading whether its target went public meanwhile) waits for it first.
    async fn settled(&self, position: Position) -> Result<(), StoreError> {
        let _ = position;
        Ok(())
    }

    /// Every event of each of `streams`, each stream in revision order (one round trip where
    /// the store can; by default one [`EventStore::read_stream`] per stream).
    async fn read_streams(&self, streams: &[String]) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = Vec::new();
        for stream in streams {
            events.extend(self.read_stream(stream, 0).await?);
        }
        Ok(events)
    }

    /// Up to `limit` events of the global log after `after` (from the start when `None`), in
    /// position order. Never returns an event before one that may still commit below it.
    async fn read_all(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The stream that holds a unique value, if any: how a login finds a user by username or
    /// email without a read model.
    async fn claim_holder(&self, claim: &UniqueClaim) -> Result<Option<String>, StoreError>;

    /// The stream that holds a unique value and its events (one round trip where the store
    /// can; by default [`EventStore::claim_holder`] then [`EventStore::read_stream`]): how a
    /// sign-in loads the user it names.
    async fn read_claimed_stream(
        &self,
        claim: &UniqueClaim,
    ) -> Result<Option<(String, Vec<RecordedEvent>)>, StoreError> {
        let Some(stream) = self.claim_holder(claim).await? else {
            return Ok(None);
        };
        let events = self.read_stream(&stream, 0).await?;
        Ok(Some((stream, events)))
    }

    /// Every event after `after`, in position order: the stored ones first, then live ones as
    /// they commit. The stream ends only on an error.
    fn subscribe_all(&self, after: Option<Position>) -> EventStream;
}
