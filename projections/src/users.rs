//! The users read model: one row per user, holding the contract's user object as the log
//! shows it (unhydrated: readers hydrate subscriptions at read time, see [`shown`]), plus the
//! columns the read routes look users up by.
//!
//! The object is stored as `json`, the serialised [`UserView`] itself, not `jsonb`: reads hand
//! it out as it is stored, with no conversion in PostgreSQL (a page of 100 users spent most of
//! its time there re-rendering `jsonb` as text, and patching it), and writes store text without
//! converting it either. The view serialises the fields hydration depends on last, so
//! [`shown`] hydrates a stored object by rewriting its tail.
//!
//! A deleted user keeps its row (`isDeleted: true`): the object shows `deletedDate`, and the
//! lookup columns are not unique, since a deleted user's username and email are free again.

use std::collections::HashMap;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use events::metadata::decode;
use events::store::RecordedEvent;
use events::user::view::{format_date, shown_subscription};
use events::user::{User, UserEvent, UserView};
use events::values::SubscriptionTiers;
use events::Aggregate;
use serde::Deserialize;
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::runtime::Projection;
use crate::stream_id;

/// The projection's name: its checkpoint and its lock.
pub const NAME: &str = "users";

/// The search columns of `users`, derived by PostgreSQL from the others.
const SEARCH_COLUMNS: &str = "ALTER TABLE users
    ADD COLUMN IF NOT EXISTS search text GENERATED ALWAYS AS (
        lower(username || E'\\n' || email || E'\\n' || first_name || ' ' || last_name)
    ) STORED,
    ADD COLUMN IF NOT EXISTS search_words tsvector GENERATED ALWAYS AS (
        to_tsvector('simple', username || ' ' || email || ' ' || first_name || ' ' || last_name)
    ) STORED";

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
                first_name text NOT NULL,
                last_name text NOT NULL,
                document json NOT NULL
            )",
            // Tables made before the object was stored as `json`: the same objects, their
            // keys in `jsonb`'s order, which [`shown`] reads the slow way until the next
            // write of the user (or a rebuild) stores it anew.
            "DO $$ BEGIN
               IF (SELECT atttypid = 'jsonb'::regtype FROM pg_attribute
                    WHERE attrelid = 'users'::regclass AND attname = 'document') THEN
                 ALTER TABLE users ALTER COLUMN document TYPE json USING document::json;
               END IF;
             END $$",
            // Tables made before the names had columns of their own (search reads them).
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_attribute
                               WHERE attrelid = 'users'::regclass AND attname = 'first_name') THEN
                 ALTER TABLE users ADD COLUMN first_name text, ADD COLUMN last_name text;
                 UPDATE users SET first_name = document ->> 'firstName',
                                  last_name = document ->> 'lastName';
                 ALTER TABLE users ALTER COLUMN first_name SET NOT NULL,
                                   ALTER COLUMN last_name SET NOT NULL;
               END IF;
             END $$",
            "CREATE INDEX IF NOT EXISTS users_username ON users (username)",
            "CREATE INDEX IF NOT EXISTS users_email ON users (lower(email))",
            "CREATE INDEX IF NOT EXISTS users_sanitized_email ON users (sanitized_email)",
            "CREATE INDEX IF NOT EXISTS users_role ON users (role)",
            // What user search matches (`query_service::search`): the fields Liquid searches,
            // lowercased, one per line (a query cannot match across two of them, but
            // "first last" matches the full name), and their words. Generated from plain
            // columns (not from the object, which each row would parse again), so the
            // projector writes nothing more, and a table of an earlier version gains them when
            // it is next prepared.
            SEARCH_COLUMNS,
            // pg_trgm is trusted (a database owner may create it). It goes to `public`, outside
            // the read models' schemas, which a rebuild drops, and its operator class is named
            // with the schema it is in, wherever that is.
            "DO $$ DECLARE trgm_schema text; BEGIN
               CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
               SELECT quote_ident(extnamespace::regnamespace::text) INTO trgm_schema
                 FROM pg_extension WHERE extname = 'pg_trgm';
               EXECUTE format('CREATE INDEX IF NOT EXISTS users_search ON users
                               USING gin (search %s.gin_trgm_ops)', trgm_schema);
             END $$",
            "CREATE INDEX IF NOT EXISTS users_search_words ON users USING gin (search_words)",
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
            batch.push((id, recorded.revision, decoded));
        }
        if batch.is_empty() {
            return Ok(());
        }

        // The users whose stored object the batch continues: a stream whose first event here
        // is its first of all (revision 0) has none, so a page of new users (the bulk of a
        // rebuild) reads nothing back.
        let mut views: HashMap<Uuid, Option<UserView>> = HashMap::with_capacity(batch.len());
        let mut stored = Vec::new();
        for (id, revision, _) in &batch {
            if views.insert(*id, None).is_none() && *revision > 0 {
                stored.push(*id);
            }
        }
        let rows: Vec<(Uuid, Json<UserView>)> = if stored.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as("SELECT id, document FROM users WHERE id = ANY($1)")
                .bind(&stored)
                .fetch_all(&mut *connection)
                .await?
        };
        for (id, Json(view)) in rows {
            views.insert(id, Some(view));
        }
        for (id, _, decoded) in batch {
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
            "INSERT INTO users (id, username, email, sanitized_email, role, first_name, last_name,
                                document)
             SELECT id, username, email, sanitized_email, role, first_name, last_name,
                    document::json
               FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                           $6::text[], $7::text[], $8::text[])
                    AS batch (id, username, email, sanitized_email, role, first_name, last_name,
                              document)
             ON CONFLICT (id) DO UPDATE SET
                username = EXCLUDED.username,
                email = EXCLUDED.email,
                sanitized_email = EXCLUDED.sanitized_email,
                role = EXCLUDED.role,
                first_name = EXCLUDED.first_name,
                last_name = EXCLUDED.last_name,
                document = EXCLUDED.document",
        )
        .bind(&columns.ids)
        .bind(&columns.usernames)
        .bind(&columns.emails)
        .bind(&columns.sanitized_emails)
        .bind(&columns.roles)
        .bind(&columns.first_names)
        .bind(&columns.last_names)
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
    first_names: Vec<String>,
    last_names: Vec<String>,
    documents: Vec<String>,
}

impl UserColumns {
    fn push(&mut self, id: Uuid, view: &UserView) -> anyhow::Result<()> {
        self.ids.push(id);
        self.usernames.push(view.username.clone());
        self.emails.push(view.email.clone());
        self.sanitized_emails.push(view.sanitized_email.clone());
        self.roles.push(view.role.clone());
        self.first_names.push(view.first_name.clone());
        self.last_names.push(view.last_name.clone());
        self.documents
            .push(serde_json::to_string(view).context("serialising a user view")?);
        Ok(())
    }
}

/// The subscription as a stored object's tail records it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Subscription {
    is_subscribed: bool,
    subscription_tier: Option<String>,
    subscription_expiry: Option<DateTime<Utc>>,
}

/// The tail of a stored object, from its first hydrated field on: `"isSubscribed":...}`.
const TAIL: &str = ",\"isSubscribed\":";

/// Appends to `out` the stored user object `stored` as a reader at `now` sees it: the same
/// rule as [`UserView::hydrated`] ([`shown_subscription`]: a subscription that is off, expired or on the base tier
/// shows `isSubscribed: false` on the base tier). Only the tail is read and rewritten; an
/// object stored otherwise (before the `json` column) is parsed and hydrated whole.
pub fn shown(
    stored: &str,
    tiers: &SubscriptionTiers,
    now: DateTime<Utc>,
    out: &mut String,
) -> anyhow::Result<()> {
    // The last `,"isSubscribed":` of the text is the object's own key: a key of `customData`
    // comes before it, and a string cannot hold an unescaped quote.
    let tail = stored
        .rfind(TAIL)
        .filter(|_| stored.ends_with('}'))
        .and_then(|at| {
            let fields = &stored[at + 1..stored.len() - 1];
            let subscription = serde_json::from_str::<Subscription>(&format!("{{{fields}}}"));
            Some((at, subscription.ok()?))
        });
    let Some((at, subscription)) = tail else {
        let view: UserView = serde_json::from_str(stored).context("a stored user object")?;
        out.push_str(&serde_json::to_string(&view.hydrated(tiers, now))?);
        return Ok(());
    };
    let (is_subscribed, tier) = shown_subscription(
        subscription.is_subscribed,
        subscription.subscription_tier.as_deref(),
        subscription.subscription_expiry,
        tiers,
        now,
    );
    out.push_str(&stored[..at]);
    out.push_str(TAIL);
    out.push_str(if is_subscribed { "true" } else { "false" });
    out.push_str(",\"subscriptionTier\":");
    out.push_str(&serde_json::to_string(&tier)?);
    out.push_str(",\"subscriptionExpiry\":");
    match subscription.subscription_expiry {
        Some(expiry) => {
            out.push('"');
            out.push_str(&format_date(&expiry));
            out.push('"');
        }
        None => out.push_str("null"),
    }
    out.push('}');
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::{json, Value};

    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
    }

    /// A user object as the view serialises it, with `changes` applied.
    fn view(changes: Value) -> UserView {
        let mut object: Value = serde_json::from_str(
            r#"{
            "_id": "01900000-0000-7000-8000-000000000001", "username": "alice",
            "firstName": "Alice", "middleName": null, "lastName": "Liddell",
            "email": "Alice@example.com", "sanitizedEmail": "alice@example.com",
            "emailVerified": true, "phone": null, "phoneCountryCode": null,
            "phoneVerified": false, "role": "user", "scope": ["delegated:all"], "gender": null,
            "bio": "says \"isSubscribed\":true, \"isSubscribed\":true}", "designation": null,
            "pronouns": null, "organization": null, "customLink": null,
            "preferredLanguage": null, "country": null, "profilePictureUrl": null,
            "verified": false, "verifiedDate": null, "verifiedBy": null, "isPrivate": false,
            "followingCount": 0, "followerCount": 0, "subscriptionActivatedAt": null,
            "subscriptionIdentifier": null, "subscriptionCancelled": false,
            "subscriptionCancelledAt": null, "credits": 7, "isBanned": false,
            "bannedDate": null, "bannedBy": null, "bannedReason": null, "isRestricted": false,
            "restrictedDate": null, "restrictedBy": null, "restrictedReason": null,
            "isDeleted": false, "deletedDate": null,
            "customData": { "isSubscribed": true, "subscriptionTier": "premium" },
            "invitedBy": null, "createdAt": "2027-01-01T00:00:00.000Z",
            "updatedAt": "2027-01-01T00:00:00.000Z", "isSubscribed": false,
            "subscriptionTier": null, "subscriptionExpiry": null
        }"#,
        )
        .unwrap();
        for (key, value) in changes.as_object().unwrap() {
            object[key] = value.clone();
        }
        serde_json::from_value(object).unwrap()
    }

    fn shown_text(stored: &str, now: DateTime<Utc>) -> Value {
        let mut out = String::new();
        shown(stored, &SubscriptionTiers::default(), now, &mut out).unwrap();
        serde_json::from_str(&out).expect("shown is JSON")
    }

    #[test]
    fn shown_is_the_hydrated_view_for_every_subscription() {
        let tiers = SubscriptionTiers::default();
        let expiry = json!("2027-01-15T08:00:00.123Z");
        let cases = [
            json!({}),
            json!({ "isSubscribed": true, "subscriptionTier": "premium", "subscriptionExpiry": expiry }),
            json!({ "isSubscribed": true, "subscriptionTier": null, "subscriptionExpiry": expiry }),
            json!({ "isSubscribed": true, "subscriptionTier": "basic", "subscriptionExpiry": expiry }),
            json!({ "isSubscribed": false, "subscriptionTier": "premium", "subscriptionExpiry": expiry }),
            json!({ "isSubscribed": true, "subscriptionTier": "pre\"mium", "subscriptionExpiry": expiry }),
        ];
        let expiry: DateTime<Utc> = expiry.as_str().unwrap().parse().unwrap();
        for case in cases {
            let view = view(case.clone());
            let stored = serde_json::to_string(&view).unwrap();
            assert!(stored.ends_with("}") && stored.contains(TAIL), "{stored}");
            for now in [expiry - chrono::Duration::seconds(1), expiry, at(0)] {
                let expected = serde_json::to_value(view.clone().hydrated(&tiers, now)).unwrap();
                assert_eq!(shown_text(&stored, now), expected, "{case} at {now}");
            }
        }
    }

    #[test]
    fn shown_rewrites_only_the_tail() {
        let stored = serde_json::to_string(&view(json!({}))).unwrap();
        let mut out = String::new();
        shown(&stored, &SubscriptionTiers::default(), at(0), &mut out).unwrap();
        let cut = stored.rfind(TAIL).unwrap();
        assert_eq!(out[..cut], stored[..cut]);
        assert_eq!(
            &out[cut..],
            r#","isSubscribed":false,"subscriptionTier":"basic","subscriptionExpiry":null}"#
        );
    }

    #[test]
    fn objects_stored_as_jsonb_renders_them_are_hydrated_whole() {
        let tiers = SubscriptionTiers::default();
        let view = view(json!({ "isSubscribed": true, "subscriptionTier": "premium",
                                "subscriptionExpiry": "2027-01-15T08:00:00.000Z" }));
        // jsonb's text: keys by length then bytes, `": "` and `, ` between them.
        let value = serde_json::to_value(&view).unwrap();
        let mut keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        keys.sort_by_key(|k| (k.len(), k.as_str()));
        let jsonb_text = format!(
            "{{{}}}",
            keys.iter()
                .map(|k| format!("{}: {}", json!(k), value[k.as_str()]))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for now in [at(0), at(100_000_000)] {
            let expected = serde_json::to_value(view.clone().hydrated(&tiers, now)).unwrap();
            assert_eq!(shown_text(&jsonb_text, now), expected);
        }
    }
}
