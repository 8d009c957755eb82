//! Invariant 4 against real process death: while 10,000 events stream into the log, the
//! projector process (`userledger project`) is killed with SIGKILL at random moments and
//! started again, again and again; at the end its read models are identical, row for row, to a
//! clean rebuild (`userledger rebuild`), and every credit increment counted once.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use command_service::AppState;
use event_store::postgres::PostgresEventStore;
use events::store::Position;
use sqlx::PgPool;
use test_support::app::test_settings;
use test_support::history::write_history;
use test_support::TestDatabase;
use tokio::process::{Child, Command};

const EVENTS: usize = 10_000;
const WRITERS: usize = 4;
const USERS_PER_WRITER: usize = 25;
const MIN_KILLS: usize = 10;
/// The read model tables and the key each is dumped in order of.
const TABLES: [(&str, &str); 6] = [
    ("users", "id"),
    ("roles", "id"),
    ("applications", "id"),
    ("invite_codes", "code"),
    ("follows", "id"),
    ("blocks", "source, target"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projector_processes_killed_at_random_moments_end_identical_to_a_clean_rebuild() {
    let database = TestDatabase::new().await.expect("a test database");
    let store = Arc::new(
        PostgresEventStore::connect(database.url(), 10)
            .await
            .expect("the store connects"),
    );
    let state = AppState::new(store.clone(), test_settings());
    command_service::bootstrap::bootstrap(&state)
        .await
        .expect("bootstrap");
    let pool = store.pool().clone();
    let start_length = log_length(&pool).await;

    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let state = state.clone();
            tokio::spawn(async move {
                write_history(&state, writer, EVENTS / WRITERS, USERS_PER_WRITER).await
            })
        })
        .collect();

    let started = Instant::now();
    let mut kills = 0;
    while kills < MIN_KILLS || writers.iter().any(|writer| !writer.is_finished()) {
        let mut projector = project(database.url());
        // A random moment to kill it at is the point, start-up and mid-batch included.
        tokio::time::sleep(Duration::from_millis(rand::random_range(50..700))).await;
        projector.start_kill().expect("SIGKILL");
        projector.wait().await.expect("the projector is reaped");
        kills += 1;
    }
    let mut credits = 0;
    for writer in writers {
        credits += writer.await.expect("the writer finishes");
    }
    let head = last_position(&store).await;
    assert!(log_length(&pool).await - start_length >= EVENTS);

    // One last run, to the log's head, and killed there too.
    let mut projector = project(database.url());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !caught_up(&pool, head).await {
        assert!(Instant::now() < deadline, "the projectors catch up in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    projector.start_kill().expect("SIGKILL");
    projector.wait().await.expect("the projector is reaped");
    let projected = dump(&pool).await;

    let rebuilt = Command::new(env!("CARGO_BIN_EXE_userledger"))
        .arg("rebuild")
        .env("DATABASE_URL", database.url())
        .env_remove("EVENTSTORE_URL")
        .env("RUST_LOG", "warn")
        .stderr(test_support::process_log())
        .status()
        .await
        .expect("userledger rebuild runs");
    assert!(rebuilt.success(), "userledger rebuild: {rebuilt}");
    let clean = dump(&pool).await;

    for ((table, projected), (_, clean)) in projected.iter().zip(&clean) {
        assert_eq!(projected.len(), clean.len(), "rows of {table}");
        assert!(projected == clean, "{table} differs from a clean rebuild");
    }
    assert_eq!(projected[0].1.len(), WRITERS * USERS_PER_WRITER + 1);
    let total: i64 = sqlx::query_scalar(
        "SELECT sum((document->>'credits')::bigint)::bigint FROM read_models.users",
    )
    .fetch_one(&pool)
    .await
    .expect("credits add up");
    assert_eq!(total as u64, credits, "each increment applied once");
    eprintln!(
        "{kills} kills over {} events in {:.1} s",
        log_length(&pool).await - start_length,
        started.elapsed().as_secs_f64()
    );
}

/// `userledger project` on `url`, in a process of its own.
fn project(url: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_userledger"))
        .arg("project")
        .env("DATABASE_URL", url)
        .env_remove("EVENTSTORE_URL")
        .env("USERLEDGER_DATABASE_POOL", "4")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(test_support::process_log())
        .kill_on_drop(true)
        .spawn()
        .expect("userledger project starts")
}

async fn log_length(pool: &PgPool) -> usize {
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await
        .expect("the log counts");
    count as usize
}

/// The position of the last committed event (read from the table: a reader of the log may lag
/// a moment behind commits while other transactions in the cluster run).
async fn last_position(store: &PostgresEventStore) -> Position {
    let last: Option<i64> = sqlx::query_scalar("SELECT max(position) FROM events")
        .fetch_one(store.pool())
        .await
        .expect("the log's head");
    Position::at(last.expect("a log") as u64)
}

/// Whether every read model's checkpoint has reached `head`.
async fn caught_up(pool: &PgPool, head: Position) -> bool {
    let reached: Result<Vec<i64>, _> =
        sqlx::query_scalar("SELECT commit_position FROM read_models.projection_checkpoints")
            .fetch_all(pool)
            .await;
    reached.is_ok_and(|reached| {
        reached.len() == projections::READ_MODEL_NAMES.len()
            && reached.iter().all(|at| *at as u64 >= head.commit)
    })
}

/// Every row of every read model table, as JSON text, in key order.
async fn dump(pool: &PgPool) -> Vec<(&'static str, Vec<String>)> {
    let mut tables = Vec::new();
    for (table, key) in TABLES {
        let rows: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT row_to_json(t)::text FROM read_models.{table} t ORDER BY {key}"
        ))
        .fetch_all(pool)
        .await
        .expect("the read model dumps");
        tables.push((table, rows));
    }
    tables
}
