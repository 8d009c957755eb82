//! The `userledger` binary's configuration as an operator meets it: `userledger config` shows
//! the layers' effective values without a secret, and an invalid value stops start-up with a
//! message naming the key, before anything is served or written.

use std::net::TcpListener;
use std::process::{Output, Stdio};
use std::time::Duration;

use test_support::TestDatabase;
use tokio::process::Command;

const TOKEN_SECRET: &str = "token-secret-from-the-file-0123456789";
const ADMIN_PASSWORD: &str = "admin-password-from-the-environment";
const CLIENT_SECRET: &str = "client-secret-from-the-file";
const DATABASE_PASSWORD: &str = "database-password-4f1c";
const EVENTSTORE_PASSWORD: &str = "eventstore-password-9a2b";

/// `userledger <args>` with only `env` for an environment.
fn userledger(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_userledger"));
    command.args(args).env_clear().envs(env.iter().copied());
    command.kill_on_drop(true);
    command
}

async fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    userledger(args, env)
        .output()
        .await
        .expect("userledger runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The line of `key` in `userledger config`'s output.
fn line<'a>(shown: &'a str, key: &str) -> &'a str {
    shown
        .lines()
        .find(|line| line.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("no line for {key}:\n{shown}"))
}

/// A configuration file, removed when dropped.
struct ConfigFile(std::path::PathBuf);

impl ConfigFile {
    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 path")
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn config_file(contents: &str) -> ConfigFile {
    let path = std::env::temp_dir().join(format!(
        "userledger-config-{}-{}.toml",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::write(&path, contents).expect("the file is written");
    ConfigFile(path)
}

#[tokio::test]
async fn config_shows_each_layer_and_never_a_secret() {
    let file = config_file(&format!(
        r#"
        listen = "127.0.0.1:9100"
        token_secret = "{TOKEN_SECRET}"
        database_pool = 7
        eventstore_url = "esdb://admin:{EVENTSTORE_PASSWORD}@eventstoredb:2113?tls=false"

        [bootstrap.client]
        id = "file_client"
        secret = "{CLIENT_SECRET}"

        [kafka]
        brokers = "kafka:9092"
        partitions = 3
        "#
    ));
    let env = [
        (
            "DATABASE_URL",
            &*format!("postgres://ledger:{DATABASE_PASSWORD}@db:5432/ledger"),
        ),
        ("USERLEDGER_DATABASE_POOL", "9"),
        ("USERLEDGER_BOOTSTRAP_ADMIN_USERNAME", "root_admin"),
        ("USERLEDGER_BOOTSTRAP_ADMIN_EMAIL", "root@example.com"),
        ("USERLEDGER_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("USERLEDGER_RATE_LIMIT_TOKEN_PER_MINUTE", "0"),
    ];

    for args in [
        vec!["--config", file.path(), "config"],
        vec!["config", &format!("--config={}", file.path())],
    ] {
        let output = run(&args, &env).await;
        assert!(output.status.success(), "{output:?}");
        let shown = text(&output);
        for secret in [
            TOKEN_SECRET,
            ADMIN_PASSWORD,
            CLIENT_SECRET,
            DATABASE_PASSWORD,
            EVENTSTORE_PASSWORD,
        ] {
            assert!(!shown.contains(secret), "{secret} is shown:\n{shown}");
        }
        // Defaults < file < environment, and where each value came from.
        assert!(line(&shown, "USERLEDGER_LISTEN").contains("127.0.0.1:9100"));
        assert!(line(&shown, "USERLEDGER_LISTEN").ends_with("(file)"));
        assert!(line(&shown, "USERLEDGER_DATABASE_POOL").contains("= 9 "));
        assert!(line(&shown, "USERLEDGER_DATABASE_POOL").ends_with("(env)"));
        assert!(line(&shown, "KAFKA_PARTITIONS").contains("= 3 "));
        assert!(line(&shown, "KAFKA_USER_TOPIC").ends_with("(default)"));
        assert!(line(&shown, "USERLEDGER_RATE_LIMIT_TOKEN_PER_MINUTE").ends_with("(env)"));
        assert!(line(&shown, "USERLEDGER_TOKEN_SECRET").contains("********"));
        assert!(line(&shown, "USERLEDGER_BOOTSTRAP_CLIENT_ID").contains("file_client"));
        assert!(line(&shown, "DATABASE_URL").contains("postgres://ledger:********@db:5432/ledger"));
        assert!(line(&shown, "EVENTSTORE_URL").contains("esdb://admin:********@eventstoredb"));
        assert!(line(&shown, "OTEL_EXPORTER_OTLP_ENDPOINT").contains("(unset)"));
    }

    // USERLEDGER_CONFIG names the file when --config does not.
    let mut with_variable = env.to_vec();
    with_variable.push(("USERLEDGER_CONFIG", file.path()));
    let shown = text(&run(&["config"], &with_variable).await);
    assert!(
        line(&shown, "USERLEDGER_LISTEN").ends_with("(file)"),
        "{shown}"
    );
}

#[tokio::test]
async fn an_invalid_value_stops_start_up_naming_the_key() {
    let database = TestDatabase::new().await.expect("a test database");
    let listen = free_address();
    let valid = vec![
        ("USERLEDGER_LISTEN", listen.as_str()),
        ("DATABASE_URL", database.url()),
        ("USERLEDGER_DATABASE_POOL", "4"),
        ("USERLEDGER_TOKEN_SECRET", TOKEN_SECRET),
        ("USERLEDGER_BOOTSTRAP_ADMIN_USERNAME", "root_admin"),
        ("USERLEDGER_BOOTSTRAP_ADMIN_EMAIL", "root@example.com"),
        ("USERLEDGER_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("RUST_LOG", "warn"),
    ];
    let invalid = [
        (
            "USERLEDGER_LISTEN",
            "nope",
            "expected an address such as 127.0.0.1:8080",
        ),
        (
            "USERLEDGER_DATABASE_POOL",
            "0",
            "expected a whole number, 1 or more",
        ),
        (
            "USERLEDGER_TOKEN_SECRET",
            "too-short",
            "at least 32 characters",
        ),
        ("KAFKA_PARTITIONS", "many", "expected a whole number"),
        (
            "USERLEDGER_RATE_LIMIT_WRITES_PER_MINUTE",
            "-5",
            "expected a whole number",
        ),
        ("DATABASE_URL", "localhost:5432", "expected a URL"),
    ];
    for (key, value, expected) in invalid {
        let mut env = valid.clone();
        env.retain(|(name, _)| *name != key);
        env.push((key, value));
        env.push(("KAFKA_BROKERS", "localhost:9"));
        let output = tokio::time::timeout(Duration::from_secs(30), run(&["serve"], &env))
            .await
            .unwrap_or_else(|_| panic!("serve with {key}={value} went on running"));
        let said = text(&output);
        assert!(!output.status.success(), "{key}={value}: {said}");
        assert!(
            said.contains(&format!("invalid configuration: {key} = ")),
            "{key}={value}: {said}"
        );
        assert!(said.contains(expected), "{key}={value}: {said}");
        assert!(said.contains("(from the environment)"), "{said}");
        assert!(!said.contains(TOKEN_SECRET) && !said.contains("too-short"));
        assert!(
            std::net::TcpStream::connect(&listen).is_err(),
            "something serves on {listen}"
        );
    }
    // Nothing was written either: no first-start bootstrap happened.
    let pool = sqlx::PgPool::connect(database.url())
        .await
        .expect("the database");
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'events'",
    )
    .fetch_one(&pool)
    .await
    .expect("a count");
    assert_eq!(tables, 0, "the event store was created");

    // The same environment with valid values serves: the refusals above were the values'.
    let mut serving = userledger(&["serve"], &valid)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("userledger serve starts");
    let client = reqwest::Client::new();
    let health = format!("http://{listen}/health");
    let mut answered = None;
    for _ in 0..300 {
        if let Ok(response) = client.get(&health).send().await {
            answered = Some(response.status().as_u16());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    serving.start_kill().expect("the service stops");
    let logs = serving.wait_with_output().await.expect("its logs");
    assert_eq!(
        answered,
        Some(200),
        "the valid configuration did not serve: {}",
        text(&logs)
    );
}

#[tokio::test]
async fn an_unknown_key_in_the_file_is_refused() {
    let file = config_file("[kafka]\nbroker = \"kafka:9092\"\n");
    let output = run(&["--config", file.path(), "config"], &[]).await;
    let said = text(&output);
    assert!(!output.status.success(), "{said}");
    assert!(said.contains("unknown key \"kafka_broker\""), "{said}");

    let output = run(&["--config", "/nonexistent/userledger.toml", "config"], &[]).await;
    assert!(!output.status.success());
    assert!(text(&output).contains("/nonexistent/userledger.toml"));
}

#[tokio::test]
async fn project_serves_its_status_for_health_checks_when_asked() {
    let database = TestDatabase::new().await.expect("a test database");
    let listen = free_address();
    let mut projecting = userledger(
        &["project"],
        &[
            ("DATABASE_URL", database.url()),
            ("USERLEDGER_DATABASE_POOL", "4"),
            ("USERLEDGER_STATUS_LISTEN", &listen),
            ("RUST_LOG", "warn"),
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("userledger project starts");
    let client = reqwest::Client::new();
    let mut active = false;
    for _ in 0..300 {
        if let Ok(response) = client
            .get(format!("http://{listen}/projections/status"))
            .send()
            .await
        {
            // What docker-compose.yml's health check of `projections` looks for.
            let body = response.text().await.unwrap_or_default();
            if body.contains("\"active\":true") {
                active = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let health = client.get(format!("http://{listen}/health")).send().await;
    let read_route = client
        .get(format!("http://{listen}/user/admin-api/list"))
        .send()
        .await;
    projecting.start_kill().expect("the projector stops");
    let logs = projecting.wait_with_output().await.expect("its logs");
    assert!(active, "no active projector reported: {}", text(&logs));
    assert_eq!(health.expect("/health answers").status(), 200);
    assert_eq!(
        read_route.expect("an answer").status(),
        404,
        "the status listener serves no read route"
    );
}

#[tokio::test]
async fn serve_answers_health_on_a_port_of_its_own_when_asked() {
    let database = TestDatabase::new().await.expect("a test database");
    let liveness = free_address();
    let service = test_support::process::Userledger::start(
        env!("CARGO_BIN_EXE_userledger"),
        "serve",
        database.url(),
        None,
        &[("USERLEDGER_HEALTH_LISTEN", &liveness)],
    )
    .await;
    let client = reqwest::Client::new();
    let health = client
        .get(format!("http://{liveness}/health"))
        .send()
        .await
        .expect("the liveness port answers");
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.expect("JSON");
    assert_eq!(body, serde_json::json!({ "ok": 1, "status": "UP" }));
    let other = client
        .get(format!("http://{liveness}/user/admin-api/list"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(
        other.status(),
        404,
        "the liveness port serves /health alone"
    );
    let api = client
        .get(format!("{}/health", service.base))
        .send()
        .await
        .expect("the API's port answers");
    assert_eq!(api.status(), 200, "/health stays on the API's port too");
}

fn free_address() -> String {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .to_string()
}

#[tokio::test]
async fn every_subcommand_explains_itself_with_help() {
    let output = run(&["--help"], &[]).await;
    assert!(output.status.success(), "{output:?}");
    let help = String::from_utf8_lossy(&output.stdout).into_owned();
    let subcommands = [
        "serve",
        "command",
        "query",
        "project",
        "rebuild",
        "republish",
        "replay",
        "verify",
        "migrate",
        "config",
    ];
    for subcommand in subcommands {
        assert!(
            help.lines()
                .any(|line| line.split_whitespace().next() == Some(subcommand)
                    && line.split_whitespace().count() > 1),
            "{subcommand} is not explained:\n{help}"
        );
    }
    assert!(help.contains("--config <FILE>"), "{help}");

    for subcommand in subcommands {
        for flag in ["--help", "-h"] {
            let output = run(&[subcommand, flag], &[]).await;
            let help = String::from_utf8_lossy(&output.stdout);
            assert!(output.status.success(), "{subcommand} {flag}: {output:?}");
            assert!(
                help.contains(&format!("Usage: userledger {subcommand}")),
                "{subcommand}: {help}"
            );
            assert!(help.contains("--config <FILE>"), "{subcommand}: {help}");
        }
    }
    let help = text(&run(&["help", "replay"], &[]).await);
    for flag in ["--stream", "--category", "--from", "--to"] {
        assert!(help.contains(flag), "replay's {flag}: {help}");
    }
    let help = text(&run(&["republish", "--help"], &[]).await);
    assert!(help.contains("--from <POSITION>"), "{help}");
}

#[tokio::test]
async fn unknown_subcommands_and_flags_are_refused_before_anything_runs() {
    let listen = free_address();
    let env = [("USERLEDGER_LISTEN", listen.as_str())];
    for (args, named) in [
        (&["serv"][..], "serv"),
        (&["serve", "--listen", "x"], "--listen"),
        (&["--verbose", "config"], "--verbose"),
        (&["replay", "--everything"], "--everything"),
        (&["republish", "--to", "5"], "--to"),
        (&["republish", "--from", "nowhere"], "nowhere"),
        (
            &["replay", "--stream", "user-1", "--category", "user"],
            "--category",
        ),
    ] {
        let output = tokio::time::timeout(Duration::from_secs(30), run(args, &env))
            .await
            .unwrap_or_else(|_| panic!("{args:?} went on running"));
        let said = text(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {said}");
        assert!(said.contains(named), "{args:?}: {said}");
        // The usage, or where to find it.
        assert!(said.contains("--help"), "{args:?}: {said}");
    }
}
