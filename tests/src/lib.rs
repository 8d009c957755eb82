//! Test support: throwaway PostgreSQL databases and Kafka-protocol brokers for black-box tests
//! and benchmarks.
//!
//! # Layout
//! - [`postgres`]: a database per test, in the cluster named by `DATABASE_URL`, or else in a
//!   throwaway cluster that this process starts with `initdb` and `pg_ctl` and that is removed
//!   when the process ends.
//! - [`world`]: a bootstrapped log and the domain's commands run on it, for tests of what
//!   follows the log.
//! - [`kafka`]: a `tansu` broker per process (or `KAFKA_BROKERS`), brokers a test can stop and
//!   restart, and a reader of every partition of a topic.
//! - [`wait`]: [`eventually`], a bounded poll of a condition that fails clearly at its deadline
//!   (tests wait for conditions, not for fixed times).
//!
//! `TEST_LOG=1` shows the logs of the code under test.

pub mod app;
pub mod history;
pub mod kafka;
pub mod postgres;
pub mod process;
pub mod wait;
pub mod world;

pub use app::{spawn_app, spawn_app_with, test_settings, TestApp};
pub use postgres::{PostgresCluster, TestDatabase};
pub use wait::eventually;

/// Sends the logs of the code under test to the test output when `TEST_LOG` is set.
pub fn init_test_log() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info".into()),
            )
            .with_test_writer()
            .try_init();
    }
}

pub mod event_store_contract;

/// Where a child process's logs go: to the test's output with `TEST_LOG`, nowhere without.
pub fn process_log() -> std::process::Stdio {
    if std::env::var_os("TEST_LOG").is_some() {
        std::process::Stdio::inherit()
    } else {
        std::process::Stdio::null()
    }
}

/// The body of `GET url` as text (metrics, scripts); panics when the request fails.
pub async fn get_text(http: &reqwest::Client, url: &str) -> String {
    let response = http.get(url).send().await.expect("an answer");
    response.text().await.expect("a text body")
}
