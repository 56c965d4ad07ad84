//! [`Auth`]: the shared state of authentication: signing in (local Argon2id or LDAP bind,
//! rate-limited, audited), recognising a caller from a bearer token or the session cookie,
//! and resolving their roles from the bindings.

use super::ldap::{LdapConfig, LdapError};
use super::limiter::{Limiter, Limits};
use super::session::SessionKeys;
use super::{Principal, Role, Via, password};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::{AuditRecord, Store};

/// The session cookie's name.
pub const COOKIE_NAME: &str = "centossrv_session";

/// Settings of authentication.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Status page and API reads without signing in (the API's write paths and the audit
    /// log always need a signed-in user with the right role).
    pub anonymous_read: bool,
    /// How long a session token is valid.
    pub session_ttl: Duration,
    /// The HMAC key of session tokens; `None`: 32 random bytes at start (sessions end
    /// with the process).
    pub session_key: Option<Vec<u8>>,
    pub ldap: Option<LdapConfig>,
    pub limits: Limits,
    /// Mark the session cookie `Secure` (served over HTTPS).
    pub secure_cookie: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            anonymous_read: false,
            session_ttl: Duration::from_secs(15 * 60),
            session_key: None,
            ldap: None,
            limits: Limits::default(),
            secure_cookie: true,
        }
    }
}

/// Why a sign-in failed. Messages say nothing about which part was wrong.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("invalid user name or password")]
    Invalid,
    #[error("too many failed sign-ins; try again in {} s", .0.as_secs().max(1))]
    Limited(Duration),
    #[error("{0}")]
    Unavailable(String),
}

/// A signed-in user's session token.
#[derive(Debug, Clone)]
pub struct LoginOk {
    pub user: String,
    pub token: String,
    /// Seconds since the epoch.
    pub expires_at: u64,
    pub roles: BTreeSet<Role>,
}

struct Inner {
    store: Store,
    keys: SessionKeys,
    limiter: Mutex<Limiter>,
    config: AuthConfig,
}

/// Authentication's shared state; cheap to clone.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("anonymous_read", &self.inner.config.anonymous_read)
            .finish_non_exhaustive()
    }
}

impl Auth {
    pub fn new(store: Store, config: AuthConfig) -> Auth {
        let keys = match &config.session_key {
            Some(key) => SessionKeys::new(key, config.session_ttl),
            None => SessionKeys::random(config.session_ttl),
        };
        Auth {
            inner: Arc::new(Inner {
                store,
                keys,
                limiter: Mutex::new(Limiter::new(config.limits)),
                config,
            }),
        }
    }

    pub fn config(&self) -> &AuthConfig {
        &self.inner.config
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Signs `user` in with `password` from `address`: rate limit, then the local
    /// password, else the directory. Every attempt is audited (`auth.login`).
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        address: Option<IpAddr>,
    ) -> Result<LoginOk, LoginError> {
        let wait = self.limiter().check(user, address, Instant::now());
        if let Some(wait) = wait {
            self.audit_login(user, address, "limited", None).await;
            return Err(LoginError::Limited(wait));
        }
        match self.check_password(user, password).await {
            Ok(groups) => {
                self.limiter().succeeded(user);
                let roles = self.roles_of(user, &groups).await.map_err(|e| {
                    LoginError::Unavailable(format!("cannot read role bindings: {e}"))
                })?;
                let (token, expires_at) = self
                    .inner
                    .keys
                    .issue(user, groups)
                    .map_err(LoginError::Unavailable)?;
                self.audit_login(user, address, "ok", None).await;
                Ok(LoginOk {
                    user: user.to_owned(),
                    token,
                    expires_at,
                    roles,
                })
            }
            Err(LoginError::Invalid) => {
                self.limiter().failed(user, address, Instant::now());
                self.audit_login(user, address, "denied", None).await;
                Err(LoginError::Invalid)
            }
            Err(e) => {
                self.audit_login(user, address, "failed", Some(e.to_string()))
                    .await;
                Err(e)
            }
        }
    }

    fn limiter(&self) -> std::sync::MutexGuard<'_, Limiter> {
        self.inner
            .limiter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The user's directory groups when `password` is right.
    async fn check_password(&self, user: &str, password: &str) -> Result<Vec<String>, LoginError> {
        if store::check_user_name(user).is_err() {
            // Same cost as a wrong password.
            let pw = password.to_owned();
            let _ =
                tokio::task::spawn_blocking(move || password::verify(&pw, password::decoy())).await;
            return Err(LoginError::Invalid);
        }
        let local = self
            .inner
            .store
            .user(user)
            .await
            .map_err(|e| LoginError::Unavailable(format!("cannot read users: {e}")))?;
        if local.as_ref().is_some_and(|u| u.disabled) {
            return Err(LoginError::Invalid);
        }
        if let Some(phc) = local.as_ref().and_then(|u| u.password_hash.clone()) {
            let pw = password.to_owned();
            let ok = tokio::task::spawn_blocking(move || password::verify(&pw, &phc))
                .await
                .unwrap_or(false);
            return if ok {
                Ok(Vec::new())
            } else {
                Err(LoginError::Invalid)
            };
        }
        let Some(ldap) = &self.inner.config.ldap else {
            let pw = password.to_owned();
            let _ =
                tokio::task::spawn_blocking(move || password::verify(&pw, password::decoy())).await;
            return Err(LoginError::Invalid);
        };
        match ldap.authenticate(user, password).await {
            Ok(groups) => Ok(groups),
            Err(LdapError::InvalidCredentials) => Err(LoginError::Invalid),
            Err(e) => {
                tracing::error!(error = %e, "directory sign-in failed");
                Err(LoginError::Unavailable(
                    "the directory cannot be reached".into(),
                ))
            }
        }
    }

    async fn audit_login(
        &self,
        user: &str,
        address: Option<IpAddr>,
        outcome: &str,
        error: Option<String>,
    ) {
        let record = AuditRecord {
            actor: format!("user:{user}"),
            action: "auth.login".into(),
            target: user.to_owned(),
            commit: None,
            outcome: outcome.into(),
            details: match error {
                Some(error) => serde_json::json!({
                    "address": address.map(|a| a.to_string()),
                    "error": error,
                }),
                None => serde_json::json!({ "address": address.map(|a| a.to_string()) }),
            },
        };
        if let Err(e) = self.inner.store.audit_append(&record).await {
            tracing::error!(error = %e, "cannot audit a sign-in");
        }
    }

    /// The roles bound to `user` directly or through one of `groups`.
    pub async fn roles_of(
        &self,
        user: &str,
        groups: &[String],
    ) -> Result<BTreeSet<Role>, store::StoreError> {
        let subject = format!("user:{user}");
        let bindings = self.inner.store.role_bindings().await?;
        Ok(bindings
            .iter()
            .filter(|b| {
                b.subject == subject
                    || b.subject
                        .strip_prefix("group:")
                        .is_some_and(|g| groups.iter().any(|x| x == g))
            })
            .filter_map(|b| Role::parse(&b.role))
            .collect())
    }

    /// The caller of a request, from `Authorization: Bearer` (API token or session token)
    /// or, when `cookie` is allowed (status pages, GET only), the session cookie. `Ok(None)`:
    /// no credential; `Err`: a credential that does not verify.
    pub async fn principal(
        &self,
        headers: &HeaderMap,
        cookie: bool,
    ) -> Result<Option<Principal>, String> {
        let bearer = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let token = match bearer {
            Some(t) => Some(t.to_owned()),
            None if cookie => session_cookie(headers),
            None => None,
        };
        let Some(token) = token else {
            return Ok(None);
        };
        if token.starts_with(store::API_TOKEN_PREFIX) {
            let found = self
                .inner
                .store
                .authenticate_api_token(&token)
                .await
                .map_err(|e| format!("cannot check the token: {e}"))?;
            let Some(found) = found else {
                return Err("the API token is unknown, revoked or expired".into());
            };
            let roles = self
                .roles_of(&found.user, &[])
                .await
                .map_err(|e| format!("cannot read role bindings: {e}"))?;
            return Ok(Some(Principal {
                user: found.user,
                roles,
                via: Via::ApiToken(found.id),
            }));
        }
        let Some(claims) = self.inner.keys.verify(&token) else {
            return Err("the session token is invalid or expired".into());
        };
        let user = self
            .inner
            .store
            .user(&claims.sub)
            .await
            .map_err(|e| format!("cannot read users: {e}"))?;
        if user.is_some_and(|u| u.disabled) {
            return Err("the user is disabled".into());
        }
        let roles = self
            .roles_of(&claims.sub, &claims.groups)
            .await
            .map_err(|e| format!("cannot read role bindings: {e}"))?;
        Ok(Some(Principal {
            user: claims.sub,
            roles,
            via: Via::Session,
        }))
    }

    /// The `Set-Cookie` value carrying `token`.
    pub fn session_cookie(&self, token: &str) -> String {
        format!(
            "{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
            self.inner.keys.ttl().as_secs(),
            if self.inner.config.secure_cookie {
                "; Secure"
            } else {
                ""
            }
        )
    }

    /// The `Set-Cookie` value that clears the session cookie.
    pub fn clear_cookie(&self) -> String {
        format!(
            "{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
            if self.inner.config.secure_cookie {
                "; Secure"
            } else {
                ""
            }
        )
    }
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}
