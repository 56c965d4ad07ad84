//! A cheap mark of what the store has seen lately, for pages that refresh live: it changes
//! whenever a node, an observation's first arrival, an approval, an apply run, a drift event
//! or an audit entry (compiles and finished runs are audited) is added. One statement of
//! index look-ups and two counts over `nodes`.

use crate::Store;
use crate::backend::on_backend;
use crate::error::{QueryContext as _, Result};
use sqlx::Row as _;

/// The newest row of each table that changes what the status page shows. Equal marks mean
/// nothing the overview shows has changed (except the engine's live state, which is not
/// stored).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ActivityMark {
    pub audit_seq: i64,
    pub run_id: i64,
    pub drift_id: i64,
    pub approval_id: i64,
    pub nodes: i64,
    /// Nodes whose agent has reported at least once.
    pub reported_nodes: i64,
}

const MARK_SQL: &str = "SELECT \
  (SELECT COALESCE(MAX(seq), 0) FROM audit_log) AS audit_seq, \
  (SELECT COALESCE(MAX(id), 0) FROM apply_runs) AS run_id, \
  (SELECT COALESCE(MAX(id), 0) FROM drift_events) AS drift_id, \
  (SELECT COALESCE(MAX(id), 0) FROM plan_approvals) AS approval_id, \
  (SELECT COUNT(*) FROM nodes) AS nodes, \
  (SELECT COUNT(reported_at) FROM nodes) AS reported_nodes";

impl Store {
    /// The current [`ActivityMark`], in one statement.
    pub async fn activity_mark(&self) -> Result<ActivityMark> {
        const CTX: &str = "read the activity mark";
        on_backend!(self, pool => {
            let row = sqlx::query(MARK_SQL).fetch_one(pool).await.ctx(CTX)?;
            Ok(ActivityMark {
                audit_seq: row.try_get("audit_seq").ctx(CTX)?,
                run_id: row.try_get("run_id").ctx(CTX)?,
                drift_id: row.try_get("drift_id").ctx(CTX)?,
                approval_id: row.try_get("approval_id").ctx(CTX)?,
                nodes: row.try_get("nodes").ctx(CTX)?,
                reported_nodes: row.try_get("reported_nodes").ctx(CTX)?,
            })
        })
    }
}
