//! What the daemon keeps in its state directory, every file written atomically (temporary
//! file, fsync, rename) with mode 0600: `credential` (the node credential from enrollment),
//! `desired.json` (the last desired state applied on the reconciler's request, with its
//! approved digest; it may hold secrets) and `queued-reports.json` (reports of applies made
//! while offline, the newest [`QUEUE_LIMIT`], sent after reconnecting).

use serde::{Deserialize, Serialize};
use state::{ApplyReport, DesiredState};
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

/// Offline reports kept at most (the oldest are dropped).
pub const QUEUE_LIMIT: usize = 100;
/// The longest credential accepted (it travels in an HTTP header).
pub const MAX_CREDENTIAL_BYTES: usize = 4096;

const CREDENTIAL: &str = "credential";
const DESIRED: &str = "desired.json";
const QUEUE: &str = "queued-reports.json";

/// Why a state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is corrupt: {message}")]
    Corrupt { path: PathBuf, message: String },
}

/// The cached desired state and what it was approved as.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedDesired {
    pub approved_digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    pub desired: DesiredState,
}

/// The daemon's files in the state directory.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

/// Whether a credential is something we can send in a header.
pub fn valid_credential(c: &str) -> bool {
    !c.is_empty() && c.len() <= MAX_CREDENTIAL_BYTES && c.bytes().all(|b| b.is_ascii_graphic())
}

impl Cache {
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let path = self.path(name);
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CacheError::Io {
                op: "read",
                path,
                source,
            }),
        }
    }

    /// Writes `name` atomically with mode 0600.
    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), CacheError> {
        let io = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| CacheError::Io { op, path, source }
        };
        if !self.dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(io("create", &self.dir))?;
        }
        let path = self.path(name);
        let tmp = self.path(&format!(".{name}.tmp"));
        let _ = fs::remove_file(&tmp);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io("create", &tmp))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(io("write", &tmp))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(io("rename into place", &path))?;
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io("sync", &self.dir))?;
        Ok(())
    }

    fn corrupt(&self, name: &str, message: impl ToString) -> CacheError {
        CacheError::Corrupt {
            path: self.path(name),
            message: message.to_string(),
        }
    }

    /// The stored credential, if the node has enrolled.
    pub fn credential(&self) -> Result<Option<String>, CacheError> {
        let Some(bytes) = self.read(CREDENTIAL)? else {
            return Ok(None);
        };
        let text = String::from_utf8(bytes).map_err(|e| self.corrupt(CREDENTIAL, e))?;
        let text = text.trim().to_owned();
        if !valid_credential(&text) {
            return Err(self.corrupt(
                CREDENTIAL,
                "not a credential (printable ASCII, at most 4096 bytes)",
            ));
        }
        Ok(Some(text))
    }

    pub fn store_credential(&self, credential: &str) -> Result<(), CacheError> {
        self.write(CREDENTIAL, credential.as_bytes())
    }

    pub fn desired(&self) -> Result<Option<CachedDesired>, CacheError> {
        let Some(bytes) = self.read(DESIRED)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| self.corrupt(DESIRED, e))
    }

    pub fn store_desired(&self, cached: &CachedDesired) -> Result<(), CacheError> {
        let bytes = serde_json::to_vec(cached).map_err(|e| self.corrupt(DESIRED, e))?;
        self.write(DESIRED, &bytes)
    }

    /// The queued offline reports, oldest first.
    pub fn queued(&self) -> Result<Vec<ApplyReport>, CacheError> {
        let Some(bytes) = self.read(QUEUE)? else {
            return Ok(Vec::new());
        };
        serde_json::from_slice(&bytes).map_err(|e| self.corrupt(QUEUE, e))
    }

    /// Appends a report to the queue, keeping the newest [`QUEUE_LIMIT`].
    pub fn enqueue(&self, report: &ApplyReport) -> Result<(), CacheError> {
        // A corrupt queue is replaced rather than blocking every later report.
        let mut queue = self.queued().unwrap_or_default();
        queue.push(report.clone());
        if queue.len() > QUEUE_LIMIT {
            queue.drain(..queue.len() - QUEUE_LIMIT);
        }
        let bytes = serde_json::to_vec(&queue).map_err(|e| self.corrupt(QUEUE, e))?;
        self.write(QUEUE, &bytes)
    }

    /// Drops the first `n` queued reports (they were sent).
    pub fn dequeue(&self, n: usize) -> Result<(), CacheError> {
        let mut queue = self.queued().unwrap_or_default();
        queue.drain(..n.min(queue.len()));
        if queue.is_empty() {
            return match fs::remove_file(self.path(QUEUE)) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(source) => Err(CacheError::Io {
                    op: "remove",
                    path: self.path(QUEUE),
                    source,
                }),
            };
        }
        let bytes = serde_json::to_vec(&queue).map_err(|e| self.corrupt(QUEUE, e))?;
        self.write(QUEUE, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn report(n: u64) -> ApplyReport {
        ApplyReport {
            format: state::APPLY_FORMAT,
            node: "n".into(),
            commit: None,
            status: state::ApplyStatus::Applied,
            plan_digest: format!("d{n}"),
            expected_digest: None,
            plan: None,
            generation: Some(n),
            resources: Vec::new(),
            totals: Default::default(),
            duration_ms: 0,
            observed: None,
            warnings: Vec::new(),
        }
    }

    #[test]
    fn files_are_private_and_the_queue_is_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = Cache::new(dir.path().join("state"));
        assert_eq!(cache.credential().expect("none"), None);
        cache.store_credential("abc.def").expect("store");
        assert_eq!(
            cache.credential().expect("read").as_deref(),
            Some("abc.def")
        );
        let mode = fs::metadata(dir.path().join("state/credential"))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        for n in 0..(QUEUE_LIMIT as u64 + 5) {
            cache.enqueue(&report(n)).expect("enqueue");
        }
        let queued = cache.queued().expect("queued");
        assert_eq!(queued.len(), QUEUE_LIMIT);
        assert_eq!(queued[0].generation, Some(5));
        cache.dequeue(QUEUE_LIMIT - 1).expect("dequeue");
        assert_eq!(cache.queued().expect("queued").len(), 1);
        cache.dequeue(1).expect("dequeue");
        assert!(!dir.path().join("state/queued-reports.json").exists());
    }
}
