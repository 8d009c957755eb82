//! The command service's options, with the contract's defaults.

use std::time::Duration;

use events::values::SubscriptionTiers;

/// A first-start account that `bootstrap` creates when it does not exist yet.
#[derive(Clone)]
pub struct BootstrapAdmin {
    pub username: String,
    pub email: String,
    pub password: String,
}

#[derive(Clone)]
pub struct BootstrapClient {
    pub client_id: String,
    pub secret: String,
}

/// Requests allowed per minute, per client and per IP address; more are answered 429
/// `RateLimitError`. `0` turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// `POST /oauth/token`: per `client_id` and per IP address.
    pub token_per_minute: u32,
    /// Write routes (`POST`, `PUT`, `PATCH`, `DELETE`): per calling client (the token's
    /// `client-id`) and per IP address.
    pub writes_per_minute: u32,
}

impl RateLimits {
    /// No limit.
    pub const OFF: Self = Self {
        token_per_minute: 0,
        writes_per_minute: 0,
    };
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            token_per_minute: 1_200,
            writes_per_minute: 60_000,
        }
    }
}

#[derive(Clone)]
pub struct Settings {
    /// Key that signs and verifies tokens (HS256). Never logged.
    pub token_secret: Vec<u8>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// How long a token's "is its user or client still allowed" answer is cached: tokens of a
    /// banned or deleted account stop working within this time.
    pub revocation_check_ttl: Duration,
    /// Request body limit (413 above it).
    pub body_limit: usize,
    /// `credits` of a new user.
    pub initial_credits: u64,
    /// Whether a role may edit users of the same ranking (API.md §2, `can-edit-peer-data`).
    pub can_edit_peer_data: bool,
    pub subscription_tiers: SubscriptionTiers,
    /// Serialized size limit of `customData`.
    pub custom_data_limit: usize,
    /// Whether new users get invite codes.
    pub invite_only: bool,
    /// Concurrent argon2 computations (default: the number of cores).
    pub hashing_workers: usize,
    /// Hashing requests that may wait for a worker before the service answers 503.
    pub hashing_queue: usize,
    /// Write requests (and token requests) served at once (beyond `/health`); more wait their
    /// turn without taking CPU, so a saturated service still answers liveness checks and keeps
    /// latencies even.
    pub max_concurrent_requests: usize,
    /// Read requests served at once. A read spends most of its time waiting on the database,
    /// and concurrent lookups by id share one query, so reads need many in flight to keep the
    /// database busy: 64 per core (3 per core served half as many lookups a second).
    pub max_concurrent_reads: usize,
    /// Attempts of load-decide-append when writers race on one stream.
    pub command_attempts: usize,
    pub bootstrap_admin: Option<BootstrapAdmin>,
    pub bootstrap_client: Option<BootstrapClient>,
    /// Browser origins (`https://admin.example.com`) allowed to call the API (CORS).
    pub cors_origins: Vec<String>,
    pub rate_limits: RateLimits,
}

impl Settings {
    /// The defaults, signing with `token_secret`.
    pub fn new(token_secret: impl Into<Vec<u8>>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            token_secret: token_secret.into(),
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(14 * 24 * 3600),
            revocation_check_ttl: Duration::from_secs(2),
            body_limit: 1024 * 1024,
            initial_credits: 0,
            can_edit_peer_data: true,
            subscription_tiers: SubscriptionTiers::default(),
            custom_data_limit: 16 * 1024,
            invite_only: false,
            hashing_workers: cores,
            hashing_queue: 256,
            max_concurrent_requests: 3 * cores,
            max_concurrent_reads: 64 * cores,
            command_attempts: 16,
            bootstrap_admin: None,
            bootstrap_client: None,
            cors_origins: Vec::new(),
            rate_limits: RateLimits::default(),
        }
    }
}
