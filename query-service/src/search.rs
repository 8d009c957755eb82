//! User search: `POST /user/admin-api/search`, `/user/client-api/search` and `/user/search`,
//! with Liquid's body (`{"query": "..."}`) and answer (`{"results": [users]}`, at most
//! [`RESULTS`]).
//!
//! A user matches when the query, without regard to case, is part of their username, email,
//! first name, last name or full name ("first last"), or is their role or their `_id`. The query
//! is plain text: Liquid compiles it as a regular expression (and answers 500 for an invalid
//! one); here `.` or `*` match themselves. Served by the `users` read model's indexes, never a
//! sequential scan ([`NO_SEQUENTIAL_SCAN`]): a query of three characters or more by the trigram index over `search`
//! (every infix), a shorter one by the word index over `search_words` (the words it begins),
//! roles and ids by their b-trees.
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
use utoipa::ToSchema;
use uuid::Uuid;

use crate::consistency::Consistency;
use crate::database;
use crate::error::ReadError;
use crate::profiles::{self, public_view, Relation, Seen};
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
        if length == 0 || length > MAX_QUERY || query.contains('\0') {
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

/// Set in each search's transaction: a query the planner believes common (a name most users
/// share) would otherwise be served by a sequential scan that stops at the tenth match, which is
/// quick when the belief is right and reads the whole table when it is wrong. With it every
/// form of query takes its index (`enable_seqscan` only discourages: a table without an index
/// could still be scanned).
pub const NO_SEQUENTIAL_SCAN: &str = "SET LOCAL enable_seqscan = off";

/// A transaction whose statements take an index ([`NO_SEQUENTIAL_SCAN`]).
async fn without_sequential_scan(
    database: &sqlx::PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut transaction = database.begin().await?;
    sqlx::query(NO_SEQUENTIAL_SCAN)
        .execute(&mut *transaction)
        .await?;
    Ok(transaction)
}

/// Who searches: an admin or an application, or a signed-in person (`$5`, their id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Searcher {
    Directory,
    Person,
}

/// The statement of a search for `query`, and its first parameter. Parameters: `$1` that text
/// (a `LIKE` pattern or a word prefix), `$2` the query (a role), `$3` the query as an id (or
/// `NULL`), `$4` the limit, and for a person `$5` their id. It yields each user's stored
/// object, and for a person whether they follow that user.
pub fn statement(query: &str, searcher: Searcher) -> (String, String) {
    let (condition, text) = condition(query);
    let sql = match searcher {
        Searcher::Directory => {
            format!("SELECT u.document::text FROM read_models.users u WHERE {condition} LIMIT $4")
        }
        Searcher::Person => format!(
            "SELECT u.document::text,
                    EXISTS (SELECT 1 FROM read_models.follows f
                             WHERE f.source = $5 AND f.target = u.id AND f.approved)
               FROM read_models.users u
              WHERE {condition}
                AND NOT EXISTS (SELECT 1 FROM read_models.blocks b
                                 WHERE b.source = u.id AND b.target = $5)
              LIMIT $4"
        ),
    };
    (sql, text)
}

/// The condition a query's users meet, and the text it matches.
fn condition(query: &str) -> (&'static str, String) {
    if query.chars().count() >= TRIGRAM {
        let escaped = query
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        (
            "(u.search LIKE '%' || lower($1) || '%' OR u.role = $2 OR u.id = $3)",
            escaped,
        )
    } else {
        (
            "(u.search_words @@ to_tsquery('simple', quote_literal(lower($1)) || ':*') \
              OR u.role = $2 OR u.id = $3)",
            query.to_owned(),
        )
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
    let (sql, text) = statement(&body.query, Searcher::Directory);
    let mut transaction = without_sequential_scan(database).await?;
    let documents: Vec<String> = sqlx::query_scalar(&sql)
        .bind(text)
        .bind(&body.query)
        .bind(Uuid::parse_str(&body.query).ok())
        .bind(RESULTS)
        .fetch_all(&mut *transaction)
        .await?;
    transaction.commit().await?;
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
    let (sql, text) = statement(&body.query, Searcher::Person);
    let mut transaction = without_sequential_scan(database).await?;
    let rows: Vec<(String, bool)> = sqlx::query_as(&sql)
        .bind(text)
        .bind(&body.query)
        .bind(Uuid::parse_str(&body.query).ok())
        .bind(RESULTS)
        .bind(viewer)
        .fetch_all(&mut *transaction)
        .await?;
    transaction.commit().await?;
    let results = rows
        .iter()
        .map(|(document, follows)| {
            let document = profiles::hydrated(document, &state.subscription_tiers)?;
            public_view(
                &document,
                Relation { follows: *follows },
                Seen::SearchResult,
            )
        })
        .collect::<Result<Vec<Value>, ApiError>>()?;
    Ok(http_edge::envelope::Answer::ok(serde_json::json!({ "results": results })).into_response())
}
