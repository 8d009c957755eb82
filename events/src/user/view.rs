//! The user object of the contract (API.md §3, end): what admin and client callers are shown of
//! a user. It is a fold of the user's stream **with its metadata**, since payloads carry no
//! times: `createdAt`, `bannedDate`, `subscriptionActivatedAt`, ... are the `occurredAt` of the
//! events that caused them. The command service builds it for `update`'s answer; the read-model
//! projection folds the same way, one event at a time, with [`UserView::evolve`].
//!
//! The view keeps the subscription as recorded. What a reader is shown of it depends on the
//! time of reading and the configured tiers: apply [`UserView::hydrated`] on the way out.
//! Secrets never enter the view: [`UserEvent::PasswordSet`] only moves `updatedAt`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};

use super::events::UserEvent;
use crate::metadata::{Decoded, EventMetadata};
use crate::values::SubscriptionTiers;

/// A user as the API shows it. Every field of the contract's list is always present; a value
/// the user does not have is `null`. Dates are ISO-8601 UTC with milliseconds. It reads back
/// from its own JSON (the read model stores it so), with dates at millisecond precision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = User))]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    #[serde(rename = "_id")]
    pub id: String,
    pub username: String,
    pub first_name: String,
    pub middle_name: Option<String>,
    pub last_name: String,
    pub email: String,
    pub sanitized_email: String,
    pub email_verified: bool,
    pub phone: Option<String>,
    pub phone_country_code: Option<String>,
    pub phone_verified: bool,
    pub role: String,
    pub scope: Vec<String>,
    pub gender: Option<String>,
    pub bio: Option<String>,
    pub designation: Option<String>,
    pub pronouns: Option<String>,
    pub organization: Option<String>,
    pub custom_link: Option<String>,
    pub preferred_language: Option<String>,
    pub country: Option<String>,
    pub profile_picture_url: Option<String>,
    pub verified: bool,
    #[serde(serialize_with = "iso_millis")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub verified_date: Option<DateTime<Utc>>,
    pub verified_by: Option<String>,
    pub is_private: bool,
    pub following_count: u64,
    pub follower_count: u64,
    #[serde(serialize_with = "iso_millis")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub subscription_activated_at: Option<DateTime<Utc>>,
    pub subscription_identifier: Option<String>,
    pub subscription_cancelled: bool,
    #[serde(serialize_with = "iso_millis")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub subscription_cancelled_at: Option<DateTime<Utc>>,
    pub credits: u64,
    pub is_banned: bool,
    #[serde(serialize_with = "iso_millis")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub banned_date: Option<DateTime<Utc>>,
    pub banned_by: Option<String>,
    pub banned_reason: Option<String>,
    pub is_restricted: bool,
    #[serde(serialize_with = "iso_millis")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub restricted_date: Option<DateTime<Utc>>,
    pub restricted_by: Option<String>,
    pub restricted_reason: Option<String>,
    pub is_deleted: bool,
    #[serde(serialize_with = "iso_millis")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub deleted_date: Option<DateTime<Utc>>,
    /// Any JSON object, `null`, `true` or `false`.
    pub custom_data: serde_json::Value,
    pub invited_by: Option<String>,
    #[serde(serialize_with = "iso_millis_required")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "iso_millis_required")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: DateTime<Utc>,
    // The three fields a reader's hydration depends on come last, in this order: the users
    // read model hydrates its stored JSON text by rewriting just this tail
    // (`projections::users::shown`).
    /// `false` when the subscription is off, expired or on the base tier.
    pub is_subscribed: bool,
    /// `None` (as recorded) means the base tier; [`UserView::hydrated`] names it.
    pub subscription_tier: Option<String>,
    #[serde(serialize_with = "iso_millis")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub subscription_expiry: Option<DateTime<Utc>>,
}

/// `2026-01-02T03:04:05.123Z`: the contract's date form.
pub fn format_date(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn iso_millis<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => s.serialize_str(&format_date(at)),
        None => s.serialize_none(),
    }
}

fn iso_millis_required<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_date(at))
}

impl UserView {
    /// The view after a whole history (`None` before `UserCreated`).
    pub fn from_history<'a>(
        history: impl IntoIterator<Item = &'a Decoded<UserEvent>>,
    ) -> Option<UserView> {
        history.into_iter().fold(None, |view, decoded| {
            Self::evolve(view, &decoded.event, &decoded.metadata)
        })
    }

    /// The view after one event and its metadata. Total, like the aggregate's `evolve`: an
    /// event before `UserCreated` (which a valid stream never has) changes nothing.
    pub fn evolve(
        view: Option<UserView>,
        event: &UserEvent,
        metadata: &EventMetadata,
    ) -> Option<UserView> {
        let at = metadata.occurred_at;
        if let UserEvent::Created {
            id,
            username,
            email,
            sanitized_email,
            email_verified,
            first_name,
            last_name,
            middle_name,
            role,
            phone,
            phone_country_code,
            scope,
            credits,
            custom_data,
            invited_by,
        } = event
        {
            return Some(UserView {
                id: id.to_string(),
                username: username.to_string(),
                first_name: first_name.to_string(),
                middle_name: text(middle_name),
                last_name: last_name.to_string(),
                email: email.to_string(),
                sanitized_email: sanitized_email.to_string(),
                email_verified: *email_verified,
                phone: text(phone),
                phone_country_code: text(phone_country_code),
                phone_verified: false,
                role: role.to_string(),
                scope: scope.iter().map(ToString::to_string).collect(),
                gender: None,
                bio: None,
                designation: None,
                pronouns: None,
                organization: None,
                custom_link: None,
                preferred_language: None,
                country: None,
                profile_picture_url: None,
                verified: false,
                verified_date: None,
                verified_by: None,
                is_private: false,
                following_count: 0,
                follower_count: 0,
                is_subscribed: false,
                subscription_tier: None,
                subscription_expiry: None,
                subscription_activated_at: None,
                subscription_identifier: None,
                subscription_cancelled: false,
                subscription_cancelled_at: None,
                credits: credits.get(),
                is_banned: false,
                banned_date: None,
                banned_by: None,
                banned_reason: None,
                is_restricted: false,
                restricted_date: None,
                restricted_by: None,
                restricted_reason: None,
                is_deleted: false,
                deleted_date: None,
                custom_data: custom_data.as_json().clone(),
                invited_by: invited_by.map(|id| id.to_string()),
                created_at: at,
                updated_at: at,
            });
        }
        if let UserEvent::Erased {} = event {
            return None;
        }
        let mut view = view?;
        view.updated_at = at;
        match event {
            UserEvent::Created { .. } | UserEvent::PasswordSet { .. } | UserEvent::Erased {} => {}
            UserEvent::ProfileUpdated(changes) => {
                fn set<T: ToString>(field: &mut Option<String>, change: &Option<Option<T>>) {
                    if let Some(value) = change {
                        *field = text(value);
                    }
                }
                if let Some(name) = &changes.first_name {
                    view.first_name = name.to_string();
                }
                if let Some(name) = &changes.last_name {
                    view.last_name = name.to_string();
                }
                set(&mut view.middle_name, &changes.middle_name);
                set(&mut view.bio, &changes.bio);
                set(&mut view.pronouns, &changes.pronouns);
                set(&mut view.custom_link, &changes.custom_link);
                set(&mut view.organization, &changes.organization);
                set(&mut view.designation, &changes.designation);
                set(&mut view.gender, &changes.gender);
                set(&mut view.preferred_language, &changes.preferred_language);
                set(&mut view.country, &changes.country);
            }
            UserEvent::EmailChanged {
                email,
                sanitized_email,
            } => {
                view.email = email.to_string();
                view.sanitized_email = sanitized_email.to_string();
            }
            UserEvent::UsernameChanged { username } => view.username = username.to_string(),
            UserEvent::RoleChanged { role } => view.role = role.to_string(),
            // Turning a flag on records when, why and by whom; turning it off clears the record
            // (the log keeps both).
            UserEvent::Banned { reason, by } => {
                view.is_banned = true;
                view.banned_date = Some(at);
                view.banned_by = Some(by.id.clone());
                view.banned_reason = text(reason);
            }
            UserEvent::Unbanned { .. } => {
                view.is_banned = false;
                view.banned_date = None;
                view.banned_by = None;
                view.banned_reason = None;
            }
            UserEvent::Restricted { reason, by } => {
                view.is_restricted = true;
                view.restricted_date = Some(at);
                view.restricted_by = Some(by.id.clone());
                view.restricted_reason = text(reason);
            }
            UserEvent::Unrestricted { .. } => {
                view.is_restricted = false;
                view.restricted_date = None;
                view.restricted_by = None;
                view.restricted_reason = None;
            }
            UserEvent::Verified { by, .. } => {
                view.verified = true;
                view.verified_date = Some(at);
                view.verified_by = Some(by.id.clone());
            }
            UserEvent::Unverified { .. } => {
                view.verified = false;
                view.verified_date = None;
                view.verified_by = None;
            }
            UserEvent::CreditsIncreased { amount } => {
                view.credits = view.credits.saturating_add(amount.get());
            }
            UserEvent::CreditsDecreased { amount } => {
                view.credits = view.credits.saturating_sub(amount.get());
            }
            UserEvent::CreditsSet { credits } => view.credits = credits.get(),
            UserEvent::ScopesChanged { scope } => {
                view.scope = scope.iter().map(ToString::to_string).collect();
            }
            UserEvent::SubscriptionActivated {
                tier,
                expiry,
                identifier,
            } => {
                view.is_subscribed = true;
                view.subscription_tier = text(tier);
                view.subscription_expiry = Some(*expiry);
                view.subscription_activated_at = Some(at);
                view.subscription_identifier = text(identifier);
                // A new activation withdraws any cancellation (as the aggregate does).
                view.subscription_cancelled = false;
                view.subscription_cancelled_at = None;
            }
            UserEvent::SubscriptionDeactivated {} => {
                view.is_subscribed = false;
                view.subscription_tier = None;
                view.subscription_expiry = None;
                view.subscription_activated_at = None;
                view.subscription_identifier = None;
            }
            UserEvent::SubscriptionCancelled {} => {
                view.subscription_cancelled = true;
                view.subscription_cancelled_at = Some(at);
            }
            UserEvent::SubscriptionCancellationWithdrawn {} => {
                view.subscription_cancelled = false;
                view.subscription_cancelled_at = None;
            }
            UserEvent::CustomDataReplaced { custom_data } => {
                view.custom_data = custom_data.as_json().clone();
            }
            // Invite codes are shown by `GET invite-codes`, not in the user object.
            UserEvent::InviteCodesGenerated { .. } | UserEvent::InviteCodeRedeemed { .. } => {}
            UserEvent::Deleted {} => {
                view.is_deleted = true;
                view.deleted_date = Some(at);
            }
            UserEvent::MadePrivate {} => view.is_private = true,
            UserEvent::MadePublic {} => view.is_private = false,
        }
        Some(view)
    }

    /// The view as a reader at `now` sees it (API.md §3): a subscription that is off, expired
    /// or on the base tier shows `isSubscribed: false` on the base tier.
    pub fn hydrated(mut self, tiers: &SubscriptionTiers, now: DateTime<Utc>) -> UserView {
        let (is_subscribed, tier) = shown_subscription(
            self.is_subscribed,
            self.subscription_tier.as_deref(),
            self.subscription_expiry,
            tiers,
            now,
        );
        self.is_subscribed = is_subscribed;
        self.subscription_tier = Some(tier);
        self
    }
}

/// The subscription a reader at `now` is shown of one recorded as `is_subscribed` on `tier`
/// (`None`: the base tier) until `expiry`: `(isSubscribed, subscriptionTier)`. A subscription
/// that is off, expired or on the base tier shows as not subscribed, on the base tier. The one
/// definition of the rule: [`UserView::hydrated`] applies it to a view, the users read model
/// (`projections::users::shown`) to a stored object's text.
pub fn shown_subscription(
    is_subscribed: bool,
    tier: Option<&str>,
    expiry: Option<DateTime<Utc>>,
    tiers: &SubscriptionTiers,
    now: DateTime<Utc>,
) -> (bool, String) {
    let base = tiers.base().to_string();
    let live = is_subscribed && expiry.is_some_and(|e| e > now);
    match tier {
        Some(tier) if live && tier != base => (true, tier.to_owned()),
        _ => (false, base),
    }
}

fn text<T: ToString>(value: &Option<T>) -> Option<String> {
    value.as_ref().map(ToString::to_string)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::metadata::{Actor, CommandContext};
    use crate::scopes::Scope;
    use crate::user::ProfileChanges;
    use crate::values::{
        Bio, Credits, CustomData, Email, PersonName, Reason, RoleId, SecretHash, SubscriptionTier,
        UserId, Username,
    };

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_700_000_000_123 + seconds * 1000)
            .unwrap()
    }

    fn metadata(seconds: i64, actor: Actor) -> EventMetadata {
        CommandContext::new(Uuid::now_v7(), actor, at(seconds)).metadata(Uuid::now_v7())
    }

    fn created(id: UserId) -> UserEvent {
        let email = Email::parse("Alice.Smith+news@Gmail.com").unwrap();
        UserEvent::Created {
            id,
            username: Username::parse("alice_01").unwrap(),
            sanitized_email: email.sanitized(),
            email,
            email_verified: true,
            first_name: PersonName::parse("Alice").unwrap(),
            last_name: PersonName::parse("Smith").unwrap(),
            middle_name: None,
            role: RoleId::user(),
            phone: None,
            phone_country_code: None,
            scope: vec![Scope::delegated_all()],
            credits: Credits::new(3),
            custom_data: CustomData::empty(),
            invited_by: None,
        }
    }

    fn fold(events: &[(i64, UserEvent)]) -> UserView {
        let history: Vec<Decoded<UserEvent>> = events
            .iter()
            .map(|(seconds, event)| Decoded {
                event: event.clone(),
                metadata: metadata(*seconds, Actor::system()),
            })
            .collect();
        UserView::from_history(&history).unwrap()
    }

    #[test]
    fn every_contract_field_is_present_and_no_secret() {
        let id = UserId::new();
        let view = fold(&[
            (0, created(id)),
            (
                0,
                UserEvent::PasswordSet {
                    password_hash: SecretHash::parse("$argon2id$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA")
                        .unwrap(),
                },
            ),
        ]);
        let json = serde_json::to_value(&view).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let expected = "_id, username, firstName, middleName, lastName, email, sanitizedEmail, \
            emailVerified, phone, phoneCountryCode, phoneVerified, role, scope, gender, bio, \
            designation, pronouns, organization, customLink, preferredLanguage, country, \
            profilePictureUrl, verified, verifiedDate, verifiedBy, isPrivate, followingCount, \
            followerCount, isSubscribed, subscriptionTier, subscriptionExpiry, \
            subscriptionActivatedAt, subscriptionIdentifier, subscriptionCancelled, \
            subscriptionCancelledAt, credits, isBanned, bannedDate, bannedBy, bannedReason, \
            isRestricted, restrictedDate, restrictedBy, restrictedReason, isDeleted, \
            deletedDate, customData, invitedBy, createdAt, updatedAt";
        let mut expected: Vec<&str> = expected.split(',').map(str::trim).collect();
        let mut keys = keys;
        keys.sort();
        expected.sort();
        assert_eq!(keys, expected);
        assert!(!json.to_string().contains("argon2"));
        assert_eq!(json["_id"], json!(id.to_string()));
        assert_eq!(json["sanitizedEmail"], json!("alicesmith@gmail.com"));
        assert_eq!(json["createdAt"], json!("2023-11-14T22:13:20.123Z"));
        assert_eq!(json["customData"], json!({}));
        assert_eq!(json["credits"], json!(3));
    }

    #[test]
    fn the_view_reads_back_from_its_own_json() {
        let id = UserId::new();
        let view = fold(&[
            (0, created(id)),
            (
                1,
                UserEvent::SubscriptionActivated {
                    tier: Some(SubscriptionTier::parse("premium").unwrap()),
                    expiry: at(100),
                    identifier: None,
                },
            ),
        ]);
        let json = serde_json::to_value(&view).unwrap();
        let back: UserView = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, view, "dates are kept at millisecond precision");
        assert_eq!(serde_json::to_value(&back).unwrap(), json);
    }

    #[test]
    fn dates_and_authors_come_from_the_metadata() {
        let id = UserId::new();
        let admin = Actor::user(UserId::new());
        let history = [
            Decoded {
                event: created(id),
                metadata: metadata(0, Actor::system()),
            },
            Decoded {
                event: UserEvent::Banned {
                    reason: Some(Reason::parse("spamming the forum").unwrap()),
                    by: admin.clone(),
                },
                metadata: metadata(10, admin.clone()),
            },
        ];
        let view = UserView::from_history(&history).unwrap();
        assert!(view.is_banned);
        assert_eq!(view.banned_date, Some(at(10)));
        assert_eq!(view.banned_by.as_deref(), Some(admin.id.as_str()));
        assert_eq!(view.banned_reason.as_deref(), Some("spamming the forum"));
        assert_eq!(view.created_at, at(0));
        assert_eq!(view.updated_at, at(10));
        let unbanned = UserView::evolve(
            Some(view),
            &UserEvent::Unbanned {
                reason: None,
                by: admin.clone(),
            },
            &metadata(20, admin),
        )
        .unwrap();
        assert!(!unbanned.is_banned);
        assert_eq!(unbanned.banned_date, None);
    }

    #[test]
    fn profile_changes_set_and_clear_fields() {
        let id = UserId::new();
        let view = fold(&[
            (0, created(id)),
            (
                1,
                UserEvent::ProfileUpdated(ProfileChanges {
                    bio: Some(Some(Bio::parse("Hello there").unwrap())),
                    first_name: Some(PersonName::parse("Alicia").unwrap()),
                    ..ProfileChanges::default()
                }),
            ),
        ]);
        assert_eq!(view.bio.as_deref(), Some("Hello there"));
        assert_eq!(view.first_name, "Alicia");
        let cleared = UserView::evolve(
            Some(view),
            &UserEvent::ProfileUpdated(ProfileChanges {
                bio: Some(None),
                ..ProfileChanges::default()
            }),
            &metadata(2, Actor::system()),
        )
        .unwrap();
        assert_eq!(cleared.bio, None);
        assert_eq!(cleared.first_name, "Alicia");
    }

    #[test]
    fn subscriptions_are_hydrated_on_read() {
        let tiers = SubscriptionTiers::default();
        let id = UserId::new();
        let premium = |expiry| UserEvent::SubscriptionActivated {
            tier: Some(SubscriptionTier::parse("premium").unwrap()),
            expiry,
            identifier: None,
        };
        let active = fold(&[(0, created(id)), (1, premium(at(100)))]);
        let shown = active.clone().hydrated(&tiers, at(50));
        assert!(shown.is_subscribed);
        assert_eq!(shown.subscription_tier.as_deref(), Some("premium"));

        let expired = active.hydrated(&tiers, at(100) + Duration::milliseconds(1));
        assert!(!expired.is_subscribed);
        assert_eq!(expired.subscription_tier.as_deref(), Some("basic"));

        let base = fold(&[
            (0, created(id)),
            (
                1,
                UserEvent::SubscriptionActivated {
                    tier: None,
                    expiry: at(100),
                    identifier: None,
                },
            ),
        ])
        .hydrated(&tiers, at(50));
        assert!(!base.is_subscribed);
        assert_eq!(base.subscription_tier.as_deref(), Some("basic"));

        let never = fold(&[(0, created(id))]).hydrated(&tiers, at(50));
        assert!(!never.is_subscribed);
        assert_eq!(never.subscription_tier.as_deref(), Some("basic"));
    }

    #[test]
    fn credits_follow_the_events() {
        let id = UserId::new();
        let view = fold(&[
            (0, created(id)),
            (
                1,
                UserEvent::CreditsIncreased {
                    amount: Credits::new(5),
                },
            ),
            (
                2,
                UserEvent::CreditsDecreased {
                    amount: Credits::new(2),
                },
            ),
        ]);
        assert_eq!(view.credits, 6);
        let deleted = UserView::evolve(
            Some(view),
            &UserEvent::Deleted {},
            &metadata(3, Actor::system()),
        )
        .unwrap();
        assert!(deleted.is_deleted);
        assert_eq!(deleted.deleted_date, Some(at(3)));
    }
}
