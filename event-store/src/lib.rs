//! The event stores of userledger: the adapters that implement [`events::store::EventStore`]
//! (the trait and its types, `AppendRequest`, `Position`, `StoreError` and the rest, live in the
//! domain crate `events`). Both pass the contract suite in `tests/tests/event_store_contract.rs`.
//!
//! # Layout
//! - [`postgres`]: [`postgres::PostgresEventStore`] on sqlx: appends written in groups
//!   (`postgres/group_commit.rs`: the appends that arrive together share one INSERT and one
//!   commit), claims as rows of `unique_claims` in the same transaction, gap-free reading below
//!   the oldest running transaction. Its schema is in `migrations/` (run by `PostgresEventStore::connect`).
//! - [`eventstoredb`]: [`eventstoredb::EventStoreDbStore`] on the `eventstore` client, split
//!   into the store and its `EventStore` impl (`mod.rs`), uniqueness reservations
//!   (`reservations.rs`), the events append (`append.rs`), reading and following `$all`
//!   (`subscription.rs`) and the conversions between our types and the client's (`mapping.rs`).
//! - [`sealed`]: the people's keys ([`sealed::Keyring`], in PostgreSQL for either store) and
//!   [`sealed::Sealed`], a store over either that opens the personal data it reads.

pub mod eventstoredb;
pub mod postgres;
pub mod sealed;
