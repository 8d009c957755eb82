//! The applications read model: one row per live application (an OAuth client), holding the
//! client as `GET /client/admin-api/list` shows it (API.md §4). Its secret never enters: the
//! document has no field for it, so a secret event changes nothing here (invariant 6).

use std::collections::HashMap;

use anyhow::Context;
use async_trait::async_trait;
use events::application::{self, Application, ApplicationEvent};
use events::metadata::decode;
use events::scopes::Scope;
use events::store::RecordedEvent;
use events::values::{
    ApplicationDisplayName, ApplicationId, ClientId, ClientRole, Grant, RedirectUri,
};
use events::Aggregate;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::runtime::Projection;
use crate::stream_id;

/// The projection's name: its checkpoint and its lock.
pub const NAME: &str = "applications";

/// An application as the API lists it (the command service's `client_json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationDocument {
    #[serde(rename = "_id")]
    pub id: ApplicationId,
    /// The OAuth `client_id`.
    #[serde(rename = "id")]
    pub client_id: ClientId,
    pub display_name: ApplicationDisplayName,
    pub role: ClientRole,
    pub grants: Vec<Grant>,
    pub redirect_uris: Vec<RedirectUri>,
    pub is_public: bool,
    pub scope: Vec<Scope>,
}

impl ApplicationDocument {
    /// The document of an application state; `None` for a deleted application.
    pub fn of(application: &Application) -> Option<Self> {
        (!application.deleted).then(|| Self {
            id: application.id,
            client_id: application.client_id.clone(),
            display_name: application.display_name.clone(),
            role: application.role,
            grants: application.grants.clone(),
            redirect_uris: application.redirect_uris.clone(),
            is_public: application.is_public,
            scope: application.scope.clone(),
        })
    }

    /// The aggregate's state this document shows (without its secret, which the read side
    /// never has), to fold further events into.
    fn into_state(self) -> Application {
        Application {
            id: self.id,
            client_id: self.client_id,
            display_name: self.display_name,
            role: self.role,
            grants: self.grants,
            redirect_uris: self.redirect_uris,
            is_public: self.is_public,
            secret_hash: None,
            scope: self.scope,
            deleted: false,
        }
    }
}

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
        events: &[RecordedEvent],
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
            match state.as_ref().and_then(ApplicationDocument::of) {
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
    let row: Option<Json<ApplicationDocument>> =
        sqlx::query_scalar("SELECT document FROM applications WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *connection)
            .await?;
    Ok(row.map(|Json(document)| document.into_state()))
}
