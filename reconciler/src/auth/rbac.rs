//! The access table: every route the reconciler serves, with what it takes to call it. The
//! middleware ([`super::enforce`]) reads nothing else; a route missing here is refused
//! (403) and a test fails; `docs/access.md`'s matrix is generated from this table.

use super::{Permission, Role};
use axum::http::Method;

/// What it takes to call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: probes, metrics, the OpenAPI document, signing in, static assets.
    Public,
    /// Authenticated by the handler with a credential that is not a user's: an enrollment
    /// token, a node credential or a webhook signature. Roles play no part.
    Credential(&'static str),
    /// Any signed-in user (bearer token), whatever their roles.
    SignedIn,
    /// An API route: a bearer token (API token or session token) whose roles grant this.
    Api(Permission),
    /// A status page: a session cookie or bearer token whose roles grant this. With
    /// anonymous read on, `Page(Read)` (and `Api(Read)`) routes are open to everyone.
    Page(Permission),
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub method: &'static str,
    /// The route as registered (`{name}` for path parameters).
    pub path: &'static str,
    pub access: Access,
    /// What the route does (for the generated docs).
    pub summary: &'static str,
}

const fn rule(
    method: &'static str,
    path: &'static str,
    access: Access,
    summary: &'static str,
) -> Rule {
    Rule {
        method,
        path,
        access,
        summary,
    }
}

use Access::{Api, Credential, Page, Public, SignedIn};
use Permission::{Administer, Audit, Operate, Read};

/// Every route.
pub const RULES: &[Rule] = &[
    // Operations.
    rule("GET", "/healthz", Public, "liveness probe"),
    rule("GET", "/readyz", Public, "readiness probe"),
    rule(
        "GET",
        "/metrics",
        Public,
        "Prometheus metrics (no secrets, no per-user data)",
    ),
    rule(
        "GET",
        "/api/openapi.json",
        Public,
        "the API's OpenAPI document",
    ),
    // Signing in.
    rule(
        "POST",
        "/api/v1/login",
        Public,
        "exchange a user name and password for a session token",
    ),
    rule(
        "GET",
        "/api/v1/whoami",
        SignedIn,
        "the caller's name and roles",
    ),
    rule(
        "GET",
        "/api/v1/tokens",
        SignedIn,
        "the caller's API tokens (every user's for admins)",
    ),
    rule(
        "POST",
        "/api/v1/tokens",
        SignedIn,
        "create an API token for the caller (shown once)",
    ),
    rule(
        "DELETE",
        "/api/v1/tokens/{id}",
        SignedIn,
        "revoke one of the caller's tokens (any, for admins)",
    ),
    // Reading the fleet.
    rule("GET", "/api/v1/fleet", Api(Read), "fleet summary"),
    rule("GET", "/api/v1/nodes", Api(Read), "nodes with filters"),
    rule("GET", "/api/v1/nodes/{name}", Api(Read), "one node"),
    rule(
        "GET",
        "/api/v1/nodes/{name}/runs",
        Api(Read),
        "a node's apply runs",
    ),
    rule(
        "GET",
        "/api/v1/nodes/{name}/drift",
        Api(Read),
        "a node's drift events",
    ),
    rule("GET", "/api/v1/commits", Api(Read), "compiled commits"),
    rule(
        "GET",
        "/api/v1/commits/{sha}",
        Api(Read),
        "one commit with diagnostics",
    ),
    rule(
        "GET",
        "/api/v1/plans",
        Api(Read),
        "approved plans of a commit",
    ),
    rule("GET", "/api/v1/runs/{id}", Api(Read), "one apply run"),
    rule("GET", "/api/v1/holds", Api(Read), "break-glass holds"),
    // The audit log.
    rule("GET", "/api/v1/audit", Api(Audit), "audit entries"),
    rule(
        "GET",
        "/api/v1/audit/verify",
        Api(Audit),
        "verify the audit hash chain",
    ),
    // Operating.
    rule(
        "POST",
        "/api/v1/sync",
        Api(Operate),
        "re-read the tracked branch now",
    ),
    rule(
        "POST",
        "/api/v1/enrollment-tokens",
        Api(Operate),
        "create an agent enrollment token (shown once)",
    ),
    rule(
        "PUT",
        "/api/v1/nodes/{name}/hold",
        Api(Operate),
        "set a break-glass hold: nothing is applied to the node",
    ),
    rule(
        "DELETE",
        "/api/v1/nodes/{name}/hold",
        Api(Operate),
        "lift a break-glass hold",
    ),
    rule(
        "POST",
        "/api/v1/nodes/{name}/release",
        Api(Operate),
        "release a held stale apply (plan again, then apply)",
    ),
    // Administering.
    rule("GET", "/api/v1/users", Api(Administer), "users"),
    rule("POST", "/api/v1/users", Api(Administer), "create a user"),
    rule(
        "DELETE",
        "/api/v1/users/{name}",
        Api(Administer),
        "delete a user with their tokens",
    ),
    rule(
        "PUT",
        "/api/v1/users/{name}/role",
        Api(Administer),
        "bind a user to a role (or unbind)",
    ),
    rule(
        "GET",
        "/api/v1/role-bindings",
        Api(Administer),
        "every role binding (CLI and Git)",
    ),
    // Agents and forges (their own credentials).
    rule(
        "POST",
        state::wire::ENROLL_PATH,
        Credential("enrollment token"),
        "agent enrollment",
    ),
    rule(
        "GET",
        state::wire::CONNECT_PATH,
        Credential("node credential"),
        "agent link (WebSocket)",
    ),
    rule(
        "POST",
        crate::webhook::PATH,
        Credential("webhook signature"),
        "generic push webhook",
    ),
    rule(
        "POST",
        crate::forge::webhook::GITHUB_PATH,
        Credential("webhook signature"),
        "GitHub webhooks",
    ),
    rule(
        "POST",
        crate::forge::webhook::GITLAB_PATH,
        Credential("webhook token"),
        "GitLab webhooks",
    ),
    // The status page.
    rule("GET", "/", Page(Read), "overview"),
    rule("GET", "/nodes", Page(Read), "node list"),
    rule("GET", "/nodes/{name}", Page(Read), "node detail"),
    rule(
        "GET",
        "/nodes/{name}/blame",
        Page(Read),
        "one resource's history on the node",
    ),
    rule(
        "GET",
        "/commits/{sha}",
        Page(Read),
        "commit with diagnostics",
    ),
    rule("GET", "/prs", Page(Read), "open pull requests' plans"),
    rule(
        "GET",
        "/events",
        Page(Read),
        "live refresh (server-sent events)",
    ),
    rule("GET", "/audit", Page(Audit), "audit log"),
    rule("GET", "/login", Public, "sign-in form"),
    rule(
        "POST",
        "/login",
        Public,
        "sign in (sets the session cookie)",
    ),
    rule(
        "POST",
        "/logout",
        Public,
        "sign out (clears the session cookie)",
    ),
    rule("GET", "/static/v1/style.css", Public, "style sheet"),
    rule("GET", "/static/v1/live.js", Public, "live refresh script"),
    rule(
        "GET",
        "/favicon.ico",
        Public,
        "no icon (204), so browsers log no error",
    ),
];

/// The rule of `method` on the registered route `path` (HEAD as GET).
pub fn lookup(method: &Method, path: &str) -> Option<&'static Rule> {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    RULES.iter().find(|r| r.method == method && r.path == path)
}

/// Whether a caller with `roles` (none: anonymous) passes `access`, given the anonymous-read
/// setting. `Credential` routes always pass here: their handlers decide.
pub fn allows(access: Access, roles: Option<&[Role]>, anonymous_read: bool) -> bool {
    match access {
        Access::Public | Access::Credential(_) => true,
        Access::SignedIn => roles.is_some(),
        Access::Api(p) | Access::Page(p) => {
            (p == Permission::Read && anonymous_read)
                || roles.is_some_and(|roles| roles.iter().any(|r| r.grants(p)))
        }
    }
}

/// `docs/access.md`'s matrix, as Markdown: one row per route, one column per caller.
pub fn markdown_matrix() -> String {
    let mut out = String::from(
        "| Method | Route | anonymous | no role | viewer | auditor | operator | admin | What |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for r in RULES {
        let cell = |roles: &[Role]| -> String {
            match r.access {
                Access::Credential(what) => what.to_owned(),
                access if allows(access, Some(roles), false) => "yes".into(),
                _ => "403".into(),
            }
        };
        let anonymous = match r.access {
            Access::Public => "yes",
            Access::Credential(what) => what,
            Access::SignedIn | Access::Api(_) if allows(r.access, None, true) => {
                "401 (yes with anonymous read)"
            }
            Access::SignedIn | Access::Api(_) => "401",
            Access::Page(_) if allows(r.access, None, true) => {
                "login page (yes with anonymous read)"
            }
            Access::Page(_) => "login page",
        };
        out.push_str(&format!(
            "| {} | `{}` | {} | {} | {} | {} | {} | {} | {} |\n",
            r.method,
            r.path,
            anonymous,
            cell(&[]),
            cell(&[Role::Viewer]),
            cell(&[Role::Auditor]),
            cell(&[Role::Operator]),
            cell(&[Role::Admin]),
            r.summary
        ));
    }
    out
}
