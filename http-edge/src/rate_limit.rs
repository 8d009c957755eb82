//! Rate limits on the token endpoint and on writes (not on reads, not even `POST`
//! `retrieve-user-info`), per client and per IP address; a route's policy names its class
//! ([`RateClass`]). More than
//! the configured requests per minute get 429 `RateLimitError` with `Retry-After`, and change
//! nothing (the request is refused before its handler runs).
//!
//! Behind a proxy on a private network (the compose gateway), the address is the one the proxy
//! reports (`X-Real-IP`, `X-Forwarded-For`). Each key (`ip:<address>`, `client:<id>`) has a
//! GCRA cell: a request is allowed when the
//! key's theoretical arrival time is at most a minute ahead of now, which allows a burst of a
//! minute's worth and then the configured rate. The client of a write is the `client` claim of
//! its bearer token (verified); of a token request, its `client_id` (form or Basic auth).
//!
//! Why not the `governor` crate: a request counts against its IP address and its client
//! together, all or nothing, so that a request refused for one key spends nothing of the other
//! (`a_refused_request_counts_against_no_key`); `governor` checks and spends one key at a time.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::{ConnectInfo, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use crate::auth::caller::bearer_claims;
use crate::auth::TokenClaims;
use crate::envelope::ApiError;
use crate::policy::RateClass;
use crate::settings::RateLimits;
use crate::EdgeState;

/// Keys kept before forgotten ones (those whose cell has caught up with now) are swept.
const SWEEP_AT: usize = 100_000;

/// One limit (requests per minute) over any number of keys.
pub struct RateLimiter {
    /// Time between two requests at the sustained rate; `None`: no limit.
    interval: Option<Duration>,
    cells: Mutex<HashMap<String, Instant>>,
}

impl RateLimiter {
    /// `per_minute` requests a minute per key; 0 turns the limit off.
    pub fn per_minute(per_minute: u32) -> Self {
        Self {
            interval: (per_minute > 0).then(|| Duration::from_secs(60) / per_minute),
            cells: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a request of every key in `keys` would be allowed now (nothing is counted).
    pub fn allows(&self, keys: &[String], now: Instant) -> bool {
        let Some(interval) = self.interval else {
            return true;
        };
        let cells = self.cells.lock().expect("the rate limiter's lock");
        keys.iter().all(|key| {
            let arrival = cells.get(key).copied().unwrap_or(now).max(now);
            arrival - now + interval <= Duration::from_secs(60)
        })
    }

    /// Counts a request of every key in `keys`: `Err(retry after)` when one of them is over
    /// its limit (then none is counted).
    pub fn check(&self, keys: &[String], now: Instant) -> Result<(), Duration> {
        let Some(interval) = self.interval else {
            return Ok(());
        };
        let window = Duration::from_secs(60);
        let mut cells = self.cells.lock().expect("the rate limiter's lock");
        let mut arrivals = Vec::with_capacity(keys.len());
        for key in keys {
            let arrival = cells.get(key).copied().unwrap_or(now).max(now);
            let ahead = arrival - now;
            if ahead + interval > window {
                return Err(ahead + interval - window);
            }
            arrivals.push(arrival + interval);
        }
        if cells.len() >= SWEEP_AT {
            cells.retain(|_, arrival| *arrival > now);
        }
        for (key, arrival) in keys.iter().zip(arrivals) {
            cells.insert(key.clone(), arrival);
        }
        Ok(())
    }
}

/// The limiters of one process.
pub struct RateLimiters {
    token: RateLimiter,
    writes: RateLimiter,
}

impl RateLimiters {
    pub fn new(limits: RateLimits) -> Self {
        Self {
            token: RateLimiter::per_minute(limits.token_per_minute),
            writes: RateLimiter::per_minute(limits.writes_per_minute),
        }
    }
}

/// The claims of a write's bearer token, verified once for its limit and its caller.
pub(crate) type Verified = Option<Result<TokenClaims, ApiError>>;

/// Counts `request` against the limit of `class`. Passes on the request (a token request's
/// body read and put back) and, for a write, its bearer token's verified claims; or answers
/// 429 with `Retry-After`.
pub(crate) async fn limit(
    edge: &EdgeState,
    class: RateClass,
    request: Request,
) -> Result<(Request, Verified), Response> {
    let ip = client_ip(&request).map(|ip| format!("ip:{ip}"));
    let (limiter, client, request, claims) = match class {
        RateClass::Token => {
            let (client, request) = token_client(request, edge.settings.body_limit).await?;
            (&edge.rate_limits.token, client, request, None)
        }
        RateClass::Writes => {
            let claims = bearer_claims(request.headers(), &edge.tokens);
            let client = claims.as_ref().ok().map(|claims| claims.client.clone());
            (&edge.rate_limits.writes, client, request, Some(claims))
        }
    };
    let keys: Vec<String> = ip
        .into_iter()
        .chain(client.map(|client| format!("client:{client}")))
        .collect();
    match limiter.check(&keys, Instant::now()) {
        Ok(()) => Ok((request, claims)),
        Err(retry_after) => {
            metrics::counter!("userledger_rate_limited_total", "limit" => class.as_str())
                .increment(1);
            Err(ApiError::RateLimited {
                retry_after_secs: retry_after.as_secs().max(1),
            }
            .into_response())
        }
    }
}

/// The caller's address: the peer's, or, when the peer is a proxy on a private network or this
/// host (the compose gateway, a load balancer), the address that proxy reports in `X-Real-IP`
/// or as the last hop of `X-Forwarded-For`. A public peer's forwarding headers are not
/// trusted: anyone can send them.
fn client_ip(request: &Request) -> Option<IpAddr> {
    peer_address(request.extensions(), request.headers())
}

/// The caller's address ([`client_ip`]'s rule) from a request's extensions and headers.
pub fn peer_address(
    extensions: &axum::http::Extensions,
    headers: &axum::http::HeaderMap,
) -> Option<IpAddr> {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip())?;
    let private = match peer {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
    };
    if !private {
        return Some(peer);
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let reported = header("x-real-ip").or_else(|| {
        header("x-forwarded-for").and_then(|hops| hops.rsplit(',').next().map(str::to_owned))
    });
    Some(
        reported
            .and_then(|address| address.trim().parse().ok())
            .unwrap_or(peer),
    )
}

/// The caller's address, as the rate limits see it (behind a proxy on a private network, the
/// address it reports).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(peer_address(
            &parts.extensions,
            &parts.headers,
        )))
    }
}

/// The `client_id` of a token request (Basic auth, or the form), and the request to pass on
/// (its body read and put back).
async fn token_client(
    request: Request,
    body_limit: usize,
) -> Result<(Option<String>, Request), Response> {
    if let Some(client) = basic_client(&request) {
        return Ok((Some(client), request));
    }
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, body_limit)
        .await
        .map_err(|_| ApiError::BodyTooLarge { limit: body_limit }.into_response())?;
    let client = form_urlencoded_client(&bytes);
    Ok((client, Request::from_parts(parts, Body::from(bytes))))
}

fn basic_client(request: &Request) -> Option<String> {
    let encoded = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    decoded.split_once(':').map(|(client, _)| client.to_owned())
}

fn form_urlencoded_client(body: &[u8]) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(key, _)| key == "client_id")
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|k| (*k).to_owned()).collect()
    }

    #[test]
    fn a_minute_s_worth_passes_then_the_rate() {
        let limiter = RateLimiter::per_minute(60);
        let now = Instant::now();
        for _ in 0..60 {
            assert!(limiter.check(&keys(&["ip:a"]), now).is_ok());
        }
        let retry = limiter.check(&keys(&["ip:a"]), now).unwrap_err();
        assert_eq!(retry, Duration::from_secs(1));
        // Another key has its own budget; a second later one more passes.
        assert!(limiter.check(&keys(&["ip:b"]), now).is_ok());
        assert!(limiter
            .check(&keys(&["ip:a"]), now + Duration::from_secs(1))
            .is_ok());
        assert!(limiter
            .check(&keys(&["ip:a"]), now + Duration::from_secs(1))
            .is_err());
    }

    #[test]
    fn a_refused_request_counts_against_no_key() {
        let limiter = RateLimiter::per_minute(2);
        let now = Instant::now();
        assert!(limiter.check(&keys(&["ip:a", "client:x"]), now).is_ok());
        assert!(limiter.check(&keys(&["ip:a"]), now).is_ok());
        // ip:a is spent: refused, and client:x keeps its second request.
        assert!(limiter.check(&keys(&["ip:a", "client:x"]), now).is_err());
        assert!(limiter.check(&keys(&["ip:b", "client:x"]), now).is_ok());
        assert!(limiter.check(&keys(&["ip:c", "client:x"]), now).is_err());
    }

    #[test]
    fn zero_is_no_limit() {
        let limiter = RateLimiter::per_minute(0);
        let now = Instant::now();
        for _ in 0..10_000 {
            assert!(limiter.check(&keys(&["ip:a"]), now).is_ok());
        }
    }

    fn from(peer: &str, headers: &[(&str, &str)]) -> Request {
        let mut request = Request::builder();
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut request = request.body(Body::empty()).unwrap();
        let peer: SocketAddr = peer.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    }

    #[test]
    fn a_private_proxy_s_report_of_the_caller_is_trusted_a_public_peer_s_is_not() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let forwarded = [("x-forwarded-for", "203.0.113.9, 198.51.100.7")];
        assert_eq!(
            client_ip(&from("10.0.0.5:4000", &forwarded)),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(&from("172.18.0.3:4000", &[("x-real-ip", "198.51.100.8")])),
            ip("198.51.100.8")
        );
        assert_eq!(client_ip(&from("127.0.0.1:4000", &[])), ip("127.0.0.1"));
        assert_eq!(
            client_ip(&from("192.0.2.1:4000", &forwarded)),
            ip("192.0.2.1")
        );
        assert_eq!(
            client_ip(&from("10.0.0.5:4000", &[("x-real-ip", "junk")])),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn the_client_of_a_token_request_is_read_from_the_form_or_basic_auth() {
        assert_eq!(
            form_urlencoded_client(b"grant_type=password&client_id=my%20app&x=1"),
            Some("my app".to_owned())
        );
        assert_eq!(form_urlencoded_client(b"grant_type=password"), None);
        let request = Request::builder()
            .header(header::AUTHORIZATION, "Basic bXlfYXBwOnNlY3JldA==")
            .body(Body::empty())
            .unwrap();
        assert_eq!(basic_client(&request), Some("my_app".to_owned()));
    }
}
