//! The applications read model: one row per live application (an OAuth client), holding the
//! client as `GET /client/admin-api/list` shows it (API.md §4). Its secret never enters: the
//! document has no field for it, so a secret event changes nothing here (invariant 6).

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use events::application::{self, Application, ApplicationEvent, ApplicationView};
use events::metadata::decode;
use events::store::RecordedEvent;
use events::Aggregate;
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::runtime::Projection;
use crate::stream_id;

/// The projection's name: its checkpoint and its lock.
pub const NAME: &str = "applications";

/// Keeps `applications` up to date.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplicationsReadModel;

#[async_trait]
impl Projection for ApplicationsReadModel {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn prepare(&self, connection: &mut PgConnection) -> anyhow::Result<()> {
        for statement in [
            "CREATE TABLE IF NOT EXISTS applications (
                id uuid PRIMARY KEY,
                client_id text NOT NULL,
                document jsonb NOT NULL
            )",
            "CREATE INDEX IF NOT EXISTS applications_client_id ON applications (lower(client_id))",
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
        let mut states: HashMap<Uuid, Option<Application>> = HashMap::new();
        for recorded in events {
            let Some(id) = stream_id(&recorded.stream, Application::CATEGORY) else {
                continue;
            };
            let id = Uuid::parse_str(id).with_context(|| {
                format!(
                    "stream {} is not named by an application id",
                    recorded.stream
                )
            })?;
            let decoded = decode::<ApplicationEvent>(recorded).with_context(|| {
                format!("decoding {} at {}", recorded.event_type, recorded.position)
            })?;
            let state = match states.remove(&id) {
                Some(state) => state,
                None => load(connection, id).await?,
            };
            states.insert(id, application::evolve(state, &decoded.event));
        }
        for (id, state) in states {
            match state.as_ref().and_then(ApplicationView::of) {
                Some(document) => {
                    sqlx::query(
                        "INSERT INTO applications (id, client_id, document) VALUES ($1, $2, $3)
                         ON CONFLICT (id) DO UPDATE SET
                            client_id = EXCLUDED.client_id, document = EXCLUDED.document",
                    )
                    .bind(id)
                    .bind(document.client_id.as_str())
                    .bind(Json(&document))
                    .execute(&mut *connection)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM applications WHERE id = $1")
                        .bind(id)
                        .execute(&mut *connection)
                        .await?;
                }
            }
        }
        Ok(())
    }
}

async fn load(connection: &mut PgConnection, id: Uuid) -> anyhow::Result<Option<Application>> {
    let row: Option<Json<ApplicationView>> =
        sqlx::query_scalar("SELECT document FROM applications WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *connection)
            .await?;
    Ok(row.map(|Json(document)| document.into_state()))
}
