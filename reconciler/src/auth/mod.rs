//! Who is calling and what they may do (`docs/access.md`): roles and permissions, the one
//! access table every route is checked against ([`rbac`]), local passwords (Argon2id),
//! API tokens (in the store, hashed), signed session tokens (JWT), LDAP bind, a login
//! rate limiter, role bindings from the fleet repository, and the middleware that enforces
//! it all in front of every route.

pub mod ldap;
pub mod limiter;
pub mod login;
pub mod middleware;
pub mod password;
pub mod rbac;
pub mod session;

pub use login::{Auth, AuthConfig, LoginError, LoginOk};
pub use middleware::enforce;
pub use rbac::{Access, RULES, Rule};

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A role a user or a directory group is bound to.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads the fleet: nodes, commits, plans, runs, drift, pull request plans.
    Viewer,
    /// A viewer who also reads the audit log.
    Auditor,
    /// A viewer who also triggers re-syncs, releases held applies, manages enrollment
    /// tokens and sets break-glass holds.
    Operator,
    /// Everything, including users and role bindings.
    Admin,
}

/// Every role, in order.
pub const ROLES: [Role; 4] = [Role::Viewer, Role::Auditor, Role::Operator, Role::Admin];

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Auditor => "auditor",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        ROLES.into_iter().find(|r| r.as_str() == text)
    }

    /// Whether this role grants `permission`.
    pub fn grants(self, permission: Permission) -> bool {
        match permission {
            Permission::Read => true,
            Permission::Audit => matches!(self, Role::Auditor | Role::Admin),
            Permission::Operate => matches!(self, Role::Operator | Role::Admin),
            Permission::Administer => self == Role::Admin,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a route needs beyond being signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    Read,
    Audit,
    Operate,
    Administer,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Audit => "audit",
            Permission::Operate => "operate",
            Permission::Administer => "administer",
        }
    }
}

/// How a caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// An API token (its public id).
    ApiToken(String),
    /// A session token from `POST /api/v1/login` or the login page.
    Session,
}

/// An authenticated caller, with the roles bound to them (directly or through a group)
/// when the request arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    pub roles: BTreeSet<Role>,
    pub via: Via,
}

impl Principal {
    /// Whether any of the caller's roles grants `permission`.
    pub fn may(&self, permission: Permission) -> bool {
        self.roles.iter().any(|r| r.grants(permission))
    }

    pub fn is_admin(&self) -> bool {
        self.roles.contains(&Role::Admin)
    }
}

/// The name audit entries carry for a request: the signed-in user, or `anonymous`.
pub fn actor_of(principal: Option<&Principal>) -> String {
    principal.map_or_else(|| "anonymous".to_owned(), |p| format!("user:{}", p.user))
}
