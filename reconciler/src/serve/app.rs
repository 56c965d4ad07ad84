//! The whole HTTP service as one router: agent link, API, status page and webhooks, behind
//! the access gate (`auth::enforce`). `serve` runs it; the access matrix test builds the same
//! thing, so what is tested is what is served.

use crate::auth::{Auth, enforce};
use crate::http::{self, ApiState};
use crate::web::{self, WebState};
use axum::Router;

/// What the service is made of.
pub struct Parts {
    pub api: ApiState,
    pub web: WebState,
    pub auth: Auth,
    /// The agent link's router (enrollment, WebSocket).
    pub link: Option<Router>,
    /// Webhook routers (push webhook, forge webhooks).
    pub hooks: Vec<Router>,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts")
            .field("api", &self.api)
            .field("auth", &self.auth)
            .field("hooks", &self.hooks.len())
            .finish_non_exhaustive()
    }
}

/// Every route behind the access gate.
pub fn router(parts: Parts) -> Router {
    let Parts {
        mut api,
        web,
        auth,
        link,
        hooks,
    } = parts;
    api.auth = Some(auth.clone());
    let mut app = link
        .unwrap_or_default()
        .merge(http::api::router(api))
        .merge(web::router(web.with_auth(auth.clone())));
    for hook in hooks {
        app = app.merge(hook);
    }
    app.layer(axum::middleware::from_fn_with_state(auth, enforce))
}
