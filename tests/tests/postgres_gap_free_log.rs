//! Invariant 3 on the PostgreSQL store: positions are taken at insert, transactions commit in
//! any order, and still no reader ever skips an event that commits late.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_store::postgres::PostgresEventStore;
use events::store::{AppendRequest, EventStore, ExpectedRevision, Position};
use futures::StreamExt;
use rand::Rng;
use serde_json::json;
use test_support::event_store_contract::{event, read_namespace, Namespace};
use test_support::TestDatabase;

async fn store() -> (PostgresEventStore, TestDatabase) {
    let database = TestDatabase::new().await.unwrap();
    let store = PostgresEventStore::connect(database.url(), 40)
        .await
        .unwrap();
    (store, database)
}

/// A transaction that took a lower position but has not committed holds back every reader,
/// even past later transactions that did commit, and every wait for the positions above it to
/// settle.
#[tokio::test]
async fn a_late_commit_holds_back_readers_until_it_lands() {
    let (store, _db) = store().await;
    let ns = Namespace::new();

    let mut slow = store.pool().begin().await.unwrap();
    let late = store
        .append_within(
            &mut slow,
            &AppendRequest::new(
                ns.stream("slow"),
                ExpectedRevision::NoStream,
                vec![event("Slow", json!({}))],
            ),
        )
        .await
        .unwrap();

    let quick = store
        .append(AppendRequest::new(
            ns.stream("quick"),
            ExpectedRevision::NoStream,
            vec![event("Quick", json!({}))],
        ))
        .await
        .unwrap();
    assert!(quick.position > late.position);

    // The quick one has committed, but showing it now would let a reader pass the slow one.
    assert!(store.read_all(None, 100).await.unwrap().is_empty());
    // Nor has everything below the quick one settled.
    let waiting = tokio::time::timeout(Duration::from_millis(300), store.settled(quick.position));
    assert!(
        waiting.await.is_err(),
        "settled while a transaction below is open"
    );

    slow.commit().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), store.settled(quick.position))
        .await
        .expect("settled once the transaction below committed")
        .unwrap();
    let log = read_namespace(&store, &ns, 2).await;
    let positions: Vec<Position> = log.iter().map(|e| e.position).collect();
    assert_eq!(positions, vec![late.position, quick.position]);
}

/// A rolled-back append leaves a hole in the positions that readers pass over.
#[tokio::test]
async fn a_rolled_back_append_is_never_seen() {
    let (store, _db) = store().await;
    let ns = Namespace::new();
    let mut doomed = store.pool().begin().await.unwrap();
    store
        .append_within(
            &mut doomed,
            &AppendRequest::new(
                ns.stream("doomed"),
                ExpectedRevision::NoStream,
                vec![event("Doomed", json!({}))],
            ),
        )
        .await
        .unwrap();
    let kept = store
        .append(AppendRequest::new(
            ns.stream("kept"),
            ExpectedRevision::NoStream,
            vec![event("Kept", json!({}))],
        ))
        .await
        .unwrap();
    doomed.rollback().await.unwrap();
    let log = read_namespace(&store, &ns, 1).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].position, kept.position);
    assert!(store
        .read_stream(&ns.stream("doomed"), 0)
        .await
        .unwrap()
        .is_empty());
}

/// Positions follow transaction ids, so several appends in one transaction still get distinct
/// positions, in the order they were made, and commit together.
#[tokio::test]
async fn appends_sharing_a_transaction_get_ordered_positions() {
    let (store, _db) = store().await;
    let ns = Namespace::new();
    let mut transaction = store.pool().begin().await.unwrap();
    let mut results = Vec::new();
    for name in ["a", "b", "a"] {
        let request = AppendRequest::new(
            ns.stream(name),
            ExpectedRevision::Any,
            vec![event("One", json!({})), event("Two", json!({}))],
        );
        results.push(
            store
                .append_within(&mut transaction, &request)
                .await
                .unwrap(),
        );
    }
    assert!(read_namespace_now(&store, &ns).await.is_empty());
    transaction.commit().await.unwrap();

    let log = read_namespace(&store, &ns, 6).await;
    let positions: Vec<Position> = log.iter().map(|e| e.position).collect();
    let expected: Vec<Position> = results
        .iter()
        .flat_map(|r| [r.first_position, r.position])
        .collect();
    assert_eq!(positions, expected);
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        results[2].revision, 3,
        "the second append to a saw the first"
    );
}

async fn read_namespace_now(store: &PostgresEventStore, ns: &Namespace) -> Vec<Position> {
    let log = store.read_all(None, 1_000).await.unwrap();
    log.iter()
        .filter(|e| ns.owns(e))
        .map(|e| e.position)
        .collect()
}

const WRITERS: usize = 8;
const EVENTS: usize = 10_000;

/// 8 writers commit out of order (random delays inside their transactions) while subscribers
/// follow the log: each of four subscribers (sharing the store's reads of the tail, one of them
/// starting late) sees every one of 10,000 events exactly once, in position order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscriber_sees_every_event_once_in_order_despite_out_of_order_commits() {
    let (store, _db) = store().await;
    let store = Arc::new(store);
    let ns = Arc::new(Namespace::new());
    let committed = Arc::new(Mutex::new(Vec::<Position>::with_capacity(EVENTS)));
    let commit_clock = Arc::new(AtomicU64::new(0));
    let out_of_order = Arc::new(AtomicU64::new(0));

    // Four subscribers, which share what the store reads of the log's tail: three from the
    // start, and one that begins after a while, from the start too, and catches up.
    let subscribers: Vec<_> = (0..4)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                if n == 3 {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                let mut subscription = store.subscribe_all(None);
                let mut seen = Vec::with_capacity(EVENTS);
                while seen.len() < EVENTS {
                    let next = tokio::time::timeout(Duration::from_secs(60), subscription.next())
                        .await
                        .expect("the subscriber keeps receiving")
                        .expect("the subscription does not end")
                        .unwrap();
                    seen.push(next.position);
                }
                // Nothing more may arrive: every event was delivered once.
                let extra =
                    tokio::time::timeout(Duration::from_millis(300), subscription.next()).await;
                assert!(
                    extra.is_err(),
                    "an event arrived twice or from nowhere: {extra:?}"
                );
                seen
            })
        })
        .collect();

    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (store, ns, committed) = (store.clone(), ns.clone(), committed.clone());
            let (commit_clock, out_of_order) = (commit_clock.clone(), out_of_order.clone());
            tokio::spawn(async move {
                let mut last_commit_seen = 0u64;
                for i in 0..EVENTS / WRITERS {
                    let stream = ns.stream(&format!("w{writer}-{}", i % 50));
                    let mut transaction = store.pool().begin().await.unwrap();
                    let result = store
                        .append_within(
                            &mut transaction,
                            &AppendRequest::new(
                                stream,
                                ExpectedRevision::Any,
                                vec![event("Written", json!({ "writer": writer, "i": i }))],
                            ),
                        )
                        .await
                        .unwrap();
                    // The random time held open is the point: it makes commits land out of
                    // position order.
                    let delay = rand::rng().random_range(0..3_000);
                    tokio::time::sleep(Duration::from_micros(delay)).await;
                    transaction.commit().await.unwrap();
                    // A commit is out of order when a higher position committed before it.
                    let highest = commit_clock.fetch_max(result.position.commit, Ordering::SeqCst);
                    if highest > result.position.commit {
                        out_of_order.fetch_add(1, Ordering::Relaxed);
                    }
                    last_commit_seen = last_commit_seen.max(highest);
                    committed.lock().unwrap().push(result.position);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let mut committed = committed.lock().unwrap().clone();
    committed.sort();
    assert_eq!(committed.len(), EVENTS);
    for (n, subscriber) in subscribers.into_iter().enumerate() {
        let seen = subscriber.await.unwrap();
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "subscriber {n}: delivered in position order, once each"
        );
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), EVENTS);
        assert_eq!(
            seen, committed,
            "subscriber {n}: every committed event delivered, none missing"
        );
    }
    let reordered = out_of_order.load(Ordering::Relaxed);
    assert!(
        reordered > 100,
        "only {reordered} out-of-order commits: the test proved little"
    );
    eprintln!("{reordered} of {EVENTS} commits landed after a higher position had committed");
}

/// Subscriptions of one store share their reads of the log's head; one whose owner stops
/// polling it in the middle of such a read (a projector busy with its batch, a publisher
/// waiting for its broker) must not hold back the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_polling_holds_back_no_other() {
    let (store, _db) = store().await;
    let ns = Namespace::new();
    let append = |i: usize| {
        AppendRequest::new(
            ns.stream("s"),
            ExpectedRevision::Any,
            vec![event("Written", json!({ "i": i }))],
        )
    };
    store.append(append(0)).await.unwrap();
    let mut idle = store.subscribe_all(None);
    let mut busy = store.subscribe_all(None);
    for subscription in [&mut idle, &mut busy] {
        let first = tokio::time::timeout(Duration::from_secs(10), subscription.next()).await;
        assert!(matches!(first, Ok(Some(Ok(_)))), "{first:?}");
    }
    store.append(append(1)).await.unwrap();
    // One poll: `idle` starts reading the head for both, and is then left alone.
    let _ = futures::poll!(idle.next());
    let next = tokio::time::timeout(Duration::from_secs(5), busy.next()).await;
    assert!(
        matches!(next, Ok(Some(Ok(_)))),
        "the other subscriber waited for the idle one: {next:?}"
    );
}
