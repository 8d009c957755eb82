//! `userledger replay` and `userledger verify` as auditors run them: the binary, its output and
//! its exit status, on a bootstrapped PostgreSQL store (a super_admin with a password, an
//! internal client with a secret, the system roles).

use std::process::Output;
use std::sync::Arc;

use command_service::AppState;
use event_store::postgres::PostgresEventStore;
use serde_json::Value;
use test_support::app::test_settings;
use test_support::TestDatabase;
use tokio::process::Command;

/// Runs `userledger <args>` on `url` to the end.
async fn userledger(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_userledger"))
        .args(args)
        .env("DATABASE_URL", url)
        .env_remove("EVENTSTORE_URL")
        .env("USERLEDGER_DATABASE_POOL", "4")
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("userledger runs")
}

fn lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

#[tokio::test]
async fn replay_prints_the_log_redacted_and_verify_exits_1_on_a_difference() {
    let database = TestDatabase::new().await.expect("a test database");
    let url = database.url();
    let store = Arc::new(
        PostgresEventStore::connect(url, 4)
            .await
            .expect("the store connects"),
    );
    command_service::bootstrap::bootstrap(&AppState::new(store.clone(), test_settings()))
        .await
        .expect("bootstrap");
    let log = test_support::app::whole_log(&store).await;

    // The whole log, in order, secrets redacted.
    let all = userledger(url, &["replay"]).await;
    assert!(all.status.success(), "{all:?}");
    let replayed = lines(&all);
    assert_eq!(replayed.len(), log.len());
    for (line, event) in replayed.iter().zip(&log) {
        assert_eq!(line["position"], event.position.to_string());
        assert_eq!(line["stream"], event.stream);
        assert_eq!(line["type"], event.event_type);
        assert_eq!(line["metadata"]["hash"], event.metadata["hash"]);
    }
    let text = String::from_utf8_lossy(&all.stdout);
    assert!(log.iter().any(|e| e.data.to_string().contains("$argon2")));
    assert!(!text.contains("$argon2"), "a secret was replayed");
    assert!(text.contains("[redacted]"));
    assert!(String::from_utf8_lossy(&all.stderr).contains(&format!(
        "replayed {} of {} events",
        log.len(),
        log.len()
    )));

    // Selections: a category, a stream, a position range.
    let roles = lines(&userledger(url, &["replay", "--category", "role"]).await);
    assert_eq!(
        roles.len(),
        log.iter().filter(|e| e.stream.starts_with("role-")).count()
    );
    assert!(!roles.is_empty());
    let stream = &log[0].stream;
    let one = lines(&userledger(url, &["replay", "--stream", stream]).await);
    assert_eq!(
        one.len(),
        log.iter().filter(|e| &e.stream == stream).count()
    );
    let (from, to) = (log[1].position.to_string(), log[2].position.to_string());
    let range = lines(&userledger(url, &["replay", "--from", &from, "--to", &to]).await);
    assert_eq!(range.len(), 2);
    assert_eq!(range[0]["position"], from);
    let bad = userledger(url, &["replay", "--from", "yesterday"]).await;
    assert!(!bad.status.success());

    // Read models built from the log verify clean; one altered row fails verification.
    let rebuilt = userledger(url, &["rebuild"]).await;
    assert!(rebuilt.status.success(), "{rebuilt:?}");
    let clean = userledger(url, &["verify"]).await;
    let report = String::from_utf8_lossy(&clean.stdout);
    assert_eq!(clean.status.code(), Some(0), "{report}");
    assert!(
        report.contains(&format!("{} chained", log.len())),
        "{report}"
    );
    assert!(report.contains("0 differences"), "{report}");

    sqlx::query(
        "UPDATE read_models.roles SET document = jsonb_set(document, '{displayName}', '\"Hacked\"')
          WHERE id = 'admin'",
    )
    .execute(store.pool())
    .await
    .expect("the row updates");
    let altered = userledger(url, &["verify"]).await;
    let report = String::from_utf8_lossy(&altered.stdout);
    assert_eq!(altered.status.code(), Some(1), "{report}");
    assert!(
        report.contains("roles: only in the live read model") && report.contains("Hacked"),
        "{report}"
    );
    assert!(
        report.contains("roles: only in the rebuild from the log"),
        "{report}"
    );
    assert!(report.contains("2 differences"), "{report}");
}
