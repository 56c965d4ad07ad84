//! `POST /api/v1/agents/enroll`: a one-time token and a node name in, the node's credential
//! out. Every attempt is audited as `node.enroll` (never with the token).

use super::LinkState;
use super::error::error;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use state::wire::{EnrollRequest, EnrollResponse, PROTOCOL_VERSION, valid_node_name};
use std::net::SocketAddr;
use store::{AuditRecord, StoreError};

pub(crate) async fn enroll(
    State(state): State<LinkState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            audit(&state, peer, "-", "denied", "body_refused").await;
            return error(
                status,
                "body_refused",
                "the request body could not be read (at most 4 KiB)",
            );
        }
    };
    let request: EnrollRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(_) => {
            audit(&state, peer, "-", "denied", "malformed").await;
            return error(
                StatusCode::BAD_REQUEST,
                "malformed",
                "expected a JSON enrollment request {v, node, token}",
            );
        }
    };
    if request.v != PROTOCOL_VERSION {
        audit(&state, peer, "-", "denied", "version").await;
        return error(
            StatusCode::BAD_REQUEST,
            "version",
            &format!("protocol version {PROTOCOL_VERSION} expected"),
        );
    }
    if !valid_node_name(&request.node) {
        audit(&state, peer, "-", "denied", "invalid_node_name").await;
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_node_name",
            state::wire::NODE_NAME_RULE,
        );
    }
    let node = request.node;
    match state
        .store
        .redeem_enrollment_token(&request.token, &node)
        .await
    {
        Ok(credential) => {
            tracing::info!(%node, %peer, "node enrolled");
            audit(&state, peer, &node, "ok", "enrolled").await;
            (
                StatusCode::OK,
                Json(EnrollResponse {
                    v: PROTOCOL_VERSION,
                    node,
                    credential,
                }),
            )
                .into_response()
        }
        Err(StoreError::TokenRefused { reason }) => {
            tracing::warn!(%node, %peer, reason = reason.code(), "enrollment refused");
            audit(&state, peer, &node, "denied", reason.code()).await;
            error(StatusCode::UNAUTHORIZED, reason.code(), &reason.to_string())
        }
        Err(e) => {
            tracing::error!(%node, %peer, error = %e, "enrollment failed");
            audit(&state, peer, &node, "failed", "internal").await;
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "enrollment failed on the server",
            )
        }
    }
}

/// Appends `node.enroll` to the audit log; a failure to audit is logged, not fatal.
async fn audit(state: &LinkState, peer: SocketAddr, node: &str, outcome: &str, reason: &str) {
    let record = AuditRecord {
        actor: format!("agent:{node}"),
        action: "node.enroll".into(),
        target: node.to_owned(),
        commit: None,
        outcome: outcome.into(),
        details: json!({"peer": peer.ip().to_string(), "reason": reason}),
    };
    if let Err(e) = state.store.audit_append(&record).await {
        tracing::error!(error = %e, "cannot audit an enrollment attempt");
    }
}
