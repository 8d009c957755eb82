//! A bootstrapped log in a database of its own (system roles, the first super_admin, the
//! internal client), and the domain's commands run on it through the command pipeline, as the
//! routes run them: for tests of what follows the log (read models, the Kafka publisher).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use command_service::pipeline::execute;
use command_service::AppState;
use event_store::postgres::PostgresEventStore;
use events::application::{Application, ApplicationCommand};
use events::metadata::{Actor, CommandContext};
use events::role::{Role, RoleCommand};
use events::store::{EventStore, Position, RecordedEvent};
use events::user::{User, UserCommand};
use events::values::{ApplicationId, RoleId, UserId};
use sqlx::PgPool;

use crate::app::test_settings;
use crate::history::create_user;
use crate::wait::eventually;
use crate::TestDatabase;

/// Attempts of a command when writers race (the pipeline's retries).
const ATTEMPTS: usize = 16;

pub struct World {
    pub database: TestDatabase,
    pub store: Arc<PostgresEventStore>,
    pub pool: PgPool,
}

impl World {
    pub async fn new() -> Self {
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
        Self {
            database,
            store,
            pool,
        }
    }

    /// The command service's state on this world's store (for helpers that take one).
    pub fn state(&self) -> AppState {
        AppState::new(self.store.clone(), test_settings())
    }

    /// A new command of the system actor, now.
    pub fn context(&self) -> CommandContext {
        CommandContext::new(uuid::Uuid::now_v7(), Actor::system(), Utc::now())
    }

    pub async fn user(&self, id: UserId, command: UserCommand) {
        execute::<User, _>(&*self.store, &id, &self.context(), ATTEMPTS, |_| {
            Ok(command.clone())
        })
        .await
        .map_err(|e| format!("{:?}", http_edge::envelope::ApiError::from(e)))
        .expect("the user command runs");
    }

    /// Records a sign-in attempt on `id`'s sign-in stream.
    pub async fn sign_in(&self, id: UserId, event: events::sign_in::SignInEvent) {
        execute::<events::sign_in::SignIns, _>(
            &*self.store,
            &id,
            &self.context(),
            ATTEMPTS,
            |_| Ok(events::sign_in::Record(event.clone())),
        )
        .await
        .map_err(|e| format!("{:?}", http_edge::envelope::ApiError::from(e)))
        .expect("the sign-in is recorded");
    }

    /// A user named `username`, with the email `<username>.Mail+tag@Gmail.com`.
    pub async fn create_user(&self, username: &str) -> UserId {
        let id = UserId::new();
        self.user(
            id,
            create_user(id, username, &format!("{username}.Mail+tag@Gmail.com")),
        )
        .await;
        id
    }

    pub async fn role(&self, id: &str, command: RoleCommand) {
        let id = RoleId::parse(id).unwrap();
        execute::<Role, _>(&*self.store, &id, &self.context(), ATTEMPTS, |_| {
            Ok(command.clone())
        })
        .await
        .map_err(|e| format!("{:?}", http_edge::envelope::ApiError::from(e)))
        .expect("the role command runs");
    }

    /// Decides `command` on the relation of its two users.
    pub async fn social(&self, command: events::social::SocialCommand) {
        use events::social::SocialCommand as C;
        let edge = match &command {
            C::Follow { edge, .. } => edge,
            C::Unfollow(edge)
            | C::Accept(edge)
            | C::RemoveFollower(edge)
            | C::Block(edge)
            | C::Unblock(edge) => edge,
        };
        let pair = events::social::Pair::of(edge.source, edge.target).expect("two users");
        execute::<events::social::Social, _>(
            &*self.store,
            &pair,
            &self.context(),
            ATTEMPTS,
            |_| Ok(command.clone()),
        )
        .await
        .map_err(|e| format!("{:?}", http_edge::envelope::ApiError::from(e)))
        .expect("the social command runs");
    }

    pub async fn application(&self, id: ApplicationId, command: ApplicationCommand) {
        execute::<Application, _>(&*self.store, &id, &self.context(), ATTEMPTS, |_| {
            Ok(command.clone())
        })
        .await
        .map_err(|e| format!("{:?}", http_edge::envelope::ApiError::from(e)))
        .expect("the application command runs");
    }

    /// Every event of the log, in order: once readers see all that had committed when asked
    /// (they may lag a moment behind commits while other transactions in the cluster run; writes
    /// that go on meanwhile may show too). Panics if they do not within 30 s: a partial log
    /// would let a test pass or fail on the wrong events.
    pub async fn log(&self) -> Vec<RecordedEvent> {
        let committed: Option<i64> = sqlx::query_scalar("SELECT max(position) FROM events")
            .fetch_one(&self.pool)
            .await
            .expect("the log's head");
        let committed = committed.map(|p| Position::at(p as u64));
        eventually(
            Duration::from_secs(30),
            &format!("the log up to {committed:?} is readable"),
            || async {
                let mut all: Vec<RecordedEvent> = Vec::new();
                loop {
                    let page = self
                        .store
                        .read_all(all.last().map(|e| e.position), 1_000)
                        .await
                        .expect("the log reads");
                    if page.is_empty() {
                        break;
                    }
                    all.extend(page);
                }
                let read_to = all.last().map(|e| e.position);
                if read_to >= committed {
                    Ok(all)
                } else {
                    Err(format!("{} events, up to {read_to:?}", all.len()))
                }
            },
        )
        .await
    }

    pub async fn last_position(&self) -> Position {
        self.log().await.last().expect("a log").position
    }
}
