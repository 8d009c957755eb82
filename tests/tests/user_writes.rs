//! The user write routes (API.md §3) over HTTP against the real service and PostgreSQL: the
//! happy path of every route on both edges, each rule, and the bad inputs, each of which must
//! answer the contract's status and code and append nothing.

use std::time::{SystemTime, UNIX_EPOCH};

use events::store::{EventStore, UniqueClaim};
use events::user::User;
use events::values::UserId;
use futures::StreamExt;
use jsonwebtoken::{encode, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};
use test_support::app::error_paths;
use test_support::app::{ADMIN_USERNAME, CLIENT_ID, TOKEN_SECRET};
use test_support::{spawn_app, TestApp};

const ADMIN: &str = "/user/admin-api";
const CLIENT: &str = "/user/client-api";
const PASSWORD: &str = "a-good-password-1";

/// A running service with a super_admin token and the internal client's token.
struct Setup {
    app: TestApp,
    admin: String,
    client: String,
}

async fn setup() -> Setup {
    test_support::init_test_log();
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let client = app.client_token().await;
    Setup { app, admin, client }
}

/// A valid `create` item.
fn new_user(username: &str) -> Value {
    json!({
        "username": username,
        "password": PASSWORD,
        "email": format!("{username}@example.com"),
        "firstName": "Test",
        "lastName": "User",
    })
}

/// Sends raw bytes with a content type (malformed JSON, wrong types, huge bodies).
async fn send_raw(
    app: &TestApp,
    path: &str,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let response = app
        .http
        .post(app.url(path))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("the service answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A success with the consistency token, or the test fails showing the body.
fn assert_ok(answer: &(u16, Value, Option<String>), status: u16) -> Value {
    let (got, body, token) = answer;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["ok"], 1, "{body}");
    assert!(
        token.is_some(),
        "a write answers a consistency token: {body}"
    );
    body.clone()
}

/// A refusal with the contract's status and code, after which the log is as long as before.
async fn assert_refused(
    app: &TestApp,
    before: usize,
    answer: (u16, Value),
    status: u16,
    code: &str,
) -> Value {
    let (got, body) = answer;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["ok"], 0, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert_eq!(
        app.log_length().await,
        before,
        "nothing is appended: {body}"
    );
    body
}

async fn holder(app: &TestApp, kind: &str, value: &str) -> Option<String> {
    app.store
        .claim_holder(&UniqueClaim::new(kind, value))
        .await
        .expect("the store answers")
        .and_then(|stream| stream.split_once('-').map(|(_, id)| id.to_owned()))
}

async fn user_id(app: &TestApp, username: &str) -> String {
    holder(app, "username", username)
        .await
        .expect("the user exists")
}

/// Creates users through the admin edge; their ids.
async fn create(s: &Setup, usernames: &[&str]) -> Vec<String> {
    let items: Vec<Value> = usernames.iter().map(|u| new_user(u)).collect();
    let answer = s
        .app
        .send(
            Method::POST,
            &format!("{ADMIN}/create"),
            &s.admin,
            &json!(items),
        )
        .await;
    assert_ok(&answer, 201);
    let mut ids = Vec::new();
    for username in usernames {
        ids.push(user_id(&s.app, username).await);
    }
    ids
}

/// Creates a user with `role` and signs them in.
async fn user_with_role(s: &Setup, username: &str, role: &str) -> (String, String) {
    let mut item = new_user(username);
    item["role"] = json!(role);
    let answer = s
        .app
        .send(
            Method::POST,
            &format!("{ADMIN}/create"),
            &s.admin,
            &json!([item]),
        )
        .await;
    assert_ok(&answer, 201);
    let id = user_id(&s.app, username).await;
    (id, s.app.user_token(username, PASSWORD).await)
}

/// The user object, as `update` with no change answers it.
async fn view(s: &Setup, id: &str) -> Value {
    let (status, body, _) = s
        .app
        .send(
            Method::PATCH,
            &format!("{ADMIN}/update"),
            &s.admin,
            &json!({ "target": id }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["user"].clone()
}

fn event_types(events: &[events::store::RecordedEvent]) -> Vec<String> {
    events.iter().map(|e| e.event_type.clone()).collect()
}

async fn stream(app: &TestApp, id: &str) -> Vec<events::store::RecordedEvent> {
    app.stream(&User::stream_name(UserId::parse(id).expect("an id")))
        .await
}

fn is_iso_millis(value: &Value) -> bool {
    let Some(s) = value.as_str() else {
        return false;
    };
    // 2026-01-02T03:04:05.123Z
    s.len() == 24
        && s.ends_with('Z')
        && s.as_bytes()[19] == b'.'
        && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

// ---------------------------------------------------------------------------------------------
// create
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn create_on_both_edges_makes_users_with_the_contract_defaults() {
    let s = setup().await;
    let admin_batch = json!([new_user("Alice_01"), new_user("bob_0002")]);
    let answer = s
        .app
        .send(
            Method::POST,
            &format!("{ADMIN}/create"),
            &s.admin,
            &admin_batch,
        )
        .await;
    let body = assert_ok(&answer, 201);
    assert_eq!(body["data"], json!({ "insertedCount": 2 }));

    let mut item = new_user("carol_03");
    item["middleName"] = json!("Marie-Anne");
    item["phone"] = json!("5551234567");
    item["phoneCountryCode"] = json!("+1");
    item["email"] = json!("Carol.Smith+news@Gmail.com");
    let answer = s
        .app
        .send(
            Method::POST,
            &format!("{CLIENT}/create"),
            &s.client,
            &json!([item]),
        )
        .await;
    assert_eq!(assert_ok(&answer, 201)["data"]["insertedCount"], 1);

    // Usernames are stored lowercased; emails are unique on their sanitized form.
    let alice = user_id(&s.app, "alice_01").await;
    assert!(holder(&s.app, "email", "carolsmith@gmail.com")
        .await
        .is_some());
    let events = stream(&s.app, &alice).await;
    assert_eq!(event_types(&events), ["UserCreated", "UserPasswordSet"]);
    let created = &events[0].data;
    assert_eq!(created["username"], "alice_01");
    assert_eq!(created["credits"], 0);
    assert_eq!(created["emailVerified"], true);
    assert_eq!(created["scope"], json!(["delegated:all"]));
    assert_eq!(created["customData"], json!({}));
    assert_eq!(created["role"], "user");
    assert!(!created.to_string().contains(PASSWORD));
    assert!(
        !events[1].data.to_string().contains(PASSWORD),
        "only the hash is stored"
    );

    // The new user can sign in with the password given.
    s.app.user_token("alice_01", PASSWORD).await;
    let carol = view(&s, &user_id(&s.app, "carol_03").await).await;
    assert_eq!(carol["middleName"], "Marie-Anne");
    assert_eq!(carol["phone"], "5551234567");
    assert_eq!(carol["sanitizedEmail"], "carolsmith@gmail.com");
}

#[tokio::test]
async fn create_refusals_append_nothing() {
    let s = setup().await;
    let app = &s.app;
    let path = format!("{ADMIN}/create");
    create(&s, &["taken_user"]).await;
    let before = app.log_length().await;
    let post = |body: Value| {
        let path = path.clone();
        let token = s.admin.clone();
        async move { app.post(&path, &token, &body).await }
    };

    // Not an array, an empty array.
    assert_refused(
        app,
        before,
        post(new_user("single_one")).await,
        400,
        "ClientInputError",
    )
    .await;
    assert_refused(app, before, post(json!([])).await, 400, "ClientInputError").await;
    // Malformed JSON, a wrong content type.
    let raw = send_raw(
        app,
        &path,
        &s.admin,
        "application/json",
        b"[{\"username\":".to_vec(),
    )
    .await;
    assert_refused(app, before, raw, 400, "ClientInputError").await;
    let raw = send_raw(app, &path, &s.admin, "text/plain", b"[]".to_vec()).await;
    assert_refused(app, before, raw, 400, "ClientInputError").await;
    // Hostile JSON: a key named twice (which value counts would depend on the reader), nesting
    // past serde_json's depth limit, bytes that are not UTF-8, a number beyond any integer.
    let mut twice = serde_json::to_string(&json!([new_user("twice_named")])).unwrap();
    twice.insert_str(2, r#""username": "first_name","#);
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let mut not_utf8 = serde_json::to_vec(&json!([new_user("not_utf8")])).unwrap();
    let quote = not_utf8.iter().rposition(|b| *b == b'"').unwrap();
    not_utf8.splice(quote..quote, [0xff, 0xfe]);
    let mut beyond = new_user("beyond_i64");
    beyond["firstName"] = json!(1);
    let beyond = serde_json::to_string(&json!([beyond])).unwrap().replace(
        r#""firstName":1"#,
        r#""firstName":99999999999999999999999999"#,
    );
    for (hostile, body) in [
        ("a key named twice", twice.into_bytes()),
        ("deep nesting", nested.into_bytes()),
        ("bytes that are not UTF-8", not_utf8),
        ("a number beyond i64", beyond.into_bytes()),
    ] {
        let raw = send_raw(app, &path, &s.admin, "application/json", body).await;
        let refused = assert_refused(app, before, raw, 400, "ClientInputError").await;
        eprintln!("{hostile}: {refused}");
    }
    // Over the body limit.
    let huge = format!(
        "[{{\"bio\":\"{}\"}}]",
        "x".repeat(app.settings.edge.body_limit + 1)
    );
    let raw = send_raw(app, &path, &s.admin, "application/json", huge.into_bytes()).await;
    assert_refused(app, before, raw, 413, "ClientInputError").await;

    // Every invalid field of every item is reported, and a valid item in the batch is not
    // created either.
    let mut wrong_types = new_user("valid_user");
    wrong_types["username"] = json!(12345678);
    wrong_types["firstName"] = json!(["Ann"]);
    let mut too_long = new_user("another_one");
    too_long["username"] = json!("u".repeat(31));
    too_long["password"] = json!("p".repeat(129));
    too_long["lastName"] = json!("L".repeat(33));
    too_long["phone"] = json!("123");
    too_long["phoneCountryCode"] = json!("+12345");
    let missing = json!({ "username": "missing_fields" });
    let body = assert_refused(
        app,
        before,
        post(json!([
            new_user("fine_user"),
            wrong_types,
            too_long,
            missing
        ]))
        .await,
        400,
        "ClientInputError",
    )
    .await;
    let paths = error_paths(&body);
    for expected in [
        "[1].username",
        "[1].firstName",
        "[2].username",
        "[2].password",
        "[2].lastName",
        "[2].phone",
        "[2].phoneCountryCode",
        "[3].password",
        "[3].email",
        "[3].firstName",
        "[3].lastName",
    ] {
        assert!(
            paths.contains(&expected.to_owned()),
            "{expected} in {paths:?}"
        );
    }
    let first = &body["additionalInfo"]["errors"][0];
    assert_eq!(first["type"], "field");
    assert_eq!(first["location"], "body");
    assert!(first["msg"].is_string());
    assert!(holder(app, "username", "fine_user").await.is_none());

    // A name with digits, an invalid email, a username with a bad character.
    let mut bad = new_user("bad-user");
    bad["email"] = json!("not-an-email");
    bad["firstName"] = json!("R2D2");
    let body = assert_refused(
        app,
        before,
        post(json!([bad])).await,
        400,
        "ClientInputError",
    )
    .await;
    assert_eq!(
        error_paths(&body),
        ["[0].username", "[0].email", "[0].firstName"]
    );

    // Duplicates inside the batch, and values other users hold (the email in another case
    // and Gmail form counts as the same).
    let body = assert_refused(
        app,
        before,
        post(json!([new_user("twin_user"), new_user("Twin_User")])).await,
        400,
        "ClientInputError",
    )
    .await;
    assert_eq!(
        body["additionalInfo"]["existingUsers"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let mut same_email = new_user("other_user");
    same_email["email"] = json!("TAKEN_USER@example.com");
    let body = assert_refused(
        app,
        before,
        post(json!([new_user("free_user"), same_email])).await,
        400,
        "ClientInputError",
    )
    .await;
    let existing = &body["additionalInfo"]["existingUsers"];
    assert_eq!(existing[0]["username"], "taken_user", "{body}");
    assert!(holder(app, "username", "free_user").await.is_none());

    // An unknown role; a role the caller does not out-rank (a client is rank 2).
    let mut unknown_role = new_user("role_less");
    unknown_role["role"] = json!("no_such_role");
    assert_refused(
        app,
        before,
        post(json!([unknown_role])).await,
        400,
        "NotFound",
    )
    .await;
    let mut above = new_user("above_me");
    above["role"] = json!("super_admin");
    let answer = app
        .post(&format!("{CLIENT}/create"), &s.client, &json!([above]))
        .await;
    assert_refused(app, before, answer, 401, "InsufficientPrivileges").await;

    // A user's own token does not hold profile:create:write.
    let (_, user_token) = {
        let before_user = app.log_length().await;
        let made = user_with_role(&s, "plain_user", "user").await;
        assert!(app.log_length().await > before_user);
        made
    };
    let before = app.log_length().await;
    let answer = app
        .post(&path, &user_token, &json!([new_user("by_a_user")]))
        .await;
    let body = assert_refused(app, before, answer, 401, "InsufficientPrivileges").await;
    assert_eq!(
        body["additionalInfo"]["requiredScope"],
        "admin:profile:create:write"
    );
}

#[tokio::test]
async fn concurrent_duplicate_creates_let_exactly_one_win() {
    let s = setup().await;
    let path = format!("{ADMIN}/create");
    let answers = futures::future::join_all((0..20).map(|i| {
        let mut item = new_user("contested");
        item["email"] = json!(format!("contender{i}@example.com"));
        let (app, path, token) = (&s.app, path.clone(), s.admin.clone());
        async move { (i, app.post(&path, &token, &json!([item])).await) }
    }))
    .await;
    let winners: Vec<usize> = answers
        .iter()
        .filter(|(_, (status, _))| *status == 201)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    for (_, (status, body)) in answers.iter().filter(|(_, (status, _))| *status != 201) {
        assert_eq!(*status, 400, "{body}");
        assert_eq!(body["error"], "ClientInputError", "{body}");
        assert!(body["additionalInfo"]["existingUsers"].is_array(), "{body}");
    }
    // The losers left no claim behind: their emails are free.
    let loser = (0..20).find(|i| *i != winners[0]).expect("a loser");
    let mut item = new_user("late_comer");
    item["email"] = json!(format!("contender{loser}@example.com"));
    assert_ok(
        &s.app
            .send(Method::POST, &path, &s.admin, &json!([item]))
            .await,
        201,
    );
    let winner_email = format!("contender{}@example.com", winners[0]);
    assert_eq!(
        holder(&s.app, "email", &winner_email).await,
        holder(&s.app, "username", "contested").await
    );
}

// ---------------------------------------------------------------------------------------------
// tokens
// ---------------------------------------------------------------------------------------------

fn mint(claims: &Value, key: &[u8]) -> String {
    encode(&Header::default(), claims, &EncodingKey::from_secret(key)).expect("a token")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

#[tokio::test]
async fn tokens_of_the_wrong_kind_expired_or_forged_are_unauthorized() {
    let s = setup().await;
    let app = &s.app;
    let [target] = <[String; 1]>::try_from(create(&s, &["token_target"]).await).expect("one");
    let before = app.log_length().await;
    let ban = json!({ "target": target, "state": true });

    // A client token on an admin route, a delegated token on a client route.
    let answer = app.post(&format!("{ADMIN}/ban"), &s.client, &ban).await;
    assert_refused(app, before, answer, 401, "Unauthorized").await;
    let answer = app.post(&format!("{CLIENT}/ban"), &s.admin, &ban).await;
    assert_refused(app, before, answer, 401, "Unauthorized").await;
    // A user's token on a client route.
    let (_, user_token) = user_with_role(&s, "plain_user", "user").await;
    let before = app.log_length().await;
    let answer = app
        .post(
            &format!("{CLIENT}/credits"),
            &user_token,
            &json!({"target": target, "type": "set", "value": 5}),
        )
        .await;
    assert_refused(app, before, answer, 401, "Unauthorized").await;

    // No token, a malformed header.
    let response = app
        .http
        .post(app.url(&format!("{ADMIN}/ban")))
        .json(&ban)
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status().as_u16(), 401);
    let response = app
        .http
        .post(app.url(&format!("{ADMIN}/ban")))
        .header("authorization", "Token abc")
        .json(&ban)
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status().as_u16(), 401);

    // Expired and forged tokens, with the claims of the real super_admin.
    let admin_id = user_id(app, ADMIN_USERNAME).await;
    let client_id = holder(app, "client-id", CLIENT_ID)
        .await
        .expect("the bootstrap client");
    let claims = |exp: u64| {
        json!({
            "sub": admin_id, "kind": "delegated", "use": "access", "role": "super_admin",
            "scope": ["*"], "client": client_id, "client_scope": ["*"],
            "iat": exp.saturating_sub(900), "exp": exp, "jti": uuid::Uuid::now_v7(),
        })
    };
    let valid = mint(&claims(now() + 600), TOKEN_SECRET);
    let expired = mint(&claims(now() - 600), TOKEN_SECRET);
    let forged = mint(&claims(now() + 600), b"not-the-service-key-of-32-bytes!!");
    for token in [&expired, &forged] {
        let answer = app.post(&format!("{ADMIN}/ban"), token, &ban).await;
        assert_refused(app, before, answer, 401, "Unauthorized").await;
    }
    // The same claims with the right key and time pass (so the refusals above were the key
    // and the time).
    let answer = app
        .send(Method::POST, &format!("{ADMIN}/ban"), &valid, &ban)
        .await;
    assert_ok(&answer, 200);

    // verify is admin only: the client edge has no such route.
    let before = app.log_length().await;
    let answer = app
        .post(
            &format!("{CLIENT}/verify"),
            &s.client,
            &json!({"target": target, "state": true}),
        )
        .await;
    let body = assert_refused(app, before, answer, 404, "NotFound").await;
    assert_eq!(body["additionalInfo"]["path"], format!("{CLIENT}/verify"));
}

// ---------------------------------------------------------------------------------------------
// update
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn update_changes_fields_and_answers_the_user_after() {
    let s = setup().await;
    let app = &s.app;
    let [id] = <[String; 1]>::try_from(create(&s, &["to_update"]).await).expect("one");
    let path = format!("{ADMIN}/update");
    let answer = app
        .send(
            Method::PATCH,
            &path,
            &s.admin,
            &json!({
                "target": id,
                "firstName": "Zoë",
                "bio": "Writes software",
                "pronouns": "she/her",
                "customLink": "https://example.com/zoe",
                "organization": "Example Corp",
                "designation": "VP, R&D",
                "gender": "female",
                "preferredLanguage": "de",
                "country": "DE",
                "email": "Zoe.New@Example.com",
                "username": "Renamed_User",
            }),
        )
        .await;
    let user = assert_ok(&answer, 200)["data"]["user"].clone();
    assert_eq!(user["_id"], id);
    assert_eq!(user["firstName"], "Zoë");
    assert_eq!(user["bio"], "Writes software");
    assert_eq!(user["country"], "DE");
    assert_eq!(user["preferredLanguage"], "de");
    assert_eq!(user["username"], "renamed_user");
    assert_eq!(user["email"], "Zoe.New@Example.com");
    assert_eq!(user["sanitizedEmail"], "zoe.new@example.com");
    assert_eq!(user["isSubscribed"], false);
    assert_eq!(user["subscriptionTier"], "basic");
    assert!(user.get("password").is_none());
    assert!(!user.to_string().contains("argon2"));
    assert!(is_iso_millis(&user["createdAt"]), "{user}");
    assert!(is_iso_millis(&user["updatedAt"]), "{user}");
    assert_eq!(
        user.as_object().map(|o| o.len()),
        Some(50),
        "the contract's field set: {user}"
    );
    // The old username and email are free, the new ones held.
    assert!(holder(app, "username", "to_update").await.is_none());
    assert_eq!(
        holder(app, "email", "zoe.new@example.com").await.as_deref(),
        Some(id.as_str())
    );

    // "__unset__" clears an optional field; the client edge updates too; a password change
    // lets the user sign in with the new one.
    let answer = app
        .send(
            Method::PATCH,
            &format!("{CLIENT}/update"),
            &s.client,
            &json!({ "target": id, "bio": "__unset__", "password": "a-new-password-2" }),
        )
        .await;
    let user = assert_ok(&answer, 200)["data"]["user"].clone();
    assert_eq!(user["bio"], Value::Null);
    assert_eq!(user["pronouns"], "she/her");
    app.user_token("renamed_user", "a-new-password-2").await;

    // A super_admin gives a role; isDeleted deletes and frees the username.
    let answer = app
        .send(
            Method::PATCH,
            &path,
            &s.admin,
            &json!({ "target": id, "role": "admin" }),
        )
        .await;
    assert_eq!(assert_ok(&answer, 200)["data"]["user"]["role"], "admin");
    let answer = app
        .send(
            Method::PATCH,
            &path,
            &s.admin,
            &json!({ "target": id, "isDeleted": true }),
        )
        .await;
    let user = assert_ok(&answer, 200)["data"]["user"].clone();
    assert_eq!(user["isDeleted"], true);
    assert!(is_iso_millis(&user["deletedDate"]));
    assert!(holder(app, "username", "renamed_user").await.is_none());
    let before = app.log_length().await;
    let answer = app
        .patch(
            &path,
            &s.admin,
            &json!({ "target": id, "bio": "Back again" }),
        )
        .await;
    assert_refused(app, before, answer, 404, "NotFound").await;
}

#[tokio::test]
async fn update_refusals_append_nothing() {
    let s = setup().await;
    let app = &s.app;
    let ids = create(&s, &["first_user", "second_user"]).await;
    let (admin_id, admin_token) = user_with_role(&s, "an_admin", "admin").await;
    let root_id = user_id(app, ADMIN_USERNAME).await;
    let path = format!("{ADMIN}/update");
    let before = app.log_length().await;
    let patch = |token: &str, body: Value| {
        let (path, token) = (path.clone(), token.to_owned());
        async move { app.patch(&path, &token, &body).await }
    };

    // Fields outside the editable list are named.
    let body = assert_refused(
        app,
        before,
        patch(
            &s.admin,
            json!({ "target": ids[0], "credits": 5, "hacker": true, "bio": "Fine bio" }),
        )
        .await,
        401,
        "InsufficientPrivileges",
    )
    .await;
    let fields = body["additionalInfo"]["fields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        fields.contains(&json!("credits")) && fields.contains(&json!("hacker")),
        "{body}"
    );

    // A NUL character, in a text field or anywhere in custom data, is refused (PostgreSQL
    // can hold it neither in text nor in jsonb).
    assert_refused(
        app,
        before,
        patch(&s.admin, json!({ "target": ids[0], "bio": "a\u{0}b" })).await,
        400,
        "ClientInputError",
    )
    .await;
    for data in [
        json!({ "nested": ["fine", "a\u{0}b"] }),
        json!({ "a\u{0}b": 1 }),
    ] {
        let answer = app
            .send(
                Method::PUT,
                &format!("{ADMIN}/custom-data"),
                &s.admin,
                &json!({ "target": ids[0], "customData": data }),
            )
            .await;
        let (status, body, _) = answer;
        assert_refused(app, before, (status, body), 400, "ClientInputError").await;
    }

    // A client token holding only the low sensitivity cannot change a username.
    let (status, token_body) = app
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", test_support::app::CLIENT_SECRET),
            (
                "scope",
                "client:profile:write client:profile:sensitive:low:write",
            ),
        ])
        .await;
    assert_eq!(status, 200, "{token_body}");
    let low = token_body["access_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let answer = app
        .patch(
            &format!("{CLIENT}/update"),
            &low,
            &json!({ "target": ids[0], "username": "new_name_1" }),
        )
        .await;
    let body = assert_refused(app, before, answer, 401, "InsufficientPrivileges").await;
    assert_eq!(
        body["additionalInfo"]["requiredScope"],
        "client:profile:sensitive:high:write"
    );
    let answer = app
        .send(
            Method::PATCH,
            &format!("{CLIENT}/update"),
            &low,
            &json!({ "target": ids[0], "bio": "Low is enough" }),
        )
        .await;
    assert_ok(&answer, 200);
    let before = app.log_length().await;

    // Every invalid value is reported; required fields cannot be unset.
    let body = assert_refused(
        app,
        before,
        patch(
            &s.admin,
            json!({
                "target": ids[0], "bio": "x", "country": "XX", "preferredLanguage": "zz",
                "customLink": "ftp://example.com", "pronouns": 42, "firstName": "__unset__",
                "isDeleted": "yes", "organization": "O".repeat(129),
            }),
        )
        .await,
        400,
        "ClientInputError",
    )
    .await;
    let mut paths = error_paths(&body);
    paths.sort();
    assert_eq!(
        paths,
        [
            "bio",
            "country",
            "customLink",
            "firstName",
            "isDeleted",
            "organization",
            "preferredLanguage",
            "pronouns"
        ]
    );
    let body = assert_refused(
        app,
        before,
        patch(&s.admin, json!({ "bio": "No target" })).await,
        400,
        "ClientInputError",
    )
    .await;
    assert_eq!(error_paths(&body), ["target"]);
    assert_refused(
        app,
        before,
        patch(&s.admin, json!({ "target": "not-an-id" })).await,
        400,
        "ClientInputError",
    )
    .await;
    assert_refused(
        app,
        before,
        patch(&s.admin, json!(["not", "an", "object"])).await,
        400,
        "ClientInputError",
    )
    .await;

    // Unknown target, unknown role.
    let unknown = UserId::new().to_string();
    assert_refused(
        app,
        before,
        patch(&s.admin, json!({ "target": unknown, "bio": "Nobody here" })).await,
        404,
        "NotFound",
    )
    .await;
    assert_refused(
        app,
        before,
        patch(
            &s.admin,
            json!({ "target": ids[0], "role": "no_such_role" }),
        )
        .await,
        400,
        "NotFound",
    )
    .await;

    // Taken username and email (in another form) are both named.
    let body = assert_refused(
        app,
        before,
        patch(&s.admin, json!({ "target": ids[0], "username": "SECOND_USER", "email": "Second_User@Example.com" })).await,
        409,
        "ResourceConflict",
    )
    .await;
    assert_eq!(
        body["additionalInfo"]["duplicateFields"],
        json!(["username", "email"])
    );

    // Ranking: an admin (rank 2) may edit a user but not the super_admin, and may not give
    // the super_admin role; a peer admin is allowed by default.
    let answer = app
        .send(
            Method::PATCH,
            &path,
            &admin_token,
            &json!({ "target": ids[1], "bio": "Edited by admin" }),
        )
        .await;
    assert_ok(&answer, 200);
    let before = app.log_length().await;
    assert_refused(
        app,
        before,
        patch(
            &admin_token,
            json!({ "target": root_id, "bio": "Edited by admin" }),
        )
        .await,
        401,
        "InsufficientPrivileges",
    )
    .await;
    assert_refused(
        app,
        before,
        patch(
            &admin_token,
            json!({ "target": ids[1], "role": "super_admin" }),
        )
        .await,
        401,
        "InsufficientPrivileges",
    )
    .await;
    let answer = app
        .send(
            Method::PATCH,
            &path,
            &admin_token,
            &json!({ "target": admin_id, "bio": "Edited myself" }),
        )
        .await;
    assert_ok(&answer, 200);

    // A plain user's token lacks profile:write.
    let (_, user_token) = user_with_role(&s, "plain_user", "user").await;
    let before = app.log_length().await;
    assert_refused(
        app,
        before,
        patch(
            &user_token,
            json!({ "target": ids[1], "bio": "Edited by user" }),
        )
        .await,
        401,
        "InsufficientPrivileges",
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// ban, restrict, verify
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn ban_restrict_and_verify_record_who_when_and_why() {
    let s = setup().await;
    let app = &s.app;
    let [id] = <[String; 1]>::try_from(create(&s, &["flag_target"]).await).expect("one");
    let user_token = app.user_token("flag_target", PASSWORD).await;
    let admin_id = user_id(app, ADMIN_USERNAME).await;

    let ban = json!({ "target": [id], "state": true, "reason": "spamming the forum" });
    let answer = app
        .send(Method::POST, &format!("{ADMIN}/ban"), &s.admin, &ban)
        .await;
    assert_eq!(assert_ok(&answer, 200), json!({ "ok": 1 }));
    let events = stream(app, &id).await;
    let banned = events.last().expect("an event");
    assert_eq!(banned.event_type, "UserBanned");
    assert_eq!(banned.data["by"]["id"], admin_id);
    // The banned user's token is refused at once.
    let answer = app
        .patch(
            &format!("{ADMIN}/update"),
            &user_token,
            &json!({ "target": id }),
        )
        .await;
    assert_eq!(answer.0, 403, "{}", answer.1);
    assert_eq!(answer.1["error"], "Banned");
    let user = view(&s, &id).await;
    assert_eq!(user["isBanned"], true);
    assert_eq!(user["bannedBy"], admin_id);
    assert_eq!(user["bannedReason"], "spamming the forum");
    assert!(is_iso_millis(&user["bannedDate"]), "{user}");

    // Banning again changes nothing and appends nothing.
    let before = app.log_length().await;
    let (status, _, _) = app
        .send(Method::POST, &format!("{ADMIN}/ban"), &s.admin, &ban)
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.log_length().await, before);

    // Unban through the client edge; restrict on both; verify on the admin edge.
    let answer = app
        .send(
            Method::POST,
            &format!("{CLIENT}/ban"),
            &s.client,
            &json!({ "target": id, "state": false }),
        )
        .await;
    assert_ok(&answer, 200);
    let answer = app
        .send(
            Method::POST,
            &format!("{CLIENT}/restrict"),
            &s.client,
            &json!({ "target": id, "state": true, "reason": "too many posts" }),
        )
        .await;
    assert_ok(&answer, 200);
    let answer = app
        .send(
            Method::POST,
            &format!("{ADMIN}/restrict"),
            &s.admin,
            &json!({ "target": id, "state": false }),
        )
        .await;
    assert_ok(&answer, 200);
    let answer = app
        .send(
            Method::POST,
            &format!("{ADMIN}/verify"),
            &s.admin,
            &json!({ "target": id, "state": true }),
        )
        .await;
    assert_ok(&answer, 200);
    let user = view(&s, &id).await;
    assert_eq!(
        (
            user["isBanned"].clone(),
            user["isRestricted"].clone(),
            user["verified"].clone()
        ),
        (json!(false), json!(false), json!(true))
    );
    assert_eq!(user["verifiedBy"], admin_id);
    assert_eq!(
        event_types(&stream(app, &id).await)[2..],
        [
            "UserBanned",
            "UserUnbanned",
            "UserRestricted",
            "UserUnrestricted",
            "UserVerified"
        ]
    );

    // Bad inputs.
    let before = app.log_length().await;
    for (body, paths) in [
        (json!({ "target": id }), vec!["state"]),
        (json!({ "target": id, "state": "yes" }), vec!["state"]),
        (
            json!({ "target": id, "state": true, "reason": "short" }),
            vec!["reason"],
        ),
        (
            json!({ "target": id, "state": true, "reason": "r".repeat(129) }),
            vec!["reason"],
        ),
        (json!({ "target": [id, id], "state": true }), vec!["target"]),
        (json!({ "state": true }), vec!["target"]),
    ] {
        let answer = app.post(&format!("{ADMIN}/ban"), &s.admin, &body).await;
        let refused = assert_refused(app, before, answer, 400, "ClientInputError").await;
        assert_eq!(error_paths(&refused), paths, "{body}");
    }
    let unknown = UserId::new().to_string();
    let answer = app
        .post(
            &format!("{ADMIN}/ban"),
            &s.admin,
            &json!({ "target": unknown, "state": true }),
        )
        .await;
    assert_refused(app, before, answer, 404, "NotFound").await;
    let answer = app
        .post(
            &format!("{ADMIN}/verify"),
            &s.admin,
            &json!({ "target": unknown, "state": true }),
        )
        .await;
    assert_refused(app, before, answer, 404, "NotFound").await;
    // A client token limited to reading cannot ban.
    let (_, body) = app
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", test_support::app::CLIENT_SECRET),
            ("scope", "client:profile:read"),
        ])
        .await;
    let reader = body["access_token"].as_str().expect("a token").to_owned();
    let answer = app
        .post(
            &format!("{CLIENT}/ban"),
            &reader,
            &json!({ "target": id, "state": true }),
        )
        .await;
    let refused = assert_refused(app, before, answer, 401, "InsufficientPrivileges").await;
    assert_eq!(
        refused["additionalInfo"]["requiredScope"],
        "client:profile:ban:write"
    );
}

// ---------------------------------------------------------------------------------------------
// credits
// ---------------------------------------------------------------------------------------------

/// A hot stream (issue 15): concurrent commands on one user queue in the process instead of
/// racing, so none is refused for conflicts and none even meets one.
#[tokio::test]
async fn concurrent_increments_on_one_user_all_land_without_conflicts() {
    let s = setup().await;
    let [id] = <[String; 1]>::try_from(create(&s, &["hot_stream_user"]).await).expect("one");
    let path = format!("{ADMIN}/credits");
    let increment = json!({ "target": id, "type": "increment", "value": 1 });
    let answers: Vec<(u16, Value, Option<String>)> = futures::stream::iter(0..200)
        .map(|_| s.app.send(Method::POST, &path, &s.admin, &increment))
        .buffer_unordered(32)
        .collect()
        .await;
    for answer in &answers {
        assert_ok(answer, 200);
    }
    assert_eq!(view(&s, &id).await["credits"], 200);
    let metrics = test_support::get_text(&s.app.http, &s.app.url("/metrics")).await;
    assert!(
        !metrics
            .lines()
            .any(|line| line.starts_with("userledger_command_conflicts_total")),
        "commands on one stream met conflicts: {metrics}"
    );
}

/// The events of `id`'s stream follow its hash chain, and how many transactions wrote
/// those of `event_type`.
async fn chain_and_transactions(app: &TestApp, id: &str, event_type: &str) -> i64 {
    use events::audit::{ChainHead, Link};
    let stream = format!("user-{id}");
    let recorded = app.store.read_stream(&stream, 0).await.expect("the stream");
    let mut head = ChainHead::default();
    for event in &recorded {
        assert_eq!(head.follow(event), Link::Chained, "{event:?}");
    }
    sqlx::query_scalar(
        "SELECT count(DISTINCT tx) FROM events WHERE stream_id = $1 AND event_type = $2",
    )
    .bind(&stream)
    .bind(event_type)
    .fetch_one(app.store.pool())
    .await
    .expect("counted")
}

/// Commands on one stream decided while an append to it is on its way go to the store
/// together, each decided on the state the ones before it leave: 100 decrements of 1 from a
/// balance of 50 spend it exactly, the other 50 are refused, and the hash chain holds.
#[tokio::test]
async fn concurrent_decrements_in_batches_spend_the_balance_exactly() {
    let s = setup().await;
    let [id] = <[String; 1]>::try_from(create(&s, &["batched_spender"]).await).expect("one");
    let path = format!("{ADMIN}/credits");
    let fill = json!({ "target": id, "type": "increment", "value": 50 });
    assert_ok(&s.app.send(Method::POST, &path, &s.admin, &fill).await, 200);

    let spend = json!({ "target": id, "type": "decrement", "value": 1 });
    let answers: Vec<(u16, Value, Option<String>)> = futures::stream::iter(0..100)
        .map(|_| s.app.send(Method::POST, &path, &s.admin, &spend))
        .buffer_unordered(32)
        .collect()
        .await;
    let spent = answers.iter().filter(|(status, ..)| *status == 200).count();
    let refused: Vec<_> = answers
        .iter()
        .filter(|(status, ..)| *status != 200)
        .collect();
    assert_eq!(spent, 50, "{refused:?}");
    assert!(
        refused
            .iter()
            .all(|(status, body, _)| *status == 400 && body["error"] == "InsufficientCredits"),
        "{refused:?}"
    );
    assert_eq!(view(&s, &id).await["credits"], 0);
    let transactions = chain_and_transactions(&s.app, &id, "CreditsDecreased").await;
    assert!(
        transactions < 50,
        "50 decrements from 32 clients took {transactions} transactions: none was batched"
    );
}

/// A batch whose stream another process wrote first is refused whole, and each of its
/// commands decides again: 200 increments over HTTP race 50 made through the store directly
/// (as another process's would be), and all 250 land once, on an unbroken chain.
#[tokio::test]
async fn batches_decide_again_after_a_write_from_elsewhere() {
    use command_service::pipeline::execute;
    use events::metadata::{Actor, CommandContext};
    use events::user::{CreditsChange, UserCommand};
    use events::values::Credits;

    let s = setup().await;
    let [id] = <[String; 1]>::try_from(create(&s, &["raced_batches"]).await).expect("one");
    let user = UserId::parse(&id).expect("an id");
    let path = format!("{ADMIN}/credits");
    let increment = json!({ "target": id, "type": "increment", "value": 1 });
    let over_http = futures::stream::iter(0..200)
        .map(|_| s.app.send(Method::POST, &path, &s.admin, &increment))
        .buffer_unordered(24)
        .collect::<Vec<_>>();
    let elsewhere = futures::stream::iter(0..50)
        .map(|_| async {
            let context =
                CommandContext::new(uuid::Uuid::now_v7(), Actor::system(), chrono::Utc::now());
            execute::<User, _>(&*s.app.store, &user, &context, 20, |_| {
                Ok(UserCommand::ChangeCredits(CreditsChange::Increment(
                    Credits::new(1),
                )))
            })
            .await
            .map(|_| ())
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>();
    let (answers, direct) = tokio::join!(over_http, elsewhere);
    for answer in &answers {
        assert_ok(answer, 200);
    }
    assert!(direct.iter().all(Result::is_ok), "{direct:?}");
    assert_eq!(view(&s, &id).await["credits"], 250);
    chain_and_transactions(&s.app, &id, "CreditsIncreased").await;
}

/// An update answers from the object it answered last plus its own events when nothing came
/// between, and reads the stream otherwise: either way the answer is the stored stream's fold
/// up to the update (dates and authors from the stored metadata).
#[tokio::test]
async fn every_update_answer_is_the_fold_of_the_stored_stream() {
    use events::metadata::decode;
    use events::user::{UserEvent, UserView};
    use events::values::SubscriptionTiers;

    let s = setup().await;
    let (id, own) = user_with_role(&s, "answered_often", "user").await;
    let admin_update = |body: Value| {
        (
            Method::PATCH,
            format!("{ADMIN}/update"),
            s.admin.clone(),
            body,
        )
    };
    let writes = [
        admin_update(json!({ "target": id, "bio": "first" })),
        admin_update(json!({ "target": id, "bio": "second", "pronouns": "they/them" })),
        // Not an update: the next answer's object is one event behind.
        (
            Method::POST,
            format!("{ADMIN}/credits"),
            s.admin.clone(),
            json!({ "target": id, "type": "increment", "value": 3 }),
        ),
        admin_update(json!({ "target": id, "firstName": "Third", "country": "FR" })),
        (
            Method::PATCH,
            "/user/me".to_owned(),
            own.clone(),
            json!({ "bio": "written by the user", "organization": "Acme" }),
        ),
        admin_update(json!({ "target": id, "role": "admin", "bio": "__unset__" })),
        admin_update(json!({ "target": id, "username": "answered_renamed" })),
    ];
    let mut answers = 0;
    for (method, path, token, body) in writes {
        let answer = s.app.send(method, &path, &token, &body).await;
        let body = assert_ok(&answer, 200);
        let Some(answered) = body["data"].get("user") else {
            continue;
        };
        let history: Vec<_> = stream(&s.app, &id)
            .await
            .iter()
            .map(|recorded| decode::<UserEvent>(recorded).expect("a user event"))
            .collect();
        let folded = UserView::from_history(&history)
            .expect("a user")
            .hydrated(&SubscriptionTiers::default(), chrono::Utc::now());
        assert_eq!(answered, &json!(folded), "after {path} {body}");
        answers += 1;
    }
    assert_eq!(answers, 6);
}

/// The write side keeps only the last events of each stream: a stream longer than that is
/// read from the store where a reader needs more (a user object not built yet, a command after
/// a conflict), and every answer still counts every event. 40 increments over HTTP, 5 more
/// through the store directly (as another process's would be), then updates: each answer
/// shows all 45 and its own bio, and the chain holds.
#[tokio::test]
async fn a_stream_longer_than_the_cached_tail_is_answered_whole() {
    use command_service::pipeline::execute;
    use events::metadata::{Actor, CommandContext};
    use events::user::{CreditsChange, UserCommand};
    use events::values::Credits;

    let s = setup().await;
    let [id] = <[String; 1]>::try_from(create(&s, &["long_stream"]).await).expect("one");
    let user = UserId::parse(&id).expect("an id");
    let increment = json!({ "target": id, "type": "increment", "value": 1 });
    for _ in 0..40 {
        let answer = s
            .app
            .send(
                Method::POST,
                &format!("{ADMIN}/credits"),
                &s.admin,
                &increment,
            )
            .await;
        assert_ok(&answer, 200);
    }
    for _ in 0..5 {
        let context =
            CommandContext::new(uuid::Uuid::now_v7(), Actor::system(), chrono::Utc::now());
        execute::<User, _>(&*s.app.store, &user, &context, 4, |_| {
            Ok(UserCommand::ChangeCredits(CreditsChange::Increment(
                Credits::new(1),
            )))
        })
        .await
        .expect("appended elsewhere");
    }
    for bio in ["first bio", "second bio"] {
        let body = json!({ "target": id, "bio": bio });
        let answer = s
            .app
            .send(Method::PATCH, &format!("{ADMIN}/update"), &s.admin, &body)
            .await;
        let answered = &assert_ok(&answer, 200)["data"]["user"];
        assert_eq!(
            (answered["credits"].clone(), answered["bio"].clone()),
            (json!(45), json!(bio))
        );
    }
    let types = event_types(&stream(&s.app, &id).await);
    assert_eq!(
        types.iter().filter(|t| *t == "CreditsIncreased").count(),
        45
    );
    chain_and_transactions(&s.app, &id, "CreditsIncreased").await;
}

/// A command decides on the state its predecessor on the stream left (the turn's snapshot)
/// plus every event written since, also by another writer: after the balance is spent through
/// the store directly (as another process would), the service refuses to spend it again.
#[tokio::test]
async fn a_write_from_elsewhere_is_seen_by_the_next_command() {
    use command_service::pipeline::execute;
    use events::metadata::{Actor, CommandContext};
    use events::user::{CreditsChange, UserCommand};
    use events::values::Credits;

    let s = setup().await;
    let app = &s.app;
    let [id] = <[String; 1]>::try_from(create(&s, &["elsewhere_user"]).await).expect("one");
    let path = format!("{ADMIN}/credits");
    for _ in 0..2 {
        let body = json!({ "target": id, "type": "increment", "value": 5 });
        assert_ok(&app.send(Method::POST, &path, &s.admin, &body).await, 200);
    }

    let context = CommandContext::new(uuid::Uuid::now_v7(), Actor::system(), chrono::Utc::now());
    let user = UserId::parse(&id).expect("an id");
    execute::<User, _>(&*app.store, &user, &context, 4, |_| {
        Ok(UserCommand::ChangeCredits(CreditsChange::Decrement(
            Credits::new(10),
        )))
    })
    .await
    .expect("spent elsewhere");

    let before = app.log_length().await;
    let answer = app
        .post(
            &path,
            &s.admin,
            &json!({ "target": id, "type": "decrement", "value": 1 }),
        )
        .await;
    assert_refused(app, before, answer, 400, "InsufficientCredits").await;
    assert_eq!(view(&s, &id).await["credits"], 0);
}

#[tokio::test]
async fn credits_change_and_never_go_negative() {
    let s = setup().await;
    let app = &s.app;
    let [id] = <[String; 1]>::try_from(create(&s, &["credit_user"]).await).expect("one");
    let path = format!("{ADMIN}/credits");

    assert_ok(
        &app.send(
            Method::POST,
            &path,
            &s.admin,
            &json!({ "target": id, "type": "increment", "value": 10 }),
        )
        .await,
        200,
    );
    assert_ok(
        &app.send(
            Method::POST,
            &format!("{CLIENT}/credits"),
            &s.client,
            &json!({ "target": id, "type": "decrement", "value": 3 }),
        )
        .await,
        200,
    );
    assert_eq!(view(&s, &id).await["credits"], 7);
    // A string of digits is a number, as Liquid's validator takes it.
    assert_ok(
        &app.send(
            Method::POST,
            &path,
            &s.admin,
            &json!({ "target": id, "type": "increment", "value": "5" }),
        )
        .await,
        200,
    );
    assert_eq!(view(&s, &id).await["credits"], 12);
    let (status, refused, _) = app
        .send(
            Method::POST,
            &path,
            &s.admin,
            &json!({ "target": id, "type": "increment", "value": "5.5" }),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(view(&s, &id).await["credits"], 12);
    assert_ok(
        &app.send(
            Method::POST,
            &path,
            &s.admin,
            &json!({ "target": id, "operation": "set", "value": 20 }),
        )
        .await,
        200,
    );
    assert_eq!(view(&s, &id).await["credits"], 20);

    // No-ops answer 200 and append nothing.
    let before = app.log_length().await;
    for body in [
        json!({ "target": id, "type": "set", "value": 20 }),
        json!({ "target": id, "type": "increment", "value": 0 }),
    ] {
        let (status, answer, _) = app.send(Method::POST, &path, &s.admin, &body).await;
        assert_eq!(status, 200, "{answer}");
    }
    assert_eq!(app.log_length().await, before);

    // A decrement beyond the balance changes nothing.
    let answer = app
        .post(
            &path,
            &s.admin,
            &json!({ "target": id, "type": "decrement", "value": 21 }),
        )
        .await;
    assert_refused(app, before, answer, 400, "InsufficientCredits").await;
    assert_eq!(view(&s, &id).await["credits"], 20);

    for (body, expected) in [
        (
            json!({ "target": id, "type": "increment", "value": -1 }),
            vec!["value"],
        ),
        (
            json!({ "target": id, "type": "increment", "value": 1.5 }),
            vec!["value"],
        ),
        (
            json!({ "target": id, "type": "increment", "value": "five" }),
            vec!["value"],
        ),
        (
            json!({ "target": id, "type": "multiply", "value": 2 }),
            vec!["type"],
        ),
        (json!({ "target": id }), vec!["type", "value"]),
        (json!({ "type": "set", "value": 1 }), vec!["target"]),
    ] {
        let answer = app.post(&path, &s.admin, &body).await;
        let refused = assert_refused(app, before, answer, 400, "ClientInputError").await;
        assert_eq!(error_paths(&refused), expected, "{body}");
    }
    let answer = app
        .post(
            &path,
            &s.admin,
            &json!({ "target": UserId::new().to_string(), "type": "set", "value": 1 }),
        )
        .await;
    assert_refused(app, before, answer, 404, "NotFound").await;
}

/// Invariant 1: 1,000 concurrent increments on one user end exact: every increment answered
/// 200 is counted once, none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_increments_end_exact() {
    test_support::init_test_log();
    let mut settings = test_support::app::test_settings();
    // Writers racing on one stream each retry until their append lands; the default bound (8)
    // is for real traffic, where one user rarely sees this many concurrent writes.
    settings.command_attempts = CONCURRENT_INCREMENTS * 4;
    let app = test_support::app::spawn_app_with(settings).await;
    let admin = app.admin_token().await;
    let client = app.client_token().await;
    let s = Setup { app, admin, client };
    let [id] = <[String; 1]>::try_from(create(&s, &["busy_wallet"]).await).expect("one");
    let path = format!("{CLIENT}/credits");
    let body = json!({ "target": id, "type": "increment", "value": 1 });
    let statuses: Vec<u16> = futures::stream::iter(0..1_000)
        .map(|_| {
            let (app, path, token, body) = (&s.app, path.clone(), s.client.clone(), body.clone());
            async move { app.post(&path, &token, &body).await.0 }
        })
        .buffer_unordered(CONCURRENT_INCREMENTS)
        .collect()
        .await;
    let failed: Vec<&u16> = statuses.iter().filter(|s| **s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of 1000 failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert_eq!(view(&s, &id).await["credits"], 1_000);
    let increments = stream(&s.app, &id)
        .await
        .iter()
        .filter(|e| e.event_type == "CreditsIncreased")
        .count();
    assert_eq!(increments, 1_000);
}

const CONCURRENT_INCREMENTS: usize = 8;

// ---------------------------------------------------------------------------------------------
// access
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn access_changes_the_scopes_of_users_clients_and_roles() {
    let s = setup().await;
    let app = &s.app;
    let ids = create(&s, &["scoped_one", "scoped_two"]).await;
    let path = format!("{ADMIN}/access");
    let access = |targets: Value, target_type: &str, scope: Value, operation: &str| json!({ "targets": targets, "targetType": target_type, "scope": scope, "operation": operation });

    let answer = app
        .send(
            Method::POST,
            &path,
            &s.admin,
            &access(
                json!(ids),
                "user",
                json!(["admin:profile:read", "delegated:all"]),
                "add",
            ),
        )
        .await;
    assert_ok(&answer, 200);
    for id in &ids {
        assert_eq!(
            view(&s, id).await["scope"],
            json!(["admin:profile:read", "delegated:all"])
        );
    }
    let answer = app
        .send(
            Method::POST,
            &format!("{CLIENT}/access"),
            &s.client,
            &access(
                json!([ids[0]]),
                "user",
                json!(["admin:profile:read"]),
                "del",
            ),
        )
        .await;
    assert_ok(&answer, 200);
    assert_eq!(view(&s, &ids[0]).await["scope"], json!(["delegated:all"]));
    let answer = app
        .send(
            Method::POST,
            &path,
            &s.admin,
            &access(
                json!([ids[1]]),
                "user",
                json!(["client:profile:read"]),
                "set",
            ),
        )
        .await;
    assert_ok(&answer, 200);
    assert_eq!(
        view(&s, &ids[1]).await["scope"],
        json!(["client:profile:read"])
    );

    // Clients and roles.
    let client_id = holder(app, "client-id", CLIENT_ID)
        .await
        .expect("the bootstrap client");
    let answer = app
        .send(
            Method::POST,
            &path,
            &s.admin,
            &access(
                json!([client_id]),
                "client",
                json!(["admin:profile:read"]),
                "add",
            ),
        )
        .await;
    assert_ok(&answer, 200);
    let client_events = app.stream(&format!("client-{client_id}")).await;
    assert_eq!(
        client_events.last().expect("an event").event_type,
        "ApplicationScopesChanged"
    );
    let answer = app
        .send(
            Method::POST,
            &path,
            &s.admin,
            &access(
                json!(["user"]),
                "role",
                json!(["delegated:profile:read"]),
                "add",
            ),
        )
        .await;
    assert_ok(&answer, 200);
    let role_events = app.stream("role-user").await;
    assert_eq!(
        role_events.last().expect("an event").data["scope"],
        json!(["delegated:profile:read"])
    );

    // Refusals: unknown scopes and scopes the caller does not hold are named; unknown
    // targets of each type; bad shapes.
    let (_, admin_token) = user_with_role(&s, "an_admin", "admin").await;
    let before = app.log_length().await;
    let answer = app
        .post(
            &path,
            &admin_token,
            &access(
                json!([ids[0]]),
                "user",
                json!(["admin:profile:read", "no:such:scope", "client:all"]),
                "add",
            ),
        )
        .await;
    let body = assert_refused(app, before, answer, 400, "ClientInputError").await;
    assert_eq!(error_paths(&body), ["scope[1]", "scope[2]"]);
    assert_eq!(body["additionalInfo"]["errors"][1]["value"], "client:all");
    let answer = app
        .post(
            &path,
            &s.admin,
            &access(
                json!([ids[0], UserId::new().to_string()]),
                "user",
                json!(["delegated:all"]),
                "set",
            ),
        )
        .await;
    assert_refused(app, before, answer, 404, "NotFound").await;
    let answer = app
        .post(
            &path,
            &s.admin,
            &access(
                json!([UserId::new().to_string()]),
                "client",
                json!(["delegated:all"]),
                "add",
            ),
        )
        .await;
    assert_refused(app, before, answer, 400, "InvalidTarget").await;
    let answer = app
        .post(
            &path,
            &s.admin,
            &access(
                json!(["no_such_role"]),
                "role",
                json!(["delegated:all"]),
                "add",
            ),
        )
        .await;
    assert_refused(app, before, answer, 400, "NotFound").await;
    let answer = app
        .post(
            &path,
            &s.admin,
            &access(json!([]), "group", json!("delegated:all"), "merge"),
        )
        .await;
    let body = assert_refused(app, before, answer, 400, "ClientInputError").await;
    let mut paths = error_paths(&body);
    paths.sort();
    assert_eq!(paths, ["operation", "scope", "targetType", "targets"]);
    // An admin cannot strip the super_admin role (it does not out-rank it).
    let answer = app
        .post(
            &path,
            &admin_token,
            &access(json!(["super_admin"]), "role", json!([]), "set"),
        )
        .await;
    assert_refused(app, before, answer, 401, "InsufficientPrivileges").await;
}

// ---------------------------------------------------------------------------------------------
// subscription, custom data, invite codes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn subscriptions_are_recorded_and_shown_hydrated() {
    let s = setup().await;
    let app = &s.app;
    let [id] = <[String; 1]>::try_from(create(&s, &["subscriber"]).await).expect("one");
    let path = format!("{ADMIN}/subscription");
    let future = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let past = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();

    let body = json!({ "target": id, "state": true, "expiry": future, "tier": "premium", "subscriptionIdentifier": 12345 });
    assert_ok(&app.send(Method::POST, &path, &s.admin, &body).await, 200);
    let user = view(&s, &id).await;
    assert_eq!(user["isSubscribed"], true);
    assert_eq!(user["subscriptionTier"], "premium");
    assert_eq!(user["subscriptionIdentifier"], "12345");
    assert!(
        is_iso_millis(&user["subscriptionExpiry"])
            && is_iso_millis(&user["subscriptionActivatedAt"]),
        "{user}"
    );

    let cancel = format!("{CLIENT}/subscription-cancel");
    assert_ok(
        &app.send(
            Method::POST,
            &cancel,
            &s.client,
            &json!({ "target": id, "cancelled": true }),
        )
        .await,
        200,
    );
    let user = view(&s, &id).await;
    assert_eq!(user["subscriptionCancelled"], true);
    assert!(is_iso_millis(&user["subscriptionCancelledAt"]));

    // An expired subscription shows as not subscribed, on the base tier.
    let body = json!({ "target": id, "state": true, "expiry": past, "tier": "premium" });
    assert_ok(
        &app.send(
            Method::POST,
            &format!("{CLIENT}/subscription"),
            &s.client,
            &body,
        )
        .await,
        200,
    );
    let user = view(&s, &id).await;
    assert_eq!(
        (
            user["isSubscribed"].clone(),
            user["subscriptionTier"].clone()
        ),
        (json!(false), json!("basic"))
    );
    assert_ok(
        &app.send(
            Method::POST,
            &path,
            &s.admin,
            &json!({ "target": id, "state": false }),
        )
        .await,
        200,
    );

    let before = app.log_length().await;
    for (body, expected) in [
        (json!({ "target": id, "state": true }), vec!["expiry"]),
        (
            json!({ "target": id, "state": true, "expiry": "tomorrow" }),
            vec!["expiry"],
        ),
        (
            json!({ "target": id, "state": true, "expiry": future, "tier": "gold" }),
            vec!["tier"],
        ),
        (
            json!({ "target": id, "state": true, "expiry": future, "subscriptionIdentifier": [1] }),
            vec!["subscriptionIdentifier"],
        ),
        (json!({ "target": id, "state": "on" }), vec!["state"]),
    ] {
        let answer = app.post(&path, &s.admin, &body).await;
        let refused = assert_refused(app, before, answer, 400, "ClientInputError").await;
        assert_eq!(error_paths(&refused), expected, "{body}");
    }
    let answer = app
        .post(
            &cancel,
            &s.client,
            &json!({ "target": id, "cancelled": "yes" }),
        )
        .await;
    assert_refused(app, before, answer, 400, "ClientInputError").await;
    let answer = app
        .post(
            &cancel,
            &s.client,
            &json!({ "target": UserId::new().to_string(), "cancelled": true }),
        )
        .await;
    assert_refused(app, before, answer, 404, "NotFound").await;
}

#[tokio::test]
async fn custom_data_replaces_the_whole_value() {
    let s = setup().await;
    let app = &s.app;
    let [id] = <[String; 1]>::try_from(create(&s, &["custom_user"]).await).expect("one");
    let path = format!("{ADMIN}/custom-data");

    let data = json!({ "theme": "dark", "nested": { "a": [1, 2, 3] } });
    assert_ok(
        &app.send(
            Method::PUT,
            &path,
            &s.admin,
            &json!({ "target": id, "customData": data }),
        )
        .await,
        200,
    );
    assert_eq!(view(&s, &id).await["customData"], data);
    assert_ok(
        &app.send(
            Method::PUT,
            &format!("{CLIENT}/custom-data"),
            &s.client,
            &json!({ "target": id, "customData": { "only": 1 } }),
        )
        .await,
        200,
    );
    assert_eq!(view(&s, &id).await["customData"], json!({ "only": 1 }));
    assert_ok(
        &app.send(
            Method::PUT,
            &path,
            &s.admin,
            &json!({ "target": id, "customData": null }),
        )
        .await,
        200,
    );
    assert_eq!(view(&s, &id).await["customData"], Value::Null);
    assert_ok(
        &app.send(
            Method::PUT,
            &path,
            &s.admin,
            &json!({ "target": id, "customData": true }),
        )
        .await,
        200,
    );

    let before = app.log_length().await;
    let too_big = json!({ "blob": "x".repeat(app.settings.custom_data_limit) });
    for body in [
        json!({ "target": id, "customData": [1, 2] }),
        json!({ "target": id, "customData": "text" }),
        json!({ "target": id, "customData": 7 }),
        json!({ "target": id }),
        json!({ "target": id, "customData": too_big }),
    ] {
        let answer = app.put(&path, &s.admin, &body).await;
        let refused = assert_refused(app, before, answer, 400, "ClientInputError").await;
        assert_eq!(error_paths(&refused), ["customData"]);
    }
    let answer = app
        .put(
            &path,
            &s.admin,
            &json!({ "target": UserId::new().to_string(), "customData": {} }),
        )
        .await;
    assert_refused(app, before, answer, 404, "NotFound").await;
}

#[tokio::test]
async fn invite_codes_are_generated_up_to_fifteen_at_once() {
    let s = setup().await;
    let app = &s.app;
    let [id] = <[String; 1]>::try_from(create(&s, &["inviter"]).await).expect("one");
    let path = format!("{ADMIN}/invite-codes");
    let is_code = |code: &Value| {
        let code = code.as_str().unwrap_or_default();
        let parts: Vec<&str> = code.split('-').collect();
        parts.len() == 3
            && parts[0].len() == 4
            && parts[0].chars().all(|c| c.is_ascii_uppercase())
            && parts[1].len() == 4
            && parts[1].chars().all(|c| c.is_ascii_digit())
            && parts[2].parse::<u64>().is_ok()
    };

    let body = assert_ok(
        &app.send(Method::POST, &path, &s.admin, &json!({ "target": id }))
            .await,
        200,
    );
    let codes = body["data"]["inviteCodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(codes.len(), 5);
    assert!(
        codes
            .iter()
            .all(|c| is_code(&c["code"]) && is_iso_millis(&c["createdAt"])),
        "{body}"
    );
    let body = assert_ok(
        &app.send(
            Method::POST,
            &format!("{CLIENT}/invite-codes"),
            &s.client,
            // A string of digits, as Liquid's validator takes it.
            &json!({ "target": id, "count": "15" }),
        )
        .await,
        200,
    );
    assert_eq!(
        body["data"]["inviteCodes"].as_array().map(Vec::len),
        Some(15)
    );
    let generated = stream(app, &id)
        .await
        .iter()
        .filter(|e| e.event_type == "InviteCodesGenerated")
        .count();
    assert_eq!(generated, 2);

    let before = app.log_length().await;
    let answer = app
        .post(&path, &s.admin, &json!({ "target": id, "count": 16 }))
        .await;
    assert_refused(
        app,
        before,
        answer,
        400,
        "GenerationTargetExceededForRequest",
    )
    .await;
    for count in [json!(0), json!(-1), json!("three"), json!("0"), json!(2.5)] {
        let answer = app
            .post(&path, &s.admin, &json!({ "target": id, "count": count }))
            .await;
        let refused = assert_refused(app, before, answer, 400, "ClientInputError").await;
        assert_eq!(error_paths(&refused), ["count"]);
    }
    let answer = app
        .post(
            &path,
            &s.admin,
            &json!({ "target": UserId::new().to_string() }),
        )
        .await;
    assert_refused(app, before, answer, 404, "NotFound").await;
}

#[tokio::test]
async fn invite_only_gives_every_new_user_codes() {
    test_support::init_test_log();
    let mut settings = test_support::app::test_settings();
    settings.invite_only = true;
    let app = test_support::app::spawn_app_with(settings).await;
    let admin = app.admin_token().await;
    let client = app.client_token().await;
    let s = Setup { app, admin, client };
    let [id] = <[String; 1]>::try_from(create(&s, &["invited_one"]).await).expect("one");
    let events = stream(&s.app, &id).await;
    assert_eq!(
        event_types(&events),
        ["UserCreated", "UserPasswordSet", "InviteCodesGenerated"]
    );
    assert_eq!(events[2].data["codes"].as_array().map(Vec::len), Some(5));
}
