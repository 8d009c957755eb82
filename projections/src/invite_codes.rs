//! The invite codes read model: one row per code, with its owner and, once somebody signed up
//! with it, the user who redeemed it (`targetId`). Codes come from the owner's stream
//! (`InviteCodesGenerated`, `InviteCodeRedeemed`); a code's dates are its events' times.

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use events::metadata::decode;
use events::store::RecordedEvent;
use events::user::{User, UserEvent};
use events::Aggregate;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::runtime::Projection;
use crate::stream_id;

/// The projection's name: its checkpoint and its lock.
pub const NAME: &str = "invite_codes";

/// Keeps `invite_codes` up to date.
#[derive(Debug, Clone, Copy, Default)]
pub struct InviteCodesReadModel;

#[async_trait]
impl Projection for InviteCodesReadModel {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn prepare(&self, connection: &mut PgConnection) -> anyhow::Result<()> {
        for statement in [
            "CREATE TABLE IF NOT EXISTS invite_codes (
                code text PRIMARY KEY,
                owner uuid NOT NULL,
                target_id uuid,
                created_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL
            )",
            "CREATE INDEX IF NOT EXISTS invite_codes_owner ON invite_codes (owner)",
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
            let Some(owner) = stream_id(&recorded.stream, User::CATEGORY) else {
                continue;
            };
            // Only two event types matter here; the others are not even decoded (which also
            // keeps the password events out of this projection's hands).
            if !matches!(
                recorded.event_type.as_str(),
                "InviteCodesGenerated" | "InviteCodeRedeemed"
            ) {
                continue;
            }
            let owner = Uuid::parse_str(owner)
                .with_context(|| format!("stream {} is not named by a user id", recorded.stream))?;
            let decoded = decode::<UserEvent>(recorded).with_context(|| {
                format!("decoding {} at {}", recorded.event_type, recorded.position)
            })?;
            let at = decoded.metadata.occurred_at;
            match decoded.event {
                UserEvent::InviteCodesGenerated { codes } => {
                    let codes: Vec<String> = codes.iter().map(|c| c.as_str().to_owned()).collect();
                    // Codes carry their creation millisecond and eight random characters; a
                    // clash across users is next to impossible, and would keep the newest.
                    sqlx::query(
                        "INSERT INTO invite_codes (code, owner, target_id, created_at, updated_at)
                         SELECT code, $2, NULL, $3, $3 FROM UNNEST($1::text[]) AS code
                         ON CONFLICT (code) DO UPDATE SET
                            owner = EXCLUDED.owner, target_id = NULL,
                            created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at",
                    )
                    .bind(&codes)
                    .bind(owner)
                    .bind(at)
                    .execute(&mut *connection)
                    .await?;
                }
                UserEvent::InviteCodeRedeemed { code, redeemed_by } => {
                    sqlx::query(
                        "UPDATE invite_codes SET target_id = $3, updated_at = $4
                         WHERE code = $1 AND owner = $2",
                    )
                    .bind(code.as_str())
                    .bind(owner)
                    .bind(redeemed_by.as_uuid())
                    .bind(at)
                    .execute(&mut *connection)
                    .await?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}
