//! The closed set of things the engine reacts to. Every input of the reconciler service (Git,
//! agents, timers, operators) becomes one of these; the engine loop matches on it and
//! nothing else drives state changes.

use state::wire::{AgentMessage, ServerMessage};
use tokio::sync::mpsc;

/// Identifies one agent connection, so a late `Disconnected` of an old connection does not
/// unregister a newer one of the same node.
pub type ConnId = u64;

/// An input of the engine.
#[derive(Debug)]
pub enum Event {
    /// The tracked branch's head may have moved (poll, webhook, startup): re-read it.
    SourceChanged,
    /// An authenticated agent connected; frames for it go to `tx`.
    AgentConnected {
        node: String,
        conn: ConnId,
        tx: mpsc::Sender<ServerMessage>,
    },
    /// A decoded, version-checked frame from an authenticated agent.
    AgentMessage {
        node: String,
        conn: ConnId,
        message: AgentMessage,
    },
    /// The connection ended (closed, refused frame, timeout).
    AgentDisconnected { node: String, conn: ConnId },
    /// Periodic: re-examine every node (level-triggered safety net).
    Tick,
    /// An operator set or lifted a break-glass hold on `node` (the store has the holds).
    HoldChanged { node: String },
    /// An operator released `node`'s held stale apply.
    Release { node: String, actor: String },
}
