//! `docker-compose.yml` and the entry point's `deploy/nginx.conf`, checked without Docker: the
//! services the issue lists, their health checks, start order and named volumes; every
//! variable a userledger service sets is a configuration key of the binary, with a value it
//! accepts; and the entry point sends each route to the service whose router serves it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use event_store::postgres::PostgresEventStore;
use secrecy::ExposeSecret;
use serde_norway::{Mapping, Value};
use test_support::app::test_settings;
use test_support::TestDatabase;
use tower::ServiceExt;
use userledger::config::{self, Config};

const COMPOSE: &str = include_str!("../../docker-compose.yml");
const NGINX: &str = include_str!("../../deploy/nginx.conf");

/// The userledger services and the subcommand each runs.
const USERLEDGER_SERVICES: [(&str, &str); 3] = [
    ("command", "command"),
    ("projections", "project"),
    ("query", "query"),
];

/// Every write route (command-service's routers), to check the entry point against.
const WRITE_ROUTES: &[(&str, &str)] = &[
    ("POST", "/oauth/token"),
    ("POST", "/user/admin-api/verify"),
    ("POST", "/user/admin-api/create"),
    ("POST", "/user/client-api/create"),
    ("PATCH", "/user/admin-api/update"),
    ("PATCH", "/user/client-api/update"),
    ("PUT", "/user/admin-api/custom-data"),
    ("PUT", "/user/client-api/custom-data"),
    ("POST", "/user/admin-api/ban"),
    ("POST", "/user/client-api/ban"),
    ("POST", "/user/admin-api/restrict"),
    ("POST", "/user/client-api/restrict"),
    ("POST", "/user/admin-api/credits"),
    ("POST", "/user/client-api/credits"),
    ("POST", "/user/admin-api/access"),
    ("POST", "/user/client-api/access"),
    ("POST", "/user/admin-api/subscription"),
    ("POST", "/user/client-api/subscription"),
    ("POST", "/user/admin-api/subscription-cancel"),
    ("POST", "/user/client-api/subscription-cancel"),
    ("POST", "/user/admin-api/invite-codes"),
    ("POST", "/user/client-api/invite-codes"),
    ("POST", "/roles/admin-api/create"),
    ("POST", "/roles/client-api/create"),
    ("PATCH", "/roles/admin-api/update"),
    ("PATCH", "/roles/client-api/update"),
    ("DELETE", "/roles/admin-api/delete"),
    ("DELETE", "/roles/client-api/delete"),
    ("POST", "/client/admin-api/create"),
    ("PATCH", "/client/admin-api/update"),
    ("DELETE", "/client/admin-api/delete"),
];

fn compose() -> Value {
    let mut compose: Value = serde_norway::from_str(COMPOSE).expect("docker-compose.yml is YAML");
    compose.apply_merge().expect("its merge keys apply");
    compose
}

fn services(compose: &Value) -> &Mapping {
    compose["services"]
        .as_mapping()
        .expect("a services mapping")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    services(compose)
        .get(name)
        .unwrap_or_else(|| panic!("no service {name:?} in docker-compose.yml"))
}

/// A scalar as text, as docker compose passes it to a container.
fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Null => String::new(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// `value` as docker compose interpolates it when no variable is set: `${NAME:-default}` and
/// `${NAME-default}` become their default, `${NAME}` nothing, `$$` a `$`.
fn interpolate(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(inner) = rest.strip_prefix("${") {
            let end = inner.find('}').expect("a closing brace");
            let expression = &inner[..end];
            assert!(
                !expression.contains(":?") && !expression.contains('?'),
                "a required variable: {expression}"
            );
            if let Some((_, default)) = expression.split_once(":-") {
                out.push_str(default);
            } else if let Some((_, default)) = expression.split_once('-') {
                out.push_str(default);
            }
            rest = &inner[end + 1..];
        } else {
            panic!("a bare $ in {value:?}: write ${{NAME}}");
        }
    }
    out.push_str(rest);
    out
}

/// A service's environment, interpolated.
fn environment(service: &Value) -> BTreeMap<String, String> {
    service["environment"]
        .as_mapping()
        .expect("environment as a mapping")
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().expect("a variable name").to_owned(),
                interpolate(&scalar(value)),
            )
        })
        .collect()
}

/// The host of a URL or `host:port`.
fn host(address: &str) -> &str {
    let authority = address.split_once("://").map_or(address, |(_, rest)| rest);
    let authority = authority.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    host_port.split(':').next().unwrap_or_default()
}

fn port(address: &str) -> &str {
    address.rsplit_once(':').expect("host:port").1
}

fn health_check(service: &Value) -> String {
    let test = service["healthcheck"]["test"]
        .as_sequence()
        .expect("a health check test list");
    assert!(
        matches!(
            test.first().and_then(Value::as_str),
            Some("CMD" | "CMD-SHELL")
        ),
        "{test:?}"
    );
    assert!(test.len() >= 2, "{test:?}");
    test.iter().map(scalar).collect::<Vec<_>>().join(" ")
}

#[test]
fn every_service_the_issue_lists_runs_with_a_health_check() {
    let compose = compose();
    for name in [
        "eventstoredb",
        "postgres",
        "kafka",
        "command",
        "projections",
        "query",
        "gateway",
    ] {
        health_check(service(&compose, name));
    }
    let eventstoredb = environment(service(&compose, "eventstoredb"));
    assert_eq!(eventstoredb["EVENTSTORE_CLUSTER_SIZE"], "1");
    assert_eq!(eventstoredb["EVENTSTORE_INSECURE"], "true");

    let kafka = service(&compose, "kafka");
    assert!(scalar(&kafka["image"]).starts_with("apache/kafka:"));
    let kafka_env = environment(kafka);
    assert_eq!(
        kafka_env["KAFKA_PROCESS_ROLES"], "broker,controller",
        "KRaft"
    );
    assert!(!kafka_env.contains_key("KAFKA_ZOOKEEPER_CONNECT"));
    assert!(kafka_env["KAFKA_ADVERTISED_LISTENERS"].contains("//kafka:9092"));

    for (name, role) in USERLEDGER_SERVICES {
        let service = service(&compose, name);
        assert!(
            !service["build"].is_null(),
            "{name} is built from this repository"
        );
        let command: Vec<String> = service["command"]
            .as_sequence()
            .expect("a command list")
            .iter()
            .map(scalar)
            .collect();
        assert_eq!(command, [role], "{name}");
    }

    // One entry point: the gateway alone publishes a port.
    let published: Vec<&str> = services(&compose)
        .iter()
        .filter(|(_, service)| !service["ports"].is_null())
        .map(|(name, _)| name.as_str().expect("a name"))
        .collect();
    assert_eq!(published, ["gateway"]);
    let ports = service(&compose, "gateway")["ports"]
        .as_sequence()
        .expect("ports");
    assert_eq!(ports.len(), 1);
    assert!(interpolate(&scalar(&ports[0])).ends_with(":8080"));
}

#[test]
fn each_service_starts_after_what_it_needs_is_healthy() {
    let compose = compose();
    let services = services(&compose);
    let mut order: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, service) in services {
        let name = name.as_str().expect("a name");
        let Some(depends_on) = service["depends_on"].as_mapping() else {
            continue;
        };
        for (dependency, how) in depends_on {
            let dependency = dependency.as_str().expect("a service name");
            let target = services
                .get(dependency)
                .unwrap_or_else(|| panic!("{name} depends on {dependency:?}, no such service"));
            assert_eq!(
                how["condition"].as_str(),
                Some("service_healthy"),
                "{name} -> {dependency}"
            );
            health_check(target);
            order.entry(name).or_default().insert(dependency);
        }
    }
    let needs = |name: &str| order.get(name).cloned().unwrap_or_default();
    for name in ["command", "projections", "query"] {
        assert!(needs(name).contains("postgres"), "{name}");
        assert!(needs(name).contains("eventstoredb"), "{name}");
    }
    assert!(needs("projections").contains("kafka"));
    assert!(
        needs("query").contains("projections"),
        "the read models exist first"
    );
    assert!(needs("gateway").is_superset(&["command", "query"].into()));
}

#[test]
fn data_lives_in_named_volumes() {
    let compose = compose();
    let declared = compose["volumes"].as_mapping().expect("top-level volumes");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut named = BTreeMap::new();
    for (name, service) in services(&compose) {
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let volume = scalar(volume);
            let source = volume.split(':').next().expect("a source");
            if source.starts_with("./") || source.starts_with('/') {
                assert!(root.join(source).exists(), "{volume}: no such file");
            } else {
                assert!(declared.contains_key(source), "{volume} is not declared");
                named.insert(name.as_str().expect("a name"), source.to_owned());
            }
        }
    }
    for stateful in ["eventstoredb", "postgres", "kafka"] {
        assert!(
            named.contains_key(stateful),
            "{stateful} keeps no named volume"
        );
    }
}

#[test]
fn every_variable_of_the_userledger_services_is_a_key_the_binary_accepts() {
    let compose = compose();
    let names: BTreeSet<String> = services(&compose)
        .keys()
        .map(|name| name.as_str().expect("a name").to_owned())
        .collect();
    let mut token_secrets = BTreeSet::new();
    for (name, role) in USERLEDGER_SERVICES {
        let service = service(&compose, name);
        let env = environment(service);
        for variable in env.keys() {
            assert!(
                config::is_known_variable(variable),
                "{name}: {variable} is not a configuration key of userledger"
            );
        }
        let loaded = Config::load(None, &env.clone().into_iter().collect::<HashMap<_, _>>())
            .unwrap_or_else(|error| panic!("{name}: {error}"));

        // Required: the stores, on the services that hold them.
        let database = loaded.database_url.as_ref().expect("DATABASE_URL is set");
        assert_eq!(host(database.expose_secret()), "postgres", "{name}");
        let eventstore = loaded
            .eventstore_url
            .as_ref()
            .expect("EVENTSTORE_URL is set");
        assert_eq!(host(eventstore.expose_secret()), "eventstoredb", "{name}");
        token_secrets.insert(env["USERLEDGER_TOKEN_SECRET"].clone());

        let check = health_check(service);
        match role {
            "project" => {
                let kafka = loaded.kafka.as_ref().expect("KAFKA_BROKERS is set");
                for broker in kafka.brokers.split(',') {
                    assert!(names.contains(host(broker)), "{broker}: no such service");
                }
                let status = loaded
                    .status_listen
                    .expect("USERLEDGER_STATUS_LISTEN is set");
                assert!(
                    check.contains(&format!("localhost:{}/", status.port())),
                    "{check}"
                );
            }
            _ => {
                assert!(env.contains_key("USERLEDGER_LISTEN"), "{name}");
                assert!(
                    loaded.listen.ip().is_unspecified(),
                    "{name} listens inside only"
                );
                // Liveness is probed on its own port when there is one (it is answered at
                // once however busy the API is), else on the API's.
                let probed = loaded.health_listen.unwrap_or(loaded.listen);
                assert!(
                    check.contains(&format!("localhost:{}/health", probed.port())),
                    "{check}"
                );
            }
        }
    }
    assert_eq!(
        token_secrets.len(),
        1,
        "command and query must share USERLEDGER_TOKEN_SECRET"
    );
    // The check above can fail: a variable the binary does not read is refused.
    assert!(!config::is_known_variable("USERLEDGER_LISTEN_ADDRESS"));
    assert!(!config::is_known_variable("KAFKA_BROKER"));
}

/// The entry point's routing table: `(method, path) -> upstream`, and the default upstream.
fn gateway_routes() -> GatewayMap {
    let start = NGINX
        .find("map \"$request_method $uri\" $userledger_side {")
        .expect("the routing map");
    let body = &NGINX[start..];
    let body = &body[body.find('{').expect("{") + 1..body.find('}').expect("}")];
    let mut routes = BTreeMap::new();
    let mut patterns = Vec::new();
    let mut default = None;
    for line in body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let line = line.strip_suffix(';').expect("an entry ends with ;");
        if let Some(side) = line.strip_prefix("default") {
            default = Some(side.trim().to_owned());
            continue;
        }
        let (request, side) = line[1..].split_once('"').expect("a quoted request");
        if let Some(pattern) = request.strip_prefix('~') {
            let pattern = regex::Regex::new(pattern).expect("a regular expression");
            patterns.push((pattern, side.trim().to_owned()));
            continue;
        }
        let (method, path) = request.split_once(' ').expect("method and path");
        let previous = routes.insert((method.to_owned(), path.to_owned()), side.trim().to_owned());
        assert!(previous.is_none(), "{request} is listed twice");
    }
    GatewayMap {
        routes,
        patterns,
        default: default.expect("a default side"),
    }
}

/// The gateway's map: exact requests, then regular expressions in order (as nginx tries
/// them), then the default.
struct GatewayMap {
    routes: BTreeMap<(String, String), String>,
    patterns: Vec<(regex::Regex, String)>,
    default: String,
}

impl GatewayMap {
    fn side_of(&self, method: &str, path: &str) -> &str {
        if let Some(side) = self.routes.get(&(method.to_owned(), path.to_owned())) {
            return side;
        }
        let request = format!("{method} {path}");
        self.patterns
            .iter()
            .find(|(pattern, _)| pattern.is_match(&request))
            .map_or(&self.default, |(_, side)| side)
    }
}

/// Whether `router` has a route for `method path` (anything but 404 and 405; the requests
/// carry no token, so no handler does any work).
async fn serves(router: &axum::Router, method: &str, path: &str) -> bool {
    let request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).expect("a method"))
        .uri(path)
        .body(Body::empty())
        .expect("a request");
    let status = router
        .clone()
        .oneshot(request)
        .await
        .expect("an answer")
        .status();
    status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED
}

/// The paths of `router`'s OpenAPI document, each path parameter given a user id.
async fn documented_paths(router: &axum::Router) -> Vec<String> {
    let request = Request::builder()
        .uri("/openapi.json")
        .body(Body::empty())
        .expect("a request");
    let response = router.clone().oneshot(request).await.expect("an answer");
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("the document");
    let document: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
    let parameter = regex::Regex::new(r"\{[^}]+\}").expect("a regular expression");
    document["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(|path| {
            parameter
                .replace_all(path, "01900000-0000-7000-8000-000000000001")
                .into_owned()
        })
        .collect()
}

#[tokio::test]
async fn the_gateway_sends_each_route_to_the_service_that_serves_it() {
    let compose = compose();
    let gateway = service(&compose, "gateway");
    let mounts: Vec<String> = gateway["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .map(scalar)
        .collect();
    assert!(mounts.contains(&"./deploy/nginx.conf:/etc/nginx/nginx.conf:ro".to_owned()));

    // Each upstream is a userledger service, on the port it listens on.
    let map = gateway_routes();
    let routes = &map.routes;
    let sides: BTreeSet<&str> = routes
        .values()
        .chain(map.patterns.iter().map(|(_, side)| side))
        .map(String::as_str)
        .chain([map.default.as_str()])
        .collect();
    assert_eq!(sides, ["command", "query"].into());
    for side in &sides {
        let upstream = &NGINX[NGINX
            .find(&format!("upstream {side} {{"))
            .unwrap_or_else(|| panic!("no upstream {side}"))..];
        let server = upstream["upstream".len()..]
            .split("server ")
            .nth(1)
            .and_then(|s| s.split(';').next())
            .expect("a server line")
            .trim();
        let listen = environment(service(&compose, side))["USERLEDGER_LISTEN"].clone();
        assert_eq!(host(server), *side);
        assert_eq!(port(server), port(&listen), "{side}");
    }

    // Both routers as the two processes serve them.
    let database = TestDatabase::new().await.expect("a test database");
    let store = Arc::new(
        PostgresEventStore::connect(database.url(), 2)
            .await
            .expect("the store connects"),
    );
    let settings = test_settings();
    let edge = Arc::new(http_edge::EdgeState::without_database_setup(
        settings.edge.clone(),
        store.clone(),
        None,
    ));
    let reads = query_service::AppState::new(store, None, settings.subscription_tiers.clone());
    let state = command_service::AppState::with_edge(edge.clone(), settings);
    let command = http_edge::server::router(edge.clone(), command_service::router(state));
    let query = http_edge::server::router(edge, query_service::router(reads));

    for (method, path) in WRITE_ROUTES {
        assert!(serves(&command, method, path).await, "{method} {path}");
    }
    // Every route either side documents (a new read missing from the map would reach the
    // command service and be answered 404), and a malformed path parameter.
    let mut documented = documented_paths(&query).await;
    documented.extend(documented_paths(&command).await);
    documented.push("/user/info/not-an-id".to_owned());
    let paths: BTreeSet<&str> = routes
        .keys()
        .map(|(_, path)| path.as_str())
        .chain(WRITE_ROUTES.iter().map(|(_, path)| *path))
        .chain(documented.iter().map(String::as_str))
        .chain(["/health"])
        .collect();
    let mut checked = 0;
    for path in paths {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let on_command = serves(&command, method, path).await;
            let on_query = serves(&query, method, path).await;
            let side = map.side_of(method, path);
            match (on_command, on_query) {
                (true, false) => assert_eq!(side, "command", "{method} {path}"),
                (false, true) => assert_eq!(side, "query", "{method} {path}"),
                (true, true) => {}
                (false, false) => assert!(
                    !routes.contains_key(&(method.to_owned(), path.to_owned())),
                    "{method} {path} is routed but served by neither"
                ),
            }
            checked += usize::from(on_command || on_query);
        }
    }
    assert!(checked >= WRITE_ROUTES.len() + routes.len(), "{checked}");
}

#[test]
fn the_image_runs_the_binary_with_known_keys_only() {
    let dockerfile = include_str!("../../Dockerfile");
    assert!(
        dockerfile.contains("ENTRYPOINT [\"userledger\"]"),
        "the services' `command` is a userledger subcommand"
    );
    for line in dockerfile.lines().filter(|l| l.starts_with("ENV ")) {
        let (name, _) = line["ENV ".len()..]
            .split_once('=')
            .expect("ENV NAME=value");
        assert!(config::is_known_variable(name), "Dockerfile: {name}");
    }
}
