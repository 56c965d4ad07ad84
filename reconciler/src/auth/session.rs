//! Session tokens: JWTs signed with HMAC-SHA256 by a key only this reconciler holds, with a
//! short expiry. They name the user and the directory groups found at login; roles are
//! resolved again from the bindings on every request, so a changed binding takes effect
//! at once.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a session token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user name.
    pub sub: String,
    /// Directory groups of the user at login (empty for local users).
    #[serde(default)]
    pub groups: Vec<String>,
    pub iat: u64,
    pub exp: u64,
    /// Issuer: always `centossrv`.
    pub iss: String,
}

const ISSUER: &str = "centossrv";

/// The signing key.
#[derive(Clone)]
pub struct SessionKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKeys")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl SessionKeys {
    /// Keys from `secret` (at least 32 bytes) issuing tokens valid for `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> SessionKeys {
        SessionKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl,
        }
    }

    /// Keys from 32 fresh random bytes: sessions end when the process does.
    pub fn random(ttl: Duration) -> SessionKeys {
        let mut secret = [0u8; 32];
        // A machine without a random source cannot run TLS either; fall back to nothing
        // weaker than failing every verification.
        if getrandom::fill(&mut secret).is_err() {
            tracing::error!("no random bytes for the session key; sessions will not verify");
        }
        SessionKeys::new(&secret, ttl)
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A signed token for `user` with `groups`, and its expiry (seconds since the epoch).
    pub fn issue(&self, user: &str, groups: Vec<String>) -> Result<(String, u64), String> {
        let now = unix_now();
        let claims = Claims {
            sub: user.to_owned(),
            groups,
            iat: now,
            exp: now + self.ttl.as_secs(),
            iss: ISSUER.into(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map(|t| (t, claims.exp))
            .map_err(|e| e.to_string())
    }

    /// The claims of `token` if its signature, algorithm, issuer and expiry check out.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .ok()
            .map(|d| d.claims)
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_with_their_key_and_before_expiry() {
        let keys = SessionKeys::new(&[7u8; 32], Duration::from_secs(60));
        let (token, exp) = keys.issue("alice", vec!["ops".into()]).expect("issue");
        let claims = keys.verify(&token).expect("valid");
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.groups, ["ops"]);
        assert_eq!(claims.exp, exp);
        let other = SessionKeys::new(&[8u8; 32], Duration::from_secs(60));
        assert_eq!(other.verify(&token), None);
        let mut tampered = token.clone();
        tampered.insert(token.find('.').expect("dot") + 2, 'x');
        assert_eq!(keys.verify(&tampered), None);
        let expired = SessionKeys::new(&[7u8; 32], Duration::ZERO);
        let (old, _) = expired.issue("alice", Vec::new()).expect("issue");
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(keys.verify(&old), None);
        // `alg: none` is refused.
        let none = format!(
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
            token.split('.').nth(1).expect("payload")
        );
        assert_eq!(keys.verify(&none), None);
    }
}
