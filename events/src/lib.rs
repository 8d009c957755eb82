//! The domain of userledger: its events, aggregates, value types and scope catalogue, and the
//! interface of the event store they are kept in. Pure: no database, no network; the store's
//! adapters are in the `event-store` crate.
//!
//! # Layout
//! - [`store`]: the [`store::EventStore`] trait and what crosses it ([`store::AppendRequest`],
//!   [`store::Position`], [`store::StoreError`], ...). Its PostgreSQL and EventStoreDB
//!   adapters are in the `event-store` crate (`event_store::postgres`,
//!   `event_store::eventstoredb`).
//! - [`values`]: the value types a request is parsed into (`Username`, `SanitizedEmail`,
//!   `Credits`, ...); holding one is the proof that the contract's rule was checked.
//! - [`scopes`]: the scope catalogue (a compiled-in copy of the contract's `scopes.tsv`) and
//!   what grants what.
//! - [`metadata`]: event metadata (actor, correlation, causation, schema version), the
//!   [`metadata::CommandContext`] a command is decided in, and the codec between events and the
//!   store's [`store::NewEvent`] / [`store::RecordedEvent`], with upcasting of old versions.
//! - [`audit`]: the hash chain that makes the log tamper-evident, and the redaction of secrets
//!   from payloads shown to auditors.
//! - [`personal`]: which fields of which events are personal data, sealed with a key of the
//!   person's so that erasing them (destroying the key) leaves the log whole.
//! - [`sign_in`]: sign-in attempts, a stream per user beside the user's own.
//! - [`social`]: follows, follow requests and blocks, a stream per pair of users.
//! - [`user`], [`role`], [`application`]: one aggregate each, as pure functions: its commands,
//!   its events, `decide`, `evolve`, and the uniqueness values it holds.
//! - `testing` (tests only): the given/when/then harness the aggregates' tests use.
//!
//! # How the command service uses an aggregate
//! Load the stream and fold it with [`Aggregate::evolve`]; call [`Aggregate::decide`] with the
//! state, a command of parsed values and a [`metadata::CommandContext`]; compute the
//! [`UniquenessChanges`] of the decided events; encode them with [`metadata::encode_all`]; seal
//! their personal data ([`personal`], through the store's `seal`); chain them onto the stream's
//! hash chain ([`Loaded::head`]); append them at the revision the state was read at, with the
//! claims and releases. An empty decision
//! means nothing changed: answer success without appending.

pub mod application;
pub mod audit;
pub mod metadata;
pub mod personal;
pub mod role;
pub mod scopes;
pub mod sign_in;
pub mod social;
pub mod store;
pub mod user;
pub mod values;

#[cfg(test)]
mod testing;

use std::collections::BTreeSet;
use std::fmt;

use metadata::{CommandContext, DecodeError, EventFamily};
use store::{ExpectedRevision, RecordedEvent, UniqueClaim};
use values::{Credits, InviteCode};

/// Why a command was refused by the rules of its aggregate. Authorization and input validation
/// fail earlier, in the command service and in [`values`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The target does not exist or was deleted (API.md §6: a 404, unlike Liquid).
    #[error("not found")]
    NotFound,
    /// A create on a stream that already holds a live aggregate.
    #[error("already exists")]
    AlreadyExists,
    /// A decrement larger than the balance; nothing changes.
    #[error("insufficient credits: the balance is {balance}, {requested} were asked")]
    InsufficientCredits {
        balance: Credits,
        requested: Credits,
    },
    /// An increment that would not fit in a balance.
    #[error("the balance cannot hold {balance} + {requested} credits")]
    CreditsOverflow {
        balance: Credits,
        requested: Credits,
    },
    /// More invite codes asked in one request than allowed.
    #[error("at most {max} invite codes can be generated at once, {requested} were asked")]
    GenerationTargetExceededForRequest { requested: usize, max: usize },
    /// An invite code the user already has (or one repeated in the request).
    #[error("invite code {0} already exists")]
    InviteCodeAlreadyExists(InviteCode),
    /// An invite code the user does not have.
    #[error("invite code {0} does not exist")]
    InviteCodeNotFound(InviteCode),
    /// An invite code somebody already redeemed.
    #[error("invite code {0} was already redeemed")]
    InviteCodeAlreadyRedeemed(InviteCode),
    /// System roles cannot be updated.
    #[error("system roles cannot be updated")]
    SystemRoleUpdate,
    /// System roles cannot be deleted.
    #[error("system roles cannot be deleted")]
    SystemRoleDelete,
    /// A public client has no secret.
    #[error("a public client cannot have a secret")]
    PublicClientWithSecret,
    /// A public client cannot use the client_credentials grant: it could not authenticate.
    #[error("a public client cannot use the client_credentials grant")]
    PublicClientWithClientCredentials,
    /// A confidential client needs a secret.
    #[error("a confidential client needs a secret")]
    ConfidentialClientWithoutSecret,
    /// A user cannot follow or block themselves.
    #[error("a user cannot follow or block themselves")]
    SelfRelation,
    /// The target blocks the user who asks (Liquid's `Blocked`).
    #[error("blocked by the target")]
    Blocked,
}

/// An aggregate as pure functions over its state. The state is `Default` for "never created";
/// a deleted aggregate is a state too, so a stream's history is never lost.
pub trait Aggregate {
    /// The id in the stream name.
    type Id: fmt::Display;
    type State: Default + Clone + fmt::Debug;
    type Command;
    type Event: EventFamily + Clone + PartialEq + fmt::Debug;

    /// The stream category: streams are named `<CATEGORY>-<id>`.
    const CATEGORY: &'static str;

    /// The events a command causes, or why it is refused. Empty when nothing would change.
    fn decide(
        state: &Self::State,
        command: Self::Command,
        context: &CommandContext,
    ) -> Result<Vec<Self::Event>, DomainError>;

    /// The state after an event. Total: an event is a fact, so it is applied, never refused.
    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;

    /// The values this state holds that no other aggregate may hold at the same time.
    fn unique_values(state: &Self::State) -> BTreeSet<UniqueClaim>;

    /// The stream of the aggregate with this id.
    fn stream_name(id: &Self::Id) -> String {
        format!("{}-{id}", Self::CATEGORY)
    }

    /// The state after a history of events.
    fn fold<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self::State
    where
        Self::Event: 'a,
    {
        events
            .into_iter()
            .fold(Self::State::default(), |state, event| {
                Self::evolve(state, event)
            })
    }
}

/// An aggregate's state as read from its stream, and the revision to append at.
#[derive(Debug, Clone)]
pub struct Loaded<A: Aggregate> {
    pub state: A::State,
    /// The revision of the last event read; `None` for an empty stream.
    pub revision: Option<u64>,
    /// Where the stream's hash chain stands: what events appended next chain to.
    pub head: audit::ChainHead,
}

impl<A: Aggregate> Loaded<A> {
    /// What an append decided on this state must expect the stream to be at.
    pub fn expected_revision(&self) -> ExpectedRevision {
        ExpectedRevision::from_current(self.revision)
    }
}

/// Decodes a stream's events (in order) and folds them into the aggregate's state. An event
/// that cannot be read stops the load: deciding on a partial history could break a rule.
pub fn load<A: Aggregate>(recorded: &[RecordedEvent]) -> Result<Loaded<A>, DecodeError> {
    Loaded::default().followed_by(recorded)
}

impl<A: Aggregate> Default for Loaded<A> {
    /// An empty stream.
    fn default() -> Self {
        Self {
            state: A::State::default(),
            revision: None,
            head: audit::ChainHead::default(),
        }
    }
}

impl<A: Aggregate> Loaded<A> {
    /// The revision the events after this state start at.
    pub fn next_revision(&self) -> u64 {
        self.revision.map_or(0, |revision| revision + 1)
    }

    /// This state with `rest` applied: the stream's events after it, in order (a snapshot
    /// brought up to date by reading only what is new).
    pub fn followed_by(self, rest: &[RecordedEvent]) -> Result<Self, DecodeError> {
        let Self {
            mut state,
            mut revision,
            head,
        } = self;
        for event in rest {
            let decoded = metadata::decode::<A::Event>(event)?;
            state = A::evolve(state, &decoded.event);
            revision = Some(event.revision);
        }
        Ok(Self {
            state,
            revision,
            head: head.past(rest),
        })
    }
}

/// The uniqueness values an append must claim and release: exactly what the aggregate holds
/// after the events and did not hold before, and the reverse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UniquenessChanges {
    pub claims: Vec<UniqueClaim>,
    pub releases: Vec<UniqueClaim>,
}

impl UniquenessChanges {
    pub fn is_empty(&self) -> bool {
        self.claims.is_empty() && self.releases.is_empty()
    }
}

/// The claims and releases of appending `events` to an aggregate in `state`. Derived from the
/// states, not from event types, so a rename, a delete or any new event that changes a unique
/// value is covered without a list to keep in step.
pub fn uniqueness_changes<A: Aggregate>(
    state: &A::State,
    events: &[A::Event],
) -> UniquenessChanges {
    let before = A::unique_values(state);
    let after_state = events
        .iter()
        .fold(state.clone(), |state, event| A::evolve(state, event));
    let after = A::unique_values(&after_state);
    UniquenessChanges {
        claims: after.difference(&before).cloned().collect(),
        releases: before.difference(&after).cloned().collect(),
    }
}
