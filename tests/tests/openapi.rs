//! The OpenAPI document (`GET /openapi.json`) and its page (`GET /docs`).
//!
//! How the document stays complete: routes can only be mounted through
//! `http_edge::openapi::Routes::route`, which takes the route's documentation and reads
//! the path and method the router answers from it, so a served route is always documented
//! (axum cannot list a router's routes, so this is enforced by construction, not by a test).
//! These tests check the rest, against the running service:
//! - the document's routes are exactly [`CONTRACT`] (the routes of API.md and of the README's
//!   additions): a route dropped, renamed or added without updating this list fails;
//! - every documented route answers (neither 405 nor the unknown-route 404), in `serve` and in
//!   the split `command` and `query` processes, whose documents hold exactly their own routes;
//! - every documented scope is the one the route checks: a caller without it gets 401
//!   InsufficientPrivileges naming a scope the document lists;
//! - the user, role and application schemas have the keys the API answers;
//! - every JSON body enforces what its schema states (lengths, patterns, enums, bounds,
//!   formats, types, required properties).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use command_service::Application;
use reqwest::Method;
use serde_json::{json, Value};
use test_support::app::{error_paths, test_settings};
use test_support::{spawn_app, TestDatabase};

/// Every route of the API: API.md §2 to §5, and the README's history, status, metrics,
/// health and documentation routes.
const CONTRACT: &[(&str, &str)] = &[
    ("POST", "/oauth/token"),
    ("POST", "/oauth/introspect"),
    ("GET", "/oauth/authorize"),
    ("POST", "/oauth/authorize"),
    ("GET", "/"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/user/login"),
    ("GET", "/user/session-state"),
    ("GET", "/user/logout"),
    ("GET", "/user/logout-all"),
    ("GET", "/user/login-history"),
    ("GET", "/health"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/projections/status"),
    ("GET", "/metrics"),
    ("GET", "/ready"),
    ("POST", "/user/admin-api/verify"),
    ("POST", "/user/admin-api/erase"),
    ("GET", "/user/admin-api/subscription-tiers"),
    ("GET", "/user/client-api/block-status"),
    ("GET", "/user/client-api/follow-status"),
    ("GET", "/user/client-api/user-followers"),
    ("GET", "/user/client-api/followers"),
    ("GET", "/user/client-api/user-following"),
    ("GET", "/user/client-api/following"),
    ("POST", "/client/admin-api/create"),
    ("PATCH", "/client/admin-api/update"),
    ("DELETE", "/client/admin-api/delete"),
    ("GET", "/client/admin-api/list"),
    ("GET", "/client/admin-api/history"),
    ("GET", "/roles/list"),
    ("GET", "/roles/admin-api/history"),
    ("GET", "/user/scopes"),
    ("GET", "/system/version"),
    ("GET", "/client/{clientId}"),
    ("GET", "/client"),
    ("GET", "/system/settings-insecure"),
    ("GET", "/system/settings"),
    ("GET", "/user/me"),
    ("GET", "/system/countries-insecure"),
    ("GET", "/system/admin-api/stats"),
    ("GET", "/system/client-api/stats"),
    ("POST", "/user/search"),
    ("GET", "/user/{userId}"),
    ("GET", "/user/info/{userId}"),
    ("PATCH", "/user/me"),
    ("POST", "/user/follow"),
    ("POST", "/user/unfollow"),
    ("POST", "/user/block"),
    ("POST", "/user/unblock"),
    ("POST", "/user/private"),
    ("PATCH", "/user/follow-request"),
    ("DELETE", "/user/follow-entry"),
    ("GET", "/user/follow-requests"),
    ("GET", "/user/follow-status"),
    ("GET", "/user/follow-status/{userId}"),
    ("GET", "/user/following"),
    ("GET", "/user/followers"),
    ("GET", "/user/{userId}/following"),
    ("GET", "/user/{userId}/followers"),
];

/// The user routes of both edges (`/user/admin-api/*` and `/user/client-api/*`).
const USER_ROUTES_ON_BOTH_EDGES: &[(&str, &str)] = &[
    ("POST", "create"),
    ("PATCH", "update"),
    ("PUT", "custom-data"),
    ("POST", "ban"),
    ("POST", "restrict"),
    ("POST", "credits"),
    ("POST", "access"),
    ("POST", "subscription"),
    ("POST", "subscription-cancel"),
    ("GET", "editable-fields"),
    ("GET", "list"),
    ("POST", "retrieve-user-info"),
    ("GET", "user-info"),
    ("GET", "invite-codes"),
    ("POST", "invite-codes"),
    ("GET", "login-history"),
    ("GET", "history"),
    ("POST", "search"),
];

/// The role writes of both edges (`/roles/admin-api/*` and `/roles/client-api/*`).
const ROLE_ROUTES_ON_BOTH_EDGES: &[(&str, &str)] = &[
    ("POST", "create"),
    ("PATCH", "update"),
    ("DELETE", "delete"),
];

/// The routes only a write-side process (`userledger command`) serves.
fn is_write(method: &str, path: &str) -> bool {
    const READS: [&str; 21] = [
        "list",
        "search",
        "{userId}",
        "countries-insecure",
        "stats",
        "scopes",
        "version",
        "retrieve-user-info",
        "user-info",
        "login-history",
        "editable-fields",
        "subscription-tiers",
        "history",
        "block-status",
        "follow-status",
        "user-followers",
        "followers",
        "user-following",
        "following",
        "follow-requests",
        "status",
    ];
    let last = path.rsplit('/').next().unwrap_or_default();
    // `GET` invite-codes and `/user/me` read; `POST` invite-codes and `PATCH /user/me` write.
    !(READS.contains(&last) || (method == "GET" && ["invite-codes", "me"].contains(&last)))
}

/// Served by every process.
fn is_everywhere(path: &str) -> bool {
    ["/health", "/openapi.json", "/docs", "/metrics", "/ready"].contains(&path)
}

fn contract() -> BTreeSet<(String, String)> {
    let mut routes: BTreeSet<(String, String)> = CONTRACT
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    for edge in ["admin", "client"] {
        for (method, path) in USER_ROUTES_ON_BOTH_EDGES {
            routes.insert((method.to_string(), format!("/user/{edge}-api/{path}")));
        }
        for (method, path) in ROLE_ROUTES_ON_BOTH_EDGES {
            routes.insert((method.to_string(), format!("/roles/{edge}-api/{path}")));
        }
    }
    routes
}

/// Every operation of a document: (METHOD, path) -> operation.
fn operations(document: &Value) -> BTreeMap<(String, String), Value> {
    let mut found = BTreeMap::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            found.insert((method.to_uppercase(), path.clone()), operation.clone());
        }
    }
    found
}

async fn fetch_document(http: &reqwest::Client, address: &str) -> Value {
    let response = http
        .get(format!("{address}/openapi.json"))
        .send()
        .await
        .expect("the service answers");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let document: Value = response.json().await.expect("JSON");
    assert_eq!(document["openapi"], "3.1.0");
    document
}

/// Sends every documented route a tokenless request; none may be unknown to the router.
async fn assert_every_documented_route_answers(
    http: &reqwest::Client,
    address: &str,
    document: &Value,
) {
    for (method, path) in operations(document).keys() {
        let response = http
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{address}{path}"),
            )
            .json(&json!({}))
            .send()
            .await
            .expect("the service answers");
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_ne!(
            status, 405,
            "{method} {path} is documented but not served: {body}"
        );
        assert!(
            !(status == 404 && body["additionalInfo"]["path"] == path.as_str()),
            "{method} {path} is documented but not served: {body}"
        );
    }
}

/// Every `$ref` of the document names one of its schemas.
fn assert_references_resolve(document: &Value, at: &str, value: &Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                let name = reference
                    .strip_prefix("#/components/schemas/")
                    .unwrap_or_else(|| panic!("{at}: an unexpected reference {reference}"));
                assert!(
                    document["components"]["schemas"].get(name).is_some(),
                    "{at}: {reference} is not in the document"
                );
            }
            for (key, inner) in map {
                assert_references_resolve(document, &format!("{at}/{key}"), inner);
            }
        }
        Value::Array(items) => {
            for item in items {
                assert_references_resolve(document, at, item);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn the_document_lists_every_route_of_the_contract_and_each_is_served() {
    let app = spawn_app().await;
    let document = fetch_document(&app.http, &app.address).await;

    let documented: BTreeSet<(String, String)> = operations(&document).into_keys().collect();
    let expected = contract();
    let missing: Vec<_> = expected.difference(&documented).collect();
    let unexpected: Vec<_> = documented.difference(&expected).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the document: {missing:?}"
    );
    assert!(
        unexpected.is_empty(),
        "documented routes the contract does not have (add them to CONTRACT): {unexpected:?}"
    );
    assert_every_documented_route_answers(&app.http, &app.address, &document).await;
    assert_references_resolve(&document, "", &document);

    for ((method, path), operation) in operations(&document) {
        let at = format!("{method} {path}");
        assert!(
            operation["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{at}: a summary"
        );
        let responses = operation["responses"].as_object().expect("responses");
        assert!(
            responses
                .keys()
                .any(|status| status.starts_with('2') || status.starts_with('3')),
            "{at}: a success answer"
        );
        // Token-protected prefixes (the Caller's rule) have a security requirement naming
        // the token kind of their edge, with scopes, and document the 401s.
        let scheme = if path.starts_with("/user/client-api/")
            || path.starts_with("/roles/client-api/")
            || path.starts_with("/system/client-api/")
            || path == "/oauth/introspect"
        {
            Some("client")
        } else if path.starts_with("/user/admin-api/")
            || path == "/user/login-history"
            || path == "/system/settings"
            || path.starts_with("/system/admin-api/")
            || path == "/user/me"
            || path == "/user/search"
            || [
                "follow",
                "unfollow",
                "block",
                "unblock",
                "following",
                "followers",
                "private",
                "follow-request",
                "follow-entry",
                "follow-requests",
            ]
            .iter()
            .any(|route| path == format!("/user/{route}"))
            || path.starts_with("/user/follow-status")
            || path.ends_with("/following")
            || path.ends_with("/followers")
            || path.ends_with("/{userId}")
            || path.starts_with("/roles/")
            || path.starts_with("/client/admin-api/")
        {
            Some("delegated")
        } else {
            None
        };
        match scheme {
            Some(scheme) => {
                let requirements = operation["security"].as_array().expect("security");
                assert!(!requirements.is_empty(), "{at}: a security requirement");
                for requirement in requirements {
                    let scopes = requirement[scheme]
                        .as_array()
                        .unwrap_or_else(|| panic!("{at}: a {scheme} requirement: {requirement}"));
                    assert!(!scopes.is_empty(), "{at}: scopes");
                }
                let description = operation["description"].as_str().unwrap_or_default();
                assert!(
                    description.contains("**Scope check**: shared")
                        || description.contains("**Scope check**: session"),
                    "{at}: names its scope check: {description}"
                );
                assert!(responses.contains_key("401"), "{at}: documents 401");
            }
            None => assert!(operation.get("security").is_none(), "{at}: takes no token"),
        }
        if operation.get("requestBody").is_some() && path != "/oauth/token" {
            assert!(responses.contains_key("400"), "{at}: documents 400");
        }
    }
}

#[tokio::test]
async fn each_route_checks_the_scopes_its_document_lists() {
    let app = spawn_app().await;
    let document = fetch_document(&app.http, &app.address).await;
    // A delegated token with no admin or client scope: a plain user's, issued through an
    // application whose own scope grants nothing a route checks (a session check wants both).
    app.register_user("plain_user", "plain-password-1", "user")
        .await;
    let admin = app.admin_token().await;
    let register = |id: &str, grants: &[&str], scope: &[&str]| {
        json!({
            "id": id, "displayName": "Application of narrow scope",
            "role": "external_client", "grants": grants,
            "secret": format!("{id}-secret-1"), "scope": scope,
        })
    };
    for body in [
        // (Two-factor sign-in is not served yet: no route checks its scope.)
        register(
            "narrow_app",
            &["password"],
            &["delegated:profile:2fa:write"],
        ),
        // A client token with no scope: an external application given none.
        register("scopeless_app", &["client_credentials"], &[]),
    ] {
        let (status, body) = app.post("/client/admin-api/create", &admin, &body).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = app
        .token_request(&[
            ("grant_type", "password"),
            ("username", "plain_user"),
            ("password", "plain-password-1"),
            ("client_id", "narrow_app"),
            ("client_secret", "narrow_app-secret-1"),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    let user_token = body["access_token"].as_str().unwrap().to_owned();
    let (status, body) = app
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", "scopeless_app"),
            ("client_secret", "scopeless_app-secret-1"),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    let client_token = body["access_token"].as_str().unwrap().to_owned();

    let mut checked = 0;
    let mut protected = 0;
    for ((method, path), operation) in operations(&document) {
        let Some(requirements) = operation["security"].as_array() else {
            continue;
        };
        protected += 1;
        let documented: BTreeSet<&str> = requirements
            .iter()
            .flat_map(|r| r.as_object().unwrap().values())
            .flat_map(|scopes| scopes.as_array().unwrap())
            .map(|s| s.as_str().unwrap())
            .collect();
        let token = if requirements[0].get("client").is_some() {
            &client_token
        } else {
            &user_token
        };
        let (status, body) = app
            .call(
                Method::from_bytes(method.as_bytes()).unwrap(),
                &path,
                token,
                Some(&json!({})),
            )
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("InsufficientPrivileges")),
            "{method} {path}: {body}"
        );
        let required = body["additionalInfo"]["requiredScope"].as_str().unwrap();
        assert!(
            documented.contains(required),
            "{method} {path} checks {required}; the document lists {documented:?}"
        );
        checked += 1;
    }
    assert!(protected > 50, "{protected} token-protected routes");
    assert_eq!(
        checked, protected,
        "every token-protected route was checked"
    );
}

/// `(properties, required)` of a named schema, with those of the schemas it is `allOf`.
fn schema_keys(document: &Value, name: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut properties, mut required) = (BTreeSet::new(), BTreeSet::new());
    collect_keys(
        document,
        &document["components"]["schemas"][name],
        &mut properties,
        &mut required,
    );
    assert!(!properties.is_empty(), "{name} has properties");
    (properties, required)
}

fn collect_keys(
    document: &Value,
    schema: &Value,
    properties: &mut BTreeSet<String>,
    required: &mut BTreeSet<String>,
) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        return collect_keys(
            document,
            &document["components"]["schemas"][name],
            properties,
            required,
        );
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        collect_keys(document, part, properties, required);
    }
    if let Some(own) = schema["properties"].as_object() {
        properties.extend(own.keys().cloned());
    }
    for key in schema["required"].as_array().into_iter().flatten() {
        required.insert(key.as_str().unwrap().to_owned());
    }
}

fn assert_matches_schema(document: &Value, name: &str, object: &Value) {
    let keys: BTreeSet<String> = object
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    let (properties, required) = schema_keys(document, name);
    let undocumented: Vec<_> = keys.difference(&properties).collect();
    assert!(
        undocumented.is_empty(),
        "{name} lacks {undocumented:?}: {object}"
    );
    let absent: Vec<_> = required.difference(&keys).collect();
    assert!(
        absent.is_empty(),
        "{name} requires {absent:?}, absent from {object}"
    );
}

#[tokio::test]
async fn the_schemas_of_users_roles_and_applications_have_the_keys_the_api_answers() {
    let app = spawn_app().await;
    let document = fetch_document(&app.http, &app.address).await;
    let admin = app.admin_token().await;

    let (status, body) = app
        .call(Method::GET, "/user/admin-api/list", &admin, None)
        .await;
    assert_eq!(status, 200, "{body}");
    let user = &body["data"]["users"][0];
    assert_matches_schema(&document, "User", user);
    // Every property of a user is answered (none is only in the document).
    let (properties, _) = schema_keys(&document, "User");
    let keys: BTreeSet<String> = user.as_object().unwrap().keys().cloned().collect();
    assert_eq!(properties, keys);

    let (status, body) = app.call(Method::GET, "/roles/list", &admin, None).await;
    assert_eq!(status, 200, "{body}");
    for role in body["data"]["roles"].as_array().unwrap() {
        assert_matches_schema(&document, "Role", role);
    }

    let (status, body) = app
        .post(
            "/client/admin-api/create",
            &admin,
            &json!({
                "id": "documented_app", "displayName": "Documented application",
                "role": "internal_client", "grants": ["client_credentials"],
                "redirectUris": ["https://example.com/callback"], "secret": "documented-1",
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_matches_schema(&document, "CreatedClient", &body["data"]["client"]);
    let (status, body) = app
        .call(Method::GET, "/client/admin-api/list", &admin, None)
        .await;
    assert_eq!(status, 200, "{body}");
    for client in body["data"]["clients"].as_array().unwrap() {
        assert_matches_schema(&document, "Client", client);
    }

    // A body of the wrong shape, and fields that fail validation.
    for bad in [json!({}), json!([{ "username": "x" }])] {
        let (status, body) = app.post("/user/admin-api/create", &admin, &bad).await;
        assert_eq!(status, 400, "{body}");
        assert_matches_schema(&document, "ErrorEnvelope", &body);
        for error in body["additionalInfo"]["errors"].as_array().unwrap() {
            assert_matches_schema(&document, "FieldError", error);
        }
    }
}

#[tokio::test]
async fn the_interactive_page_is_served_from_the_service_itself() {
    let app = spawn_app().await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_redirects.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/docs/");

    let response = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = response.text().await.unwrap();
    assert!(page.contains("swagger-ui"), "{page}");
    assert!(
        !page.contains("https://"),
        "the page loads nothing from elsewhere: {page}"
    );

    let initializer =
        test_support::get_text(&app.http, &app.url("/docs/swagger-initializer.js")).await;
    assert!(initializer.contains("/openapi.json"), "{initializer}");
    for asset in ["swagger-ui-bundle.js", "swagger-ui.css"] {
        let response = app
            .http
            .get(app.url(&format!("/docs/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        assert!(response.bytes().await.unwrap().len() > 10_000, "{asset}");
    }
}

#[tokio::test]
async fn the_split_processes_document_exactly_the_routes_they_serve() {
    let database = TestDatabase::new().await.expect("a test database");
    let store = Arc::new(
        event_store::postgres::PostgresEventStore::connect(database.url(), 5)
            .await
            .expect("the store connects"),
    );
    let http = reqwest::Client::new();
    // `userledger command`: the write routes; `userledger query`: the read routes.
    let command = Application::build(
        "127.0.0.1:0".parse().unwrap(),
        store.clone(),
        Some(store.pool().clone()),
        test_settings(),
    )
    .await
    .expect("the write side builds");
    let query = http_edge::Server::build(
        "127.0.0.1:0".parse().unwrap(),
        test_settings().edge,
        store.clone(),
        Some(store.pool().clone()),
        query_service::router(query_service::AppState::new(
            store.clone(),
            Some(store.pool().clone()),
            test_settings().subscription_tiers,
        )),
    )
    .await
    .expect("the read side builds");
    let command_address = command.local_addr().unwrap();
    let query_address = query.local_addr().unwrap();
    tokio::spawn(command.run_until_stopped(std::future::pending()));
    tokio::spawn(query.run_until_stopped(std::future::pending()));
    for (address, writes) in [(command_address, true), (query_address, false)] {
        let address = format!("http://{address}");
        let document = fetch_document(&http, &address).await;
        let documented: BTreeSet<(String, String)> = operations(&document).into_keys().collect();
        let expected: BTreeSet<(String, String)> = contract()
            .into_iter()
            .filter(|(method, path)| is_everywhere(path) || is_write(method, path) == writes)
            .collect();
        assert_eq!(
            documented,
            expected,
            "the {} side",
            if writes { "write" } else { "read" }
        );
        assert_every_documented_route_answers(&http, &address, &document).await;
        assert_references_resolve(&document, "", &document);
    }
}

/// `schema` with its `$ref` followed.
fn resolved<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            resolved(document, &document["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// The alternatives of a property other than `null` (which a field may always be).
fn alternatives<'a>(document: &'a Value, schema: &'a Value) -> Vec<&'a Value> {
    let schema = resolved(document, schema);
    match schema["oneOf"].as_array() {
        Some(choices) => choices
            .iter()
            .map(|choice| resolved(document, choice))
            .filter(|choice| choice["type"] != "null")
            .collect(),
        None => vec![schema],
    }
}

/// The type of a schema, without `null`.
fn type_of(schema: &Value) -> Option<&str> {
    match &schema["type"] {
        Value::String(kind) => Some(kind.as_str()),
        Value::Array(kinds) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| *k != "null"),
        _ => None,
    }
}

/// Values that break a rule `schema` states, each with the rule; the error is expected at the
/// field itself or, for an array's items, at `[0]`.
fn violations(document: &Value, schema: &Value) -> Vec<(Value, String, bool)> {
    let choices = alternatives(document, schema);
    if choices.len() != 1 {
        // A choice of shapes (a value or "__unset__", an id or a one-id array, a string or a
        // number): a boolean fits none of them.
        if choices.iter().any(|c| type_of(c) == Some("boolean")) {
            return Vec::new();
        }
        return vec![(json!(true), "none of its shapes".into(), false)];
    }
    let schema = choices[0];
    let mut found = Vec::new();
    match type_of(schema) {
        Some("string") => {
            found.push((json!(12345), "a string".into(), false));
            let min = schema["minLength"].as_u64().map(|n| n as usize);
            let max = schema["maxLength"].as_u64().map(|n| n as usize);
            if let Some(max) = max {
                found.push((
                    json!("a".repeat(max + 1)),
                    format!("maxLength {max}"),
                    false,
                ));
            }
            if let Some(min) = min.filter(|min| *min > 0) {
                found.push((
                    json!("a".repeat(min - 1)),
                    format!("minLength {min}"),
                    false,
                ));
            }
            if let Some(names) = schema["enum"].as_array() {
                let outside = "none-of-the-names";
                assert!(!names.contains(&json!(outside)));
                found.push((json!(outside), "enum".into(), false));
            }
            let within = min.unwrap_or(1).max(1).min(max.unwrap_or(usize::MAX));
            if let Some(pattern) = schema["pattern"].as_str() {
                let candidate = "!".repeat(within);
                assert!(!regex::Regex::new(pattern).unwrap().is_match(&candidate));
                found.push((json!(candidate), format!("pattern {pattern}"), false));
            }
            if let Some("uuid" | "email" | "uri") = schema["format"].as_str() {
                let candidate = "z".repeat(within.max(3));
                found.push((json!(candidate), "its format".into(), false));
            }
        }
        Some("integer") => {
            // A whole number that may also come as a string of one (as Liquid takes it).
            let or_string = schema["type"]
                .as_array()
                .is_some_and(|kinds| kinds.contains(&json!("string")));
            let not_whole = if or_string { json!("one") } else { json!("1") };
            found.push((not_whole, "an integer".into(), false));
            found.push((json!(1.5), "an integer".into(), false));
            if let Some(min) = schema["minimum"].as_i64() {
                found.push((json!(min - 1), format!("minimum {min}"), false));
                if or_string {
                    found.push((
                        json!((min - 1).to_string()),
                        format!("minimum {min}"),
                        false,
                    ));
                }
            }
            if let Some(max) = schema["maximum"].as_u64() {
                found.push((json!(max + 1), format!("maximum {max}"), false));
            }
        }
        Some("boolean") => found.push((json!("yes"), "a boolean".into(), false)),
        Some("array") => {
            found.push((json!("not an array"), "an array".into(), false));
            if let Some(min) = schema["minItems"].as_u64().filter(|min| *min > 0) {
                let items = vec![json!("a"); min as usize - 1];
                found.push((json!(items), format!("minItems {min}"), false));
            }
            if let Some(max) = schema["maxItems"].as_u64() {
                let items = vec![json!("a"); max as usize + 1];
                found.push((json!(items), format!("maxItems {max}"), false));
            }
            for (item, rule, _) in violations(document, &schema["items"]) {
                found.push((json!([item]), format!("items: {rule}"), true));
            }
        }
        _ => {}
    }
    found
}

/// What the document states of a body is what the service enforces: for every JSON body of
/// every route, a value breaking any length, pattern, enum, bound, format or type that a
/// property's schema states is refused with 400 naming that property, and a body without its
/// required properties is refused naming each of them. Nothing probed reaches the log.
#[tokio::test]
async fn every_body_enforces_what_its_schema_states() {
    let app = spawn_app().await;
    let document = fetch_document(&app.http, &app.address).await;
    let admin = app.admin_token().await;
    let client = app.client_token().await;
    let log_before = app.log_length().await;
    let (mut bodies, mut probes) = (0, 0);
    for ((method, path), operation) in operations(&document) {
        let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
        if schema.is_null() {
            continue;
        }
        bodies += 1;
        let listed = schema["type"] == "array";
        let object = resolved(&document, if listed { &schema["items"] } else { schema });
        let security = operation["security"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let token = if security.iter().any(|r| r.get("client").is_some()) {
            &client
        } else {
            &admin
        };
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let wrap = |body: Value| if listed { json!([body]) } else { body };
        let at = |name: &str| {
            if listed {
                format!("[0].{name}")
            } else {
                name.to_owned()
            }
        };

        // An empty body lacks every required property (a body with none, `PATCH /user/me`'s,
        // may be empty: it changes nothing).
        let required = object["required"].as_array().cloned().unwrap_or_default();
        let (status, answer) = app
            .call(method.clone(), &path, token, Some(&wrap(json!({}))))
            .await;
        if required.is_empty() && !listed {
            assert_eq!(status, 200, "{method} {path} {{}}: {answer}");
        } else {
            assert_eq!(status, 400, "{method} {path} {{}}: {answer}");
        }
        let paths = error_paths(&answer);
        for name in &required {
            let name = at(name.as_str().unwrap());
            assert!(
                paths.contains(&name),
                "{method} {path}: `{name}` is required by the schema, not by the service: {answer}"
            );
        }

        let properties = object["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (name, property) in &properties {
            for (value, rule, in_items) in violations(&document, property) {
                let body = wrap(json!({ name.as_str(): value }));
                let (status, answer) = app.call(method.clone(), &path, token, Some(&body)).await;
                let expected = if in_items {
                    format!("{}[0]", at(name))
                } else {
                    at(name)
                };
                assert!(
                    status == 400 && error_paths(&answer).contains(&expected),
                    "{method} {path}: {name} = {value} breaks `{rule}`, which the schema states, \
                     but the answer does not refuse it at {expected}: {status} {answer}"
                );
                probes += 1;
            }
        }
    }
    println!("{bodies} JSON bodies, {probes} probes");
    assert!(bodies >= 25, "{bodies} JSON bodies");
    assert!(probes >= 200, "{probes} probes");
    assert_eq!(
        app.log_length().await,
        log_before,
        "a probe appended events"
    );
}
