//! Personal data sealed in the log ([`events::personal`]), for either store: the people's keys,
//! kept in PostgreSQL beside the log ([`Keyring`]), and a store that seals what is about to be
//! appended and opens what is read ([`Sealed`]).
//!
//! Writers seal before they chain ([`EventStore::seal`]): the hash chain is over the stored,
//! sealed form, so it still verifies after a key is destroyed. Readers of a [`Sealed`] store
//! get the personal fields back, or [`events::personal::ERASED`] once the person is erased;
//! whoever must see the log as stored (the chain's verification, the Kafka publisher) reads the
//! store below it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use events::personal::{self, PersonalKey};
use events::store::{
    AppendRequest, AppendResult, EventStore, EventStream, NewEvent, Position, RecordedEvent,
    StoreError, UniqueClaim,
};
use events::values::UserId;
use futures::StreamExt;
use moka::ops::compute::{CompResult, Op};
use sqlx::PgPool;
use uuid::Uuid;

use crate::postgres::store_error;

/// How long a process trusts a key it read (or its absence after an erasure elsewhere): an
/// erasure in another process is seen here within as long.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(30);
/// Keys kept in memory at most (about 100 bytes each).
const KEYS_KEPT: u64 = 100_000;
/// Events opened together from a subscription: their keys are read in one statement.
const OPEN_CHUNK: usize = 256;

const TABLE: &str = "CREATE TABLE IF NOT EXISTS personal_keys (
    owner      uuid        PRIMARY KEY,
    key        bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    erased_at  timestamptz,
    CHECK ((key IS NULL) = (erased_at IS NOT NULL))
)";

/// What is known of a person's key.
#[derive(Clone, Debug)]
enum Held {
    Key(PersonalKey),
    /// Destroyed: the person was erased.
    Erased,
    /// None yet: all of their data was written before sealing began, or nothing of theirs was
    /// sealed yet.
    Unmade,
}

/// The people's keys: one per person, made when their first personal data is sealed,
/// destroyed when they are erased. Recently used keys are kept in memory for
/// [`KEY_CACHE_TTL`]. Cheap to clone.
#[derive(Clone)]
pub struct Keyring(Arc<Keys>);

struct Keys {
    pool: PgPool,
    held: moka::future::Cache<Uuid, Held>,
}

impl Keyring {
    /// The keys in `pool`'s database; creates their table when missing.
    pub async fn prepare(pool: PgPool) -> Result<Self, StoreError> {
        let mut transaction = pool.begin().await.map_err(store_error)?;
        // Processes starting together take turns: CREATE TABLE IF NOT EXISTS is not safe
        // against itself.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('userledger keys', 0))")
            .execute(&mut *transaction)
            .await
            .map_err(store_error)?;
        sqlx::query(TABLE)
            .execute(&mut *transaction)
            .await
            .map_err(store_error)?;
        transaction.commit().await.map_err(store_error)?;
        Ok(Self(Arc::new(Keys {
            pool,
            held: moka::future::Cache::builder()
                .max_capacity(KEYS_KEPT)
                .time_to_live(KEY_CACHE_TTL)
                .build(),
        })))
    }

    /// The key to seal `owner`'s new events with, made now if they have none;
    /// [`StoreError::Erased`] once they are erased.
    async fn sealing_key(&self, owner: UserId, stream: &str) -> Result<PersonalKey, StoreError> {
        let id = owner.as_uuid();
        let held = match self.0.held.get(&id).await {
            Some(held @ (Held::Key(_) | Held::Erased)) => held,
            _ => {
                let known: Option<Option<Vec<u8>>> =
                    sqlx::query_scalar("SELECT key FROM personal_keys WHERE owner = $1")
                        .bind(id)
                        .fetch_optional(&self.0.pool)
                        .await
                        .map_err(store_error)?;
                let key = match known {
                    Some(key) => key,
                    // The key made here, or the one another writer made first (waited for,
                    // then returned by the no-op update), or none if they were erased since.
                    None => sqlx::query_scalar(
                        "INSERT INTO personal_keys (owner, key) VALUES ($1, $2)
                         ON CONFLICT (owner) DO UPDATE SET owner = EXCLUDED.owner
                         RETURNING key",
                    )
                    .bind(id)
                    .bind(PersonalKey::generate().as_bytes())
                    .fetch_one(&self.0.pool)
                    .await
                    .map_err(store_error)?,
                };
                self.remember(id, held_of(key.as_deref())).await
            }
        };
        match held {
            Held::Key(key) => Ok(key),
            Held::Erased | Held::Unmade => Err(StoreError::Erased {
                stream: stream.to_owned(),
            }),
        }
    }

    /// The key to seal `owner`'s past events with (`encrypt-history`): theirs, made now if
    /// they have none; for a person erased already, a key made for the purpose and kept
    /// nowhere, so that what is sealed with it reads as erased.
    pub async fn key_for_history(
        &self,
        owner: UserId,
        stream: &str,
    ) -> Result<PersonalKey, StoreError> {
        match self.sealing_key(owner, stream).await {
            Err(StoreError::Erased { .. }) => Ok(PersonalKey::generate()),
            other => other,
        }
    }

    /// What is known of the keys of `owners`: the ones not in memory, and those of
    /// `recheck`, are read in one statement.
    async fn held(
        &self,
        mut owners: Vec<Uuid>,
        recheck: &[Uuid],
    ) -> Result<HashMap<Uuid, Held>, StoreError> {
        owners.sort_unstable();
        owners.dedup();
        let mut known = HashMap::with_capacity(owners.len());
        let mut missing = Vec::new();
        for owner in owners {
            match self.0.held.get(&owner).await {
                Some(held) if !recheck.contains(&owner) => {
                    known.insert(owner, held);
                }
                _ => missing.push(owner),
            }
        }
        if missing.is_empty() {
            return Ok(known);
        }
        let rows: Vec<(Uuid, Option<Vec<u8>>)> =
            sqlx::query_as("SELECT owner, key FROM personal_keys WHERE owner = ANY($1)")
                .bind(&missing)
                .fetch_all(&self.0.pool)
                .await
                .map_err(store_error)?;
        for (owner, key) in rows {
            known.insert(owner, held_of(key.as_deref()));
        }
        for owner in missing {
            let read = known.remove(&owner).unwrap_or(Held::Unmade);
            known.insert(owner, self.remember(owner, read).await);
        }
        Ok(known)
    }

    /// Caches what was read of `owner`'s key, and returns what is now known: an erasure this
    /// process knows of is kept, even against a read that began before it.
    async fn remember(&self, owner: Uuid, read: Held) -> Held {
        let kept = self
            .0
            .held
            .entry(owner)
            .and_compute_with(|current| {
                std::future::ready(match current.map(|entry| entry.into_value()) {
                    Some(Held::Erased) => Op::Nop,
                    _ => Op::Put(read.clone()),
                })
            })
            .await;
        match kept {
            CompResult::Inserted(entry)
            | CompResult::ReplacedWith(entry)
            | CompResult::Unchanged(entry) => entry.into_value(),
            CompResult::StillNone(_) | CompResult::Removed(_) => read,
        }
    }

    /// Destroys `owner`'s key (erasure): from now on their personal data reads as erased, here
    /// at once and in other processes within [`KEY_CACHE_TTL`]. A person who never had a key
    /// (all of whose events predate sealing) is marked erased all the same. Idempotent.
    pub async fn shred(&self, owner: UserId) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO personal_keys (owner, key, erased_at) VALUES ($1, NULL, now())
             ON CONFLICT (owner) DO UPDATE
             SET key = NULL, erased_at = coalesce(personal_keys.erased_at, now())",
        )
        .bind(owner.as_uuid())
        .execute(&self.0.pool)
        .await
        .map_err(store_error)?;
        self.0.held.insert(owner.as_uuid(), Held::Erased).await;
        Ok(())
    }

    /// Seals the personal data of `events`, about to be appended to `stream`, with the key of
    /// the person the stream is about (made now if they have none).
    pub async fn seal(&self, stream: &str, events: &mut [NewEvent]) -> Result<(), StoreError> {
        let Some(owner) = personal::owner(stream) else {
            return Ok(());
        };
        if !events
            .iter()
            .any(|event| personal::holds_personal_data(stream, &event.data))
        {
            return Ok(());
        }
        let key = self.sealing_key(owner, stream).await?;
        for event in events {
            key.seal(stream, &mut event.data);
        }
        Ok(())
    }

    /// Opens the personal data of `events` as stored, in place: with each person's key, or as
    /// erased once it is destroyed. Events of people with no key (written before sealing
    /// began) are left as they are.
    pub async fn open(&self, events: &mut [RecordedEvent]) -> Result<(), StoreError> {
        let owners: Vec<Uuid> = events
            .iter()
            .filter(|event| personal::holds_personal_data(&event.stream, &event.data))
            .filter_map(|event| personal::owner(&event.stream))
            .map(|owner| owner.as_uuid())
            .collect();
        if owners.is_empty() {
            return Ok(());
        }
        let mut held = self.held(owners, &[]).await?;
        // A sealed value of someone known to have no key: their key was made since, by
        // another process.
        let stale: Vec<Uuid> = events
            .iter()
            .filter(|event| personal::holds_sealed_data(&event.stream, &event.data))
            .filter_map(|event| personal::owner(&event.stream))
            .map(|owner| owner.as_uuid())
            .filter(|owner| matches!(held.get(owner), Some(Held::Unmade)))
            .collect();
        if !stale.is_empty() {
            held.extend(self.held(stale.clone(), &stale).await?);
        }
        for event in events {
            let Some(owner) = personal::owner(&event.stream) else {
                continue;
            };
            match held.get(&owner.as_uuid()) {
                Some(Held::Key(key)) => personal::open(Some(key), &event.stream, &mut event.data),
                Some(Held::Erased) => personal::open(None, &event.stream, &mut event.data),
                Some(Held::Unmade) | None => {}
            }
        }
        Ok(())
    }
}

fn held_of(key: Option<&[u8]>) -> Held {
    key.and_then(PersonalKey::from_bytes)
        .map_or(Held::Erased, Held::Key)
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring(..)")
    }
}

/// `S` with personal data sealed on the way in ([`EventStore::seal`]) and opened on the way out.
pub struct Sealed<S: ?Sized> {
    inner: Arc<S>,
    keyring: Keyring,
}

impl<S: EventStore + ?Sized> Sealed<S> {
    pub fn new(inner: Arc<S>, keyring: Keyring) -> Self {
        Self { inner, keyring }
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    async fn opened(
        &self,
        mut events: Vec<RecordedEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.keyring.open(&mut events).await?;
        Ok(events)
    }
}

#[async_trait]
impl<S: EventStore + ?Sized> EventStore for Sealed<S> {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        // What the log keeps is what it was given: personal data that was not sealed before it
        // was chained would stay readable after an erasure.
        if personal::owner(&request.stream).is_some() {
            for event in &request.events {
                let unsealed = personal::unsealed_fields(&request.stream, &event.data);
                if !unsealed.is_empty() {
                    return Err(StoreError::InvalidAppend(format!(
                        "{} of {} holds personal data that is not sealed ({}): seal events \
                         before chaining them (EventStore::seal)",
                        event.event_type,
                        request.stream,
                        unsealed.join(", ")
                    )));
                }
            }
        }
        self.inner.append(request).await
    }

    async fn seal(&self, stream: &str, events: &mut [NewEvent]) -> Result<(), StoreError> {
        self.keyring.seal(stream, events).await
    }

    async fn open(&self, events: &mut [RecordedEvent]) -> Result<(), StoreError> {
        self.inner.open(events).await?;
        self.keyring.open(events).await
    }

    async fn shred_key(&self, owner: UserId) -> Result<(), StoreError> {
        self.keyring.shred(owner).await
    }

    /// Read as stored, not opened: an opened field no longer tells how it was kept.
    async fn in_the_clear(&self, stream: &str) -> Result<Vec<&'static str>, StoreError> {
        let stored = self.inner.read_stream(stream, 0).await?;
        let fields: std::collections::BTreeSet<&'static str> = stored
            .iter()
            .flat_map(|event| personal::unsealed_fields(stream, &event.data))
            .collect();
        Ok(fields.into_iter().collect())
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_revision: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.opened(self.inner.read_stream(stream, from_revision).await?)
            .await
    }

    async fn last_event(&self, stream: &str) -> Result<Option<RecordedEvent>, StoreError> {
        let last = self.inner.last_event(stream).await?;
        Ok(self.opened(last.into_iter().collect()).await?.pop())
    }

    async fn settled(&self, position: Position) -> Result<(), StoreError> {
        self.inner.settled(position).await
    }

    async fn read_streams(&self, streams: &[String]) -> Result<Vec<RecordedEvent>, StoreError> {
        self.opened(self.inner.read_streams(streams).await?).await
    }

    async fn read_all(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.opened(self.inner.read_all(after, limit).await?).await
    }

    async fn claim_holder(&self, claim: &UniqueClaim) -> Result<Option<String>, StoreError> {
        self.inner.claim_holder(claim).await
    }

    async fn read_claimed_stream(
        &self,
        claim: &UniqueClaim,
    ) -> Result<Option<(String, Vec<RecordedEvent>)>, StoreError> {
        match self.inner.read_claimed_stream(claim).await? {
            Some((stream, events)) => Ok(Some((stream, self.opened(events).await?))),
            None => Ok(None),
        }
    }

    fn subscribe_all(&self, after: Option<Position>) -> EventStream {
        let keyring = self.keyring.clone();
        self.inner
            .subscribe_all(after)
            .ready_chunks(OPEN_CHUNK)
            .then(move |chunk| {
                let keyring = keyring.clone();
                async move { open_shared(&keyring, chunk).await }
            })
            .flat_map(futures::stream::iter)
            .boxed()
    }
}

/// A chunk of a subscription opened: the events that hold personal data are copied and
/// opened (their keys read together); the others pass as they are. When the keys cannot be
/// read, the chunk is that error.
async fn open_shared(
    keyring: &Keyring,
    chunk: Vec<Result<Arc<RecordedEvent>, StoreError>>,
) -> Vec<Result<Arc<RecordedEvent>, StoreError>> {
    let holds = |event: &RecordedEvent| {
        personal::owner(&event.stream).is_some()
            && personal::holds_personal_data(&event.stream, &event.data)
    };
    let mut personal: Vec<RecordedEvent> = chunk
        .iter()
        .filter_map(|item| item.as_ref().ok())
        .filter(|event| holds(event))
        .map(|event| RecordedEvent::clone(event))
        .collect();
    if personal.is_empty() {
        return chunk;
    }
    if let Err(error) = keyring.open(&mut personal).await {
        // The subscription ends here; its reader resumes from what it last took in.
        return vec![Err(error)];
    }
    let mut opened = personal.into_iter();
    chunk
        .into_iter()
        .map(|item| match item {
            Ok(event) if holds(&event) => Ok(Arc::new(opened.next().expect("one per event"))),
            other => other,
        })
        .collect()
}
