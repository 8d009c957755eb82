//! What auditors are shown of the log, and how they can tell it was not altered.
//!
//! - [`chain`]: tamper evidence. Every event's metadata carries `hash`, a SHA-256 over its
//!   content chained to the previous event of its stream; [`chain::ChainHead`] seals new events
//!   and checks stored ones.
//! - [`redaction`]: an event's payload with its secrets replaced by `"[redacted]"`, for every
//!   place that shows payloads outside the write side (history, replay, Kafka).

pub mod chain;
pub mod redaction;

pub use chain::{ChainHash, ChainHead, Link};
pub use redaction::{payload, redacted_data, REDACTED};
