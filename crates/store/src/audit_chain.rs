//! The audit log's hash chain, pure: the canonical content of an entry, its hash, and the
//! verifier that walks stored rows in order and names the first altered, removed or
//! reordered entry.
//!
//! `hash = sha256("centossrv-audit\n" + prev_hash + "\n" + content)`, where `content` is the
//! canonical JSON of the entry, its sequence number included, so a row moved to another
//! position is told apart from one whose content changed.

use crate::records::{AuditEntry, AuditRecord};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::fmt;

/// Version of the canonical content; part of every entry's content.
pub const AUDIT_FORMAT: u32 = 1;

/// `prev_hash` of the first entry.
pub const GENESIS_HASH: &str =
    "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// The hashed form of an entry: fixed field order, object keys of `details` sorted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CanonicalContent {
    pub v: u32,
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub commit: Option<String>,
    pub outcome: String,
    pub details: Json,
}

/// The canonical content of entry `seq` written at `at`.
pub(crate) fn canonical_content(seq: i64, at: DateTime<Utc>, record: &AuditRecord) -> String {
    let content = CanonicalContent {
        v: AUDIT_FORMAT,
        seq,
        at: format_time(at),
        actor: record.actor.clone(),
        action: record.action.clone(),
        target: record.target.clone(),
        commit: record.commit.clone(),
        outcome: record.outcome.clone(),
        details: sorted(&record.details),
    };
    // A struct of strings, integers and JSON values always serializes.
    serde_json::to_string(&content).unwrap_or_default()
}

/// `details` as stored beside the content (keys sorted, like in the content).
pub(crate) fn canonical_details(details: &Json) -> String {
    sorted(details).to_string()
}

pub(crate) fn entry_hash(prev_hash: &str, content: &str) -> String {
    let mut bytes = Vec::with_capacity(17 + prev_hash.len() + content.len());
    bytes.extend_from_slice(b"centossrv-audit\n");
    bytes.extend_from_slice(prev_hash.as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(content.as_bytes());
    state::digest::sha256(&bytes)
}

fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A copy of `value` with every object's keys in sorted order.
fn sorted(value: &Json) -> Json {
    match value {
        Json::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Json::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect(),
            )
        }
        Json::Array(items) => Json::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditVerdict {
    /// Every entry from 1 to `entries` is present, in order, unaltered, and the last one is
    /// the recorded head.
    Intact { entries: i64, head: String },
    /// The first problem found, walking from entry 1.
    Broken(AuditBreak),
}

/// The first entry whose chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditBreak {
    /// The sequence number of the entry concerned.
    pub seq: i64,
    pub kind: BreakKind,
    pub detail: String,
    /// Where a hash does not match: the hash the chain recorded for the entry (its `hash`
    /// column, the next entry's `prev_hash`, or the head row).
    pub expected_hash: Option<String>,
    /// Where a hash does not match: the hash found in its place (what the entry's content
    /// hashes to now, or the entry's `hash` column).
    pub found_hash: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakKind {
    /// The entry's content, hash or one of its columns was changed.
    Altered,
    /// The entry is missing.
    Removed,
    /// The entry sits at another position than the one it was written at.
    Reordered,
}

impl fmt::Display for AuditBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            BreakKind::Altered => "altered",
            BreakKind::Removed => "removed",
            BreakKind::Reordered => "reordered",
        };
        write!(f, "audit entry {} {kind}: {}", self.seq, self.detail)
    }
}

/// One stored row as read back, columns and hashed content side by side.
#[derive(Debug, Clone)]
pub(crate) struct StoredRow {
    pub entry: AuditEntry,
    /// The `details` column, as text.
    pub details_text: String,
    pub content: String,
}

/// Walks rows in ascending `seq` order; `finish` compares the last with the head row.
#[derive(Debug)]
pub(crate) struct Verifier {
    expected_seq: i64,
    prev_hash: String,
}

impl Verifier {
    pub fn new() -> Verifier {
        Verifier {
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
        }
    }

    pub fn check(&mut self, row: &StoredRow) -> Result<(), AuditBreak> {
        let entry = &row.entry;
        let seq = entry.seq;
        let altered = |detail: String| AuditBreak {
            seq,
            kind: BreakKind::Altered,
            detail,
            expected_hash: None,
            found_hash: None,
        };
        let content: CanonicalContent = serde_json::from_str(&row.content).map_err(|e| {
            altered(format!(
                "its hashed content is no longer a valid entry ({e})"
            ))
        })?;
        if content.seq != seq {
            return Err(AuditBreak {
                seq,
                kind: BreakKind::Reordered,
                detail: format!(
                    "the row at position {seq} holds the entry written as {}",
                    content.seq
                ),
                expected_hash: None,
                found_hash: None,
            });
        }
        if seq != self.expected_seq {
            let missing = if seq == self.expected_seq + 1 {
                format!("entry {} is missing", self.expected_seq)
            } else {
                format!("entries {} to {} are missing", self.expected_seq, seq - 1)
            };
            return Err(AuditBreak {
                seq: self.expected_seq,
                kind: BreakKind::Removed,
                detail: missing,
                expected_hash: None,
                found_hash: None,
            });
        }
        let computed = entry_hash(&entry.prev_hash, &row.content);
        if computed != entry.hash {
            return Err(AuditBreak {
                expected_hash: Some(entry.hash.clone()),
                found_hash: Some(computed),
                ..altered("its hash does not match its content and previous hash".to_owned())
            });
        }
        if entry.prev_hash != self.prev_hash {
            return Err(AuditBreak {
                seq: seq - 1,
                kind: BreakKind::Altered,
                detail: format!(
                    "entry {seq} chained to hash {} but entry {} now hashes to {} \
                     (entry {} was rewritten)",
                    entry.prev_hash,
                    seq - 1,
                    self.prev_hash,
                    seq - 1
                ),
                expected_hash: Some(entry.prev_hash.clone()),
                found_hash: Some(self.prev_hash.clone()),
            });
        }
        let record = &entry.record;
        let column_mismatch = [
            ("at", format_time(entry.at) != content.at),
            ("actor", record.actor != content.actor),
            ("action", record.action != content.action),
            ("target", record.target != content.target),
            ("commit", record.commit != content.commit),
            ("outcome", record.outcome != content.outcome),
            (
                "details",
                serde_json::from_str::<Json>(&row.details_text)
                    .ok()
                    .as_ref()
                    != Some(&content.details),
            ),
        ]
        .into_iter()
        .find(|(_, differs)| *differs);
        if let Some((column, _)) = column_mismatch {
            return Err(altered(format!(
                "its `{column}` column differs from its hashed content"
            )));
        }
        self.expected_seq = seq + 1;
        self.prev_hash.clone_from(&entry.hash);
        Ok(())
    }

    /// Compares the end of the walk with the head row (`head_seq`, `head_hash`).
    pub fn finish(self, head_seq: i64, head_hash: &str) -> AuditVerdict {
        let last = self.expected_seq - 1;
        if head_seq > last {
            let detail = if head_seq == last + 1 {
                format!("the log ends at entry {last} but the head records entry {head_seq}")
            } else {
                format!(
                    "the log ends at entry {last} but the head records entry {head_seq}: \
                     entries {} to {head_seq} are missing",
                    last + 1
                )
            };
            return AuditVerdict::Broken(AuditBreak {
                seq: last + 1,
                kind: BreakKind::Removed,
                detail,
                expected_hash: None,
                found_hash: None,
            });
        }
        if head_seq < last || head_hash != self.prev_hash {
            return AuditVerdict::Broken(AuditBreak {
                seq: last,
                kind: BreakKind::Altered,
                detail: format!(
                    "the head records entry {head_seq} with hash {head_hash}, the log ends at \
                     entry {last} with hash {}",
                    self.prev_hash
                ),
                expected_hash: Some(head_hash.to_owned()),
                found_hash: Some(self.prev_hash),
            });
        }
        AuditVerdict::Intact {
            entries: last,
            head: self.prev_hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(actor: &str) -> AuditRecord {
        AuditRecord {
            actor: actor.into(),
            action: "plan.approve".into(),
            target: "web-1".into(),
            commit: Some("abc".into()),
            outcome: "ok".into(),
            details: json!({"z": 1, "a": {"y": 2, "b": 3}}),
        }
    }

    fn chain(n: i64) -> Vec<StoredRow> {
        let at = DateTime::parse_from_rfc3339("2026-11-24T17:00:00.123456Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("valid time");
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let record = record(&format!("user{seq}"));
                let content = canonical_content(seq, at, &record);
                let hash = entry_hash(&prev, &content);
                let row = StoredRow {
                    details_text: canonical_details(&record.details),
                    content,
                    entry: AuditEntry {
                        seq,
                        at,
                        record,
                        prev_hash: prev.clone(),
                        hash: hash.clone(),
                    },
                };
                prev = hash;
                row
            })
            .collect()
    }

    fn verify(rows: &[StoredRow], head_seq: i64, head_hash: &str) -> AuditVerdict {
        let mut verifier = Verifier::new();
        for row in rows {
            if let Err(b) = verifier.check(row) {
                return AuditVerdict::Broken(b);
            }
        }
        verifier.finish(head_seq, head_hash)
    }

    fn broken(verdict: AuditVerdict) -> (i64, BreakKind) {
        match verdict {
            AuditVerdict::Broken(b) => (b.seq, b.kind),
            AuditVerdict::Intact { .. } => panic!("expected a break"),
        }
    }

    #[test]
    fn content_is_canonical() {
        let rows = chain(1);
        assert_eq!(
            rows[0].content,
            r#"{"v":1,"seq":1,"at":"2026-11-24T17:00:00.123456Z","actor":"user1","action":"plan.approve","target":"web-1","commit":"abc","outcome":"ok","details":{"a":{"b":3,"y":2},"z":1}}"#
        );
    }

    #[test]
    fn an_intact_chain_verifies() {
        let rows = chain(5);
        let head = rows[4].entry.hash.clone();
        assert_eq!(
            verify(&rows, 5, &head),
            AuditVerdict::Intact {
                entries: 5,
                head: head.clone()
            }
        );
        assert_eq!(
            verify(&[], 0, GENESIS_HASH),
            AuditVerdict::Intact {
                entries: 0,
                head: GENESIS_HASH.to_owned()
            }
        );
    }

    #[test]
    fn each_kind_of_tampering_names_the_entry() {
        let rows = chain(5);
        let head = rows[4].entry.hash.clone();

        let mut column = rows.clone();
        column[2].entry.record.actor = "mallory".into();
        assert_eq!(broken(verify(&column, 5, &head)), (3, BreakKind::Altered));

        let mut content = rows.clone();
        content[1].content = content[1].content.replace("user2", "mallory");
        assert_eq!(broken(verify(&content, 5, &head)), (2, BreakKind::Altered));

        // Rewritten with a recomputed hash: the next entry's link shows it.
        let mut rewritten = rows.clone();
        rewritten[1].content = rewritten[1].content.replace("user2", "mallory");
        rewritten[1].entry.record.actor = "mallory".into();
        rewritten[1].entry.hash = entry_hash(&rewritten[1].entry.prev_hash, &rewritten[1].content);
        assert_eq!(
            broken(verify(&rewritten, 5, &head)),
            (2, BreakKind::Altered)
        );

        let mut removed = rows.clone();
        removed.remove(2);
        assert_eq!(broken(verify(&removed, 5, &head)), (3, BreakKind::Removed));

        let mut first_removed = rows.clone();
        first_removed.remove(0);
        assert_eq!(
            broken(verify(&first_removed, 5, &head)),
            (1, BreakKind::Removed)
        );

        let tail_removed = &rows[..4];
        assert_eq!(
            broken(verify(tail_removed, 5, &head)),
            (5, BreakKind::Removed)
        );

        let mut swapped = rows.clone();
        swapped.swap(1, 3);
        swapped[1].entry.seq = 2;
        swapped[3].entry.seq = 4;
        assert_eq!(
            broken(verify(&swapped, 5, &head)),
            (2, BreakKind::Reordered)
        );
    }

    #[test]
    fn hash_breaks_carry_the_expected_and_the_found_hash() {
        let rows = chain(3);
        let head = rows[2].entry.hash.clone();
        let mut content = rows.clone();
        content[1].content = content[1].content.replace("user2", "mallory");
        let AuditVerdict::Broken(b) = verify(&content, 3, &head) else {
            panic!("expected a break")
        };
        assert_eq!(
            b.expected_hash.as_deref(),
            Some(rows[1].entry.hash.as_str())
        );
        assert_eq!(
            b.found_hash,
            Some(entry_hash(&rows[1].entry.prev_hash, &content[1].content))
        );

        let AuditVerdict::Broken(b) = verify(&rows, 3, GENESIS_HASH) else {
            panic!("expected a break")
        };
        assert_eq!((b.seq, b.kind), (3, BreakKind::Altered));
        assert_eq!(b.expected_hash.as_deref(), Some(GENESIS_HASH));
        assert_eq!(b.found_hash.as_deref(), Some(head.as_str()));

        let mut removed = rows.clone();
        removed.remove(1);
        let AuditVerdict::Broken(b) = verify(&removed, 3, &head) else {
            panic!("expected a break")
        };
        assert_eq!((b.expected_hash, b.found_hash), (None, None));
    }
}
