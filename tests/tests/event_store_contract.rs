//! The event store contract, run against every adapter: PostgreSQL always, EventStoreDB when
//! `EVENTSTORE_URL` is set (its tests are ignored otherwise; run them with
//! `cargo nextest run --run-ignored all`).

use std::sync::Arc;

use event_store::postgres::PostgresEventStore;
use events::store::EventStore;
use test_support::event_store_contract as contract;
use test_support::TestDatabase;

/// A PostgreSQL store in a database of its own, kept for as long as the test holds it.
struct Postgres {
    store: Arc<PostgresEventStore>,
    _database: TestDatabase,
}

async fn postgres() -> Postgres {
    let database = TestDatabase::new().await.expect("a test database");
    let store = PostgresEventStore::connect(database.url(), 120)
        .await
        .expect("the PostgreSQL store connects");
    Postgres {
        store: Arc::new(store),
        _database: database,
    }
}

async fn eventstoredb() -> Arc<event_store::eventstoredb::EventStoreDbStore> {
    let url = std::env::var("EVENTSTORE_URL")
        .expect("EVENTSTORE_URL must name an EventStoreDB server (esdb://...) for this test");
    test_support::init_test_log();
    Arc::new(
        event_store::eventstoredb::EventStoreDbStore::connect(&url)
            .await
            .expect("EventStoreDB connects"),
    )
}

mod postgres_store {
    use super::*;

    #[tokio::test]
    async fn expected_revisions_are_enforced() {
        let pg = postgres().await;
        contract::expected_revisions_are_enforced(&*pg.store).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn concurrent_writers_lose_no_update() {
        let pg = postgres().await;
        let store: Arc<dyn EventStore> = pg.store.clone();
        contract::concurrent_writers_lose_no_update(store, 100).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn one_of_many_concurrent_claims_wins() {
        let pg = postgres().await;
        let store: Arc<dyn EventStore> = pg.store.clone();
        contract::one_of_many_concurrent_claims_wins(store, 100).await;
    }

    #[tokio::test]
    async fn claims_follow_their_append() {
        let pg = postgres().await;
        contract::claims_follow_their_append(&*pg.store).await;
    }

    #[tokio::test]
    async fn reads_the_log_from_the_middle() {
        let pg = postgres().await;
        contract::reads_the_log_from_the_middle(&*pg.store).await;
    }

    #[tokio::test]
    async fn subscription_catches_up_then_follows() {
        let pg = postgres().await;
        contract::subscription_catches_up_then_follows(&*pg.store).await;
    }
}

mod eventstoredb_store {
    use super::*;

    #[tokio::test]
    #[ignore = "needs EVENTSTORE_URL (EventStoreDB)"]
    async fn expected_revisions_are_enforced() {
        contract::expected_revisions_are_enforced(&*eventstoredb().await).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    #[ignore = "needs EVENTSTORE_URL (EventStoreDB)"]
    async fn concurrent_writers_lose_no_update() {
        let store: Arc<dyn EventStore> = eventstoredb().await;
        contract::concurrent_writers_lose_no_update(store, 100).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    #[ignore = "needs EVENTSTORE_URL (EventStoreDB)"]
    async fn one_of_many_concurrent_claims_wins() {
        let store: Arc<dyn EventStore> = eventstoredb().await;
        contract::one_of_many_concurrent_claims_wins(store, 100).await;
    }

    #[tokio::test]
    #[ignore = "needs EVENTSTORE_URL (EventStoreDB)"]
    async fn claims_follow_their_append() {
        contract::claims_follow_their_append(&*eventstoredb().await).await;
    }

    #[tokio::test]
    #[ignore = "needs EVENTSTORE_URL (EventStoreDB)"]
    async fn reads_the_log_from_the_middle() {
        contract::reads_the_log_from_the_middle(&*eventstoredb().await).await;
    }

    #[tokio::test]
    #[ignore = "needs EVENTSTORE_URL (EventStoreDB)"]
    async fn subscription_catches_up_then_follows() {
        contract::subscription_catches_up_then_follows(&*eventstoredb().await).await;
    }
}
