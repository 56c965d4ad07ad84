//! Who may do what: local users (Argon2id PHC strings, hashed by the caller; never a
//! password), role bindings from the CLI or the fleet repository, API tokens (only
//! `sha256:` of the token is stored; the text is returned once) and break-glass holds.
//!
//! Roles are plain strings here; their meaning lives in the reconciler's `auth` module.

use crate::backend::{BeginWrite as _, on_backend};
use crate::enrollment::{has_shape, new_secret, secret_hash};
use crate::error::{QueryContext as _, Result, StoreError};
use crate::{Store, now};
use chrono::{DateTime, Utc};
use sqlx::Row as _;
use std::time::Duration;

/// The prefix of every API token.
pub const API_TOKEN_PREFIX: &str = "csat_";
/// The longest lifetime of an API token.
pub const MAX_API_TOKEN_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

/// A local or directory user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    /// Argon2id PHC string; `None` for users who sign in through the directory (LDAP).
    pub password_hash: Option<String>,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

/// `subject` (`user:NAME` or `group:NAME`) has `role`, declared by `origin` (`cli`, `git`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleBinding {
    pub subject: String,
    pub origin: String,
    pub role: String,
}

/// An API token's public record (never its text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Public identifier (shown in listings, used to revoke).
    pub id: String,
    pub user: String,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// An operator's hold on a node: nothing is applied to it until the hold is lifted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeHold {
    pub node: String,
    pub reason: String,
    pub held_by: String,
    pub held_at: DateTime<Utc>,
}

/// User names: what a directory or a shell account would accept.
pub fn check_user_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            what: "user name",
            detail: format!(
                "`{name}`: 1 to 64 characters of letters, digits, `.`, `_`, `-` and `@`"
            ),
        })
    }
}

/// A `users` row as a [`User`] (a macro: the row type differs per backend).
macro_rules! user_from_row {
    ($row:expr) => {{
        let row = $row;
        (|| -> std::result::Result<User, sqlx::Error> {
            Ok(User {
                name: row.try_get("name")?,
                password_hash: row.try_get("password_hash")?,
                disabled: row.try_get("disabled")?,
                created_at: row.try_get("created_at")?,
            })
        })()
    }};
}

/// An `api_tokens` row as an [`ApiToken`].
macro_rules! token_from_row {
    ($row:expr) => {{
        let row = $row;
        (|| -> std::result::Result<ApiToken, sqlx::Error> {
            Ok(ApiToken {
                id: row.try_get("id")?,
                user: row.try_get("user_name")?,
                label: row.try_get("label")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
                revoked_at: row.try_get("revoked_at")?,
            })
        })()
    }};
}

const TOKEN_COLUMNS: &str = "id, user_name, label, created_at, expires_at, revoked_at";

impl Store {
    /// Creates user `name`; an existing name is [`StoreError::Invalid`].
    pub async fn create_user(&self, name: &str, password_hash: Option<&str>) -> Result<()> {
        check_user_name(name)?;
        on_backend!(self, pool => {
            let done = sqlx::query(
                "INSERT INTO users (name, password_hash, created_at, disabled) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(password_hash)
            .bind(now())
            .bind(false)
            .execute(pool)
            .await
            .ctx("create a user")?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Invalid {
                    what: "user",
                    detail: format!("`{name}` exists already"),
                });
            }
            Ok(())
        })
    }

    /// User `name`, if there is one.
    pub async fn user(&self, name: &str) -> Result<Option<User>> {
        on_backend!(self, pool => {
            let row = sqlx::query(
                "SELECT name, password_hash, disabled, created_at FROM users WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(pool)
            .await
            .ctx("read a user")?;
            row.map(|r| user_from_row!(&r)).transpose().ctx("read a user")
        })
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<User>> {
        on_backend!(self, pool => {
            let rows = sqlx::query(
                "SELECT name, password_hash, disabled, created_at FROM users ORDER BY name",
            )
            .fetch_all(pool)
            .await
            .ctx("list users")?;
            rows.iter()
                .map(|r| user_from_row!(r))
                .collect::<std::result::Result<Vec<_>, _>>()
                .ctx("list users")
        })
    }

    /// Replaces user `name`'s password hash; false if there is no such user.
    pub async fn set_password_hash(&self, name: &str, password_hash: &str) -> Result<bool> {
        on_backend!(self, pool => {
            let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2")
                .bind(password_hash)
                .bind(name)
                .execute(pool)
                .await
                .ctx("set a password")?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Disables (or enables) user `name`: a disabled user cannot sign in and their tokens
    /// stop working. False if there is no such user.
    pub async fn set_user_disabled(&self, name: &str, disabled: bool) -> Result<bool> {
        on_backend!(self, pool => {
            let done = sqlx::query("UPDATE users SET disabled = $1 WHERE name = $2")
                .bind(disabled)
                .bind(name)
                .execute(pool)
                .await
                .ctx("disable a user")?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Deletes user `name` with their CLI role binding and every token; false if there was
    /// no such user. Bindings declared in Git stay (Git is their source).
    pub async fn delete_user(&self, name: &str) -> Result<bool> {
        let subject = format!("user:{name}");
        on_backend!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query("DELETE FROM users WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await
                .ctx("delete a user")?;
            sqlx::query("DELETE FROM role_bindings WHERE subject = $1 AND origin = 'cli'")
                .bind(&subject)
                .execute(&mut *tx)
                .await
                .ctx("delete a user's role binding")?;
            sqlx::query("DELETE FROM api_tokens WHERE user_name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await
                .ctx("delete a user's tokens")?;
            tx.commit().await.ctx("commit a user's deletion")?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Binds `subject` to `role` for `origin`, replacing that origin's earlier binding.
    pub async fn bind_role(&self, subject: &str, origin: &str, role: &str) -> Result<()> {
        on_backend!(self, pool => {
            sqlx::query(
                "INSERT INTO role_bindings (subject, origin, role, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (subject, origin) \
                 DO UPDATE SET role = excluded.role",
            )
            .bind(subject)
            .bind(origin)
            .bind(role)
            .bind(now())
            .execute(pool)
            .await
            .ctx("bind a role")?;
            Ok(())
        })
    }

    /// Removes `subject`'s binding from `origin`; false if there was none.
    pub async fn unbind_role(&self, subject: &str, origin: &str) -> Result<bool> {
        on_backend!(self, pool => {
            let done = sqlx::query("DELETE FROM role_bindings WHERE subject = $1 AND origin = $2")
                .bind(subject)
                .bind(origin)
                .execute(pool)
                .await
                .ctx("unbind a role")?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Replaces every binding of `origin` with `bindings` (`(subject, role)`), in one
    /// transaction: how the bindings declared in the fleet repository follow each commit.
    pub async fn replace_role_bindings(
        &self,
        origin: &str,
        bindings: &[(String, String)],
    ) -> Result<()> {
        let at = now();
        on_backend!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM role_bindings WHERE origin = $1")
                .bind(origin)
                .execute(&mut *tx)
                .await
                .ctx("replace role bindings")?;
            for (subject, role) in bindings {
                sqlx::query(
                    "INSERT INTO role_bindings (subject, origin, role, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (subject, origin) \
                     DO UPDATE SET role = excluded.role",
                )
                .bind(subject)
                .bind(origin)
                .bind(role)
                .bind(at)
                .execute(&mut *tx)
                .await
                .ctx("replace role bindings")?;
            }
            tx.commit().await.ctx("commit role bindings")?;
            Ok(())
        })
    }

    /// Every role binding, by subject then origin.
    pub async fn role_bindings(&self) -> Result<Vec<RoleBinding>> {
        on_backend!(self, pool => {
            let rows = sqlx::query(
                "SELECT subject, origin, role FROM role_bindings ORDER BY subject, origin",
            )
            .fetch_all(pool)
            .await
            .ctx("list role bindings")?;
            rows.iter()
                .map(|r| {
                    Ok(RoleBinding {
                        subject: r.try_get("subject")?,
                        origin: r.try_get("origin")?,
                        role: r.try_get("role")?,
                    })
                })
                .collect::<std::result::Result<Vec<_>, sqlx::Error>>()
                .ctx("list role bindings")
        })
    }

    /// Creates an API token for `user`, valid for `ttl` (at most [`MAX_API_TOKEN_TTL`]);
    /// returns its record and its text, which is not stored and cannot be shown again.
    pub async fn create_api_token(
        &self,
        user: &str,
        label: &str,
        ttl: Duration,
    ) -> Result<(ApiToken, String)> {
        if ttl.is_zero() || ttl > MAX_API_TOKEN_TTL {
            return Err(StoreError::Invalid {
                what: "token lifetime",
                detail: format!(
                    "{} s must be more than 0 and at most {} s",
                    ttl.as_secs(),
                    MAX_API_TOKEN_TTL.as_secs()
                ),
            });
        }
        if label.len() > 200 || label.chars().any(char::is_control) {
            return Err(StoreError::Invalid {
                what: "token label",
                detail: "at most 200 characters, no control characters".into(),
            });
        }
        let created_at = now();
        let expires_at = created_at
            + chrono::Duration::from_std(ttl).map_err(|e| StoreError::Invalid {
                what: "token lifetime",
                detail: e.to_string(),
            })?;
        let text = new_secret(API_TOKEN_PREFIX)?;
        let hash = secret_hash(&text);
        // The public id: the first 12 hex digits of the hash (the hash itself is not shown).
        let id = format!("tok_{}", &hash[7..19]);
        on_backend!(self, pool => {
            sqlx::query(
                "INSERT INTO api_tokens (id, user_name, token_hash, label, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&id)
            .bind(user)
            .bind(&hash)
            .bind(label)
            .bind(created_at)
            .bind(expires_at)
            .execute(pool)
            .await
            .ctx("create an API token")?;
        });
        let record = ApiToken {
            id,
            user: user.to_owned(),
            label: label.to_owned(),
            created_at,
            expires_at,
            revoked_at: None,
        };
        Ok((record, text))
    }

    /// The token `text` belongs to, if it is current: known, not revoked, not expired, and
    /// its user exists and is not disabled.
    pub async fn authenticate_api_token(&self, text: &str) -> Result<Option<ApiToken>> {
        if !has_shape(text, API_TOKEN_PREFIX) {
            return Ok(None);
        }
        let hash = secret_hash(text);
        let at = now();
        on_backend!(self, pool => {
            let row = sqlx::query(
                "SELECT t.id, t.user_name, t.label, t.created_at, t.expires_at, t.revoked_at \
                 FROM api_tokens t JOIN users u ON u.name = t.user_name \
                 WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > $2 \
                 AND u.disabled = $3",
            )
            .bind(&hash)
            .bind(at)
            .bind(false)
            .fetch_optional(pool)
            .await
            .ctx("authenticate an API token")?;
            row.map(|r| token_from_row!(&r))
                .transpose()
                .ctx("authenticate an API token")
        })
    }

    /// Tokens of `user` (every user's with `None`), newest first.
    pub async fn api_tokens(&self, user: Option<&str>) -> Result<Vec<ApiToken>> {
        on_backend!(self, pool => {
            let rows = sqlx::query(&format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE ($1 IS NULL OR user_name = $1) \
                 ORDER BY created_at DESC, id"
            ))
            .bind(user)
            .fetch_all(pool)
            .await
            .ctx("list API tokens")?;
            rows.iter()
                .map(|r| token_from_row!(r))
                .collect::<std::result::Result<Vec<_>, _>>()
                .ctx("list API tokens")
        })
    }

    /// One token's record.
    pub async fn api_token(&self, id: &str) -> Result<Option<ApiToken>> {
        on_backend!(self, pool => {
            let row = sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
                .ctx("read an API token")?;
            row.map(|r| token_from_row!(&r)).transpose().ctx("read an API token")
        })
    }

    /// Revokes token `id`; false if it is unknown or was revoked before.
    pub async fn revoke_api_token(&self, id: &str) -> Result<bool> {
        on_backend!(self, pool => {
            let done = sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            )
            .bind(now())
            .bind(id)
            .execute(pool)
            .await
            .ctx("revoke an API token")?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Holds `node` (replacing an earlier hold's reason).
    pub async fn set_hold(&self, node: &str, reason: &str, held_by: &str) -> Result<NodeHold> {
        let held_at = now();
        on_backend!(self, pool => {
            sqlx::query(
                "INSERT INTO node_holds (node, reason, held_by, held_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (node) DO UPDATE SET reason = excluded.reason, \
                 held_by = excluded.held_by, held_at = excluded.held_at",
            )
            .bind(node)
            .bind(reason)
            .bind(held_by)
            .bind(held_at)
            .execute(pool)
            .await
            .ctx("hold a node")?;
        });
        Ok(NodeHold {
            node: node.to_owned(),
            reason: reason.to_owned(),
            held_by: held_by.to_owned(),
            held_at,
        })
    }

    /// Lifts the hold on `node`; false if there was none.
    pub async fn clear_hold(&self, node: &str) -> Result<bool> {
        on_backend!(self, pool => {
            let done = sqlx::query("DELETE FROM node_holds WHERE node = $1")
                .bind(node)
                .execute(pool)
                .await
                .ctx("lift a hold")?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Every hold, by node.
    pub async fn holds(&self) -> Result<Vec<NodeHold>> {
        on_backend!(self, pool => {
            let rows = sqlx::query(
                "SELECT node, reason, held_by, held_at FROM node_holds ORDER BY node",
            )
            .fetch_all(pool)
            .await
            .ctx("list holds")?;
            rows.iter()
                .map(|r| {
                    Ok(NodeHold {
                        node: r.try_get("node")?,
                        reason: r.try_get("reason")?,
                        held_by: r.try_get("held_by")?,
                        held_at: r.try_get("held_at")?,
                    })
                })
                .collect::<std::result::Result<Vec<_>, sqlx::Error>>()
                .ctx("list holds")
        })
    }
}
