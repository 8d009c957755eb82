//! The hash chain of a stream.
//!
//! The hash of the event at `revision` of `stream` is SHA-256 over six parts, each written as
//! its length (8 bytes, big-endian) then its bytes:
//!
//! 1. the previous event's hash (32 bytes; 32 zero bytes, [`ChainHash::GENESIS`], for revision 0),
//! 2. the stream name (UTF-8),
//! 3. the revision (decimal digits),
//! 4. the event type (UTF-8),
//! 5. the payload as canonical JSON,
//! 6. the metadata without its `hash` field, as canonical JSON.
//!
//! Canonical JSON is compact JSON with every object's keys sorted (by their UTF-8 bytes), so
//! the hash does not depend on how a store orders keys (PostgreSQL's `jsonb` reorders them).
//! The hash is stored, as 64 lowercase hex digits, in the metadata's `hash` field.
//!
//! Events written before the chain existed have no `hash`: they are *unchained*, not broken,
//! and the first chained event after them chains to the hash they would have had, computed
//! the same way. An event without a hash after a chained one is broken.

use std::fmt;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::store::{NewEvent, RecordedEvent};

/// The metadata field that holds an event's hash.
pub const HASH_FIELD: &str = "hash";

/// One link of a chain: a SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainHash([u8; 32]);

impl ChainHash {
    /// What revision 0 chains to.
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    /// Reads 64 hex digits.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).ok()?;
            *byte = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(Self(bytes))
    }

    /// The hash stored in an event's metadata: `None` when it has none, `Some(None)` when the
    /// field is there but is not a hash.
    pub fn stored(metadata: &Value) -> Option<Option<Self>> {
        metadata
            .get(HASH_FIELD)
            .map(|value| value.as_str().and_then(Self::from_hex))
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({self})")
    }
}

/// The hash of an event at `revision` of `stream` whose predecessor's hash is `previous`.
pub fn event_hash(
    previous: &ChainHash,
    stream: &str,
    revision: u64,
    event_type: &str,
    data: &Value,
    metadata: &Value,
) -> ChainHash {
    let revision = revision.to_string();
    let data = canonical_json(data, None);
    let metadata = canonical_json(metadata, Some(HASH_FIELD));
    let mut hasher = Sha256::new();
    for part in [
        &previous.0[..],
        stream.as_bytes(),
        revision.as_bytes(),
        event_type.as_bytes(),
        &data,
        &metadata,
    ] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    ChainHash(hasher.finalize().into())
}

/// Compact JSON with sorted object keys; `skip` leaves one key of the top-level object out.
fn canonical_json(value: &Value, skip: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_canonical(&mut out, value, skip);
    out
}

fn write_canonical(out: &mut Vec<u8>, value: &Value, skip: Option<&str>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().filter(|k| Some(k.as_str()) != skip).collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::String(key.clone()).to_string().as_bytes());
                out.push(b':');
                write_canonical(out, &map[key], None);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(out, item, None);
            }
            out.push(b']');
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

/// How one stored event stands in its stream's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Its stored hash is the hash of its content and its predecessor.
    Chained,
    /// It has no hash, and neither has any event before it: written before the chain existed.
    Unchained,
    /// Altered, removed from, inserted into or reordered in its stream: why.
    Broken(String),
}

/// Where a stream's chain stands after some of its events: what the next one chains to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    hash: ChainHash,
    next_revision: u64,
    chained: bool,
}

impl Default for ChainHead {
    fn default() -> Self {
        Self {
            hash: ChainHash::GENESIS,
            next_revision: 0,
            chained: false,
        }
    }
}

impl ChainHead {
    /// The head after a stream whose last event is `last`, when that event carries its chain
    /// hash (every event written since the chain began does); `None` when the writer needs the
    /// whole stream ([`ChainHead::of`]).
    pub fn after(last: &RecordedEvent) -> Option<Self> {
        let hash = ChainHash::stored(&last.metadata).flatten()?;
        Some(Self {
            hash,
            next_revision: last.revision + 1,
            chained: true,
        })
    }

    /// The head after a whole stream (in revision order), as a writer needs it: the last stored
    /// hash, hashing only the unchained events after it (none once a stream is chained).
    pub fn of(stream: &[RecordedEvent]) -> Self {
        Self::default().past(stream)
    }

    /// The head after `rest`, the stream's events that follow this head (in revision order):
    /// the last stored hash among them, hashing only the unchained events after it (none once
    /// a stream is chained); this head when `rest` is empty.
    pub fn past(&self, rest: &[RecordedEvent]) -> Self {
        let last_chained = rest
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, event)| Some((i, Self::after(event)?)));
        let (mut head, unchained) = match last_chained {
            Some((i, head)) => (head, &rest[i + 1..]),
            None => (self.clone(), rest),
        };
        for event in unchained {
            head.follow(event);
        }
        head
    }

    /// What the next event chains to.
    pub fn hash(&self) -> ChainHash {
        self.hash
    }

    /// Checks the next stored event of the stream against the chain, and moves past it. The
    /// chain goes on from its stored hash (when it has a readable one), so one altered event
    /// is reported once, not with every event after it.
    pub fn follow(&mut self, event: &RecordedEvent) -> Link {
        let computed = event_hash(
            &self.hash,
            &event.stream,
            event.revision,
            &event.event_type,
            &event.data,
            &event.metadata,
        );
        let stored = ChainHash::stored(&event.metadata);
        let mut link = match stored {
            None if self.chained => {
                Link::Broken("it has no hash, but an event before it has one".into())
            }
            None => Link::Unchained,
            Some(None) => Link::Broken("its hash is not 64 hex digits".into()),
            Some(Some(hash)) if hash == computed => Link::Chained,
            Some(Some(_)) => Link::Broken(
                "its hash does not match its content and the hash of the event before it".into(),
            ),
        };
        if event.revision != self.next_revision {
            link = Link::Broken(format!(
                "it is at revision {}, where revision {} was due",
                event.revision, self.next_revision
            ));
        }
        self.hash = stored.flatten().unwrap_or(computed);
        self.chained |= stored.is_some();
        self.next_revision = event.revision + 1;
        link
    }

    /// Writes the hash of each event into its metadata, for appending `events` to `stream`
    /// right after this head; the head after them.
    pub fn chain(&self, stream: &str, events: &mut [NewEvent]) -> ChainHead {
        let mut previous = self.hash;
        for (revision, event) in (self.next_revision..).zip(events.iter_mut()) {
            let hash = event_hash(
                &previous,
                stream,
                revision,
                &event.event_type,
                &event.data,
                &event.metadata,
            );
            if let Value::Object(metadata) = &mut event.metadata {
                metadata.insert(HASH_FIELD.to_owned(), Value::String(hash.to_string()));
            }
            previous = hash;
        }
        match events.len() {
            0 => self.clone(),
            chained => ChainHead {
                hash: previous,
                next_revision: self.next_revision + chained as u64,
                chained: true,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::testing::stored;

    fn new_event(n: u64) -> NewEvent {
        NewEvent {
            event_id: Uuid::now_v7(),
            event_type: "CreditsIncreased".into(),
            data: json!({ "amount": n, "nested": { "b": 1, "a": [1.5, "x"] } }),
            metadata: json!({ "eventId": Uuid::nil(), "schemaVersion": 1 }),
        }
    }

    /// The events as a store gives them back after `chain`.
    fn recorded(stream: &str, first: u64, events: Vec<NewEvent>) -> Vec<RecordedEvent> {
        (first..)
            .zip(events)
            .map(|(revision, event)| stored(stream, revision, event))
            .collect()
    }

    fn chained_stream(stream: &str, count: u64) -> Vec<RecordedEvent> {
        let mut events: Vec<NewEvent> = (0..count).map(new_event).collect();
        ChainHead::default().chain(stream, &mut events);
        recorded(stream, 0, events)
    }

    fn links(stream: &[RecordedEvent]) -> Vec<Link> {
        let mut head = ChainHead::default();
        stream.iter().map(|event| head.follow(event)).collect()
    }

    #[test]
    fn chained_events_verify_and_chain_on_across_appends() {
        let mut stream = chained_stream("user-1", 3);
        let mut more = vec![new_event(3), new_event(4)];
        let after = ChainHead::of(&stream).chain("user-1", &mut more);
        stream.extend(recorded("user-1", 3, more));
        assert_eq!(links(&stream), vec![Link::Chained; 5]);
        assert_eq!(
            after,
            ChainHead::of(&stream),
            "chain tells the head after its events"
        );
        assert_eq!(after.chain("user-1", &mut []), after);
        assert_eq!(
            ChainHead::of(&stream).hash(),
            ChainHash::stored(&stream[4].metadata).flatten().unwrap()
        );
    }

    #[test]
    fn the_hash_ignores_key_order_and_covers_every_part() {
        let data = json!({ "a": 1, "b": { "y": [1, 2], "x": null } });
        let reordered: Value = serde_json::from_str(r#"{"b":{"x":null,"y":[1,2]},"a":1}"#).unwrap();
        let metadata = json!({ "eventId": Uuid::nil() });
        let base = event_hash(&ChainHash::GENESIS, "s-1", 0, "T", &data, &metadata);
        assert_eq!(
            base,
            event_hash(&ChainHash::GENESIS, "s-1", 0, "T", &reordered, &metadata)
        );
        let with_hash = json!({ "eventId": Uuid::nil(), "hash": "anything" });
        assert_eq!(
            base,
            event_hash(&ChainHash::GENESIS, "s-1", 0, "T", &data, &with_hash)
        );
        let other = ChainHash::from_hex(&"ab".repeat(32)).unwrap();
        for changed in [
            event_hash(&other, "s-1", 0, "T", &data, &metadata),
            event_hash(&ChainHash::GENESIS, "s-2", 0, "T", &data, &metadata),
            event_hash(&ChainHash::GENESIS, "s-1", 1, "T", &data, &metadata),
            event_hash(&ChainHash::GENESIS, "s-1", 0, "U", &data, &metadata),
            event_hash(
                &ChainHash::GENESIS,
                "s-1",
                0,
                "T",
                &json!({"a": 2}),
                &metadata,
            ),
            event_hash(&ChainHash::GENESIS, "s-1", 0, "T", &data, &json!({})),
        ] {
            assert_ne!(base, changed);
        }
        assert_eq!(ChainHash::from_hex(&base.to_string()), Some(base));
        assert_eq!(base.to_string().len(), 64);
    }

    #[test]
    fn an_altered_event_is_broken_and_only_it() {
        let mut stream = chained_stream("user-1", 4);
        stream[1].data["amount"] = json!(999);
        assert_eq!(
            links(&stream),
            vec![
                Link::Chained,
                Link::Broken(
                    "its hash does not match its content and the hash of the event before it"
                        .into()
                ),
                Link::Chained,
                Link::Chained,
            ]
        );
        let mut stream = chained_stream("user-1", 3);
        stream[2].metadata["actor"] = json!({ "id": "someone else", "kind": "user" });
        assert!(matches!(links(&stream)[2], Link::Broken(_)));
    }

    #[test]
    fn removed_or_unhashed_events_break_the_chain() {
        let mut stream = chained_stream("user-1", 4);
        stream.remove(1);
        let found = links(&stream);
        assert_eq!(found[0], Link::Chained);
        assert!(matches!(&found[1], Link::Broken(why) if why.contains("revision 2")));

        let mut stream = chained_stream("user-1", 3);
        stream[2]
            .metadata
            .as_object_mut()
            .unwrap()
            .remove(HASH_FIELD);
        assert!(matches!(links(&stream)[2], Link::Broken(_)));
    }

    #[test]
    fn events_from_before_the_chain_are_unchained_and_the_chain_starts_after_them() {
        let legacy = recorded("user-1", 0, vec![new_event(0), new_event(1)]);
        let mut more = vec![new_event(2)];
        let head = ChainHead::of(&legacy);
        assert_ne!(head.hash(), ChainHash::GENESIS);
        head.chain("user-1", &mut more);
        let mut stream = legacy;
        stream.extend(recorded("user-1", 2, more));
        assert_eq!(
            links(&stream),
            vec![Link::Unchained, Link::Unchained, Link::Chained]
        );
        // The chained event vouches for the unchained ones before it.
        stream[0].data["amount"] = json!(7);
        assert!(matches!(links(&stream)[2], Link::Broken(_)));
    }
}
