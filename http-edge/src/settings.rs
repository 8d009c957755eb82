//! The edge's options: what every HTTP process needs to accept, limit and answer requests,
//! whichever routes it serves.

use std::time::Duration;

/// Requests allowed per minute, per client and per IP address; more are answered 429
/// `RateLimitError`. `0` turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// `POST /oauth/token`: per `client_id` and per IP address.
    pub token_per_minute: u32,
    /// Write routes: per calling client (the token's `client`) and per IP address.
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
pub struct EdgeSettings {
    /// Key that signs and verifies tokens (HS256). Never logged.
    pub token_secret: Vec<u8>,
    /// How long a token's "is its user or client still allowed" answer is cached: tokens of a
    /// banned or deleted account stop working within this time.
    pub revocation_check_ttl: Duration,
    /// Request body limit (413 above it).
    pub body_limit: usize,
    /// How long a client may take to send a request's headers; the connection is closed after.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body (a body not read by then is a 400).
    pub body_read_timeout: Duration,
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// Write requests (and token requests) served at once (beyond `/health`); more wait their
    /// turn without taking CPU, so a saturated service still answers liveness checks and keeps
    /// latencies even. A write spends most of its time waiting for its append, and appends in
    /// flight together share a commit (group commit), so writes too need many in flight: 64
    /// per core (issue 15: with group commit, ban commands from 64 clients ran at 4,551/s with 16
    /// per core and 5,310/s with 64; 3 per core was the former default). Password hashing has its own bound (`hashing_workers`, `hashing_queue`).
    pub max_concurrent_requests: usize,
    /// Read requests served at once. A read spends most of its time waiting on the database,
    /// and concurrent lookups by id share one query, so reads need many in flight to keep the
    /// database busy: 64 per core (3 per core served half as many lookups a second).
    pub max_concurrent_reads: usize,
    /// How long a request waits for its place among those in flight before it is answered 503
    /// with Retry-After: the queue stays bounded in time (and so in memory) under overload.
    pub queue_wait: Duration,
    /// Browser origins (`https://admin.example.com`) allowed to call the API (CORS).
    pub cors_origins: Vec<String>,
    pub rate_limits: RateLimits,
    /// Whether following, follow requests and the follow lists are served (Liquid's
    /// `privilege.can-use-follow-apis`, default on); off, their routes answer 404.
    pub follow_apis: bool,
}

impl EdgeSettings {
    /// The defaults, signing with `token_secret`.
    pub fn new(token_secret: impl Into<Vec<u8>>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            token_secret: token_secret.into(),
            revocation_check_ttl: Duration::from_secs(2),
            body_limit: 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_concurrent_requests: 64 * cores,
            max_concurrent_reads: 64 * cores,
            queue_wait: Duration::from_secs(1),
            cors_origins: Vec::new(),
            rate_limits: RateLimits::default(),
            follow_apis: true,
        }
    }
}
