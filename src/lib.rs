//! The `userledger` binary's library: what its tests need to see of it.
//!
//! # Layout
//! - `main.rs`: the binary, its subcommands (clap) and how each assembles the services;
//! - [`config`]: its layered configuration (figment): every key, validation and masking.

pub mod config;
