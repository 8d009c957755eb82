//! A running userledger for black-box tests: its own database, its own port, the bootstrap
//! super_admin and internal client, and an HTTP client.

use std::sync::Arc;

use command_service::hashing::Hasher;
use command_service::pipeline::execute;
use command_service::settings::{BootstrapAdmin, BootstrapClient};
use command_service::{Application, Settings};
use event_store::postgres::PostgresEventStore;
use event_store::sealed::{Keyring, Sealed};
use events::metadata::{Actor, CommandContext};
use events::store::{EventStore, RecordedEvent};
use events::user::{CreateUser, User, UserCommand};
use events::values::{Credits, Email, PersonName, RoleId, UserId, Username};
use serde_json::Value;

use crate::TestDatabase;

pub const ADMIN_USERNAME: &str = "root_admin";
pub const ADMIN_EMAIL: &str = "root@example.com";
pub const ADMIN_PASSWORD: &str = "root-password-1";
pub const CLIENT_ID: &str = "internal_app";
pub const CLIENT_SECRET: &str = "internal-secret-1";
pub const TOKEN_SECRET: &[u8] = b"test-token-secret-of-at-least-32-bytes";

pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    pub http: reqwest::Client,
    /// The event store as it keeps the events: personal data sealed.
    pub store: Arc<PostgresEventStore>,
    /// The event store as the service reads and writes it: personal data sealed on the way
    /// in, opened on the way out (as `userledger serve` has it).
    pub log: Arc<dyn EventStore>,
    pub settings: Settings,
    /// The projectors of the read models, running in this test.
    pub read_models: Option<projections::ReadModels>,
    _stop: tokio::sync::watch::Sender<bool>,
    _database: TestDatabase,
}

/// The settings tests run with: the bootstrap accounts above, a fixed token key, and no rate
/// limits (tests send bursts from one address).
pub fn test_settings() -> Settings {
    let mut settings = Settings::new(TOKEN_SECRET);
    settings.bootstrap_admin = Some(BootstrapAdmin {
        username: ADMIN_USERNAME.into(),
        email: ADMIN_EMAIL.into(),
        password: ADMIN_PASSWORD.into(),
    });
    settings.bootstrap_client = Some(BootstrapClient {
        client_id: CLIENT_ID.into(),
        secret: CLIENT_SECRET.into(),
    });
    settings.edge.rate_limits = http_edge::RateLimits::OFF;
    settings
}

/// Starts the service on a free port, in a database of its own.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(test_settings()).await
}

pub async fn spawn_app_with(settings: Settings) -> TestApp {
    spawn_app_publishing(settings, None).await
}

/// Starts the service as [`spawn_app_with`] does, and its Kafka publisher when `kafka` is set.
pub async fn spawn_app_publishing(
    settings: Settings,
    kafka: Option<projections::KafkaSettings>,
) -> TestApp {
    let database = TestDatabase::new().await.expect("a test database");
    let store = Arc::new(
        PostgresEventStore::connect(database.url(), 20)
            .await
            .expect("the store connects"),
    );
    let keyring = Keyring::prepare(store.pool().clone())
        .await
        .expect("the keys' table");
    let log: Arc<dyn EventStore> = Arc::new(Sealed::new(store.clone(), keyring));
    // The read models follow the log, as in `userledger serve`; they stop with the test.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut read_models =
        projections::spawn_read_models(log.clone(), database.url(), stopped.clone());
    if let Some(kafka) = kafka {
        read_models = read_models.with_publisher(store.clone(), database.url(), kafka, &stopped);
    }
    let app = Application::build_with(
        "127.0.0.1:0".parse().expect("an address"),
        log.clone(),
        Some(store.pool().clone()),
        settings.clone(),
        query_service::router_with_projectors(
            query_service::AppState::new(
                log.clone(),
                Some(store.pool().clone()),
                settings.subscription_tiers.clone(),
            ),
            query_service::ProjectorsHere::new(read_models.progress.clone()),
        ),
    )
    .await
    .expect("the application builds");
    let address = format!("http://{}", app.local_addr().expect("bound"));
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    TestApp {
        address,
        http: reqwest::Client::new(),
        store,
        log,
        settings,
        read_models: Some(read_models),
        _stop: stop,
        _database: database,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// The URL of this test's database (the event store and the read models).
    pub fn database_url(&self) -> &str {
        self._database.url()
    }

    /// Every event of one stream, as the service reads it (personal data opened).
    pub async fn stream(&self, stream: &str) -> Vec<RecordedEvent> {
        self.log
            .read_stream(stream, 0)
            .await
            .expect("the stream reads")
    }

    /// How many events the whole log holds: tests check that refused requests append nothing.
    /// Counted in the table, not through `read_all`, whose view may lag a moment behind
    /// commits while other transactions (the projectors') are running.
    pub async fn log_length(&self) -> usize {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(self.store.pool())
            .await
            .expect("the log counts");
        count as usize
    }

    /// Creates a user straight through the domain and the store (no HTTP, no token needed):
    /// for tests whose subject is something else. Email `<username>@example.com`.
    pub async fn register_user(&self, username: &str, password: &str, role: &str) -> UserId {
        let id = UserId::new();
        let create = CreateUser {
            id,
            username: Username::parse(username).expect("a username"),
            email: Email::parse(&format!("{username}@example.com")).expect("an email"),
            password_hash: Hasher::new(1, 1).hash(password).await.expect("hashed"),
            first_name: PersonName::parse("Test").expect("a name"),
            last_name: PersonName::parse("User").expect("a name"),
            middle_name: None,
            role: RoleId::parse(role).expect("a role id"),
            phone: None,
            phone_country_code: None,
            credits: Credits::new(0),
            invite_codes: Vec::new(),
            invited_by: None,
        };
        let context =
            CommandContext::new(uuid::Uuid::now_v7(), Actor::system(), chrono::Utc::now());
        execute::<User, _>(&*self.log, &id, &context, 1, |_| {
            Ok(UserCommand::Create(create.clone()))
        })
        .await
        .expect("the user is created");
        id
    }

    /// Sends `method path` with a bearer token and a JSON body; the status, the JSON answer and
    /// the consistency token header.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: &Value,
    ) -> (u16, Value, Option<String>) {
        let response = self
            .http
            .request(method, self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("the service answers");
        let status = response.status().as_u16();
        let consistency = response
            .headers()
            .get(http_edge::envelope::CONSISTENCY_TOKEN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (
            status,
            response.json().await.unwrap_or(Value::Null),
            consistency,
        )
    }

    /// `POST /oauth/token` with a form; the JSON answer and status.
    pub async fn token_request(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .http
            .post(self.url("/oauth/token"))
            .form(form)
            .send()
            .await
            .expect("the token endpoint answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A client token of the bootstrap internal client, with all its scope.
    pub async fn client_token(&self) -> String {
        let (status, body) = self
            .token_request(&[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ])
            .await;
        assert_eq!(status, 200, "client_credentials: {body}");
        body["access_token"]
            .as_str()
            .expect("an access token")
            .to_owned()
    }

    /// A delegated token of the bootstrap super_admin (password grant, internal client).
    pub async fn admin_token(&self) -> String {
        self.user_token(ADMIN_USERNAME, ADMIN_PASSWORD).await
    }

    /// A delegated token of any user (password grant through the internal client).
    pub async fn user_token(&self, username: &str, password: &str) -> String {
        let (status, body) = self
            .token_request(&[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ])
            .await;
        assert_eq!(status, 200, "password grant: {body}");
        body["access_token"]
            .as_str()
            .expect("an access token")
            .to_owned()
    }

    /// Sends `method path` with a bearer token and a JSON body; the status and JSON answer.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("the service answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        self.call(reqwest::Method::PATCH, path, token, Some(body))
            .await
    }

    pub async fn put(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, token, Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, token, Some(body))
            .await
    }
}

/// The `path` of every field error of a 400 ClientInputError answer, in the answer's order.
pub fn error_paths(body: &Value) -> Vec<String> {
    body["additionalInfo"]["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["path"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The whole log of `store`, once every event written is readable: readers see the log only
/// below the cluster's oldest running transaction, and other tests' transactions share the
/// cluster. Panics after 10 s.
pub async fn whole_log(store: &PostgresEventStore) -> Vec<RecordedEvent> {
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(store.pool())
        .await
        .expect("the log counts");
    crate::wait::eventually(
        std::time::Duration::from_secs(10),
        &format!("the log's {written} events are all readable"),
        || async {
            let log = store
                .read_all(None, usize::MAX)
                .await
                .expect("the log reads");
            if log.len() as i64 == written {
                Ok(log)
            } else {
                Err(format!("{} readable", log.len()))
            }
        },
    )
    .await
}
