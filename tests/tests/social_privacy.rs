//! Private accounts and follow requests (issue 16): `POST /user/private`, a follow of a private
//! account as a request, `GET /user/follow-requests`, `PATCH /user/follow-request`,
//! `DELETE /user/follow-entry`, going public accepting every waiting request (also those that
//! race the change), and the `USERLEDGER_CAN_USE_FOLLOW_APIS` switch.

use std::time::Duration;

use events::social::{Follow, Pair, Social};
use events::values::UserId;
use events::Aggregate;
use serde_json::{json, Value};
use test_support::wait::{eventually, holds};
use test_support::{spawn_app, spawn_app_with, test_settings, TestApp};

const PASSWORD: &str = "a-good-password-1";

async fn person(app: &TestApp, name: &str) -> (UserId, String) {
    let id = app.register_user(name, PASSWORD, "user").await;
    (id, app.user_token(name, PASSWORD).await)
}

async fn follow(app: &TestApp, token: &str, target: UserId) -> (u16, Value) {
    app.post(
        "/user/follow",
        token,
        &json!({ "target": target.to_string() }),
    )
    .await
}

async fn block(app: &TestApp, token: &str, target: UserId) -> u16 {
    let body = json!({ "target": target.to_string() });
    app.post("/user/block", token, &body).await.0
}

async fn private(app: &TestApp, token: &str, state: bool) -> (u16, Value) {
    app.post("/user/private", token, &json!({ "state": state }))
        .await
}

async fn get(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    app.call(reqwest::Method::GET, path, token, None).await
}

/// The follow requests waiting on the owner of `token`, once there are `count` of them: each
/// request's `_id` and its requester's.
async fn requests(app: &TestApp, token: &str, count: usize) -> Vec<(String, String)> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = get(app, "/user/follow-requests", token).await;
        let records = body["data"]["records"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let shaped = records.iter().all(|r| {
            r["approved"] == false && r["createdAt"].is_string() && r["updatedAt"].is_string()
        });
        if status == 200 && records.len() == count && shaped {
            return records
                .iter()
                .map(|r| {
                    let id = r["_id"].as_str().unwrap_or_default().to_owned();
                    (
                        id,
                        r["source"]["_id"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{count} follow requests: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What `/user/follow-status/{target}` says to the owner of `token`, once it says `expected`.
async fn status_is(app: &TestApp, token: &str, target: UserId, expected: Value) {
    let path = format!("/user/follow-status/{target}");
    eventually(Duration::from_secs(10), &path, || async {
        let answer = get(app, &path, token).await;
        holds(
            answer.0 == 200 && answer.1["data"] == expected,
            format!("{answer:?}"),
        )
    })
    .await;
}

/// A user's `followerCount`, once the users read model shows `expected`.
async fn followers_are(app: &TestApp, token: &str, expected: u64) {
    eventually(Duration::from_secs(10), "followerCount", || async {
        let (status, body) = get(app, "/user/me", token).await;
        holds(
            status == 200 && body["data"]["user"]["followerCount"] == expected,
            format!("{status} {body}"),
        )
    })
    .await;
}

#[tokio::test]
async fn a_private_accounts_follows_are_requests_it_accepts_refuses_or_ends() {
    let app = spawn_app().await;
    let (ann, ann_token) = person(&app, "ann_private").await;
    let (bob, bob_token) = person(&app, "bob_private").await;
    let (_, carol_token) = person(&app, "carol_private").await;
    let (_, eve_token) = person(&app, "eve_private").await;

    assert_eq!(
        private(&app, &ann_token, true).await,
        (200, json!({"ok": 1}))
    );
    eventually(Duration::from_secs(10), "isPrivate", || async {
        let (_, body) = get(&app, "/user/me", &ann_token).await;
        holds(body["data"]["user"]["isPrivate"] == true, body.to_string())
    })
    .await;
    let requested = (200, json!({"ok": 1, "data": {"status": "requested"}}));
    assert_eq!(follow(&app, &bob_token, ann).await, requested);
    assert_eq!(
        follow(&app, &bob_token, ann).await,
        (200, json!({"ok": 1, "data": {"status": "duplicate"}}))
    );
    status_is(
        &app,
        &bob_token,
        ann,
        json!({"following": false, "requested": true}),
    )
    .await;
    // A private account's lists are closed to a requester.
    let (status, body) = get(&app, &format!("/user/{ann}/followers"), &bob_token).await;
    assert_eq!((status, &body["error"]), (403, &json!("Forbidden")));

    assert_eq!(follow(&app, &carol_token, ann).await, requested);
    let waiting = requests(&app, &ann_token, 2).await;
    assert_eq!(waiting[0].1, bob.to_string(), "oldest first");
    let (bob_request, carol_request) = (waiting[0].0.clone(), waiting[1].0.clone());
    followers_are(&app, &ann_token, 0).await;

    // Only the followed accepts, and only requests to them.
    let accept = |token: &str, request: &str| {
        let body = json!({ "request": request });
        let token = token.to_owned();
        let app = &app;
        async move { app.patch("/user/follow-request", &token, &body).await }
    };
    let (status, _) = accept(&bob_token, &bob_request).await;
    assert_eq!(status, 404, "a request to someone else");
    let (status, _) = accept(&ann_token, &UserId::new().to_string()).await;
    assert_eq!(status, 404, "no such request");
    let (status, body) = accept(&ann_token, "not-an-id").await;
    assert_eq!((status, &body["error"]), (400, &json!("ClientInputError")));
    assert_eq!(
        accept(&ann_token, &bob_request).await,
        (200, json!({"ok": 1}))
    );
    status_is(&app, &bob_token, ann, json!({"following": true})).await;
    followers_are(&app, &ann_token, 1).await;
    assert_eq!(
        accept(&ann_token, &bob_request).await,
        (200, json!({"ok": 1})),
        "accepting again changes nothing"
    );
    let (status, body) = get(&app, &format!("/user/{ann}/followers"), &bob_token).await;
    assert_eq!(status, 200, "a follower sees the list: {body}");

    // An entry is ended by either of its two people, by nobody else.
    let end = |token: &str, entry: &str| {
        let body = json!({ "entry": entry });
        let token = token.to_owned();
        let app = &app;
        async move { app.delete("/user/follow-entry", &token, &body).await }
    };
    let (status, body) = end(&eve_token, &bob_request).await;
    assert_eq!((status, &body["error"]), (401, &json!("Unauthorized")));
    assert_eq!(
        end(&carol_token, &carol_request).await,
        (200, json!({"ok": 1})),
        "withdrawn"
    );
    requests(&app, &ann_token, 0).await;
    assert_eq!(
        end(&ann_token, &bob_request).await,
        (200, json!({"ok": 1})),
        "removed"
    );
    status_is(&app, &bob_token, ann, json!({"following": false})).await;
    followers_are(&app, &ann_token, 0).await;
    let (status, _) = end(&ann_token, &bob_request).await;
    assert_eq!(status, 404, "an entry that is over");

    // A refused request can be made again, and refused by its followed.
    assert_eq!(follow(&app, &carol_token, ann).await, requested);
    let waiting = requests(&app, &ann_token, 1).await;
    assert_eq!(
        end(&ann_token, &waiting[0].0).await,
        (200, json!({"ok": 1})),
        "refused"
    );
    requests(&app, &ann_token, 0).await;
}

#[tokio::test]
async fn going_public_accepts_every_waiting_request() {
    let app = spawn_app().await;
    let (star, star_token) = person(&app, "star_public").await;
    assert_eq!(private(&app, &star_token, true).await.0, 200);
    let mut fans = Vec::new();
    for i in 0..5 {
        let (fan, token) = person(&app, &format!("fan_public{i}")).await;
        assert_eq!(
            follow(&app, &token, star).await.1["data"]["status"],
            "requested"
        );
        fans.push((fan, token));
    }
    requests(&app, &star_token, 5).await;
    assert_eq!(
        private(&app, &star_token, false).await,
        (200, json!({"ok": 1, "data": {"acceptedCount": 5}}))
    );
    for (_, token) in &fans {
        status_is(&app, token, star, json!({"following": true})).await;
    }
    followers_are(&app, &star_token, 5).await;
    assert_eq!(
        private(&app, &star_token, false).await,
        (200, json!({"ok": 1, "data": {"acceptedCount": 0}})),
        "public already, nothing waits"
    );
    let (_, late_token) = person(&app, "late_public").await;
    assert_eq!(
        follow(&app, &late_token, star).await.1["data"]["status"],
        "following"
    );
}

/// Twenty requests sent while the account goes public: at rest, none waits, in the log or in
/// the read model, and every requester follows.
#[tokio::test]
async fn requests_that_race_a_change_to_public_are_accepted_too() {
    let app = spawn_app().await;
    let (star, star_token) = person(&app, "star_racing").await;
    assert_eq!(private(&app, &star_token, true).await.0, 200);
    let mut fans = Vec::new();
    for i in 0..20 {
        fans.push(person(&app, &format!("fan_racing{i}")).await);
    }
    let requests = fans.iter().map(|(_, token)| {
        let app = &app;
        async move {
            let (status, body) = follow(app, token, star).await;
            assert_eq!(status, 200, "{body}");
        }
    });
    let going_public = async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let (status, body) = private(&app, &star_token, false).await;
        assert_eq!(status, 200, "{body}");
    };
    tokio::join!(futures::future::join_all(requests), going_public);

    for (fan, _) in &fans {
        let stream = Social::stream_name(&Pair::of(star, *fan).expect("two users"));
        let relation = events::load::<Social>(&app.stream(&stream).await)
            .expect("the relation loads")
            .state;
        assert_eq!(
            relation.follows.get(fan),
            Some(&Follow::Accepted),
            "{fan} follows in the log"
        );
    }
    followers_are(&app, &star_token, 20).await;
    // The social read model follows the log on its own: once it has caught up, nothing waits.
    eventually(Duration::from_secs(10), "no request waits", || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM read_models.follows WHERE target = $1 AND NOT approved",
        )
        .bind(star.as_uuid())
        .fetch_one(app.store.pool())
        .await
        .expect("the read model answers");
        holds(waiting == 0, format!("{waiting} requests wait"))
    })
    .await;
}

#[tokio::test]
async fn bad_input_is_refused_and_appends_nothing() {
    let app = spawn_app().await;
    let (_, ann_token) = person(&app, "ann_bad_social").await;
    let before = app.log_length().await;
    for body in [json!({}), json!({"state": "yes"}), json!({"state": null})] {
        let (status, answer) = app.post("/user/private", &ann_token, &body).await;
        assert_eq!(
            (status, &answer["error"]),
            (400, &json!("ClientInputError")),
            "{body}"
        );
    }
    for body in [json!({}), json!({"request": 5})] {
        let (status, answer) = app.patch("/user/follow-request", &ann_token, &body).await;
        assert_eq!(
            (status, &answer["error"]),
            (400, &json!("ClientInputError")),
            "{body}"
        );
    }
    let (status, answer) = app
        .delete("/user/follow-entry", &ann_token, &json!({"entry": "x"}))
        .await;
    assert_eq!(
        (status, &answer["error"]),
        (400, &json!("ClientInputError"))
    );
    let (status, answer) = get(&app, "/user/follow-requests?offset=yesterday", &ann_token).await;
    assert_eq!(
        (status, &answer["error"]),
        (400, &json!("ClientInputError"))
    );
    // The scope: a client's token is not a person's.
    let client = app.client_token().await;
    let (status, _) = app
        .post("/user/private", &client, &json!({"state": true}))
        .await;
    assert!(status == 401 || status == 403, "{status}");
    assert_eq!(app.log_length().await, before);
}

#[tokio::test]
async fn the_follow_routes_can_be_turned_off_and_blocking_and_privacy_stay() {
    let mut settings = test_settings();
    settings.edge.follow_apis = false;
    let app = spawn_app_with(settings).await;
    let (ann, ann_token) = person(&app, "ann_switched").await;
    let (bob, bob_token) = person(&app, "bob_switched").await;
    let client = app.client_token().await;
    let (status, body) = follow(&app, &bob_token, ann).await;
    assert_eq!(
        (status, &body["error"]),
        (404, &json!("NotFound")),
        "{body}"
    );
    for (path, token) in [
        ("/user/followers".to_owned(), &ann_token),
        ("/user/follow-requests".to_owned(), &ann_token),
        (format!("/user/{ann}/following"), &bob_token),
        (
            format!("/user/client-api/follow-status?source={ann}&target={bob}"),
            &client,
        ),
        (
            format!("/user/client-api/user-followers?target={ann}"),
            &client,
        ),
    ] {
        let (status, _) = get(&app, &path, token).await;
        assert_eq!(status, 404, "{path}");
    }
    assert_eq!(
        private(&app, &ann_token, true).await,
        (200, json!({"ok": 1}))
    );
    assert_eq!(block(&app, &ann_token, bob).await, 200);
    let (status, _) = get(
        &app,
        &format!("/user/client-api/block-status?source={ann}&target={bob}"),
        &client,
    )
    .await;
    assert_eq!(status, 200);
}

/// An auditor reads the facts between two users (`history?stream=relation&with=`), and
/// `verify` finds the social read model equal to one rebuilt from the log.
#[tokio::test]
async fn the_facts_between_two_users_are_audited_and_rebuild_to_the_same_read_model() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (ann, ann_token) = person(&app, "ann_audited").await;
    let (bob, bob_token) = person(&app, "bob_audited").await;
    assert_eq!(private(&app, &ann_token, true).await.0, 200);
    assert_eq!(
        follow(&app, &bob_token, ann).await.1["data"]["status"],
        "requested"
    );
    let waiting = requests(&app, &ann_token, 1).await;
    let (status, _) = app
        .patch(
            "/user/follow-request",
            &ann_token,
            &json!({"request": waiting[0].0}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(block(&app, &ann_token, bob).await, 200);

    let path = format!("/user/admin-api/history?target={bob}&stream=relation&with={ann}");
    let (status, body) = get(&app, &path, &admin).await;
    assert_eq!(status, 200, "{body}");
    let events = body["data"]["events"].as_array().expect("events");
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        types,
        [
            "FollowRequested",
            "FollowRequestAccepted",
            "FollowRemoved",
            "Blocked"
        ]
    );
    assert_eq!(
        events[2]["changes"],
        json!({"source": bob.to_string(), "target": ann.to_string(), "accepted": true})
    );
    assert_eq!(events[3]["actor"]["id"], ann.to_string());
    for (path, field) in [
        (format!("/user/admin-api/history?target={bob}&stream=relation"), "with"),
        (format!("/user/admin-api/history?target={bob}&stream=relation&with={bob}"), "with"),
        (format!("/user/admin-api/history?target={bob}&stream=relation&with={ann}&at=2026-01-01T00:00:00Z"), "at"),
    ] {
        let (status, body) = get(&app, &path, &admin).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["additionalInfo"]["errors"][0]["path"], field, "{body}");
    }

    test_support::app::whole_log(&app.store).await;
    let verified = projections::verify(app.log.clone(), &*app.store, app.database_url(), |_, _| {})
        .await
        .expect("verify runs");
    assert!(
        verified.is_clean(),
        "{:?} {:?}",
        verified.broken,
        verified.differences
    );
    let blocks: i64 = sqlx::query_scalar("SELECT count(*) FROM read_models.blocks")
        .fetch_one(app.store.pool())
        .await
        .expect("counted");
    assert_eq!(blocks, 1);
}
