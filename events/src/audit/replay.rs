//! `userledger replay`: the log as JSON lines for auditors' tools, whole or a selection (one
//! stream, one category, a time or position range). Payloads are redacted
//! ([`super::redacted_data`]); the metadata, with each event's hash, is shown as stored.

use serde_json::{json, Value};

use super::{occurred_at, redacted_data, Moment};
use crate::store::{EventStore, RecordedEvent, StoreError};

/// Events read from the log per query.
const PAGE: usize = 5_000;

/// Which events to replay. Empty: all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Only this stream (`user-<id>`).
    pub stream: Option<String>,
    /// Only streams of this category (`user`, `role`, `client`).
    pub category: Option<String>,
    /// From this moment on (inclusive).
    pub from: Option<Moment>,
    /// Up to this moment (inclusive).
    pub to: Option<Moment>,
}

impl Selection {
    /// Reads `--stream S`, `--category C`, `--from M`, `--to M` (M: an RFC 3339 time or a log
    /// position).
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut selection = Selection::default();
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            let moment = |value: String| value.parse::<Moment>().map_err(|e| e.to_string());
            match flag.as_str() {
                "--stream" => selection.stream = Some(value()?),
                "--category" => selection.category = Some(value()?),
                "--from" => selection.from = Some(moment(value()?)?),
                "--to" => selection.to = Some(moment(value()?)?),
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        if selection.stream.is_some() && selection.category.is_some() {
            return Err("--stream and --category exclude each other".into());
        }
        Ok(selection)
    }

    /// Whether `event` is selected.
    pub fn selects(&self, event: &RecordedEvent) -> bool {
        let in_stream = self.stream.as_ref().is_none_or(|s| *s == event.stream);
        let in_category = self.category.as_ref().is_none_or(|c| {
            event
                .stream
                .strip_prefix(c.as_str())
                .is_some_and(|rest| rest.starts_with('-'))
        });
        let after_from = self.from.is_none_or(|from| match from {
            Moment::Time(time) => occurred_at(event) >= time,
            Moment::Position(position) => event.position >= position,
        });
        let before_to = self.to.is_none_or(|to| to.covers_event(event));
        in_stream && in_category && after_from && before_to
    }

    /// Whether no event after `event` in the global log can be selected.
    fn ends_at(&self, event: &RecordedEvent) -> bool {
        matches!(self.to, Some(Moment::Position(to)) if event.position >= to)
    }
}

/// One line of the replay.
pub fn line(event: &RecordedEvent) -> Value {
    json!({
        "position": event.position.to_string(),
        "stream": event.stream,
        "revision": event.revision,
        "eventId": event.event_id,
        "type": event.event_type,
        "occurredAt": occurred_at(event),
        "recordedAt": event.recorded_at,
        "data": redacted_data(event),
        "metadata": event.metadata,
    })
}

/// What a replay went through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Events read from the log.
    pub read: u64,
    /// Events selected (and given to the caller).
    pub selected: u64,
}

/// Reads the log (one stream's events only, when the selection names a stream) and gives
/// every selected event to `each`, in log order; `progress` hears after each page.
pub async fn replay<E>(
    store: &dyn EventStore,
    selection: &Selection,
    mut each: impl FnMut(&RecordedEvent) -> Result<(), E>,
    mut progress: impl FnMut(Replayed),
) -> Result<Replayed, E>
where
    E: From<StoreError>,
{
    let mut replayed = Replayed::default();
    if let Some(stream) = &selection.stream {
        let events = store.read_stream(stream, 0).await?;
        replayed.read = events.len() as u64;
        for event in events.iter().filter(|e| selection.selects(e)) {
            each(event)?;
            replayed.selected += 1;
        }
        progress(replayed);
        return Ok(replayed);
    }
    let mut after = None;
    loop {
        let page = store.read_all(after, PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(replayed);
        };
        after = Some(last.position);
        for event in &page {
            replayed.read += 1;
            if selection.selects(event) {
                each(event)?;
                replayed.selected += 1;
            }
            if selection.ends_at(event) {
                progress(replayed);
                return Ok(replayed);
            }
        }
        progress(replayed);
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::store::Position;

    fn event(stream: &str, position: u64, at: &str) -> RecordedEvent {
        RecordedEvent {
            stream: stream.into(),
            revision: 0,
            position: Position::at(position),
            event_id: Uuid::now_v7(),
            event_type: "UserDeleted".into(),
            data: json!({}),
            metadata: json!({ "occurredAt": at }),
            recorded_at: Utc::now(),
        }
    }

    fn args(line: &str) -> Result<Selection, String> {
        Selection::from_args(line.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn selections_by_stream_category_and_range() {
        let e = event("user-1", 10, "2026-01-02T00:00:00Z");
        assert!(args("").unwrap().selects(&e));
        assert!(args("--stream user-1").unwrap().selects(&e));
        assert!(!args("--stream user-2").unwrap().selects(&e));
        assert!(args("--category user").unwrap().selects(&e));
        assert!(!args("--category use").unwrap().selects(&e));
        assert!(!args("--category role").unwrap().selects(&e));
        assert!(args("--from 10 --to 10").unwrap().selects(&e));
        assert!(!args("--from 11").unwrap().selects(&e));
        assert!(!args("--to 9").unwrap().selects(&e));
        assert!(
            args("--from 2026-01-01T00:00:00Z --to 2026-01-02T00:00:00Z")
                .unwrap()
                .selects(&e)
        );
        assert!(!args("--from 2026-01-02T00:00:00.001Z").unwrap().selects(&e));
        assert!(args("--stream a --category b").is_err());
        assert!(args("--from").is_err());
        assert!(args("--from yesterday").is_err());
        assert!(args("--everything").is_err());
    }
}
