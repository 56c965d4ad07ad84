//! The audit log: appends that extend the hash chain one at a time (the head row is locked
//! for the length of the transaction), keyset-paginated reads, and verification.

use crate::audit_chain::{
    AuditVerdict, StoredRow, Verifier, canonical_content, canonical_details, entry_hash,
};
use crate::backend::{BeginWrite as _, on_backend};
use crate::error::{QueryContext as _, Result, StoreError};
use crate::records::{AuditEntry, AuditRecord, MAX_PAGE, Page};
use crate::{Store, now};
use chrono::{DateTime, Utc};
use sqlx::Row as _;

/// Rows read per query while verifying.
const VERIFY_BATCH: i64 = 1000;

const AUDIT_COLUMNS: &str =
    "seq, at, actor, action, target, commit_sha, outcome, details, content, prev_hash, hash";

macro_rules! stored_row {
    ($row:expr) => {{
        let row = $row;
        let details_text: String = row.try_get("details").ctx("read an audit entry")?;
        let seq: i64 = row.try_get("seq").ctx("read an audit entry")?;
        Ok::<StoredRow, StoreError>(StoredRow {
            entry: AuditEntry {
                seq,
                at: row
                    .try_get::<DateTime<Utc>, _>("at")
                    .ctx("read an audit entry")?,
                record: AuditRecord {
                    actor: row.try_get("actor").ctx("read an audit entry")?,
                    action: row.try_get("action").ctx("read an audit entry")?,
                    target: row.try_get("target").ctx("read an audit entry")?,
                    commit: row.try_get("commit_sha").ctx("read an audit entry")?,
                    outcome: row.try_get("outcome").ctx("read an audit entry")?,
                    details: serde_json::from_str(&details_text).unwrap_or(serde_json::Value::Null),
                },
                prev_hash: row.try_get("prev_hash").ctx("read an audit entry")?,
                hash: row.try_get("hash").ctx("read an audit entry")?,
            },
            details_text,
            content: row.try_get("content").ctx("read an audit entry")?,
        })
    }};
}

impl Store {
    /// Appends an entry to the audit log and returns it with its sequence number and hash.
    /// Concurrent appends (from any number of processes) are serialized by the head row.
    pub async fn audit_append(&self, record: &AuditRecord) -> Result<AuditEntry> {
        let mut entries = self.audit_append_many(std::slice::from_ref(record)).await?;
        entries.pop().ok_or_else(|| StoreError::Invalid {
            what: "audit append",
            detail: "no entry was appended".into(),
        })
    }

    /// Appends entries in order, in one transaction: all or none. For writers that record
    /// many actions at once (the engine after a burst of agent reports).
    pub async fn audit_append_many(&self, records: &[AuditRecord]) -> Result<Vec<AuditEntry>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let at = now();
        on_backend!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let mut entries = Vec::with_capacity(records.len());
            for record in records {
                // Locks the head row until commit (PostgreSQL row lock; SQLite holds the
                // write lock since BEGIN IMMEDIATE): the next appender waits and then sees
                // these entries.
                let head = sqlx::query(
                    "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash",
                )
                .fetch_one(&mut *tx)
                .await
                .ctx("lock the audit head")?;
                let seq: i64 = head.try_get("seq").ctx("read the audit head")?;
                let prev_hash: String = head.try_get("hash").ctx("read the audit head")?;
                let content = canonical_content(seq, at, record);
                let hash = entry_hash(&prev_hash, &content);
                sqlx::query(
                    "INSERT INTO audit_log (seq, at, actor, action, target, commit_sha, outcome, \
                     details, content, prev_hash, hash) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(seq)
                .bind(at)
                .bind(&record.actor)
                .bind(&record.action)
                .bind(&record.target)
                .bind(record.commit.as_deref())
                .bind(&record.outcome)
                .bind(canonical_details(&record.details))
                .bind(&content)
                .bind(&prev_hash)
                .bind(&hash)
                .execute(&mut *tx)
                .await
                .ctx("append an audit entry")?;
                sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
                    .bind(&hash)
                    .execute(&mut *tx)
                    .await
                    .ctx("advance the audit head")?;
                entries.push(AuditEntry {
                    seq,
                    at,
                    record: record.clone(),
                    prev_hash,
                    hash,
                });
            }
            tx.commit().await.ctx("commit audit entries")?;
            Ok(entries)
        })
    }

    /// Entries in order, `limit` (capped at [`MAX_PAGE`]) after sequence number `after`.
    pub async fn audit_list(
        &self,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Page<AuditEntry, i64>> {
        let limit = limit.clamp(1, MAX_PAGE);
        let sql =
            format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2");
        on_backend!(self, pool => {
            let rows = sqlx::query(&sql)
                .bind(after.unwrap_or(0))
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await
                .ctx("list audit entries")?;
            let mut entries = Vec::with_capacity(rows.len());
            for row in rows {
                entries.push(stored_row!(row)?.entry);
            }
            let next = if entries.len() > limit as usize {
                entries.truncate(limit as usize);
                entries.last().map(|e| e.seq)
            } else {
                None
            };
            Ok(Page { items: entries, next })
        })
    }

    /// Entries newest first, `limit` (capped at [`MAX_PAGE`]) older than sequence number
    /// `before` (the previous page's `next`); for views that show recent actions first.
    pub async fn audit_list_newest(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Page<AuditEntry, i64>> {
        let limit = limit.clamp(1, MAX_PAGE);
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq < $1 ORDER BY seq DESC LIMIT $2"
        );
        on_backend!(self, pool => {
            let rows = sqlx::query(&sql)
                .bind(before.unwrap_or(i64::MAX))
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await
                .ctx("list audit entries")?;
            let mut entries = Vec::with_capacity(rows.len());
            for row in rows {
                entries.push(stored_row!(row)?.entry);
            }
            let next = if entries.len() > limit as usize {
                entries.truncate(limit as usize);
                entries.last().map(|e| e.seq)
            } else {
                None
            };
            Ok(Page { items: entries, next })
        })
    }

    /// Walks the whole log from entry 1 and checks every link, every hash and every column
    /// against its hashed content; names the first entry altered, removed or reordered.
    ///
    /// Reads one consistent snapshot of log and head (a repeatable-read transaction on
    /// PostgreSQL, a read transaction on SQLite), so appends during verification do not
    /// show as breaks.
    pub async fn audit_verify(&self) -> Result<AuditVerdict> {
        let sql =
            format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2");
        on_backend!(self, pool => {
            let mut tx = pool.begin().await.ctx("begin verification")?;
            if self.backend_kind() == crate::BackendKind::Postgres {
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .execute(&mut *tx)
                    .await
                    .ctx("begin verification")?;
            }
            let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(&mut *tx)
                .await
                .ctx("read the audit head")?;
            let head_seq: i64 = head.try_get("seq").ctx("read the audit head")?;
            let head_hash: String = head.try_get("hash").ctx("read the audit head")?;
            let mut verifier = Verifier::new();
            let mut after = 0i64;
            loop {
                let rows = sqlx::query(&sql)
                    .bind(after)
                    .bind(VERIFY_BATCH)
                    .fetch_all(&mut *tx)
                    .await
                    .ctx("read audit entries")?;
                let Some(last) = rows.last() else { break };
                after = last.try_get("seq").ctx("read an audit entry")?;
                for row in rows {
                    let row = stored_row!(row)?;
                    if let Err(found) = verifier.check(&row) {
                        return Ok(AuditVerdict::Broken(found));
                    }
                }
            }
            tx.rollback().await.ctx("end verification")?;
            Ok(verifier.finish(head_seq, &head_hash))
        })
    }
}
