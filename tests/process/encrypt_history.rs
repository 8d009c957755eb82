//! `userledger encrypt-history` (issue 17): a log written before sealing began (personal data
//! in the clear, chained over it) is sealed in place: every event keeps its id, position and
//! revision; no personal field is left in the clear; the chains verify; readers see what they
//! saw before; a second run finds nothing to do. Erasing a person before it is refused (their
//! data in the clear would stay); erased afterwards, they read as erased.

use event_store::sealed::{Keyring, Sealed};
use events::personal::{self, ERASED};
use events::store::EventStore;
use test_support::history::write_history;
use test_support::process;
use test_support::world::World;
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_is_sealed_in_place_and_still_verifies() {
    // Written as before sealing: the world's store seals nothing.
    let world = World::new().await;
    write_history(&world.state(), 0, 300, 10).await;
    let before = world.log().await;
    let people = |log: &[events::store::RecordedEvent]| {
        log.iter()
            .filter(|e| !personal::unsealed_fields(&e.stream, &e.data).is_empty())
            .count()
    };
    assert!(
        people(&before) > 10,
        "the history holds personal data in the clear"
    );

    // Erasing a person whose data is in the clear would leave it there: refused, nothing done.
    let person = before
        .iter()
        .find(|e| e.event_type == "UserCreated" && e.stream.starts_with("user-"))
        .expect("a user")
        .stream
        .clone();
    let told = userledger_refuses(
        world.database.url(),
        &["erase", person.trim_start_matches("user-")],
    )
    .await;
    assert!(told.contains("userledger encrypt-history"), "{told}");
    assert_eq!(
        world.log().await.len(),
        before.len(),
        "the refusal appended nothing"
    );

    let printed = userledger(world.database.url(), &["encrypt-history"]).await;
    assert!(printed.contains("sealed"), "{printed}");

    let after = world.log().await;
    assert_eq!(people(&after), 0, "no personal field is left in the clear");
    let identity = |e: &events::store::RecordedEvent| {
        (
            e.event_id,
            e.position,
            e.stream.clone(),
            e.revision,
            e.event_type.clone(),
        )
    };
    assert_eq!(
        after.iter().map(identity).collect::<Vec<_>>(),
        before.iter().map(identity).collect::<Vec<_>>(),
        "ids, positions and revisions stay"
    );
    // The world keeps no read models: they are built from the sealed log, then compared.
    userledger(world.database.url(), &["rebuild"]).await;
    let verified = userledger(world.database.url(), &["verify"]).await;
    assert!(
        verified.contains("verified: the log's hash chains hold") && verified.contains(" 0 broken"),
        "{verified}"
    );
    // Readers see what they saw before.
    let keyring = Keyring::prepare(world.pool.clone()).await.unwrap();
    let sealed = Sealed::new(world.store.clone(), keyring);
    let opened = sealed.read_all(None, 100_000).await.unwrap();
    assert_eq!(
        opened.iter().map(|e| &e.data).collect::<Vec<_>>(),
        before.iter().map(|e| &e.data).collect::<Vec<_>>(),
        "opened, the payloads are the ones written"
    );

    let again = userledger(world.database.url(), &["encrypt-history"]).await;
    assert!(again.contains(", 0 sealed (0 events rewritten)"), "{again}");

    // The person whose erasure was refused can be erased now, and reads as erased.
    let user = person;
    let id = user.trim_start_matches("user-");
    userledger(world.database.url(), &["erase", id]).await;
    let replayed = userledger(world.database.url(), &["replay", "--stream", &user]).await;
    assert!(replayed.contains(ERASED), "{replayed}");
    assert!(replayed.contains("UserErased"), "{replayed}");
    userledger(world.database.url(), &["rebuild"]).await;
    let verified = userledger(world.database.url(), &["verify"]).await;
    assert!(
        verified.contains("verified: the log's hash chains hold"),
        "{verified}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_chain_is_broken_is_left_as_it_is() {
    let world = World::new().await;
    write_history(&world.state(), 0, 40, 4).await;
    let log = world.log().await;
    let altered = log
        .iter()
        .find(|e| e.event_type == "UserCreated")
        .expect("a user");
    sqlx::query(
        "UPDATE events SET data = jsonb_set(data, '{firstName}', '\"Mallory\"') WHERE position = $1",
    )
    .bind(altered.position.commit as i64)
    .execute(&world.pool)
    .await
    .unwrap();
    let text = userledger_refuses(world.database.url(), &["encrypt-history"]).await;
    assert!(text.contains(&altered.stream), "{text}");
    let stored: serde_json::Value =
        sqlx::query_scalar("SELECT data FROM events WHERE position = $1")
            .bind(altered.position.commit as i64)
            .fetch_one(&world.pool)
            .await
            .unwrap();
    assert_eq!(
        stored["firstName"], "Mallory",
        "the altered stream is left for an auditor"
    );
}

/// `userledger <args>` on the database at `url`.
async fn userledger(url: &str, args: &[&str]) -> String {
    process::run(env!("CARGO_BIN_EXE_userledger"), url, args).await
}

/// `userledger <args>` on the database at `url`, which must fail: what it told on stderr.
async fn userledger_refuses(url: &str, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_userledger"))
        .args(args)
        .env("DATABASE_URL", url)
        .env_remove("EVENTSTORE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    let told = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "userledger {args:?} succeeded: {told}"
    );
    told
}
