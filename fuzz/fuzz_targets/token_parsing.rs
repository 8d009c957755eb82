//! Bearer tokens as the edge reads them. The first byte picks the form: an `Authorization`
//! header as sent; a token as it stands; or a payload (and a header) signed with the service's
//! key, so that what lies behind the signature check is reached too. Nothing panics, a refusal
//! is 401, and a token that verifies holds claims that the service can write back.

#![no_main]

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http_edge::auth::caller::bearer_claims;
use http_edge::auth::tokens::TokenKeys;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzzing-secret-of-at-least-32-bytes";

fn keys() -> &'static TokenKeys {
    static KEYS: OnceLock<TokenKeys> = OnceLock::new();
    KEYS.get_or_init(|| TokenKeys::new(SECRET))
}

/// `header.payload`, base64url-encoded, signed with the service's key.
fn signed(header: &[u8], payload: &[u8]) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(SECRET),
        Algorithm::HS256,
    )
    .expect("HS256 signs anything");
    format!("{message}.{signature}")
}

fn check(headers: &HeaderMap) {
    match bearer_claims(headers, keys()) {
        Ok(claims) => {
            serde_json::to_string(&claims).expect("verified claims serialize");
        }
        Err(refusal) => {
            let status = refusal.into_response().status();
            assert_eq!(status.as_u16(), 401, "a token was refused with {status}");
        }
    }
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
        headers.insert("authorization", value);
    }
    headers
}

fuzz_target!(|input: &[u8]| {
    let Some((&form, rest)) = input.split_first() else {
        return;
    };
    match form % 4 {
        0 => {
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_bytes(rest) {
                headers.insert("authorization", value);
            }
            check(&headers);
        }
        1 => check(&bearer(&String::from_utf8_lossy(rest))),
        2 => check(&bearer(&signed(br#"{"alg":"HS256","typ":"JWT"}"#, rest))),
        _ => {
            // A header of the input's own, up to its first NUL: `alg: none`, other algorithms.
            let split = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            let (header, payload) = rest.split_at(split);
            check(&bearer(&signed(
                header,
                payload.get(1..).unwrap_or_default(),
            )));
        }
    }
});
