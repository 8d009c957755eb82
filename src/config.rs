//! The binary's configuration, in layers: defaults, then an optional TOML file (`--config
//! <path>` or `USERLEDGER_CONFIG`), then environment variables. A later layer overrides an
//! earlier one key by key.
//!
//! Every key is an environment variable ([`KEYS`]): `USERLEDGER_*` for ours, the conventional
//! names (`DATABASE_URL`, `EVENTSTORE_URL`, `KAFKA_*`, `RUST_LOG`, `OTEL_EXPORTER_OTLP_ENDPOINT`)
//! as they are. In the file, a key is its variable's name in lower case without `USERLEDGER_`
//! (`listen`, `database_pool`, `kafka_brokers`, `rust_log`), and a table joins its name to its
//! keys with `_`: `[kafka] brokers = "..."` is `kafka_brokers`, `[database] url` is
//! `database_url`. An unknown key in the file is an error; an empty value (in the file or the
//! environment) counts as unset.
//!
//! `figment` merges the layers and tells which one each effective value came from; each layer
//! is a [`Layer`] of file keys to values as text. Every value of every layer goes through the
//! same parser, defaults included, so an invalid value stops start-up with a [`ConfigError`]
//! naming the key and the layer it came from.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use command_service::settings::{BootstrapAdmin, BootstrapClient, Settings};
use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use http_edge::RateLimits;
use projections::KafkaSettings;
use secrecy::{ExposeSecret, SecretString};

/// Names the configuration file when `--config` is not given. Read from the environment only.
pub const CONFIG_FILE_VARIABLE: &str = "USERLEDGER_CONFIG";

/// What `userledger config` prints instead of a secret.
pub const MASK: &str = "********";

/// The smallest token secret accepted (HS256 keys shorter than the hash are weak).
pub const TOKEN_SECRET_MIN_LENGTH: usize = 32;

/// Where an effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Default,
    File,
    Env,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Default => "default",
            Source::File => "file",
            Source::Env => "env",
        })
    }
}

/// How much of a value `userledger config` and error messages may show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrecy {
    Public,
    /// Never shown.
    Secret,
    /// A URL shown without the password of its user info or a `password` query parameter.
    Url,
}

/// One configuration key.
#[derive(Debug)]
pub struct Key {
    /// The environment variable.
    pub name: &'static str,
    pub secrecy: Secrecy,
    /// The default as text (parsed like any other layer); `None`: unset by default.
    default: fn() -> Option<String>,
}

impl Key {
    /// The key's name in the configuration file: the variable in lower case, without
    /// `USERLEDGER_`.
    pub fn file_key(&self) -> String {
        self.name
            .strip_prefix("USERLEDGER_")
            .unwrap_or(self.name)
            .to_ascii_lowercase()
    }

    pub fn default_value(&self) -> Option<String> {
        (self.default)()
    }

    fn shown(&self, value: &str) -> String {
        match self.secrecy {
            Secrecy::Public => value.to_owned(),
            Secrecy::Secret => MASK.to_owned(),
            Secrecy::Url => mask_url(value),
        }
    }
}

const fn key(name: &'static str, secrecy: Secrecy, default: fn() -> Option<String>) -> Key {
    Key {
        name,
        secrecy,
        default,
    }
}

fn unset() -> Option<String> {
    None
}

/// The command service's own defaults, so that they are stated once.
fn command_defaults() -> Settings {
    Settings::new(Vec::new())
}

fn kafka_defaults() -> KafkaSettings {
    KafkaSettings::new("")
}

use Secrecy::{Public, Secret, Url};

/// Every key the binary reads, in the order `userledger config` prints them.
pub static KEYS: &[Key] = &[
    key("USERLEDGER_LISTEN", Public, || {
        Some("127.0.0.1:8080".into())
    }),
    key("USERLEDGER_STATUS_LISTEN", Public, unset),
    key("USERLEDGER_HEALTH_LISTEN", Public, unset),
    key("DATABASE_URL", Url, unset),
    key("EVENTSTORE_URL", Url, unset),
    key("USERLEDGER_DATABASE_POOL", Public, || Some("32".into())),
    key("USERLEDGER_TOKEN_SECRET", Secret, unset),
    key("USERLEDGER_ACCESS_TOKEN_TTL_SECONDS", Public, || {
        Some(command_defaults().access_token_ttl.as_secs().to_string())
    }),
    key("USERLEDGER_REFRESH_TOKEN_TTL_SECONDS", Public, || {
        Some(command_defaults().refresh_token_ttl.as_secs().to_string())
    }),
    key("USERLEDGER_BOOTSTRAP_ADMIN_USERNAME", Public, unset),
    key("USERLEDGER_BOOTSTRAP_ADMIN_EMAIL", Public, unset),
    key("USERLEDGER_BOOTSTRAP_ADMIN_PASSWORD", Secret, unset),
    key("USERLEDGER_BOOTSTRAP_CLIENT_ID", Public, unset),
    key("USERLEDGER_BOOTSTRAP_CLIENT_SECRET", Secret, unset),
    key("USERLEDGER_CORS_ORIGINS", Public, unset),
    key("USERLEDGER_LOGIN_CLIENT_ID", Public, unset),
    key("USERLEDGER_APP_NAME", Public, || {
        Some(command_defaults().app_name)
    }),
    key("USERLEDGER_SESSION_TTL_SECONDS", Public, || {
        Some(command_defaults().session_ttl.as_secs().to_string())
    }),
    key("USERLEDGER_AUTHORIZATION_CODE_TTL_SECONDS", Public, || {
        Some(
            command_defaults()
                .authorization_code_ttl
                .as_secs()
                .to_string(),
        )
    }),
    key(
        "USERLEDGER_SIGN_IN_FAILURES_PER_MINUTE_PER_ACCOUNT",
        Public,
        || Some(command_defaults().sign_in_failures_per_account.to_string()),
    ),
    key(
        "USERLEDGER_SIGN_IN_FAILURES_PER_MINUTE_PER_IP",
        Public,
        || Some(command_defaults().sign_in_failures_per_ip.to_string()),
    ),
    key("USERLEDGER_INITIAL_CREDITS", Public, || {
        Some(command_defaults().initial_credits.to_string())
    }),
    key("USERLEDGER_INVITE_ONLY", Public, || {
        Some(command_defaults().invite_only.to_string())
    }),
    key("USERLEDGER_CAN_USE_FOLLOW_APIS", Public, || {
        Some(command_defaults().edge.follow_apis.to_string())
    }),
    key("USERLEDGER_CAN_EDIT_PEER_DATA", Public, || {
        Some(command_defaults().can_edit_peer_data.to_string())
    }),
    key("USERLEDGER_ERASURE_SUPER_ADMIN_ONLY", Public, || {
        Some(command_defaults().erasure_super_admin_only.to_string())
    }),
    key("USERLEDGER_HASHING_WORKERS", Public, || {
        Some(command_defaults().hashing_workers.to_string())
    }),
    key("USERLEDGER_HASHING_QUEUE", Public, || {
        Some(command_defaults().hashing_queue.to_string())
    }),
    key("USERLEDGER_MAX_CONCURRENT_REQUESTS", Public, || {
        Some(command_defaults().edge.max_concurrent_requests.to_string())
    }),
    key("USERLEDGER_MAX_CONCURRENT_READS", Public, || {
        Some(command_defaults().edge.max_concurrent_reads.to_string())
    }),
    key("USERLEDGER_BODY_LIMIT_BYTES", Public, || {
        Some(command_defaults().edge.body_limit.to_string())
    }),
    key("USERLEDGER_QUEUE_WAIT_MS", Public, || {
        Some(command_defaults().edge.queue_wait.as_millis().to_string())
    }),
    key("USERLEDGER_HEADER_READ_TIMEOUT_SECONDS", Public, || {
        Some(
            command_defaults()
                .edge
                .header_read_timeout
                .as_secs()
                .to_string(),
        )
    }),
    key("USERLEDGER_BODY_READ_TIMEOUT_SECONDS", Public, || {
        Some(
            command_defaults()
                .edge
                .body_read_timeout
                .as_secs()
                .to_string(),
        )
    }),
    key("USERLEDGER_MAX_CONNECTIONS", Public, || {
        Some(command_defaults().edge.max_connections.to_string())
    }),
    key("USERLEDGER_RATE_LIMIT_TOKEN_PER_MINUTE", Public, || {
        Some(RateLimits::default().token_per_minute.to_string())
    }),
    key("USERLEDGER_RATE_LIMIT_WRITES_PER_MINUTE", Public, || {
        Some(RateLimits::default().writes_per_minute.to_string())
    }),
    key("KAFKA_BROKERS", Public, unset),
    key("KAFKA_USER_TOPIC", Public, || {
        Some(kafka_defaults().user_topic)
    }),
    key("KAFKA_ROLE_APPLICATION_TOPIC", Public, || {
        Some(kafka_defaults().role_application_topic)
    }),
    key("KAFKA_SOCIAL_TOPIC", Public, || {
        Some(kafka_defaults().social_topic)
    }),
    key("KAFKA_PARTITIONS", Public, || {
        Some(kafka_defaults().partitions.to_string())
    }),
    key("KAFKA_REPLICATION_FACTOR", Public, || {
        Some(kafka_defaults().replication_factor.to_string())
    }),
    key("RUST_LOG", Public, || {
        Some("info,sqlx::postgres::notice=warn".into())
    }),
    key("USERLEDGER_LOG_FORMAT", Public, || Some("json".into())),
    key("OTEL_EXPORTER_OTLP_ENDPOINT", Url, unset),
];

/// The key named `name` (an environment variable).
pub fn find_key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.name == name)
}

/// Whether the binary reads the environment variable `name` (a key, or `USERLEDGER_CONFIG`).
pub fn is_known_variable(name: &str) -> bool {
    name == CONFIG_FILE_VARIABLE || find_key(name).is_some()
}

/// Why the configuration was refused. Each names the key at fault; none shows a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A value that does not parse, or is out of range.
    Invalid {
        key: &'static str,
        /// The value as it may be shown (secrets masked).
        shown: String,
        from: Origin,
        expected: String,
    },
    /// A key of the file that is not a configuration key.
    UnknownFileKey { key: String, file: String },
    /// The file cannot be read or is not TOML.
    File { file: String, reason: String },
    /// `key` is needed because `because` is set.
    Missing { key: &'static str, because: String },
}

/// Where a refused value came from, for the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File { file: String, key: String },
    Env,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: ")?;
        match self {
            ConfigError::Invalid {
                key,
                shown,
                from,
                expected,
            } => {
                write!(f, "{key} = {shown:?} ")?;
                match from {
                    Origin::Default => write!(f, "(the default)")?,
                    Origin::Env => write!(f, "(from the environment)")?,
                    Origin::File { file, key } => write!(f, "(from {file}, key {key:?})")?,
                }
                write!(f, ": expected {expected}")
            }
            ConfigError::UnknownFileKey { key, file } => write!(
                f,
                "unknown key {key:?} in {file}; a key is its environment variable's name in \
                 lower case without USERLEDGER_ (such as listen, database_url, kafka_brokers), \
                 and a table's name joins its keys with _ ([kafka] brokers is kafka_brokers)"
            ),
            ConfigError::File { file, reason } => write!(f, "{file}: {reason}"),
            ConfigError::Missing { key, because } => write!(f, "{key} is not set, {because}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A configuration file's name (for messages) and contents.
#[derive(Debug, Clone, Copy)]
pub struct ConfigFile<'a> {
    pub path: &'a str,
    pub contents: &'a str,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object a line (the default).
    Json,
    /// Human-readable lines.
    Text,
}

/// A configured first-start super_admin.
#[derive(Debug, Clone)]
pub struct AdminAccount {
    pub username: String,
    pub email: String,
    pub password: SecretString,
}

/// A configured first-start internal client.
#[derive(Debug, Clone)]
pub struct ClientAccount {
    pub client_id: String,
    pub secret: SecretString,
}

/// One key's effective value and where it came from, as `userledger config` shows it.
#[derive(Clone)]
pub struct Entry {
    pub key: &'static Key,
    /// `None`: unset.
    pub value: Option<String>,
    pub source: Source,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("key", &self.key.name)
            .field("value", &self.shown())
            .field("source", &self.source)
            .finish()
    }
}

impl Entry {
    /// The value as it may be shown: secrets masked.
    pub fn shown(&self) -> Option<String> {
        self.value.as_deref().map(|value| self.key.shown(value))
    }
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from, if any.
    pub file: Option<String>,
    pub listen: SocketAddr,
    /// Where `userledger project` serves `/health`, `/projections/status` and `/metrics`;
    /// `None`: it serves nothing.
    pub status_listen: Option<SocketAddr>,
    /// A port of its own for `GET /health`, served by a thread of its own so that liveness
    /// probes are answered at once under any load; `None`: `/health` is on the API's port only.
    pub health_listen: Option<SocketAddr>,
    /// PostgreSQL: the read models, idempotency keys, and the events without `EVENTSTORE_URL`.
    pub database_url: Option<SecretString>,
    /// EventStoreDB, the production event store.
    pub eventstore_url: Option<SecretString>,
    pub database_pool: u32,
    /// Signs tokens; `None`: a random key per start.
    pub token_secret: Option<SecretString>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub bootstrap_admin: Option<AdminAccount>,
    pub bootstrap_client: Option<ClientAccount>,
    pub cors_origins: Vec<String>,
    /// The application the login page signs in to when a request names none.
    pub login_client_id: Option<String>,
    /// The service's name, as `/system/settings` tells it.
    pub app_name: String,
    pub session_ttl: Duration,
    pub authorization_code_ttl: Duration,
    pub sign_in_failures_per_account: u32,
    pub sign_in_failures_per_ip: u32,
    pub initial_credits: u64,
    pub invite_only: bool,
    pub follow_apis: bool,
    pub can_edit_peer_data: bool,
    pub erasure_super_admin_only: bool,
    pub hashing_workers: usize,
    pub hashing_queue: usize,
    pub max_concurrent_requests: usize,
    pub max_concurrent_reads: usize,
    pub body_limit: usize,
    pub queue_wait: Duration,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: usize,
    pub rate_limits: RateLimits,
    /// Publishing to Kafka; `None` without `KAFKA_BROKERS`.
    pub kafka: Option<KafkaSettings>,
    pub log_filter: String,
    pub log_format: LogFormat,
    pub otel_exporter_otlp_endpoint: Option<String>,
    entries: Vec<Entry>,
}

impl Config {
    /// The configuration of this process: the file of `--config` (`config_flag`) or of
    /// `USERLEDGER_CONFIG`, then the environment.
    pub fn from_process(config_flag: Option<String>) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .collect();
        let path = config_flag.or_else(|| non_empty(env.get(CONFIG_FILE_VARIABLE)));
        let contents = match &path {
            Some(path) => {
                Some(
                    std::fs::read_to_string(path).map_err(|error| ConfigError::File {
                        file: path.clone(),
                        reason: format!("cannot read the configuration file: {error}"),
                    })?,
                )
            }
            None => None,
        };
        let file = path.as_deref().zip(contents.as_deref());
        Self::load(
            file.map(|(path, contents)| ConfigFile { path, contents }),
            &env,
        )
    }

    /// Defaults, then `file`, then `env`.
    pub fn load(
        file: Option<ConfigFile<'_>>,
        env: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Layer::defaults());
        if let Some(file) = file {
            figment = figment.merge(Layer::file(file)?);
        }
        Layers {
            figment: figment.merge(Layer::env(env)),
            file: file.map(|file| file.path.to_owned()),
        }
        .into_config()
    }

    /// Every key's effective value, in [`KEYS`] order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// What `userledger config` prints: one aligned `KEY = value  (source)` line per key,
    /// secrets masked.
    pub fn render(&self) -> String {
        let file = self.file.as_deref().unwrap_or("none");
        let mut out = format!(
            "# userledger's effective configuration: defaults < file ({file}) < environment; \
             secrets masked\n"
        );
        let width = KEYS.iter().map(|key| key.name.len()).max().unwrap_or(0);
        let shown: Vec<String> = self
            .entries
            .iter()
            .map(|entry| entry.shown().unwrap_or_else(|| "(unset)".into()))
            .collect();
        let value_width = shown.iter().map(String::len).max().unwrap_or(0);
        for (entry, value) in self.entries.iter().zip(shown) {
            out.push_str(&format!(
                "{:width$} = {value:value_width$}  ({})\n",
                entry.key.name, entry.source
            ));
        }
        out
    }

    /// The command service's settings. Without `USERLEDGER_TOKEN_SECRET` tokens are signed with
    /// a random key, so they do not survive a restart.
    pub fn command_settings(&self) -> Settings {
        let secret = match &self.token_secret {
            Some(secret) => secret.expose_secret().as_bytes().to_vec(),
            None => uuid::Uuid::new_v4().as_bytes().repeat(2),
        };
        let mut settings = Settings::new(secret);
        settings.access_token_ttl = self.access_token_ttl;
        settings.refresh_token_ttl = self.refresh_token_ttl;
        settings.bootstrap_admin = self.bootstrap_admin.as_ref().map(|admin| BootstrapAdmin {
            username: admin.username.clone(),
            email: admin.email.clone(),
            password: admin.password.expose_secret().to_owned(),
        });
        settings.bootstrap_client = self
            .bootstrap_client
            .as_ref()
            .map(|client| BootstrapClient {
                client_id: client.client_id.clone(),
                secret: client.secret.expose_secret().to_owned(),
            });
        settings.edge.cors_origins = self.cors_origins.clone();
        settings.login_client_id = self.login_client_id.clone();
        settings.app_name = self.app_name.clone();
        settings.session_ttl = self.session_ttl;
        settings.authorization_code_ttl = self.authorization_code_ttl;
        settings.sign_in_failures_per_account = self.sign_in_failures_per_account;
        settings.sign_in_failures_per_ip = self.sign_in_failures_per_ip;
        settings.initial_credits = self.initial_credits;
        settings.invite_only = self.invite_only;
        settings.can_edit_peer_data = self.can_edit_peer_data;
        settings.erasure_super_admin_only = self.erasure_super_admin_only;
        settings.hashing_workers = self.hashing_workers;
        settings.hashing_queue = self.hashing_queue;
        settings.edge.max_concurrent_requests = self.max_concurrent_requests;
        settings.edge.max_concurrent_reads = self.max_concurrent_reads;
        settings.edge.body_limit = self.body_limit;
        settings.edge.queue_wait = self.queue_wait;
        settings.edge.header_read_timeout = self.header_read_timeout;
        settings.edge.body_read_timeout = self.body_read_timeout;
        settings.edge.max_connections = self.max_connections;
        settings.edge.rate_limits = self.rate_limits;
        settings.edge.follow_apis = self.follow_apis;
        settings
    }
}

/// Environment variables that look like ours (`USERLEDGER_*`) but are no key: likely typos.
pub fn unknown_variables<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    names
        .into_iter()
        .filter(|name| name.starts_with("USERLEDGER_") && !is_known_variable(name))
        .collect()
}

fn non_empty(value: Option<&String>) -> Option<String> {
    value.filter(|value| !value.trim().is_empty()).cloned()
}

/// One layer of the configuration as a figment provider: file keys (`kafka_brokers`) to the
/// values as text, the text every layer's values go through the same parser as.
///
/// Figment merges the layers and tells which one each value came from. The layers are built
/// here rather than by figment's own providers, which read keys and values otherwise than
/// ours: `Env` parses a value (`007` becomes 7, a long numeric secret a rounded float, quotes
/// vanish) and keeps an empty one, and `Toml` keeps tables nested, where `[kafka] brokers`
/// and `kafka_brokers` are one key. The file is still parsed by figment's `Toml`.
struct Layer {
    source: Source,
    /// The file of the file layer.
    path: Option<String>,
    values: Dict,
}

impl Layer {
    fn defaults() -> Self {
        Layer {
            source: Source::Default,
            path: None,
            values: KEYS
                .iter()
                .filter_map(|key| Some((key.file_key(), Value::from(key.default_value()?))))
                .collect(),
        }
    }

    fn env(env: &HashMap<String, String>) -> Self {
        Layer {
            source: Source::Env,
            path: None,
            values: KEYS
                .iter()
                .filter_map(|key| {
                    Some((key.file_key(), Value::from(non_empty(env.get(key.name))?)))
                })
                .collect(),
        }
    }

    /// The file's keys, tables joined to their keys with `_`. An unknown key, or a value
    /// that is no string, whole number, boolean or list of them, is an error naming it.
    fn file(file: ConfigFile<'_>) -> Result<Self, ConfigError> {
        let path = file.path.to_owned();
        let mut profiles =
            Toml::string(file.contents)
                .data()
                .map_err(|error| ConfigError::File {
                    file: path.clone(),
                    reason: format!("not a TOML file: {error}"),
                })?;
        let mut values = Dict::new();
        let table = profiles.remove(&Profile::Default).unwrap_or_default();
        flatten(&path, "", table, &mut values)?;
        Ok(Layer {
            source: Source::File,
            path: Some(path),
            values,
        })
    }

    /// The layer that `metadata` names.
    fn source_of(metadata: &Metadata) -> Source {
        [Source::File, Source::Env]
            .into_iter()
            .find(|source| metadata.name == source.to_string())
            .unwrap_or(Source::Default)
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        let metadata = Metadata::named(self.source.to_string());
        match &self.path {
            Some(path) => metadata.source(figment::Source::File(path.into())),
            None => metadata,
        }
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

/// Puts the keys of `table` (`prefix` joined to each) into `flat`, as text; empty values
/// count as unset.
fn flatten(path: &str, prefix: &str, table: Dict, flat: &mut Dict) -> Result<(), ConfigError> {
    for (name, value) in table {
        let file_key = format!("{prefix}{name}");
        let value = match value {
            // A TOML date or time is a table of one private key to figment.
            Value::Dict(_, inner) if !inner.keys().any(|key| key.starts_with('$')) => {
                flatten(path, &format!("{file_key}_"), inner, flat)?;
                continue;
            }
            value => value,
        };
        let key = KEYS
            .iter()
            .find(|key| key.file_key() == file_key)
            .ok_or_else(|| ConfigError::UnknownFileKey {
                key: file_key.clone(),
                file: path.to_owned(),
            })?;
        let text = toml_text(&value).ok_or_else(|| ConfigError::Invalid {
            key: key.name,
            shown: format!("(a TOML {})", toml_type(&value)),
            from: Origin::File {
                file: path.to_owned(),
                key: file_key.clone(),
            },
            expected: "a string, a whole number, a boolean or a list of strings".into(),
        })?;
        if !text.trim().is_empty() {
            flat.insert(file_key, Value::from(text));
        }
    }
    Ok(())
}

/// The effective values of the merged layers, and where each came from.
struct Layers {
    figment: Figment,
    /// The file of the file layer, if any.
    file: Option<String>,
}

impl Layers {
    /// The effective value of `key` (the default when no layer sets it).
    fn get(&self, key: &'static Key) -> Entry {
        let file_key = key.file_key();
        Entry {
            key,
            value: (self.figment.find_value(&file_key).ok())
                .and_then(|value| value.as_str().map(str::to_owned)),
            source: (self.figment.find_metadata(&file_key))
                .map_or(Source::Default, Layer::source_of),
        }
    }

    fn origin(&self, entry: &Entry) -> Origin {
        match entry.source {
            Source::Default => Origin::Default,
            Source::Env => Origin::Env,
            Source::File => Origin::File {
                file: self.file.clone().unwrap_or_default(),
                key: entry.key.file_key(),
            },
        }
    }

    fn into_config(self) -> Result<Config, ConfigError> {
        let entries: Vec<Entry> = KEYS.iter().map(|key| self.get(key)).collect();
        let parser = Parser {
            layers: &self,
            entries: &entries,
        };
        let positive = |name| parser.number::<u64>(name, 1);
        let seconds = |name| positive(name).map(|s| s.map(Duration::from_secs));
        let count = |name| -> Result<usize, ConfigError> {
            Ok(parser.required(name, positive(name)?)? as usize)
        };
        let listen = parser.required(
            "USERLEDGER_LISTEN",
            parser.parse(
                "USERLEDGER_LISTEN",
                "an address such as 127.0.0.1:8080",
                |v| v.parse::<SocketAddr>().ok(),
            )?,
        )?;
        let status_listen = parser.parse(
            "USERLEDGER_STATUS_LISTEN",
            "an address such as 0.0.0.0:8081",
            |v| v.parse::<SocketAddr>().ok(),
        )?;
        let health_listen = parser.parse(
            "USERLEDGER_HEALTH_LISTEN",
            "an address such as 0.0.0.0:8082",
            |v| v.parse::<SocketAddr>().ok(),
        )?;
        let database_url = parser.url("DATABASE_URL", &["postgres", "postgresql"])?;
        let eventstore_url = parser.url("EVENTSTORE_URL", &["esdb", "esdb+discover"])?;
        let database_pool = parser.required(
            "USERLEDGER_DATABASE_POOL",
            parser.number::<u32>("USERLEDGER_DATABASE_POOL", 1)?,
        )?;
        let token_secret =
            parser.parse("USERLEDGER_TOKEN_SECRET", "at least 32 characters", |v| {
                (v.len() >= TOKEN_SECRET_MIN_LENGTH).then(|| SecretString::from(v.to_owned()))
            })?;
        let access_token_ttl = parser.required(
            "USERLEDGER_ACCESS_TOKEN_TTL_SECONDS",
            seconds("USERLEDGER_ACCESS_TOKEN_TTL_SECONDS")?,
        )?;
        let refresh_token_ttl = parser.required(
            "USERLEDGER_REFRESH_TOKEN_TTL_SECONDS",
            seconds("USERLEDGER_REFRESH_TOKEN_TTL_SECONDS")?,
        )?;
        let bootstrap_admin = parser
            .all_or_none(&[
                "USERLEDGER_BOOTSTRAP_ADMIN_USERNAME",
                "USERLEDGER_BOOTSTRAP_ADMIN_EMAIL",
                "USERLEDGER_BOOTSTRAP_ADMIN_PASSWORD",
            ])?
            .map(|values| AdminAccount {
                username: values[0].clone(),
                email: values[1].clone(),
                password: SecretString::from(values[2].clone()),
            });
        let bootstrap_client = parser
            .all_or_none(&[
                "USERLEDGER_BOOTSTRAP_CLIENT_ID",
                "USERLEDGER_BOOTSTRAP_CLIENT_SECRET",
            ])?
            .map(|values| ClientAccount {
                client_id: values[0].clone(),
                secret: SecretString::from(values[1].clone()),
            });
        let cors_origins = parser
            .parse(
                "USERLEDGER_CORS_ORIGINS",
                "comma-separated origins such as https://admin.example.com",
                |v| {
                    let origins: Vec<String> = v
                        .split(',')
                        .map(|origin| origin.trim().to_owned())
                        .filter(|origin| !origin.is_empty())
                        .collect();
                    origins
                        .iter()
                        .all(|origin| {
                            origin.starts_with("http://") || origin.starts_with("https://")
                        })
                        .then_some(origins)
                },
            )?
            .unwrap_or_default();
        let login_client_id = parser.parse(
            "USERLEDGER_LOGIN_CLIENT_ID",
            "an application's client_id",
            |v| (!v.trim().is_empty()).then(|| v.trim().to_owned()),
        )?;
        let app_name = parser.required(
            "USERLEDGER_APP_NAME",
            parser.parse("USERLEDGER_APP_NAME", "a name of 1..128 characters", |v| {
                let name = v.trim();
                (1..=128)
                    .contains(&name.chars().count())
                    .then(|| name.to_owned())
            })?,
        )?;
        let session_ttl = parser.required(
            "USERLEDGER_SESSION_TTL_SECONDS",
            seconds("USERLEDGER_SESSION_TTL_SECONDS")?,
        )?;
        let authorization_code_ttl = parser.required(
            "USERLEDGER_AUTHORIZATION_CODE_TTL_SECONDS",
            seconds("USERLEDGER_AUTHORIZATION_CODE_TTL_SECONDS")?,
        )?;
        let per_minute = |name| parser.required(name, parser.number::<u32>(name, 0)?);
        let sign_in_failures_per_account =
            per_minute("USERLEDGER_SIGN_IN_FAILURES_PER_MINUTE_PER_ACCOUNT")?;
        let sign_in_failures_per_ip = per_minute("USERLEDGER_SIGN_IN_FAILURES_PER_MINUTE_PER_IP")?;
        let initial_credits = parser.required(
            "USERLEDGER_INITIAL_CREDITS",
            parser.number::<u64>("USERLEDGER_INITIAL_CREDITS", 0)?,
        )?;
        let invite_only = parser.required(
            "USERLEDGER_INVITE_ONLY",
            parser.boolean("USERLEDGER_INVITE_ONLY")?,
        )?;
        let follow_apis = parser.required(
            "USERLEDGER_CAN_USE_FOLLOW_APIS",
            parser.boolean("USERLEDGER_CAN_USE_FOLLOW_APIS")?,
        )?;
        let can_edit_peer_data = parser.required(
            "USERLEDGER_CAN_EDIT_PEER_DATA",
            parser.boolean("USERLEDGER_CAN_EDIT_PEER_DATA")?,
        )?;
        let erasure_super_admin_only = parser.required(
            "USERLEDGER_ERASURE_SUPER_ADMIN_ONLY",
            parser.boolean("USERLEDGER_ERASURE_SUPER_ADMIN_ONLY")?,
        )?;
        let hashing_workers = count("USERLEDGER_HASHING_WORKERS")?;
        let hashing_queue = count("USERLEDGER_HASHING_QUEUE")?;
        let max_concurrent_requests = count("USERLEDGER_MAX_CONCURRENT_REQUESTS")?;
        let max_concurrent_reads = count("USERLEDGER_MAX_CONCURRENT_READS")?;
        let body_limit = count("USERLEDGER_BODY_LIMIT_BYTES")?;
        let queue_wait = parser.required(
            "USERLEDGER_QUEUE_WAIT_MS",
            positive("USERLEDGER_QUEUE_WAIT_MS")?.map(Duration::from_millis),
        )?;
        let header_read_timeout = parser.required(
            "USERLEDGER_HEADER_READ_TIMEOUT_SECONDS",
            seconds("USERLEDGER_HEADER_READ_TIMEOUT_SECONDS")?,
        )?;
        let body_read_timeout = parser.required(
            "USERLEDGER_BODY_READ_TIMEOUT_SECONDS",
            seconds("USERLEDGER_BODY_READ_TIMEOUT_SECONDS")?,
        )?;
        let max_connections = count("USERLEDGER_MAX_CONNECTIONS")?;
        let rate_limits = RateLimits {
            token_per_minute: per_minute("USERLEDGER_RATE_LIMIT_TOKEN_PER_MINUTE")?,
            writes_per_minute: per_minute("USERLEDGER_RATE_LIMIT_WRITES_PER_MINUTE")?,
        };
        let kafka = parser.kafka()?;
        let log_filter = parser.required(
            "RUST_LOG",
            parser.parse("RUST_LOG", "a log filter such as info,sqlx=warn", |v| {
                tracing_subscriber::EnvFilter::try_new(v)
                    .ok()
                    .map(|_| v.to_owned())
            })?,
        )?;
        let log_format = parser.required(
            "USERLEDGER_LOG_FORMAT",
            parser.parse("USERLEDGER_LOG_FORMAT", "json or text", |v| {
                match v.to_ascii_lowercase().as_str() {
                    "json" => Some(LogFormat::Json),
                    "text" => Some(LogFormat::Text),
                    _ => None,
                }
            })?,
        )?;
        let otel_exporter_otlp_endpoint = parser.parse(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "an http:// or https:// URL such as http://collector:4317",
            |v| (v.starts_with("http://") || v.starts_with("https://")).then(|| v.to_owned()),
        )?;
        Ok(Config {
            file: self.file.clone(),
            listen,
            status_listen,
            health_listen,
            database_url,
            eventstore_url,
            database_pool,
            token_secret,
            access_token_ttl,
            refresh_token_ttl,
            bootstrap_admin,
            bootstrap_client,
            cors_origins,
            login_client_id,
            app_name,
            session_ttl,
            authorization_code_ttl,
            sign_in_failures_per_account,
            sign_in_failures_per_ip,
            initial_credits,
            invite_only,
            follow_apis,
            can_edit_peer_data,
            erasure_super_admin_only,
            hashing_workers,
            hashing_queue,
            max_concurrent_requests,
            max_concurrent_reads,
            body_limit,
            queue_wait,
            header_read_timeout,
            body_read_timeout,
            max_connections,
            rate_limits,
            kafka,
            log_filter,
            log_format,
            otel_exporter_otlp_endpoint,
            entries,
        })
    }
}

/// A TOML scalar (or list of scalars) as the text an environment variable would hold.
fn toml_text(value: &Value) -> Option<String> {
    let scalar = |value: &Value| match value {
        Value::String(_, text) => Some(text.clone()),
        Value::Num(_, number) => (number.to_i128().map(|n| n.to_string()))
            .or_else(|| number.to_u128().map(|n| n.to_string())),
        _ => None,
    };
    match value {
        Value::Bool(_, flag) => Some(flag.to_string()),
        Value::Array(_, items) => items
            .iter()
            .map(scalar)
            .collect::<Option<Vec<_>>>()
            .map(|items| items.join(",")),
        value => scalar(value),
    }
}

/// What TOML calls the type of `value`, for a message.
fn toml_type(value: &Value) -> &'static str {
    match value {
        Value::Num(..) => "float",
        Value::Dict(..) => "datetime",
        Value::Array(..) => "array",
        _ => "value",
    }
}

/// Typed values out of the effective raw ones.
struct Parser<'a> {
    layers: &'a Layers,
    entries: &'a [Entry],
}

impl Parser<'_> {
    fn entry(&self, name: &str) -> &Entry {
        self.entries
            .iter()
            .find(|entry| entry.key.name == name)
            .unwrap_or_else(|| panic!("{name} is not in KEYS"))
    }

    /// `parse`'s answer for the effective value of `name`, `None` when unset.
    fn parse<T>(
        &self,
        name: &str,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        let entry = self.entry(name);
        let Some(value) = &entry.value else {
            return Ok(None);
        };
        match parse(value.trim()) {
            Some(parsed) => Ok(Some(parsed)),
            None => Err(self.invalid(entry, expected)),
        }
    }

    fn invalid(&self, entry: &Entry, expected: &str) -> ConfigError {
        ConfigError::Invalid {
            key: entry.key.name,
            shown: entry.shown().unwrap_or_default(),
            from: self.layers.origin(entry),
            expected: expected.to_owned(),
        }
    }

    /// A whole number of at least `min`.
    fn number<T>(&self, name: &str, min: T) -> Result<Option<T>, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + fmt::Display,
    {
        let expected = format!("a whole number, {min} or more");
        self.parse(name, &expected, |v| {
            v.parse::<T>().ok().filter(|n| *n >= min)
        })
    }

    fn boolean(&self, name: &str) -> Result<Option<bool>, ConfigError> {
        self.parse(name, "true or false", |v| {
            match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Some(true),
                "false" | "0" | "no" | "off" => Some(false),
                _ => None,
            }
        })
    }

    fn url(&self, name: &str, schemes: &[&str]) -> Result<Option<SecretString>, ConfigError> {
        let expected = format!("a URL such as {}://user:password@host:port/...", schemes[0]);
        self.parse(name, &expected, |v| {
            let (scheme, rest) = v.split_once("://")?;
            (schemes.contains(&scheme) && !rest.is_empty())
                .then(|| SecretString::from(v.to_owned()))
        })
    }

    /// A value that has a default: a missing one is a bug of [`KEYS`], not of the caller.
    fn required<T>(&self, name: &str, value: Option<T>) -> Result<T, ConfigError> {
        value.ok_or_else(|| ConfigError::Missing {
            key: find_key(name).map_or("?", |key| key.name),
            because: "and it has no default".into(),
        })
    }

    /// The values of `names` when all are set, `None` when none is; an error names the first
    /// missing one when only some are.
    fn all_or_none(&self, names: &[&str]) -> Result<Option<Vec<String>>, ConfigError> {
        let values: Vec<Option<String>> = names
            .iter()
            .map(|name| self.entry(name).value.clone())
            .collect();
        if values.iter().all(Option::is_none) {
            return Ok(None);
        }
        let set = values.iter().position(Option::is_some).unwrap_or(0);
        match values.iter().position(Option::is_none) {
            None => Ok(Some(values.into_iter().flatten().collect())),
            Some(missing) => Err(ConfigError::Missing {
                key: self.entry(names[missing]).key.name,
                because: format!("but {} is: set all of them or none", names[set]),
            }),
        }
    }

    fn kafka(&self) -> Result<Option<KafkaSettings>, ConfigError> {
        let Some(brokers) = self.parse("KAFKA_BROKERS", "host:port[,host:port...]", |v| {
            v.split(',')
                .all(|broker| {
                    broker
                        .trim()
                        .rsplit_once(':')
                        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
                })
                .then(|| v.to_owned())
        })?
        else {
            return Ok(None);
        };
        let mut settings = KafkaSettings::new(brokers);
        let topic = |name| {
            self.parse(name, "a topic name", |v| {
                (!v.contains(char::is_whitespace)).then(|| v.to_owned())
            })
        };
        let positive = |name| self.number::<i32>(name, 1);
        settings.user_topic = self.required("KAFKA_USER_TOPIC", topic("KAFKA_USER_TOPIC")?)?;
        settings.role_application_topic = self.required(
            "KAFKA_ROLE_APPLICATION_TOPIC",
            topic("KAFKA_ROLE_APPLICATION_TOPIC")?,
        )?;
        settings.social_topic =
            self.required("KAFKA_SOCIAL_TOPIC", topic("KAFKA_SOCIAL_TOPIC")?)?;
        settings.partitions = self.required("KAFKA_PARTITIONS", positive("KAFKA_PARTITIONS")?)?;
        settings.replication_factor = self.required(
            "KAFKA_REPLICATION_FACTOR",
            positive("KAFKA_REPLICATION_FACTOR")?,
        )?;
        if settings.user_topic == settings.role_application_topic {
            return Err(self.invalid(
                self.entry("KAFKA_ROLE_APPLICATION_TOPIC"),
                "a topic other than KAFKA_USER_TOPIC's",
            ));
        }
        if [&settings.user_topic, &settings.role_application_topic]
            .contains(&&settings.social_topic)
        {
            return Err(self.invalid(
                self.entry("KAFKA_SOCIAL_TOPIC"),
                "a topic other than KAFKA_USER_TOPIC's and KAFKA_ROLE_APPLICATION_TOPIC's",
            ));
        }
        Ok(Some(settings))
    }
}

/// `url` without the password of its user info nor the value of a `password` query parameter.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:{MASK}@{host}"),
            None => format!("{user_info}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let parameters: Vec<String> = query
                .split('&')
                .map(|parameter| match parameter.split_once('=') {
                    Some((name, _)) if name.to_ascii_lowercase().contains("password") => {
                        format!("{name}={MASK}")
                    }
                    _ => parameter.to_owned(),
                })
                .collect();
            format!("{path}?{}", parameters.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn file(contents: &str) -> Option<ConfigFile<'_>> {
        Some(ConfigFile {
            path: "userledger.toml",
            contents,
        })
    }

    fn entry<'a>(config: &'a Config, name: &str) -> &'a Entry {
        config
            .entries()
            .iter()
            .find(|entry| entry.key.name == name)
            .expect("a key")
    }

    #[test]
    fn defaults_then_file_then_environment() {
        let defaults = Config::load(None, &env(&[])).expect("the defaults are valid");
        assert_eq!(defaults.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(defaults.database_pool, 32);
        assert!(defaults.kafka.is_none());
        assert_eq!(defaults.rate_limits, RateLimits::default());
        assert_eq!(
            entry(&defaults, "USERLEDGER_LISTEN").source,
            Source::Default
        );

        let toml = r#"
            listen = "0.0.0.0:9000"
            database_pool = 8
            [kafka]
            brokers = ["k1:9092", "k2:9092"]
            partitions = 3
            [rate_limit]
            token_per_minute = 0
        "#;
        let from_file = Config::load(file(toml), &env(&[])).expect("valid");
        assert_eq!(from_file.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(from_file.database_pool, 8);
        let kafka = from_file.kafka.as_ref().expect("kafka is configured");
        assert_eq!(kafka.brokers, "k1:9092,k2:9092");
        assert_eq!(kafka.partitions, 3);
        assert_eq!(kafka.user_topic, "user-changes");
        assert_eq!(from_file.rate_limits.token_per_minute, 0);
        assert_eq!(
            from_file.rate_limits.writes_per_minute,
            RateLimits::default().writes_per_minute
        );
        assert_eq!(entry(&from_file, "KAFKA_PARTITIONS").source, Source::File);
        assert_eq!(
            entry(&from_file, "KAFKA_USER_TOPIC").source,
            Source::Default
        );

        let overridden = Config::load(
            file(toml),
            &env(&[
                ("USERLEDGER_LISTEN", "127.0.0.1:7000"),
                ("KAFKA_PARTITIONS", "12"),
                ("USERLEDGER_DATABASE_POOL", ""),
                ("USERLEDGER_RATE_LIMIT_WRITES_PER_MINUTE", "60"),
            ]),
        )
        .expect("valid");
        assert_eq!(overridden.listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(overridden.kafka.as_ref().unwrap().partitions, 12);
        assert_eq!(
            overridden.kafka.as_ref().unwrap().brokers,
            "k1:9092,k2:9092"
        );
        // Empty counts as unset: the file's value stays.
        assert_eq!(overridden.database_pool, 8);
        assert_eq!(overridden.rate_limits.writes_per_minute, 60);
        assert_eq!(overridden.rate_limits.token_per_minute, 0);
        assert_eq!(entry(&overridden, "USERLEDGER_LISTEN").source, Source::Env);
        assert_eq!(entry(&overridden, "KAFKA_BROKERS").source, Source::File);
    }

    #[test]
    fn flat_keys_and_tables_are_the_same_keys() {
        let flat = Config::load(
            file("kafka_brokers = \"k:9092\"\ndatabase_url = \"postgres://h/db\""),
            &env(&[]),
        )
        .expect("valid");
        let nested = Config::load(
            file("[kafka]\nbrokers = \"k:9092\"\n[database]\nurl = \"postgres://h/db\""),
            &env(&[]),
        )
        .expect("valid");
        assert_eq!(flat.kafka, nested.kafka);
        assert_eq!(
            flat.database_url.unwrap().expose_secret(),
            nested.database_url.unwrap().expose_secret()
        );
    }

    #[test]
    fn every_key_has_a_file_key_and_the_defaults_are_valid() {
        for key in KEYS {
            let toml = match key.default_value() {
                Some(value) => format!("{} = {value:?}", key.file_key()),
                None => continue,
            };
            Config::load(file(&toml), &env(&[]))
                .unwrap_or_else(|error| panic!("{}: {error}", key.name));
        }
        let mut names: Vec<_> = KEYS.iter().map(Key::file_key).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), KEYS.len(), "two keys share a file key");
    }

    #[test]
    fn the_settings_carry_the_configured_values() {
        let config = Config::load(
            None,
            &env(&[
                (
                    "USERLEDGER_TOKEN_SECRET",
                    "0123456789abcdef0123456789abcdef",
                ),
                ("USERLEDGER_ACCESS_TOKEN_TTL_SECONDS", "60"),
                ("USERLEDGER_INITIAL_CREDITS", "5"),
                ("USERLEDGER_HASHING_WORKERS", "3"),
                ("USERLEDGER_INVITE_ONLY", "true"),
                ("USERLEDGER_APP_NAME", " Acme accounts "),
                (
                    "USERLEDGER_CORS_ORIGINS",
                    "https://a.example, https://b.example",
                ),
                ("USERLEDGER_BOOTSTRAP_CLIENT_ID", "c"),
                ("USERLEDGER_BOOTSTRAP_CLIENT_SECRET", "s"),
            ]),
        )
        .expect("valid");
        let settings = config.command_settings();
        assert_eq!(
            settings.edge.token_secret,
            b"0123456789abcdef0123456789abcdef"
        );
        assert_eq!(settings.access_token_ttl, Duration::from_secs(60));
        assert_eq!(settings.initial_credits, 5);
        assert_eq!(settings.hashing_workers, 3);
        assert!(settings.invite_only);
        assert_eq!(settings.app_name, "Acme accounts");
        assert_eq!(
            settings.edge.cors_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(settings.bootstrap_client.unwrap().secret, "s");
        assert!(settings.bootstrap_admin.is_none());
    }

    #[test]
    fn an_invalid_value_names_its_key_and_layer() {
        let error = Config::load(None, &env(&[("USERLEDGER_LISTEN", "nope")])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid configuration: USERLEDGER_LISTEN = \"nope\" (from the environment): \
             expected an address such as 127.0.0.1:8080"
        );
        let error = Config::load(
            file("[kafka]\nbrokers = \"k:1\"\npartitions = 0"),
            &env(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains(
                "KAFKA_PARTITIONS = \"0\" (from userledger.toml, key \"kafka_partitions\")"
            ),
            "{error}"
        );
        for (name, value) in [
            ("USERLEDGER_DATABASE_POOL", "0"),
            ("USERLEDGER_DATABASE_POOL", "many"),
            ("USERLEDGER_TOKEN_SECRET", "short"),
            ("DATABASE_URL", "localhost:5432"),
            ("USERLEDGER_RATE_LIMIT_TOKEN_PER_MINUTE", "-1"),
            ("USERLEDGER_INVITE_ONLY", "perhaps"),
            ("USERLEDGER_APP_NAME", &"n".repeat(129)),
            ("USERLEDGER_LOG_FORMAT", "xml"),
            ("USERLEDGER_HASHING_WORKERS", "0"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
        ] {
            let error = Config::load(None, &env(&[(name, value)]))
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(&format!("{name} = ")),
                "{name}={value}: {error}"
            );
        }
        let error = Config::load(
            None,
            &env(&[
                ("KAFKA_BROKERS", "k:9092"),
                ("KAFKA_REPLICATION_FACTOR", "x"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("KAFKA_REPLICATION_FACTOR = \"x\""),
            "{error}"
        );
    }

    #[test]
    fn a_refused_secret_is_not_shown() {
        let error = Config::load(None, &env(&[("USERLEDGER_TOKEN_SECRET", "tiny-secret")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("USERLEDGER_TOKEN_SECRET"), "{error}");
        assert!(!error.contains("tiny-secret"), "{error}");
    }

    #[test]
    fn unknown_file_keys_and_bad_files_are_refused() {
        let error = Config::load(file("[kafka]\nbrokerz = \"k:9092\""), &env(&[])).unwrap_err();
        assert_eq!(
            error,
            ConfigError::UnknownFileKey {
                key: "kafka_brokerz".into(),
                file: "userledger.toml".into()
            }
        );
        assert!(matches!(
            Config::load(file("listen = "), &env(&[])),
            Err(ConfigError::File { .. })
        ));
        let error = Config::load(file("listen = 1.5"), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("USERLEDGER_LISTEN"), "{error}");
    }

    #[test]
    fn a_partial_bootstrap_account_names_the_missing_key() {
        let error = Config::load(
            None,
            &env(&[
                ("USERLEDGER_BOOTSTRAP_ADMIN_USERNAME", "root"),
                ("USERLEDGER_BOOTSTRAP_ADMIN_PASSWORD", "pw"),
            ]),
        )
        .unwrap_err();
        assert_eq!(
            error,
            ConfigError::Missing {
                key: "USERLEDGER_BOOTSTRAP_ADMIN_EMAIL",
                because: "but USERLEDGER_BOOTSTRAP_ADMIN_USERNAME is: set all of them or none"
                    .into()
            }
        );
    }

    #[test]
    fn the_same_topic_twice_is_refused() {
        let error = Config::load(
            None,
            &env(&[
                ("KAFKA_BROKERS", "k:9092"),
                ("KAFKA_ROLE_APPLICATION_TOPIC", "user-changes"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("KAFKA_ROLE_APPLICATION_TOPIC"), "{error}");
    }

    #[test]
    fn urls_lose_their_passwords() {
        assert_eq!(
            mask_url("postgres://ledger:hunter2@db:5432/ledger?sslmode=require&password=x"),
            "postgres://ledger:********@db:5432/ledger?sslmode=require&password=********"
        );
        assert_eq!(
            mask_url("esdb://admin:changeit@eventstoredb:2113?tls=false"),
            "esdb://admin:********@eventstoredb:2113?tls=false"
        );
        assert_eq!(mask_url("postgres://db/ledger"), "postgres://db/ledger");
    }

    #[test]
    fn render_masks_every_secret() {
        let config = Config::load(
            file("token_secret = \"file-secret-0123456789abcdef0123456789\""),
            &env(&[
                ("DATABASE_URL", "postgres://u:db-password@h/db"),
                ("USERLEDGER_BOOTSTRAP_ADMIN_USERNAME", "root"),
                ("USERLEDGER_BOOTSTRAP_ADMIN_EMAIL", "root@example.com"),
                ("USERLEDGER_BOOTSTRAP_ADMIN_PASSWORD", "admin-password"),
            ]),
        )
        .expect("valid");
        let shown = config.render();
        for secret in ["file-secret", "db-password", "admin-password"] {
            assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
        }
        assert!(shown.contains("postgres://u:********@h/db"), "{shown}");
        let line = shown
            .lines()
            .find(|line| line.starts_with("USERLEDGER_TOKEN_SECRET "))
            .expect("a line per key");
        assert!(line.contains(MASK) && line.ends_with("(file)"), "{line}");
        assert_eq!(shown.lines().count(), KEYS.len() + 1);
    }

    #[test]
    fn values_reach_the_parser_as_written() {
        // Digits only: figment's own environment provider would make it a (rounded) number.
        let secret = "12345678901234567890123456789012345678901234567890";
        let config = Config::load(
            file("[database]\npool = \"007\""),
            &env(&[("USERLEDGER_TOKEN_SECRET", secret)]),
        )
        .expect("valid");
        assert_eq!(config.token_secret.unwrap().expose_secret(), secret);
        assert_eq!(config.database_pool, 7);
        for toml in [
            "listen = 1.5",
            "listen = 1979-05-27T07:32:00Z",
            "listen = [1.5]",
        ] {
            let error = Config::load(file(toml), &env(&[])).unwrap_err().to_string();
            assert!(
                error.starts_with("invalid configuration: USERLEDGER_LISTEN = \"(a TOML ")
                    && error.contains("(from userledger.toml, key \"listen\")"),
                "{toml}: {error}"
            );
        }
    }

    #[test]
    fn typos_of_our_variables_are_found() {
        assert_eq!(
            unknown_variables([
                "USERLEDGER_LISTN",
                "USERLEDGER_LISTEN",
                "USERLEDGER_CONFIG",
                "HOME"
            ]),
            ["USERLEDGER_LISTN"]
        );
    }
}
