//! Agent enrollment: one-time enrollment tokens and the long-lived node credentials they are
//! exchanged for. Only `sha256:` of a token or credential is stored; the plaintext is
//! returned once, when it is created.

use crate::backend::{BeginWrite as _, on_backend};
use crate::error::{QueryContext as _, Result, StoreError};
use crate::nodes::check_node_name;
use crate::{Store, now};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use std::time::Duration;

/// The prefix of every enrollment token (recognizable in a paste or a secret scanner).
pub const TOKEN_PREFIX: &str = "cset_";
/// The prefix of every node credential.
pub const CREDENTIAL_PREFIX: &str = "csnc_";
/// The longest lifetime of an enrollment token.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(366 * 24 * 3600);
/// Random bytes in a token or credential.
const SECRET_BYTES: usize = 32;
/// `prefix` + 43 characters of base64url (32 bytes, no padding).
const SECRET_TEXT_LEN: usize = 5 + 43;

/// Why an enrollment token was refused. The messages never contain the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    /// Not a token's shape, or no such token.
    Unknown,
    /// Redeemed before.
    Used,
    /// Past its expiry.
    Expired,
    /// Bound to another node name.
    OtherNode,
    /// The node already holds a current credential and the token is not bound to it.
    NodeEnrolled,
}

impl TokenRefusal {
    /// A stable machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            TokenRefusal::Unknown => "token_unknown",
            TokenRefusal::Used => "token_used",
            TokenRefusal::Expired => "token_expired",
            TokenRefusal::OtherNode => "token_for_other_node",
            TokenRefusal::NodeEnrolled => "node_enrolled",
        }
    }
}

impl std::fmt::Display for TokenRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenRefusal::Unknown => "the enrollment token is not known",
            TokenRefusal::Used => "the enrollment token was already used",
            TokenRefusal::Expired => "the enrollment token has expired",
            TokenRefusal::OtherNode => "the enrollment token is bound to another node",
            TokenRefusal::NodeEnrolled => {
                "the node is already enrolled: enrolling it again takes a token bound to it \
                 (`centossrv enroll-token create --node NAME`)"
            }
        })
    }
}

/// `prefix` + 32 random bytes from the operating system, base64url without padding.
pub(crate) fn new_secret(prefix: &str) -> Result<String> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Invalid {
        what: "random source",
        detail: format!("the operating system gave no random bytes: {e}"),
    })?;
    let mut text = String::with_capacity(SECRET_TEXT_LEN);
    text.push_str(prefix);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(bytes, &mut text);
    Ok(text)
}

/// What is stored of a secret: `sha256:` and the hex digest of its text. The secrets are 256
/// random bits, so a fast hash is enough (nothing to brute-force).
pub(crate) fn secret_hash(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Whether `text` has the shape of a secret with `prefix` (checked before any query).
pub(crate) fn has_shape(text: &str, prefix: &str) -> bool {
    text.len() == SECRET_TEXT_LEN
        && text.starts_with(prefix)
        && text[prefix.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Store {
    /// Creates a one-time enrollment token valid for `ttl` (at most [`MAX_TOKEN_TTL`]) and
    /// returns its text, which is not stored and cannot be shown again. With `node`, only
    /// that node name can redeem it (and it may re-enroll a node that is enrolled already);
    /// without, it enrolls any name that holds no current credential.
    pub async fn create_enrollment_token(
        &self,
        ttl: Duration,
        created_by: &str,
        node: Option<&str>,
    ) -> Result<String> {
        if let Some(node) = node {
            check_node_name(node)?;
        }
        if ttl.is_zero() || ttl > MAX_TOKEN_TTL {
            return Err(StoreError::Invalid {
                what: "token lifetime",
                detail: format!(
                    "{} s must be more than 0 and at most {} s",
                    ttl.as_secs(),
                    MAX_TOKEN_TTL.as_secs()
                ),
            });
        }
        let at = now();
        let expires_at = at
            + chrono::Duration::from_std(ttl).map_err(|e| StoreError::Invalid {
                what: "token lifetime",
                detail: e.to_string(),
            })?;
        let token = new_secret(TOKEN_PREFIX)?;
        on_backend!(self, pool => {
            sqlx::query(
                "INSERT INTO enrollment_tokens \
                 (token_hash, created_by, created_at, expires_at, node_name) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(secret_hash(&token))
            .bind(created_by)
            .bind(at)
            .bind(expires_at)
            .bind(node)
            .execute(pool)
            .await
            .ctx("create an enrollment token")?;
        });
        Ok(token)
    }

    /// Redeems `token` for `node`, once: marks the token used, creates the node if it is
    /// new (outside the inventory: discovered), revokes the node's earlier credentials and
    /// returns a new credential (shown once; only its hash is stored). Everything happens in
    /// one transaction, and the token is claimed by a conditional UPDATE, so of any number of
    /// concurrent redemptions exactly one succeeds.
    ///
    /// A refused token is [`StoreError::TokenRefused`].
    pub async fn redeem_enrollment_token(&self, token: &str, node: &str) -> Result<String> {
        check_node_name(node)?;
        if !has_shape(token, TOKEN_PREFIX) {
            return Err(StoreError::TokenRefused {
                reason: TokenRefusal::Unknown,
            });
        }
        let token_hash = secret_hash(token);
        let credential = new_secret(CREDENTIAL_PREFIX)?;
        let at = now();
        on_backend!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let claimed: Option<Option<String>> = sqlx::query_scalar(
                "UPDATE enrollment_tokens SET used_at = $1, used_by_node = $2 \
                 WHERE token_hash = $3 AND used_at IS NULL AND expires_at > $1 \
                 AND (node_name IS NULL OR node_name = $2) RETURNING node_name",
            )
            .bind(at)
            .bind(node)
            .bind(&token_hash)
            .fetch_optional(&mut *tx)
            .await
            .ctx("redeem an enrollment token")?;
            let Some(bound_to) = claimed else {
                let row: Option<(Option<chrono::DateTime<chrono::Utc>>, Option<String>)> =
                    sqlx::query_as(
                        "SELECT used_at, node_name FROM enrollment_tokens WHERE token_hash = $1",
                    )
                    .bind(&token_hash)
                    .fetch_optional(&mut *tx)
                    .await
                    .ctx("look up an enrollment token")?;
                let reason = match row {
                    None => TokenRefusal::Unknown,
                    Some((Some(_), _)) => TokenRefusal::Used,
                    Some((None, Some(name))) if name != node => TokenRefusal::OtherNode,
                    Some((None, _)) => TokenRefusal::Expired,
                };
                tx.rollback().await.ctx("end a refused redemption")?;
                return Err(StoreError::TokenRefused { reason });
            };
            // A token not bound to this node never replaces a current credential: it was
            // handed out for a new machine, not to take over an enrolled one. (Rolled back:
            // the token stays usable for what it was meant for.)
            if bound_to.is_none() {
                let enrolled: Option<i64> = sqlx::query_scalar(
                    "SELECT c.id FROM node_credentials c JOIN nodes n ON n.id = c.node_id \
                     WHERE n.name = $1 AND c.revoked_at IS NULL LIMIT 1",
                )
                .bind(node)
                .fetch_optional(&mut *tx)
                .await
                .ctx("look for a current node credential")?;
                if enrolled.is_some() {
                    tx.rollback().await.ctx("end a refused redemption")?;
                    return Err(StoreError::TokenRefused {
                        reason: TokenRefusal::NodeEnrolled,
                    });
                }
            }
            sqlx::query(
                "INSERT INTO nodes (name, in_inventory, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
            )
            .bind(node)
            .bind(false)
            .bind(at)
            .bind(at)
            .execute(&mut *tx)
            .await
            .ctx("create a discovered node")?;
            let node_id: i64 = sqlx::query_scalar("SELECT id FROM nodes WHERE name = $1")
                .bind(node)
                .fetch_one(&mut *tx)
                .await
                .ctx("look up the enrolling node")?;
            sqlx::query(
                "UPDATE node_credentials SET revoked_at = $1 \
                 WHERE node_id = $2 AND revoked_at IS NULL",
            )
            .bind(at)
            .bind(node_id)
            .execute(&mut *tx)
            .await
            .ctx("revoke earlier node credentials")?;
            sqlx::query(
                "INSERT INTO node_credentials (node_id, credential_hash, created_at) \
                 VALUES ($1, $2, $3)",
            )
            .bind(node_id)
            .bind(secret_hash(&credential))
            .bind(at)
            .execute(&mut *tx)
            .await
            .ctx("issue a node credential")?;
            tx.commit().await.ctx("commit an enrollment")?;
        });
        Ok(credential)
    }

    /// The node `credential` belongs to, if it is a current (not revoked) credential.
    pub async fn authenticate_node(&self, credential: &str) -> Result<Option<String>> {
        if !has_shape(credential, CREDENTIAL_PREFIX) {
            return Ok(None);
        }
        let hash = secret_hash(credential);
        on_backend!(self, pool => {
            sqlx::query_scalar(
                "SELECT n.name FROM node_credentials c JOIN nodes n ON n.id = c.node_id \
                 WHERE c.credential_hash = $1 AND c.revoked_at IS NULL",
            )
            .bind(&hash)
            .fetch_optional(pool)
            .await
            .ctx("authenticate a node")
        })
    }

    /// Revokes every current credential of `node`; returns how many were revoked. The node
    /// must enroll again (with a new token) to connect.
    pub async fn revoke_node_credentials(&self, node: &str) -> Result<u64> {
        let at = now();
        on_backend!(self, pool => {
            let done = sqlx::query(
                "UPDATE node_credentials SET revoked_at = $1 WHERE revoked_at IS NULL \
                 AND node_id = (SELECT id FROM nodes WHERE name = $2)",
            )
            .bind(at)
            .bind(node)
            .execute(pool)
            .await
            .ctx("revoke node credentials")?;
            Ok(done.rows_affected())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_their_shape_and_hash() {
        let token = new_secret(TOKEN_PREFIX).expect("random");
        assert!(has_shape(&token, TOKEN_PREFIX), "{token}");
        assert!(!has_shape(&token, CREDENTIAL_PREFIX));
        assert_ne!(token, new_secret(TOKEN_PREFIX).expect("random"));
        assert!(!has_shape("cset_short", TOKEN_PREFIX));
        let hash = secret_hash(&token);
        assert_eq!(hash.len(), 71);
        assert!(!hash.contains(&token[5..]));
    }
}
