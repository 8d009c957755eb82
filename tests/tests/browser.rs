//! A person signs in through a real browser (Debian's chromium, driven by playwright-core from
//! `tests/browser/`): a stand-in single-page app on another 127.0.0.1 origin sends the browser
//! to the login page, the person types and submits, the app gets the code back, trades it for
//! tokens and makes the calls Liquid's admin UI, Nitrogen, makes on its first render and its
//! screens (issue 14) with `fetch()`, so the CORS preflights are real (the app's origin is
//! allowed because its redirect URI is registered, not by configuration). Each answer's shape
//! is checked here.
//!
//! Needs `/usr/bin/chromium` and `tests/browser/node_modules` (`scripts/install-deps` installs
//! both).

use std::path::Path;
use std::time::Duration;

use axum::response::Html;
use axum::routing::get;
use serde_json::{json, Value};
use test_support::app::{ADMIN_PASSWORD, ADMIN_USERNAME};
use test_support::{eventually, spawn_app};

const CLIENT_ID: &str = "stand_in_spa";

#[tokio::test]
async fn a_person_signs_in_through_a_browser_and_nitrogen_s_calls_answer() {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    assert!(
        Path::new("/usr/bin/chromium").exists() && browser_dir.join("node_modules").exists(),
        "the browser test needs /usr/bin/chromium and tests/browser/node_modules: run \
         scripts/install-deps"
    );
    let app = spawn_app().await;

    // The stand-in app, on an origin of its own.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let page = std::fs::read_to_string(browser_dir.join("app.html"))
        .unwrap()
        .replace("__API__", &app.address)
        .replace("__CLIENT_ID__", CLIENT_ID);
    let serve = move || {
        let page = page.clone();
        async move { Html(page) }
    };
    let spa = axum::Router::new()
        .route("/", get(serve.clone()))
        .route("/callback", get(serve));
    tokio::spawn(async move { axum::serve(listener, spa).await });

    let admin = app.admin_token().await;
    let (status, body) = app
        .post(
            "/client/admin-api/create",
            &admin,
            &json!({
                "id": CLIENT_ID, "displayName": "Stand-in single-page app",
                "role": "internal_client", "isPublic": true,
                "grants": ["authorization_code", "refresh_token"],
                "scope": ["delegated:all", "admin:all"],
                "redirectUris": [format!("{origin}/callback")],
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // CORS reads registered redirect URIs from the applications read model.
    let id = body["data"]["client"]["_id"].as_str().unwrap().to_owned();
    eventually(
        Duration::from_secs(10),
        "the application in the read model",
        || async {
            let (_, list) = app
                .call(reqwest::Method::GET, "/client/admin-api/list", &admin, None)
                .await;
            if list.to_string().contains(&id) {
                Ok(())
            } else {
                Err(list)
            }
        },
    )
    .await;

    let output = tokio::process::Command::new("node")
        .arg(browser_dir.join("signin.mjs"))
        .arg(format!("{origin}/"))
        .arg(ADMIN_USERNAME)
        .arg(ADMIN_PASSWORD)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser run failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_str(stdout.trim()).expect("the app's result");
    assert_eq!(
        result["loginTitle"], "Sign in to Stand-in single-page app",
        "{result}"
    );
    assert_eq!(result["tokenStatus"], 200, "{result}");
    assert_eq!(result["tokenType"], "Bearer");
    assert!(result["expiresIn"].is_u64());
    assert_eq!(result["hasRefreshToken"], true);
    let start_up = &result["startUp"];
    let answer = |path: &str| {
        let call = &start_up[path];
        assert_eq!(call["status"], 200, "{path}: {call}");
        assert_eq!(call["body"]["ok"], 1, "{path}: {call}");
        call["body"]["data"].clone()
    };
    let countries = answer("/system/countries-insecure")["countries"].clone();
    assert!(
        countries.as_array().is_some_and(|c| c.len() > 200),
        "{countries}"
    );
    assert_eq!(countries[0].as_object().map(|c| c.len()), Some(3));
    let me = answer("/user/me");
    assert_eq!(me["user"]["username"], ADMIN_USERNAME);
    assert!(me["editableFields"].is_array());
    assert!(answer("/user/scopes")["scopes"]["admin:all"]["description"].is_string());
    let roles = answer("/roles/list")["roles"].clone();
    assert!(roles
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["id"] == "external_client" && r["type"] == "client"));
    assert!(answer("/system/settings")["settings"]["system.app-name"].is_string());
    assert!(answer("/user/admin-api/editable-fields")["editableFields"].is_array());
    assert!(answer("/user/admin-api/subscription-tiers")["subscriptionTiers"].is_array());
    let list = answer("/user/admin-api/list?limit=100");
    assert!(list["users"].as_array().is_some_and(|u| !u.is_empty()));
    assert!(list["totalUsers"].as_u64().is_some_and(|n| n >= 1));
    assert_eq!(
        start_up.as_object().map(|calls| calls.len()),
        Some(8),
        "{start_up}"
    );

    let screens = &result["screens"];
    for (screen, call) in screens.as_object().unwrap() {
        assert_eq!(call["status"], 200, "{screen}: {call}");
    }
    let found = &screens["search"]["body"]["data"]["results"];
    assert!(
        found
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["username"] == ADMIN_USERNAME),
        "{found}"
    );
    assert!(
        screens["loginHistory"]["body"]["data"]["records"].is_array(),
        "{screens}"
    );
    assert!(screens["version"]["body"]["data"]["version"].is_string());
    assert!(screens["stats"]["body"]["data"]["stats"]["rss"].is_number());
    assert_eq!(screens["health"]["body"]["status"], "UP");
}
