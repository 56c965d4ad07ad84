//! The router: every route registered together with its OpenAPI description (utoipa-axum),
//! so the document served at `/api/openapi.json` lists exactly the routes served.

use super::access;
use super::error::error_response;
use super::handlers::*;
use super::ops::{__path_healthz, __path_metrics, __path_readyz, healthz, metrics, readyz};
use super::state::ApiState;
use axum::Router;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Where the OpenAPI document is served (not itself part of the document).
pub const OPENAPI_PATH: &str = "/api/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "centossrv reconciler API",
        version = "1",
        description = "Read-only view of the fleet: nodes, commits, plans, runs, drift, audit."
    ),
    tags(
        (name = "fleet"), (name = "nodes"), (name = "commits"), (name = "audit"),
        (name = "operations"), (name = "access"), (name = "control")
    ),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// Declares the bearer scheme (API tokens and session tokens) and requires it on every
/// operation the access table does not make public.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every documented route, not yet bound to a state.
fn documented() -> OpenApiRouter<ApiState> {
    let v1 = OpenApiRouter::new()
        .routes(routes!(fleet))
        .routes(routes!(list_nodes))
        .routes(routes!(get_node))
        .routes(routes!(node_runs))
        .routes(routes!(node_drift))
        .routes(routes!(list_commits))
        .routes(routes!(get_commit))
        .routes(routes!(list_plans))
        .routes(routes!(get_run))
        .routes(routes!(list_audit))
        .routes(routes!(verify_audit))
        .routes(routes!(access::login))
        .routes(routes!(access::whoami))
        .routes(routes!(access::list_tokens, access::create_token))
        .routes(routes!(access::revoke_token))
        .routes(routes!(access::list_users, access::create_user))
        .routes(routes!(access::delete_user))
        .routes(routes!(access::set_user_role))
        .routes(routes!(access::list_bindings))
        .routes(routes!(access::sync))
        .routes(routes!(access::create_enrollment_token))
        .routes(routes!(access::list_holds))
        .routes(routes!(access::set_hold, access::clear_hold))
        .routes(routes!(access::release));
    // Who may call what is decided in front of every route by `auth::enforce` with the
    // access table `auth::rbac::RULES`, applied to the whole service in `serve::run`.
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", v1)
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// The OpenAPI 3.1 document of [`router`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented().split_for_parts().1
}

/// The HTTP API over `state`: `/api/v1/...`, `/api/openapi.json`, `/healthz`, `/readyz`,
/// `/metrics`; anything else is a JSON 404.
pub fn router(state: ApiState) -> Router {
    let (routes, doc) = documented().split_for_parts();
    let doc = doc.to_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot serialize the OpenAPI document");
        "{}".to_owned()
    });
    routes
        .route(
            OPENAPI_PATH,
            get(move || {
                let doc = doc.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], doc) }
            }),
        )
        .fallback(not_found)
        .with_state(state)
}

async fn not_found(uri: Uri) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route `{}`", uri.path()),
    )
    .into_response()
}
