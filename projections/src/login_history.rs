//! The login history read model: one row per sign-in attempt on an existing account, from the
//! users' sign-in streams (`signin-<user id>`: `SignInSucceeded`, `SignInRefused`), newest
//! first by the event's id (UUIDv7: its time). An erased user's rows are removed
//! (`UserErased`).

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use events::metadata::{decode, EventFamily};
use events::sign_in::{SignInEvent, SignIns};
use events::store::RecordedEvent;
use events::user::{User, UserEvent};
use events::Aggregate;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::runtime::Projection;
use crate::stream_id;

/// The projection's name: its checkpoint and its lock.
pub const NAME: &str = "login_history";

/// Keeps `login_history` up to date.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoginHistoryReadModel;

#[async_trait]
impl Projection for LoginHistoryReadModel {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn prepare(&self, connection: &mut PgConnection) -> anyhow::Result<()> {
        for statement in [
            "CREATE TABLE IF NOT EXISTS login_history (
                id uuid PRIMARY KEY,
                user_id uuid NOT NULL,
                success boolean NOT NULL,
                reason text,
                source text NOT NULL,
                client_id text,
                ip_address text,
                user_agent text,
                created_at timestamptz NOT NULL
            )",
            "CREATE INDEX IF NOT EXISTS login_history_user ON login_history (user_id, id DESC)",
            // The people erased: a sign-in that raced their erasure (from a process that had
            // not heard of it yet) is not shown either.
            "CREATE TABLE IF NOT EXISTS login_history_erased (user_id uuid PRIMARY KEY)",
        ] {
            sqlx::query(statement).execute(&mut *connection).await?;
        }
        Ok(())
    }

    async fn apply(
        &self,
        connection: &mut PgConnection,
        events: &[Arc<RecordedEvent>],
    ) -> anyhow::Result<()> {
        for recorded in events {
            // An erased person's sign-ins (where from, with what) go with them.
            if let Some(user) = stream_id(&recorded.stream, User::CATEGORY) {
                if recorded.event_type == (UserEvent::Erased {}).event_type() {
                    let user = Uuid::parse_str(user).with_context(|| {
                        format!("stream {} is not named by a user id", recorded.stream)
                    })?;
                    sqlx::query(
                        "WITH gone AS (DELETE FROM login_history WHERE user_id = $1)
                         INSERT INTO login_history_erased (user_id) VALUES ($1)
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(user)
                    .execute(&mut *connection)
                    .await?;
                }
                continue;
            }
            let Some(user) = stream_id(&recorded.stream, SignIns::CATEGORY) else {
                continue;
            };
            let user = Uuid::parse_str(user)
                .with_context(|| format!("stream {} is not named by a user id", recorded.stream))?;
            let decoded = decode::<SignInEvent>(recorded).with_context(|| {
                format!("decoding {} at {}", recorded.event_type, recorded.position)
            })?;
            let (attempt, reason) = match &decoded.event {
                SignInEvent::Succeeded { attempt } => (attempt, None),
                SignInEvent::Refused { attempt, reason } => (attempt, Some(reason.as_str())),
            };
            sqlx::query(
                "INSERT INTO login_history
                    (id, user_id, success, reason, source, client_id, ip_address, user_agent,
                     created_at)
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9
                  WHERE NOT EXISTS (SELECT 1 FROM login_history_erased WHERE user_id = $2)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(recorded.event_id)
            .bind(user)
            .bind(reason.is_none())
            .bind(reason)
            .bind(&attempt.source)
            .bind(&attempt.client_id)
            .bind(&attempt.ip_address)
            .bind(&attempt.user_agent)
            .bind(decoded.metadata.occurred_at)
            .execute(&mut *connection)
            .await?;
        }
        Ok(())
    }
}
