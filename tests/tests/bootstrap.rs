//! First start: system roles always, the configured super_admin and internal client once,
//! however many processes start at the same time and however often they restart.

use std::sync::Arc;

use command_service::Application;
use event_store::postgres::PostgresEventStore;
use events::store::EventStore;
use test_support::app::test_settings;
use test_support::wait::eventually;
use test_support::TestDatabase;

async fn event_types(store: &PostgresEventStore) -> Vec<String> {
    let mut types = Vec::new();
    let mut after = None;
    // Bootstrapping has finished when this runs: nothing is in flight, so the log is complete.
    loop {
        let page = store.read_all(after, 1_000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.position);
        types.extend(page.into_iter().map(|e| e.event_type));
    }
    types.sort();
    types
}

async fn start(store: Arc<PostgresEventStore>) -> http_edge::Server {
    Application::build(
        "127.0.0.1:0".parse().unwrap(),
        store.clone(),
        Some(store.pool().clone()),
        test_settings(),
    )
    .await
    .expect("the application bootstraps")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_starts_and_restarts_bootstrap_once() {
    let database = TestDatabase::new().await.unwrap();
    let store = Arc::new(
        PostgresEventStore::connect(database.url(), 40)
            .await
            .unwrap(),
    );

    let starts: Vec<_> = (0..4).map(|_| tokio::spawn(start(store.clone()))).collect();
    for started in starts {
        started.await.unwrap();
    }
    let first = eventually(
        std::time::Duration::from_secs(10),
        "the bootstrap events become visible",
        || async {
            let types = event_types(&store).await;
            if types.iter().filter(|t| *t == "RoleCreated").count() == 5 {
                Ok(types)
            } else {
                Err(types)
            }
        },
    )
    .await;

    let count = |name: &str| first.iter().filter(|t| *t == name).count();
    assert_eq!(count("RoleCreated"), 5, "{first:?}");
    assert_eq!(count("UserCreated"), 1, "{first:?}");
    assert_eq!(count("ApplicationCreated"), 1, "{first:?}");

    start(store.clone()).await;
    assert_eq!(
        event_types(&store).await,
        first,
        "a restart appends nothing"
    );
}
