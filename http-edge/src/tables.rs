//! Tables the edge and the write side keep in PostgreSQL beside the log (idempotency keys,
//! revoked grants, sessions and codes): created at start-up when missing.

use sqlx::PgPool;

/// Runs `statements` (`CREATE TABLE IF NOT EXISTS ...`) in one transaction, under an advisory
/// lock named `name`: processes starting together take turns, since `CREATE TABLE IF NOT
/// EXISTS` is not safe against itself.
pub async fn create(pool: &PgPool, name: &str, statements: &[&str]) -> sqlx::Result<()> {
    let mut transaction = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(name)
        .execute(&mut *transaction)
        .await?;
    for statement in statements {
        sqlx::query(statement).execute(&mut *transaction).await?;
    }
    transaction.commit().await
}
