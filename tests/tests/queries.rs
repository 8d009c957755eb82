//! The read routes (API.md §3 to §5) over HTTP, served by `query_service::router()` merged
//! beside the write routes in one app, with the read-model projectors running: answer shapes,
//! scopes, query validation, keyset paging under concurrent creates, and read-your-writes with
//! the consistency token (invariant 7).
//!
//! `spawn_app()` serves the write side only, so this file builds the same app with the query
//! routes mounted, as `userledger serve` will.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use event_store::postgres::PostgresEventStore;
use events::store::EventStore;
use serde_json::{json, Value};
use test_support::app::{test_settings, ADMIN_PASSWORD, ADMIN_USERNAME, CLIENT_ID, CLIENT_SECRET};
use test_support::wait::eventually;
use test_support::TestDatabase;
use tokio::sync::watch;

const PASSWORD: &str = "a-good-password-1";

/// The contract's user object keys (API.md §3).
const USER_KEYS: &str = "_id, username, firstName, middleName, lastName, email, sanitizedEmail, \
    emailVerified, phone, phoneCountryCode, phoneVerified, role, scope, gender, bio, designation, \
    pronouns, organization, customLink, preferredLanguage, country, profilePictureUrl, verified, \
    verifiedDate, verifiedBy, isPrivate, followingCount, followerCount, isSubscribed, \
    subscriptionTier, subscriptionExpiry, subscriptionActivatedAt, subscriptionIdentifier, \
    subscriptionCancelled, subscriptionCancelledAt, credits, isBanned, bannedDate, bannedBy, \
    bannedReason, isRestricted, restrictedDate, restrictedBy, restrictedReason, isDeleted, \
    deletedDate, customData, invitedBy, createdAt, updatedAt";

struct App {
    address: String,
    http: reqwest::Client,
    _stop: watch::Sender<bool>,
    _database: TestDatabase,
}

/// The write and read routes in one server, and the read-model projectors.
async fn spawn_app() -> App {
    let database = TestDatabase::new().await.expect("a test database");
    let store = Arc::new(
        PostgresEventStore::connect(database.url(), 20)
            .await
            .expect("the store connects"),
    );
    let pool = store.pool().clone();
    let reads = query_service::AppState::new(
        store.clone(),
        Some(pool.clone()),
        test_settings().subscription_tiers,
    );
    let app = command_service::Application::build_with(
        "127.0.0.1:0".parse().unwrap(),
        store.clone(),
        Some(pool),
        test_settings(),
        query_service::router(reads),
    )
    .await
    .expect("the application builds");
    let address = format!("http://{}", app.local_addr().unwrap());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let (stop, stopped) = watch::channel(false);
    let store: Arc<dyn EventStore> = store;
    let _models = projections::spawn_read_models(store, database.url(), stopped);
    App {
        address,
        http: reqwest::Client::new(),
        _stop: stop,
        _database: database,
    }
}

/// An answer: status, body, consistency token.
struct Reply {
    status: u16,
    body: Value,
    token: Option<String>,
}

impl App {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
        consistency: Option<&str>,
    ) -> Reply {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.address))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(consistency) = consistency {
            request = request.header("X-Consistency-Token", consistency);
        }
        let response = request.send().await.expect("the service answers");
        let status = response.status().as_u16();
        let token = response
            .headers()
            .get("x-consistency-token")
            .map(|v| v.to_str().unwrap().to_owned());
        Reply {
            status,
            body: response.json().await.unwrap_or(Value::Null),
            token,
        }
    }

    async fn get(&self, path: &str, token: &str, consistency: Option<&str>) -> Reply {
        self.send(reqwest::Method::GET, path, token, None, consistency)
            .await
    }

    async fn post(
        &self,
        path: &str,
        token: &str,
        body: &Value,
        consistency: Option<&str>,
    ) -> Reply {
        self.send(reqwest::Method::POST, path, token, Some(body), consistency)
            .await
    }

    async fn token(&self, form: &[(&str, &str)]) -> String {
        let response = self
            .http
            .post(format!("{}/oauth/token", self.address))
            .form(form)
            .send()
            .await
            .expect("the token endpoint answers");
        let body: Value = response.json().await.unwrap();
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("a token: {body}"))
            .to_owned()
    }

    async fn admin_token(&self) -> String {
        self.user_token(ADMIN_USERNAME, ADMIN_PASSWORD).await
    }

    async fn user_token(&self, username: &str, password: &str) -> String {
        self.token(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .await
    }

    async fn client_token(&self) -> String {
        self.token(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .await
    }

    /// Creates users through `POST /user/admin-api/create`; the write's consistency token.
    async fn create_users(&self, token: &str, usernames: &[String]) -> String {
        let body: Vec<Value> = usernames.iter().map(|u| new_user(u)).collect();
        let reply = self
            .post("/user/admin-api/create", token, &json!(body), None)
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply.token.expect("a consistency token")
    }

    /// Every user of `list`, page by page (`limit` per page).
    async fn list_ids(&self, token: &str, limit: usize) -> Vec<String> {
        let mut ids = Vec::new();
        let mut offset = String::new();
        loop {
            let reply = self
                .get(
                    &format!("/user/admin-api/list?limit={limit}&offset={offset}"),
                    token,
                    None,
                )
                .await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            let page = ids_of(&reply.body["data"]["users"]);
            if page.is_empty() {
                return ids;
            }
            offset = page.last().unwrap().clone();
            ids.extend(page);
        }
    }
}

fn new_user(username: &str) -> Value {
    json!({
        "username": username,
        "password": PASSWORD,
        "email": format!("{username}.Box+news@Gmail.com"),
        "firstName": "Test",
        "lastName": "User",
    })
}

fn ids_of(users: &Value) -> Vec<String> {
    users
        .as_array()
        .unwrap_or_else(|| panic!("users: {users}"))
        .iter()
        .map(|u| u["_id"].as_str().unwrap().to_owned())
        .collect()
}

fn usernames(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|n| format!("{prefix}_{n:03}")).collect()
}

fn assert_user_object(user: &Value) {
    let mut keys: Vec<&str> = user
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort();
    let mut expected: Vec<&str> = USER_KEYS.split(',').map(str::trim).collect();
    expected.sort();
    assert_eq!(keys, expected);
    let text = user.to_string();
    assert!(
        !text.contains("argon2") && !text.contains("password"),
        "{text}"
    );
}

fn query_error_paths(body: &Value) -> Vec<(String, String)> {
    assert_eq!(body["ok"], 0, "{body}");
    assert_eq!(body["error"], "ClientInputError", "{body}");
    body["additionalInfo"]["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("errors: {body}"))
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap_or_default().to_owned(),
                e["location"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn user_reads_answer_the_contract_shapes_on_both_edges() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let client = app.client_token().await;
    let names = usernames("reader", 3);
    let token = app.create_users(&admin, &names).await;

    let reply = app.get("/user/admin-api/list", &admin, Some(&token)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let data = &reply.body["data"];
    assert_eq!(data.as_object().unwrap().len(), 2, "{data}");
    assert_eq!(data["totalUsers"], 4, "the super_admin and three users");
    let users = data["users"].as_array().unwrap();
    assert_eq!(users.len(), 4);
    for user in users {
        assert_user_object(user);
        // Hydrated on read: never subscribed shows the base tier.
        assert_eq!(user["isSubscribed"], false);
        assert_eq!(user["subscriptionTier"], "basic");
    }
    let ids = ids_of(&data["users"]);
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "ordered by _id");
    let reader = users
        .iter()
        .find(|u| u["username"] == "reader_000")
        .unwrap();
    assert_eq!(reader["sanitizedEmail"], "reader_000box@gmail.com");
    let reader_id = reader["_id"].as_str().unwrap().to_owned();

    // The client edge serves the same users to client tokens only.
    let reply = app
        .get("/user/client-api/list?limit=2", &client, None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["data"]["users"].as_array().unwrap().len(), 2);
    assert_eq!(
        app.get("/user/client-api/list", &admin, None).await.status,
        401
    );
    assert_eq!(
        app.get("/user/admin-api/list", &client, None).await.status,
        401
    );
    assert_eq!(
        app.get("/user/admin-api/list", "not-a-token", None)
            .await
            .status,
        401
    );

    // A plain user's token lacks admin:profile:read.
    let plain = app.user_token("reader_001", PASSWORD).await;
    let reply = app.get("/user/admin-api/list", &plain, None).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(reply.body["error"], "InsufficientPrivileges");

    // retrieve-user-info by each field.
    for (field, target) in [
        ("_id", reader_id.clone()),
        ("email", "READER_000.Box+news@gmail.com".to_owned()),
        ("sanitizedEmail", "reader_000box@gmail.com".to_owned()),
    ] {
        for edge in ["admin", "client"] {
            let token = if edge == "admin" { &admin } else { &client };
            let reply = app
                .post(
                    &format!("/user/{edge}-api/retrieve-user-info"),
                    token,
                    &json!({ "targets": [target, "nobody@example.com"], "field": field }),
                    None,
                )
                .await;
            let reply = if field == "_id" {
                // A non-id target is refused on `_id` lookups; ask again with ids only.
                assert_eq!(reply.status, 400, "{}", reply.body);
                assert_eq!(
                    query_error_paths(&reply.body),
                    vec![("targets[1]".to_owned(), "body".to_owned())]
                );
                app.post(
                    &format!("/user/{edge}-api/retrieve-user-info"),
                    token,
                    &json!({ "targets": [target, uuid::Uuid::now_v7().to_string()] }),
                    None,
                )
                .await
            } else {
                reply
            };
            assert_eq!(reply.status, 200, "{field}: {}", reply.body);
            assert_eq!(
                ids_of(&reply.body["data"]["users"]),
                vec![reader_id.clone()]
            );
            assert_user_object(&reply.body["data"]["users"][0]);
        }
    }
    let too_many: Vec<String> = (0..651).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let reply = app
        .post(
            "/user/admin-api/retrieve-user-info",
            &admin,
            &json!({ "targets": too_many, "field": "phone" }),
            None,
        )
        .await;
    assert_eq!(reply.status, 400);
    let mut paths = query_error_paths(&reply.body);
    paths.sort();
    assert_eq!(
        paths,
        vec![
            ("field".to_owned(), "body".to_owned()),
            ("targets".to_owned(), "body".to_owned())
        ]
    );

    // A NUL character in a target is refused (PostgreSQL cannot compare text holding one).
    for field in ["email", "sanitizedEmail"] {
        let reply = app
            .post(
                "/user/admin-api/retrieve-user-info",
                &admin,
                &json!({ "targets": ["a\u{0}b@example.com"], "field": field }),
                None,
            )
            .await;
        assert_eq!(reply.status, 400, "{field}: {}", reply.body);
        assert_eq!(
            query_error_paths(&reply.body),
            vec![("targets[0]".to_owned(), "body".to_owned())],
            "{}",
            reply.body
        );
    }

    // user-info: comma-separated ids in the query.
    let pair = format!("{},{}", ids[1], ids[3]);
    for (edge, token) in [("admin", &admin), ("client", &client)] {
        let reply = app
            .get(
                &format!("/user/{edge}-api/user-info?targets={pair}"),
                token,
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            ids_of(&reply.body["data"]["users"]),
            vec![ids[1].clone(), ids[3].clone()]
        );
    }
    for bad in ["", "?targets=", "?targets=abc,def"] {
        let reply = app
            .get(&format!("/user/admin-api/user-info{bad}"), &admin, None)
            .await;
        assert_eq!(reply.status, 400, "{bad}: {}", reply.body);
        assert_eq!(
            query_error_paths(&reply.body),
            vec![("targets".to_owned(), "query".to_owned())]
        );
    }
}

#[tokio::test]
async fn list_limits_and_offsets_follow_liquid() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let token = app.create_users(&admin, &usernames("pager", 29)).await;
    // 30 users with the super_admin.
    let all = {
        let reply = app
            .get("/user/admin-api/list?limit=1000", &admin, Some(&token))
            .await;
        ids_of(&reply.body["data"]["users"])
    };
    assert_eq!(all.len(), 30);
    for (limit, expected) in [
        ("", 10),
        ("0", 10),
        ("junk", 10),
        ("-3", 10),
        ("25.7", 25),
        ("7", 7),
        ("5000", 30),
    ] {
        let reply = app
            .get(&format!("/user/admin-api/list?limit={limit}"), &admin, None)
            .await;
        assert_eq!(reply.status, 200, "{limit}: {}", reply.body);
        assert_eq!(
            ids_of(&reply.body["data"]["users"]),
            all[..expected].to_vec(),
            "limit={limit}"
        );
        assert_eq!(reply.body["data"]["totalUsers"], 30);
    }
    let reply = app
        .get(
            &format!("/user/admin-api/list?limit=5&offset={}", all[12]),
            &admin,
            None,
        )
        .await;
    assert_eq!(ids_of(&reply.body["data"]["users"]), all[13..18].to_vec());
    let reply = app
        .get("/user/admin-api/list?offset=not-an-id", &admin, None)
        .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(
        query_error_paths(&reply.body),
        vec![("offset".to_owned(), "query".to_owned())]
    );
}

#[tokio::test]
async fn paging_skips_and_repeats_nobody_while_users_are_created() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let token = app.create_users(&admin, &usernames("early", 20)).await;
    let reply = app
        .get("/user/admin-api/list?limit=1000", &admin, Some(&token))
        .await;
    let before = ids_of(&reply.body["data"]["users"]);
    assert_eq!(before.len(), 21);

    let mut seen = Vec::new();
    let mut offset = String::new();
    let mut created = 0;
    let mut last_token = token;
    loop {
        let reply = app
            .get(
                &format!("/user/admin-api/list?limit=4&offset={offset}"),
                &admin,
                Some(&last_token),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let page = ids_of(&reply.body["data"]["users"]);
        if page.is_empty() {
            break;
        }
        offset = page.last().unwrap().clone();
        seen.extend(page);
        // Between pages, others create users.
        if created < 5 {
            last_token = app
                .create_users(&admin, &usernames(&format!("late{created}"), 2))
                .await;
            created += 1;
        }
    }
    let distinct: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "no user repeated");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "pages in _id order");
    for id in &before {
        assert!(distinct.contains(id), "{id} skipped");
    }
    assert_eq!(seen.len(), 21 + 10, "late users land on later pages");
    assert_eq!(app.list_ids(&admin, 1000).await, seen);
}

#[tokio::test]
async fn configuration_routes_list_fields_and_tiers() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let client = app.client_token().await;
    let reply = app
        .get("/user/admin-api/editable-fields", &admin, None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let fields: Vec<&str> = reply.body["data"]["editableFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(fields.len(), 16, "a super_admin may write every field");
    let levels = &reply.body["data"]["sensitivityLevels"];
    for (field, level) in [
        ("firstName", "low"),
        ("preferredLanguage", "low"),
        ("email", "medium"),
        ("username", "high"),
        ("password", "high"),
        ("role", "high"),
        ("country", "high"),
        ("isDeleted", "extreme"),
    ] {
        assert_eq!(levels[field], level, "{field}");
    }
    let reply = app
        .get("/user/client-api/editable-fields", &client, None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(!reply.body["data"]["editableFields"]
        .as_array()
        .unwrap()
        .is_empty());

    let reply = app
        .get("/user/admin-api/subscription-tiers", &admin, None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body["data"],
        json!({ "subscriptionTiers": [
            { "name": "basic", "isBaseTier": true },
            { "name": "premium", "isBaseTier": false },
        ]})
    );
    // Admin only: no client-api route, and client tokens are refused on the admin one.
    assert_eq!(
        app.get("/user/client-api/subscription-tiers", &client, None)
            .await
            .status,
        404
    );
    assert_eq!(
        app.get("/user/admin-api/subscription-tiers", &client, None)
            .await
            .status,
        401
    );
    app.create_users(&admin, &usernames("plain", 1)).await;
    let plain = app.user_token("plain_000", PASSWORD).await;
    let reply = app
        .get("/user/admin-api/editable-fields", &plain, None)
        .await;
    assert_eq!(reply.status, 401, "{}", reply.body);
}

#[tokio::test]
async fn invite_codes_are_read_back_for_their_owner() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let client = app.client_token().await;
    let token = app.create_users(&admin, &usernames("inviter", 1)).await;
    let reply = app
        .post(
            "/user/admin-api/retrieve-user-info",
            &admin,
            &json!({ "targets": ["inviter_000box@gmail.com"], "field": "sanitizedEmail" }),
            Some(&token),
        )
        .await;
    let owner = ids_of(&reply.body["data"]["users"])[0].clone();
    let generated = app
        .post(
            "/user/admin-api/invite-codes",
            &admin,
            &json!({ "target": owner, "count": 3 }),
            None,
        )
        .await;
    assert_eq!(generated.status, 200, "{}", generated.body);
    let token = generated.token.expect("a consistency token");
    for (edge, bearer) in [("admin", &admin), ("client", &client)] {
        let reply = app
            .get(
                &format!("/user/{edge}-api/invite-codes?target={owner}"),
                bearer,
                Some(&token),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let codes = reply.body["data"]["inviteCodes"].as_array().unwrap();
        assert_eq!(codes.len(), 3);
        let mut listed: Vec<&str> = codes.iter().map(|c| c["code"].as_str().unwrap()).collect();
        listed.sort();
        let mut answered: Vec<&str> = generated.body["data"]["inviteCodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["code"].as_str().unwrap())
            .collect();
        answered.sort();
        assert_eq!(listed, answered);
        for code in codes {
            let keys: BTreeSet<&str> = code
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.as_str())
                .collect();
            assert_eq!(
                keys,
                BTreeSet::from(["code", "createdAt", "updatedAt"]),
                "{code}"
            );
            assert!(code["createdAt"].as_str().unwrap().ends_with('Z'));
        }
    }
    let unknown = uuid::Uuid::now_v7();
    let reply = app
        .get(
            &format!("/user/admin-api/invite-codes?target={unknown}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    for bad in ["", "?target=", "?target=abc"] {
        let reply = app
            .get(&format!("/user/admin-api/invite-codes{bad}"), &admin, None)
            .await;
        assert_eq!(reply.status, 400, "{bad}: {}", reply.body);
        assert_eq!(
            query_error_paths(&reply.body),
            vec![("target".to_owned(), "query".to_owned())]
        );
    }
}

#[tokio::test]
async fn clients_and_roles_are_listed_without_secrets() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let created = app
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
            None,
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let reply = app
        .get(
            "/client/admin-api/list",
            &admin,
            Some(&created.token.expect("a consistency token")),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let clients = reply.body["data"]["clients"].as_array().unwrap();
    let client_ids: Vec<&str> = clients.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(client_ids, vec![CLIENT_ID, "partner_app"]);
    // As the create answer showed it, less the secret it shows once.
    let mut shown = created.body["data"]["client"].clone();
    shown.as_object_mut().unwrap().remove("secret");
    assert_eq!(clients[1], shown);
    let text = reply.body.to_string();
    assert!(
        !text.contains("secret") && !text.contains("argon2"),
        "{text}"
    );
    let reply = app
        .get("/client/admin-api/list?limit=1", &admin, None)
        .await;
    assert_eq!(reply.body["data"]["clients"].as_array().unwrap().len(), 1);
    let reply = app
        .get(
            &format!(
                "/client/admin-api/list?offset={}",
                clients[0]["_id"].as_str().unwrap()
            ),
            &admin,
            None,
        )
        .await;
    assert_eq!(reply.body["data"]["clients"][0]["id"], "partner_app");

    let role = app
        .post(
            "/roles/admin-api/create",
            &admin,
            &json!({ "id": "moderator", "displayName": "Moderator", "ranking": 10 }),
            None,
        )
        .await;
    assert_eq!(role.status, 200, "{}", role.body);
    let reply = app
        .get("/roles/list", &admin, Some(&role.token.expect("a token")))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let roles = reply.body["data"]["roles"].as_array().unwrap();
    let ids: Vec<&str> = roles.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        vec![
            "super_admin",
            "admin",
            "internal_client",
            "moderator",
            "external_client",
            "user"
        ]
    );
    let moderator = roles.iter().find(|r| r["id"] == "moderator").unwrap();
    assert_eq!(moderator, &role.body["data"]["role"]);
    // Liquid's role types: the roles applications hold are `client`, every other `user`.
    let types: Vec<&str> = roles.iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["user", "user", "client", "user", "client", "user"]);

    // Scopes: a plain user lacks admin:system:client:read; its `delegated:all` grants
    // delegated:roles:read. Client tokens are refused on delegated routes.
    app.create_users(&admin, &usernames("nobody", 1)).await;
    let plain = app.user_token("nobody_000", PASSWORD).await;
    assert_eq!(
        app.get("/client/admin-api/list", &plain, None).await.status,
        401
    );
    assert_eq!(app.get("/roles/list", &plain, None).await.status, 200);
    let client = app.client_token().await;
    assert_eq!(app.get("/roles/list", &client, None).await.status, 401);
}

/// 1,000 create-then-retrieve pairs carrying the write's consistency token (four clients at a
/// time): every retrieve sees its create.
#[tokio::test]
async fn a_thousand_creates_are_read_back_at_once_with_their_token() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let client = |lane: usize| {
        let (app, admin) = (&app, &admin);
        async move {
            let mut misses = 0;
            for n in (lane..1_000).step_by(4) {
                let username = format!("ryw_user_{n:04}");
                let token = app
                    .create_users(admin, std::slice::from_ref(&username))
                    .await;
                let reply = app
                    .post(
                        "/user/admin-api/retrieve-user-info",
                        admin,
                        &json!({ "targets": [format!("{username}.Box+news@Gmail.com")], "field": "email" }),
                        Some(&token),
                    )
                    .await;
                assert_eq!(reply.status, 200, "{}", reply.body);
                let users = reply.body["data"]["users"].as_array().unwrap();
                if users.len() != 1 || users[0]["username"] != username.as_str() {
                    misses += 1;
                }
            }
            misses
        }
    };
    let misses: usize = futures::future::join_all((0..4).map(client))
        .await
        .into_iter()
        .sum();
    assert_eq!(misses, 0);
}

#[tokio::test]
async fn concurrent_lookups_by_id_each_get_exactly_their_users() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let token = app.create_users(&admin, &usernames("lookup", 40)).await;
    app.get("/user/admin-api/list?limit=1", &admin, Some(&token))
        .await;
    let all = app.list_ids(&admin, 100).await;
    assert_eq!(all.len(), 41); // and the bootstrap admin
    let nobody = uuid::Uuid::now_v7().to_string();
    // 64 requests at once, 5 times over, each naming its own ids (some twice, one of nobody),
    // half by POST retrieve-user-info and half by GET user-info.
    let request = |task: usize, round: usize| {
        let (app, admin, all, nobody) = (&app, &admin, &all, &nobody);
        async move {
            let mut named: Vec<String> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| (i * 7 + task + round).is_multiple_of(5))
                .map(|(_, id)| id.clone())
                .collect();
            let mut expected = named.clone();
            expected.sort();
            named.push(named[0].clone());
            named.insert(1, nobody.clone());
            named.reverse();
            let reply = if task.is_multiple_of(2) {
                app.post(
                    "/user/admin-api/retrieve-user-info",
                    admin,
                    &json!({ "targets": named }),
                    None,
                )
                .await
            } else {
                app.get(
                    &format!("/user/admin-api/user-info?targets={}", named.join(",")),
                    admin,
                    None,
                )
                .await
            };
            assert_eq!(reply.status, 200, "{}", reply.body);
            assert_eq!(
                ids_of(&reply.body["data"]["users"]),
                expected,
                "task {task} round {round}"
            );
        }
    };
    for round in 0..5 {
        futures::future::join_all((0..64).map(|task| request(task, round))).await;
    }
    // The lookups were served by fewer queries than there were lookups.
    let metrics = reqwest::get(format!("{}/metrics", app.address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counter = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    let (lookups, queries) = (
        counter("userledger_user_lookups_total"),
        counter("userledger_user_lookup_queries_total"),
    );
    assert_eq!(lookups, 320);
    assert!(queries < lookups, "{queries} queries for {lookups} lookups");
}

#[tokio::test]
async fn a_token_the_read_models_cannot_reach_is_503_and_a_bad_one_400() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let started = Instant::now();
    let reply = app
        .get("/user/admin-api/list", &admin, Some("9000000000000000000"))
        .await;
    let waited = started.elapsed();
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.body["ok"], 0);
    assert_eq!(reply.body["error"], "ServiceUnavailable");
    assert_eq!(
        reply.body["additionalInfo"]["consistencyToken"],
        "9000000000000000000"
    );
    assert!(reply.body["additionalInfo"]["reason"]
        .as_str()
        .unwrap()
        .contains("consistency token"));
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(5),
        "{waited:?}"
    );

    let reply = app
        .get("/user/admin-api/list", &admin, Some("yesterday"))
        .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(
        query_error_paths(&reply.body),
        vec![("x-consistency-token".to_owned(), "headers".to_owned())]
    );
    // Without a token a read answers at once.
    let started = Instant::now();
    assert_eq!(
        app.get("/user/admin-api/list", &admin, None).await.status,
        200
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// Subscriptions are hydrated for the time of reading: a live premium subscription shows as
/// such; an expired one, or one on the base tier, shows `isSubscribed: false` on the base tier.
#[tokio::test]
async fn subscriptions_are_shown_as_they_stand_at_reading_time() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let names = usernames("subscriber", 3);
    app.create_users(&admin, &names).await;
    let listed = app.get("/user/admin-api/list?limit=10", &admin, None).await;
    let find = |body: &Value, name: &str| -> Value {
        body["data"]["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let mut ids = Vec::new();
    for name in &names {
        let user = match find(&listed.body, name) {
            Value::Null => {
                eventually(
                    Duration::from_secs(10),
                    &format!("{name} is listed"),
                    || async {
                        let again = app.get("/user/admin-api/list?limit=10", &admin, None).await;
                        match find(&again.body, name) {
                            Value::Null => Err(again.body),
                            user => Ok(user),
                        }
                    },
                )
                .await
            }
            user => user,
        };
        ids.push(user["_id"].as_str().expect("an _id").to_owned());
    }
    let future = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let past = (chrono::Utc::now() - chrono::Duration::days(30)).to_rfc3339();
    let mut token = None;
    for (id, tier, expiry) in [
        (&ids[0], "premium", &future),
        (&ids[1], "premium", &past),
        (&ids[2], "basic", &future),
    ] {
        let reply = app
            .post(
                "/user/admin-api/subscription",
                &admin,
                &json!({ "target": id, "state": true, "tier": tier, "expiry": expiry }),
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        token = reply.token.or(token);
    }
    let reply = app
        .post(
            "/user/admin-api/retrieve-user-info",
            &admin,
            &json!({ "targets": ids }),
            token.as_deref(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let shown: Vec<(Value, Value)> = ids
        .iter()
        .map(|id| {
            let user = reply.body["data"]["users"]
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["_id"] == id.as_str())
                .cloned()
                .unwrap();
            (
                user["isSubscribed"].clone(),
                user["subscriptionTier"].clone(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            (json!(true), json!("premium")),
            (json!(false), json!("basic")),
            (json!(false), json!("basic")),
        ]
    );
}
