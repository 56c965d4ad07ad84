//! Node counts per state for the overview, reused while nothing they depend on changed.
//!
//! Counting derives every node's state (one statement, but linear in the fleet: about 35 ms
//! of CPU for 10,000 nodes on SQLite). The store's [`ActivityMark`] moves with every new
//! node, first report, approval, apply run, drift event and audit entry (the engine audits
//! each compile and each finished run), so counts computed under the same mark are still
//! right; [`MAX_AGE`] bounds how long a change the mark cannot see (a run finished without
//! an audit entry, by something other than the engine) stays hidden.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use store::{ActivityMark, NodeState, Store, StoreError};
use tokio::sync::Mutex;

/// The longest a count is reused.
pub const MAX_AGE: Duration = Duration::from_secs(5);

type Counts = BTreeMap<NodeState, u64>;

/// The last counts with the mark they were computed under. The lock is held while counting,
/// so requests that arrive together count once.
#[derive(Debug, Default)]
pub struct StateCounts {
    last: Mutex<Option<(ActivityMark, Instant, Counts)>>,
}

impl StateCounts {
    /// Counts per state: the remembered ones if the mark has not moved and they are younger
    /// than [`MAX_AGE`], else fresh ones. Two statements at most (the mark, the counts).
    pub async fn get(&self, store: &Store) -> Result<Counts, StoreError> {
        let mark = store.activity_mark().await?;
        let mut last = self.last.lock().await;
        if let Some((m, at, counts)) = last.as_ref()
            && *m == mark
            && at.elapsed() < MAX_AGE
        {
            return Ok(counts.clone());
        }
        let counts = store.node_state_counts().await?;
        *last = Some((mark, Instant::now(), counts.clone()));
        Ok(counts)
    }
}
