//! Content-addressed JSON documents: one `blobs` row per distinct document, keyed by the
//! SHA-256 of its bytes, so identical desired or observed states across nodes and commits
//! are stored once.

use crate::error::{Result, StoreError};
use serde::Serialize;
use std::collections::BTreeMap;

/// A document ready to store: its canonical bytes and their digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Blob {
    pub digest: String,
    pub body: String,
}

impl Blob {
    pub fn of<T: Serialize>(what: &'static str, value: &T) -> Result<Blob> {
        let body =
            serde_json::to_string(value).map_err(|source| StoreError::Encode { what, source })?;
        Ok(Blob {
            digest: state::digest::sha256(body.as_bytes()),
            body,
        })
    }
}

/// Inserts the blobs not stored yet, inside the caller's transaction; returns how many were
/// new. Existing digests are looked up first so their bodies never cross the wire again.
macro_rules! put_blobs {
    ($tx:expr, $blobs:expr) => {{
        use $crate::error::QueryContext as _;
        let blobs: &[&$crate::blobs::Blob] = $blobs;
        let mut new_blobs = 0usize;
        for chunk in blobs.chunks($crate::backend::BATCH_ROWS) {
            let sql = format!(
                "SELECT digest FROM blobs WHERE digest IN ({})",
                $crate::backend::placeholders(chunk.len(), 1)
            );
            let mut query = sqlx::query_scalar::<_, String>(&sql);
            for blob in chunk {
                query = query.bind(&blob.digest);
            }
            let present: std::collections::HashSet<String> = query
                .fetch_all(&mut *$tx)
                .await
                .ctx("look up stored documents")?
                .into_iter()
                .collect();
            let missing: Vec<&&$crate::blobs::Blob> = chunk
                .iter()
                .filter(|b| !present.contains(&b.digest))
                .collect();
            if missing.is_empty() {
                continue;
            }
            let sql = format!(
                "INSERT INTO blobs (digest, body, size, created_at) VALUES {} \
                 ON CONFLICT (digest) DO NOTHING",
                $crate::backend::values_list(missing.len(), 4, 1)
            );
            let now = $crate::now();
            let mut query = sqlx::query(&sql);
            for blob in &missing {
                query = query
                    .bind(&blob.digest)
                    .bind(&blob.body)
                    .bind(i64::try_from(blob.body.len()).unwrap_or(i64::MAX))
                    .bind(now);
            }
            let done = query.execute(&mut *$tx).await.ctx("store documents")?;
            new_blobs += usize::try_from(done.rows_affected()).unwrap_or(usize::MAX);
        }
        new_blobs
    }};
}
pub(crate) use put_blobs;

/// Distinct blobs of `blobs`, first occurrence kept, in a stable order.
pub(crate) fn distinct(blobs: &[Blob]) -> Vec<&Blob> {
    let mut seen: BTreeMap<&str, &Blob> = BTreeMap::new();
    for blob in blobs {
        seen.entry(blob.digest.as_str()).or_insert(blob);
    }
    seen.into_values().collect()
}

/// Parses a stored document, checking it still has the digest it is stored under.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    what: &str,
    digest: &str,
    body: &str,
) -> Result<T> {
    if state::digest::sha256(body.as_bytes()) != digest {
        return Err(StoreError::Corrupt {
            what: format!("{what} document {digest}"),
            detail: "its content no longer matches its digest".into(),
        });
    }
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt {
        what: format!("{what} document {digest}"),
        detail: e.to_string(),
    })
}
