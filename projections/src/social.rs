//! The social read model: who follows whom (`follows`) and who blocks whom (`blocks`), as the
//! client-api's `follow-status`, `block-status`, `followers` and `following` routes read them
//! (API.md §3), from the social events of the relation streams (`relation-<a>-<b>`,
//! [`events::social`]). A follow's `id` is the event id of the fact that began it (a UUIDv7,
//! so id order is creation order).

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use events::metadata::{decode, EventFamily};
use events::social::SocialEvent;
use events::store::RecordedEvent;
use sqlx::PgConnection;
use uuid::Uuid;

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

    /// Applies the social events, skipping every other type without decoding it. Events of
    /// different pairs of users touch different rows, so they commute; those of one pair are
    /// applied in log order. So the batch is applied in rounds (round `k` holds the `k`-th
    /// event of each pair), each round with one statement per kind of step.
    async fn apply(
        &self,
        connection: &mut PgConnection,
        events: &[Arc<RecordedEvent>],
    ) -> anyhow::Result<()> {
        let mut rounds: Vec<Round> = Vec::new();
        let mut seen: HashMap<(Uuid, Uuid), usize> = HashMap::new();
        for recorded in events {
            if !SocialEvent::EVENT_TYPES.contains(&recorded.event_type.as_str()) {
                continue;
            }
            let decoded = decode::<SocialEvent>(recorded).with_context(|| {
                format!("decoding {} at {}", recorded.event_type, recorded.position)
            })?;
            let edge = decoded.event.edge();
            let pair = (edge.source.as_uuid(), edge.target.as_uuid());
            let round = seen.entry(pair).or_default();
            if *round == rounds.len() {
                rounds.push(Round::default());
            }
            let rows = &mut rounds[*round];
            *round += 1;
            let (source, target) = pair;
            match &decoded.event {
                SocialEvent::Followed(_) | SocialEvent::FollowRequested(_) => {
                    rows.follows.push(recorded.event_id, source, target);
                    rows.approved
                        .push(matches!(decoded.event, SocialEvent::Followed(_)));
                    rows.followed_at.push(decoded.metadata.occurred_at);
                }
                SocialEvent::FollowRequestAccepted(_) => rows.accepts.push_pair(source, target),
                SocialEvent::Unfollowed(_) | SocialEvent::FollowRemoved(_) => {
                    rows.unfollows.push_pair(source, target)
                }
                SocialEvent::Blocked(_) => {
                    rows.blocks.push_pair(source, target);
                    rows.blocked_at.push(decoded.metadata.occurred_at);
                }
                SocialEvent::Unblocked(_) => rows.unblocks.push_pair(source, target),
            }
        }
        for round in rounds {
            round.apply(connection).await?;
        }
        Ok(())
    }
}

/// Pairs of users, column by column, for `UNNEST`.
#[derive(Default)]
struct Pairs {
    ids: Vec<Uuid>,
    sources: Vec<Uuid>,
    targets: Vec<Uuid>,
}

impl Pairs {
    fn push(&mut self, id: Uuid, source: Uuid, target: Uuid) {
        self.ids.push(id);
        self.push_pair(source, target);
    }

    fn push_pair(&mut self, source: Uuid, target: Uuid) {
        self.sources.push(source);
        self.targets.push(target);
    }
}

/// One round of a batch: at most one event of each pair, by what it does.
#[derive(Default)]
struct Round {
    /// Follows begun (`ids`: the events that began them), accepted or requested.
    follows: Pairs,
    approved: Vec<bool>,
    followed_at: Vec<DateTime<Utc>>,
    accepts: Pairs,
    unfollows: Pairs,
    blocks: Pairs,
    blocked_at: Vec<DateTime<Utc>>,
    unblocks: Pairs,
}

impl Round {
    /// A follow or block that is already there is left as it is (its id and time are those
    /// of the fact that began it).
    async fn apply(self, connection: &mut PgConnection) -> sqlx::Result<()> {
        if !self.follows.ids.is_empty() {
            sqlx::query(
                "INSERT INTO follows (id, source, target, approved, created_at)
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::boolean[],
                                      $5::timestamptz[])
                 ON CONFLICT (source, target) DO NOTHING",
            )
            .bind(&self.follows.ids)
            .bind(&self.follows.sources)
            .bind(&self.follows.targets)
            .bind(&self.approved)
            .bind(&self.followed_at)
            .execute(&mut *connection)
            .await?;
        }
        for (pairs, statement) in [
            (
                &self.accepts,
                "UPDATE follows f SET approved = true
                   FROM UNNEST($1::uuid[], $2::uuid[]) AS p (source, target)
                  WHERE f.source = p.source AND f.target = p.target",
            ),
            (
                &self.unfollows,
                "DELETE FROM follows f USING UNNEST($1::uuid[], $2::uuid[]) AS p (source, target)
                  WHERE f.source = p.source AND f.target = p.target",
            ),
            (
                &self.unblocks,
                "DELETE FROM blocks b USING UNNEST($1::uuid[], $2::uuid[]) AS p (source, target)
                  WHERE b.source = p.source AND b.target = p.target",
            ),
        ] {
            if !pairs.sources.is_empty() {
                sqlx::query(statement)
                    .bind(&pairs.sources)
                    .bind(&pairs.targets)
                    .execute(&mut *connection)
                    .await?;
            }
        }
        if !self.blocks.sources.is_empty() {
            sqlx::query(
                "INSERT INTO blocks (source, target, created_at)
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::timestamptz[])
                 ON CONFLICT (source, target) DO NOTHING",
            )
            .bind(&self.blocks.sources)
            .bind(&self.blocks.targets)
            .bind(&self.blocked_at)
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
