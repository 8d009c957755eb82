//! The social read routes (API.md §3: block-status, follow-status, user-followers/followers,
//! user-following/following), client edge only: answer shapes and the answers for people who
//! follow and block nobody, session scopes, delegated tokens refused, query validation,
//! unknown users, and, with rows written straight into the read model's tables (see
//! `followed`: the rows are set up exactly, times and ids included), what the routes make of
//! follows and blocks (approved only for follow-status, keyset pages that skip and repeat
//! nothing). The writes that fill these tables are tested in `social_writes.rs` and
//! `social_privacy.rs`.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use events::values::UserId;
use serde_json::{json, Value};
use test_support::wait::{eventually, holds};
use test_support::{spawn_app, TestApp};
use uuid::Uuid;

const PASSWORD: &str = "a-good-password-1";

async fn get(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    app.call(reqwest::Method::GET, path, token, None).await
}

/// Users created through the domain, once the users read model (and the social tables) hold
/// them.
async fn users(app: &TestApp, names: &[&str]) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for name in names {
        let id: UserId = app.register_user(name, PASSWORD, "user").await;
        ids.push(id.as_uuid());
    }
    eventually(
        Duration::from_secs(10),
        "the read models hold the users",
        || async {
            let tables_ready: bool = sqlx::query_scalar(
                "SELECT to_regclass('read_models.users') IS NOT NULL
                    AND to_regclass('read_models.follows') IS NOT NULL
                    AND to_regclass('read_models.blocks') IS NOT NULL",
            )
            .fetch_one(app.store.pool())
            .await
            .expect("the catalogue answers");
            if !tables_ready {
                return Err("the read models' tables are not all there yet".to_owned());
            }
            let known: i64 =
                sqlx::query_scalar("SELECT count(*) FROM read_models.users WHERE id = ANY($1)")
                    .bind(&ids)
                    .fetch_one(app.store.pool())
                    .await
                    .expect("the users read model answers");
            holds(
                known as usize == ids.len(),
                format!("{known} of {} users", ids.len()),
            )
        },
    )
    .await;
    ids
}

// Rows of the social read model, written by hand so that their times and ids are exactly
// known: each row is one the projection writes for the event named, with the same columns and
// the same `ON CONFLICT`; the follow's `id` is a UUIDv7 made at the event's time, which is
// `created_at`. The commands that write them through the log are tested in `social_writes.rs`.

/// A moment in the past, the time of the social events these tests stand in for.
fn event_time(seconds_after: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
        + chrono::Duration::seconds(seconds_after.into())
}

/// The follow's id, as the follow command makes it at `at`: a UUIDv7 of that time.
fn follow_id(at: DateTime<Utc>) -> Uuid {
    Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        at.timestamp() as u64,
        at.timestamp_subsec_nanos(),
    ))
}

/// The row of "`source` followed `target`" (`approved`) or "`source` asked to follow `target`"
/// (a private user: not approved), at `at`.
async fn followed(
    app: &TestApp,
    source: Uuid,
    target: Uuid,
    approved: bool,
    at: DateTime<Utc>,
) -> Uuid {
    let id = follow_id(at);
    let inserted = sqlx::query(
        "INSERT INTO read_models.follows (id, source, target, approved, created_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (source, target) DO NOTHING",
    )
    .bind(id)
    .bind(source)
    .bind(target)
    .bind(approved)
    .bind(at)
    .execute(app.store.pool())
    .await
    .expect("the follow is written")
    .rows_affected();
    assert_eq!(
        inserted, 1,
        "a follow of {source} to {target} was there already"
    );
    id
}

/// The row of "`source` blocked `target`", at `at`.
async fn blocked(app: &TestApp, source: Uuid, target: Uuid, at: DateTime<Utc>) {
    let inserted = sqlx::query(
        "INSERT INTO read_models.blocks (source, target, created_at) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(source)
    .bind(target)
    .bind(at)
    .execute(app.store.pool())
    .await
    .expect("the block is written")
    .rows_affected();
    assert_eq!(inserted, 1, "{source} blocked {target} already");
}

fn status_path(route: &str, source: Uuid, target: Uuid) -> String {
    format!("/user/client-api/{route}?source={source}&target={target}")
}

fn ids_of(body: &Value) -> Vec<String> {
    body["data"]["records"]
        .as_array()
        .unwrap_or_else(|| panic!("records: {body}"))
        .iter()
        .map(|record| record["_id"].as_str().expect("an _id").to_owned())
        .collect()
}

/// An application whose scope is `scope`, and a client_credentials token of it.
async fn client_with_scope(app: &TestApp, id: &str, scope: &[&str]) -> String {
    let admin = app.admin_token().await;
    let (status, body) = app
        .post(
            "/client/admin-api/create",
            &admin,
            &json!({
                "id": id,
                "displayName": "Application of limited scope",
                "role": "external_client",
                "grants": ["client_credentials"],
                "secret": "limited-secret-1",
                "scope": scope,
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", "limited-secret-1"),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().expect("a token").to_owned()
}

#[tokio::test]
async fn today_nobody_blocks_or_follows_anybody() {
    let app = spawn_app().await;
    let client = app.client_token().await;
    let ids = users(&app, &["alice_social", "bobby_social"]).await;
    let (alice, bobby) = (ids[0], ids[1]);

    let (status, body) = get(&app, &status_path("block-status", alice, bobby), &client).await;
    assert_eq!(
        (status, body),
        (200, json!({"ok": 1, "data": {"blocked": false}}))
    );
    let (status, body) = get(&app, &status_path("follow-status", alice, bobby), &client).await;
    assert_eq!(
        (status, body),
        (200, json!({"ok": 1, "data": {"following": false}}))
    );
    for route in ["user-followers", "followers", "user-following", "following"] {
        let (status, body) = get(
            &app,
            &format!("/user/client-api/{route}?target={alice}"),
            &client,
        )
        .await;
        assert_eq!(
            (status, body),
            (200, json!({"ok": 1, "data": {"records": []}})),
            "{route}"
        );
    }
}

#[tokio::test]
async fn the_routes_read_follows_and_blocks_from_the_read_model() {
    let app = spawn_app().await;
    let client = app.client_token().await;
    let ids = users(
        &app,
        &["target_user", "first_fan", "second_fan", "third_fan"],
    )
    .await;
    let (target, fans) = (ids[0], &ids[1..]);

    // Blocks: one way only.
    blocked(&app, target, fans[0], event_time(0)).await;
    let blocked = |source, target| status_path("block-status", source, target);
    let (_, body) = get(&app, &blocked(target, fans[0]), &client).await;
    assert_eq!(body["data"]["blocked"], true, "{body}");
    let (_, body) = get(&app, &blocked(fans[0], target), &client).await;
    assert_eq!(body["data"]["blocked"], false, "{body}");

    // Follows, a second apart: the first two fans approved, the third a pending request (as
    // the projection will write a request to a user who was private then).
    let mut follow_ids = Vec::new();
    for (index, fan) in fans.iter().enumerate() {
        let at = event_time(1 + index as u32);
        follow_ids.push(followed(&app, *fan, target, index < 2, at).await);
    }
    let follows = |source, target| status_path("follow-status", source, target);
    let (_, body) = get(&app, &follows(fans[0], target), &client).await;
    assert_eq!(body["data"]["following"], true, "{body}");
    let (_, body) = get(&app, &follows(fans[2], target), &client).await;
    assert_eq!(body["data"]["following"], false, "pending: {body}");
    let (_, body) = get(&app, &follows(target, fans[0]), &client).await;
    assert_eq!(body["data"]["following"], false, "the other way: {body}");

    // Followers, one per page: each page starts after the last `_id` of the previous one.
    let mut seen = Vec::new();
    let mut offset = String::new();
    loop {
        let (status, body) = get(
            &app,
            &format!("/user/client-api/followers?target={target}&limit=1&offset={offset}"),
            &client,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let page = ids_of(&body);
        if page.is_empty() {
            break;
        }
        assert_eq!(page.len(), 1, "{body}");
        let record = &body["data"]["records"][0];
        let index = seen.len();
        assert_eq!(record["approved"], index < 2, "{record}");
        assert_eq!(
            record["createdAt"],
            format!("2026-01-02T03:04:0{}.000Z", 6 + index),
            "{record}"
        );
        assert_eq!(record["source"]["_id"], fans[index].to_string(), "{record}");
        assert!(record["source"]["username"].is_string(), "{record}");
        assert!(record["source"].get("password").is_none(), "{record}");
        assert!(record.get("target").is_none(), "{record}");
        offset = page[0].clone();
        seen.push(offset.clone());
        assert!(seen.len() <= 3, "paging never ends: {seen:?}");
    }
    let expected: Vec<String> = follow_ids.iter().map(Uuid::to_string).collect();
    assert_eq!(seen, expected);

    // The alias and the default limit answer the whole list in one page.
    let (_, body) = get(
        &app,
        &format!("/user/client-api/user-followers?target={target}&limit=junk"),
        &client,
    )
    .await;
    assert_eq!(ids_of(&body), expected);

    // Following: each fan follows the target, which shows as `target`.
    for route in ["following", "user-following"] {
        let (status, body) = get(
            &app,
            &format!("/user/client-api/{route}?target={}", fans[2]),
            &client,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let records = body["data"]["records"].as_array().expect("records");
        assert_eq!(records.len(), 1, "{body}");
        assert_eq!(records[0]["_id"], follow_ids[2].to_string());
        assert_eq!(records[0]["approved"], false);
        assert_eq!(records[0]["target"]["_id"], target.to_string());
        assert!(records[0].get("source").is_none(), "{body}");
    }
    let (_, body) = get(
        &app,
        &format!("/user/client-api/following?target={target}"),
        &client,
    )
    .await;
    assert_eq!(ids_of(&body), Vec::<String>::new());
}

#[tokio::test]
async fn the_routes_take_client_tokens_with_their_session_scope() {
    let app = spawn_app().await;
    let ids = users(&app, &["scoped_one", "scoped_two"]).await;
    let (one, two) = (ids[0], ids[1]);
    let routes = [
        status_path("block-status", one, two),
        status_path("follow-status", one, two),
        format!("/user/client-api/user-followers?target={one}"),
        format!("/user/client-api/followers?target={one}"),
        format!("/user/client-api/user-following?target={one}"),
        format!("/user/client-api/following?target={one}"),
    ];

    // A delegated token, even the super_admin's, is refused on the client edge.
    let admin = app.admin_token().await;
    for route in &routes {
        let (status, body) = get(&app, route, &admin).await;
        assert_eq!(status, 401, "{route}: {body}");
        assert_eq!(body["error"], "Unauthorized", "{route}: {body}");
    }

    // An application allowed to read follows only.
    let follows_only =
        client_with_scope(&app, "follows_reader", &["client:social:follow:read"]).await;
    let (status, body) = get(&app, &routes[0], &follows_only).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "InsufficientPrivileges", "{body}");
    assert_eq!(
        body["additionalInfo"]["requiredScope"],
        "client:social:block:read"
    );
    for route in &routes[1..] {
        let (status, body) = get(&app, route, &follows_only).await;
        assert_eq!(status, 200, "{route}: {body}");
    }

    // An application without any social scope.
    let profile_only = client_with_scope(&app, "profile_reader", &["client:profile:read"]).await;
    for route in &routes {
        let (status, body) = get(&app, route, &profile_only).await;
        assert_eq!(status, 401, "{route}: {body}");
        assert_eq!(body["error"], "InsufficientPrivileges", "{route}: {body}");
    }

    // The internal client, with a token asked for a narrower scope: the token decides too.
    let (status, body) = app
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", test_support::app::CLIENT_ID),
            ("client_secret", test_support::app::CLIENT_SECRET),
            ("scope", "client:social:block:read"),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    let narrow = body["access_token"].as_str().expect("a token");
    assert_eq!(get(&app, &routes[0], narrow).await.0, 200);
    assert_eq!(get(&app, &routes[1], narrow).await.0, 401);

    // The admin edge does not serve these routes.
    let (status, body) = get(
        &app,
        &format!("/user/admin-api/followers?target={one}"),
        &admin,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "NotFound", "{body}");
}

#[tokio::test]
async fn invalid_queries_are_refused_with_every_field_named() {
    let app = spawn_app().await;
    let client = app.client_token().await;
    let ids = users(&app, &["valid_user"]).await;
    let known = ids[0];

    for route in ["block-status", "follow-status"] {
        let (status, body) = get(
            &app,
            &format!("/user/client-api/{route}?source=nope"),
            &client,
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "ClientInputError", "{body}");
        assert_eq!(
            body["additionalInfo"]["errors"],
            json!([
                {"type": "field", "value": "nope", "msg": "is not a valid id", "path": "source", "location": "query"},
                {"type": "field", "value": null, "msg": "is required", "path": "target", "location": "query"},
            ]),
            "{route}"
        );
    }
    for route in ["user-followers", "followers", "user-following", "following"] {
        let (status, body) = get(&app, &format!("/user/client-api/{route}"), &client).await;
        assert_eq!(status, 400, "{route}: {body}");
        assert_eq!(test_support::app::error_paths(&body), ["target"]);
        let (status, body) = get(
            &app,
            &format!("/user/client-api/{route}?target=123&offset=x&limit=abc"),
            &client,
        )
        .await;
        assert_eq!(status, 400, "{route}: {body}");
        assert_eq!(test_support::app::error_paths(&body), ["target", "offset"]);
        assert!(body["additionalInfo"]["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .all(|error| error["location"] == "query"));
        // A junk limit is the default, not an error.
        let (status, body) = get(
            &app,
            &format!("/user/client-api/{route}?target={known}&limit=abc"),
            &client,
        )
        .await;
        assert_eq!(status, 200, "{route}: {body}");
    }
}

#[tokio::test]
async fn unknown_users_are_not_found() {
    let app = spawn_app().await;
    let client = app.client_token().await;
    let ids = users(&app, &["known_user"]).await;
    let (known, unknown) = (ids[0], Uuid::now_v7());
    let paths = [
        status_path("block-status", known, unknown),
        status_path("block-status", unknown, known),
        status_path("follow-status", known, unknown),
        status_path("follow-status", unknown, known),
        format!("/user/client-api/followers?target={unknown}"),
        format!("/user/client-api/user-followers?target={unknown}"),
        format!("/user/client-api/following?target={unknown}"),
        format!("/user/client-api/user-following?target={unknown}"),
    ];
    for path in &paths {
        let (status, body) = get(&app, path, &client).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"], "NotFound", "{path}: {body}");
    }
    // The same user on both ends is known.
    let (status, body) = get(&app, &status_path("follow-status", known, known), &client).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_consistency_token_waits_for_the_users_and_the_social_read_models() {
    let app = spawn_app().await;
    let client = app.client_token().await;
    let admin = app.admin_token().await;
    let ids = users(&app, &["credited_user"]).await;
    let (status, body, consistency) = app
        .send(
            reqwest::Method::POST,
            "/user/admin-api/credits",
            &admin,
            &json!({"target": ids[0], "type": "increment", "value": 1}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let consistency = consistency.expect("a consistency token");
    for path in [
        format!("/user/client-api/followers?target={}", ids[0]),
        status_path("block-status", ids[0], ids[0]),
    ] {
        let response = app
            .http
            .get(app.url(&path))
            .bearer_auth(&client)
            .header("X-Consistency-Token", &consistency)
            .send()
            .await
            .expect("the service answers");
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
}
