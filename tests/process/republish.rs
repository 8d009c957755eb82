//! `userledger republish` (issue 5): publishes the log again, from the start or from after a
//! position, to the configured topics: exactly the events after the position, each once.

use std::collections::BTreeSet;
use std::process::Stdio;

use test_support::history::write_history;
use test_support::kafka::{Broker, TopicReader};
use test_support::world::World;
use tokio::process::Command;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republish_sends_the_log_again_from_a_position() {
    let brokers = Broker::shared().expect("a broker");
    let world = World::new().await;
    let (database, _store, state) = (&world.database, &world.store, world.state());
    write_history(&state, 0, 300, 10).await;
    let log = world.log().await;
    let middle = &log[log.len() / 2];
    let suffix = Uuid::now_v7().simple();

    for (from, topic_suffix) in [(None, "all"), (Some(middle.position), "tail")] {
        let users = format!("user-changes-{suffix}-{topic_suffix}");
        let others = format!("role-application-changes-{suffix}-{topic_suffix}");
        let mut command = Command::new(env!("CARGO_BIN_EXE_userledger"));
        command
            .arg("republish")
            .env("DATABASE_URL", database.url())
            .env_remove("EVENTSTORE_URL")
            .env("KAFKA_BROKERS", brokers)
            .env("KAFKA_USER_TOPIC", &users)
            .env("KAFKA_ROLE_APPLICATION_TOPIC", &others)
            .env("KAFKA_SOCIAL_TOPIC", format!("{others}-social"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(position) = from {
            command.args(["--from", &position.to_string()]);
        }
        let status = command.status().await.expect("userledger republish runs");
        assert!(status.success(), "{status}");

        let expected: BTreeSet<String> = log
            .iter()
            .filter(|e| from.is_none_or(|from| e.position > from))
            .filter(|e| {
                ["user-", "role-", "client-"]
                    .iter()
                    .any(|p| e.stream.starts_with(p))
            })
            .map(|e| e.event_id.to_string())
            .collect();
        let brokers = brokers.to_owned();
        let received = tokio::task::spawn_blocking(move || {
            let mut ids = BTreeSet::new();
            for topic in [users, others] {
                let mut reader = TopicReader::new(&brokers, &topic).expect("a reader");
                reader
                    .read_for(std::time::Duration::from_secs(2))
                    .expect("reads");
                ids.extend(reader.received.iter().map(|r| r.header("ce_id").to_owned()));
            }
            ids
        })
        .await
        .unwrap();
        assert_eq!(received, expected, "from {from:?}");
    }
}
