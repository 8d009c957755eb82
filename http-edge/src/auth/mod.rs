//! Who is calling: bearer tokens (issued by `/oauth/token`, verified once per request by the
//! route's policy), the contract's scope checks, and revocation of banned or deleted accounts.
//!
//! - [`tokens`]: signing and verifying access and refresh tokens (JWT, HS256).
//! - [`access`]: whether a token's user and client may still act (cached for seconds).
//! - [`revocation`]: revoked grants (signed out, a code or refresh token presented twice) and
//!   refresh token rotation, in PostgreSQL.
//! - [`caller`]: the [`Caller`] a route's policy admitted, its extractor, and the `shared` /
//!   `session` checks of API.md §2.

pub mod access;
pub mod caller;
pub mod revocation;
pub mod tokens;

pub use caller::{Caller, Edge};
pub use tokens::{TokenClaims, TokenKeys, TokenKind, TokenUse};
