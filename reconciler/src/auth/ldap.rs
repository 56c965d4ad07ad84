//! LDAP bind authentication: the user's DN is built from a template, a simple bind with the
//! password proves who they are, and (optionally) a search as that user names their groups
//! for `group:` role bindings. Plain `ldap://` or `ldaps://` (rustls); values are escaped
//! for DNs and filters; empty passwords are refused before any request (an empty simple
//! bind is an unauthenticated bind that servers accept).

use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry, dn_escape, ldap_escape};
use serde::Deserialize;
use std::time::Duration;

/// Where and how to bind.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldap://HOST:PORT` or `ldaps://HOST:PORT`.
    pub url: String,
    /// The user's DN with `{user}` in place of the (escaped) name, e.g.
    /// `uid={user},ou=people,dc=example,dc=org`.
    pub user_dn: String,
    /// Where to look for groups (e.g. `ou=groups,dc=example,dc=org`); none: no groups.
    #[serde(default)]
    pub group_base: Option<String>,
    /// The group filter with `{dn}` for the user's DN and `{user}` for the name; the
    /// default suits `groupOfNames` and `posixGroup`.
    #[serde(default = "default_group_filter")]
    pub group_filter: String,
    /// Seconds to wait for the server.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_group_filter() -> String {
    "(|(member={dn})(memberUid={user}))".into()
}

fn default_timeout() -> u64 {
    5
}

/// Why a directory sign-in did not happen.
#[derive(Debug, thiserror::Error)]
pub enum LdapError {
    /// Wrong name or password (or an empty password).
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("the directory at {url} cannot be reached: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("the directory refused the group search: {0}")]
    Search(String),
}

/// `invalidCredentials` (RFC 4511).
const INVALID_CREDENTIALS: u32 = 49;

impl LdapConfig {
    /// Binds as `user` with `password`; on success, the user's groups (their `cn`).
    pub async fn authenticate(&self, user: &str, password: &str) -> Result<Vec<String>, LdapError> {
        if password.is_empty() || user.is_empty() {
            return Err(LdapError::InvalidCredentials);
        }
        let unreachable = |detail: String| LdapError::Unreachable {
            url: self.url.clone(),
            detail,
        };
        let settings =
            LdapConnSettings::new().set_conn_timeout(Duration::from_secs(self.timeout_secs));
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.url)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        ldap3::drive!(conn);
        let dn = self.user_dn.replace("{user}", &dn_escape(user));
        let bound = ldap
            .with_timeout(Duration::from_secs(self.timeout_secs))
            .simple_bind(&dn, password)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        if bound.rc == INVALID_CREDENTIALS {
            let _ = ldap.unbind().await;
            return Err(LdapError::InvalidCredentials);
        }
        if bound.rc != 0 {
            let _ = ldap.unbind().await;
            return Err(unreachable(format!("bind answered {bound}")));
        }
        let mut groups = Vec::new();
        if let Some(base) = &self.group_base {
            let filter = self
                .group_filter
                .replace("{dn}", &ldap_escape(&dn))
                .replace("{user}", &ldap_escape(user));
            let (entries, _) = ldap
                .with_timeout(Duration::from_secs(self.timeout_secs))
                .search(base, Scope::Subtree, &filter, vec!["cn"])
                .await
                .and_then(|r| r.success())
                .map_err(|e| LdapError::Search(e.to_string()))?;
            for entry in entries {
                let entry = SearchEntry::construct(entry);
                if let Some(cns) = entry.attrs.get("cn") {
                    groups.extend(cns.iter().cloned());
                }
            }
            groups.sort();
            groups.dedup();
        }
        let _ = ldap.unbind().await;
        Ok(groups)
    }
}
