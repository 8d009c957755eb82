//! The checkpoint of each projection: one row in `projection_checkpoints`, in the schema of the
//! projection's tables, written in the same transaction as the rows it covers (invariant 4).

use events::store::Position;
use sqlx::PgConnection;

/// Creates the checkpoint table when missing (in the transaction's `search_path`).
pub(crate) async fn create_table(connection: &mut PgConnection) -> anyhow::Result<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS projection_checkpoints (
            projection text PRIMARY KEY,
            commit_position bigint NOT NULL,
            prepare_position bigint NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .execute(connection)
    .await?;
    Ok(())
}

/// The position `projection`, whose tables are in `schema`, has applied, as a reader outside
/// the projector sees it: `None` before its first batch, or before its projector ever ran (when
/// the checkpoint table does not exist yet).
pub async fn reached(
    database: &sqlx::PgPool,
    schema: &str,
    projection: &str,
) -> sqlx::Result<Option<Position>> {
    let query = format!(
        "SELECT commit_position, prepare_position FROM {schema}.projection_checkpoints \
         WHERE projection = $1"
    );
    match sqlx::query_as::<_, (i64, i64)>(&query)
        .bind(projection)
        .fetch_optional(database)
        .await
    {
        Ok(row) => Ok(row.map(|(commit, prepare)| Position::new(commit as u64, prepare as u64))),
        Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("42P01") => Ok(None),
        Err(error) => Err(error),
    }
}

/// The position `projection` has applied; `None` before its first batch.
pub(crate) async fn read(
    connection: &mut PgConnection,
    projection: &str,
) -> anyhow::Result<Option<Position>> {
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT commit_position, prepare_position FROM projection_checkpoints WHERE projection = $1",
    )
    .bind(projection)
    .fetch_optional(connection)
    .await?;
    Ok(row.map(|(commit, prepare)| Position::new(commit as u64, prepare as u64)))
}

/// Moves the checkpoint of `projection` from `from` (absent when `None`) to `to`, only if it is
/// still there: `false` when it moved underneath (another instance that took over, or a
/// rebuild swapped in), and then nothing changed. The row stays locked until the transaction
/// ends, so concurrent instances are ordered by it: the second one to arrive finds the first
/// one's position and backs off.
pub(crate) async fn advance(
    connection: &mut PgConnection,
    projection: &str,
    from: Option<Position>,
    to: Position,
) -> anyhow::Result<bool> {
    let moved = match from {
        None => sqlx::query(
            "INSERT INTO projection_checkpoints (projection, commit_position, prepare_position) \
                 VALUES ($1, $2, $3) ON CONFLICT (projection) DO NOTHING",
        )
        .bind(projection)
        .bind(to.commit as i64)
        .bind(to.prepare as i64)
        .execute(connection)
        .await?,
        Some(from) => {
            sqlx::query(
                "UPDATE projection_checkpoints \
                    SET commit_position = $4, prepare_position = $5, updated_at = now() \
                  WHERE projection = $1 AND commit_position = $2 AND prepare_position = $3",
            )
            .bind(projection)
            .bind(from.commit as i64)
            .bind(from.prepare as i64)
            .bind(to.commit as i64)
            .bind(to.prepare as i64)
            .execute(connection)
            .await?
        }
    };
    Ok(moved.rows_affected() == 1)
}

/// Sets the checkpoint of `projection` to `to` whatever it was: for a rebuild, which writes a
/// schema nobody else writes.
pub(crate) async fn set(
    connection: &mut PgConnection,
    projection: &str,
    to: Position,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO projection_checkpoints (projection, commit_position, prepare_position) \
         VALUES ($1, $2, $3) \
         ON CONFLICT (projection) DO UPDATE \
            SET commit_position = EXCLUDED.commit_position, \
                prepare_position = EXCLUDED.prepare_position, updated_at = now()",
    )
    .bind(projection)
    .bind(to.commit as i64)
    .bind(to.prepare as i64)
    .execute(connection)
    .await?;
    Ok(())
}
