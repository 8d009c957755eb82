//! The contract every [`EventStore`] adapter passes. Each check works on streams and claims of
//! its own (named after a fresh UUID), so it also runs against a store other tests share.

use std::sync::Arc;
use std::time::Duration;

use events::store::{
    AppendRequest, AppendResult, EventStore, ExpectedRevision, NewEvent, RecordedEvent, StoreError,
    UniqueClaim,
};
use futures::StreamExt;
use serde_json::json;
use uuid::Uuid;

use crate::wait::eventually;

/// Bound on every wait for an event to arrive.
const PATIENCE: Duration = Duration::from_secs(30);

/// Names of streams and claims private to one check.
pub struct Namespace(String);

impl Namespace {
    pub fn new() -> Self {
        Namespace(Uuid::now_v7().simple().to_string())
    }

    pub fn stream(&self, name: &str) -> String {
        format!("test{}-{name}", self.0)
    }

    pub fn owns(&self, event: &RecordedEvent) -> bool {
        event.stream.starts_with(&format!("test{}-", self.0))
    }

    pub fn value(&self, name: &str) -> String {
        format!("{name}-{}", self.0)
    }
}

impl Default for Namespace {
    fn default() -> Self {
        Self::new()
    }
}

pub fn event(event_type: &str, data: serde_json::Value) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: event_type.to_owned(),
        data,
        metadata: json!({ "correlationId": Uuid::now_v7() }),
    }
}

fn counted(n: u64) -> NewEvent {
    event("Counted", json!({ "n": n }))
}

async fn append(
    store: &dyn EventStore,
    stream: &str,
    expected: ExpectedRevision,
    events: Vec<NewEvent>,
) -> Result<AppendResult, StoreError> {
    store
        .append(AppendRequest::new(stream, expected, events))
        .await
}

fn assert_wrong_revision(result: Result<AppendResult, StoreError>, actual: Option<u64>) {
    match result {
        Err(StoreError::WrongExpectedRevision { actual: got, .. }) => assert_eq!(got, actual),
        other => panic!("expected a wrong-expected-revision error, got {other:?}"),
    }
}

/// Appends honour the expected revision, and a refused append writes nothing.
pub async fn expected_revisions_are_enforced(store: &dyn EventStore) {
    let ns = Namespace::new();
    let stream = ns.stream("account");

    assert!(store.read_stream(&stream, 0).await.unwrap().is_empty());
    assert_eq!(store.last_event(&stream).await.unwrap(), None);
    assert_wrong_revision(
        append(store, &stream, ExpectedRevision::Exact(0), vec![counted(0)]).await,
        None,
    );

    let first = append(store, &stream, ExpectedRevision::NoStream, vec![counted(0)])
        .await
        .unwrap();
    assert_eq!(first.revision, 0);
    assert_eq!(first.first_position, first.position);

    assert_wrong_revision(
        append(store, &stream, ExpectedRevision::NoStream, vec![counted(1)]).await,
        Some(0),
    );

    let second = append(
        store,
        &stream,
        ExpectedRevision::Exact(0),
        vec![counted(1), counted(2)],
    )
    .await
    .unwrap();
    assert_eq!(second.revision, 2);
    assert!(second.first_position > first.position);
    assert!(second.position > second.first_position);

    assert_wrong_revision(
        append(store, &stream, ExpectedRevision::Exact(0), vec![counted(9)]).await,
        Some(2),
    );
    assert_wrong_revision(
        append(store, &stream, ExpectedRevision::Exact(7), vec![counted(9)]).await,
        Some(2),
    );

    let any = append(store, &stream, ExpectedRevision::Any, vec![counted(3)])
        .await
        .unwrap();
    assert_eq!(any.revision, 3);

    let events = store.read_stream(&stream, 0).await.unwrap();
    let revisions: Vec<u64> = events.iter().map(|e| e.revision).collect();
    assert_eq!(revisions, vec![0, 1, 2, 3]);
    let counts: Vec<u64> = events
        .iter()
        .map(|e| e.data["n"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, vec![0, 1, 2, 3], "refused appends wrote nothing");
    assert_eq!(events[3].position, any.position);
    assert!(events.windows(2).all(|w| w[0].position < w[1].position));

    let tail = store.read_stream(&stream, 2).await.unwrap();
    assert_eq!(tail.len(), 2);
    assert_eq!(tail[0].revision, 2);
    assert_eq!(
        store.last_event(&stream).await.unwrap().as_ref(),
        events.last()
    );
}

/// Concurrent read-decide-append loops on one stream lose no update (invariant 1).
pub async fn concurrent_writers_lose_no_update(store: Arc<dyn EventStore>, writers: u64) {
    let ns = Namespace::new();
    let stream = ns.stream("counter");
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let store = store.clone();
            let stream = stream.clone();
            tokio::spawn(async move {
                for attempt in 0..1_000 {
                    let events = store.read_stream(&stream, 0).await.unwrap();
                    let total = events
                        .last()
                        .map_or(0, |e| e.data["total"].as_u64().unwrap());
                    let expected =
                        ExpectedRevision::from_current(events.last().map(|e| e.revision));
                    let increment = event("Incremented", json!({ "total": total + 1 }));
                    match append(&*store, &stream, expected, vec![increment]).await {
                        Ok(_) => return attempt,
                        Err(StoreError::WrongExpectedRevision { .. }) => continue,
                        Err(other) => panic!("append failed: {other}"),
                    }
                }
                panic!("a writer could not append in 1,000 attempts");
            })
        })
        .collect();
    let mut retries = 0;
    for task in tasks {
        retries += task.await.unwrap();
    }
    let events = store.read_stream(&stream, 0).await.unwrap();
    assert_eq!(events.len() as u64, writers);
    assert_eq!(events.last().unwrap().data["total"], json!(writers));
    assert!(
        writers < 2 || retries > 0,
        "writers never raced; the check proved nothing"
    );
}

/// Of many concurrent claims of one value, exactly one wins, case-insensitively (invariant 2).
pub async fn one_of_many_concurrent_claims_wins(store: Arc<dyn EventStore>, claimants: usize) {
    let ns = Namespace::new();
    let name = ns.value("Alice");
    let tasks: Vec<_> = (0..claimants)
        .map(|i| {
            let store = store.clone();
            let stream = ns.stream(&format!("user{i}"));
            // Every other claimant spells the name in upper case.
            let value = if i % 2 == 0 {
                name.clone()
            } else {
                name.to_uppercase()
            };
            tokio::spawn(async move {
                let request = AppendRequest::new(
                    stream.clone(),
                    ExpectedRevision::NoStream,
                    vec![event("UserCreated", json!({ "username": value }))],
                )
                .claim(UniqueClaim::new("username", &value));
                (stream, store.append(request).await)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (stream, Ok(_)) => winners.push(stream),
            (_, Err(StoreError::ClaimTaken { claim })) => {
                assert_eq!(claim, UniqueClaim::new("username", &name));
            }
            (_, Err(other)) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins: {winners:?}");

    // The losers wrote nothing.
    for i in 0..claimants {
        let stream = ns.stream(&format!("user{i}"));
        let written = store.read_stream(&stream, 0).await.unwrap().len();
        assert_eq!(written, usize::from(winners.contains(&stream)), "{stream}");
    }
}

/// A claim lives and dies with its append: a refused append leaves no claim behind, a release
/// frees the value, and the holder may claim its own value again.
pub async fn claims_follow_their_append(store: &dyn EventStore) {
    let ns = Namespace::new();
    let name = UniqueClaim::new("username", ns.value("bob"));
    let (a, b) = (ns.stream("a"), ns.stream("b"));

    append(store, &a, ExpectedRevision::NoStream, vec![counted(0)])
        .await
        .unwrap();
    // Refused for its revision: the claim must not stay behind.
    let refused = store
        .append(
            AppendRequest::new(&a, ExpectedRevision::Exact(5), vec![counted(1)])
                .claim(name.clone()),
        )
        .await;
    assert_wrong_revision(refused, Some(0));

    let won = store
        .append(
            AppendRequest::new(&b, ExpectedRevision::NoStream, vec![counted(0)])
                .claim(name.clone()),
        )
        .await;
    assert!(won.is_ok(), "a refused append left its claim: {won:?}");
    assert_eq!(store.claim_holder(&name).await.unwrap(), Some(b.clone()));
    let (holder, events) = store.read_claimed_stream(&name).await.unwrap().unwrap();
    assert_eq!(holder, b);
    assert_eq!(events, store.read_stream(&b, 0).await.unwrap());
    let shouted = UniqueClaim::new("username", name.value().to_uppercase());
    assert_eq!(store.claim_holder(&shouted).await.unwrap(), Some(b.clone()));

    let taken = store
        .append(
            AppendRequest::new(&a, ExpectedRevision::Exact(0), vec![counted(1)])
                .claim(name.clone()),
        )
        .await;
    assert!(
        matches!(taken, Err(StoreError::ClaimTaken { .. })),
        "{taken:?}"
    );
    assert_eq!(store.read_stream(&a, 0).await.unwrap().len(), 1);

    // The holder may claim again (a no-op), then releases the value.
    store
        .append(
            AppendRequest::new(&b, ExpectedRevision::Exact(0), vec![counted(1)])
                .claim(name.clone()),
        )
        .await
        .unwrap();
    store
        .append(
            AppendRequest::new(&b, ExpectedRevision::Exact(1), vec![counted(2)])
                .release(name.clone()),
        )
        .await
        .unwrap();
    assert_eq!(store.claim_holder(&name).await.unwrap(), None);
    assert_eq!(store.read_claimed_stream(&name).await.unwrap(), None);
    store
        .append(
            AppendRequest::new(&a, ExpectedRevision::Exact(0), vec![counted(1)])
                .claim(name.clone()),
        )
        .await
        .expect("a released value can be claimed");
    assert_eq!(store.claim_holder(&name).await.unwrap(), Some(a.clone()));

    // Releasing a value held by another stream changes nothing.
    store
        .append(
            AppendRequest::new(&b, ExpectedRevision::Exact(2), vec![counted(3)])
                .release(name.clone()),
        )
        .await
        .unwrap();
    let stolen = store
        .append(AppendRequest::new(&b, ExpectedRevision::Exact(3), vec![counted(4)]).claim(name))
        .await;
    assert!(
        matches!(stolen, Err(StoreError::ClaimTaken { .. })),
        "{stolen:?}"
    );
}

/// Every event of the namespace in the global log, in log order, once `count` of them are
/// visible. Readers of the log may lag a moment behind appends (any transaction still running
/// in the cluster holds them back), so this waits, within [`PATIENCE`], and panics past it
/// rather than answer fewer events than were written.
pub async fn read_namespace(
    store: &dyn EventStore,
    ns: &Namespace,
    count: usize,
) -> Vec<RecordedEvent> {
    eventually(
        PATIENCE,
        &format!("{count} events of the namespace are readable"),
        || async {
            let mut ours = Vec::new();
            let mut after = None;
            loop {
                let page = store.read_all(after, 500).await.unwrap();
                let Some(last) = page.last() else { break };
                after = Some(last.position);
                ours.extend(page.into_iter().filter(|e| ns.owns(e)));
            }
            if ours.len() >= count {
                Ok(ours)
            } else {
                Err(format!("{} of them", ours.len()))
            }
        },
    )
    .await
}

/// Reading the global log from a position returns what follows it, in order, in pages.
pub async fn reads_the_log_from_the_middle(store: &dyn EventStore) {
    let ns = Namespace::new();
    let mut written = Vec::new();
    for i in 0..30u64 {
        let stream = ns.stream(&format!("s{}", i % 3));
        let new = counted(i);
        written.push(new.event_id);
        append(store, &stream, ExpectedRevision::Any, vec![new])
            .await
            .unwrap();
    }
    let log = read_namespace(store, &ns, 30).await;
    let ids: Vec<Uuid> = log.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, written);
    assert!(log.windows(2).all(|w| w[0].position < w[1].position));

    let middle = log[9].position;
    let mut seen = Vec::new();
    let mut after = Some(middle);
    for _ in 0..1_000 {
        let page = store.read_all(after, 7).await.unwrap();
        assert!(page.len() <= 7);
        let Some(last) = page.last() else { break };
        after = Some(last.position);
        seen.extend(page.into_iter().filter(|e| ns.owns(e)));
        if seen.len() >= 20 {
            break;
        }
    }
    assert_eq!(seen, log[10..].to_vec());
    let counts: Vec<u64> = seen.iter().map(|e| e.data["n"].as_u64().unwrap()).collect();
    assert_eq!(counts, (10..30).collect::<Vec<_>>());
}

async fn receive(
    subscription: &mut events::store::EventStream,
    ns: &Namespace,
    count: usize,
) -> Vec<std::sync::Arc<RecordedEvent>> {
    let mut received = Vec::new();
    while received.len() < count {
        let next = tokio::time::timeout(PATIENCE, subscription.next())
            .await
            .expect("events arrive in time")
            .expect("the subscription does not end")
            .unwrap();
        if ns.owns(&next) {
            received.push(next);
        }
    }
    received
}

/// A subscription delivers the stored events, then live ones, once each, in order.
pub async fn subscription_catches_up_then_follows(store: &dyn EventStore) {
    let ns = Namespace::new();
    let before = counted(0);
    let before_id = before.event_id;
    append(
        store,
        &ns.stream("before"),
        ExpectedRevision::NoStream,
        vec![before],
    )
    .await
    .unwrap();
    let start = read_namespace(store, &ns, 1).await;
    assert_eq!(start.len(), 1);
    assert_eq!(start[0].event_id, before_id);

    let mut stored = Vec::new();
    for i in 0..20u64 {
        let new = counted(i);
        stored.push(new.event_id);
        append(
            store,
            &ns.stream(&format!("s{}", i % 4)),
            ExpectedRevision::Any,
            vec![new],
        )
        .await
        .unwrap();
    }

    let mut subscription = store.subscribe_all(Some(start[0].position));
    let caught_up = receive(&mut subscription, &ns, 20).await;
    assert_eq!(
        caught_up.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        stored
    );

    // Live: appended after the subscription caught up, two events per append.
    let mut live = Vec::new();
    let mut tokens = Vec::new();
    for i in 20..30u64 {
        let pair = vec![counted(i), counted(i)];
        live.extend(pair.iter().map(|e| e.event_id));
        let result = append(store, &ns.stream("live"), ExpectedRevision::Any, pair)
            .await
            .unwrap();
        tokens.push(result.position);
    }
    let followed = receive(&mut subscription, &ns, live.len()).await;
    assert_eq!(
        followed.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        live
    );

    let all: Vec<&RecordedEvent> = caught_up
        .iter()
        .chain(&followed)
        .map(|event| &**event)
        .collect();
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    // The consistency token of an append is reached once its last event has been delivered.
    for (pair, token) in followed.chunks(2).zip(tokens) {
        assert!(pair[0].position <= token);
        assert!(
            pair[1].position >= token,
            "{:?} < {token:?}",
            pair[1].position
        );
    }
}
