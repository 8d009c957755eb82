//! Another user as a signed-in person sees them (Liquid's delegated mode): `GET /user/{userId}`
//! and `GET /user/info/{userId}`, and each result of `POST /user/search`. One rule for both,
//! [`public_view`]:
//! - never shown: the user's scope, who verified, banned or restricted them, and their custom
//!   data (Liquid hydrates custom data for the user themself only);
//! - a deleted or banned user shows only `_id`, `isDeleted`, `isBanned` and an empty
//!   `customData`;
//! - a private account hides its contact details, standing and credits from whoever does not
//!   follow it with approval ([`HIDDEN_FROM_STRANGERS`]); in search results every account
//!   does, as in Liquid, so that searching cannot harvest emails;
//! - a user who has blocked the caller is not shown at all: 403 `Blocked` from the profile
//!   routes, left out of search results.

use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use events::values::SubscriptionTiers;
use http_edge::auth::Caller;
use http_edge::envelope::{Answer, ApiError, FieldError};
use projections::users;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::consistency::Consistency;
use crate::database;
use crate::error::ReadError;
use crate::AppState;

/// Fields of the user object no other signed-in user sees.
const NEVER_SHOWN: [&str; 5] = [
    "scope",
    "verifiedBy",
    "bannedBy",
    "restrictedBy",
    "customData",
];

/// What a private account hides from those who do not follow it: Liquid's default
/// `user.field-privacy.non-follower.hidden-fields`, and `sanitizedEmail` and
/// `phoneCountryCode`, which Liquid forgets and which tell the email and phone it hides.
pub const HIDDEN_FROM_STRANGERS: [&str; 7] = [
    "email",
    "sanitizedEmail",
    "phone",
    "phoneCountryCode",
    "isBanned",
    "credits",
    "customData",
];

/// How the caller stands to the user shown.
#[derive(Debug, Clone, Copy, Default)]
pub struct Relation {
    /// The caller follows the user, and the user accepted.
    pub follows: bool,
}

/// Where the user is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// On their profile: only a private account hides details from strangers.
    Profile,
    /// Among search results: every account does.
    SearchResult,
}

/// The stored user object `stored` (a row of the users read model) as the caller sees it now,
/// by the rules of this module's documentation.
pub fn public_view(
    stored: &str,
    tiers: &SubscriptionTiers,
    relation: Relation,
    seen: Seen,
) -> Result<Value, ApiError> {
    let mut out = String::with_capacity(stored.len());
    write_public_view(stored, tiers, relation, seen, &mut out)?;
    serde_json::from_str(&out).map_err(ApiError::internal)
}

/// [`public_view`] written to `out` as JSON text, field by field, in one pass: the object is
/// never built (a page of a hundred users would build a hundred trees only to write them out
/// again), and its subscription is shown as of now on the way
/// ([`users::write_subscription`]).
pub fn write_public_view(
    stored: &str,
    tiers: &SubscriptionTiers,
    relation: Relation,
    seen: Seen,
    out: &mut String,
) -> Result<(), ApiError> {
    let TopLevel(fields) = serde_json::from_str(stored).map_err(ApiError::internal)?;
    let raw = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.get())
    };
    let flag = |name: &str| raw(name) == Some("true");
    let (deleted, banned) = (flag("isDeleted"), flag("isBanned"));
    if deleted || banned {
        let id = raw("_id").unwrap_or("null");
        out.push_str(&format!(
            r#"{{"_id":{id},"isDeleted":{deleted},"isBanned":{banned},"customData":{{}}}}"#
        ));
        return Ok(());
    }
    let hides = (seen == Seen::SearchResult || flag("isPrivate")) && !relation.follows;
    out.push('{');
    let mut first = true;
    for (key, value) in &fields {
        let shown_later = SUBSCRIPTION.contains(key);
        if shown_later
            || NEVER_SHOWN.contains(key)
            || (hides && HIDDEN_FROM_STRANGERS.contains(key))
        {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        out.push('"');
        out.push_str(key);
        out.push_str("\":");
        out.push_str(value.get());
    }
    if let Some(is_subscribed) = raw(SUBSCRIPTION[0]) {
        let field = |name: &str| raw(name).unwrap_or("null");
        let subscription = (|| -> serde_json::Result<_> {
            let is_subscribed: bool = serde_json::from_str(is_subscribed)?;
            let tier: Option<String> = serde_json::from_str(field(SUBSCRIPTION[1]))?;
            let expiry: Option<DateTime<Utc>> = serde_json::from_str(field(SUBSCRIPTION[2]))?;
            Ok((is_subscribed, tier, expiry))
        })();
        let (is_subscribed, tier, expiry) = subscription.map_err(ApiError::internal)?;
        if !first {
            out.push(',');
        }
        users::write_subscription(
            is_subscribed,
            tier.as_deref(),
            expiry,
            tiers,
            Utc::now(),
            out,
        )
        .map_err(ApiError::internal)?;
    }
    out.push('}');
    Ok(())
}

/// The subscription's fields, shown as of the moment they are read.
const SUBSCRIPTION: [&str; 3] = ["isSubscribed", "subscriptionTier", "subscriptionExpiry"];

/// The fields of a JSON object in their order, each value as its text. Keys are borrowed: a
/// user object's keys hold no escapes.
struct TopLevel<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de> Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = TopLevel<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a user object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(64);
                while let Some(field) = map.next_entry()? {
                    fields.push(field);
                }
                Ok(TopLevel(fields))
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// `GET /user/{userId}` and `GET /user/info/{userId}`: `{user}` as the caller sees them; 400
/// for a malformed id, 404 for nobody, 403 `Blocked` when the user has blocked the caller.
#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
pub async fn profile(
    State(state): State<AppState>,
    caller: Caller,
    consistency: Consistency,
    Path(user_id): Path<String>,
) -> Result<Answer, ReadError> {
    let target = Uuid::parse_str(&user_id).map_err(|_| {
        ApiError::validation(FieldError::param(
            "userId",
            Value::String(user_id.clone()),
            "is not a valid id",
        ))
    })?;
    let viewer = Uuid::parse_str(&caller.claims.sub).map_err(ApiError::internal)?;
    let database = database(&state)?;
    crate::social::caught_up(database, consistency).await?;
    let row: Option<(String, bool, bool)> = sqlx::query_as(
        "SELECT u.document::text,
                EXISTS (SELECT 1 FROM read_models.blocks b
                         WHERE b.source = u.id AND b.target = $2),
                EXISTS (SELECT 1 FROM read_models.follows f
                         WHERE f.source = $2 AND f.target = u.id AND f.approved)
           FROM read_models.users u WHERE u.id = $1",
    )
    .bind(target)
    .bind(viewer)
    .fetch_optional(database)
    .await?;
    let (document, blocked, follows) = row.ok_or_else(ApiError::not_found)?;
    if blocked {
        return Err(ApiError::Blocked.into());
    }
    let user = public_view(
        &document,
        &state.subscription_tiers,
        Relation { follows },
        Seen::Profile,
    )?;
    Ok(Answer::ok(json!({ "user": user })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiers() -> SubscriptionTiers {
        SubscriptionTiers::default()
    }

    fn user(extra: Value) -> String {
        let mut user = json!({
            "_id": "u1", "username": "private_person", "email": "p@example.com",
            "sanitizedEmail": "p@example.com", "phone": "5550100", "phoneCountryCode": "+1",
            "scope": ["admin:all"], "verifiedBy": "x", "bannedBy": null, "restrictedBy": null,
            "customData": {"secret": 1}, "credits": 5, "isBanned": false, "isDeleted": false,
            "isPrivate": false, "firstName": "Pat",
        });
        user.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        user.to_string()
    }

    #[test]
    fn a_public_account_shows_all_but_what_no_other_user_sees() {
        let shown = public_view(
            &user(json!({})),
            &tiers(),
            Relation::default(),
            Seen::Profile,
        )
        .unwrap();
        assert_eq!(shown["email"], "p@example.com");
        assert_eq!(shown["credits"], 5);
        for field in NEVER_SHOWN {
            assert!(shown.get(field).is_none(), "{field}");
        }
    }

    #[test]
    fn a_private_account_hides_its_details_from_strangers_only() {
        let private = user(json!({ "isPrivate": true }));
        let stranger = public_view(&private, &tiers(), Relation::default(), Seen::Profile).unwrap();
        for field in HIDDEN_FROM_STRANGERS {
            assert!(stranger.get(field).is_none(), "{field}");
        }
        assert_eq!(stranger["firstName"], "Pat");
        let follower = public_view(
            &private,
            &tiers(),
            Relation { follows: true },
            Seen::Profile,
        )
        .unwrap();
        assert_eq!(follower["email"], "p@example.com");
        assert!(follower.get("customData").is_none());
    }

    #[test]
    fn search_results_hide_every_account_s_details_from_strangers() {
        let public = user(json!({}));
        let stranger =
            public_view(&public, &tiers(), Relation::default(), Seen::SearchResult).unwrap();
        assert!(stranger.get("email").is_none());
        let follower = public_view(
            &public,
            &tiers(),
            Relation { follows: true },
            Seen::SearchResult,
        )
        .unwrap();
        assert_eq!(follower["email"], "p@example.com");
    }

    #[test]
    fn a_subscription_is_shown_as_of_now() {
        for (expiry, subscribed, tier) in [
            ("2000-01-01T00:00:00.000Z", false, "basic"),
            ("2999-01-01T00:00:00.000Z", true, "premium"),
        ] {
            let stored = user(json!({
                "isSubscribed": true, "subscriptionTier": "premium", "subscriptionExpiry": expiry,
            }));
            let shown = public_view(&stored, &tiers(), Relation::default(), Seen::Profile).unwrap();
            assert_eq!(shown["isSubscribed"], subscribed, "{expiry}");
            assert_eq!(shown["subscriptionTier"], tier, "{expiry}");
            assert_eq!(shown["subscriptionExpiry"], expiry);
        }
    }

    #[test]
    fn a_deleted_or_banned_user_shows_only_that() {
        for (extra, deleted, banned) in [
            (json!({ "isDeleted": true }), true, false),
            (json!({ "isBanned": true }), false, true),
        ] {
            let shown = public_view(
                &user(extra),
                &tiers(),
                Relation { follows: true },
                Seen::Profile,
            )
            .unwrap();
            assert_eq!(
                shown,
                json!({ "_id": "u1", "isDeleted": deleted, "isBanned": banned, "customData": {} })
            );
        }
    }
}
