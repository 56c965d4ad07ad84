//! Nodes and their labels: batched upserts, lookup by name, filtered keyset-paginated lists.

use crate::backend::{BATCH_ROWS, BeginWrite as _, on_backend, placeholders, values_list};
use crate::error::{QueryContext as _, Result, StoreError};
use crate::records::{MAX_PAGE, Node, NodeFilter, NodeUpsert, Page};
use crate::{Store, now};
use chrono::{DateTime, Utc};
use serde_json::Value as Json;
use sqlx::Row as _;
use std::collections::{BTreeMap, HashMap};

/// The longest node name accepted (a DNS name's limit).
pub const MAX_NODE_NAME: usize = 253;

pub(crate) fn check_node_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NODE_NAME || name.chars().any(char::is_control) {
        return Err(StoreError::Invalid {
            what: "node name",
            detail: format!(
                "`{}` must be 1 to {MAX_NODE_NAME} bytes without control characters",
                name.escape_debug()
            ),
        });
    }
    Ok(())
}

/// Maps node names to ids inside the caller's connection or transaction; a missing name is
/// an `UnknownNode` error.
macro_rules! node_ids {
    ($conn:expr, $names:expr) => {{
        use sqlx::Row as _;
        use $crate::error::QueryContext as _;
        let names: &[&str] = $names;
        let mut ids: std::collections::HashMap<String, i64> =
            std::collections::HashMap::with_capacity(names.len());
        for chunk in names.chunks($crate::backend::BATCH_ROWS) {
            let sql = format!(
                "SELECT id, name FROM nodes WHERE name IN ({})",
                $crate::backend::placeholders(chunk.len(), 1)
            );
            let mut query = sqlx::query(&sql);
            for name in chunk {
                query = query.bind(*name);
            }
            for row in query.fetch_all(&mut *$conn).await.ctx("look up nodes")? {
                ids.insert(
                    row.try_get("name").ctx("read a node")?,
                    row.try_get("id").ctx("read a node")?,
                );
            }
        }
        match names.iter().find(|n| !ids.contains_key(**n)) {
            Some(missing) => Err($crate::error::StoreError::UnknownNode {
                name: (*missing).to_owned(),
            }),
            None => Ok(ids),
        }
    }};
}
pub(crate) use node_ids;

const NODE_COLUMNS: &str = "id, name, in_inventory, created_at, updated_at, reported_at, facts";

macro_rules! node_from_row {
    ($row:expr) => {{
        let row = $row;
        let facts: Option<String> = row.try_get("facts").ctx("read a node")?;
        let facts = facts.map(|text| parse_facts(&text)).transpose();
        match facts {
            Ok(facts) => Ok::<Node, StoreError>(Node {
                id: row.try_get("id").ctx("read a node")?,
                name: row.try_get("name").ctx("read a node")?,
                labels: BTreeMap::new(),
                in_inventory: row.try_get("in_inventory").ctx("read a node")?,
                created_at: row
                    .try_get::<DateTime<Utc>, _>("created_at")
                    .ctx("read a node")?,
                updated_at: row
                    .try_get::<DateTime<Utc>, _>("updated_at")
                    .ctx("read a node")?,
                reported_at: row
                    .try_get::<Option<DateTime<Utc>>, _>("reported_at")
                    .ctx("read a node")?,
                facts,
            }),
            Err(e) => Err(e),
        }
    }};
}

/// The labels of the nodes `ids`, by node id.
macro_rules! labels_of {
    ($conn:expr, $ids:expr) => {{
        let ids: &[i64] = $ids;
        let mut labels: HashMap<i64, BTreeMap<String, String>> = HashMap::new();
        for chunk in ids.chunks(BATCH_ROWS) {
            let sql = format!(
                "SELECT node_id, key, value FROM node_labels WHERE node_id IN ({})",
                placeholders(chunk.len(), 1)
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&mut *$conn).await.ctx("read node labels")? {
                labels
                    .entry(row.try_get("node_id").ctx("read node labels")?)
                    .or_default()
                    .insert(
                        row.try_get("key").ctx("read node labels")?,
                        row.try_get("value").ctx("read node labels")?,
                    );
            }
        }
        Ok::<_, StoreError>(labels)
    }};
}

impl Store {
    /// Creates or updates one node; its labels are replaced by `node.labels`.
    pub async fn upsert_node(&self, node: &NodeUpsert) -> Result<Node> {
        self.upsert_nodes(std::slice::from_ref(node)).await?;
        self.node(&node.name)
            .await?
            .ok_or_else(|| StoreError::UnknownNode {
                name: node.name.clone(),
            })
    }

    /// Creates or updates many nodes in one transaction (the inventory of a commit); each
    /// node's labels are replaced. When a name appears twice, the last entry wins.
    pub async fn upsert_nodes(&self, nodes: &[NodeUpsert]) -> Result<()> {
        let mut last: BTreeMap<&str, &NodeUpsert> = BTreeMap::new();
        for node in nodes {
            check_node_name(&node.name)?;
            last.insert(&node.name, node);
        }
        let nodes: Vec<&NodeUpsert> = last.into_values().collect();
        let at = now();
        on_backend!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for chunk in nodes.chunks(BATCH_ROWS) {
                let sql = format!(
                    "INSERT INTO nodes (name, in_inventory, created_at, updated_at) VALUES {} \
                     ON CONFLICT (name) DO UPDATE SET in_inventory = excluded.in_inventory, \
                     updated_at = excluded.updated_at RETURNING id, name",
                    values_list(chunk.len(), 4, 1)
                );
                let mut query = sqlx::query(&sql);
                for node in chunk {
                    query = query.bind(&node.name).bind(node.in_inventory).bind(at).bind(at);
                }
                let rows = query.fetch_all(&mut *tx).await.ctx("upsert nodes")?;
                let mut ids: HashMap<String, i64> = HashMap::with_capacity(rows.len());
                for row in rows {
                    ids.insert(
                        row.try_get("name").ctx("upsert nodes")?,
                        row.try_get("id").ctx("upsert nodes")?,
                    );
                }
                let id_list: Vec<i64> =
                    chunk.iter().filter_map(|n| ids.get(&n.name).copied()).collect();
                let sql = format!(
                    "DELETE FROM node_labels WHERE node_id IN ({})",
                    placeholders(id_list.len(), 1)
                );
                let mut query = sqlx::query(&sql);
                for id in &id_list {
                    query = query.bind(*id);
                }
                query.execute(&mut *tx).await.ctx("replace node labels")?;
                let labels: Vec<(i64, &String, &String)> = chunk
                    .iter()
                    .filter_map(|n| ids.get(&n.name).map(|id| (*id, n)))
                    .flat_map(|(id, n)| n.labels.iter().map(move |(k, v)| (id, k, v)))
                    .collect();
                for labels in labels.chunks(BATCH_ROWS) {
                    let sql = format!(
                        "INSERT INTO node_labels (node_id, key, value) VALUES {}",
                        values_list(labels.len(), 3, 1)
                    );
                    let mut query = sqlx::query(&sql);
                    for (id, key, value) in labels {
                        query = query.bind(*id).bind(*key).bind(*value);
                    }
                    query.execute(&mut *tx).await.ctx("replace node labels")?;
                }
            }
            tx.commit().await.ctx("commit node upserts")?;
            Ok(())
        })
    }

    /// The node called `name`, if known.
    pub async fn node(&self, name: &str) -> Result<Option<Node>> {
        on_backend!(self, pool => {
            let mut conn = pool.acquire().await.ctx("read a node")?;
            let sql = format!("SELECT {NODE_COLUMNS} FROM nodes WHERE name = $1");
            let Some(row) = sqlx::query(&sql)
                .bind(name)
                .fetch_optional(&mut *conn)
                .await
                .ctx("read a node")?
            else {
                return Ok(None);
            };
            let mut node = node_from_row!(row)?;
            let mut labels = labels_of!(conn, &[node.id])?;
            node.labels = labels.remove(&node.id).unwrap_or_default();
            Ok(Some(node))
        })
    }

    /// Nodes matching `filter` in name order, `limit` (at most [`MAX_PAGE`]) after the name
    /// `after`; `next` is the cursor of the following page.
    pub async fn list_nodes(
        &self,
        filter: &NodeFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<Node, String>> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut sql = format!("SELECT {NODE_COLUMNS} FROM nodes n WHERE 1 = 1");
        let mut n = 0;
        let mut next_param = || {
            n += 1;
            format!("${n}")
        };
        if after.is_some() {
            sql.push_str(&format!(" AND n.name > {}", next_param()));
        }
        if filter.in_inventory.is_some() {
            sql.push_str(&format!(" AND n.in_inventory = {}", next_param()));
        }
        for _ in &filter.labels {
            let (k, v) = (next_param(), next_param());
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM node_labels l WHERE l.node_id = n.id \
                 AND l.key = {k} AND l.value = {v})"
            ));
        }
        sql.push_str(&format!(" ORDER BY n.name LIMIT {}", next_param()));
        on_backend!(self, pool => {
            let mut conn = pool.acquire().await.ctx("list nodes")?;
            let mut query = sqlx::query(&sql);
            if let Some(after) = after {
                query = query.bind(after);
            }
            if let Some(in_inventory) = filter.in_inventory {
                query = query.bind(in_inventory);
            }
            for (key, value) in &filter.labels {
                query = query.bind(key).bind(value);
            }
            query = query.bind(i64::from(limit) + 1);
            let rows = query.fetch_all(&mut *conn).await.ctx("list nodes")?;
            let mut nodes = Vec::with_capacity(rows.len());
            for row in rows {
                nodes.push(node_from_row!(row)?);
            }
            let next = if nodes.len() > limit as usize {
                nodes.truncate(limit as usize);
                nodes.last().map(|n| n.name.clone())
            } else {
                None
            };
            let ids: Vec<i64> = nodes.iter().map(|n| n.id).collect();
            let mut labels = labels_of!(conn, &ids)?;
            for node in &mut nodes {
                node.labels = labels.remove(&node.id).unwrap_or_default();
            }
            Ok(Page { items: nodes, next })
        })
    }
}

fn parse_facts(text: &str) -> Result<BTreeMap<String, Json>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what: "node facts".into(),
        detail: e.to_string(),
    })
}
