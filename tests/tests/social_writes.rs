//! The social graph's writes (issue 16, begun): `POST /user/follow`, `/user/unfollow`,
//! `/user/block` and `/user/unblock` for the signed-in person, their answers and refusals, the
//! read model they fill (as the client API's `follow-status` and `block-status` show it), and
//! the rule that ties a follow to a block under any interleaving.

use std::time::Duration;

use events::social::{Pair, Social};
use events::values::UserId;
use events::Aggregate;
use serde_json::{json, Value};
use test_support::wait::{eventually, holds};
use test_support::{spawn_app, TestApp};

const PASSWORD: &str = "a-good-password-1";

/// A user and a delegated token of theirs.
async fn person(app: &TestApp, name: &str) -> (UserId, String) {
    let id = app.register_user(name, PASSWORD, "user").await;
    (id, app.user_token(name, PASSWORD).await)
}

async fn send(app: &TestApp, route: &str, token: &str, target: UserId) -> (u16, Value) {
    app.post(
        &format!("/user/{route}"),
        token,
        &json!({ "target": target.to_string() }),
    )
    .await
}

/// What the client API says of `source` and `target`, once it says `expected`.
async fn shows(app: &TestApp, client: &str, route: &str, pair: (UserId, UserId), expected: Value) {
    let path = format!(
        "/user/client-api/{route}?source={}&target={}",
        pair.0, pair.1
    );
    eventually(Duration::from_secs(10), &path, || async {
        let (status, body) = app.call(reqwest::Method::GET, &path, client, None).await;
        holds(
            status == 200 && body["data"] == expected,
            format!("{status} {body}"),
        )
    })
    .await;
}

#[tokio::test]
async fn follow_unfollow_block_and_unblock_answer_as_liquid_and_show_in_the_read_model() {
    let app = spawn_app().await;
    let client = app.client_token().await;
    let (ann, ann_token) = person(&app, "ann_social").await;
    let (bob, bob_token) = person(&app, "bob_social").await;
    let shown = |route, pair, expected| shows(&app, &client, route, pair, expected);

    let followed = send(&app, "follow", &ann_token, bob).await;
    assert_eq!(
        followed,
        (200, json!({"ok": 1, "data": {"status": "following"}}))
    );
    let again = send(&app, "follow", &ann_token, bob).await;
    assert_eq!(
        again,
        (200, json!({"ok": 1, "data": {"status": "duplicate"}}))
    );
    shown("follow-status", (ann, bob), json!({"following": true})).await;
    shown("follow-status", (bob, ann), json!({"following": false})).await;

    assert_eq!(
        send(&app, "unfollow", &ann_token, bob).await,
        (200, json!({"ok": 1}))
    );
    assert_eq!(
        send(&app, "unfollow", &ann_token, bob).await,
        (200, json!({"ok": 1}))
    );
    shown("follow-status", (ann, bob), json!({"following": false})).await;

    // A block ends the follows between the two, both ways, and stops the blocked one following.
    assert_eq!(send(&app, "follow", &ann_token, bob).await.0, 200);
    assert_eq!(send(&app, "follow", &bob_token, ann).await.0, 200);
    let blocked = send(&app, "block", &bob_token, ann).await;
    assert_eq!(
        blocked,
        (200, json!({"ok": 1, "data": {"status": "blocked"}}))
    );
    assert_eq!(send(&app, "block", &bob_token, ann).await, blocked);
    shown("block-status", (bob, ann), json!({"blocked": true})).await;
    shown("follow-status", (ann, bob), json!({"following": false})).await;
    shown("follow-status", (bob, ann), json!({"following": false})).await;
    let refused = send(&app, "follow", &ann_token, bob).await;
    assert_eq!(
        (refused.0, refused.1["error"].clone()),
        (403, json!("Blocked"))
    );

    assert_eq!(
        send(&app, "unblock", &bob_token, ann).await,
        (200, json!({"ok": 1}))
    );
    shown("block-status", (bob, ann), json!({"blocked": false})).await;
    assert_eq!(send(&app, "follow", &ann_token, bob).await.0, 200);
    shown("follow-status", (ann, bob), json!({"following": true})).await;
}

#[tokio::test]
async fn refusals_are_the_contracts_and_append_nothing() {
    let app = spawn_app().await;
    let (ann, ann_token) = person(&app, "ann_refused").await;
    let client = app.client_token().await;
    let before = app.log_length().await;
    for route in ["follow", "unfollow", "block", "unblock"] {
        let (status, body) = send(&app, route, &ann_token, ann).await;
        assert_eq!(
            (status, &body["error"]),
            (400, &json!("ClientInputError")),
            "{route} self"
        );
        let unknown = UserId::new();
        let (status, body) = send(&app, route, &ann_token, unknown).await;
        assert_eq!(
            (status, &body["error"]),
            (404, &json!("NotFound")),
            "{route} unknown"
        );
        let path = format!("/user/{route}");
        let (status, body) = app
            .post(&path, &ann_token, &json!({ "target": "nobody" }))
            .await;
        assert_eq!(
            (status, &body["error"]),
            (400, &json!("ClientInputError")),
            "{route} body"
        );
        let (status, body) = app.post(&path, &ann_token, &json!({})).await;
        assert_eq!(
            (status, &body["error"]),
            (400, &json!("ClientInputError")),
            "{route} none"
        );
        // A client's token is not a person's session.
        let (status, _) = send(&app, route, &client, ann).await;
        assert_eq!(status, 401, "{route} client token");
    }
    assert_eq!(app.log_length().await, before);
}

/// Two users who follow and block each other at the same moment, twenty times over, never end
/// with a follow between them: the relation stream decides one command after the other, and a
/// block ends what came before it while a follow after it is refused. The read model agrees.
#[tokio::test]
async fn follows_and_blocks_sent_at_the_same_moment_never_leave_a_follow_between_blockers() {
    let app = spawn_app().await;
    let mut pairs = Vec::new();
    for i in 0..20 {
        let a = person(&app, &format!("racer_a{i}")).await;
        let b = person(&app, &format!("racer_b{i}")).await;
        pairs.push((a, b));
    }
    let races = pairs.iter().map(|((a, a_token), (b, b_token))| {
        let app = &app;
        async move {
            let (follow_ab, follow_ba, block_ab, block_ba) = tokio::join!(
                send(app, "follow", a_token, *b),
                send(app, "follow", b_token, *a),
                send(app, "block", a_token, *b),
                send(app, "block", b_token, *a),
            );
            for (status, body) in [follow_ab, follow_ba] {
                assert!(
                    status == 200 || (status == 403 && body["error"] == "Blocked"),
                    "{status} {body}"
                );
            }
            assert_eq!((block_ab.0, block_ba.0), (200, 200));
        }
    });
    futures::future::join_all(races).await;

    for ((a, _), (b, _)) in &pairs {
        let stream = Social::stream_name(&Pair::of(*a, *b).expect("two users"));
        let relation = events::load::<Social>(&app.stream(&stream).await)
            .expect("the relation loads")
            .state;
        assert!(relation.follows.is_empty(), "{stream}: {relation:?}");
        assert_eq!(relation.blockers.len(), 2, "{stream}");
    }
    let ids: Vec<uuid::Uuid> = pairs
        .iter()
        .flat_map(|((a, _), (b, _))| [a.as_uuid(), b.as_uuid()])
        .collect();
    eventually(Duration::from_secs(10), "the read model", || async {
        let (follows, blocks): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM read_models.follows WHERE source = ANY($1)),
                    (SELECT count(*) FROM read_models.blocks WHERE source = ANY($1))",
        )
        .bind(&ids)
        .fetch_one(app.store.pool())
        .await
        .expect("the read model answers");
        holds(
            (follows, blocks) == (0, 40),
            format!("{follows} follows, {blocks} blocks"),
        )
    })
    .await;
}

/// Thirty people follow, unfollow and follow one person again, all at once, while she blocks
/// ten of them: at rest, every user object's `followingCount` and `followerCount` equal the
/// follows the read model holds, and those equal what the log says.
#[tokio::test]
async fn counts_on_the_user_objects_equal_the_follows_after_racing_writes() {
    let app = spawn_app().await;
    let (star, star_token) = person(&app, "star_counted").await;
    let mut fans = Vec::new();
    for i in 0..30 {
        fans.push(person(&app, &format!("fan_counted{i}")).await);
    }
    let fan_writes = fans.iter().map(|(_, token)| {
        let app = &app;
        async move {
            for route in ["follow", "unfollow", "follow"] {
                let (status, body) = send(app, route, token, star).await;
                assert!(
                    status == 200 || (status == 403 && body["error"] == "Blocked"),
                    "{route}: {status} {body}"
                );
            }
        }
    });
    let blocks = fans.iter().take(10).map(|(fan, _)| {
        let (app, star_token) = (&app, &star_token);
        async move { assert_eq!(send(app, "block", star_token, *fan).await.0, 200) }
    });
    tokio::join!(
        futures::future::join_all(fan_writes),
        futures::future::join_all(blocks)
    );

    let mut following_in_log = 0;
    for (fan, _) in &fans {
        let stream = Social::stream_name(&Pair::of(star, *fan).expect("two users"));
        let relation = events::load::<Social>(&app.stream(&stream).await)
            .expect("the relation loads")
            .state;
        following_in_log += relation.follows.len() as i64;
    }
    assert!(
        following_in_log >= 20,
        "the ten unblocked fans follow: {following_in_log}"
    );
    let ids: Vec<uuid::Uuid> = std::iter::once(star)
        .chain(fans.iter().map(|(fan, _)| *fan))
        .map(|id| id.as_uuid())
        .collect();
    eventually(Duration::from_secs(10), "counts equal rows", || async {
        let rows: Vec<(uuid::Uuid, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT u.id,
                    (u.document->>'followingCount')::bigint,
                    (u.document->>'followerCount')::bigint,
                    (SELECT count(*) FROM read_models.follows f
                      WHERE f.source = u.id AND f.approved),
                    (SELECT count(*) FROM read_models.follows f
                      WHERE f.target = u.id AND f.approved)
               FROM read_models.users u WHERE u.id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(app.store.pool())
        .await
        .expect("the read models answer");
        let star_followers = rows
            .iter()
            .find(|row| row.0 == star.as_uuid())
            .map_or(-1, |row| row.2);
        let unequal: Vec<_> = rows
            .iter()
            .filter(|(_, following, followers, rows_following, rows_followers)| {
                (following, followers) != (rows_following, rows_followers)
            })
            .collect();
        holds(
            rows.len() == ids.len() && unequal.is_empty() && star_followers == following_in_log,
            format!(
                "{} rows, star has {star_followers} followers of {following_in_log}, unequal: {unequal:?}",
                rows.len()
            ),
        )
    })
    .await;
}

async fn get(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    app.call(reqwest::Method::GET, path, token, None).await
}

/// The `_id`s of a page's records, and the users they show under `side`.
fn page_of(body: &Value, side: &str) -> Vec<(String, Value)> {
    body["data"]["records"]
        .as_array()
        .unwrap_or_else(|| panic!("records: {body}"))
        .iter()
        .map(|record| {
            (
                record["_id"].as_str().expect("an id").to_owned(),
                record[side].clone(),
            )
        })
        .collect()
}

/// A person's follow lists: newest first, in pages that neither skip nor repeat while others
/// follow meanwhile; `offset` as an `_id` or, as Liquid's callers send it, a `createdAt`;
/// people you do not follow back shown without their contact details.
#[tokio::test]
async fn a_person_reads_their_follows_in_pages_that_neither_skip_nor_repeat() {
    let app = spawn_app().await;
    let (star, star_token) = person(&app, "star_paged").await;
    let mut fans = Vec::new();
    for i in 0..25 {
        let (fan, token) = person(&app, &format!("fan_paged{i}")).await;
        if i == 0 {
            // Before the follows waited for below, so the read model has it when they show.
            assert_eq!(send(&app, "follow", &star_token, fan).await.0, 200);
        }
        assert_eq!(send(&app, "follow", &token, star).await.0, 200);
        fans.push((fan, token));
    }
    eventually(Duration::from_secs(10), "25 followers", || async {
        let (_, body) = get(&app, "/user/followers?limit=1000", &star_token).await;
        let listed = page_of(&body, "source").len();
        holds(listed == 25, format!("{listed} listed"))
    })
    .await;
    let mut seen = Vec::new();
    let mut body = get(&app, "/user/followers?limit=10", &star_token).await.1;
    for round in 0.. {
        let page = page_of(&body, "source");
        if page.is_empty() {
            break;
        }
        seen.extend(page.iter().map(|(id, _)| id.clone()));
        // Someone new follows between pages: newer than every record already listed.
        let (_, late_token) = person(&app, &format!("late_fan{round}")).await;
        assert_eq!(send(&app, "follow", &late_token, star).await.0, 200);
        let offset = &page.last().expect("a record").0;
        body = get(
            &app,
            &format!("/user/followers?limit=10&offset={offset}"),
            &star_token,
        )
        .await
        .1;
    }
    let unique: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!((seen.len(), unique.len()), (25, 25), "{seen:?}");
    let mut newest_first = seen.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, newest_first);

    // Liquid's cursor: the `createdAt` of the last record.
    let (_, all) = get(&app, "/user/followers?limit=1000", &star_token).await;
    let records = all["data"]["records"].as_array().expect("records").clone();
    let tenth = records[9]["createdAt"].as_str().expect("a date");
    let (status, older) = get(
        &app,
        &format!("/user/followers?offset={tenth}&limit=1000"),
        &star_token,
    )
    .await;
    assert_eq!(status, 200, "{older}");
    assert!(page_of(&older, "source")
        .iter()
        .all(|(_, user)| user["_id"] != records[9]["source"]["_id"]));

    // The fan the star follows back shows an email; the others do not.
    let shown: Vec<(String, bool)> = records
        .iter()
        .map(|r| {
            (
                r["source"]["_id"].as_str().unwrap().to_owned(),
                r["source"].get("email").is_some(),
            )
        })
        .collect();
    for (id, email) in shown {
        assert_eq!(email, id == fans[0].0.to_string(), "{id}");
    }
    let (_, following) = get(&app, "/user/following", &star_token).await;
    let followed = page_of(&following, "target");
    assert_eq!(followed.len(), 1);
    assert_eq!(followed[0].1["_id"], fans[0].0.to_string());
}

#[tokio::test]
async fn follow_status_and_another_users_lists_answer_and_refuse_as_liquid() {
    let app = spawn_app().await;
    let (ann, ann_token) = person(&app, "ann_status").await;
    let (bob, bob_token) = person(&app, "bob_status").await;
    assert_eq!(send(&app, "follow", &ann_token, bob).await.0, 200);
    for path in [
        format!("/user/follow-status?target={bob}"),
        format!("/user/follow-status/{bob}"),
    ] {
        eventually(Duration::from_secs(10), &path, || async {
            let answer = get(&app, &path, &ann_token).await;
            holds(
                answer == (200, json!({"ok": 1, "data": {"following": true}})),
                format!("{answer:?}"),
            )
        })
        .await;
    }
    let (status, _) = get(
        &app,
        &format!("/user/follow-status?target={ann}"),
        &ann_token,
    )
    .await;
    assert_eq!(status, 400, "yourself");
    let (status, _) = get(&app, "/user/follow-status", &ann_token).await;
    assert_eq!(status, 400, "no target");
    let (status, _) = get(
        &app,
        &format!("/user/follow-status/{}", UserId::new()),
        &ann_token,
    )
    .await;
    assert_eq!(status, 404, "nobody");

    let (status, body) = get(&app, &format!("/user/{bob}/followers"), &ann_token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(page_of(&body, "source")[0].1["_id"], ann.to_string());
    assert_eq!(send(&app, "block", &bob_token, ann).await.0, 200);
    eventually(Duration::from_secs(10), "blocked", || async {
        let (status, body) = get(&app, &format!("/user/{bob}/followers"), &ann_token).await;
        holds(
            status == 403 && body == json!({"ok": 0, "error": "Blocked", "additionalInfo": {"reason": "blocked"}}),
            format!("{status} {body}"),
        )
    })
    .await;
    let (status, _) = get(
        &app,
        &format!("/user/{}/following", UserId::new()),
        &ann_token,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = get(&app, "/user/not-an-id/following", &ann_token).await;
    assert_eq!(status, 404);
    let (status, _) = get(&app, "/user/followers?offset=yesterday", &ann_token).await;
    assert_eq!(status, 400);
}
