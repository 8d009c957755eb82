//! The command service's options, with the contract's defaults; the edge's among them.

use std::time::Duration;

use events::values::SubscriptionTiers;
use http_edge::EdgeSettings;

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

#[derive(Clone)]
pub struct Settings {
    /// What the HTTP edge needs: the token key, limits, CORS.
    pub edge: EdgeSettings,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
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
    /// Attempts of load-decide-append when writers race on one stream.
    pub command_attempts: usize,
    pub bootstrap_admin: Option<BootstrapAdmin>,
    pub bootstrap_client: Option<BootstrapClient>,
    /// The application the login page signs in to when a request names none (Nitrogen sends
    /// no `client_id`).
    pub login_client_id: Option<String>,
    /// The service's name, as `/system/settings` tells it (Liquid's `system.app-name`).
    pub app_name: String,
    /// How long a browser stays signed in.
    pub session_ttl: Duration,
    /// How long an authorization code may be traded for tokens.
    pub authorization_code_ttl: Duration,
    /// Failed sign-ins a minute per account (0: no limit).
    pub sign_in_failures_per_account: u32,
    /// Failed sign-ins a minute per IP address (0: no limit).
    pub sign_in_failures_per_ip: u32,
    /// Whether only a `super_admin` may erase a person (else any holder of
    /// `admin:profile:erase:write` who out-ranks them).
    pub erasure_super_admin_only: bool,
}

impl Settings {
    /// The defaults, signing with `token_secret`.
    pub fn new(token_secret: impl Into<Vec<u8>>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            edge: EdgeSettings::new(token_secret),
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(14 * 24 * 3600),
            initial_credits: 0,
            can_edit_peer_data: true,
            subscription_tiers: SubscriptionTiers::default(),
            custom_data_limit: 16 * 1024,
            invite_only: false,
            hashing_workers: cores,
            hashing_queue: 256,
            command_attempts: 16,
            bootstrap_admin: None,
            bootstrap_client: None,
            login_client_id: None,
            app_name: "userledger".to_owned(),
            session_ttl: Duration::from_secs(24 * 3600),
            authorization_code_ttl: Duration::from_secs(60),
            sign_in_failures_per_account: 5,
            sign_in_failures_per_ip: 30,
            erasure_super_admin_only: true,
        }
    }
}
