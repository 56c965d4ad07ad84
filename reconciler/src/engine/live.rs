//! What the running engine publishes for readers (API, status page, metrics): a small
//! snapshot behind a lock, written only by the engine loop.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

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
}

/// A cheap, clonable handle on the published state.
#[derive(Debug, Clone, Default)]
pub struct Live(Arc<RwLock<LiveState>>);

impl Live {
    pub fn get(&self) -> LiveState {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut LiveState)) {
        match self.0.write() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}
