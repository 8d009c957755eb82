//! The EventStoreDB event store, on the official gRPC client (`eventstore` 4).
//!
//! # Layout
//! - this file: [`EventStoreDbStore`] (connect, read a stream) and its [`EventStore`]
//!   implementation, which wires the steps of an append together.
//! - `reservations`: uniqueness claims as reservation streams `unique-<kind>-<value>`, stale
//!   reservations and their takeover, and the crash window that this design leaves open.
//! - `append`: the events append itself, its positions read back, and whether a failed one was
//!   written after all.
//! - `subscription`: `read_all` and `subscribe_all`, the global log without ESDB's own events.
//! - `mapping`: our types to and from the client's (streams, revisions, positions, payloads,
//!   timestamps), which `$all` events are ours, and the client's errors as the store's (an
//!   unreachable server is `StoreError::Unreachable`, 503 for a caller).
//!
//! # TLS crypto provider
//! `eventstore` 4 installs rustls' aws-lc-rs provider as the process default itself, once, when
//! its first connection task starts, and *panics in that background task* if another provider
//! was installed first (`install_default().expect(..)` in its `grpc.rs`). So this module must
//! not install one, and nothing else in the process should either; [`EventStoreDbStore::connect`]
//! checks the connection so that such a panic shows up as an error instead of a silent hang.

mod append;
mod mapping;
mod reservations;
mod subscription;

use async_trait::async_trait;
use eventstore::{
    Client, ClientSettings, ReadStreamOptions, RecordedEvent as EsRecordedEvent, StreamPosition,
};

use events::store::{
    AppendRequest, AppendResult, EventStore, EventStream, Position, RecordedEvent, StoreError,
    UniqueClaim,
};

use append::{validate, AppendFailure};
use mapping::{into_event, store_error, to_recorded};
pub use reservations::{reservation_stream, STALE_RESERVATION_AGE};

/// The [`EventStore`] on EventStoreDB. Cheap to clone: clones share the client's connection.
#[derive(Clone)]
pub struct EventStoreDbStore {
    client: Client,
}

impl EventStoreDbStore {
    /// Connects with an `esdb://` / `esdb+discover://` connection string and checks that the
    /// server answers, so a wrong URL fails at start-up rather than on the first command.
    ///
    /// Reading `$all` needs a user allowed to (by default `$admins` / `$ops`), e.g.
    /// `esdb://admin:changeit@localhost:2113?tls=false`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let settings: ClientSettings = url.parse().map_err(StoreError::backend)?;
        // `Client::new` takes the current tokio runtime handle: it must run inside a runtime,
        // which an async fn guarantees.
        let client = Client::new(settings).map_err(StoreError::backend)?;
        match client.server_info().await {
            Ok(_) => Ok(Self::from_client(client)),
            Err(eventstore::Error::ConnectionClosed) => Err(StoreError::Backend(
                "the EventStoreDB connection task stopped; if a rustls CryptoProvider was \
                 installed before the first EventStoreDB client, eventstore 4 panics there"
                    .into(),
            )),
            Err(error) => Err(store_error(error)),
        }
    }

    /// Wraps an existing client (no connection check).
    pub fn from_client(client: Client) -> Self {
        Self { client }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A stream's events as the client returns them; an unknown stream is empty.
    async fn read_stream_raw(
        &self,
        stream: &str,
        from_revision: u64,
    ) -> Result<Vec<EsRecordedEvent>, StoreError> {
        let options = ReadStreamOptions::default()
            .forwards()
            .position(StreamPosition::Position(from_revision));
        let mut events = Vec::new();
        let mut read = match self.client.read_stream(stream, &options).await {
            Ok(read) => read,
            Err(eventstore::Error::ResourceNotFound) => return Ok(events),
            Err(error) => return Err(store_error(error)),
        };
        loop {
            match read.next().await {
                Ok(Some(resolved)) => events.extend(into_event(resolved)),
                Ok(None) => return Ok(events),
                // The server answers a read of an unknown stream with `StreamNotFound`, which
                // `ReadStream::next_read_event` turns into this error.
                Err(eventstore::Error::ResourceNotFound) => return Ok(events),
                Err(error) => return Err(store_error(error)),
            }
        }
    }
}

#[async_trait]
impl EventStore for EventStoreDbStore {
    /// Reserves the claims, appends, then applies the releases (see the `reservations` module).
    ///
    /// When the events append fails, the reservations this call made are given back, except
    /// when the failure leaves open whether the events were written (a timeout, a dropped
    /// connection) and reading the stream back does not prove they were not: then they are kept,
    /// because releasing a value whose claiming event did commit would break uniqueness, while a
    /// kept reservation only blocks the value until it is found stale. The original error is
    /// returned either way. A release that fails after a successful append is logged and does
    /// not fail the append, which has happened.
    #[tracing::instrument(skip_all, fields(stream = %request.stream, events = request.events.len()))]
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        validate(&request)?;
        let reserved = self.reserve_all(&request).await?;

        let result = match self.append_events(&request).await {
            Ok(result) => result,
            Err(AppendFailure::NotWritten(error)) => {
                self.release_reserved(&request.stream, &reserved).await;
                return Err(error);
            }
            Err(AppendFailure::Unknown(error)) => {
                if !reserved.is_empty() {
                    match self.was_written(&request).await {
                        Ok(false) => self.release_reserved(&request.stream, &reserved).await,
                        Ok(true) | Err(_) => tracing::warn!(
                            %error,
                            "append outcome unknown; keeping its uniqueness reservations"
                        ),
                    }
                }
                return Err(error);
            }
        };

        let mut releases: Vec<&UniqueClaim> = request.releases.iter().collect();
        releases.sort();
        releases.dedup();
        for claim in releases {
            if let Err(error) = self.release(claim, &request.stream).await {
                tracing::warn!(claim = %claim, %error, "could not release a uniqueness claim");
            }
        }
        Ok(result)
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_revision: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream_raw(stream, from_revision)
            .await?
            .iter()
            .map(to_recorded)
            .collect()
    }

    /// Reads `$all` in batches without ESDB's own events and the reservation streams (see the
    /// `subscription` module).
    async fn read_all(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        subscription::read_all(&self.client, after, limit).await
    }

    /// The holder per the reservation stream; a stale reservation holds nothing.
    async fn claim_holder(&self, claim: &UniqueClaim) -> Result<Option<String>, StoreError> {
        self.reservation_holder(claim).await
    }

    /// A filtered catch-up subscription to `$all` (see the `subscription` module).
    fn subscribe_all(&self, after: Option<Position>) -> EventStream {
        subscription::subscribe_all(self.client.clone(), after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `esdb://` URL of a port on this host where nothing listens.
    fn nobody_listening() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("its address").port();
        drop(listener);
        format!("esdb://127.0.0.1:{port}?tls=false&maxDiscoverAttempts=2&discoveryInterval=50")
    }

    #[tokio::test]
    async fn a_server_that_cannot_be_reached_is_unreachable_not_a_failure() {
        let url = nobody_listening();
        assert!(matches!(
            EventStoreDbStore::connect(&url).await,
            Err(StoreError::Unreachable(_))
        ));

        // A store made without the start-up check: its reads and appends find no node, and
        // are refused as unreachable (503 for a caller), not as a failure (500). (Once its
        // discovery attempts are spent, the client's connection task stops, and later calls
        // get `ConnectionClosed`: a failure, since no retry mends it. Hence a client each.)
        let store = || {
            let settings: ClientSettings = url.parse().expect("a valid URL");
            EventStoreDbStore::from_client(Client::new(settings).expect("a client"))
        };
        let read = store().read_stream("user-1", 0).await;
        assert!(matches!(read, Err(StoreError::Unreachable(_))), "{read:?}");
        let append = store()
            .append(AppendRequest::new(
                "user-1",
                events::store::ExpectedRevision::NoStream,
                vec![events::store::NewEvent {
                    event_id: uuid::Uuid::now_v7(),
                    event_type: "UserBanned".into(),
                    data: serde_json::json!({ "state": true }),
                    metadata: serde_json::json!({ "schemaVersion": 1 }),
                }],
            ))
            .await;
        assert!(
            matches!(append, Err(StoreError::Unreachable(_))),
            "{append:?}"
        );
    }
}
