//! The adapters that keep userledger's event log: implementations of
//! [`events::store::EventStore`].

pub mod eventstoredb;
pub mod postgres;
