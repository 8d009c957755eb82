//! Access and refresh tokens: JWTs signed with the configured key (HS256), short-lived. They
//! carry the user or client id, the token kind, the role and the scope, and the issuing
//! client's id and scope (the `shared` and `session` checks need both).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A user's token (delegated) or an application's own token (client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Delegated,
    Client,
}

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenUse {
    Access,
    Refresh,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// The user id (delegated) or the application id (client).
    pub sub: String,
    pub kind: TokenKind,
    #[serde(rename = "use")]
    pub token_use: TokenUse,
    pub role: String,
    pub scope: Vec<String>,
    /// The issuing application's id and scope.
    pub client: String,
    pub client_scope: Vec<String>,
    pub iat: u64,
    pub exp: u64,
    pub jti: Uuid,
    /// The grant the token belongs to (one sign-in's tokens, rotated refresh tokens
    /// included): revoking it revokes them all. Client tokens have none.
    #[serde(default, rename = "fam", skip_serializing_if = "Option::is_none")]
    pub family: Option<Uuid>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid")]
    Invalid,
}

pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl TokenKeys {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.validate_exp = true;
        validation.required_spec_claims = ["exp", "sub"].iter().map(|c| c.to_string()).collect();
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Signs `claims` after setting their times from `ttl`, and their id unless one is set.
    pub fn issue(&self, mut claims: TokenClaims, ttl: Duration) -> anyhow::Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        claims.iat = now;
        claims.exp = now + ttl.as_secs();
        if claims.jti.is_nil() {
            claims.jti = Uuid::now_v7();
        }
        Ok(encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    pub fn verify(&self, token: &str) -> Result<TokenClaims, TokenError> {
        decode::<TokenClaims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> TokenClaims {
        TokenClaims {
            sub: "user".into(),
            kind: TokenKind::Delegated,
            token_use: TokenUse::Access,
            role: "admin".into(),
            scope: vec!["admin:all".into()],
            client: "client".into(),
            client_scope: vec!["*".into()],
            iat: 0,
            exp: 0,
            jti: Uuid::nil(),
            family: None,
        }
    }

    #[test]
    fn issued_tokens_verify_and_forged_ones_do_not() {
        let keys = TokenKeys::new(b"a secret of enough length for hs256");
        let token = keys.issue(claims(), Duration::from_secs(60)).unwrap();
        let verified = keys.verify(&token).unwrap();
        assert_eq!(verified.sub, "user");
        assert_eq!(verified.scope, vec!["admin:all".to_string()]);

        let other = TokenKeys::new(b"another secret, another signature");
        assert_eq!(other.verify(&token), Err(TokenError::Invalid));
        let mut tampered = token.clone();
        tampered.insert(tampered.len() - 2, 'x');
        assert_eq!(keys.verify(&tampered), Err(TokenError::Invalid));
        assert_eq!(keys.verify("not.a.token"), Err(TokenError::Invalid));
    }

    #[test]
    fn expired_tokens_are_refused() {
        let keys = TokenKeys::new(b"a secret of enough length for hs256");
        let mut old = claims();
        old.iat = 1;
        old.exp = 2;
        let token = encode(&Header::new(Algorithm::HS256), &old, &keys.encoding).unwrap();
        assert_eq!(keys.verify(&token), Err(TokenError::Expired));
    }
}
