//! The users read model: one row per user, holding the contract's user object as the log
//! shows it (unhydrated: the query service hydrates subscriptions at read time), plus the
//! columns the read routes look users up by.
//!
//! A deleted user keeps its row (`isDeleted: true`): the object shows `deletedDate`, and the
//! lookup columns are not unique, since a deleted user's username and email are free again.

use std::collections::HashMap;

use anyhow::Context;
use async_trait::async_trait;
use events::metadata::decode;
use events::store::RecordedEvent;
use events::user::{User, UserEvent, UserView};
use events::Aggregate;
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::runtime::Projection;
use crate::stream_id;

/// The projection's name: its checkpoint and its lock.
pub const NAME: &str = "users";

/// Keeps `users` up to date.
#[derive(Debug, Clone, Copy, Default)]
pub struct UsersReadModel;

#[async_trait]
impl Projection for UsersReadModel {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn prepare(&self, connection: &mut PgConnection) -> anyhow::Result<()> {
        for statement in [
            // `id` is a UUIDv7: its order is creation order, which `list` pages by.
            "CREATE TABLE IF NOT EXISTS users (
                id uuid PRIMARY KEY,
                username text NOT NULL,
                email text NOT NULL,
                sanitized_email text NOT NULL,
                role text NOT NULL,
                document jsonb NOT NULL
            )",
            "CREATE INDEX IF NOT EXISTS users_username ON users (username)",
            "CREATE INDEX IF NOT EXISTS users_email ON users (lower(email))",
            "CREATE INDEX IF NOT EXISTS users_sanitized_email ON users (sanitized_email)",
            "CREATE INDEX IF NOT EXISTS users_role ON users (role)",
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
        let mut batch = Vec::new();
        for recorded in events {
            let Some(id) = stream_id(&recorded.stream, User::CATEGORY) else {
                continue;
            };
            let id = Uuid::parse_str(id)
                .with_context(|| format!("stream {} is not named by a user id", recorded.stream))?;
            let decoded = decode::<UserEvent>(recorded).with_context(|| {
                format!("decoding {} at {}", recorded.event_type, recorded.position)
            })?;
            batch.push((id, decoded));
        }
        if batch.is_empty() {
            return Ok(());
        }

        let mut ids: Vec<Uuid> = batch.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut views: HashMap<Uuid, Option<UserView>> = ids.iter().map(|id| (*id, None)).collect();
        let rows: Vec<(Uuid, Json<UserView>)> =
            sqlx::query_as("SELECT id, document FROM users WHERE id = ANY($1)")
                .bind(&ids)
                .fetch_all(&mut *connection)
                .await?;
        for (id, Json(view)) in rows {
            views.insert(id, Some(view));
        }
        for (id, decoded) in batch {
            let view = views.entry(id).or_default();
            *view = UserView::evolve(view.take(), &decoded.event, &decoded.metadata);
        }

        let mut columns = UserColumns::default();
        for (id, view) in views {
            // A stream without `UserCreated` has no user to show (a valid log never has one).
            let Some(view) = view else { continue };
            columns.push(id, &view)?;
        }
        sqlx::query(
            "INSERT INTO users (id, username, email, sanitized_email, role, document)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[])
             ON CONFLICT (id) DO UPDATE SET
                username = EXCLUDED.username,
                email = EXCLUDED.email,
                sanitized_email = EXCLUDED.sanitized_email,
                role = EXCLUDED.role,
                document = EXCLUDED.document",
        )
        .bind(&columns.ids)
        .bind(&columns.usernames)
        .bind(&columns.emails)
        .bind(&columns.sanitized_emails)
        .bind(&columns.roles)
        .bind(&columns.documents)
        .execute(&mut *connection)
        .await?;
        Ok(())
    }
}

/// The rows of one batch, column by column, for one `UNNEST` upsert.
#[derive(Default)]
struct UserColumns {
    ids: Vec<Uuid>,
    usernames: Vec<String>,
    emails: Vec<String>,
    sanitized_emails: Vec<String>,
    roles: Vec<String>,
    documents: Vec<serde_json::Value>,
}

impl UserColumns {
    fn push(&mut self, id: Uuid, view: &UserView) -> anyhow::Result<()> {
        self.ids.push(id);
        self.usernames.push(view.username.clone());
        self.emails.push(view.email.clone());
        self.sanitized_emails.push(view.sanitized_email.clone());
        self.roles.push(view.role.clone());
        self.documents
            .push(serde_json::to_value(view).context("serialising a user view")?);
        Ok(())
    }
}
