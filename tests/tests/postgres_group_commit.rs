//! Group commit on the PostgreSQL store (issue 15): appends that wait together are written in
//! one transaction, and a member that fails (its revision does not hold, its claim is taken,
//! another process appended first) fails alone; no other member is lost or written twice.
//!
//! One writer task, held busy by an append whose claim waits on a transaction of the test's,
//! lets the appends queue up behind it; releasing that transaction lets them go as one group.

use std::collections::HashMap;
use std::time::Duration;

use event_store::postgres::PostgresEventStore;
use events::store::{
    AppendRequest, AppendResult, EventStore, ExpectedRevision, StoreError, UniqueClaim,
};
use serde_json::json;
use sqlx::{PgConnection, Postgres, Transaction};
use test_support::event_store_contract::{event, Namespace};
use test_support::TestDatabase;
use tokio::task::JoinHandle;

/// Long enough for spawned appends to reach the queue.
const SETTLE: Duration = Duration::from_millis(300);

async fn single_writer_store() -> (PostgresEventStore, TestDatabase) {
    let database = TestDatabase::new().await.unwrap();
    let store = PostgresEventStore::connect(database.url(), 20)
        .await
        .unwrap()
        .with_writers(1);
    (store, database)
}

fn append(
    store: &PostgresEventStore,
    request: AppendRequest,
) -> JoinHandle<Result<AppendResult, StoreError>> {
    let store = store.clone();
    tokio::spawn(async move { store.append(request).await })
}

fn one_event(stream: String, expected: ExpectedRevision) -> AppendRequest {
    AppendRequest::new(stream, expected, vec![event("Happened", json!({}))])
}

/// Holds `claim` in an open transaction: an append claiming it waits until the transaction
/// ends, and so does the one writer.
async fn hold_claim(
    store: &PostgresEventStore,
    claim: &UniqueClaim,
) -> Transaction<'static, Postgres> {
    let mut transaction = store.pool().begin().await.unwrap();
    sqlx::query("INSERT INTO unique_claims (kind, value, stream_id) VALUES ($1, $2, 'holder')")
        .bind(claim.kind())
        .bind(claim.value())
        .execute(&mut *transaction)
        .await
        .unwrap();
    transaction
}

/// Keeps the one writer busy: an append whose claim waits on a transaction of the test's, until
/// that transaction ends. Appends made meanwhile queue behind it.
async fn occupy_the_writer(
    store: &PostgresEventStore,
    ns: &Namespace,
) -> (
    Transaction<'static, Postgres>,
    JoinHandle<Result<AppendResult, StoreError>>,
) {
    let gate = UniqueClaim::new("email", ns.value("gate"));
    let held = hold_claim(store, &gate).await;
    let blocker = append(
        store,
        one_event(ns.stream("blocker"), ExpectedRevision::NoStream).claim(gate),
    );
    tokio::time::sleep(SETTLE).await;
    (held, blocker)
}

/// The transaction id each stream's events were written in.
async fn transactions(
    connection: &mut PgConnection,
    streams: &[&String],
) -> HashMap<String, Vec<String>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT stream_id, tx::text FROM events WHERE stream_id = ANY($1) ORDER BY position",
    )
    .bind(streams.iter().map(|s| s.as_str()).collect::<Vec<_>>())
    .fetch_all(connection)
    .await
    .unwrap();
    let mut by_stream: HashMap<String, Vec<String>> = HashMap::new();
    for (stream, tx) in rows {
        by_stream.entry(stream).or_default().push(tx);
    }
    by_stream
}

#[tokio::test]
async fn members_that_fail_inside_a_group_fail_alone() {
    let (store, _db) = single_writer_store().await;
    let ns = Namespace::new();
    let existing = ns.stream("existing");
    store
        .append(one_event(existing.clone(), ExpectedRevision::NoStream))
        .await
        .unwrap();
    let taken = UniqueClaim::new("email", ns.value("taken"));
    store
        .append(one_event(ns.stream("holder"), ExpectedRevision::NoStream).claim(taken.clone()))
        .await
        .unwrap();

    let (held, blocker) = occupy_the_writer(&store, &ns).await;

    let (new, any, claiming, twice) = (
        ns.stream("new"),
        ns.stream("any"),
        ns.stream("claiming"),
        ns.stream("twice"),
    );
    let fresh = UniqueClaim::new("username", ns.value("fresh"));
    let new_ok = append(&store, one_event(new.clone(), ExpectedRevision::NoStream));
    let wrong = append(
        &store,
        one_event(existing.clone(), ExpectedRevision::Exact(5)),
    );
    let exists = append(
        &store,
        one_event(existing.clone(), ExpectedRevision::NoStream),
    );
    let any_ok = append(&store, one_event(any.clone(), ExpectedRevision::Any));
    let claim_ok = append(
        &store,
        one_event(claiming.clone(), ExpectedRevision::NoStream).claim(fresh.clone()),
    );
    let claim_taken = append(
        &store,
        AppendRequest::new(
            ns.stream("loser"),
            ExpectedRevision::NoStream,
            vec![event("First", json!({})), event("Second", json!({}))],
        )
        // Claims are made in sorted order: "alias" first, so it is made and must be undone.
        .claim(UniqueClaim::new("alias", ns.value("loser")))
        .claim(taken.clone()),
    );
    let twice_first = append(&store, one_event(twice.clone(), ExpectedRevision::NoStream));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let twice_second = append(&store, one_event(twice.clone(), ExpectedRevision::Exact(0)));
    tokio::time::sleep(SETTLE).await;
    held.rollback().await.unwrap();

    blocker.await.unwrap().expect("the gate was free again");
    assert_eq!(new_ok.await.unwrap().unwrap().revision, 0);
    match wrong.await.unwrap() {
        Err(StoreError::WrongExpectedRevision { actual, .. }) => assert_eq!(actual, Some(0)),
        other => panic!("expected a wrong revision, got {other:?}"),
    }
    match exists.await.unwrap() {
        Err(StoreError::WrongExpectedRevision { actual, .. }) => assert_eq!(actual, Some(0)),
        other => panic!("expected a wrong revision, got {other:?}"),
    }
    assert_eq!(any_ok.await.unwrap().unwrap().revision, 0);
    assert_eq!(claim_ok.await.unwrap().unwrap().revision, 0);
    match claim_taken.await.unwrap() {
        Err(StoreError::ClaimTaken { claim }) => assert_eq!(claim, taken),
        other => panic!("expected the claim to be taken, got {other:?}"),
    }
    assert_eq!(twice_first.await.unwrap().unwrap().revision, 0);
    assert_eq!(twice_second.await.unwrap().unwrap().revision, 1);

    // What succeeded was written together; the failures left nothing behind.
    let mut connection = store.pool().acquire().await.unwrap();
    let written = transactions(
        &mut connection,
        &[
            &new,
            &any,
            &claiming,
            &twice,
            &existing,
            &ns.stream("loser"),
        ],
    )
    .await;
    let group = &written[&new][0];
    for stream in [&any, &claiming] {
        assert_eq!(&written[stream], &vec![group.clone()], "{stream}");
    }
    assert_eq!(&written[&twice][0], group, "the first append to `twice`");
    assert_ne!(
        &written[&twice][1], group,
        "a second append to one stream waits for the next group"
    );
    assert_eq!(
        written[&existing].len(),
        1,
        "the failed appends wrote nothing"
    );
    assert!(!written.contains_key(&ns.stream("loser")));
    let loser_claims: i64 =
        sqlx::query_scalar("SELECT count(*) FROM unique_claims WHERE stream_id = $1")
            .bind(ns.stream("loser"))
            .fetch_one(&mut *connection)
            .await
            .unwrap();
    assert_eq!(
        loser_claims, 0,
        "a member whose claim was taken keeps none of its claims"
    );
    assert_eq!(
        store.claim_holder(&fresh).await.unwrap(),
        Some(claiming.clone())
    );
}

/// Another process appends a revision that a group's INSERT also writes, and commits while
/// the INSERT waits for it: the statement fails whole, and its members are each appended
/// alone afterwards: the one that lost the race is refused, the others land once.
#[tokio::test]
async fn a_group_that_loses_a_race_to_another_process_decides_each_member_alone() {
    let (store, _db) = single_writer_store().await;
    let ns = Namespace::new();
    let contested = ns.stream("contested");
    store
        .append(one_event(contested.clone(), ExpectedRevision::NoStream))
        .await
        .unwrap();

    // "Another process": revision 1 of `contested`, not yet committed.
    let mut other = store.pool().begin().await.unwrap();
    sqlx::query(
        "INSERT INTO events (position, stream_id, revision, tx, event_id, event_type, data, metadata) \
         VALUES (pg_current_xact_id()::text::bigint << 16, $1, 1, pg_current_xact_id(), \
                 gen_random_uuid(), 'Elsewhere', '{}', '{}')",
    )
    .bind(&contested)
    .execute(&mut *other)
    .await
    .unwrap();

    let (held, blocker) = occupy_the_writer(&store, &ns).await;
    let (first, second, claiming) = (
        ns.stream("first"),
        ns.stream("second"),
        ns.stream("claiming"),
    );
    let name = UniqueClaim::new("username", ns.value("claiming"));
    let loser = append(
        &store,
        one_event(contested.clone(), ExpectedRevision::Exact(0)),
    );
    let first_ok = append(&store, one_event(first.clone(), ExpectedRevision::NoStream));
    let second_ok = append(&store, one_event(second.clone(), ExpectedRevision::Any));
    let claim_ok = append(
        &store,
        one_event(claiming.clone(), ExpectedRevision::NoStream).claim(name.clone()),
    );
    tokio::time::sleep(SETTLE).await;
    held.rollback().await.unwrap();
    blocker.await.unwrap().expect("the gate was free again");
    // The group's INSERT now waits on the other process's revision 1.
    tokio::time::sleep(SETTLE).await;
    other.commit().await.unwrap();

    match loser.await.unwrap() {
        Err(StoreError::WrongExpectedRevision { actual, .. }) => assert_eq!(actual, Some(1)),
        other => panic!("expected a wrong revision, got {other:?}"),
    }
    assert_eq!(first_ok.await.unwrap().unwrap().revision, 0);
    assert_eq!(second_ok.await.unwrap().unwrap().revision, 0);
    assert_eq!(claim_ok.await.unwrap().unwrap().revision, 0);

    let mut connection = store.pool().acquire().await.unwrap();
    let written = transactions(&mut connection, &[&contested, &first, &second, &claiming]).await;
    assert_eq!(
        written[&contested].len(),
        2,
        "the original and the other process's"
    );
    for stream in [&first, &second, &claiming] {
        assert_eq!(written[stream].len(), 1, "{stream} written exactly once");
    }
    assert_ne!(
        written[&first], written[&second],
        "after the failed group, each was appended alone"
    );
    assert_eq!(store.claim_holder(&name).await.unwrap(), Some(claiming));
}

/// Many concurrent appends through the store's writers: every acknowledged append is in the log
/// once, at the revision it was told, and groups did form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_transactions_and_all_land() {
    let database = TestDatabase::new().await.unwrap();
    let store = PostgresEventStore::connect(database.url(), 20)
        .await
        .unwrap();
    let ns = Namespace::new();
    let streams: Vec<String> = (0..400).map(|n| ns.stream(&format!("s{n}"))).collect();
    let appends: Vec<_> = streams
        .iter()
        .map(|stream| {
            append(
                &store,
                one_event(stream.clone(), ExpectedRevision::NoStream),
            )
        })
        .collect();
    let mut positions = Vec::new();
    for appended in appends {
        let result = appended.await.unwrap().expect("every append lands");
        assert_eq!(result.revision, 0);
        positions.push(result.position);
    }
    let mut connection = store.pool().acquire().await.unwrap();
    let written = transactions(&mut connection, &streams.iter().collect::<Vec<_>>()).await;
    assert_eq!(written.len(), streams.len());
    assert!(written.values().all(|txs| txs.len() == 1));
    let distinct: std::collections::HashSet<&String> = written.values().flatten().collect();
    assert!(
        distinct.len() < streams.len(),
        "400 concurrent appends took {} transactions: no group formed",
        distinct.len()
    );
    positions.sort();
    positions.dedup();
    assert_eq!(
        positions.len(),
        streams.len(),
        "each append its own position"
    );
}

/// Batch leaders dropped (their clients gone): the first while its append waits for the writer,
/// the second while it waits for the first. The other commands of the second batch, which
/// counted the first's events and were never sent, decide again and land; nothing hangs; and
/// the stream's credits are exactly the increments stored, on an unbroken chain.
#[tokio::test]
async fn commands_batched_after_a_dropped_leader_decide_again() {
    use command_service::pipeline::execute;
    use events::audit::{ChainHead, Link};
    use events::metadata::{Actor, CommandContext};
    use events::user::{CreditsChange, User, UserCommand};
    use events::values::{Credits, UserId};
    use std::sync::Arc;

    let (store, _db) = single_writer_store().await;
    let store = Arc::new(store);
    let ns = Namespace::new();
    let context = || CommandContext::new(uuid::Uuid::now_v7(), Actor::system(), chrono::Utc::now());
    let id = UserId::new();
    let create = test_support::history::create_user(id, "dropped_leader", "dropped@example.com");
    execute::<User, _>(&*store, &id, &context(), 1, |_| Ok(create.clone()))
        .await
        .expect("created");
    let increment = move |store: Arc<PostgresEventStore>| {
        tokio::spawn(async move {
            execute::<User, _>(&*store, &id, &context(), 10, |_| {
                Ok(UserCommand::ChangeCredits(CreditsChange::Increment(
                    Credits::new(1),
                )))
            })
            .await
            .map(|_| ())
        })
    };

    let (held, blocker) = occupy_the_writer(&store, &ns).await;
    let leader = increment(store.clone());
    tokio::time::sleep(SETTLE).await;
    let mut after: Vec<_> = (0..3).map(|_| increment(store.clone())).collect();
    tokio::time::sleep(SETTLE).await;
    leader.abort();
    after.remove(0).abort();
    tokio::time::sleep(SETTLE).await;
    held.rollback().await.unwrap();
    blocker.await.unwrap().expect("the blocker lands");
    for command in after {
        tokio::time::timeout(Duration::from_secs(20), command)
            .await
            .expect("no command hangs")
            .unwrap()
            .expect("decided again and landed");
    }

    let recorded = store.read_stream(&User::stream_name(id), 0).await.unwrap();
    let mut head = ChainHead::default();
    assert!(recorded
        .iter()
        .all(|event| head.follow(event) == Link::Chained));
    let increments = recorded
        .iter()
        .filter(|event| event.event_type == "CreditsIncreased")
        .count() as u64;
    assert!(
        (2..=3).contains(&increments),
        "{increments} increments stored"
    );
    let (state, _) = command_service::pipeline::load_aggregate::<User>(&*store, &id)
        .await
        .unwrap();
    assert_eq!(state.expect("the user").credits.get(), increments);
}
