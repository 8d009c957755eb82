//! Fuzzing the API (issue 18): schemathesis (installed by `scripts/install-deps` into
//! `tests/fuzz/.venv`, every package pinned) generates requests from the running service's own
//! `/openapi.json` against `userledger serve`: the admin routes and the delegated ones with an
//! admin's token, the client routes with a client's token, each with a fixed seed. No answer may
//! be a 5xx. A longer run: `SCHEMATHESIS_SEED=<n>` picks another seed; or run
//! `tests/fuzz/.venv/bin/st run <base>/openapi.json` by hand with more examples.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use test_support::{eventually, TestDatabase};
use tokio::process::{Child, Command};

const CLIENT_ID: &str = "fuzz_client";
const CLIENT_SECRET: &str = "fuzz-client-secret-1";
const ADMIN_USERNAME: &str = "fuzz_admin";
const ADMIN_PASSWORD: &str = "fuzz-admin-password-1";
const TOKEN_SECRET: &str = "a-token-secret-for-the-fuzzing-test-012345";
/// How long one schemathesis run may take (about 30 s here).
const RUN_LIMIT: Duration = Duration::from_secs(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_never_get_a_server_error() {
    let st = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/.venv/bin/st");
    assert!(
        st.exists(),
        "{} is missing: run scripts/install-deps",
        st.display()
    );
    let database = TestDatabase::new().await.expect("a test database");
    let (_service, base) = serve(database.url());
    let http = reqwest::Client::new();
    eventually(Duration::from_secs(60), "the service answers", || async {
        match http.get(format!("{base}/health")).send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let token = |form: Vec<(&'static str, &'static str)>| {
        let request = http.post(format!("{base}/oauth/token")).form(&form);
        async move {
            let answer: Value = request.send().await.unwrap().json().await.unwrap();
            answer["access_token"]
                .as_str()
                .unwrap_or_else(|| panic!("a token: {answer}"))
                .to_owned()
        }
    };
    let admin = token(vec![
        ("grant_type", "password"),
        ("username", ADMIN_USERNAME),
        ("password", ADMIN_PASSWORD),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ])
    .await;
    let client = token(vec![
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ])
    .await;
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| "7".into());

    let runs = [
        (
            "the client routes",
            &client,
            "--include-path-regex",
            "client-api",
        ),
        (
            "every other route",
            &admin,
            "--exclude-path-regex",
            "client-api",
        ),
    ];
    for (routes, token, filter, pattern) in runs {
        let run = Command::new(&st)
            .arg("run")
            .arg(format!("{base}/openapi.json"))
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args([filter, pattern])
            .args(["--checks", "not_a_server_error"])
            // Nothing written into the working tree (its cache goes to the temporary
            // directory): each run starts from its seed alone.
            .args(["--generation-database", "none"])
            .current_dir(std::env::temp_dir())
            .args(["--seed", &seed, "--request-timeout", "10", "--no-color"])
            .env("NO_COLOR", "1")
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(RUN_LIMIT, run)
            .await
            .unwrap_or_else(|_| panic!("schemathesis on {routes} ran past {RUN_LIMIT:?}"))
            .expect("schemathesis runs");
        let report = String::from_utf8_lossy(&output.stdout);
        let summary: Vec<&str> = report
            .lines()
            .filter(|line| line.contains("generated") || line.contains("Tested"))
            .collect();
        eprintln!("{routes}: {summary:?}");
        assert!(
            output.status.success(),
            "schemathesis found server errors on {routes} (seed {seed}):\n{report}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// `userledger serve` on a free port of 127.0.0.1 with the test's admin and client, rate
/// limits off (the fuzzer sends thousands of writes a minute); its base URL.
fn serve(database_url: &str) -> (Child, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_userledger"))
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env_remove("EVENTSTORE_URL")
        .env_remove("KAFKA_BROKERS")
        .env("USERLEDGER_LISTEN", format!("127.0.0.1:{port}"))
        .env("USERLEDGER_TOKEN_SECRET", TOKEN_SECRET)
        .env("USERLEDGER_BOOTSTRAP_ADMIN_USERNAME", ADMIN_USERNAME)
        .env("USERLEDGER_BOOTSTRAP_ADMIN_EMAIL", "fuzz-admin@example.com")
        .env("USERLEDGER_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("USERLEDGER_BOOTSTRAP_CLIENT_ID", CLIENT_ID)
        .env("USERLEDGER_BOOTSTRAP_CLIENT_SECRET", CLIENT_SECRET)
        .env("USERLEDGER_RATE_LIMIT_WRITES_PER_MINUTE", "0")
        .env("USERLEDGER_RATE_LIMIT_TOKEN_PER_MINUTE", "0")
        .env("RUST_LOG", "warn")
        .stdout(test_support::process_log())
        .stderr(test_support::process_log())
        .kill_on_drop(true)
        .spawn()
        .expect("userledger serve starts");
    (child, format!("http://127.0.0.1:{port}"))
}
