//! The Kafka publisher against a real Kafka-protocol broker (tansu): every event type of the
//! log arrives once, with its subject's id as key, CloudEvents headers and the change with the
//! subject's state after it, never a secret; per-user order holds under concurrent writers; a
//! broker stopped for 30 s mid-stream loses nothing.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use events::application::{
    Application, ApplicationChanges, ApplicationCommand, ApplicationEvent, CreateApplication,
    UpdateApplication,
};
use events::metadata::{decode, Decoded, EventFamily};
use events::role::{CreateRole, Role, RoleCommand, RoleEvent, UpdateRole};
use events::scopes::{Scope, ScopeOperation};
use events::sign_in::{Attempt, RefusalReason, SignInEvent};
use events::social::{Edge, Relation, Social, SocialCommand, SocialEvent};
use events::store::RecordedEvent;
use events::user::{
    CreditsChange, ProfileChanges, SubscriptionChange, Toggle, UpdateUser, User, UserCommand,
    UserEvent, UserView,
};
use events::values::{
    ApplicationDisplayName, ApplicationId, ClientId, ClientRole, Credits, CustomData, Email, Grant,
    PersonName, Ranking, RoleDisplayName, RoleId, SecretHash, UserId, Username,
};
use events::Aggregate;
use projections::KafkaSettings;
use serde_json::{json, Value};
use test_support::history::HASH;
use test_support::kafka::{Broker, Received, TopicReader};
use test_support::wait::eventually;
use test_support::world::World;
use tokio::sync::watch;
use uuid::Uuid;

/// A bootstrapped log in a database of its own, and topics of this test's own.
struct Published {
    world: World,
    kafka: KafkaSettings,
}

impl std::ops::Deref for Published {
    type Target = World;

    fn deref(&self) -> &World {
        &self.world
    }
}

impl Published {
    async fn new(brokers: &str) -> Self {
        let suffix = Uuid::now_v7().simple().to_string();
        let mut kafka = KafkaSettings::new(brokers);
        kafka.user_topic = format!("user-changes-{suffix}");
        kafka.role_application_topic = format!("role-application-changes-{suffix}");
        kafka.social_topic = format!("social-changes-{suffix}");
        kafka.partitions = 3;
        Self {
            world: World::new().await,
            kafka,
        }
    }

    /// Starts the publisher (in this process) until the returned sender says stop.
    fn publish(&self) -> (watch::Sender<bool>, projections::ReadModels) {
        let (stop, stopped) = watch::channel(false);
        let models = projections::ReadModels::default().with_publisher(
            self.store.clone(),
            self.database.url(),
            self.kafka.clone(),
            &stopped,
        );
        (stop, models)
    }

    /// Reads both topics until every event of `log` arrived (at least once).
    fn receive_all(&self, log: &[RecordedEvent], timeout: Duration) -> Vec<Received> {
        let wanted: BTreeSet<String> = log
            .iter()
            .filter(|e| published(&e.stream))
            .map(|e| e.event_id.to_string())
            .collect();
        let mut all = Vec::new();
        for topic in self.kafka.topics() {
            let mut reader = TopicReader::new(&self.kafka.brokers, topic).expect("a reader");
            let expected = log
                .iter()
                .filter(|e| published(&e.stream) && self.topic_of(&e.stream) == topic)
                .map(|e| e.event_id.to_string())
                .collect::<BTreeSet<_>>();
            let missing = |received: &[Received]| {
                let ids: BTreeSet<&str> = received.iter().map(|r| r.header("ce_id")).collect();
                log.iter()
                    .filter(|e| expected.contains(&e.event_id.to_string()))
                    .filter(|e| !ids.contains(e.event_id.to_string().as_str()))
                    .map(|e| format!("{}@{}", e.event_type, e.position))
                    .collect::<Vec<_>>()
            };
            if let Err(error) = reader.read_until(timeout, |received| missing(received).is_empty())
            {
                let missing = missing(&reader.received);
                panic!(
                    "{topic}: {error:#}; {} missing, from {:?} to {:?}",
                    missing.len(),
                    missing.first(),
                    missing.last()
                );
            }
            all.extend(reader.received);
        }
        assert!(wanted.len() <= all.len());
        all
    }
}

impl Published {
    /// Users' changes and their sign-in attempts go to the user topic (key: the user's id),
    /// relations to the social topic (key: the pair), roles and applications to the third.
    fn topic_of(&self, stream: &str) -> &str {
        if stream.starts_with("user-") || stream.starts_with("signin-") {
            &self.kafka.user_topic
        } else if stream.starts_with("relation-") {
            &self.kafka.social_topic
        } else {
            &self.kafka.role_application_topic
        }
    }
}

fn published(stream: &str) -> bool {
    ["user-", "role-", "client-", "signin-", "relation-"]
        .iter()
        .any(|prefix| stream.starts_with(prefix))
}

/// A history that has every event type of users, roles and applications; the id of its most
/// changed user.
async fn every_kind_of_change(world: &Published) -> UserId {
    let ada = world.create_user("ada_lovelace").await;
    let bob = world.create_user("bob_builder").await;
    let attempt = Attempt {
        source: "password".into(),
        client_id: Some("internal_app".into()),
        ip_address: Some("10.0.0.7".into()),
        user_agent: Some("Agent/1".into()),
    };
    world
        .sign_in(
            ada,
            SignInEvent::Refused {
                attempt: attempt.clone(),
                reason: RefusalReason::PasswordRejected,
            },
        )
        .await;
    world.sign_in(ada, SignInEvent::Succeeded { attempt }).await;
    let profile = ProfileChanges {
        first_name: Some(PersonName::parse("Augusta").unwrap()),
        ..ProfileChanges::default()
    };
    world
        .user(
            ada,
            UserCommand::Update(UpdateUser {
                profile,
                email: Some(Email::parse("augusta@example.com").unwrap()),
                username: Some(Username::parse("augusta_ada").unwrap()),
                password_hash: Some(SecretHash::parse(HASH).unwrap()),
                ..UpdateUser::default()
            }),
        )
        .await;
    world
        .user(
            ada,
            UserCommand::ReplaceCustomData(
                CustomData::parse(json!({"theme": "dark"}), 10_000).unwrap(),
            ),
        )
        .await;
    for command in [
        UserCommand::SetBanned(Toggle::on(None)),
        UserCommand::SetBanned(Toggle::off(None)),
        UserCommand::SetRestricted(Toggle::on(None)),
        UserCommand::SetRestricted(Toggle::off(None)),
        UserCommand::SetVerified(Toggle::on(None)),
        UserCommand::SetVerified(Toggle::off(None)),
        UserCommand::ChangeCredits(CreditsChange::Increment(Credits::new(7))),
        UserCommand::ChangeCredits(CreditsChange::Decrement(Credits::new(2))),
        UserCommand::ChangeCredits(CreditsChange::Set(Credits::new(40))),
        UserCommand::ChangeScopes {
            operation: ScopeOperation::Add,
            scopes: vec![Scope::parse("admin:profile:read").unwrap()],
        },
        UserCommand::ChangeSubscription(SubscriptionChange::Activate {
            tier: None,
            expiry: Utc::now() + chrono::Duration::days(30),
            identifier: None,
        }),
        UserCommand::SetSubscriptionCancelled(true),
        UserCommand::SetSubscriptionCancelled(false),
        UserCommand::ChangeSubscription(SubscriptionChange::Deactivate),
        UserCommand::ChangeRole(RoleId::parse("admin").unwrap()),
    ] {
        world.user(ada, command).await;
    }
    let codes = command_service::users::invite_codes::draw(2, Utc::now());
    world
        .user(ada, UserCommand::GenerateInviteCodes(codes.clone()))
        .await;
    world
        .user(
            ada,
            UserCommand::RedeemInviteCode {
                code: codes[0].clone(),
                redeemed_by: bob,
            },
        )
        .await;
    // Every social fact, between ada and carol: a request to a private account, accepted; an
    // unfollow; a follow of a public one, removed; a block (which ends a follow), lifted.
    let carol = world.create_user("carol_follows").await;
    let (to_ada, to_carol) = (
        Edge {
            source: carol,
            target: ada,
        },
        Edge {
            source: ada,
            target: carol,
        },
    );
    world.user(ada, UserCommand::SetPrivate(true)).await;
    for command in [
        SocialCommand::Follow {
            edge: to_ada,
            target_private: true,
        },
        SocialCommand::Accept(to_ada),
        SocialCommand::Unfollow(to_ada),
        SocialCommand::Follow {
            edge: to_carol,
            target_private: false,
        },
        SocialCommand::RemoveFollower(to_carol),
        SocialCommand::Follow {
            edge: to_ada,
            target_private: false,
        },
        SocialCommand::Block(to_carol),
        SocialCommand::Unblock(to_carol),
    ] {
        world.social(command).await;
    }
    world.user(ada, UserCommand::SetPrivate(false)).await;
    world.user(bob, UserCommand::Delete).await;
    world.user(bob, UserCommand::Erase).await;

    world
        .role(
            "moderator",
            RoleCommand::Create(CreateRole {
                id: RoleId::parse("moderator").unwrap(),
                display_name: RoleDisplayName::parse("Moderator").unwrap(),
                ranking: Ranking::new(10).unwrap(),
                description: None,
                scope: Vec::new(),
                system: false,
            }),
        )
        .await;
    world
        .role(
            "moderator",
            RoleCommand::Update(UpdateRole {
                display_name: Some(RoleDisplayName::parse("Moderators").unwrap()),
                ..UpdateRole::default()
            }),
        )
        .await;
    world
        .role(
            "moderator",
            RoleCommand::ChangeScopes {
                operation: ScopeOperation::Set,
                scopes: vec![Scope::parse("admin:profile:read").unwrap()],
            },
        )
        .await;
    world.role("moderator", RoleCommand::Delete).await;

    let partner = ApplicationId::new();
    world
        .application(
            partner,
            ApplicationCommand::Create(CreateApplication {
                id: partner,
                client_id: ClientId::parse("partner_app").unwrap(),
                display_name: ApplicationDisplayName::parse("Partner application").unwrap(),
                role: ClientRole::ExternalClient,
                grants: vec![Grant::ClientCredentials],
                redirect_uris: Vec::new(),
                is_public: false,
                secret_hash: Some(SecretHash::parse(HASH).unwrap()),
                scope: vec![Scope::delegated_all()],
            }),
        )
        .await;
    world
        .application(
            partner,
            ApplicationCommand::ChangeScopes {
                operation: ScopeOperation::Set,
                scopes: vec![Scope::parse("admin:profile:read").unwrap()],
            },
        )
        .await;
    world
        .application(
            partner,
            ApplicationCommand::Update(UpdateApplication {
                changes: ApplicationChanges {
                    is_public: Some(true),
                    grants: Some(vec![Grant::AuthorizationCode]),
                    ..ApplicationChanges::default()
                },
                secret_hash: None,
                scope: None,
            }),
        )
        .await;
    world.application(partner, ApplicationCommand::Delete).await;
    ada
}

/// What the subject of `stream` looks like after each of its events, by event id, folded
/// by the domain's own functions (the read models' documents).
fn states_after(log: &[RecordedEvent]) -> HashMap<String, Value> {
    let mut streams: HashMap<&str, Vec<&RecordedEvent>> = HashMap::new();
    for event in log {
        streams.entry(&event.stream).or_default().push(event);
    }
    let mut after = HashMap::new();
    for (stream, events) in streams {
        if stream.starts_with("user-") {
            let mut view: Option<UserView> = None;
            for event in events {
                let decoded: Decoded<UserEvent> = decode(event).unwrap();
                view = UserView::evolve(view, &decoded.event, &decoded.metadata);
                after.insert(
                    event.event_id.to_string(),
                    serde_json::to_value(&view).unwrap(),
                );
            }
        } else if stream.starts_with("role-") {
            let mut role = None;
            for event in events {
                let decoded: Decoded<RoleEvent> = decode(event).unwrap();
                role = Role::evolve(role, &decoded.event);
                let document = role.as_ref().and_then(events::role::RoleView::of);
                after.insert(
                    event.event_id.to_string(),
                    serde_json::to_value(document).unwrap(),
                );
            }
        } else if stream.starts_with("relation-") {
            let mut relation = Relation::default();
            for event in events {
                let decoded: Decoded<SocialEvent> = decode(event).unwrap();
                relation = Social::evolve(relation, &decoded.event);
                let follows: Vec<Value> = relation
                    .follows
                    .iter()
                    .map(|(source, follow)| {
                        json!({"source": source, "approved": *follow == events::social::Follow::Accepted})
                    })
                    .collect();
                after.insert(
                    event.event_id.to_string(),
                    json!({"follows": follows, "blockers": relation.blockers}),
                );
            }
        } else if stream.starts_with("signin-") {
            for (attempts, event) in events.into_iter().enumerate() {
                after.insert(
                    event.event_id.to_string(),
                    json!({ "attempts": attempts + 1 }),
                );
            }
        } else if stream.starts_with("client-") {
            let mut application = None;
            for event in events {
                let decoded: Decoded<ApplicationEvent> = decode(event).unwrap();
                application = Application::evolve(application, &decoded.event);
                let document = application
                    .as_ref()
                    .and_then(events::application::ApplicationView::of);
                after.insert(
                    event.event_id.to_string(),
                    serde_json::to_value(document).unwrap(),
                );
            }
        }
    }
    after
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_type_arrives_with_its_key_headers_and_payload() {
    let brokers = Broker::shared().expect("a broker");
    let world = Published::new(brokers).await;
    let ada = every_kind_of_change(&world).await;
    let (stop, publisher) = world.publish();
    world.receive_all(&world.log().await, Duration::from_secs(60));
    stop.send(true).unwrap();
    publisher.stopped().await;
    // More changes, published by a new publisher: it knows no user's state and folds ada's
    // from her stream (what a restarted publisher does).
    for command in [
        UserCommand::ChangeCredits(CreditsChange::Increment(Credits::new(2))),
        UserCommand::SetBanned(Toggle::on(None)),
    ] {
        world.user(ada, command).await;
    }
    let (stop, publisher) = world.publish();
    let log = world.log().await;
    let received = world.receive_all(&log, Duration::from_secs(60));
    stop.send(true).unwrap();
    publisher.stopped().await;

    let types: BTreeSet<&str> = log.iter().map(|e| e.event_type.as_str()).collect();
    let every_type: BTreeSet<&str> = UserEvent::EVENT_TYPES
        .iter()
        .chain(RoleEvent::EVENT_TYPES)
        .chain(ApplicationEvent::EVENT_TYPES)
        .chain(SignInEvent::EVENT_TYPES)
        .chain(SocialEvent::EVENT_TYPES)
        .copied()
        .collect();
    assert_eq!(types, every_type, "the history has every event type");

    // An erasure is followed, on the same partition, by a tombstone (no value) for the
    // person's key, so that a compacted topic forgets them.
    let (tombstones, received): (Vec<&Received>, Vec<&Received>) =
        received.iter().partition(|r| r.text.is_empty());
    let erased = log
        .iter()
        .find(|e| e.event_type == "UserErased")
        .expect("an erasure");
    let erasure = received
        .iter()
        .find(|r| r.header("ce_id") == erased.event_id.to_string())
        .expect("the erasure arrived");
    assert_eq!(tombstones.len(), 1, "one tombstone, for the one erasure");
    assert_eq!(tombstones[0].key, erased.stream.trim_start_matches("user-"));
    assert_eq!(tombstones[0].partition, erasure.partition);
    assert!(tombstones[0].offset > erasure.offset);
    assert!(tombstones[0].headers.is_empty());

    let by_id: HashMap<&str, &Received> =
        received.iter().map(|r| (r.header("ce_id"), *r)).collect();
    let after = states_after(&log);
    for event in &log {
        let message = by_id
            .get(event.event_id.to_string().as_str())
            .unwrap_or_else(|| panic!("{} never arrived", event.event_type));
        let (category, id) = event.stream.split_once('-').unwrap();
        let kind = match category {
            "user" => "user",
            "role" => "role",
            "signin" => "signin",
            "relation" => "relation",
            _ => "application",
        };
        assert_eq!(message.key, id, "{}", event.event_type);
        assert_eq!(message.header("ce_specversion"), "1.0");
        assert_eq!(
            message.header("ce_source"),
            format!("/userledger/{category}")
        );
        assert_eq!(message.header("ce_subject"), id);
        assert_eq!(message.header("content-type"), "application/json");
        let ce_type = message.header("ce_type");
        assert!(
            ce_type.starts_with(&format!("io.userledger.{kind}.")) && ce_type.ends_with(".v1"),
            "{ce_type} for {}",
            event.event_type
        );
        let time: DateTime<Utc> = message.header("ce_time").parse().expect("an RFC 3339 time");
        let payload = &message.payload;
        assert_eq!(payload["occurredAt"], message.header("ce_time"));
        assert_eq!(
            payload["occurredAt"]
                .as_str()
                .unwrap()
                .parse::<DateTime<Utc>>()
                .unwrap(),
            time
        );
        assert_eq!(payload["id"], event.event_id.to_string());
        assert_eq!(payload["type"], event.event_type);
        assert_eq!(payload["subject"], id);
        assert_eq!(payload["stream"], event.stream);
        assert_eq!(payload["revision"], event.revision);
        assert_eq!(payload["position"], event.position.to_string());
        assert_eq!(payload["actor"], json!({"id": "system", "kind": "system"}));
        assert_eq!(payload["correlationId"], event.metadata["correlationId"]);
        assert_eq!(
            payload[kind],
            after[&event.event_id.to_string()],
            "the {kind} after {}",
            event.event_type
        );
        let secret =
            ["UserPasswordSet", "ApplicationSecretSet"].contains(&event.event_type.as_str());
        if secret {
            for (field, value) in payload["change"].as_object().unwrap() {
                assert_eq!(value, "[redacted]", "{field} of {}", event.event_type);
            }
        } else {
            assert_eq!(payload["change"], event.data, "{}", event.event_type);
        }
        assert!(!message.text.contains("argon2"), "{}", message.text);
    }
    for message in &received {
        matches_the_asyncapi_document(message);
    }
    let types_sent: BTreeSet<&str> = received.iter().map(|r| r.header("ce_type")).collect();
    assert_eq!(
        types_sent.len(),
        every_type.len(),
        "one ce_type per event type: {types_sent:?}"
    );
}

/// Per subject, the revisions of the first copy of each event, in the order they arrived
/// (one partition per key, so arrival order is partition order).
fn revisions_by_key(received: &[Received]) -> HashMap<String, Vec<u64>> {
    let mut sorted: Vec<&Received> = received.iter().collect();
    sorted.sort_by_key(|r| (r.partition, r.offset));
    let mut seen = BTreeSet::new();
    let mut revisions: HashMap<String, Vec<u64>> = HashMap::new();
    for message in sorted {
        if seen.insert(message.header("ce_id").to_owned()) {
            revisions
                .entry(message.key.clone())
                .or_default()
                .push(message.payload["revision"].as_u64().expect("a revision"));
        }
    }
    revisions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_order_holds_under_concurrent_writers() {
    const USERS: usize = 12;
    const WRITERS: usize = 6;
    const INCREMENTS: usize = 40;
    let brokers = Broker::shared().expect("a broker");
    let world = Arc::new(Published::new(brokers).await);
    let (stop, publisher) = world.publish();
    let mut users = Vec::new();
    for i in 0..USERS {
        users.push(world.create_user(&format!("ordered_{i}")).await);
    }
    // Every writer increments every user, interleaved, while the publisher follows live.
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let world = world.clone();
            let users = users.clone();
            tokio::spawn(async move {
                for round in 0..INCREMENTS {
                    let user = users[(writer + round) % users.len()];
                    world
                        .user(
                            user,
                            UserCommand::ChangeCredits(CreditsChange::Increment(Credits::new(1))),
                        )
                        .await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("the writer finishes");
    }
    let log = world.log().await;
    let received = world.receive_all(&log, Duration::from_secs(60));
    stop.send(true).unwrap();
    publisher.stopped().await;

    let revisions = revisions_by_key(&received);
    for user in &users {
        let stream = User::stream_name(*user);
        let expected: Vec<u64> = log
            .iter()
            .filter(|e| e.stream == stream)
            .map(|e| e.revision)
            .collect();
        assert_eq!(
            revisions[&user.to_string()],
            expected,
            "{user}: every event once, in stream order"
        );
    }
    let last_credits: u64 = users
        .iter()
        .map(|user| {
            let mine: Vec<&Received> = received
                .iter()
                .filter(|r| r.key == user.to_string())
                .collect();
            let last = mine
                .iter()
                .max_by_key(|r| r.payload["revision"].as_u64())
                .expect("messages of the user");
            last.payload["user"]["credits"].as_u64().expect("credits")
        })
        .sum();
    assert_eq!(last_credits as usize, WRITERS * INCREMENTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_stopped_for_30_seconds_mid_stream_loses_nothing() {
    // A broker of this test's own, stopped (SIGSTOP: it answers nothing, its clients' requests
    // time out) for 30 s while writes go on, then started again (SIGCONT).
    let broker = Broker::start_in_memory().expect("a broker");
    let world = Arc::new(Published::new(broker.address()).await);
    let (stop, publisher) = world.publish();
    let user = world.create_user("through_the_outage").await;
    let writing = {
        let world = world.clone();
        tokio::spawn(async move {
            // 4 writes a second for 40 s: they keep succeeding while the broker is away. The
            // pace is the point (writes spread over the whole outage), not a wait.
            for _ in 0..160 {
                world
                    .user(
                        user,
                        UserCommand::ChangeCredits(CreditsChange::Increment(Credits::new(1))),
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    // Mid-stream: the publisher has published the first writes when the broker stops (within
    // 10 s, so that most of the 40 s of writes fall in the outage).
    let kafka = publisher.progress[projections::publisher::NAME].clone();
    let stream = User::stream_name(user);
    eventually(
        Duration::from_secs(10),
        "the first writes are published before the outage",
        || async {
            let third_write = world
                .log()
                .await
                .iter()
                .filter(|e| e.stream == stream)
                .nth(3)
                .map(|e| e.position);
            let published = kafka.borrow().position;
            match (third_write, published) {
                (Some(write), Some(at)) if at >= write => Ok(()),
                seen => Err(seen),
            }
        },
    )
    .await;
    broker.suspend().expect("the broker stops");
    let stopped_at = world.log().await.len();
    // The outage's length is the point: the publisher's requests time out meanwhile.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let during_outage = world.log().await.len() - stopped_at;
    broker.resume().expect("the broker runs again");
    assert!(
        during_outage >= 100,
        "writes went on: {during_outage} events"
    );
    writing.await.expect("the writer finishes");

    let log = world.log().await;
    let received = world.receive_all(&log, Duration::from_secs(120));
    stop.send(true).unwrap();
    publisher.stopped().await;

    let ids: BTreeSet<&str> = received.iter().map(|r| r.header("ce_id")).collect();
    for event in log.iter().filter(|e| published(&e.stream)) {
        assert!(
            ids.contains(event.event_id.to_string().as_str()),
            "{} lost",
            event.event_type
        );
    }
    let revisions = revisions_by_key(&received);
    let count = log
        .iter()
        .filter(|e| e.stream == User::stream_name(user))
        .count() as u64;
    assert_eq!(
        revisions[&user.to_string()],
        (0..count).collect::<Vec<_>>(),
        "in order, each once"
    );
}

/// The AsyncAPI document (docs/asyncapi.json) describes `message`: its channel lists the
/// message of its type, with that `ce_type`, and the change has the fields the document names.
fn matches_the_asyncapi_document(message: &Received) {
    static DOCUMENT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    let document = DOCUMENT.get_or_init(|| {
        let text = include_str!("../../docs/asyncapi.json");
        serde_json::from_str(text).expect("the AsyncAPI document is JSON")
    });
    let event_type = message.payload["type"].as_str().expect("a type");
    let channel =
        if message.payload.get("user").is_some() || message.payload.get("signin").is_some() {
            "userChanges"
        } else if message.payload.get("relation").is_some() {
            "socialChanges"
        } else {
            "roleApplicationChanges"
        };
    assert!(
        document["channels"][channel]["messages"]
            .get(event_type)
            .is_some(),
        "{event_type} is not in the channel {channel} of the AsyncAPI document"
    );
    let described = &document["components"]["messages"][event_type];
    assert_eq!(
        described["headers"]["properties"]["ce_type"]["const"],
        message.header("ce_type"),
        "{event_type}"
    );
    let change = &document["components"]["schemas"][format!("{event_type}Change")];
    let fields: BTreeSet<&str> = message.payload["change"]
        .as_object()
        .expect("a change object")
        .keys()
        .map(String::as_str)
        .collect();
    let named: BTreeSet<&str> = change["properties"]
        .as_object()
        .expect("the change's properties")
        .keys()
        .map(String::as_str)
        .collect();
    let required: BTreeSet<&str> = change["required"]
        .as_array()
        .expect("the change's required fields")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        fields.is_subset(&named),
        "{event_type}: {fields:?} not all in {named:?}"
    );
    assert!(
        required.is_subset(&fields),
        "{event_type}: {required:?} not all in {fields:?}"
    );
}
