//! The `userledger` binary's library: what its tests need to see of it.
//!
//! Layout: `main.rs` is the binary (its subcommands); [`config`] is its layered configuration.

pub mod config;
