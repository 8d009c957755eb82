//! Fuzzing the API (issue 18): schemathesis (installed by `scripts/install-deps` into
//! `tests/fuzz/.venv`, every package pinned) generates requests from the running service's own
//! `/openapi.json` against `userledger serve`: the admin routes and the delegated ones with an
//! admin's token, the client routes with a client's token, each with a fixed seed. No answer may
//! be a 5xx. A longer run: `SCHEMATHESIS_SEED=<n>` picks another seed; or run
//! `tests/fuzz/.venv/bin/st run <base>/openapi.json` by hand with more examples.

use std::path::PathBuf;
use std::time::Duration;

use test_support::process::Userledger;
use test_support::TestDatabase;
use tokio::process::Command;

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
    let service = Userledger::start(
        env!("CARGO_BIN_EXE_userledger"),
        "serve",
        database.url(),
        None,
        &[
            ("USERLEDGER_TOKEN_SECRET", TOKEN_SECRET),
            ("USERLEDGER_BOOTSTRAP_ADMIN_USERNAME", ADMIN_USERNAME),
            ("USERLEDGER_BOOTSTRAP_ADMIN_EMAIL", "fuzz-admin@example.com"),
            ("USERLEDGER_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("USERLEDGER_BOOTSTRAP_CLIENT_ID", CLIENT_ID),
            ("USERLEDGER_BOOTSTRAP_CLIENT_SECRET", CLIENT_SECRET),
        ],
    )
    .await;
    let base = &service.base;
    let admin = service
        .token(&[
            ("grant_type", "password"),
            ("username", ADMIN_USERNAME),
            ("password", ADMIN_PASSWORD),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .await;
    let client = service
        .token(&[
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
        // A run that generated nothing (a filter that matches no route) proves nothing.
        let generated: u64 = report
            .lines()
            .filter(|line| line.contains(" generated, "))
            .find_map(|line| line.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        assert!(
            generated > 1_000,
            "{routes}: {generated} cases generated:\n{report}"
        );
    }
}
