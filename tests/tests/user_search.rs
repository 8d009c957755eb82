//! User search and other users' profiles (issue 14): `POST /user/{admin,client}-api/search`,
//! `POST /user/search`, `GET /user/{userId}` and `GET /user/info/{userId}`.

use http_edge::envelope::CONSISTENCY_TOKEN;
use query_service::search::{self, Searcher};
use reqwest::Method;
use serde_json::{json, Value};
use test_support::{spawn_app, TestApp};

/// Creates users through the admin API; the consistency token of the last write.
async fn create_users(app: &TestApp, admin: &str, users: &[(&str, &str, &str)]) -> String {
    let mut last = None;
    for (username, first, last_name) in users {
        let (status, body, consistency) = app
            .send(
                Method::POST,
                "/user/admin-api/create",
                admin,
                &json!([{
                    "username": username, "email": format!("{username}@Example.com"),
                    "password": "search-password-1", "firstName": first,
                    "lastName": last_name, "role": "user",
                }]),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        last = consistency;
    }
    last.expect("a consistency token")
}

/// Sends `method path` with a token, a consistency token and maybe a body.
async fn read(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    consistency: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = app
        .http
        .request(method, app.url(path))
        .bearer_auth(token)
        .header(CONSISTENCY_TOKEN, consistency);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn usernames(body: &Value) -> Vec<String> {
    let mut names: Vec<String> = body["data"]["results"]
        .as_array()
        .unwrap_or_else(|| panic!("results: {body}"))
        .iter()
        .map(|user| user["username"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn admins_and_applications_find_users_by_any_part_of_their_names() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let client = app.client_token().await;
    let consistency = create_users(
        &app,
        &admin,
        &[
            ("marigold_finch", "Marigold", "Finch"),
            ("rowan_finchley", "Rowan", "Finchley"),
            ("quentin_ash", "Quentin", "Ashworth"),
        ],
    )
    .await;
    let search = |token: String, path: &'static str, query: Value| {
        let app = &app;
        let consistency = consistency.clone();
        async move {
            read(
                app,
                Method::POST,
                path,
                &token,
                &consistency,
                Some(&json!({ "query": query })),
            )
            .await
        }
    };
    for path in ["/user/admin-api/search", "/user/client-api/search"] {
        let token = if path.contains("admin") {
            admin.clone()
        } else {
            client.clone()
        };
        for (query, expected) in [
            // Infix and without regard to case, in usernames, emails and names.
            ("FINCH", vec!["marigold_finch", "rowan_finchley"]),
            ("nchle", vec!["rowan_finchley"]),
            ("quentin_ash@example", vec!["quentin_ash"]),
            ("ashworth", vec!["quentin_ash"]),
            // The full name, first then last.
            ("rowan finch", vec!["rowan_finchley"]),
            // Shorter than a trigram: the beginnings of words.
            ("qu", vec!["quentin_ash"]),
            ("ro", vec!["root_admin", "rowan_finchley"]),
            // Plain text, not a pattern.
            ("f%h", vec![]),
            ("m.rigold", vec![]),
            ("nobody-has-this", vec![]),
        ] {
            let (status, body) = search(token.clone(), path, json!(query)).await;
            assert_eq!(status, 200, "{path} {query}: {body}");
            assert_eq!(usernames(&body), expected, "{path} {query}");
        }
        // Whole user objects, as the admin reads show them.
        let (_, body) = search(token.clone(), path, json!("marigold")).await;
        let found = &body["data"]["results"][0];
        assert_eq!(found["email"], "marigold_finch@Example.com");
        assert!(found.get("scope").is_some(), "{found}");
        assert!(found.get("password").is_none(), "{found}");
        // By `_id`, and by role.
        let id = found["_id"].as_str().unwrap().to_owned();
        let (_, body) = search(token.clone(), path, json!(id)).await;
        assert_eq!(usernames(&body), ["marigold_finch"]);
        let (_, body) = search(token.clone(), path, json!("user")).await;
        assert_eq!(
            usernames(&body),
            ["marigold_finch", "quentin_ash", "rowan_finchley"],
            "role `user`"
        );

        // Bad bodies: 400 naming `query`.
        for bad in [
            json!({}),
            json!({ "query": "" }),
            json!({ "query": { "username": "x" } }),
            json!({ "query": 5 }),
            json!({ "query": "x".repeat(129) }),
            json!({ "query": "fin\u{0}ch" }),
        ] {
            let (status, body) =
                read(&app, Method::POST, path, &token, &consistency, Some(&bad)).await;
            assert_eq!(status, 400, "{path} {bad}: {body}");
            assert_eq!(body["error"], "ClientInputError");
            assert_eq!(
                body["additionalInfo"]["errors"][0]["path"], "query",
                "{body}"
            );
        }
    }
    // Each edge takes its own token kind, and a plain user has no admin search.
    app.register_user("plain_searcher", "searcher-password-1", "user")
        .await;
    let plain = app
        .user_token("plain_searcher", "searcher-password-1")
        .await;
    for (path, token) in [
        ("/user/admin-api/search", &client),
        ("/user/admin-api/search", &plain),
        ("/user/client-api/search", &admin),
    ] {
        let (status, body) = search(token.clone(), path, json!("finch")).await;
        assert_eq!(status, 401, "{path}: {body}");
    }
}

#[tokio::test]
async fn people_find_others_but_not_who_blocked_them_nor_their_details() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let consistency = create_users(
        &app,
        &admin,
        &[
            ("heron_alpha", "Heron", "Alpha"),
            ("heron_beta", "Heron", "Beta"),
            ("heron_gamma", "Heron", "Gamma"),
        ],
    )
    .await;
    app.register_user("heron_seeker", "seeker-password-1", "user")
        .await;
    let seeker = app.user_token("heron_seeker", "seeker-password-1").await;
    let id_of = |body: &Value, name: &str| {
        body["data"]["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == name)
            .map(|u| u["_id"].as_str().unwrap().to_owned())
    };
    let (status, body) = read(
        &app,
        Method::POST,
        "/user/search",
        &seeker,
        &consistency,
        Some(&json!({ "query": "heron_" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        usernames(&body),
        ["heron_alpha", "heron_beta", "heron_gamma", "heron_seeker"]
    );
    // Strangers see no email, credits or scope in search results.
    for user in body["data"]["results"].as_array().unwrap() {
        for hidden in ["email", "sanitizedEmail", "credits", "scope", "customData"] {
            assert!(user.get(hidden).is_none(), "{hidden}: {user}");
        }
    }
    let beta = id_of(&body, "heron_beta").unwrap();
    let gamma = id_of(&body, "heron_gamma").unwrap();
    let seeker_id = id_of(&body, "heron_seeker").unwrap();

    // Beta blocks the seeker; the seeker follows gamma. (The social graph's writes are issue
    // 16's: its read model is filled here as its projector will fill it.)
    let database = sqlx::PgPool::connect(app.database_url()).await.unwrap();
    sqlx::query("INSERT INTO read_models.blocks (source, target, created_at) VALUES ($1::uuid, $2::uuid, now())")
        .bind(&beta)
        .bind(&seeker_id)
        .execute(&database)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO read_models.follows (id, source, target, approved, created_at)
         VALUES (gen_random_uuid(), $1::uuid, $2::uuid, true, now())",
    )
    .bind(&seeker_id)
    .bind(&gamma)
    .execute(&database)
    .await
    .unwrap();
    let (_, body) = read(
        &app,
        Method::POST,
        "/user/search",
        &seeker,
        &consistency,
        Some(&json!({ "query": "heron_" })),
    )
    .await;
    assert_eq!(
        usernames(&body),
        ["heron_alpha", "heron_gamma", "heron_seeker"]
    );
    let results = body["data"]["results"].as_array().unwrap();
    let gamma_shown = results.iter().find(|u| u["_id"] == gamma.as_str()).unwrap();
    assert_eq!(
        gamma_shown["email"], "heron_gamma@Example.com",
        "a follower sees it"
    );

    // The profile routes: blocked is 403; others as their privacy says.
    for path in [format!("/user/{beta}"), format!("/user/info/{beta}")] {
        let (status, body) = read(&app, Method::GET, &path, &seeker, &consistency, None).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(
            body,
            json!({"ok":0,"error":"Blocked","additionalInfo":{"reason":"blocked"}})
        );
    }
    // A public account shows its email to anyone signed in, but not its scope.
    let alpha = id_of(&body, "heron_alpha").unwrap();
    let (status, body) = read(
        &app,
        Method::GET,
        &format!("/user/{alpha}"),
        &seeker,
        &consistency,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let shown = &body["data"]["user"];
    assert_eq!(shown["username"], "heron_alpha");
    assert_eq!(shown["email"], "heron_alpha@Example.com");
    assert!(
        shown.get("scope").is_none() && shown.get("customData").is_none(),
        "{shown}"
    );

    // Alpha goes private: strangers lose the details. (Going private is issue 16's
    // `POST /user/private`; until then the read model is changed as its projector will.)
    sqlx::query(
        "UPDATE read_models.users
            SET document = replace(document::text, '\"isPrivate\":false', '\"isPrivate\":true')::json
          WHERE id = $1::uuid",
    )
    .bind(&alpha)
    .execute(&database)
    .await
    .unwrap();
    let (_, body) = read(
        &app,
        Method::GET,
        &format!("/user/info/{alpha}"),
        &seeker,
        &consistency,
        None,
    )
    .await;
    let shown = &body["data"]["user"];
    assert_eq!(shown["isPrivate"], true, "{shown}");
    for hidden in ["email", "sanitizedEmail", "phone", "isBanned", "credits"] {
        assert!(shown.get(hidden).is_none(), "{hidden}: {shown}");
    }
    assert_eq!(shown["firstName"], "Heron");

    // Banned: only that.
    let (status, body, consistency) = app
        .send(
            Method::POST,
            "/user/admin-api/ban",
            &admin,
            &json!({ "target": gamma, "state": true, "reason": "spamming the forum" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let consistency = consistency.unwrap();
    let (_, body) = read(
        &app,
        Method::GET,
        &format!("/user/{gamma}"),
        &seeker,
        &consistency,
        None,
    )
    .await;
    assert_eq!(
        body["data"]["user"],
        json!({ "_id": gamma, "isDeleted": false, "isBanned": true, "customData": {} })
    );

    // Unknown, malformed, without a token.
    let nobody = uuid::Uuid::now_v7();
    let (status, body) = read(
        &app,
        Method::GET,
        &format!("/user/{nobody}"),
        &seeker,
        &consistency,
        None,
    )
    .await;
    assert_eq!(
        (status, &body["error"]),
        (404, &json!("NotFound")),
        "{body}"
    );
    let (status, body) = read(
        &app,
        Method::GET,
        "/user/info/not-an-id",
        &seeker,
        &consistency,
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["additionalInfo"]["errors"][0]["path"], "userId");
    let response = app
        .http
        .get(app.url(&format!("/user/{alpha}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn every_form_of_query_is_served_by_an_index() {
    let app = spawn_app().await;
    let database = sqlx::PgPool::connect(app.database_url()).await.unwrap();
    // 30,000 users with shared first and last names, written as the projector writes rows
    // (the search columns are PostgreSQL's to derive).
    sqlx::query(
        "INSERT INTO read_models.users (id, username, email, sanitized_email, role, first_name,
                                         last_name, document)
         SELECT gen_random_uuid(), 'member' || g, 'member' || g || '@example.com',
                'member' || g || '@example.com', 'user', first_name, last_name,
                json_build_object('firstName', first_name, 'lastName', last_name)
           FROM generate_series(1, 30000) g,
                LATERAL (SELECT (ARRAY['Ada','Grace','Linus','Ken'])[g % 4 + 1] AS first_name,
                                (ARRAY['Lovelace','Hopper','Torvalds'])[g % 3 + 1] AS last_name) n",
    )
    .execute(&database)
    .await
    .unwrap();
    sqlx::query("ANALYZE read_models.users")
        .execute(&database)
        .await
        .unwrap();
    let viewer = uuid::Uuid::now_v7();
    for query in [
        "member12345",
        "grace hopper",
        "ember123",
        "member",
        "ke",
        "m",
        "user",
        "01900000-0000-7000-8000-000000000001",
    ] {
        for searcher in [Searcher::Directory, Searcher::Person] {
            let plan = plan(&database, query, searcher, viewer, "").await;
            // Neither a sequential scan nor a walk of the whole primary key, nor workers.
            assert!(
                !plan.contains("Seq Scan on users")
                    && !plan.contains("Index Scan using users_pkey on users")
                    && !plan.contains("Gather"),
                "{query} ({searcher:?}):\n{plan}"
            );
            assert!(plan.contains("users_search_words"), "{query}:\n{plan}");
            if query.len() >= 3 {
                assert!(plan.contains("on users_search "), "{query}:\n{plan}");
            }
        }
    }
    // Words first: when they find ten users, the infix branch never runs.
    let analyzed = plan(&database, "member", Searcher::Directory, viewer, "ANALYZE").await;
    let infix = analyzed
        .lines()
        .find(|line| line.contains("on users_search "))
        .unwrap_or_else(|| panic!("{analyzed}"));
    assert!(infix.contains("never executed"), "{analyzed}");
    // An infix that begins no word: found by the trigram index.
    let analyzed = plan(
        &database,
        "ember123",
        Searcher::Directory,
        viewer,
        "ANALYZE",
    )
    .await;
    assert!(analyzed.contains("rows=10 loops=1"), "{analyzed}");
}

/// The plan of a search for `query`, on a connection set as the route's are (`option`: `""`
/// or `"ANALYZE"`).
async fn plan(
    database: &sqlx::PgPool,
    query: &str,
    searcher: Searcher,
    viewer: uuid::Uuid,
    option: &str,
) -> String {
    let (sql, terms) = search::statement(query, searcher);
    let sql = format!("EXPLAIN {option} {sql}");
    let mut explain = sqlx::query_scalar::<_, String>(&sql)
        .bind(terms.words)
        .bind(query)
        .bind(terms.id)
        .bind(search::RESULTS)
        .bind(terms.infix);
    if searcher == Searcher::Person {
        explain = explain.bind(viewer);
    }
    explain
        .fetch_all(&search::pool(database))
        .await
        .unwrap()
        .join("\n")
}
