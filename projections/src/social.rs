//! The social read model: who follows whom (`follows`) and who blocks whom (`blocks`), as the
//! client-api's `follow-status`, `block-status`, `followers` and `following` routes read them
//! (API.md §3), from the social events of the relation streams (`relation-<a>-<b>`,
//! [`events::social`]). A follow's `id` is the event id of the fact that began it (a UUIDv7,
//! so id order is creation order).

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use events::metadata::{decode, EventFamily};
use events::social::SocialEvent;
use events::store::RecordedEvent;
use sqlx::PgConnection;

use crate::runtime::Projection;

/// The projection's name: its checkpoint and its lock.
pub const NAME: &str = "social";

/// Keeps `follows` and `blocks` up to date.
#[derive(Debug, Clone, Copy, Default)]
pub struct SocialReadModel;

#[async_trait]
impl Projection for SocialReadModel {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn prepare(&self, connection: &mut PgConnection) -> anyhow::Result<()> {
        for statement in [
            // `id` is the follow's `_id` on the wire; a UUIDv7, so its order is creation
            // order, which `followers` and `following` page by (keyset on `id`).
            "CREATE TABLE IF NOT EXISTS follows (
                id uuid PRIMARY KEY,
                source uuid NOT NULL,
                target uuid NOT NULL,
                approved boolean NOT NULL,
                created_at timestamptz NOT NULL,
                CONSTRAINT follows_source_target_key UNIQUE (source, target)
            )",
            // A user's followers, and whom a user follows, page by page.
            "CREATE INDEX IF NOT EXISTS follows_followers ON follows (target, id)",
            "CREATE INDEX IF NOT EXISTS follows_following ON follows (source, id)",
            "CREATE TABLE IF NOT EXISTS blocks (
                source uuid NOT NULL,
                target uuid NOT NULL,
                created_at timestamptz NOT NULL,
                PRIMARY KEY (source, target)
            )",
        ] {
            sqlx::query(statement).execute(&mut *connection).await?;
        }
        Ok(())
    }

    /// Applies the social events, skipping every other type without decoding it.
    async fn apply(
        &self,
        connection: &mut PgConnection,
        events: &[Arc<RecordedEvent>],
    ) -> anyhow::Result<()> {
        for recorded in events {
            if !SocialEvent::EVENT_TYPES.contains(&recorded.event_type.as_str()) {
                continue;
            }
            let decoded = decode::<SocialEvent>(recorded).with_context(|| {
                format!("decoding {} at {}", recorded.event_type, recorded.position)
            })?;
            let (statement, edge) = match &decoded.event {
                SocialEvent::Followed(edge) | SocialEvent::FollowRequested(edge) => (
                    "INSERT INTO follows (id, source, target, approved, created_at)
                     VALUES ($3, $1, $2, $4, $5) ON CONFLICT (source, target) DO NOTHING",
                    edge,
                ),
                SocialEvent::FollowRequestAccepted(edge) => (
                    "UPDATE follows SET approved = true WHERE source = $1 AND target = $2",
                    edge,
                ),
                SocialEvent::Unfollowed(ended) | SocialEvent::FollowRemoved(ended) => (
                    "DELETE FROM follows WHERE source = $1 AND target = $2",
                    &ended.edge,
                ),
                SocialEvent::Blocked(edge) => (
                    "INSERT INTO blocks (source, target, created_at) VALUES ($1, $2, $5)
                     ON CONFLICT (source, target) DO NOTHING",
                    edge,
                ),
                SocialEvent::Unblocked(edge) => {
                    ("DELETE FROM blocks WHERE source = $1 AND target = $2", edge)
                }
            };
            // Every statement takes the same parameters; each uses those it needs.
            sqlx::query(statement)
                .bind(edge.source.as_uuid())
                .bind(edge.target.as_uuid())
                .bind(recorded.event_id)
                .bind(matches!(decoded.event, SocialEvent::Followed(_)))
                .bind(decoded.metadata.occurred_at)
                .execute(&mut *connection)
                .await?;
        }
        Ok(())
    }
}

/// What the write side looks up in this read model, for the two writes that name follows it
/// cannot name itself: the follow behind an entry `_id` (accepting a request, removing an entry)
/// and the requests waiting on an account that goes public. Each lookup only finds the two
/// users; what then holds between them is decided on their relation stream, as every social
/// write is.
pub mod lookups {
    use events::store::Position;
    use sqlx::PgPool;
    use uuid::Uuid;

    use crate::READ_MODEL_SCHEMA;

    /// The follower and the followed of the follow (or request) `entry`, if it is current.
    pub async fn entry(database: &PgPool, entry: Uuid) -> sqlx::Result<Option<(Uuid, Uuid)>> {
        sqlx::query_as(&format!(
            "SELECT source, target FROM {READ_MODEL_SCHEMA}.follows WHERE id = $1"
        ))
        .bind(entry)
        .fetch_optional(database)
        .await
    }

    /// Those whose requests to follow `target` wait, oldest first.
    pub async fn requesters(database: &PgPool, target: Uuid) -> sqlx::Result<Vec<Uuid>> {
        sqlx::query_scalar(&format!(
            "SELECT source FROM {READ_MODEL_SCHEMA}.follows
              WHERE target = $1 AND NOT approved ORDER BY id"
        ))
        .bind(target)
        .fetch_all(database)
        .await
    }

    /// Whether the read model has applied the log up to `position`.
    pub async fn reached(database: &PgPool, position: Position) -> sqlx::Result<bool> {
        let reached = crate::checkpoint::reached(database, READ_MODEL_SCHEMA, super::NAME).await?;
        Ok(reached.is_some_and(|reached| reached >= position))
    }
}
