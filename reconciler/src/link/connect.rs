//! `GET /api/v1/agents/connect`: the bearer credential is checked before the WebSocket
//! upgrade; only an authenticated node gets a socket (frame limit `MAX_FRAME_BYTES`).

use super::error::error;
use super::{LinkState, session};
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use serde_json::json;
use state::wire::MAX_FRAME_BYTES;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use store::AuditRecord;

/// The credential of `Authorization: Bearer <credential>`, if present.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim())
        .filter(|c| !c.is_empty())
}

pub(crate) async fn connect(
    State(state): State<LinkState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let node = match bearer(&headers) {
        None => None,
        Some(credential) => match state.store.authenticate_node(credential).await {
            Ok(node) => node,
            Err(e) => {
                tracing::error!(%peer, error = %e, "cannot authenticate an agent");
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "authentication failed on the server",
                );
            }
        },
    };
    let Some(node) = node else {
        state.stats.refused_connects.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%peer, "agent connection refused: no valid credential");
        let record = AuditRecord {
            actor: "anonymous".into(),
            action: "node.connect".into(),
            target: "-".into(),
            commit: None,
            outcome: "denied".into(),
            details: json!({"peer": peer.ip().to_string(), "reason": "bad_credential"}),
        };
        if let Err(e) = state.store.audit_append(&record).await {
            tracing::error!(error = %e, "cannot audit a refused connection");
        }
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid node credential is required (Authorization: Bearer <credential>)",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return response;
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    upgrade
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| session::run(state, node, peer, socket))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_credentials() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        for (value, expected) in [
            ("Bearer csnc_x", Some("csnc_x")),
            ("bearer  csnc_x ", Some("csnc_x")),
            ("Basic abc", None),
            ("Bearer ", None),
            ("Bearer", None),
        ] {
            headers.insert(header::AUTHORIZATION, value.parse().expect("header"));
            assert_eq!(bearer(&headers), expected, "{value}");
        }
    }
}
