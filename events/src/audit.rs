//! What auditors are shown of the log, and how they can tell it was not altered.
//!
//! - [`chain`]: tamper evidence. Every event's metadata carries `hash`, a SHA-256 over its
//!   content chained to the previous event of its stream; [`chain::ChainHead`] chains new events
//!   and checks stored ones.
//! - [`redaction`]: an event's payload with its secrets replaced by `"[redacted]"`, for every
//!   place that shows payloads outside the write side (history, replay, Kafka).
//! - [`replay`]: the log, or a selection of it, as JSON lines (`userledger replay`).
//! - [`Moment`]: a time or a log position, as auditors ask for "the state at" or a range.

pub mod chain;
pub mod redaction;
pub mod replay;

pub use chain::{ChainHash, ChainHead, Link};
pub use redaction::{payload, redacted_data, REDACTED};

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::store::{Position, RecordedEvent};

/// A moment of the log, as auditors name it: a time (RFC 3339, e.g.
/// `2026-01-02T03:04:05.123Z`) or a log position (a consistency token, `N` or
/// `COMMIT/PREPARE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    Time(DateTime<Utc>),
    Position(Position),
}

impl Moment {
    /// Whether an event that happened at `occurred_at`, at `position`, had happened by this
    /// moment (inclusive).
    pub fn covers(&self, position: Position, occurred_at: DateTime<Utc>) -> bool {
        match self {
            Moment::Time(time) => occurred_at <= *time,
            Moment::Position(at) => position <= *at,
        }
    }

    /// [`Self::covers`] for a stored event.
    pub fn covers_event(&self, event: &RecordedEvent) -> bool {
        self.covers(event.position, occurred_at(event))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is neither an RFC 3339 time nor a log position")]
pub struct InvalidMoment(String);

impl FromStr for Moment {
    type Err = InvalidMoment;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'/') {
            return s
                .parse()
                .map(Moment::Position)
                .map_err(|_| InvalidMoment(s.to_owned()));
        }
        DateTime::parse_from_rfc3339(s)
            .map(|time| Moment::Time(time.with_timezone(&Utc)))
            .map_err(|_| InvalidMoment(s.to_owned()))
    }
}

impl fmt::Display for Moment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Moment::Time(time) => f.write_str(&time.to_rfc3339()),
            Moment::Position(position) => position.fmt(f),
        }
    }
}

/// When a stored event happened: its metadata's `occurredAt` (when its command was decided),
/// else the time the store recorded it.
pub fn occurred_at(event: &RecordedEvent) -> DateTime<Utc> {
    event
        .metadata
        .get("occurredAt")
        .and_then(|at| at.as_str())
        .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
        .map_or(event.recorded_at, |at| at.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_are_times_or_positions() {
        assert_eq!("42".parse(), Ok(Moment::Position(Position::at(42))));
        assert_eq!("7/5".parse(), Ok(Moment::Position(Position::new(7, 5))));
        let time: Moment = "2026-01-02T03:04:05.123+01:00".parse().unwrap();
        assert_eq!(
            time,
            Moment::Time("2026-01-02T02:04:05.123Z".parse().unwrap())
        );
        for bad in ["", "yesterday", "2026-01-02", "1/2/3", "-1"] {
            assert!(bad.parse::<Moment>().is_err(), "{bad}");
        }
        let at = Position::at(10);
        let noon: DateTime<Utc> = "2026-01-02T12:00:00Z".parse().unwrap();
        assert!(Moment::Position(at).covers(at, noon));
        assert!(!Moment::Position(Position::at(9)).covers(at, noon));
        assert!(Moment::Time(noon).covers(at, noon));
        assert!(!Moment::Time(noon - chrono::Duration::milliseconds(1)).covers(at, noon));
    }
}
