//! The one gate in front of every route: looks the matched route up in the access table
//! ([`super::rbac`]), identifies the caller when the rule needs it and answers 401 (API, no
//! or bad credential), a redirect to the sign-in page (status page, no credential) or 403
//! (signed in without the role). The caller, when known, is put in the request's
//! extensions for handlers (audit actors).

use super::rbac::{self, Access};
use super::{Auth, Permission, Principal};
use crate::http::error_response;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The middleware (`axum::middleware::from_fn_with_state(auth, enforce)`).
pub async fn enforce(State(auth): State<Auth>, mut request: Request, next: Next) -> Response {
    let Some(path) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
    else {
        // No route matched: the fallback answers 404.
        return next.run(request).await;
    };
    let Some(rule) = rbac::lookup(request.method(), &path) else {
        tracing::error!(method = %request.method(), %path, "route missing from the access table; refused");
        return error_response(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this route is not in the access table".into(),
        )
        .into_response();
    };
    let (permission, page) = match rule.access {
        Access::Public | Access::Credential(_) => return next.run(request).await,
        Access::SignedIn => (None, false),
        Access::Api(p) => (Some(p), false),
        Access::Page(p) => (Some(p), true),
    };
    // Cookies only authenticate page reads: API writes need a bearer token (no CSRF).
    let cookie = page && (request.method() == Method::GET || request.method() == Method::HEAD);
    let principal = match auth.principal(request.headers(), cookie).await {
        Ok(p) => p,
        Err(reason) if page => {
            return to_login(&request, Some(&reason), &auth);
        }
        Err(reason) => return unauthorized(&reason),
    };
    let anonymous_read = auth.config().anonymous_read;
    match (&principal, permission) {
        // Open reads are open to everyone, signed in with a role or not.
        (_, Some(Permission::Read)) if anonymous_read => {}
        (None, _) if page => return to_login(&request, None, &auth),
        (None, _) => {
            return unauthorized(
                "sign in: `Authorization: Bearer TOKEN` (an API token or a session token from POST /api/v1/login)",
            );
        }
        (Some(p), Some(permission)) if !p.may(permission) => {
            let roles: Vec<&str> = p.roles.iter().map(|r| r.as_str()).collect();
            let message = format!(
                "user `{}` (roles: {}) may not {} here: needs the `{}` permission",
                p.user,
                if roles.is_empty() {
                    "none".to_owned()
                } else {
                    roles.join(", ")
                },
                describe(rule.method),
                permission.as_str()
            );
            return if page {
                forbidden_page(&message)
            } else {
                error_response(StatusCode::FORBIDDEN, "forbidden", message).into_response()
            };
        }
        _ => {}
    }
    if let Some(principal) = &principal {
        request
            .extensions_mut()
            .insert::<Principal>(principal.clone());
    }
    // Pages show who is signed in (the page shell reads it through `current`).
    CALLER.scope(principal, next.run(request)).await
}

tokio::task_local! {
    /// The caller of the request being answered, for the page shell.
    static CALLER: Option<Principal>;
}

/// The signed-in caller of the request being answered, when there is one (outside a
/// request: `None`).
pub fn current() -> Option<Principal> {
    CALLER.try_with(Clone::clone).ok().flatten()
}

fn describe(method: &str) -> &'static str {
    if method == "GET" { "read" } else { "act" }
}

fn unauthorized(message: &str) -> Response {
    let mut response = error_response(StatusCode::UNAUTHORIZED, "unauthorized", message.to_owned())
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"centossrv\""),
    );
    response
}

/// 303 to `/login?next=PATH`, clearing a stale cookie.
fn to_login(request: &Request, reason: Option<&str>, auth: &Auth) -> Response {
    let next = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let location = format!(
        "/login?next={}",
        percent_encoding::utf8_percent_encode(&next, percent_encoding::NON_ALPHANUMERIC)
    );
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
    if reason.is_some()
        && let Ok(value) = HeaderValue::from_str(&auth.clear_cookie())
    {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn forbidden_page(message: &str) -> Response {
    let body = maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "Forbidden — centossrv" } }
            body { main { h1 { "Forbidden" } p { (message) } p { a href="/" { "Back to the overview" } } } }
        }
    };
    (StatusCode::FORBIDDEN, body).into_response()
}
