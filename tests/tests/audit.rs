//! Audit (issue 6): history and point-in-time state over HTTP, and `verify` (hash chains and
//! read models against a rebuild) on a real PostgreSQL store altered by hand.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{json, Value};
use test_support::wait::{eventually, holds};
use test_support::{spawn_app, TestApp};

const PASSWORD: &str = "a-good-password-1";

fn new_user(username: &str) -> Value {
    json!([{
        "username": username,
        "password": PASSWORD,
        "email": format!("{username}@example.com"),
        "firstName": "Test",
        "lastName": "User",
    }])
}

/// Creates a user over HTTP; its id.
async fn create_user(app: &TestApp, token: &str, username: &str) -> String {
    let (status, body) = app
        .post("/user/admin-api/create", token, &new_user(username))
        .await;
    assert_eq!(status, 201, "{body}");
    user_stream(app, username)
        .await
        .trim_start_matches("user-")
        .to_owned()
}

/// The stream of the user holding `username` (its claim: the payloads hold it sealed).
async fn user_stream(app: &TestApp, username: &str) -> String {
    sqlx::query_scalar("SELECT stream_id FROM unique_claims WHERE kind = 'username' AND value = $1")
        .bind(username)
        .fetch_one(app.store.pool())
        .await
        .expect("the stream exists")
}

/// `GET path` with an optional consistency token; status and body.
async fn get(app: &TestApp, path: &str, token: &str, consistency: Option<&str>) -> (u16, Value) {
    let mut request = app.http.get(app.url(path)).bearer_auth(token);
    if let Some(consistency) = consistency {
        request = request.header("X-Consistency-Token", consistency);
    }
    let response = request.send().await.expect("the service answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A first name made of letters only, different for each `n`.
fn first_name(n: usize) -> String {
    let letters: String = n
        .to_string()
        .bytes()
        .map(|digit| (b'a' + (digit - b'0')) as char)
        .collect();
    format!("Ann{letters}")
}

#[tokio::test]
async fn the_state_at_each_of_200_events_is_the_state_after_that_event() {
    test_support::init_test_log();
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = create_user(&app, &admin, "ada_audited").await;

    // 198 writes of one event each; after each, the read model's user (read at the write's
    // consistency token) is what the point-in-time route must answer at that position.
    let mut expected: HashMap<String, Value> = HashMap::new();
    let (mut banned, mut restricted) = (false, false);
    for n in 0..198 {
        let (path, body) = match n % 6 {
            0 => (
                "credits",
                json!({ "target": id, "type": "increment", "value": n + 1 }),
            ),
            1 => (
                "update",
                json!({ "target": id, "firstName": first_name(n) }),
            ),
            2 => {
                banned = !banned;
                (
                    "ban",
                    json!({ "target": id, "state": banned, "reason": format!("audit reason {n}") }),
                )
            }
            3 => (
                "custom-data",
                json!({ "target": id, "customData": { "n": n } }),
            ),
            4 => {
                restricted = !restricted;
                ("restrict", json!({ "target": id, "state": restricted }))
            }
            _ => (
                "update",
                json!({ "target": id, "password": format!("password-number-{n}") }),
            ),
        };
        let method = match path {
            "update" => Method::PATCH,
            "custom-data" => Method::PUT,
            _ => Method::POST,
        };
        let (status, answer, token) = app
            .send(method, &format!("/user/admin-api/{path}"), &admin, &body)
            .await;
        assert_eq!(status, 200, "{path} {n}: {answer}");
        let token = token.expect("a consistency token");
        let (status, read) = get(
            &app,
            &format!("/user/admin-api/user-info?targets={id}"),
            &admin,
            Some(&token),
        )
        .await;
        assert_eq!(status, 200, "{read}");
        expected.insert(token, read["data"]["users"][0].clone());
    }

    let stream = app.stream(&format!("user-{id}")).await;
    assert_eq!(stream.len(), 200, "one event per write, two for the create");
    let mut compared = 0;
    for event in &stream {
        let position = event.position.to_string();
        let (status, answer) = get(
            &app,
            &format!("/user/admin-api/history?target={id}&at={position}"),
            &admin,
            None,
        )
        .await;
        assert_eq!(status, 200, "at {position}: {answer}");
        assert_eq!(answer["data"]["revision"], json!(event.revision));
        assert_eq!(answer["data"]["position"], json!(position));
        let user = &answer["data"]["user"];
        assert!(user.get("password").is_none() && user.get("passwordHash").is_none());
        if let Some(read) = expected.get(&position) {
            assert_eq!(user, read, "at revision {}", event.revision);
            compared += 1;
        }
        // The same moment named by its time.
        if event.revision % 10 == 5 {
            let at = event.metadata["occurredAt"].as_str().expect("a time");
            let (status, by_time) = get(
                &app,
                &format!("/user/admin-api/history?target={id}&at={at}"),
                &admin,
                None,
            )
            .await;
            assert_eq!(status, 200, "at {at}: {by_time}");
            assert_eq!(by_time["data"]["user"], *user, "at {at}");
            assert_eq!(by_time["data"]["revision"], json!(event.revision));
        }
    }
    assert_eq!(compared, 198, "every write");

    // Before the user existed.
    let before = stream[0].position.commit - 1;
    let (status, answer) = get(
        &app,
        &format!("/user/admin-api/history?target={id}&at={before}"),
        &admin,
        None,
    )
    .await;
    assert_eq!((status, answer["error"].clone()), (404, json!("NotFound")));
}

#[tokio::test]
async fn history_shows_who_did_what_in_pages_and_never_a_secret() {
    test_support::init_test_log();
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let client = app.client_token().await;
    let id = create_user(&app, &admin, "grace_audited").await;
    let (status, body) = app
        .patch(
            "/user/admin-api/update",
            &admin,
            &json!({ "target": id, "password": "another-password-2" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post(
            "/user/client-api/ban",
            &client,
            &json!({ "target": id, "state": true, "reason": "spamming the forum" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let admin_id = user_stream(&app, "root_admin")
        .await
        .trim_start_matches("user-")
        .to_owned();

    let history = format!("/user/admin-api/history?target={id}");
    let (status, first) = get(&app, &format!("{history}&limit=2"), &admin, None).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["ok"], json!(1));
    assert_eq!(first["data"]["next"], json!(2));
    let (status, second) = get(&app, &format!("{history}&limit=2&from=2"), &admin, None).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["data"]["next"], Value::Null);
    let events: Vec<Value> = [&first, &second]
        .iter()
        .flat_map(|page| {
            page["data"]["events"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        types,
        [
            "UserCreated",
            "UserPasswordSet",
            "UserPasswordSet",
            "UserBanned"
        ]
    );
    for (revision, event) in events.iter().enumerate() {
        assert_eq!(event["revision"], json!(revision));
        assert!(event["occurredAt"].is_string(), "{event}");
        assert!(event["correlationId"].is_string(), "{event}");
        assert_eq!(event["hash"].as_str().map(str::len), Some(64), "{event}");
    }
    assert_eq!(
        events[0]["actor"],
        json!({ "id": admin_id, "kind": "user" })
    );
    assert_eq!(events[0]["changes"]["username"], json!("grace_audited"));
    assert_eq!(events[3]["actor"]["kind"], json!("client"));
    assert_eq!(events[3]["changes"]["reason"], json!("spamming the forum"));
    for event in &events[1..3] {
        assert_eq!(event["changes"], json!({ "passwordHash": "[redacted]" }));
    }
    for page in [&first, &second] {
        assert!(!page.to_string().contains("$argon2"), "{page}");
    }
    let stored = app.stream(&format!("user-{id}")).await;
    assert!(
        stored[1].data.to_string().contains("$argon2"),
        "the hash is stored"
    );

    // The client edge answers the same history.
    let (status, on_client) = get(
        &app,
        &format!("/user/client-api/history?target={id}&limit=2"),
        &client,
        None,
    )
    .await;
    assert_eq!(status, 200, "{on_client}");
    assert_eq!(on_client["data"]["events"], first["data"]["events"]);

    // Bad input, unknown targets, wrong tokens, missing scopes.
    let before = app.log_length().await;
    for (query, path) in [
        ("", "target"),
        ("target=nope", "target"),
        (&format!("target={id}&at=yesterday") as &str, "at"),
        (&format!("target={id}&from=-1"), "from"),
    ] {
        let (status, answer) = get(
            &app,
            &format!("/user/admin-api/history?{query}"),
            &admin,
            None,
        )
        .await;
        assert_eq!(status, 400, "{query}: {answer}");
        assert_eq!(answer["error"], json!("ClientInputError"));
        assert_eq!(
            test_support::app::error_paths(&answer),
            [path],
            "{query}: {answer}"
        );
        assert_eq!(answer["additionalInfo"]["errors"][0]["location"], "query");
    }
    let unknown = uuid::Uuid::now_v7();
    let (status, answer) = get(
        &app,
        &format!("/user/admin-api/history?target={unknown}"),
        &admin,
        None,
    )
    .await;
    assert_eq!((status, answer["error"].clone()), (404, json!("NotFound")));
    app.register_user("plain_user", PASSWORD, "user").await;
    let plain = app.user_token("plain_user", PASSWORD).await;
    let (status, answer) = get(&app, &history, &plain, None).await;
    assert_eq!(
        (status, answer["error"].clone()),
        (401, json!("InsufficientPrivileges"))
    );
    assert_eq!(
        answer["additionalInfo"]["requiredScope"],
        json!("admin:profile:history:read")
    );
    let (status, answer) = get(
        &app,
        &format!("/user/client-api/history?target={id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(
        (status, answer["error"].clone()),
        (401, json!("Unauthorized"))
    );
    assert_eq!(
        app.log_length().await,
        before + 3,
        "only plain_user was written (created, password set) and signed in (a sign-in is a fact)"
    );
}

#[tokio::test]
async fn roles_and_applications_have_history_and_state_at_a_moment() {
    test_support::init_test_log();
    let app = spawn_app().await;
    let admin = app.admin_token().await;

    let (status, body, created) = app
        .send(
            Method::POST,
            "/roles/admin-api/create",
            &admin,
            &json!({ "id": "moderator", "displayName": "Moderator", "ranking": 10 }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .patch(
            "/roles/admin-api/update",
            &admin,
            &json!({ "id": "moderator", "displayName": "Head moderator" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let created = created.expect("a consistency token");
    let (status, then) = get(
        &app,
        &format!("/roles/admin-api/history?target=moderator&at={created}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{then}");
    assert_eq!(then["data"]["role"]["displayName"], json!("Moderator"));
    assert_eq!(then["data"]["role"]["deleted"], json!(false));
    let (status, now) = get(
        &app,
        &format!(
            "/roles/admin-api/history?target=moderator&at={}",
            u64::MAX >> 1
        ),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{now}");
    assert_eq!(now["data"]["role"]["displayName"], json!("Head moderator"));
    let (status, events) = get(
        &app,
        "/roles/admin-api/history?target=moderator",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{events}");
    assert_eq!(events["data"]["events"].as_array().map(Vec::len), Some(2));

    let (status, body) = app
        .post(
            "/client/admin-api/create",
            &admin,
            &json!({
                "id": "partner_app",
                "displayName": "Partner application",
                "role": "external_client",
                "grants": ["client_credentials"],
                "redirectUris": ["https://partner.example.com/callback"],
                "secret": "partner-secret-1",
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let application = body["data"]["client"]["_id"]
        .as_str()
        .expect("an _id")
        .to_owned();
    let (status, history) = get(
        &app,
        &format!("/client/admin-api/history?target={application}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{history}");
    let text = history.to_string();
    assert!(
        !text.contains("$argon2") && !text.contains("partner-secret-1"),
        "{text}"
    );
    let secret_events: Vec<&Value> = history["data"]["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"] == "ApplicationSecretSet")
        .collect();
    assert_eq!(secret_events.len(), 1, "{history}");
    assert!(secret_events[0]["changes"]
        .as_object()
        .expect("changes")
        .values()
        .all(|value| value == "[redacted]"));
    let (status, state) = get(
        &app,
        &format!(
            "/client/admin-api/history?target={application}&at={}",
            u64::MAX >> 1
        ),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["data"]["client"]["id"], json!("partner_app"));
    assert!(!state.to_string().contains("$argon2"));

    // Both need their scopes.
    app.register_user("plain_user", PASSWORD, "user").await;
    let plain = app.user_token("plain_user", PASSWORD).await;
    for path in [
        "/roles/admin-api/history?target=moderator".to_owned(),
        format!("/client/admin-api/history?target={application}"),
    ] {
        let (status, answer) = get(&app, &path, &plain, None).await;
        assert_eq!(status, 401, "{path}: {answer}");
        assert_eq!(answer["error"], json!("InsufficientPrivileges"));
    }
}

/// Runs `verify` on the test's database, once every event written is readable.
async fn verify(app: &TestApp) -> projections::verify::Verification {
    test_support::app::whole_log(&app.store).await;
    projections::verify(app.log.clone(), &*app.store, app.database_url(), |_, _| {})
        .await
        .expect("verify runs")
}

#[tokio::test]
async fn verify_finds_a_read_model_row_altered_by_hand() {
    test_support::init_test_log();
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = create_user(&app, &admin, "alan_verified").await;
    let (status, body) = app
        .post(
            "/user/admin-api/credits",
            &admin,
            &json!({ "target": id, "type": "increment", "value": 5 }),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let clean = verify(&app).await;
    assert!(
        clean.is_clean(),
        "{:?} {:?}",
        clean.broken,
        clean.differences
    );
    assert_eq!(clean.events, app.log_length().await as u64);
    assert_eq!(clean.chained, clean.events);
    assert!(clean.rows > 0);

    // Once the read model has the credits, change them behind its back.
    let (status, _) = get(
        &app,
        &format!("/user/admin-api/user-info?targets={id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200);
    eventually(
        std::time::Duration::from_secs(10),
        "the read model has the credits, to alter",
        || async {
            let altered = sqlx::query(
                "UPDATE read_models.users SET document = jsonb_set(document::jsonb, '{credits}', '12345')::json
                  WHERE id = $1::uuid AND document->>'credits' = '5'",
            )
            .bind(&id)
            .execute(app.store.pool())
            .await
            .expect("the row updates")
            .rows_affected();
            holds(altered == 1, format!("{altered} rows altered"))
        },
    )
    .await;

    let found = verify(&app).await;
    assert!(!found.is_clean());
    assert!(found.broken.is_empty(), "{:?}", found.broken);
    let users: Vec<String> = found.differences.iter().map(|d| d.to_string()).collect();
    assert_eq!(found.differences.len(), 2, "{users:#?}");
    assert!(found.differences.iter().all(|d| d.table() == "users"));
    assert!(users
        .iter()
        .any(|d| d.contains("only in the live") && d.contains("12345")));
    assert!(users
        .iter()
        .any(|d| d.contains("only in the rebuild") && !d.contains("12345")));
    // The scratch schema is gone.
    let schemas: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'read_models_verify_%'",
    )
    .fetch_one(app.store.pool())
    .await
    .expect("counted");
    assert_eq!(schemas, 0);
}

#[tokio::test]
async fn verify_finds_an_event_altered_by_hand_and_tells_old_events_from_tampered_ones() {
    test_support::init_test_log();
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let altered = create_user(&app, &admin, "edsger_altered").await;
    let legacy = create_user(&app, &admin, "barbara_legacy").await;
    for target in [&altered, &legacy] {
        let (status, body) = app
            .post(
                "/user/admin-api/credits",
                &admin,
                &json!({ "target": target, "type": "increment", "value": 5 }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    assert!(verify(&app).await.is_clean());

    // Events from before the hash chain: no hash at all. Unchained, not tampered; and the
    // next write chains on after them.
    sqlx::query("UPDATE events SET metadata = metadata - 'hash' WHERE stream_id = $1")
        .bind(format!("user-{legacy}"))
        .execute(app.store.pool())
        .await
        .expect("hashes removed");
    let (status, body) = app
        .post(
            "/user/admin-api/credits",
            &admin,
            &json!({ "target": legacy, "type": "increment", "value": 1 }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let old = verify(&app).await;
    assert!(old.broken.is_empty(), "{:?}", old.broken);
    assert_eq!(old.unchained, 3);

    // An altered payload breaks the chain at that event.
    let changed = sqlx::query(
        "UPDATE events SET data = jsonb_set(data, '{amount}', '1000')
          WHERE stream_id = $1 AND event_type = 'CreditsIncreased'",
    )
    .bind(format!("user-{altered}"))
    .execute(app.store.pool())
    .await
    .expect("the event updates");
    assert_eq!(changed.rows_affected(), 1);
    let found = verify(&app).await;
    assert!(!found.is_clean());
    assert_eq!(found.broken.len(), 1, "{:?}", found.broken);
    assert_eq!(found.broken[0].stream, format!("user-{altered}"));
    assert_eq!(found.broken[0].revision, 2);
    // So does a forged hash on an otherwise untouched event.
    sqlx::query(
        "UPDATE events SET metadata = jsonb_set(metadata, '{hash}', to_jsonb(repeat('0', 64)))
          WHERE stream_id = $1 AND revision = 0",
    )
    .bind(format!("user-{altered}"))
    .execute(app.store.pool())
    .await
    .expect("the event updates");
    let forged = verify(&app).await;
    assert!(
        forged
            .broken
            .iter()
            .any(|b| b.stream == format!("user-{altered}") && b.revision == 0),
        "{:?}",
        forged.broken
    );
}
