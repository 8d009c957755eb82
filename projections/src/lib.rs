//! The projector runtime of userledger: read models (and, later, the Kafka publisher) built
//! from the global log.
//!
//! # Layout
//! - [`runtime`]: [`runtime::Projection`] (what a read model implements) and
//!   [`runtime::Projector`], which feeds one projection from the log: a catch-up subscription
//!   from the stored checkpoint, then the live tail; events applied in batches, the rows and the
//!   checkpoint committed in one transaction (invariant 4); one active instance per projection
//!   (an advisory lock; a second instance waits as a standby); a clean shutdown.

pub mod runtime;
