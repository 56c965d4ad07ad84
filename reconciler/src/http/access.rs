//! The API's write side and signing in: sessions and API tokens, users and role bindings
//! (admin), and the operators' controls (re-sync, enrollment tokens, holds, releasing held
//! applies). Who may call which is in `auth::rbac`; the middleware has checked it before a
//! handler runs, and handlers read the caller from the request's extensions. Every change
//! is audited with the caller as actor.

use super::dto::v1::ErrorBody;
use super::error::ApiError;
use super::state::{ApiState, Control};
use crate::auth::{LoginError, Principal, Role, actor_of, password};
use crate::engine::Event;
use axum::Json;
use axum::extract::{Extension, FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use store::AuditRecord;
use utoipa::ToSchema;

/// A JSON request body; a malformed or mistyped one is a 400 in the API's error shape
/// (axum's own rejection is plain text).
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        Json::<T>::from_request(request, state)
            .await
            .map(|Json(value)| Body(value))
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
    }
}

/// The peer's address, when the server records it (`ConnectInfo`).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerAddr {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(PeerAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub user: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    pub user: String,
    /// The session token: `Authorization: Bearer TOKEN`.
    pub token: String,
    /// Seconds since the epoch.
    pub expires_at: u64,
    pub roles: Vec<Role>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    pub user: String,
    pub roles: Vec<Role>,
    /// `session` or `token:<id>`.
    pub via: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for (shown in listings).
    pub label: String,
    /// Days until it expires (1 to 366; default 90).
    #[serde(default)]
    pub days: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub user: String,
    pub label: String,
    pub created_at: String,
    pub expires_at: String,
    pub revoked_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The token's text: shown this once, stored only as a hash.
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub items: Vec<TokenInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserInfo {
    pub name: String,
    /// `local` (password) or `directory` (LDAP).
    pub kind: String,
    pub disabled: bool,
    pub created_at: String,
    /// The role bound by the CLI or API (`origin: cli`), if any.
    pub role: Option<Role>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub items: Vec<UserInfo>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    /// At least 12 characters; none: a directory (LDAP) user.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub role: Option<Role>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    /// The role; `null` removes the binding.
    pub role: Option<Role>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Binding {
    /// `user:NAME` or `group:NAME`.
    pub subject: String,
    /// `cli` or `git` (access.yaml).
    pub origin: String,
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BindingList {
    pub items: Vec<Binding>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEnrollmentToken {
    /// Seconds until it expires (default 3600).
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// Only this node name can redeem the token, and it may re-enroll a node that is
    /// enrolled already. Without it, the token enrolls a node that holds no credential.
    #[serde(default)]
    pub node: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentToken {
    /// Shown this once, stored only as a hash.
    pub token: String,
    pub ttl_seconds: u64,
    /// The node the token is bound to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHold {
    /// Why (kept in the audit log and shown on the status page).
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Hold {
    pub node: String,
    pub reason: String,
    pub held_by: String,
    pub held_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HoldList {
    pub items: Vec<Hold>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub accepted: bool,
    pub message: String,
}

fn auth(st: &ApiState) -> Result<&crate::auth::Auth, ApiError> {
    st.auth
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("signing in is not configured".into()))
}

fn control(st: &ApiState) -> Result<&Control, ApiError> {
    st.control
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("no engine runs behind this API".into()))
}

async fn audit(
    st: &ApiState,
    who: Option<&Principal>,
    action: &str,
    target: &str,
    outcome: &str,
    details: serde_json::Value,
) -> Result<(), ApiError> {
    st.store
        .audit_append(&AuditRecord {
            actor: actor_of(who),
            action: action.into(),
            target: target.into(),
            commit: None,
            outcome: outcome.into(),
            details,
        })
        .await?;
    Ok(())
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn token_info(t: store::ApiToken) -> TokenInfo {
    TokenInfo {
        id: t.id,
        user: t.user,
        label: t.label,
        created_at: time(t.created_at),
        expires_at: time(t.expires_at),
        revoked_at: t.revoked_at.map(time),
    }
}

#[utoipa::path(
    post, path = "/login", tag = "access",
    description = "Signs in with a local password or through the directory (LDAP). Failures are rate-limited per user and per address.",
    request_body = LoginRequest,
    responses(
        (status = 200, body = LoginResponse),
        (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "too many failures; see Retry-After"),
        (status = 503, body = ErrorBody),
    )
)]
pub async fn login(
    State(st): State<ApiState>,
    PeerAddr(addr): PeerAddr,
    Body(body): Body<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let auth = auth(&st)?;
    match auth.login(&body.user, &body.password, addr).await {
        Ok(ok) => Ok(Json(LoginResponse {
            user: ok.user,
            token: ok.token,
            expires_at: ok.expires_at,
            roles: ok.roles.into_iter().collect(),
        })),
        Err(LoginError::Invalid) => Err(ApiError::Unauthorized(LoginError::Invalid.to_string())),
        Err(e @ LoginError::Limited(wait)) => Err(ApiError::TooMany(e.to_string(), wait)),
        Err(LoginError::Unavailable(m)) => Err(ApiError::Unavailable(m)),
    }
}

#[utoipa::path(
    get, path = "/whoami", tag = "access",
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody))
)]
pub async fn whoami(Extension(who): Extension<Principal>) -> Json<WhoAmI> {
    Json(WhoAmI {
        user: who.user,
        roles: who.roles.into_iter().collect(),
        via: match who.via {
            crate::auth::Via::Session => "session".into(),
            crate::auth::Via::ApiToken(id) => format!("token:{id}"),
        },
    })
}

#[utoipa::path(
    get, path = "/tokens", tag = "access",
    description = "The caller's API tokens; every user's for admins.",
    responses((status = 200, body = TokenList), (status = 401, body = ErrorBody))
)]
pub async fn list_tokens(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<TokenList>, ApiError> {
    let user = (!who.is_admin()).then_some(who.user.as_str());
    let items = st.store.api_tokens(user).await?;
    Ok(Json(TokenList {
        items: items.into_iter().map(token_info).collect(),
    }))
}

#[utoipa::path(
    post, path = "/tokens", tag = "access",
    description = "Creates an API token for the caller. Its text is in this answer only.",
    request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
pub async fn create_token(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    Body(body): Body<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let days = body.days.unwrap_or(90);
    if !(1..=366).contains(&days) {
        return Err(ApiError::BadRequest("`days` must be 1 to 366".into()));
    }
    let (record, text) = st
        .store
        .create_api_token(
            &who.user,
            &body.label,
            Duration::from_secs(u64::from(days) * 86_400),
        )
        .await
        .map_err(|e| match e {
            store::StoreError::Invalid { .. } => ApiError::BadRequest(e.to_string()),
            other => ApiError::Store(other),
        })?;
    audit(
        &st,
        Some(&who),
        "token.create",
        &who.user,
        "ok",
        serde_json::json!({"id": record.id, "label": record.label, "days": days}),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            info: token_info(record),
            token: text,
        }),
    ))
}

#[utoipa::path(
    delete, path = "/tokens/{id}", tag = "access",
    params(("id" = String, Path, description = "the token's id (tok_...)")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody))
)]
pub async fn revoke_token(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let token = st.store.api_token(&id).await?;
    // Someone else's token is "not found" to a non-admin (no probing of ids).
    let Some(token) = token.filter(|t| t.user == who.user || who.is_admin()) else {
        return Err(ApiError::NotFound(format!("no token `{id}`")));
    };
    if !st.store.revoke_api_token(&token.id).await? {
        return Err(ApiError::NotFound(format!(
            "token `{id}` is already revoked"
        )));
    }
    audit(
        &st,
        Some(&who),
        "token.revoke",
        &token.user,
        "ok",
        serde_json::json!({"id": token.id}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get, path = "/users", tag = "access",
    responses((status = 200, body = UserList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn list_users(State(st): State<ApiState>) -> Result<Json<UserList>, ApiError> {
    let users = st.store.users().await?;
    let bindings = st.store.role_bindings().await?;
    let items = users
        .into_iter()
        .map(|u| {
            let subject = format!("user:{}", u.name);
            UserInfo {
                role: bindings
                    .iter()
                    .find(|b| b.subject == subject && b.origin == "cli")
                    .and_then(|b| Role::parse(&b.role)),
                kind: if u.password_hash.is_some() {
                    "local"
                } else {
                    "directory"
                }
                .into(),
                disabled: u.disabled,
                created_at: time(u.created_at),
                name: u.name,
            }
        })
        .collect();
    Ok(Json(UserList { items }))
}

#[utoipa::path(
    post, path = "/users", tag = "access",
    request_body = NewUser,
    responses((status = 201, body = UserInfo), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn create_user(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    Body(body): Body<NewUser>,
) -> Result<(StatusCode, Json<UserInfo>), ApiError> {
    store::check_user_name(&body.name).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let hash = match body.password {
        Some(pw) => Some(
            tokio::task::spawn_blocking(move || password::hash(&pw))
                .await
                .map_err(|e| ApiError::Unavailable(e.to_string()))?
                .map_err(|e| ApiError::BadRequest(e.to_string()))?,
        ),
        None => None,
    };
    st.store
        .create_user(&body.name, hash.as_deref())
        .await
        .map_err(|e| match e {
            store::StoreError::Invalid { .. } => ApiError::Conflict(e.to_string()),
            other => ApiError::Store(other),
        })?;
    if let Some(role) = body.role {
        st.store
            .bind_role(&format!("user:{}", body.name), "cli", role.as_str())
            .await?;
    }
    audit(
        &st,
        Some(&who),
        "user.create",
        &body.name,
        "ok",
        serde_json::json!({"role": body.role, "local": hash.is_some()}),
    )
    .await?;
    let user = st
        .store
        .user(&body.name)
        .await?
        .ok_or_else(|| ApiError::NotFound(body.name.clone()))?;
    Ok((
        StatusCode::CREATED,
        Json(UserInfo {
            kind: if user.password_hash.is_some() {
                "local"
            } else {
                "directory"
            }
            .into(),
            disabled: user.disabled,
            created_at: time(user.created_at),
            name: user.name,
            role: body.role,
        }),
    ))
}

#[utoipa::path(
    delete, path = "/users/{name}", tag = "access",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn delete_user(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if name == who.user {
        return Err(ApiError::BadRequest("you cannot delete yourself".into()));
    }
    if !st.store.delete_user(&name).await? {
        return Err(ApiError::NotFound(format!("no user `{name}`")));
    }
    audit(
        &st,
        Some(&who),
        "user.delete",
        &name,
        "ok",
        serde_json::json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    put, path = "/users/{name}/role", tag = "access",
    params(("name" = String, Path, description = "a local or directory user name")),
    request_body = SetRole,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn set_user_role(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    Body(body): Body<SetRole>,
) -> Result<StatusCode, ApiError> {
    store::check_user_name(&name).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let subject = format!("user:{name}");
    match body.role {
        Some(role) => st.store.bind_role(&subject, "cli", role.as_str()).await?,
        None => {
            st.store.unbind_role(&subject, "cli").await?;
        }
    }
    audit(
        &st,
        Some(&who),
        "user.role",
        &name,
        "ok",
        serde_json::json!({"role": body.role}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get, path = "/role-bindings", tag = "access",
    responses((status = 200, body = BindingList), (status = 403, body = ErrorBody))
)]
pub async fn list_bindings(State(st): State<ApiState>) -> Result<Json<BindingList>, ApiError> {
    let items = st
        .store
        .role_bindings()
        .await?
        .into_iter()
        .map(|b| Binding {
            subject: b.subject,
            origin: b.origin,
            role: b.role,
        })
        .collect();
    Ok(Json(BindingList { items }))
}

#[utoipa::path(
    post, path = "/sync", tag = "control",
    description = "Re-reads the tracked branch now (as a push webhook would).",
    responses((status = 202, body = Accepted), (status = 503, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn sync(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let control = control(&st)?;
    match &control.poller {
        Some(poller) => poller.poke(),
        None => control
            .events
            .try_send(Event::SourceChanged)
            .map_err(|e| ApiError::Unavailable(format!("the engine's queue: {e}")))?,
    }
    audit(
        &st,
        Some(&who),
        "sync.request",
        "fleet",
        "ok",
        serde_json::json!({}),
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            accepted: true,
            message: "the tracked branch will be read again".into(),
        }),
    ))
}

#[utoipa::path(
    post, path = "/enrollment-tokens", tag = "control",
    request_body = NewEnrollmentToken,
    responses((status = 201, body = EnrollmentToken), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn create_enrollment_token(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    Body(body): Body<NewEnrollmentToken>,
) -> Result<(StatusCode, Json<EnrollmentToken>), ApiError> {
    let ttl = body.ttl_seconds.unwrap_or(3600);
    if let Some(node) = &body.node
        && !state::wire::valid_node_name(node)
    {
        return Err(ApiError::BadRequest(format!(
            "`{}` is not a node name: {}",
            node.escape_debug(),
            state::wire::NODE_NAME_RULE
        )));
    }
    let token = st
        .store
        .create_enrollment_token(
            Duration::from_secs(ttl),
            &actor_of(Some(&who)),
            body.node.as_deref(),
        )
        .await
        .map_err(|e| match e {
            store::StoreError::Invalid { .. } => ApiError::BadRequest(e.to_string()),
            other => ApiError::Store(other),
        })?;
    audit(
        &st,
        Some(&who),
        "enroll.token",
        &body
            .node
            .as_ref()
            .map_or_else(|| "fleet".to_owned(), |n| format!("node:{n}")),
        "ok",
        serde_json::json!({"ttl_seconds": ttl, "node": body.node}),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(EnrollmentToken {
            token,
            ttl_seconds: ttl,
            node: body.node,
        }),
    ))
}

#[utoipa::path(
    get, path = "/holds", tag = "control",
    responses((status = 200, body = HoldList))
)]
pub async fn list_holds(State(st): State<ApiState>) -> Result<Json<HoldList>, ApiError> {
    let items = st
        .store
        .holds()
        .await?
        .into_iter()
        .map(|h| Hold {
            node: h.node,
            reason: h.reason,
            held_by: h.held_by,
            held_at: time(h.held_at),
        })
        .collect();
    Ok(Json(HoldList { items }))
}

#[utoipa::path(
    put, path = "/nodes/{name}/hold", tag = "control",
    description = "Break-glass hold: nothing is applied to the node until the hold is lifted (observation and drift reports go on).",
    params(("name" = String, Path)),
    request_body = NewHold,
    responses((status = 200, body = Hold), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn set_hold(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    Body(body): Body<NewHold>,
) -> Result<Json<Hold>, ApiError> {
    if body.reason.trim().is_empty() || body.reason.len() > 500 {
        return Err(ApiError::BadRequest("`reason`: 1 to 500 characters".into()));
    }
    if st.store.node(&name).await?.is_none() {
        return Err(ApiError::NotFound(format!("no node `{name}`")));
    }
    let hold = st
        .store
        .set_hold(&name, &body.reason, &actor_of(Some(&who)))
        .await?;
    if let Some(control) = &st.control {
        let _ = control
            .events
            .send(Event::HoldChanged { node: name.clone() })
            .await;
    }
    audit(
        &st,
        Some(&who),
        "node.hold",
        &name,
        "ok",
        serde_json::json!({"reason": body.reason}),
    )
    .await?;
    Ok(Json(Hold {
        node: hold.node,
        reason: hold.reason,
        held_by: hold.held_by,
        held_at: time(hold.held_at),
    }))
}

#[utoipa::path(
    delete, path = "/nodes/{name}/hold", tag = "control",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn clear_hold(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !st.store.clear_hold(&name).await? {
        return Err(ApiError::NotFound(format!("node `{name}` is not held")));
    }
    if let Some(control) = &st.control {
        let _ = control
            .events
            .send(Event::HoldChanged { node: name.clone() })
            .await;
    }
    audit(
        &st,
        Some(&who),
        "node.unhold",
        &name,
        "ok",
        serde_json::json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post, path = "/nodes/{name}/release", tag = "control",
    description = "Releases an apply held because the node changed since its plan was approved (fleet setting `stale_apply: hold`): the engine observes the node again, plans, approves the new plan and applies it.",
    params(("name" = String, Path)),
    responses((status = 202, body = Accepted), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn release(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let control = control(&st)?;
    if st.store.node(&name).await?.is_none() {
        return Err(ApiError::NotFound(format!("no node `{name}`")));
    }
    control
        .events
        .send(Event::Release {
            node: name.clone(),
            actor: actor_of(Some(&who)),
        })
        .await
        .map_err(|_| ApiError::Unavailable("the engine has stopped".into()))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            accepted: true,
            message: format!("the held apply of `{name}`, if any, is released"),
        }),
    ))
}
