//! The social read model: who follows whom (`follows`) and who blocks whom (`blocks`), as the
//! client-api's `follow-status`, `block-status`, `followers` and `following` routes read them
//! (API.md §3), from the social events of the relation streams (`relation-<a>-<b>`,
//! [`events::social`]). A follow's `id` is the event id of the fact that began it (a UUIDv7,
//! so id order is creation order).

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
        events: &[RecordedEvent],
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
