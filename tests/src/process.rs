//! `userledger` in a process of its own, for the tests that kill it, stop its database or fuzz
//! it from outside: on a free port of 127.0.0.1 (or a given one), answering `/health` before it
//! is handed over, killed when dropped.

use std::net::TcpListener;
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};

use crate::eventually;

/// A running `userledger` process and its base URL.
pub struct Userledger {
    pub child: Child,
    pub base: String,
}

impl Userledger {
    /// Runs `binary` (the test's `env!("CARGO_BIN_EXE_userledger")`) with `subcommand` on
    /// `database_url`, rate limits off, with `settings` (`USERLEDGER_...` pairs) besides; at
    /// `base` when given (a restart), else on a free port. Waits until it answers.
    pub async fn start(
        binary: &str,
        subcommand: &str,
        database_url: &str,
        base: Option<&str>,
        settings: &[(&str, &str)],
    ) -> Self {
        let output = (crate::process_log(), crate::process_log());
        Self::spawn(
            binary,
            subcommand,
            database_url,
            base,
            settings,
            output,
            "warn",
        )
        .await
    }

    /// [`Userledger::start`] on a free port, its standard output and error (its logs, at
    /// `level`) written to the file `log`.
    pub async fn start_logged(
        binary: &str,
        subcommand: &str,
        database_url: &str,
        settings: &[(&str, &str)],
        log: &std::path::Path,
        level: &str,
    ) -> Self {
        let file = std::fs::File::create(log).expect("the log file");
        let output = (file.try_clone().expect("the log file").into(), file.into());
        Self::spawn(
            binary,
            subcommand,
            database_url,
            None,
            settings,
            output,
            level,
        )
        .await
    }

    async fn spawn(
        binary: &str,
        subcommand: &str,
        database_url: &str,
        base: Option<&str>,
        settings: &[(&str, &str)],
        (stdout, stderr): (std::process::Stdio, std::process::Stdio),
        level: &str,
    ) -> Self {
        let base = base.map_or_else(
            || {
                let port = TcpListener::bind("127.0.0.1:0")
                    .and_then(|listener| listener.local_addr())
                    .expect("a free port")
                    .port();
                format!("http://127.0.0.1:{port}")
            },
            str::to_owned,
        );
        let child = Command::new(binary)
            .arg(subcommand)
            .env("DATABASE_URL", database_url)
            .env_remove("EVENTSTORE_URL")
            .env("USERLEDGER_LISTEN", base.trim_start_matches("http://"))
            .env("USERLEDGER_RATE_LIMIT_WRITES_PER_MINUTE", "0")
            .env("USERLEDGER_RATE_LIMIT_TOKEN_PER_MINUTE", "0")
            .envs(settings.iter().copied())
            .env("RUST_LOG", level)
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("userledger {subcommand} starts: {error}"));
        let http = reqwest::Client::new();
        eventually(Duration::from_secs(60), "the process answers", || async {
            match http.get(format!("{base}/health")).send().await {
                Ok(response) if response.status().is_success() => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        Self { child, base }
    }

    /// An access token by `form` (a grant's fields) at `/oauth/token`.
    pub async fn token(&self, form: &[(&str, &str)]) -> String {
        let answer: Value = reqwest::Client::new()
            .post(format!("{}/oauth/token", self.base))
            .form(form)
            .send()
            .await
            .expect("the token endpoint answers")
            .json()
            .await
            .expect("a JSON answer");
        answer["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("a token: {answer}"))
            .to_owned()
    }
}

/// The id of the user who holds `username` in the database at `database_url` (from the
/// uniqueness claims: a process test has no read model to ask).
pub async fn user_holding(database_url: &str, username: &str) -> String {
    let pool = sqlx::PgPool::connect(database_url)
        .await
        .expect("the test database");
    let stream: String = sqlx::query_scalar(
        "SELECT stream_id FROM unique_claims WHERE kind = 'username' AND value = $1",
    )
    .bind(username)
    .fetch_one(&pool)
    .await
    .unwrap_or_else(|error| panic!("a user holds {username}: {error}"));
    pool.close().await;
    stream.trim_start_matches("user-").to_owned()
}

/// Runs `binary` (the test's `env!("CARGO_BIN_EXE_userledger")`) with `args` on the database at
/// `database_url`, without Kafka, and waits for it; its standard output and error together.
/// Panics, showing them, when it fails.
pub async fn run(binary: &str, database_url: &str, args: &[&str]) -> String {
    let output = Command::new(binary)
        .args(args)
        .env("DATABASE_URL", database_url)
        .env_remove("EVENTSTORE_URL")
        .env_remove("KAFKA_BROKERS")
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("userledger runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "userledger {args:?}: {text}");
    text
}
