//! `userledger encrypt-history`: seals the personal data of events written before sealing
//! began ([`events::personal`]), in place, one transaction per stream: each event keeps its id,
//! its position and its revision; its payload is stored sealed and the stream's hash chain is
//! computed anew over what is now stored (an event that had no hash gets one).
//!
//! A stream whose chain does not hold is not rewritten (chaining it anew would hide what was
//! done to it): the run stops there, naming it.
//!
//! The write side must be stopped while it runs: a running command process keeps the chain
//! heads it last appended at, and would chain its next event to the hash it replaced. The
//! events table is locked against writes for the moment each stream is rewritten.
//!
//! The events of a person erased before their history was sealed are sealed with a key that
//! is made for the purpose and kept nowhere: they read as erased, as everything else of theirs.

use std::time::{Duration, Instant};

use events::audit::chain::{event_hash, HASH_FIELD};
use events::audit::{ChainHash, ChainHead, Link};
use events::personal::{self, PersonalKey};
use events::sign_in::SignIns;
use events::store::{Position, RecordedEvent, StoreError};
use events::user::User;
use events::Aggregate;
use serde_json::Value;
use sqlx::{PgPool, Row};

use super::store_error;
use crate::sealed::Keyring;

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct HistoryEncrypted {
    /// Streams of people (users' and their sign-ins') looked at.
    pub streams: u64,
    /// Streams that held personal data in the clear, now sealed.
    pub streams_sealed: u64,
    /// Events whose payload or hash changed.
    pub events_rewritten: u64,
    pub elapsed: Duration,
}

/// Seals every person's stream in `pool`'s event store that still holds personal data in the
/// clear. `on_progress` hears the number of streams looked at so far. Running it again finds
/// nothing to do.
pub async fn encrypt_history(
    pool: &PgPool,
    keyring: &Keyring,
    mut on_progress: impl FnMut(u64),
) -> Result<HistoryEncrypted, StoreError> {
    let started = Instant::now();
    let streams: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT stream_id FROM events
          WHERE stream_id LIKE $1 || '-%' OR stream_id LIKE $2 || '-%'
          ORDER BY stream_id",
    )
    .bind(User::CATEGORY)
    .bind(SignIns::CATEGORY)
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    let mut done = HistoryEncrypted::default();
    for stream in streams {
        done.streams += 1;
        if let Some(owner) = personal::owner(&stream) {
            if holds_clear_data(pool, &stream).await? {
                let key = keyring.key_for_history(owner, &stream).await?;
                done.events_rewritten += seal_stream(pool, &stream, &key).await?;
                done.streams_sealed += 1;
            }
        }
        on_progress(done.streams);
    }
    done.elapsed = started.elapsed();
    Ok(done)
}

/// Whether an event of `stream` has a personal field in the clear.
async fn holds_clear_data(pool: &PgPool, stream: &str) -> Result<bool, StoreError> {
    let payloads: Vec<Value> =
        sqlx::query_scalar("SELECT data FROM events WHERE stream_id = $1 ORDER BY revision")
            .bind(stream)
            .fetch_all(pool)
            .await
            .map_err(store_error)?;
    Ok(payloads
        .iter()
        .any(|data| !personal::unsealed_fields(stream, data).is_empty()))
}

/// Seals `stream` with `key` and chains it anew, in one transaction; the events rewritten.
async fn seal_stream(pool: &PgPool, stream: &str, key: &PersonalKey) -> Result<u64, StoreError> {
    let mut transaction = pool.begin().await.map_err(store_error)?;
    // Writes wait (reads do not) while the stream is rewritten.
    sqlx::query("LOCK TABLE events IN EXCLUSIVE MODE")
        .execute(&mut *transaction)
        .await
        .map_err(store_error)?;
    let rows = sqlx::query(
        "SELECT position, revision, event_id, event_type, data, metadata, recorded_at
           FROM events WHERE stream_id = $1 ORDER BY revision",
    )
    .bind(stream)
    .fetch_all(&mut *transaction)
    .await
    .map_err(store_error)?;
    // A chain that does not hold now would be made to hold by chaining anew: the stream is
    // left as it is, for an auditor to look at.
    let mut head = ChainHead::default();
    for row in &rows {
        let event = RecordedEvent {
            stream: stream.to_owned(),
            revision: row.get::<i64, _>("revision") as u64,
            position: Position::at(row.get::<i64, _>("position") as u64),
            event_id: row.get("event_id"),
            event_type: row.get("event_type"),
            data: row.get("data"),
            metadata: row.get("metadata"),
            recorded_at: row.get("recorded_at"),
        };
        if let Link::Broken(why) = head.follow(&event) {
            return Err(StoreError::InvalidAppend(format!(
                "{stream} revision {}: {why}; it is left as it is (see `userledger verify`)",
                event.revision
            )));
        }
    }
    let mut previous = ChainHash::GENESIS;
    let mut rewritten = 0;
    for row in rows {
        let position: i64 = row.get("position");
        let revision: i64 = row.get("revision");
        let event_type: String = row.get("event_type");
        let stored: Value = row.get("data");
        let stored_metadata: Value = row.get("metadata");
        let mut data = stored.clone();
        key.seal_history(stream, &mut data);
        let hash = event_hash(
            &previous,
            stream,
            revision as u64,
            &event_type,
            &data,
            &stored_metadata,
        );
        let mut metadata = stored_metadata.clone();
        if let Value::Object(fields) = &mut metadata {
            fields.insert(HASH_FIELD.to_owned(), Value::String(hash.to_string()));
        }
        previous = hash;
        if data != stored || metadata != stored_metadata {
            sqlx::query("UPDATE events SET data = $1, metadata = $2 WHERE position = $3")
                .bind(&data)
                .bind(&metadata)
                .bind(position)
                .execute(&mut *transaction)
                .await
                .map_err(store_error)?;
            rewritten += 1;
        }
    }
    transaction.commit().await.map_err(store_error)?;
    Ok(rewritten)
}
