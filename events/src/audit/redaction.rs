//! Payloads as auditors (and downstream consumers) may see them: an event that holds a secret
//! (`UserPasswordSet`, `ApplicationSecretSet`: see [`EventFamily::contains_secret`]) holds
//! nothing else, so its every field is shown as [`REDACTED`]: the change is visible, the secret
//! never (invariant 6).

use serde_json::{Map, Value};

use crate::application::{Application, ApplicationEvent};
use crate::metadata::{decode, EventFamily};
use crate::role::{Role, RoleEvent};
use crate::sign_in::{SignInEvent, SignIns};
use crate::social::{Social, SocialEvent};
use crate::store::RecordedEvent;
use crate::user::{User, UserEvent};
use crate::Aggregate;

/// What a secret is shown as.
pub const REDACTED: &str = "[redacted]";

/// The payload of a decoded event (its `data`, in the current schema), redacted.
pub fn payload<E: EventFamily>(event: &E) -> Value {
    let data = match serde_json::to_value(event) {
        Ok(Value::Object(mut tagged)) => tagged.remove("data").unwrap_or(Value::Null),
        _ => Value::Null,
    };
    if event.contains_secret() {
        redact_all(data)
    } else {
        data
    }
}

/// The stored payload of any event of the log, redacted. The family is the stream's category;
/// an event that cannot be decoded (unknown category or type) is redacted whole: what cannot
/// be shown to hold no secret is not shown.
pub fn redacted_data(recorded: &RecordedEvent) -> Value {
    let category = recorded.stream.split('-').next().unwrap_or_default();
    let holds_secret = match category {
        User::CATEGORY => decode::<UserEvent>(recorded).map(|d| d.event.contains_secret()),
        Role::CATEGORY => decode::<RoleEvent>(recorded).map(|d| d.event.contains_secret()),
        Application::CATEGORY => {
            decode::<ApplicationEvent>(recorded).map(|d| d.event.contains_secret())
        }
        SignIns::CATEGORY => decode::<SignInEvent>(recorded).map(|d| d.event.contains_secret()),
        // Who follows and blocks whom: two ids, never a secret.
        Social::CATEGORY => decode::<SocialEvent>(recorded).map(|_| false),
        _ => Ok(true),
    };
    if holds_secret.unwrap_or(true) {
        redact_all(recorded.data.clone())
    } else {
        recorded.data.clone()
    }
}

/// Every field's value replaced by [`REDACTED`] (the whole payload, if it is not an object).
fn redact_all(data: Value) -> Value {
    match data {
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(key, _)| (key, Value::String(REDACTED.to_owned())))
                .collect::<Map<_, _>>(),
        ),
        _ => Value::String(REDACTED.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::metadata::encode;
    use crate::testing;
    use crate::values::{Credits, SecretHash};

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";

    fn stored(stream: &str, event: &impl EventFamily) -> RecordedEvent {
        let metadata = testing::context().metadata(uuid::Uuid::now_v7());
        testing::stored(stream, 0, encode(event, &metadata).unwrap())
    }

    #[test]
    fn secrets_are_redacted_and_nothing_else() {
        let secret = UserEvent::PasswordSet {
            password_hash: SecretHash::parse(HASH).unwrap(),
        };
        assert_eq!(payload(&secret), json!({ "passwordHash": REDACTED }));
        let recorded = stored("user-1", &secret);
        assert_eq!(recorded.data["passwordHash"], json!(HASH));
        assert_eq!(
            redacted_data(&recorded),
            json!({ "passwordHash": REDACTED })
        );

        let credits = UserEvent::CreditsIncreased {
            amount: Credits::new(5),
        };
        assert_eq!(payload(&credits), json!({ "amount": 5 }));
        assert_eq!(
            redacted_data(&stored("user-1", &credits)),
            json!({ "amount": 5 })
        );
    }

    #[test]
    fn sign_in_attempts_are_shown_as_they_are() {
        let attempt = crate::sign_in::SignInEvent::Refused {
            attempt: crate::sign_in::Attempt {
                source: "password".into(),
                client_id: None,
                ip_address: Some("10.0.0.1".into()),
                user_agent: None,
            },
            reason: crate::sign_in::RefusalReason::Locked,
        };
        assert_eq!(
            redacted_data(&stored("signin-1", &attempt)),
            json!({ "source": "password", "ipAddress": "10.0.0.1", "reason": "locked" })
        );
    }

    #[test]
    fn what_cannot_be_decoded_is_redacted_whole() {
        let mut recorded = stored(
            "user-1",
            &UserEvent::CreditsIncreased {
                amount: Credits::new(5),
            },
        );
        recorded.stream = "elsewhere-1".into();
        assert_eq!(redacted_data(&recorded), json!({ "amount": REDACTED }));
        recorded.stream = "user-1".into();
        recorded.event_type = "UserSomethingNew".into();
        assert_eq!(redacted_data(&recorded), json!({ "amount": REDACTED }));
    }
}
