//! The roles read model: one row per live role, holding the role as the API shows it
//! (API.md §5). A deleted role's row goes; re-creating the role (the same stream) brings it back.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use events::metadata::decode;
use events::role::{self, Role, RoleEvent, RoleView};
use events::store::RecordedEvent;
use events::Aggregate;
use sqlx::types::Json;
use sqlx::PgConnection;

use crate::runtime::Projection;
use crate::stream_id;

/// The projection's name: its checkpoint and its lock.
pub const NAME: &str = "roles";

/// Keeps `roles` up to date.
#[derive(Debug, Clone, Copy, Default)]
pub struct RolesReadModel;

#[async_trait]
impl Projection for RolesReadModel {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn prepare(&self, connection: &mut PgConnection) -> anyhow::Result<()> {
        // Keyed by the role's stream id (a role's id as created), so a re-created role finds
        // its row again.
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS roles (
                id text PRIMARY KEY,
                document jsonb NOT NULL
            )",
        )
        .execute(&mut *connection)
        .await?;
        Ok(())
    }

    async fn apply(
        &self,
        connection: &mut PgConnection,
        events: &[Arc<RecordedEvent>],
    ) -> anyhow::Result<()> {
        let mut states: HashMap<String, Option<Role>> = HashMap::new();
        for recorded in events {
            let Some(id) = stream_id(&recorded.stream, Role::CATEGORY) else {
                continue;
            };
            let decoded = decode::<RoleEvent>(recorded).with_context(|| {
                format!("decoding {} at {}", recorded.event_type, recorded.position)
            })?;
            let state = match states.remove(id) {
                Some(state) => state,
                None => load(connection, id).await?,
            };
            states.insert(id.to_owned(), role::evolve(state, &decoded.event));
        }
        for (id, state) in states {
            match state.as_ref().and_then(RoleView::of) {
                Some(document) => {
                    sqlx::query(
                        "INSERT INTO roles (id, document) VALUES ($1, $2)
                         ON CONFLICT (id) DO UPDATE SET document = EXCLUDED.document",
                    )
                    .bind(&id)
                    .bind(Json(&document))
                    .execute(&mut *connection)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM roles WHERE id = $1")
                        .bind(&id)
                        .execute(&mut *connection)
                        .await?;
                }
            }
        }
        Ok(())
    }
}

async fn load(connection: &mut PgConnection, id: &str) -> anyhow::Result<Option<Role>> {
    let row: Option<Json<RoleView>> =
        sqlx::query_scalar("SELECT document FROM roles WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *connection)
            .await?;
    Ok(row.map(|Json(document)| document.into_state()))
}
