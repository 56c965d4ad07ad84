//! `GET/POST /login` and `POST /logout`: the status page's sign-in form. Signing in sets
//! the session cookie (HttpOnly, SameSite=Strict, Secure over HTTPS), which authenticates
//! page reads only (the API takes bearer tokens); the same rate limits and audit entries as
//! `POST /api/v1/login` apply.

use super::WebState;
use super::layout::{Nav, page};
use crate::auth::LoginError;
use crate::http::access::PeerAddr;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct NextParam {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    user: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// Only same-site paths are followed after signing in (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

fn form(next: &str, user: &str, problem: Option<&str>) -> Markup {
    let body = html! {
        h1 { "Sign in" }
        @if let Some(problem) = problem {
            p class="notice" role="alert" id="login-problem" { (problem) }
        }
        form method="post" action="/login" class="login" {
            input type="hidden" name="next" value=(next);
            p {
                label for="user" { "User name" }
                br;
                input id="user" name="user" type="text" autocomplete="username" required value=(user);
            }
            p {
                label for="password" { "Password" }
                br;
                input id="password" name="password" type="password" autocomplete="current-password" required;
            }
            p { button type="submit" { "Sign in" } }
        }
    };
    page("Sign in", Nav::None, body)
}

pub async fn show(Query(q): Query<NextParam>) -> Markup {
    form(&safe_next(q.next.as_deref()), "", None)
}

pub async fn submit(
    State(st): State<WebState>,
    PeerAddr(addr): PeerAddr,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    let Some(auth) = &st.auth else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            form(
                &next,
                &f.user,
                Some("Signing in is not configured on this reconciler."),
            ),
        )
            .into_response();
    };
    match auth.login(&f.user, &f.password, addr).await {
        Ok(ok) => {
            let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, next)]).into_response();
            if let Ok(cookie) = HeaderValue::from_str(&auth.session_cookie(&ok.token)) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(LoginError::Invalid) => (
            StatusCode::UNAUTHORIZED,
            form(&next, &f.user, Some("Invalid user name or password.")),
        )
            .into_response(),
        Err(e @ LoginError::Limited(wait)) => {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                form(&next, &f.user, Some(&e.to_string())),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            response
        }
        Err(LoginError::Unavailable(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            form(
                &next,
                &f.user,
                Some("Signing in is not possible right now; try again later."),
            ),
        )
            .into_response(),
    }
}

pub async fn logout(State(st): State<WebState>) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/login")]).into_response();
    if let Some(auth) = &st.auth
        && let Ok(cookie) = HeaderValue::from_str(&auth.clear_cookie())
    {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}
