//! The read models (`projections::{users, roles, applications, invite_codes, social}`): each row is
//! what a fold of its stream gives, no secret ever enters, and a projector stopped or killed
//! mid-way resumes from its checkpoint and ends identical to a clean rebuild (invariant 4).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::Utc;
use events::application::{Application, ApplicationCommand, CreateApplication};
use events::metadata::decode;
use events::role::{CreateRole, Role, RoleCommand};
use events::scopes::Scope;
use events::store::{Position, RecordedEvent};
use events::user::{CreditsChange, Toggle, UserCommand, UserEvent, UserView};
use events::values::{
    ApplicationDisplayName, ApplicationId, ClientId, ClientRole, Credits, Grant, InviteCode,
    Ranking, RoleDisplayName, RoleId, SecretHash, UserId,
};
use events::Aggregate;
use projections::runtime::{Progress, Projection, Projector};
use projections::users::UsersReadModel;
use serde_json::Value;
use test_support::history::HASH;
use test_support::wait::{eventually, holds};
use test_support::world::World;
use tokio::sync::watch;
use uuid::Uuid;

/// What the read-model tests read of their world's tables.
trait Tables {
    async fn documents(&self, schema: &str, table: &str) -> BTreeMap<String, Value>;
    async fn invite_code_rows(
        &self,
        schema: &str,
    ) -> Vec<(String, Uuid, Option<Uuid>, String, String)>;
}

impl Tables for World {
    /// Rows of `table` in `schema` as `key -> document` (as text, to compare whole).
    async fn documents(&self, schema: &str, table: &str) -> BTreeMap<String, Value> {
        let rows: Vec<(String, Value)> =
            sqlx::query_as(&format!("SELECT id::text, document FROM {schema}.{table}"))
                .fetch_all(&self.pool)
                .await
                .expect("the read model reads");
        rows.into_iter().collect()
    }

    async fn invite_code_rows(
        &self,
        schema: &str,
    ) -> Vec<(String, Uuid, Option<Uuid>, String, String)> {
        sqlx::query_as(&format!(
            "SELECT code, owner, target_id, created_at::text, updated_at::text FROM {schema}.invite_codes ORDER BY code"
        ))
        .fetch_all(&self.pool)
        .await
        .expect("invite codes read")
    }
}

/// Waits until `progress` reaches `position` (at most 30 s).
async fn reach(progress: &mut watch::Receiver<Progress>, position: Position) {
    tokio::time::timeout(
        Duration::from_secs(30),
        progress.wait_for(|p| p.position.is_some_and(|at| at >= position)),
    )
    .await
    .expect("the projection catches up in time")
    .expect("the projector runs");
}

/// The connection of a projector instance standing by: in this test's database, idle after a
/// `pg_try_advisory_lock` that did not take the lock (it holds no advisory lock). Waits for
/// exactly one such connection; panics if none shows within 30 s (the instance never started,
/// or never asked) or if it took a lock.
async fn standby_lock_connection(world: &World) -> i32 {
    eventually(
        Duration::from_secs(30),
        "a projector instance stands by, refused the lock",
        || async {
            let standing_by: Vec<i32> = sqlx::query_scalar(
                "SELECT pid FROM pg_stat_activity a
                  WHERE datname = current_database() AND state = 'idle'
                    AND query = 'SELECT pg_try_advisory_lock($1)'
                    AND NOT EXISTS (SELECT 1 FROM pg_locks l
                                     WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted)",
            )
            .fetch_all(&world.pool)
            .await
            .expect("the activity reads");
            match standing_by[..] {
                [pid] => Ok(pid),
                _ => Err(standing_by),
            }
        },
    )
    .await
}

/// The backends of this test's database that hold an advisory lock.
async fn advisory_lock_holders(world: &World) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_locks
          WHERE locktype = 'advisory' AND granted
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_all(&world.pool)
    .await
    .expect("the locks read")
}

/// Runs `projection` into `schema` until the log's end as it is now, then stops it.
async fn project_to_end<P: Projection>(world: &World, projection: P, schema: &str) {
    project_to_end_in_batches(world, projection, schema, 5).await;
}

/// [`project_to_end`] in batches of at most `batch` events.
async fn project_to_end_in_batches<P: Projection>(
    world: &World,
    projection: P,
    schema: &str,
    batch: usize,
) {
    let target = world.last_position().await;
    let projector = Projector::new(
        projection,
        world.store.clone(),
        world.database.url(),
        schema,
    )
    .with_batch(batch);
    let mut progress = projector.progress();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(async move { projector.run(stopped).await });
    reach(&mut progress, target).await;
    stop.send(true).unwrap();
    task.await.unwrap().expect("the projector stops cleanly");
}

#[tokio::test]
async fn read_models_are_folds_of_the_log_without_secrets() {
    let world = World::new().await;
    let ada = world.create_user("ada_lovelace").await;
    let bob = world.create_user("bob_builder").await;
    world
        .user(
            ada,
            UserCommand::ChangeCredits(CreditsChange::Increment(Credits::new(7))),
        )
        .await;
    world
        .user(ada, UserCommand::SetBanned(Toggle::on(None)))
        .await;
    let codes: Vec<InviteCode> = command_service::users::invite_codes::draw(3, Utc::now());
    world
        .user(ada, UserCommand::GenerateInviteCodes(codes.clone()))
        .await;
    world
        .user(
            ada,
            UserCommand::RedeemInviteCode {
                code: codes[1].clone(),
                redeemed_by: bob,
            },
        )
        .await;
    world.user(bob, UserCommand::Delete).await;
    let moderator = |id: &str| {
        RoleCommand::Create(CreateRole {
            id: RoleId::parse(id).unwrap(),
            display_name: RoleDisplayName::parse("Moderator").unwrap(),
            ranking: Ranking::new(10).unwrap(),
            description: None,
            scope: Vec::new(),
            system: false,
        })
    };
    world.role("moderator", moderator("moderator")).await;
    world.role("gone_role", moderator("gone_role")).await;
    world.role("gone_role", RoleCommand::Delete).await;
    let partner = ApplicationId::new();
    let departed = ApplicationId::new();
    for (id, client_id) in [(partner, "partner_app"), (departed, "departed_app")] {
        world
            .application(
                id,
                ApplicationCommand::Create(CreateApplication {
                    id,
                    client_id: ClientId::parse(client_id).unwrap(),
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
    }
    world
        .application(departed, ApplicationCommand::Delete)
        .await;

    let (stop, stopped) = watch::channel(false);
    let models = projections::spawn_read_models(world.store.clone(), world.database.url(), stopped);
    let target = world.last_position().await;
    for progress in models.progress.values() {
        reach(&mut progress.clone(), target).await;
    }
    stop.send(true).unwrap();
    models.stopped().await;

    // What a fold of each stream gives, through the domain's own functions.
    let log = world.log().await;
    let mut streams: BTreeMap<&str, Vec<&RecordedEvent>> = BTreeMap::new();
    for event in &log {
        streams
            .entry(event.stream.as_str())
            .or_default()
            .push(event);
    }
    let mut users = BTreeMap::new();
    let mut roles = BTreeMap::new();
    let mut applications = BTreeMap::new();
    for (stream, events) in &streams {
        if let Some(id) = stream.strip_prefix("user-") {
            let decoded: Vec<_> = events
                .iter()
                .map(|e| decode::<UserEvent>(e).unwrap())
                .collect();
            let view = UserView::from_history(&decoded).unwrap();
            users.insert(id.to_owned(), serde_json::to_value(view).unwrap());
        } else if let Some(id) = stream.strip_prefix("role-") {
            let role = events
                .iter()
                .map(|e| decode(e).unwrap().event)
                .fold(None, |state, event| Role::evolve(state, &event))
                .unwrap();
            if let Some(view) = events::role::RoleView::of(&role) {
                roles.insert(id.to_owned(), serde_json::to_value(view).unwrap());
            }
        } else if let Some(id) = stream.strip_prefix("client-") {
            let application = events
                .iter()
                .map(|e| decode(e).unwrap().event)
                .fold(None, |state, event| Application::evolve(state, &event))
                .unwrap();
            if let Some(view) = events::application::ApplicationView::of(&application) {
                applications.insert(id.to_owned(), serde_json::to_value(view).unwrap());
            }
        }
    }
    assert_eq!(users.len(), 3, "the super_admin, ada and bob");
    assert_eq!(world.documents("read_models", "users").await, users);
    assert_eq!(roles.len(), 6, "five system roles and moderator");
    assert_eq!(world.documents("read_models", "roles").await, roles);
    assert_eq!(applications.len(), 2, "the internal client and partner_app");
    assert_eq!(
        world.documents("read_models", "applications").await,
        applications
    );

    let ada_row = &users[&ada.to_string()];
    assert_eq!(ada_row["credits"], 7);
    assert_eq!(ada_row["isBanned"], true);
    assert_eq!(users[&bob.to_string()]["isDeleted"], true);
    let lookups: (String, String, String, String) = sqlx::query_as(
        "SELECT username, email, sanitized_email, role FROM read_models.users WHERE id = $1",
    )
    .bind(ada.as_uuid())
    .fetch_one(&world.pool)
    .await
    .unwrap();
    assert_eq!(
        lookups,
        (
            "ada_lovelace".into(),
            ada_row["email"].as_str().unwrap().to_owned(),
            "ada_lovelacemail@gmail.com".into(),
            "user".into()
        )
    );

    let rows = world.invite_code_rows("read_models").await;
    assert_eq!(rows.len(), 3);
    for (code, owner, target, created, updated) in &rows {
        assert_eq!(*owner, ada.as_uuid());
        if code == codes[1].as_str() {
            assert_eq!(*target, Some(bob.as_uuid()));
            assert!(updated > created);
        } else {
            assert_eq!(*target, None);
            assert_eq!(updated, created);
        }
    }

    // Invariant 6: no hash (nor a field named a secret or a hash) in any read model. ("password"
    // may appear: it is a grant's name.)
    let everything: Vec<String> = sqlx::query_scalar(
        "SELECT row_to_json(t)::text FROM (
            SELECT document::jsonb FROM read_models.users
            UNION ALL SELECT document FROM read_models.roles
            UNION ALL SELECT document FROM read_models.applications) t",
    )
    .fetch_all(&world.pool)
    .await
    .unwrap();
    assert_eq!(everything.len(), 11);
    for row in everything {
        for secret in ["argon2", "secret", "hash"] {
            assert!(!row.to_lowercase().contains(secret), "{secret} in {row}");
        }
    }
}

#[tokio::test]
async fn a_projector_killed_or_stopped_mid_way_resumes_and_matches_a_clean_rebuild() {
    let world = World::new().await;
    let mut users = Vec::new();
    for n in 0..4 {
        users.push(world.create_user(&format!("resumer_{n}")).await);
    }
    for round in 0..30u64 {
        let id = users[(round % 4) as usize];
        world
            .user(
                id,
                UserCommand::ChangeCredits(CreditsChange::Increment(Credits::new(round + 1))),
            )
            .await;
    }
    let middle = world.last_position().await;
    for round in 0..30u64 {
        let id = users[(round % 4) as usize];
        world
            .user(
                id,
                UserCommand::ChangeCredits(CreditsChange::Increment(Credits::new(1))),
            )
            .await;
    }

    // First run: killed (the task aborted, its transaction never committed) once past the middle.
    let projector = Projector::new(
        UsersReadModel,
        world.store.clone(),
        world.database.url(),
        "read_models",
    )
    .with_batch(3);
    let mut progress = projector.progress();
    let (_stop, stopped) = watch::channel(false);
    let killed = tokio::spawn(async move { projector.run(stopped).await });
    reach(&mut progress, middle).await;
    killed.abort();
    let _ = killed.await;
    let checkpoint: i64 = sqlx::query_scalar(
        "SELECT commit_position FROM read_models.projection_checkpoints WHERE projection = 'users'",
    )
    .fetch_one(&world.pool)
    .await
    .unwrap();
    assert!(checkpoint as u64 >= middle.commit);

    // More history while it is down, then a second run that stops cleanly mid-way, a third to
    // the end.
    for round in 0..20u64 {
        let id = users[(round % 4) as usize];
        world
            .user(
                id,
                UserCommand::ChangeCredits(CreditsChange::Increment(Credits::new(2))),
            )
            .await;
    }
    let projector = Projector::new(
        UsersReadModel,
        world.store.clone(),
        world.database.url(),
        "read_models",
    )
    .with_batch(2);
    let mut progress = projector.progress();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(async move { projector.run(stopped).await });
    reach(&mut progress, Position::at(checkpoint as u64 + 5)).await;
    stop.send(true).unwrap();
    task.await.unwrap().expect("a clean stop");
    project_to_end(&world, UsersReadModel, "read_models").await;

    // A clean rebuild in a schema of its own, in one pass.
    project_to_end(&world, UsersReadModel, "rebuild").await;
    let resumed = world.documents("read_models", "users").await;
    assert_eq!(resumed, world.documents("rebuild", "users").await);
    let credits: BTreeSet<u64> = resumed
        .values()
        .filter(|user| user["username"].as_str().unwrap().starts_with("resumer_"))
        .map(|user| user["credits"].as_u64().unwrap())
        .collect();
    // Increments 1..=30 spread over four users, then 30 + 40 more: each event applied once.
    let total: u64 = resumed
        .values()
        .map(|user| user["credits"].as_u64().unwrap())
        .sum();
    assert_eq!(total, (1..=30).sum::<u64>() + 30 + 40, "{credits:?}");
}

#[tokio::test]
async fn two_instances_active_at_once_never_apply_an_event_twice() {
    let world = World::new().await;
    let mut users = Vec::new();
    for n in 0..4 {
        users.push(world.create_user(&format!("twin_{n}")).await);
    }
    let start = |world: &World| {
        let projector = Projector::new(
            UsersReadModel,
            world.store.clone(),
            world.database.url(),
            "read_models",
        )
        .with_batch(1);
        let progress = projector.progress();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(async move { projector.run(stopped).await });
        (progress, stop, task)
    };
    let (mut first, stop_first, first_task) = start(&world);
    reach(&mut first, world.last_position().await).await;
    let (mut second, stop_second, second_task) = start(&world);
    // The second instance has started and asked for the lock the first one holds, and was
    // refused: its lock connection sits idle after a failed `pg_try_advisory_lock` (it tries
    // again every half second) and holds no advisory lock.
    let standby = standby_lock_connection(&world).await;
    let holders = advisory_lock_holders(&world).await;
    assert_eq!(holders.len(), 1, "one lock held: {holders:?}");
    assert_ne!(holders[0], standby, "the lock is the first instance's");
    // While it stands by, the log moves on: the first instance applies, the second nothing.
    world.create_user("twin_late").await;
    reach(&mut first, world.last_position().await).await;
    assert_eq!(
        *second.borrow(),
        Progress::default(),
        "the second instance waits as a standby, applying nothing"
    );
    assert_eq!(
        standby_lock_connection(&world).await,
        standby,
        "the same standby, still asking"
    );

    // The first instance's lock connection drops while the instance goes on (a network blip):
    // the standby takes the lock, and both are active.
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_locks
          WHERE locktype = 'advisory' AND granted
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_all(&world.pool)
    .await
    .unwrap();
    assert_eq!(terminated, [true], "one lock held, by the first instance");
    tokio::time::timeout(Duration::from_secs(5), second.wait_for(|p| p.active))
        .await
        .expect("the standby takes over")
        .unwrap();
    assert!(
        first.borrow().active,
        "the first instance still believes it is active"
    );

    // Both follow the log and race for every event; the checkpoint's compare-and-set lets one
    // apply it and sends the other back to the stored checkpoint.
    for round in 0..120u64 {
        let id = users[(round % 4) as usize];
        world
            .user(
                id,
                UserCommand::ChangeCredits(CreditsChange::Increment(Credits::new(round + 1))),
            )
            .await;
    }
    let end = world.last_position().await;
    eventually(
        Duration::from_secs(30),
        "the projection catches up",
        || async {
            let at: i64 = sqlx::query_scalar(
                "SELECT commit_position FROM read_models.projection_checkpoints WHERE projection = 'users'",
            )
            .fetch_one(&world.pool)
            .await
            .unwrap();
            holds(at as u64 >= end.commit, format!("checkpoint at {at}, log at {end:?}"))
        },
    )
    .await;
    stop_first.send(true).unwrap();
    stop_second.send(true).unwrap();
    first_task.await.unwrap().expect("a clean stop");
    second_task.await.unwrap().expect("a clean stop");

    let total: u64 = world
        .documents("read_models", "users")
        .await
        .values()
        .map(|user| user["credits"].as_u64().unwrap())
        .sum();
    assert_eq!(total, (1..=120).sum::<u64>(), "each increment applied once");
    project_to_end(&world, UsersReadModel, "rebuild").await;
    assert_eq!(
        world.documents("read_models", "users").await,
        world.documents("rebuild", "users").await
    );
}

#[tokio::test]
async fn a_rebuild_swaps_in_under_live_projectors_which_resume_from_it() {
    let world = World::new().await;
    let mut users = Vec::new();
    for n in 0..4 {
        users.push(world.create_user(&format!("rebuilt_{n}")).await);
    }
    let increment = |round: u64| {
        world.user(
            users[(round % 4) as usize],
            UserCommand::ChangeCredits(CreditsChange::Increment(Credits::new(round + 1))),
        )
    };
    for round in 0..40 {
        increment(round).await;
    }
    let (stop, stopped) = watch::channel(false);
    let models = projections::spawn_read_models(world.store.clone(), world.database.url(), stopped);
    let target = world.last_position().await;
    for progress in models.progress.values() {
        reach(&mut progress.clone(), target).await;
    }

    // Writes go on while the rebuild replays the log and swaps its tables in.
    let (rebuilt, ()) = tokio::join!(
        projections::rebuild(world.store.clone(), world.database.url(), |_| {}),
        async {
            for round in 40..120 {
                increment(round).await;
            }
        }
    );
    let rebuilt = rebuilt.expect("the rebuild succeeds");
    assert!(rebuilt.events as usize >= world.log().await.len() - 80);

    // The live projectors found their checkpoints moved and resumed from the rebuilt ones.
    let end = world.last_position().await;
    eventually(
        Duration::from_secs(30),
        "the projectors catch up",
        || async {
            let behind: i64 = sqlx::query_scalar(
                "SELECT $2 - count(*) FROM read_models.projection_checkpoints WHERE commit_position >= $1",
            )
            .bind(end.commit as i64)
            .bind(projections::READ_MODEL_NAMES.len() as i64)
            .fetch_one(&world.pool)
            .await
            .unwrap();
            holds(behind == 0, format!("{behind} behind {end:?}"))
        },
    )
    .await;
    stop.send(true).unwrap();
    models.stopped().await;

    let users_now = world.documents("read_models", "users").await;
    let total: u64 = users_now
        .values()
        .map(|user| user["credits"].as_u64().unwrap())
        .sum();
    assert_eq!(total, (1..=120).sum::<u64>(), "each increment applied once");
    project_to_end(&world, UsersReadModel, "clean").await;
    assert_eq!(users_now, world.documents("clean", "users").await);
    let leftovers: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'read_models_%'",
    )
    .fetch_all(&world.pool)
    .await
    .unwrap();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A users table made before user objects were stored as `json` (a `jsonb` column) is
/// converted in place when its projector starts, and its objects are shown exactly as freshly
/// projected ones; the next write of a user stores it anew.
#[tokio::test]
async fn a_users_table_of_jsonb_objects_is_converted_in_place_and_read_the_same() {
    let world = World::new().await;
    let alice = world.create_user("alice_jsonb").await;
    let bob = world.create_user("bob_jsonb").await;
    world
        .user(
            alice,
            UserCommand::ChangeCredits(CreditsChange::Increment(Credits::new(3))),
        )
        .await;
    project_to_end(&world, UsersReadModel, "fresh").await;
    project_to_end(&world, UsersReadModel, "migrated").await;
    sqlx::query(
        "ALTER TABLE migrated.users ALTER COLUMN document TYPE jsonb USING document::jsonb",
    )
    .execute(&world.pool)
    .await
    .unwrap();
    let column_type = |schema: &'static str| {
        sqlx::query_scalar::<_, String>(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
              WHERE attrelid = format('%I.users', $1::text)::regclass AND attname = 'document'",
        )
        .bind(schema)
        .fetch_one(&world.pool)
    };
    assert_eq!(column_type("migrated").await.unwrap(), "jsonb");

    world
        .user(
            bob,
            UserCommand::ChangeCredits(CreditsChange::Increment(Credits::new(5))),
        )
        .await;
    project_to_end(&world, UsersReadModel, "migrated").await;
    project_to_end(&world, UsersReadModel, "fresh").await;
    assert_eq!(column_type("migrated").await.unwrap(), "json");

    let shown = |schema: &'static str, id: UserId| {
        let pool = world.pool.clone();
        async move {
            let stored: String = sqlx::query_scalar(&format!(
                "SELECT document::text FROM {schema}.users WHERE id = $1"
            ))
            .bind(id.as_uuid())
            .fetch_one(&pool)
            .await
            .unwrap();
            let mut out = String::new();
            let tiers = events::values::SubscriptionTiers::default();
            projections::users::shown(&stored, &tiers, Utc::now(), &mut out).unwrap();
            (stored, serde_json::from_str::<Value>(&out).unwrap())
        }
    };
    for id in [alice, bob] {
        let (fresh_text, fresh) = shown("fresh", id).await;
        let (migrated_text, migrated) = shown("migrated", id).await;
        assert_eq!(migrated, fresh);
        assert_eq!(fresh["subscriptionTier"], "basic");
        // Alice's object still has jsonb's key order; Bob's was written again since.
        assert_eq!(migrated_text == fresh_text, id == bob, "{migrated_text}");
    }
    assert_eq!(shown("migrated", alice).await.1["credits"], 3);
}

/// The social read model applies a batch in rounds (the `k`-th event of each pair together):
/// one batch holding a pair's whole history, follows begun and ended again and again, ends
/// where applying the events one by one (a batch of one) does.
#[tokio::test]
async fn a_batch_holding_a_pairs_whole_history_ends_where_event_by_event_does() {
    use events::social::{Edge, SocialCommand as C};
    use projections::social::SocialReadModel;

    let world = World::new().await;
    let ada = world.create_user("ada_lovelace").await;
    let bob = world.create_user("bob_builder").await;
    let cyd = world.create_user("cyd_charisse").await;
    let edge = |source, target| Edge { source, target };
    let follow = |source, target, target_private| C::Follow {
        edge: edge(source, target),
        target_private,
    };
    for command in [
        follow(ada, bob, false),
        follow(cyd, bob, true),
        C::Unfollow(edge(ada, bob)),
        C::Block(edge(bob, ada)),
        follow(ada, cyd, false),
        C::Unblock(edge(bob, ada)),
        C::Accept(edge(cyd, bob)),
        follow(ada, bob, true),
        C::RemoveFollower(edge(ada, cyd)),
        C::Block(edge(cyd, ada)),
        follow(bob, ada, false),
    ] {
        world.social(command).await;
    }
    let rows = |schema: &'static str| {
        let pool = world.pool.clone();
        async move {
            let follows: Vec<(Uuid, Uuid, Uuid, bool)> = sqlx::query_as(&format!(
                "SELECT id, source, target, approved FROM {schema}.follows ORDER BY id"
            ))
            .fetch_all(&pool)
            .await
            .expect("the follows read");
            let blocks: Vec<(Uuid, Uuid)> = sqlx::query_as(&format!(
                "SELECT source, target FROM {schema}.blocks ORDER BY source, target"
            ))
            .fetch_all(&pool)
            .await
            .expect("the blocks read");
            (follows, blocks)
        }
    };
    for (schema, batch) in [("one_by_one", 1), ("one_batch", 500)] {
        project_to_end_in_batches(&world, SocialReadModel, schema, batch).await;
    }
    let (follows, blocks) = rows("one_by_one").await;
    let (ada, bob, cyd) = (ada.as_uuid(), bob.as_uuid(), cyd.as_uuid());
    let pairs: BTreeSet<(Uuid, Uuid, bool)> = follows
        .iter()
        .map(|(_, source, target, approved)| (*source, *target, *approved))
        .collect();
    assert_eq!(
        pairs,
        BTreeSet::from([(cyd, bob, true), (ada, bob, false), (bob, ada, true)]),
        "the follows left, event by event"
    );
    assert_eq!(blocks, vec![(cyd, ada)], "the blocks left, event by event");
    assert_eq!(
        rows("one_batch").await,
        (follows, blocks),
        "one batch ends where event by event does, ids and all"
    );
}
