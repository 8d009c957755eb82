//! Revoked grants, kept in PostgreSQL beside the log (shared by every process): a token is
//! refused once its family is revoked (its user signed out of it, or a code or refresh token of
//! the family was presented twice), or once its user signed out everywhere after it was issued.
//!
//! A family is one sign-in's tokens: the access and refresh tokens that one code or one password
//! grant issued, and every pair rotated from them. Its row remembers the one refresh token that
//! may still be used (rotation: each use replaces it), so that presenting a replaced one is
//! seen, and revokes the whole family (RFC 6749 §10.4, OAuth 2.0 Security BCP §4.14).

use sqlx::PgPool;
use uuid::Uuid;

/// Creates the tables if missing.
pub async fn prepare(pool: &PgPool) -> sqlx::Result<()> {
    crate::tables::create(
        pool,
        "userledger revocation",
        &[
            "CREATE TABLE IF NOT EXISTS token_families (
                family       uuid        PRIMARY KEY,
                user_id      uuid        NOT NULL,
                refresh_jti  uuid,
                created_at   timestamptz NOT NULL DEFAULT now(),
                revoked_at   timestamptz
            )",
            "CREATE INDEX IF NOT EXISTS token_families_user ON token_families (user_id)",
            "CREATE TABLE IF NOT EXISTS signed_out_everywhere (
                user_id uuid        PRIMARY KEY,
                at      timestamptz NOT NULL
            )",
        ],
    )
    .await
}

/// Opens a family for `user`'s new tokens; `refresh_jti` is the refresh token that may be used.
pub async fn open_family(
    pool: &PgPool,
    family: Uuid,
    user: Uuid,
    refresh_jti: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO token_families (family, user_id, refresh_jti) VALUES ($1, $2, $3)
         ON CONFLICT (family) DO NOTHING",
    )
    .bind(family)
    .bind(user)
    .bind(refresh_jti)
    .execute(pool)
    .await?;
    Ok(())
}

/// What presenting a refresh token of a family found.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotation {
    /// It was the family's current refresh token; `next` is now.
    Rotated,
    /// It had been replaced (or the family was revoked): the family is revoked now.
    Reused,
}

/// Replaces the family's refresh token `presented` with `next`, atomically; a presented token
/// that is not the current one revokes the family.
pub async fn rotate(
    pool: &PgPool,
    family: Uuid,
    presented: Uuid,
    next: Uuid,
) -> sqlx::Result<Rotation> {
    let rotated = sqlx::query(
        "UPDATE token_families SET refresh_jti = $3
          WHERE family = $1 AND refresh_jti = $2 AND revoked_at IS NULL",
    )
    .bind(family)
    .bind(presented)
    .bind(next)
    .execute(pool)
    .await?
    .rows_affected();
    if rotated == 1 {
        return Ok(Rotation::Rotated);
    }
    revoke_family(pool, family).await?;
    Ok(Rotation::Reused)
}

/// Revokes `family` of `user` whether or not it is open yet: opened later, it stays revoked
/// ([`open_family`] leaves an existing row alone). A code presented twice revokes so the tokens
/// its first presentation may still be issuing.
pub async fn revoke_family_before_opening(
    pool: &PgPool,
    family: Uuid,
    user: Uuid,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO token_families (family, user_id, revoked_at) VALUES ($1, $2, now())
         ON CONFLICT (family) DO UPDATE
         SET revoked_at = coalesce(token_families.revoked_at, excluded.revoked_at)",
    )
    .bind(family)
    .bind(user)
    .execute(pool)
    .await?;
    Ok(())
}

/// Revokes every token of a family.
pub async fn revoke_family(pool: &PgPool, family: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE token_families SET revoked_at = now() WHERE family = $1 AND revoked_at IS NULL",
    )
    .bind(family)
    .execute(pool)
    .await?;
    Ok(())
}

/// Revokes every token `user` holds now (tokens issued from the next second on still work).
pub async fn sign_out_everywhere(pool: &PgPool, user: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO signed_out_everywhere (user_id, at) VALUES ($1, now())
         ON CONFLICT (user_id) DO UPDATE SET at = excluded.at",
    )
    .bind(user)
    .execute(pool)
    .await?;
    sqlx::query(
        "UPDATE token_families SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user)
    .execute(pool)
    .await?;
    Ok(())
}

/// Whether a token of `user` (a user id, or an application id for client tokens), of `family`,
/// issued at `iat` (seconds), has been revoked.
pub async fn is_revoked(
    pool: &PgPool,
    user: Uuid,
    family: Option<Uuid>,
    iat: u64,
) -> sqlx::Result<bool> {
    let (family_revoked, signed_out): (bool, Option<i64>) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM token_families
                         WHERE family = $1 AND revoked_at IS NOT NULL),
                (SELECT ceil(extract(epoch FROM at))::bigint FROM signed_out_everywhere
                  WHERE user_id = $2)",
    )
    .bind(family)
    .bind(user)
    .fetch_one(pool)
    .await?;
    let iat = i64::try_from(iat).unwrap_or(i64::MAX);
    Ok(family_revoked || signed_out.is_some_and(|at| iat < at))
}

/// Forgets grants whose every token has expired: families opened, and sign-outs made, more
/// than `refresh_ttl` (the longest a token lives) and a day ago.
pub async fn sweep(pool: &PgPool, refresh_ttl: std::time::Duration) -> sqlx::Result<u64> {
    let older_than = refresh_ttl.as_secs_f64() + 86_400.0;
    let families = sqlx::query(
        "DELETE FROM token_families WHERE created_at < now() - make_interval(secs => $1)",
    )
    .bind(older_than)
    .execute(pool)
    .await?
    .rows_affected();
    let sign_outs = sqlx::query(
        "DELETE FROM signed_out_everywhere WHERE at < now() - make_interval(secs => $1)",
    )
    .bind(older_than)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(families + sign_outs)
}
