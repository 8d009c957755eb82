//! Erasure (issue 17), black-box: who may erase; writes racing an erasure (none lands after
//! `UserErased`, none stores personal data in the clear); what the log shows afterwards.

use std::sync::Arc;
use std::time::Duration;

use event_store::sealed::Keyring;
use events::personal::{self, ERASED};
use events::store::{EventStore, NewEvent, RecordedEvent};
use serde_json::{json, Value};
use test_support::app::{spawn_app, spawn_app_with, test_settings, TestApp};
use tokio::sync::Mutex;

/// Creates `username` over HTTP; their id.
async fn create(app: &TestApp, token: &str, username: &str) -> String {
    let (status, body) = app
        .post(
            "/user/admin-api/create",
            token,
            &json!([{
                "username": username, "password": "a-good-password-1",
                "email": format!("{username}@example.com"),
                "firstName": "Race", "lastName": "Target",
            }]),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    user_id(app, username).await
}

/// `POST /user/admin-api/erase` of `target` with `token`; the status and the answer.
async fn erase(app: &TestApp, token: &str, target: Value) -> (u16, Value) {
    app.post("/user/admin-api/erase", token, &json!({ "target": target }))
        .await
}

async fn user_id(app: &TestApp, username: &str) -> String {
    let stream: String = sqlx::query_scalar(
        "SELECT stream_id FROM unique_claims WHERE kind = 'username' AND value = $1",
    )
    .bind(username)
    .fetch_one(app.store.pool())
    .await
    .expect("a user holds the username");
    stream.trim_start_matches("user-").to_owned()
}

#[tokio::test]
async fn only_a_super_admin_may_erase_by_default_and_only_on_the_admin_edge() {
    let app = spawn_app().await;
    let root = app.admin_token().await;
    let target = create(&app, &root, "erase_target").await;
    app.register_user("an_admin", "a-good-password-1", "admin")
        .await;
    let admin = app.user_token("an_admin", "a-good-password-1").await;
    let length = app.log_length().await;

    let (status, body) = erase(&app, &admin, json!(target)).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "InsufficientPrivileges");
    let client = app.client_token().await;
    let (status, _) = erase(&app, &client, json!(target)).await;
    assert_eq!(status, 401, "a client token is not an admin session");
    let (status, _) = app
        .post(
            "/user/client-api/erase",
            &client,
            &json!({ "target": target }),
        )
        .await;
    assert_eq!(status, 404, "there is no client edge route");
    let (status, body) = erase(&app, &root, json!("not-an-id")).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = erase(&app, &root, json!(uuid::Uuid::now_v7().to_string())).await;
    assert_eq!(status, 404, "nobody has this id");
    assert_eq!(app.log_length().await, length, "refusals change nothing");

    let (status, body) = erase(&app, &root, json!(target)).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = erase(&app, &root, json!(target)).await;
    assert_eq!(status, 404, "erased already: gone");
}

#[tokio::test]
async fn a_ranked_holder_of_the_scope_may_erase_when_configured() {
    let mut settings = test_settings();
    settings.erasure_super_admin_only = false;
    let app = spawn_app_with(settings).await;
    let root = app.admin_token().await;
    let target = create(&app, &root, "plain_user").await;
    app.register_user("an_admin", "a-good-password-1", "admin")
        .await;
    let admin = app.user_token("an_admin", "a-good-password-1").await;
    let (status, body) = erase(&app, &admin, json!(target)).await;
    assert_eq!(status, 200, "{body}");
    // An admin does not out-rank the super_admin.
    let root_id = user_id(&app, test_support::app::ADMIN_USERNAME).await;
    let (status, _) = erase(&app, &admin, json!(root_id)).await;
    assert_eq!(status, 401);
}

/// (bio sent, status) of every update, and the increments acknowledged.
type Seen = (Vec<(String, u16)>, usize);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_racing_an_erasure_never_land_after_it_nor_store_personal_data_in_the_clear() {
    let app = Arc::new(spawn_app().await);
    let token = app.admin_token().await;
    let id = create(&app, &token, "race_target").await;
    let stream = format!("user-{id}");
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let (app, token, id, seen) = (app.clone(), token.clone(), id.clone(), seen.clone());
            tokio::spawn(async move {
                for n in 0..200 {
                    let (status, bio) = if n % 2 == 0 {
                        let bio = format!("racingbio w{writer} n{n}");
                        let (status, _) = app
                            .patch(
                                "/user/admin-api/update",
                                &token,
                                &json!({ "target": id, "bio": bio }),
                            )
                            .await;
                        (status, Some(bio))
                    } else {
                        let (status, _) = app
                            .post(
                                "/user/admin-api/credits",
                                &token,
                                &json!({ "target": id, "type": "increment", "value": 1 }),
                            )
                            .await;
                        (status, None)
                    };
                    assert!(matches!(status, 200 | 404), "a write answered {status}");
                    let mut seen = seen.lock().await;
                    match bio {
                        Some(bio) => seen.0.push((bio, status)),
                        None if status == 200 => seen.1 += 1,
                        None => {}
                    }
                    if status == 404 {
                        return;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = erase(&app, &token, json!(id)).await;
    assert_eq!(status, 200, "{body}");
    // After the answer, every write is refused.
    let (status, _) = app
        .post(
            "/user/admin-api/credits",
            &token,
            &json!({ "target": id, "type": "increment", "value": 1 }),
        )
        .await;
    assert_eq!(status, 404);
    for writer in writers {
        writer.await.expect("a writer");
    }

    let stored = app.store.read_stream(&stream, 0).await.unwrap();
    let last = stored.last().expect("the stream");
    assert_eq!(
        last.event_type, "UserErased",
        "nothing lands after the erasure"
    );
    let (updates, increments) = &*seen.lock().await;
    let landed_increments = stored
        .iter()
        .filter(|e| e.event_type == "CreditsIncreased")
        .count();
    assert_eq!(
        landed_increments, *increments,
        "every acknowledged increment landed"
    );
    let acknowledged = updates.iter().filter(|(_, status)| *status == 200).count();
    let profile_updates = stored
        .iter()
        .filter(|e| e.event_type == "UserProfileUpdated")
        .count();
    assert_eq!(
        profile_updates, acknowledged,
        "every acknowledged update landed, no other"
    );
    assert!(
        acknowledged > 0 && *increments > 0,
        "writes landed before the erasure"
    );
    assert!(
        updates.iter().any(|(_, status)| *status == 404),
        "writes were refused after it"
    );
    // As stored: every personal field sealed; as read: erased.
    let text = serde_json::to_string(&stored.iter().map(|e| &e.data).collect::<Vec<_>>()).unwrap();
    assert!(!text.contains("racingbio"), "a bio is stored in the clear");
    for event in &stored {
        assert_eq!(
            personal::unsealed_fields(&stream, &event.data),
            Vec::<&str>::new(),
            "{}",
            event.event_type
        );
    }
    for event in app.stream(&stream).await {
        if let Some(bio) = event.data.get("bio") {
            assert_eq!(bio, &Value::String(ERASED.into()));
        }
    }
    // However many times the erasure was decided again, it freed the username and email.
    let claims: i64 = sqlx::query_scalar("SELECT count(*) FROM unique_claims WHERE stream_id = $1")
        .bind(&stream)
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    assert_eq!(claims, 0, "no claim is left to the erased person");
    create(&app, &token, "race_target").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sealing_a_persons_first_data_at_once_share_one_key() {
    let app = spawn_app().await;
    let owner = events::values::UserId::new();
    let stream = format!("user-{owner}");
    let sealers: Vec<_> = (0..8)
        .map(|n| {
            let (pool, stream) = (app.store.pool().clone(), stream.clone());
            tokio::spawn(async move {
                // A keyring of its own: another process's.
                let keyring = Keyring::prepare(pool).await.expect("the keys' table");
                let mut events = vec![NewEvent {
                    event_id: uuid::Uuid::now_v7(),
                    event_type: "UserProfileUpdated".into(),
                    data: json!({ "bio": format!("bio {n}") }),
                    metadata: json!({}),
                }];
                keyring.seal(&stream, &mut events).await.expect("sealed");
                events.remove(0).data
            })
        })
        .collect();
    let reader = Keyring::prepare(app.store.pool().clone()).await.unwrap();
    for (n, sealer) in sealers.into_iter().enumerate() {
        let data = sealer.await.expect("a sealer");
        let mut recorded = vec![RecordedEvent {
            stream: stream.clone(),
            revision: 0,
            position: events::store::Position::at(0),
            event_id: uuid::Uuid::now_v7(),
            event_type: "UserProfileUpdated".into(),
            data,
            metadata: json!({}),
            recorded_at: chrono::Utc::now(),
        }];
        reader.open(&mut recorded).await.unwrap();
        assert_eq!(
            recorded[0].data["bio"],
            format!("bio {n}"),
            "one key for all"
        );
    }
}

#[tokio::test]
async fn history_shows_an_erased_persons_fields_as_erased_and_verify_holds() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let id = create(&app, &token, "history_target").await;
    let (status, _) = app
        .patch(
            "/user/admin-api/update",
            &token,
            &json!({ "target": id, "firstName": "Beforeerasure" }),
        )
        .await;
    assert_eq!(status, 200);
    // A request of the person's own, whose kept answer is theirs to lose too.
    let own = app.user_token("history_target", "a-good-password-1").await;
    let root = user_id(&app, test_support::app::ADMIN_USERNAME).await;
    let answer = app
        .http
        .post(app.url("/user/follow"))
        .bearer_auth(&own)
        .header("Idempotency-Key", "own-follow-1")
        .json(&json!({ "target": root }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let answered = answer.text().await.unwrap();
    assert!(
        !answered.contains(&id),
        "an answer that does not name them: {answered}"
    );
    let kept = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM idempotency_keys WHERE split_part(caller, ':', 2) = $1",
        )
        .bind(&id)
        .fetch_one(app.store.pool())
        .await
        .unwrap()
    };
    assert_eq!(kept().await, 1);
    let (status, _) = erase(&app, &token, json!(id)).await;
    assert_eq!(status, 200);
    assert_eq!(kept().await, 0, "the person's kept answers are forgotten");
    let response = app
        .http
        .get(app.url(&format!("/user/admin-api/history?target={id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let history = response.text().await.unwrap();
    assert_eq!(status, 200, "{history}");
    assert!(!history.contains("Beforeerasure"), "{history}");
    assert!(!history.contains("history_target"), "{history}");
    assert!(history.contains(ERASED), "{history}");
    assert!(history.contains("UserErased"), "{history}");
    // Once every read model's projector has made its tables (they start with the app).
    test_support::eventually(Duration::from_secs(30), "verify holds", || async {
        let verified =
            projections::verify(app.log.clone(), &*app.store, app.database_url(), |_, _| {})
                .await
                .map_err(|error| error.to_string())?;
        if verified.is_clean() {
            Ok(())
        } else {
            Err(format!("{:?} {:?}", verified.broken, verified.differences))
        }
    })
    .await;
}
