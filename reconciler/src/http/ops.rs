//! Operations routes: liveness, readiness and Prometheus metrics.

use super::dto::v1::{ErrorBody, Health};
use super::error::error_response;
use super::state::ApiState;
use crate::metrics::CONTENT_TYPE;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// How long readiness waits for the store.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    description = "The process is alive: always 200.",
    responses((status = 200, body = Health))
)]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    description = "200 when the store answers a trivial query and the engine is ready; \
                   503 with code `not_ready` and the reason otherwise.",
    responses(
        (status = 200, body = Health),
        (status = 503, body = ErrorBody),
    )
)]
pub async fn readyz(State(st): State<ApiState>) -> Response {
    let not_ready =
        |message: String| error_response(StatusCode::SERVICE_UNAVAILABLE, "not_ready", message);
    match tokio::time::timeout(STORE_PROBE_TIMEOUT, st.store.ping()).await {
        Err(_) => return not_ready("the store did not answer within 2 s".into()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the store does not answer");
            return not_ready("the store does not answer".into());
        }
        Ok(Ok(())) => {}
    }
    if !st.live.ready() {
        return not_ready("the engine is not ready".into());
    }
    Json(Health {
        status: "ready".into(),
    })
    .into_response()
}

#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    description = "Prometheus metrics (OpenMetrics text).",
    responses((status = 200, body = String,
               content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"))
)]
pub async fn metrics(State(st): State<ApiState>) -> Response {
    // Gauges the engine owns are refreshed at scrape time.
    st.metrics.set_queue_depth(st.live.queue_depth());
    st.metrics.set_connected_agents(st.live.connected().len());
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], st.metrics.encode()).into_response()
}
