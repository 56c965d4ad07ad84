//! What every handler shares: the store, the engine's live view and the metrics.

use crate::auth::Auth;
use crate::metrics::Metrics;
use std::sync::Arc;
use store::Store;

/// What only the running engine knows (the store cannot answer these).
pub trait LiveView: Send + Sync {
    /// Names of the nodes whose agents are connected now.
    fn connected(&self) -> Vec<String>;
    /// The commit the engine works towards, if it has one.
    fn current_commit(&self) -> Option<String>;
    /// Events waiting in the engine's queue.
    fn queue_depth(&self) -> usize;
    /// The engine is up and processing events (`/readyz`).
    fn ready(&self) -> bool;
}

/// A live view with nothing connected, no current commit, an empty queue, always ready: for
/// tests and for serving the API without an engine.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLiveView;

impl LiveView for NoLiveView {
    fn connected(&self) -> Vec<String> {
        Vec::new()
    }
    fn current_commit(&self) -> Option<String> {
        None
    }
    fn queue_depth(&self) -> usize {
        0
    }
    fn ready(&self) -> bool {
        true
    }
}

/// The one state of the router; cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub live: Arc<dyn LiveView>,
    pub metrics: Metrics,
    /// Signing in and tokens; `None`: the sign-in routes answer 503.
    pub auth: Option<Auth>,
    /// The running service's controls (engine events, poller); `None` without an engine:
    /// the operating routes answer 503.
    pub control: Option<Control>,
}

/// How operating routes reach the running service.
#[derive(Clone, Debug)]
pub struct Control {
    /// The engine's event queue (holds, releases).
    pub events: tokio::sync::mpsc::Sender<crate::engine::Event>,
    /// The branch poller (re-sync); `None` when nothing polls.
    pub poller: Option<crate::poller::PollerHandle>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("store", &self.store)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// A state over `store` without an engine ([`NoLiveView`]) and with fresh metrics.
    pub fn new(store: Store) -> ApiState {
        ApiState {
            store,
            live: Arc::new(NoLiveView),
            metrics: Metrics::new(),
            auth: None,
            control: None,
        }
    }
}
