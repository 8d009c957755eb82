//! Users by id, many requests in one query. `retrieve-user-info` and `user-info` are the hot
//! reads of the API (services resolve ids to users on every request of theirs); one statement
//! per request would spend more of the database on statements and round trips than on users.
//! So requests queue their ids, and each query takes every request waiting at the time: a
//! request that arrives while the database is busy with others joins the next query. An idle
//! service sends each request's query at once; nothing waits for a batch to fill.
//!
//! `/metrics` counts the lookups (`userledger_user_lookups_total`) and the queries that served
//! them (`userledger_user_lookup_queries_total`).
//!
//! The answers are the same as one query per request would give: each request gets exactly
//! the stored objects of the users it named, in `_id` order, read after the request arrived
//! (so after its consistency wait).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Semaphore};
use uuid::Uuid;

use http_edge::envelope::ApiError;

use crate::error::ReadError;

/// Queries in flight at once, one per core (at least two); more waiting requests join the next
/// one. Fewer, larger queries serve more: on 2 cores, 1,000,000 users, 64 clients, 4 in flight
/// answered 13,249 requests/s and 2 answered 15,127.
fn queries_in_flight() -> usize {
    std::thread::available_parallelism().map_or(2, |cores| cores.get().max(2))
}
/// The most ids one query looks up (a request names at most [`crate::users::MAX_TARGETS`]).
const MOST_IDS_PER_QUERY: usize = 5_000;
/// Requests that may wait for a query before a new one waits for room in the queue.
const QUEUE: usize = 4_096;

/// The stored user objects one request asked for, in `_id` order.
type Answer = Result<Vec<String>, Arc<sqlx::Error>>;

struct Lookup {
    /// Sorted, without repeats.
    ids: Vec<Uuid>,
    answer: oneshot::Sender<Answer>,
}

/// The lookups of one router (so of one process's read models and settings). Its queue and
/// the task that drains it start with the first lookup.
#[derive(Default)]
pub struct UserLookups {
    queue: OnceLock<mpsc::Sender<Lookup>>,
}

impl UserLookups {
    /// The stored objects of the users with these ids (`projections::users`), in `_id`
    /// order, each once; ids of nobody are left out. The first call's `database` serves every
    /// later one (a router serves one process's read models).
    pub async fn by_ids(&self, database: &PgPool, ids: &[Uuid]) -> Result<Vec<String>, ReadError> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let queue = self.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(QUEUE);
            tokio::spawn(serve(receiver, database.clone()));
            sender
        });
        let (answer, answered) = oneshot::channel();
        let failed = |error: Arc<sqlx::Error>| ReadError::Api(ApiError::internal(error));
        let closed = || failed(Arc::new(sqlx::Error::PoolClosed));
        queue
            .send(Lookup { ids, answer })
            .await
            .map_err(|_| closed())?;
        answered.await.map_err(|_| closed())?.map_err(failed)
    }
}

/// Takes the waiting lookups, as many as fit in one query, whenever a query may start.
async fn serve(mut queue: mpsc::Receiver<Lookup>, database: PgPool) {
    let in_flight = Arc::new(Semaphore::new(queries_in_flight()));
    let mut carried: Option<Lookup> = None;
    loop {
        let first = match carried.take() {
            Some(lookup) => lookup,
            None => match queue.recv().await {
                Some(lookup) => lookup,
                None => return,
            },
        };
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        // Taken once a query may start: what queued meanwhile rides along.
        let mut ids = first.ids.len();
        let mut batch = vec![first];
        while let Ok(next) = queue.try_recv() {
            if ids + next.ids.len() > MOST_IDS_PER_QUERY {
                carried = Some(next);
                break;
            }
            ids += next.ids.len();
            batch.push(next);
        }
        let database = database.clone();
        tokio::spawn(async move {
            answer(batch, &database).await;
            drop(permit);
        });
    }
}

/// One query for every lookup of `batch`, and each its own users.
async fn answer(batch: Vec<Lookup>, database: &PgPool) {
    metrics::counter!("userledger_user_lookup_queries_total").increment(1);
    metrics::counter!("userledger_user_lookups_total").increment(batch.len() as u64);
    let mut ids: Vec<Uuid> = batch.iter().flat_map(|l| l.ids.iter().copied()).collect();
    if batch.len() > 1 {
        ids.sort_unstable();
        ids.dedup();
    }
    let found: Result<Vec<(Uuid, String)>, sqlx::Error> =
        sqlx::query_as("SELECT id, document::text FROM read_models.users WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(database)
            .await;
    let found = match found {
        Ok(rows) => rows.into_iter().collect::<HashMap<_, _>>(),
        Err(error) => {
            let error = Arc::new(error);
            for lookup in batch {
                let _ = lookup.answer.send(Err(error.clone()));
            }
            return;
        }
    };
    for lookup in batch {
        let documents = lookup
            .ids
            .iter()
            .filter_map(|id| found.get(id).cloned())
            .collect();
        // A caller that gave up (its client went away) no longer listens.
        let _ = lookup.answer.send(Ok(documents));
    }
}
