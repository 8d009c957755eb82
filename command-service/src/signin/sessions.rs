//! What signing in leaves beside the log, in PostgreSQL (shared by every command process of a
//! split deployment): sessions and authorization codes. Neither is history: a session is
//! revocable and expires, a code lives a minute and works once. Only hashes of their secrets
//! are stored (SHA-256: they are 256 random bits, not passwords), so a database dump signs
//! nobody in.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use events::values::{ApplicationId, UserId};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

/// The tables of sessions and codes.
pub const TABLES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS sign_in_sessions (
        secret_hash bytea       PRIMARY KEY,
        user_id     uuid        NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        expires_at  timestamptz NOT NULL,
        ended_at    timestamptz
    )",
    "CREATE INDEX IF NOT EXISTS sign_in_sessions_user ON sign_in_sessions (user_id)",
    "CREATE TABLE IF NOT EXISTS authorization_codes (
        code_hash      bytea       PRIMARY KEY,
        application_id uuid        NOT NULL,
        redirect_uri   text        NOT NULL,
        user_id        uuid        NOT NULL,
        scope          text[],
        code_challenge text,
        family         uuid        NOT NULL,
        expires_at     timestamptz NOT NULL,
        used_at        timestamptz
    )",
];

/// 256 random bits, base64url without padding (43 characters): a session or a code.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// A signed-in browser: whose.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: UserId,
}

/// Opens a session for `user`, valid for `ttl`; its secret, for the cookie.
pub async fn open(pool: &PgPool, user: UserId, ttl: Duration) -> sqlx::Result<String> {
    let secret = new_secret();
    sqlx::query(
        "INSERT INTO sign_in_sessions (secret_hash, user_id, expires_at)
         VALUES ($1, $2, now() + make_interval(secs => $3))",
    )
    .bind(hash(&secret))
    .bind(user.as_uuid())
    .bind(ttl.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(secret)
}

/// The live session whose secret is `secret`: not ended, not expired.
pub async fn find(pool: &PgPool, secret: &str) -> sqlx::Result<Option<Session>> {
    let user: Option<Uuid> = sqlx::query_scalar(
        "SELECT user_id FROM sign_in_sessions
          WHERE secret_hash = $1 AND ended_at IS NULL AND expires_at > now()",
    )
    .bind(hash(secret))
    .fetch_optional(pool)
    .await?;
    Ok(user.map(|user| Session {
        user: UserId::from_uuid(user),
    }))
}

/// Ends the session whose secret is `secret` (if any).
pub async fn end(pool: &PgPool, secret: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE sign_in_sessions SET ended_at = now() WHERE secret_hash = $1 AND ended_at IS NULL",
    )
    .bind(hash(secret))
    .execute(pool)
    .await?;
    Ok(())
}

/// Ends every session of `user`.
pub async fn end_all(pool: &PgPool, user: UserId) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE sign_in_sessions SET ended_at = now() WHERE user_id = $1 AND ended_at IS NULL",
    )
    .bind(user.as_uuid())
    .execute(pool)
    .await?;
    Ok(())
}

/// What an authorization code is bound to.
#[derive(Debug, Clone)]
pub struct Grant {
    pub application: ApplicationId,
    pub redirect_uri: String,
    pub user: UserId,
    /// The scopes asked for; `None` asks for everything the user and client may have.
    pub scope: Option<Vec<String>>,
    /// The PKCE `S256` challenge.
    pub code_challenge: Option<String>,
}

/// Stores a code for `grant`, valid for `ttl`; the code.
pub async fn issue_code(pool: &PgPool, grant: &Grant, ttl: Duration) -> sqlx::Result<String> {
    let code = new_secret();
    sqlx::query(
        "INSERT INTO authorization_codes
            (code_hash, application_id, redirect_uri, user_id, scope, code_challenge, family,
             expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8))",
    )
    .bind(hash(&code))
    .bind(grant.application.as_uuid())
    .bind(&grant.redirect_uri)
    .bind(grant.user.as_uuid())
    .bind(&grant.scope)
    .bind(&grant.code_challenge)
    .bind(Uuid::now_v7())
    .bind(ttl.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(code)
}

/// What presenting a code found.
#[derive(Debug)]
pub enum Redeemed {
    /// First use, in time: the grant, and the family its tokens belong to.
    Fresh { grant: Grant, family: Uuid },
    /// Presented before: the family of the tokens it issued (to `user`), which must be
    /// revoked.
    Replayed { family: Uuid, user: UserId },
    /// Unknown or expired.
    Invalid,
}

/// Marks `code` used, atomically and in one statement: of two concurrent presentations
/// exactly one is `Fresh` (the row lock serialises them, and the second reads the first's mark
/// as `before`).
pub async fn redeem(pool: &PgPool, code: &str) -> sqlx::Result<Redeemed> {
    type Row = (
        Uuid,
        String,
        Uuid,
        Option<Vec<String>>,
        Option<String>,
        Uuid,
        bool,
        bool,
    );
    let row: Option<Row> = sqlx::query_as(
        "UPDATE authorization_codes AS code SET used_at = coalesce(code.used_at, now())
           FROM (SELECT code_hash, used_at FROM authorization_codes
                  WHERE code_hash = $1 FOR UPDATE) AS before
          WHERE code.code_hash = before.code_hash
      RETURNING code.application_id, code.redirect_uri, code.user_id, code.scope,
                code.code_challenge, code.family, before.used_at IS NOT NULL,
                code.expires_at <= now()",
    )
    .bind(hash(code))
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        None => Redeemed::Invalid,
        Some((_, _, user, _, _, family, true, _)) => Redeemed::Replayed {
            family,
            user: UserId::from_uuid(user),
        },
        Some((.., true)) => Redeemed::Invalid,
        Some((application, redirect_uri, user, scope, code_challenge, family, false, false)) => {
            Redeemed::Fresh {
                grant: Grant {
                    application: ApplicationId::from_uuid(application),
                    redirect_uri,
                    user: UserId::from_uuid(user),
                    scope,
                    code_challenge,
                },
                family,
            }
        }
    })
}

/// Forgets what can no longer be used: codes and sessions that expired (or ended) more than a
/// day ago. The day's margin keeps a replayed code recognisable as replayed for a while.
pub async fn sweep(pool: &PgPool) -> sqlx::Result<u64> {
    let codes =
        sqlx::query("DELETE FROM authorization_codes WHERE expires_at < now() - interval '1 day'")
            .execute(pool)
            .await?
            .rows_affected();
    let sessions = sqlx::query(
        "DELETE FROM sign_in_sessions
          WHERE least(expires_at, coalesce(ended_at, expires_at)) < now() - interval '1 day'",
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(codes + sessions)
}
