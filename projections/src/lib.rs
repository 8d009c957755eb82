//! The projector runtime of userledger: read models and the Kafka publisher, built from the
//! global log.
//!
//! # Layout
//! - [`runtime`]: [`runtime::Projection`] (what a read model implements) and
//!   [`runtime::Projector`], which feeds one projection from the log: a catch-up subscription
//!   from the stored checkpoint, then the live tail; events applied in batches, the rows and the
//!   checkpoint committed in one transaction (invariant 4); one active instance per projection
//!   (an advisory lock; a second instance waits as a standby); a clean shutdown.
//! - The read models the query service serves, one module each, all in the schema
//!   [`READ_MODEL_SCHEMA`]: [`users`] (the contract's user object, unhydrated), [`roles`],
//!   [`applications`] (never a secret), [`invite_codes`], [`login_history`] (sign-in
//!   attempts) and [`social`] (follows and blocks,
//!   empty until the domain has social events).
//! - [`spawn_read_models`] runs the five of them until shutdown, restarting one that fails.
//! - [`rebuild`]: replays the whole log into fresh tables in a schema of their own and swaps
//!   them in atomically; the live projectors resume from the rebuilt checkpoints.
//! - [`publisher`]: every change to Kafka, checkpointed after the broker's acknowledgement.
//! - [`verify`]: checks every stream's hash chain, rebuilds every read model in a scratch
//!   schema and compares it, row for row, with the live one.
//! - `checkpoint`: the checkpoint rows, moved by compare-and-set, so that two instances that
//!   both believe they are active (a lock connection lost) never apply an event twice.
//!
//! Every read model folds: it loads the current document of each stream a batch touches, runs
//! the domain's own `evolve` over the batch's events, and writes the documents back, so a
//! document is exactly what a fold of its stream gives (no second copy of the rules).

pub mod applications;
pub mod invite_codes;
pub mod login_history;
pub mod publisher;
pub mod rebuild;
pub mod roles;
pub mod runtime;
pub mod social;
pub mod users;
pub mod verify;

pub mod checkpoint;
mod supervision;

pub use publisher::{republish, KafkaSettings};
pub use rebuild::rebuild;
pub use supervision::{spawn_read_models, ReadModels};
pub use verify::verify;

/// The PostgreSQL schema of the read models and their checkpoints.
pub const READ_MODEL_SCHEMA: &str = "read_models";

/// The names of the read models (their checkpoints' names), as the status routes list them.
pub const READ_MODEL_NAMES: [&str; 6] = [
    users::NAME,
    roles::NAME,
    applications::NAME,
    invite_codes::NAME,
    social::NAME,
    login_history::NAME,
];

/// Every read model of the query service.
pub fn read_models() -> Vec<Box<dyn runtime::Projection>> {
    vec![
        Box::new(users::UsersReadModel),
        Box::new(roles::RolesReadModel),
        Box::new(applications::ApplicationsReadModel),
        Box::new(invite_codes::InviteCodesReadModel),
        Box::new(social::SocialReadModel),
        Box::new(login_history::LoginHistoryReadModel),
    ]
}

/// The id part of a stream name in `category` (`user-<id>` -> `<id>`); `None` for streams of
/// other categories, which a projection skips without decoding.
fn stream_id<'a>(stream: &'a str, category: &str) -> Option<&'a str> {
    stream
        .strip_prefix(category)
        .and_then(|rest| rest.strip_prefix('-'))
}
