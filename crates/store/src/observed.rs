//! A node's last observed state and facts, as its agent reported them (sensitive file content
//! redacted before it is stored).

use crate::backend::{BeginWrite as _, on_backend};
use crate::blobs::{Blob, decode, put_blobs};
use crate::error::{QueryContext as _, Result};
use crate::nodes::check_node_name;
use crate::records::ObservedRecord;
use crate::{Store, now};
use chrono::{DateTime, Utc};
use sqlx::Row as _;
use state::ObservedState;
use std::collections::{BTreeMap, HashMap};

/// The stored document: the state without what differs at every report (node name, agent
/// timestamp, facts), sensitive content removed, so a converged fleet shares few documents.
fn document(observed: &ObservedState) -> ObservedState {
    ObservedState {
        format: observed.format,
        node: String::new(),
        observed_at: None,
        facts: BTreeMap::new(),
        resources: observed
            .resources
            .iter()
            .map(|(id, spec)| (id.clone(), spec.redacted()))
            .collect(),
    }
}

/// Nodes with an observed state, their document and the columns around it.
const OBSERVED_SELECT: &str = "SELECT n.name, n.observed_at, n.reported_at, n.facts, b.digest, b.body \
     FROM nodes n JOIN blobs b ON b.digest = n.observed_blob";

/// An [`ObservedRecord`] from a row of [`OBSERVED_SELECT`]; `cache` holds the documents
/// decoded so far, by digest.
macro_rules! observed_row {
    ($row:expr, $cache:expr) => {{
        let row = $row;
        let cache: &mut HashMap<String, ObservedState> = $cache;
        let node: String = row.try_get("name").ctx("read an observed state")?;
        let digest: String = row.try_get("digest").ctx("read an observed state")?;
        let mut state = match cache.get(&digest) {
            Some(state) => state.clone(),
            None => {
                let body: String = row.try_get("body").ctx("read an observed state")?;
                let state: ObservedState = decode("observed state", &digest, &body)?;
                cache.insert(digest, state.clone());
                state
            }
        };
        state.observed_at = row.try_get("observed_at").ctx("read an observed state")?;
        let facts: Option<String> = row.try_get("facts").ctx("read an observed state")?;
        if let Some(facts) = facts {
            state.facts = serde_json::from_str(&facts).map_err(|e| crate::StoreError::Corrupt {
                what: format!("facts of node {node}"),
                detail: e.to_string(),
            })?;
        }
        state.node = node;
        let reported_at: DateTime<Utc> =
            row.try_get("reported_at").ctx("read an observed state")?;
        ObservedRecord { state, reported_at }
    }};
}

impl Store {
    /// Records what `observed.node`'s agent reported, replacing the previous observation and
    /// facts. A node not known yet is created outside the inventory (discovered).
    pub async fn record_observed(&self, observed: &ObservedState) -> Result<()> {
        check_node_name(&observed.node)?;
        if observed.format != state::OBSERVED_FORMAT {
            return Err(crate::StoreError::Invalid {
                what: "observed state",
                detail: format!(
                    "format {} (this store reads format {})",
                    observed.format,
                    state::OBSERVED_FORMAT
                ),
            });
        }
        let blob = Blob::of("observed state", &document(observed))?;
        let facts =
            serde_json::to_string(&observed.facts).map_err(|source| crate::StoreError::Encode {
                what: "facts",
                source,
            })?;
        let at = now();
        on_backend!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO nodes (name, in_inventory, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
            )
            .bind(&observed.node)
            .bind(false)
            .bind(at)
            .bind(at)
            .execute(&mut *tx)
            .await
            .ctx("create a discovered node")?;
            put_blobs!(tx, &[&blob]);
            sqlx::query(
                "UPDATE nodes SET observed_blob = $1, observed_at = $2, reported_at = $3, \
                 facts = $4 WHERE name = $5",
            )
            .bind(&blob.digest)
            .bind(observed.observed_at.as_deref())
            .bind(at)
            .bind(&facts)
            .bind(&observed.node)
            .execute(&mut *tx)
            .await
            .ctx("record an observed state")?;
            tx.commit().await.ctx("commit an observed state")?;
            Ok(())
        })
    }

    /// Replaces the host facts of a known node (a heartbeat without an observed state).
    /// Returns false when the node is unknown.
    pub async fn record_facts(
        &self,
        node: &str,
        facts: &std::collections::BTreeMap<String, serde_json::Value>,
    ) -> Result<bool> {
        check_node_name(node)?;
        let facts = serde_json::to_string(facts).map_err(|source| crate::StoreError::Encode {
            what: "facts",
            source,
        })?;
        on_backend!(self, pool => {
            let done = sqlx::query("UPDATE nodes SET facts = $1 WHERE name = $2")
                .bind(&facts)
                .bind(node)
                .execute(pool)
                .await
                .ctx("record facts")?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// The last state `node`'s agent reported, if any.
    pub async fn observed(&self, node: &str) -> Result<Option<ObservedRecord>> {
        on_backend!(self, pool => {
            let row = sqlx::query(&format!("{OBSERVED_SELECT} WHERE n.name = $1"))
                .bind(node)
                .fetch_optional(pool)
                .await
                .ctx("read an observed state")?;
            let Some(row) = row else { return Ok(None) };
            let mut cache = HashMap::new();
            Ok(Some(observed_row!(row, &mut cache)))
        })
    }

    /// The last observed state of every node that ever reported, by name, in one query. Each
    /// distinct stored document is decoded once (a converged fleet shares a few).
    pub async fn observed_all(&self) -> Result<BTreeMap<String, ObservedRecord>> {
        on_backend!(self, pool => {
            let rows = sqlx::query(OBSERVED_SELECT)
                .fetch_all(pool)
                .await
                .ctx("read observed states")?;
            let mut cache = HashMap::new();
            let mut all = BTreeMap::new();
            for row in rows {
                let record = observed_row!(row, &mut cache);
                all.insert(record.state.node.clone(), record);
            }
            Ok(all)
        })
    }
}
