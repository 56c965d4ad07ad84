//! The reconciler's side of the agent link: enrollment (`POST /api/v1/agents/enroll`) and
//! the authenticated WebSocket (`GET /api/v1/agents/connect`) that turns an agent's frames
//! into engine [`Event`]s and the engine's `ServerMessage`s into frames. Protocol types and
//! limits come from `state::wire`; see `docs/agent-link.md`.
//!
//! Policies:
//! - The link answers `Hello` with `Welcome` itself (heartbeat from [`LinkConfig`]); the
//!   engine never sends `Welcome`. The `Hello` is then forwarded as the first
//!   `Event::AgentMessage`, after `Event::AgentConnected`, so the engine sees the agent's
//!   version and cached commit.
//! - A second connection of the same node wins: the older one is sent `Goodbye` and closed.
//!   The engine receives `AgentConnected` of the new connection and `AgentDisconnected` of
//!   the old one, in either order; conn ids tell them apart.

mod connect;
mod enroll;
mod error;
mod session;

use crate::engine::{ConnId, Event};
use axum::Router;
use axum::routing::{get, post};
use state::wire::{CONNECT_PATH, ENROLL_PATH, MAX_ENROLL_BYTES};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::Store;
use tokio::sync::{mpsc, oneshot};

/// Tunables of the link.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Sent to agents in `Welcome`; the server pings on this interval and closes a
    /// connection that sent nothing (not even a pong) for [`LinkConfig::dead_after`].
    pub heartbeat: Duration,
    /// How long a new connection may take to send its `Hello`.
    pub hello_timeout: Duration,
    /// Frames queued for one agent before the engine's sends wait.
    pub outbound_queue: usize,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            heartbeat: Duration::from_secs(30),
            hello_timeout: Duration::from_secs(10),
            outbound_queue: 32,
        }
    }
}

impl LinkConfig {
    /// Silence after which a connection is considered dead: three heartbeats.
    pub fn dead_after(&self) -> Duration {
        self.heartbeat * 3
    }
}

/// Counters of the link (for metrics and tests).
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Connections that passed authentication and `Hello`.
    pub connections: AtomicU64,
    /// Frames refused (malformed, wrong version, too large, binary, unexpected `Hello`);
    /// each closed its connection.
    pub refused_frames: AtomicU64,
    /// Of those, frames over `MAX_FRAME_BYTES` (refused from their header, unread).
    pub oversized_frames: AtomicU64,
    /// Connection attempts refused before the upgrade (no or bad credential).
    pub refused_connects: AtomicU64,
    /// Connections closed for silence.
    pub timed_out: AtomicU64,
}

impl LinkStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Each node's current connection, and the sender that tells it it was replaced.
type Registry = HashMap<String, (ConnId, oneshot::Sender<()>)>;

/// What the link's handlers share.
#[derive(Debug, Clone)]
pub struct LinkState {
    pub store: Store,
    pub events: mpsc::Sender<Event>,
    pub config: LinkConfig,
    pub stats: Arc<LinkStats>,
    next_conn: Arc<AtomicU64>,
    /// The current connection of each node, and how to tell it that it was replaced.
    active: Arc<Mutex<Registry>>,
}

impl LinkState {
    pub fn new(store: Store, events: mpsc::Sender<Event>, config: LinkConfig) -> LinkState {
        LinkState {
            store,
            events,
            config,
            stats: Arc::default(),
            next_conn: Arc::new(AtomicU64::new(1)),
            active: Arc::default(),
        }
    }

    fn next_conn(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers `conn` as `node`'s current connection; an older one is told to close.
    /// Returns what fires when `conn` is replaced in turn.
    fn register(&self, node: &str, conn: ConnId) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let old = self
            .active
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(node.to_owned(), (conn, tx));
        if let Some((_, replaced)) = old {
            let _ = replaced.send(());
        }
        rx
    }

    /// Forgets `conn` if it is still `node`'s current connection.
    fn unregister(&self, node: &str, conn: ConnId) {
        let mut active = self
            .active
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if active
            .get(node)
            .is_some_and(|(current, _)| *current == conn)
        {
            active.remove(node);
        }
    }
}

/// The link's routes: enrollment and the WebSocket. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` (as [`crate::tls::serve`] does).
pub fn router(state: LinkState) -> Router {
    Router::new()
        .route(
            ENROLL_PATH,
            post(enroll::enroll).layer(axum::extract::DefaultBodyLimit::max(MAX_ENROLL_BYTES)),
        )
        .route(CONNECT_PATH, get(connect::connect))
        .with_state(state)
}
