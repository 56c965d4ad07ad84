//! The read-only status page (`docs/status-page.md`): server-rendered HTML (maud, every
//! interpolation escaped) that works without JavaScript; with it, the overview refreshes
//! when the server's event stream (`/events`) says something changed.
//!
//! Pages: `/` overview, `/nodes` list with filters, `/nodes/{name}` detail,
//! `/nodes/{name}/blame?resource=ID` one resource's history, `/commits/{sha}`, `/prs`,
//! `/audit`. Each reads the store in a fixed number of statements, whatever the fleet's
//! size. Who may see which page is decided in front of the router by `auth::enforce` (the
//! access table); `/login` signs in with a session cookie.

mod assets;
mod audit;
mod blame;
mod commit;
mod counts;
mod error;
mod events;
mod format;
mod layout;
mod login;
mod node;
mod nodes;
mod overview;
mod prs;
mod query;

pub use events::Activity;
pub use prs::{NoPrReports, PrPlan, PrPlans, StoredPrPlans};

use crate::http::LiveView;
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::get;
use std::path::PathBuf;
use std::sync::Arc;
use store::Store;

/// What the pages read; cheap to clone.
#[derive(Clone)]
pub struct WebState {
    pub store: Store,
    pub live: Arc<dyn LiveView>,
    /// Open pull requests' plan reports.
    pub prs: Arc<dyn PrPlans>,
    /// The change watcher behind `/events`.
    pub activity: Arc<Activity>,
    /// Signing in (the login form); `None`: the form answers 503.
    pub auth: Option<crate::auth::Auth>,
    /// The Git repository commits are read from (the tracked one or its mirror), for the
    /// authors and pull requests the blame view shows; without it, commits show no author.
    pub repo: Option<PathBuf>,
    /// The overview's counts per state, reused while the store's activity mark stands.
    counts: Arc<counts::StateCounts>,
}

impl std::fmt::Debug for WebState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebState")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl WebState {
    /// Pages over `store` and the engine's `live` view, without pull request reports, with
    /// the event stream checking for changes every [`events::DEFAULT_INTERVAL`].
    pub fn new(store: Store, live: Arc<dyn LiveView>) -> WebState {
        let activity = Arc::new(Activity::new(
            store.clone(),
            Arc::clone(&live),
            events::DEFAULT_INTERVAL,
        ));
        WebState {
            store,
            live,
            prs: Arc::new(NoPrReports),
            auth: None,
            activity,
            repo: None,
            counts: Arc::default(),
        }
    }

    /// The same pages with the sign-in form working through `auth`.
    pub fn with_auth(mut self, auth: crate::auth::Auth) -> WebState {
        self.auth = Some(auth);
        self
    }

    /// The same pages, reading commits' authors and messages from the Git repository at
    /// `repo`.
    pub fn with_repository(mut self, repo: PathBuf) -> WebState {
        self.repo = Some(repo);
        self
    }

    /// The same pages, reading open pull requests' plans from `prs`.
    pub fn with_pr_plans(mut self, prs: Arc<dyn PrPlans>) -> WebState {
        self.prs = prs;
        self
    }
}

/// The status page's routes (no fallback, so it merges with the API router).
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(overview::page))
        .route("/nodes", get(nodes::page))
        .route("/nodes/{name}", get(node::page))
        .route("/nodes/{name}/blame", get(blame::page))
        .route("/commits/{sha}", get(commit::page))
        .route("/prs", get(prs::page))
        .route("/audit", get(audit::page))
        .route("/events", get(events::stream))
        .route("/login", get(login::show).post(login::submit))
        .route("/logout", axum::routing::post(login::logout))
        .route(assets::STYLE_PATH, get(assets::style))
        .route(assets::SCRIPT_PATH, get(assets::script))
        // Browsers ask for it whatever the page says (e.g. after a non-HTML answer): no icon,
        // and no 404 in their logs.
        .route(
            "/favicon.ico",
            get(|| async { axum::http::StatusCode::NO_CONTENT }),
        )
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Content Security Policy and friends on every page: only this origin's style and script,
/// no framing, no referrer.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; \
             img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
