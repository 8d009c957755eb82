//! User search: `POST /user/admin-api/search`, `/user/client-api/search` and `/user/search`,
//! with Liquid's body (`{"query": "..."}`) and answer (`{"results": [users]}`, at most
//! [`RESULTS`]).
//!
//! A user matches when every word of the query, without regard to case, begins a word of
//! their username, email, first or last name; or when the whole query is part of one of those
//! or of their full name ("first last"); or is their role or their `_id`. The query is plain
//! text: Liquid compiles it as a regular expression (and answers 500 for an invalid one); here
//! `.`, `*`, `%` or `_` match themselves. Served by the `users` read model's indexes, never a
//! sequential scan ([`SETTINGS`]): words by the word index over `search_words`,
//! infixes of three characters or more by the trigram index over `search` (see
//! [`statement`]), roles and ids by their b-trees.
//!
//! The admin and client searches show users as the other admin reads do. `/user/search` (a
//! signed-in person's) leaves out users who blocked the caller and shows each result as
//! [`profiles::public_view`] does for search results.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use http_edge::auth::Caller;
use http_edge::body::{Body, Fields, Json};
use http_edge::envelope::ApiError;
use projections::{social, users};
use serde_json::Value;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::consistency::Consistency;
use crate::database;
use crate::error::ReadError;
use crate::profiles::{public_view, Relation, Seen};
use crate::AppState;

/// The most results one search answers (Liquid's default).
pub const RESULTS: i64 = 10;

/// The longest query, in characters (Liquid's validator).
pub const MAX_QUERY: usize = 128;

/// Below this many characters a query has no trigram: it matches the beginnings of words.
const TRIGRAM: usize = 3;

/// A search.
#[derive(Debug, ToSchema)]
pub struct SearchBody {
    /// Text to find in usernames, emails and names (1..128 characters, matched without regard
    /// to case), or a role or a user's `_id`.
    #[schema(min_length = 1, max_length = 128)]
    pub query: String,
}

impl Body for SearchBody {
    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let query: String = fields.required("query")?;
        let length = query.chars().count();
        if length == 0 || length > MAX_QUERY {
            fields.error(
                "query",
                Value::String(query),
                format!("must be 1 to {MAX_QUERY} characters of text"),
            );
            return None;
        }
        Some(Self { query })
    }
}

/// How search's connections plan: every form of query takes its index, and each statement is
/// planned once per connection.
/// - `enable_seqscan = off`: a query the planner believes common (a name most users share)
///   would otherwise be served by a sequential scan that stops at the tenth match, which is
///   quick when the belief is right and reads the whole table when it is wrong (seen: 2.8 s for
///   a username's prefix among a million users). It only discourages: a table without an index
///   could still be scanned.
/// - `plan_cache_mode = force_generic_plan`: the statement's plan does not depend on the
///   query's words (its shape is fixed above), and planning it anew for each search took
///   longer than running it (8,500 searches/s against 20,600/s at 16 clients on 2 cores).
/// - `max_parallel_workers_per_gather = 0`: the generic plan cannot know that a query is no
///   role most users hold, so it expects a million rows and starts parallel workers, which
///   took 8 ms to find ten users that one process finds in 0.1 ms.
pub const SETTINGS: [(&str, &str); 3] = [
    ("enable_seqscan", "off"),
    ("plan_cache_mode", "force_generic_plan"),
    ("max_parallel_workers_per_gather", "0"),
];

/// Connections search may hold at once.
const CONNECTIONS: u32 = 8;

/// A pool of connections to `database`'s server set by [`SETTINGS`], opened as searches need
/// them, with the event store's pool options (a bounded wait for a connection).
pub fn pool(database: &PgPool) -> PgPool {
    let options = (*database.connect_options()).clone().options(SETTINGS);
    event_store::postgres::pool_options(CONNECTIONS).connect_lazy_with(options)
}

/// The search pool, or a 500 when the service runs without a database.
fn searches(state: &AppState) -> Result<&PgPool, ApiError> {
    database(state)?;
    state
        .searches
        .as_ref()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no search pool")))
}

/// Who searches: an admin or an application, or a signed-in person (`$6`, their id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Searcher {
    Directory,
    Person,
}

/// A search's statement and what it binds besides the query, which goes as `$2` (a role):
/// `$1` [`SearchTerms::words`], `$3` [`SearchTerms::id`], `$4` the limit, `$5`
/// [`SearchTerms::infix`], and for a person `$6` their id.
///
/// Two branches, the second run only when the first found fewer than the limit: users with
/// words that begin with every word of the query (or with that role or id), by the word index,
/// which answers a typical query (the start of a name, username or email) in well under a
/// millisecond; then users whose fields hold the query anywhere, by the trigram index, which
/// reads long posting lists when the query's trigrams are common (a run of digits among a
/// million usernames: a few milliseconds).
pub fn statement(query: &str, searcher: Searcher) -> (String, SearchTerms) {
    let (blocked, followed) = match searcher {
        Searcher::Directory => ("", ""),
        Searcher::Person => (
            // The blockers as one list, read once: as a join, the planner would walk every
            // user in id order to meet them.
            "AND u.id <> ALL (ARRAY(SELECT b.source FROM read_models.blocks b
                                     WHERE b.target = $6))",
            ", EXISTS (SELECT 1 FROM read_models.follows f
                        WHERE f.source = $6 AND f.target = found.id AND f.approved)",
        ),
    };
    let words = "u.search_words @@ to_tsquery('simple', $1)";
    let sql = format!(
        "WITH found AS (
           (SELECT u.id, u.document FROM read_models.users u
             WHERE ({words} OR u.role = $2 OR u.id = $3) {blocked} LIMIT $4)
           UNION ALL
           (SELECT u.id, u.document FROM read_models.users u
             WHERE u.search LIKE lower($5) AND NOT {words} AND u.role <> $2
               AND u.id IS DISTINCT FROM $3 {blocked} LIMIT $4)
           LIMIT $4)
         SELECT found.document::text {followed} FROM found"
    );
    (sql, SearchTerms::of(query))
}

/// What a search binds besides the query itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerms {
    /// Each word of the query as a prefix (`'word':*`), all of them required.
    pub words: String,
    /// The query as an id, when it is one.
    pub id: Option<Uuid>,
    /// `%query%` with `LIKE`'s wildcards escaped (PostgreSQL lowercases it, as it lowercased
    /// the `search` column); `None` below three characters, which have no trigram to look up.
    pub infix: Option<String>,
}

impl SearchTerms {
    fn of(query: &str) -> Self {
        let words = query
            .split_whitespace()
            .map(|word| format!("'{}':*", word.replace('\\', "\\\\").replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(" & ");
        let infix = (query.chars().count() >= TRIGRAM).then(|| {
            let escaped = query
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        });
        Self {
            words,
            id: Uuid::parse_str(query).ok(),
            infix,
        }
    }
}

/// `POST /user/{admin,client}-api/search`.
#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub, edge = caller.edge.as_str()))]
pub async fn search(
    State(state): State<AppState>,
    caller: Caller,
    consistency: Consistency,
    Json(body): Json<SearchBody>,
) -> Result<Response, ReadError> {
    let database = database(&state)?;
    consistency.wait(database, users::NAME).await?;
    let (sql, terms) = statement(&body.query, Searcher::Directory);
    let documents: Vec<String> = sqlx::query_scalar(&sql)
        .bind(terms.words)
        .bind(&body.query)
        .bind(terms.id)
        .bind(RESULTS)
        .bind(terms.infix)
        .fetch_all(searches(&state)?)
        .await?;
    let tiers = &state.subscription_tiers;
    let now = Utc::now();
    let mut answer = String::from(r#"{"ok":1,"data":{"results":["#);
    for (i, document) in documents.iter().enumerate() {
        if i > 0 {
            answer.push(',');
        }
        users::shown(document, tiers, now, &mut answer).map_err(ApiError::internal)?;
    }
    answer.push_str("]}}");
    Ok(([(header::CONTENT_TYPE, "application/json")], answer).into_response())
}

/// `POST /user/search`: a signed-in person's search.
#[tracing::instrument(skip_all, fields(caller = %caller.claims.sub))]
pub async fn own_search(
    State(state): State<AppState>,
    caller: Caller,
    consistency: Consistency,
    Json(body): Json<SearchBody>,
) -> Result<Response, ReadError> {
    let viewer = Uuid::parse_str(&caller.claims.sub).map_err(ApiError::internal)?;
    let database = database(&state)?;
    consistency.wait(database, users::NAME).await?;
    consistency.wait(database, social::NAME).await?;
    let (sql, terms) = statement(&body.query, Searcher::Person);
    let rows: Vec<(String, bool)> = sqlx::query_as(&sql)
        .bind(terms.words)
        .bind(&body.query)
        .bind(terms.id)
        .bind(RESULTS)
        .bind(terms.infix)
        .bind(viewer)
        .fetch_all(searches(&state)?)
        .await?;
    let results = rows
        .iter()
        .map(|(document, follows)| {
            public_view(
                document,
                &state.subscription_tiers,
                Relation { follows: *follows },
                Seen::SearchResult,
            )
        })
        .collect::<Result<Vec<Value>, ApiError>>()?;
    Ok(http_edge::envelope::Answer::ok(serde_json::json!({ "results": results })).into_response())
}
