//! Who is calling: bearer tokens (issued by `/oauth/token`, verified on every request), the
//! contract's scope checks, and revocation of banned or deleted accounts.
//!
//! - [`tokens`]: signing and verifying access and refresh tokens (JWT, HS256).
//! - [`caller`]: the [`Caller`] extractor and the `shared` / `session` checks of API.md §2.
//! - [`access`]: whether a token's user and client may still act (cached for seconds).

pub mod access;
pub mod caller;
pub mod tokens;

pub use caller::{Caller, Edge, TokenKind};
pub use tokens::{TokenClaims, TokenKeys, TokenUse};
