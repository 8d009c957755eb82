//! What Liquid's callers read about the service (issue 14): without a token, the scope
//! catalogue, the version, the countries, an application's public information and the public
//! settings; with one, the settings and the process's figures.

use events::scopes::ScopeCatalogue;
use serde_json::Value;
use test_support::spawn_app;

async fn get(app: &test_support::TestApp, path: &str) -> (u16, Value) {
    let response = app.http.get(app.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn the_scope_catalogue_is_served_by_name_without_a_token() {
    let app = spawn_app().await;
    let (status, body) = get(&app, "/user/scopes").await;
    assert_eq!(status, 200, "{body}");
    let scopes = body["data"]["scopes"]
        .as_object()
        .expect("an object by name");
    let catalogue = ScopeCatalogue::get();
    assert_eq!(scopes.len(), catalogue.all().count());
    for (name, scope) in scopes {
        assert_eq!(scope["name"], name.as_str());
        assert!(
            !scope["description"].as_str().unwrap_or_default().is_empty(),
            "{name} is described"
        );
        match scope["parent"].as_str() {
            // Only the root has no parent; every parent is in the catalogue.
            None => assert_eq!(name, "*"),
            Some(parent) => {
                assert!(scopes.contains_key(parent), "{name}'s parent {parent}");
                assert_eq!(catalogue.parent(name), Some(parent));
            }
        }
    }
    assert_eq!(
        scopes["delegated:profile:read"]["description"],
        "See your profile"
    );
}

#[tokio::test]
async fn the_version_is_served_without_a_token() {
    let app = spawn_app().await;
    let (status, body) = get(&app, "/system/version").await;
    assert_eq!(status, 200, "{body}");
    // The workspace's version, which every crate of it shares.
    assert_eq!(body["data"]["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn an_application_s_public_information_is_served_without_a_token() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let body = serde_json::json!({
        "id": "partner_portal", "displayName": "Partner portal", "role": "external_client",
        "grants": ["authorization_code"], "redirectUris": ["https://partner.example/callback"],
        "secret": "partner-portal-secret-1", "scope": ["delegated:profile:read"],
    });
    let (status, answer) = app.post("/client/admin-api/create", &admin, &body).await;
    assert_eq!(status, 200, "{answer}");

    let shown = serde_json::json!({ "client": {
        "id": "partner_portal", "role": "external_client",
        "displayName": "Partner portal", "isPublic": false,
    } });
    for path in ["/client/partner_portal", "/client?id=partner_portal"] {
        let (status, body) = get(&app, path).await;
        assert_eq!(status, 200, "{path}: {body}");
        // Nothing else: no secret, scope, grants or redirect URIs.
        assert_eq!(body["data"], shown, "{path}");
    }
    // Unknown: `client: null`, as in Liquid.
    let (status, body) = get(&app, "/client/nobody_registered_this").await;
    assert_eq!((status, &body["data"]["client"]), (200, &Value::Null));
    // The query form needs an id of 3..256 characters.
    for path in ["/client", "/client?id=ab"] {
        let (status, body) = get(&app, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(test_support::app::error_paths(&body), ["id"], "{path}");
    }
}

#[tokio::test]
async fn settings_are_served_by_liquid_s_option_names() {
    let mut settings = test_support::app::test_settings();
    settings.app_name = "Acme accounts".to_owned();
    settings.invite_only = true;
    let app = test_support::app::spawn_app_with(settings).await;

    // Without a token: what a sign-up or login page needs.
    let (status, body) = get(&app, "/system/settings-insecure").await;
    assert_eq!(status, 200, "{body}");
    let public = &body["data"]["settings"];
    assert_eq!(public["user.account-creation.enable-invite-only"], true);
    assert_eq!(public["privilege.can-create-account"], false);
    assert!(public.get("system.app-name").is_none(), "{public}");

    // Signed in: those, plus the name and the limits.
    let (status, _) = get(&app, "/system/settings").await;
    assert_eq!(status, 401);
    app.register_user("settings_reader", "reader-password-1", "user")
        .await;
    let token = app.user_token("settings_reader", "reader-password-1").await;
    let (status, body) = app
        .call(reqwest::Method::GET, "/system/settings", &token, None)
        .await;
    assert_eq!(status, 200, "{body}");
    let signed_in = body["data"]["settings"].as_object().unwrap();
    assert_eq!(signed_in["system.app-name"], "Acme accounts");
    assert_eq!(signed_in["pagination.default-limit"], 10);
    assert_eq!(signed_in["pagination.max-limit"], 1000);
    assert_eq!(signed_in["user.account-creation.invites-per-person"], 5);
    assert_eq!(signed_in["admin-api.user.profile.can-edit-peer-data"], true);
    for (name, value) in public.as_object().unwrap() {
        assert_eq!(&signed_in[name], value, "{name}");
    }
    // A client token is no signed-in user.
    let client = app.client_token().await;
    let (status, _) = app
        .call(reqwest::Method::GET, "/system/settings", &client, None)
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn countries_come_with_their_calling_codes_without_a_token() {
    let app = spawn_app().await;
    let (status, body) = get(&app, "/system/countries-insecure").await;
    assert_eq!(status, 200, "{body}");
    let countries = body["data"]["countries"].as_array().expect("a list");
    assert!(countries.len() > 200, "{} countries", countries.len());
    let find = |iso: &str| {
        countries
            .iter()
            .find(|c| c["iso"] == iso)
            .unwrap_or_else(|| panic!("{iso} is listed"))
            .clone()
    };
    assert_eq!(find("GB")["code"], "+44");
    assert_eq!(find("IN")["code"], "+91");
    assert_eq!(find("US")["code"], "+1");
    assert_eq!(find("DE")["name"], "Germany");
    let mut names = Vec::new();
    for country in countries {
        let entry = country.as_object().unwrap();
        assert_eq!(entry.len(), 3, "exactly name, code and iso: {country}");
        let iso = country["iso"].as_str().unwrap();
        assert!(
            iso.len() == 2 && iso.chars().all(|c| c.is_ascii_uppercase()),
            "{iso}"
        );
        let code = country["code"].as_str().unwrap();
        assert!(
            code.starts_with('+') && code[1..].parse::<u16>().is_ok(),
            "{code}"
        );
        names.push(country["name"].as_str().unwrap().to_owned());
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "by name");
}

#[tokio::test]
async fn the_process_figures_need_the_system_scope_on_either_edge() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let client = app.client_token().await;
    app.register_user("plain_member", "member-password-1", "user")
        .await;
    let member = app.user_token("plain_member", "member-password-1").await;

    for (path, token) in [
        ("/system/admin-api/stats", &admin),
        ("/system/client-api/stats", &client),
    ] {
        let (status, body) = app.call(reqwest::Method::GET, path, token, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        let stats = &body["data"]["stats"];
        // The test serves the app in its own process.
        assert_eq!(stats["processId"], std::process::id());
        assert_eq!(stats["platform"], std::env::consts::OS);
        assert!(stats["cpuCount"].as_u64().unwrap() >= 1, "{stats}");
        assert_eq!(stats["loadAvg"].as_array().unwrap().len(), 3);
        assert!(stats["upTime"].as_f64().unwrap() >= 0.0);
        // At least the requests that signed the callers in.
        assert!(stats["requestsHandled"].as_u64().unwrap() >= 3, "{stats}");
        let rss = stats["rss"].as_f64().unwrap();
        let total = stats["systemTotalMemory"].as_f64().unwrap();
        assert!(rss > 1.0 && rss < total, "{stats}");
        assert!(stats["systemFreeMemory"].as_f64().unwrap() <= total);
        assert!(!stats["cpuMake"].as_str().unwrap().is_empty());
    }
    // The figures move: a later reading has counted the earlier request.
    let read = |token: String| {
        let app = &app;
        async move {
            let (_, body) = app
                .call(
                    reqwest::Method::GET,
                    "/system/admin-api/stats",
                    &token,
                    None,
                )
                .await;
            body["data"]["stats"]["requestsHandled"].as_u64().unwrap()
        }
    };
    let first = read(admin.clone()).await;
    let second = read(admin.clone()).await;
    assert!(second > first, "{first} then {second}");

    // Without the scope, or on the wrong edge: refused.
    for (path, token, expected) in [
        ("/system/admin-api/stats", &member, 401),
        ("/system/admin-api/stats", &client, 401),
        ("/system/client-api/stats", &admin, 401),
    ] {
        let (status, body) = app.call(reqwest::Method::GET, path, token, None).await;
        assert_eq!(status, expected, "{path}: {body}");
    }
    let (status, _) = get(&app, "/system/admin-api/stats").await;
    assert_eq!(status, 401);
}
