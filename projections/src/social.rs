//! The social read model: who follows whom (`follows`) and who blocks whom (`blocks`), as the
//! client-api's `follow-status`, `block-status`, `followers` and `following` routes read them
//! (API.md §3).
//!
//! The domain has no follow or block event yet, so [`SocialReadModel::apply`] ignores every
//! event and both tables stay empty; they exist (and are served) now so that the routes, the
//! status endpoint and `rebuild` already cover them. Once the social events exist, they are
//! handled in `apply` and nowhere else; see the mapping there.

use async_trait::async_trait;
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

    /// Ignores every event today: the domain has no social event yet.
    ///
    /// When the follow and block commands land, their events (in the stream of the user who
    /// follows or blocks, `user-<source>`) are applied here, skipping every other type without
    /// decoding it, as `invite_codes` does:
    ///
    /// | event | rows |
    /// |---|---|
    /// | follow requested / followed (`target`, `approved` = target not private) | `INSERT INTO follows (id, source, target, approved, created_at) ... ON CONFLICT (source, target) DO NOTHING`, `id` = the follow's id (UUIDv7), `created_at` = the event's time |
    /// | follow request accepted | `UPDATE follows SET approved = true WHERE source = $1 AND target = $2` |
    /// | unfollowed / follower removed / request refused | `DELETE FROM follows WHERE source = $1 AND target = $2` |
    /// | blocked (`target`) | `INSERT INTO blocks ... ON CONFLICT DO NOTHING` (and the follows both ways deleted, if blocking ends them) |
    /// | unblocked | `DELETE FROM blocks WHERE source = $1 AND target = $2` |
    ///
    /// Add the new event types to `SOCIAL_EVENTS` so that they reach the `match`.
    async fn apply(
        &self,
        _connection: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> anyhow::Result<()> {
        for recorded in events {
            if !SOCIAL_EVENTS.contains(&recorded.event_type.as_str()) {
                continue;
            }
            // Unreachable while `SOCIAL_EVENTS` is empty: a listed type without a handler is
            // a bug, which must stop the projector rather than lose the event.
            anyhow::bail!(
                "the social read model lists {} at {} but does not apply it",
                recorded.event_type,
                recorded.position
            );
        }
        Ok(())
    }
}

/// The event types this read model applies: none yet (see [`SocialReadModel::apply`]).
const SOCIAL_EVENTS: [&str; 0] = [];
