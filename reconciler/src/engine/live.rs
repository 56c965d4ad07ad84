//! What the running engine publishes for readers (API, status page, PR planner, metrics): a
//! small snapshot behind a lock, written only by the engine loop, and a change counter for
//! the fleet's drift that readers can wait on.

use state::Change;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use tokio::sync::watch;

/// The published state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveState {
    /// The engine has read the source once since start.
    pub ready: bool,
    /// The commit in force.
    pub commit: Option<String>,
    /// Nodes with an open agent connection.
    pub connected: BTreeSet<String>,
    /// Events waiting in the engine's queue.
    pub queue_depth: usize,
    /// Current drift: nodes converged to the commit in force whose last observation
    /// differs from it, with the changes that would revert it. A node leaves when an
    /// observation matches again (fixed by hand, enforced, or applied over).
    pub drift: BTreeMap<String, Vec<Change>>,
}

/// A cheap, clonable handle on the published state.
#[derive(Debug, Clone)]
pub struct Live {
    state: Arc<RwLock<LiveState>>,
    /// Bumped whenever `drift` changes.
    drift_version: Arc<watch::Sender<u64>>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            state: Arc::default(),
            drift_version: Arc::new(watch::channel(0).0),
        }
    }
}

impl Live {
    pub fn get(&self) -> LiveState {
        match self.state.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The current drift only (cheaper than [`Live::get`] for readers that need no more).
    pub fn drift(&self) -> BTreeMap<String, Vec<Change>> {
        match self.state.read() {
            Ok(g) => g.drift.clone(),
            Err(poisoned) => poisoned.into_inner().drift.clone(),
        }
    }

    /// A receiver that sees a new value whenever the drift changes.
    pub fn watch_drift(&self) -> watch::Receiver<u64> {
        self.drift_version.subscribe()
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut LiveState)) {
        match self.state.write() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Sets (`Some`) or clears (`None`) `node`'s drift; wakes watchers when it changed. The
    /// engine is the only writer in the service (tests drive it directly).
    pub fn set_drift(&self, node: &str, changes: Option<Vec<Change>>) {
        let mut changed = false;
        self.update(|l| match changes {
            Some(changes) if !changes.is_empty() => {
                if l.drift.get(node) != Some(&changes) {
                    l.drift.insert(node.to_owned(), changes);
                    changed = true;
                }
            }
            _ => changed = l.drift.remove(node).is_some(),
        });
        if changed {
            self.drift_version.send_modify(|v| *v += 1);
        }
    }
}
