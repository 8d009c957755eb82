//! A given/when/then harness for the aggregates, without a database:
//!
//! ```ignore
//! given::<User>([created()])
//!     .when(UserCommand::SetBanned(Toggle::on(None)))
//!     .then([UserEvent::Banned { reason: None, by: actor() }]);
//! ```

use std::fmt::Debug;

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use crate::metadata::{decode, encode, Actor, CommandContext, EventFamily};
use crate::store::{NewEvent, Position, RecordedEvent, UniqueClaim};
use crate::values::UserId;
use crate::{uniqueness_changes, Aggregate, DomainError, UniquenessChanges};

/// The fixed time every test command is decided at.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7)
        .single()
        .expect("a valid fixed time")
}

/// The user every test command is sent by.
pub fn actor() -> Actor {
    Actor::user(UserId::from_uuid(Uuid::from_u128(0xad)))
}

/// The context every test command is decided in.
pub fn context() -> CommandContext {
    CommandContext::new(Uuid::from_u128(0xc0), actor(), now())
}

/// A history of events an aggregate has had.
pub fn given<A: Aggregate>(history: impl IntoIterator<Item = A::Event>) -> Given<A> {
    Given {
        history: history.into_iter().collect(),
        context: context(),
    }
}

pub struct Given<A: Aggregate> {
    history: Vec<A::Event>,
    context: CommandContext,
}

impl<A: Aggregate> Given<A> {
    /// Sends the command as `actor` instead of the default one.
    pub fn by(mut self, actor: Actor) -> Self {
        self.context.actor = actor;
        self
    }

    /// Decides `command` on the state the history folds to.
    pub fn when(self, command: A::Command) -> When<A> {
        let state = A::fold(&self.history);
        let result = A::decide(&state, command, &self.context);
        When { state, result }
    }
}

pub struct When<A: Aggregate> {
    state: A::State,
    result: Result<Vec<A::Event>, DomainError>,
}

impl<A: Aggregate> When<A>
where
    A::Event: Debug + PartialEq,
{
    /// Asserts the decided events, and that each survives the store's encoding.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) -> Self {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match &self.result {
            Ok(events) => assert_eq!(events, &expected, "decided events"),
            Err(error) => panic!("expected events {expected:?}, got the error {error:?}"),
        }
        for event in &expected {
            assert_round_trip(event);
        }
        self
    }

    /// Asserts that the command changes nothing: no event, no error.
    #[track_caller]
    pub fn then_nothing(self) -> Self {
        self.then([])
    }

    /// Asserts the refusal.
    #[track_caller]
    pub fn then_error(self, expected: DomainError) {
        match self.result {
            Ok(events) => panic!("expected the error {expected:?}, got the events {events:?}"),
            Err(error) => assert_eq!(error, expected, "refusal"),
        }
    }

    /// Asserts the uniqueness values the decided events claim and release.
    #[track_caller]
    pub fn then_claims(self, claims: &[UniqueClaim], releases: &[UniqueClaim]) -> Self {
        let events = self.result.as_ref().map_or(&[][..], Vec::as_slice);
        let changes = uniqueness_changes::<A>(&self.state, events);
        assert_eq!(
            changes,
            UniquenessChanges {
                claims: claims.to_vec(),
                releases: releases.to_vec(),
            },
            "uniqueness changes"
        );
        self
    }

    /// The state after the decided events, for checks the events alone do not show.
    #[track_caller]
    pub fn state_after(self) -> A::State {
        let events = self.result.unwrap_or_else(|e| panic!("refused: {e:?}"));
        events
            .iter()
            .fold(self.state, |state, event| A::evolve(state, event))
    }
}

/// Encodes an event as the store would receive it and decodes it as the store would return it.
#[track_caller]
pub fn assert_round_trip<E: EventFamily + Debug + PartialEq>(event: &E) {
    let metadata = context().metadata(Uuid::from_u128(0xe0));
    let new = encode(event, &metadata).expect("encodes");
    assert_eq!(new.event_type, event.event_type());
    assert!(E::EVENT_TYPES.contains(&new.event_type.as_str()));
    let recorded = stored("test-1", 0, new);
    let decoded = decode::<E>(&recorded).expect("decodes");
    assert_eq!(&decoded.event, event);
    assert_eq!(decoded.metadata.event_id, metadata.event_id);
}

/// An event as the store gives it back: at `revision` of `stream`, at position `revision + 1`.
pub fn stored(stream: &str, revision: u64, new: NewEvent) -> RecordedEvent {
    RecordedEvent {
        stream: stream.to_owned(),
        revision,
        position: Position::at(revision + 1),
        event_id: new.event_id,
        event_type: new.event_type,
        data: new.data,
        metadata: new.metadata,
        recorded_at: now(),
    }
}
