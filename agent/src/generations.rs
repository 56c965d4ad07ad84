//! Generations: before an apply (or a rollback) changes anything, the agent records the
//! previous state of every path and sysctl it will touch (content bytes, mode, owner, group,
//! symlink target, or absence) in its state directory, durably, and only then touches the
//! host. `rollback` restores them offline, byte for byte.
//!
//! Layout of the state directory (the agent's own storage, accessed with `std::fs`; the
//! managed host is only touched through [`Host`]):
//!
//! ```text
//! lock                                  flock(2) held by apply and rollback
//! generations/00000007/generation.json  what was there before operation 7 (Generation)
//! generations/00000007/blobs/<sha256>   previous content of regular files, one file each
//! generations/00000007/finished.json    written when operation 7 ended (absent: interrupted)
//! generations/.new-00000008/            a generation being recorded; discarded if left over
//! ```
//!
//! Generation N holds the state *before* operation N. Rolling back to N undoes operations
//! N, N+1, ... latest: every path takes its state from the oldest kept generation >= N that
//! recorded it. A rollback records a generation itself, so it can be undone the same way.

use crate::accounts::{Accounts, GroupRecord, UserRecord};
use crate::host::{EntryKind, FileAttrs, Host, HostError};
use crate::observe::{group_name, mode_string, normalize_sysctl, owner_name};
use serde::{Deserialize, Serialize};
use state::digest::sha256;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Version of `generation.json`.
pub const GENERATION_FORMAT: u32 = 1;
/// Version of the rollback report.
pub const ROLLBACK_FORMAT: u32 = 1;

/// Why recording, listing or restoring generations failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    #[error("another centossrv-agent is applying or rolling back (lock {path} is held)")]
    Locked { path: PathBuf },
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("{path} is not a valid generation record: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("no generations recorded in {dir}")]
    NoGenerations { dir: PathBuf },
    #[error("cannot record the current state: {0}")]
    Capture(String),
    #[error("generation {number} is not kept (kept: {kept})")]
    NotKept { number: u64, kept: String },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> GenerationError + 'a {
    move |source| GenerationError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What a generation is the "before" of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GenerationKind {
    Apply,
    Rollback,
}

/// Something an operation will touch.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// A host path (file, directory or symlink).
    Path(String),
    /// A sysctl's live value.
    Sysctl(String),
    /// A package's installed version(s).
    Package(String),
    /// A user's passwd entry and supplementary groups.
    User(String),
    /// A group's entry.
    Group(String),
    /// Whether a service is enabled and running (its files are `Path` targets).
    Service(String),
}

/// The recorded state of one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum PathState {
    /// Nothing was there: rollback removes what is there.
    Absent,
    File {
        mode: String,
        uid: u32,
        gid: u32,
        /// Names at recording time, for people; restores use the ids.
        owner: String,
        group: String,
        /// The content, stored as `blobs/<hex>`.
        sha256: String,
        len: u64,
    },
    Directory {
        mode: String,
        uid: u32,
        gid: u32,
        owner: String,
        group: String,
    },
    Symlink {
        target: String,
        uid: u32,
        gid: u32,
    },
    /// A device, socket or FIFO: recorded, but rollback cannot recreate it.
    Other {
        mode: String,
        uid: u32,
        gid: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathEntry {
    pub path: String,
    #[serde(flatten)]
    pub state: PathState,
}

/// The recorded live value of a sysctl (raw file content), `None` when it had none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysctlEntry {
    pub key: String,
    pub live: Option<String>,
}

/// The recorded versions of a package (`[epoch:]version-release`); empty when it was not
/// installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageEntry {
    pub name: String,
    pub installed: Vec<String>,
}

/// The recorded account of a user; `previous: None` when it did not exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEntry {
    pub name: String,
    pub previous: Option<UserRecord>,
}

/// The recorded entry of a group; `previous: None` when it did not exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupEntry {
    pub name: String,
    pub previous: Option<GroupRecord>,
}

/// The recorded runtime state of a service (its unit file, drop-in and enable links are
/// recorded as paths).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEntry {
    pub name: String,
    pub enabled: bool,
    pub running: bool,
}

/// Who records a generation and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub kind: GenerationKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The plan digest the apply executed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_digest: Option<String>,
    /// For a rollback: the generation it restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<u64>,
}

/// `generation.json`: the state before one operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    pub format: u32,
    pub number: u64,
    pub created_at: String,
    #[serde(flatten)]
    pub header: Header,
    pub paths: Vec<PathEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sysctls: Vec<SysctlEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<PackageEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceEntry>,
}

/// `finished.json`: how the operation a generation precedes ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    pub finished_at: String,
    pub changed: usize,
    pub failed: usize,
}

/// One line of `centossrv-agent generations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GenerationInfo {
    pub number: u64,
    pub created_at: String,
    #[serde(flatten)]
    pub header: Header,
    pub paths: usize,
    pub sysctls: usize,
    #[serde(default)]
    pub packages: usize,
    /// Users and groups.
    #[serde(default)]
    pub accounts: usize,
    #[serde(default)]
    pub services: usize,
    /// `None`: the operation was interrupted (or is running).
    pub finished: Option<Finished>,
}

/// Proof that the caller holds the state directory's lock.
#[derive(Debug)]
pub struct StoreLock {
    file: File,
}

impl Drop for StoreLock {
    /// Unlocks explicitly: a child process forked by another thread (the agent runs rpm,
    /// dnf and shadow-utils) may still hold a copy of the descriptor until it execs, and
    /// with it the lock, if closing were relied on.
    fn drop(&mut self) {
        let _ = rustix::fs::flock(&self.file, rustix::fs::FlockOperation::Unlock);
    }
}

/// The agent's state directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Store {
        Store { dir: dir.into() }
    }

    /// The default state directory under a root: `<root>/var/lib/centossrv-agent`.
    pub fn default_dir(root: &Path) -> PathBuf {
        root.join("var/lib/centossrv-agent")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn generations_dir(&self) -> PathBuf {
        self.dir.join("generations")
    }

    fn generation_dir(&self, number: u64) -> PathBuf {
        self.generations_dir().join(format!("{number:08}"))
    }

    /// Takes the state directory's lock (non-blocking): one apply or rollback at a time. The
    /// kernel releases it when the process ends, however it ends.
    pub fn lock(&self) -> Result<StoreLock, GenerationError> {
        create_private_dir(&self.dir)?;
        let path = self.dir.join("lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(StoreLock { file }),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(GenerationError::Locked { path }),
            Err(e) => Err(io_err("lock", &path)(e.into())),
        }
    }

    /// Kept generation numbers, ascending.
    pub fn numbers(&self) -> Result<Vec<u64>, GenerationError> {
        let dir = self.generations_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("list", &dir)(e)),
        };
        let mut numbers = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("list", &dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_digit())
                && let Ok(n) = name.parse()
            {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// Records the current state of `targets` as a new generation and returns its number.
    /// When this returns, the generation is durable (files and directories synced).
    pub fn record(
        &self,
        _lock: &StoreLock,
        host: &dyn Host,
        header: Header,
        targets: &BTreeSet<Target>,
    ) -> Result<u64, GenerationError> {
        let gens = self.generations_dir();
        create_private_dir(&gens)?;
        // Leftovers of a recording that was interrupted: never renamed, so never used.
        for entry in fs::read_dir(&gens).map_err(io_err("list", &gens))? {
            let entry = entry.map_err(io_err("list", &gens))?;
            if entry.file_name().to_string_lossy().starts_with(".new-") {
                let p = entry.path();
                fs::remove_dir_all(&p).map_err(io_err("remove", &p))?;
            }
        }
        let number = self.numbers()?.last().map_or(1, |n| n + 1);
        let temp = gens.join(format!(".new-{number:08}"));
        let blobs = temp.join("blobs");
        create_private_dir(&blobs)?;
        let mut paths = Vec::new();
        let mut sysctls = Vec::new();
        let mut packages = Vec::new();
        let mut users = Vec::new();
        let mut groups = Vec::new();
        let mut services = Vec::new();
        let mut accounts: Option<Accounts> = None;
        let mut stored = BTreeSet::new();
        // Files written unsynced, made durable together below.
        let mut written: Vec<PathBuf> = Vec::new();
        for target in targets {
            match target {
                Target::Path(path) => {
                    let state = capture(host, path, |digest, bytes| {
                        if stored.insert(digest.to_owned()) {
                            let path = blobs.join(blob_name(digest));
                            write_private(&path, bytes)?;
                            written.push(path);
                        }
                        Ok(())
                    })?;
                    paths.push(PathEntry {
                        path: path.clone(),
                        state,
                    });
                }
                Target::Sysctl(key) => sysctls.push(SysctlEntry {
                    key: key.clone(),
                    live: host.read_sysctl(key)?,
                }),
                Target::Package(name) => packages.push(PackageEntry {
                    name: name.clone(),
                    installed: crate::packages::installed_versions(host, name)
                        .map_err(GenerationError::Capture)?,
                }),
                Target::Service(name) => {
                    let (enabled, running) = crate::services::runtime_state(host, name)
                        .map_err(GenerationError::Capture)?;
                    services.push(ServiceEntry {
                        name: name.clone(),
                        enabled,
                        running,
                    });
                }
                Target::User(name) | Target::Group(name) => {
                    if accounts.is_none() {
                        accounts = Some(Accounts::read(host).map_err(GenerationError::Capture)?);
                    }
                    let a = accounts.as_ref().unwrap_or_else(|| unreachable!());
                    if matches!(target, Target::User(_)) {
                        users.push(UserEntry {
                            name: name.clone(),
                            previous: a.user(name),
                        });
                    } else {
                        groups.push(GroupEntry {
                            name: name.clone(),
                            previous: a.group(name),
                        });
                    }
                }
            }
        }
        let generation = Generation {
            format: GENERATION_FORMAT,
            number,
            created_at: crate::time::rfc3339(host.now()),
            header,
            paths,
            sysctls,
            packages,
            users,
            groups,
            services,
        };
        let json =
            serde_json::to_vec_pretty(&generation).map_err(|source| GenerationError::Corrupt {
                path: temp.clone(),
                source,
            })?;
        let record = temp.join("generation.json");
        write_private(&record, &json)?;
        written.push(record);
        // Everything under `temp` must be durable before the rename that publishes it. For
        // many files (a 10% fix of 1,000 files records 100 blobs), one `syncfs` of the state
        // directory's filesystem does that for every blob, the record and both directories
        // with one flush, where a sync per file costs a flush each. For a few files (the
        // usual apply), an `fsync` each, which does not write out unrelated dirty data.
        if written.len() < crate::host::SYNCFS_MIN_FILES {
            for path in &written {
                File::open(path)
                    .and_then(|f| f.sync_all())
                    .map_err(io_err("sync", path))?;
            }
            sync_dir(&blobs)?;
            sync_dir(&temp)?;
        } else {
            sync_filesystem(&temp)?;
        }
        let dest = self.generation_dir(number);
        fs::rename(&temp, &dest).map_err(io_err("rename", &dest))?;
        sync_dir(&gens)?;
        Ok(number)
    }

    /// Records how the operation after generation `number` ended.
    pub fn finish(&self, number: u64, finished: &Finished) -> Result<(), GenerationError> {
        let dir = self.generation_dir(number);
        let json =
            serde_json::to_vec_pretty(finished).map_err(|source| GenerationError::Corrupt {
                path: dir.clone(),
                source,
            })?;
        let temp = dir.join(".finished.json.tmp");
        write_synced(&temp, &json)?;
        let dest = dir.join("finished.json");
        fs::rename(&temp, &dest).map_err(io_err("rename", &dest))?;
        sync_dir(&dir)
    }

    /// Removes all but the newest `keep` generations.
    pub fn prune(&self, _lock: &StoreLock, keep: usize) -> Result<Vec<u64>, GenerationError> {
        let numbers = self.numbers()?;
        let excess = numbers.len().saturating_sub(keep.max(1));
        let mut removed = Vec::new();
        for &n in &numbers[..excess] {
            let dir = self.generation_dir(n);
            fs::remove_dir_all(&dir).map_err(io_err("remove", &dir))?;
            removed.push(n);
        }
        Ok(removed)
    }

    pub fn load(&self, number: u64) -> Result<Generation, GenerationError> {
        let path = self.generation_dir(number).join("generation.json");
        let bytes = fs::read(&path).map_err(io_err("read", &path))?;
        serde_json::from_slice(&bytes).map_err(|source| GenerationError::Corrupt { path, source })
    }

    fn load_finished(&self, number: u64) -> Result<Option<Finished>, GenerationError> {
        let path = self.generation_dir(number).join("finished.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| GenerationError::Corrupt { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    /// The kept generations, oldest first.
    pub fn list(&self) -> Result<Vec<GenerationInfo>, GenerationError> {
        self.numbers()?
            .into_iter()
            .map(|n| {
                let g = self.load(n)?;
                Ok(GenerationInfo {
                    number: g.number,
                    created_at: g.created_at,
                    header: g.header,
                    paths: g.paths.len(),
                    sysctls: g.sysctls.len(),
                    packages: g.packages.len(),
                    accounts: g.users.len() + g.groups.len(),
                    services: g.services.len(),
                    finished: self.load_finished(n)?,
                })
            })
            .collect()
    }

    /// The content `sha256` recorded in generation `number`, checked against its digest.
    pub fn blob(&self, number: u64, digest: &str) -> Result<Vec<u8>, String> {
        let path = self
            .generation_dir(number)
            .join("blobs")
            .join(blob_name(digest));
        let bytes = fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if sha256(&bytes) != digest {
            return Err(format!("{} is damaged (digest mismatch)", path.display()));
        }
        Ok(bytes)
    }
}

fn blob_name(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// Creates a directory (and missing parents) readable by the agent's user only: generations
/// hold the previous content of files that may be secret.
fn create_private_dir(path: &Path) -> Result<(), GenerationError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io_err("create", path))
}

/// Writes a file readable by the agent's user only, and syncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), GenerationError> {
    write_private(path, bytes)?
        .sync_all()
        .map_err(io_err("sync", path))
}

/// Writes a file readable by the agent's user only, without syncing it (the caller syncs
/// the filesystem once for many files, see [`sync_filesystem`]).
fn write_private(path: &Path, bytes: &[u8]) -> Result<File, GenerationError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err("create", path))?;
    f.write_all(bytes).map_err(io_err("write", path))?;
    Ok(f)
}

/// `syncfs(2)` of the filesystem holding `dir`: every file and directory written on it so
/// far is durable when this returns.
fn sync_filesystem(dir: &Path) -> Result<(), GenerationError> {
    let d = File::open(dir).map_err(io_err("open", dir))?;
    rustix::fs::syncfs(&d).map_err(|e| io_err("sync the filesystem of", dir)(e.into()))
}

fn sync_dir(path: &Path) -> Result<(), GenerationError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync", path))
}

/// The state of `path` now; `store_blob` receives the content of a regular file.
fn capture(
    host: &dyn Host,
    path: &str,
    mut store_blob: impl FnMut(&str, &[u8]) -> Result<(), GenerationError>,
) -> Result<PathState, GenerationError> {
    let Some(meta) = host.stat(path)? else {
        return Ok(PathState::Absent);
    };
    let mode = mode_string(meta.mode);
    Ok(match meta.kind {
        EntryKind::File => {
            let bytes = host.read_file(path)?;
            let digest = sha256(&bytes);
            store_blob(&digest, &bytes)?;
            PathState::File {
                mode,
                uid: meta.uid,
                gid: meta.gid,
                owner: owner_name(host, meta.uid),
                group: group_name(host, meta.gid),
                sha256: digest,
                len: bytes.len() as u64,
            }
        }
        EntryKind::Directory => PathState::Directory {
            mode,
            uid: meta.uid,
            gid: meta.gid,
            owner: owner_name(host, meta.uid),
            group: group_name(host, meta.gid),
        },
        EntryKind::Symlink => PathState::Symlink {
            target: host.read_link(path)?,
            uid: meta.uid,
            gid: meta.gid,
        },
        EntryKind::Other => PathState::Other {
            mode,
            uid: meta.uid,
            gid: meta.gid,
        },
    })
}

/// What rollback did to one path or sysctl.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestoreOutcome {
    /// Already as recorded.
    Unchanged,
    /// Content, mode, owner, target or value put back.
    Restored,
    /// Did not exist before: removed.
    Removed,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreEntry {
    /// A host path, or `sysctl:<key>`.
    pub target: String,
    /// The generation the state came from.
    pub generation: u64,
    pub outcome: RestoreOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreTotals {
    pub unchanged: usize,
    pub restored: usize,
    pub removed: usize,
    pub failed: usize,
}

/// What `rollback` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackReport {
    pub format: u32,
    /// The host is back to its state before this generation's operation.
    pub generation: u64,
    /// The operations undone, newest first.
    pub undone: Vec<u64>,
    /// The generation recorded before restoring (to undo this rollback), if anything changed.
    pub recorded: Option<u64>,
    pub entries: Vec<RestoreEntry>,
    pub totals: RestoreTotals,
    pub duration_ms: u64,
    /// Problems of the agent's own bookkeeping that did not stop the rollback.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl RollbackReport {
    pub fn has_failures(&self) -> bool {
        self.totals.failed > 0
    }
}

/// Restores the host to its state before generation `number` (default: the newest), undoing
/// every later operation too. Needs no desired state.
pub fn rollback(
    host: &dyn Host,
    store: &Store,
    number: Option<u64>,
    keep: usize,
) -> Result<RollbackReport, GenerationError> {
    let started = Instant::now();
    let lock = store.lock()?;
    let numbers = store.numbers()?;
    let Some(&newest) = numbers.last() else {
        return Err(GenerationError::NoGenerations {
            dir: store.dir.clone(),
        });
    };
    let target = number.unwrap_or(newest);
    if !numbers.contains(&target) {
        return Err(GenerationError::NotKept {
            number: target,
            kept: kept_range(&numbers),
        });
    }
    // Oldest generation >= target wins for each path: it holds the state before the first
    // operation that touched it.
    let undone: Vec<u64> = numbers
        .iter()
        .rev()
        .copied()
        .filter(|n| *n >= target)
        .collect();
    let mut paths: BTreeMap<String, (u64, PathState)> = BTreeMap::new();
    let mut sysctls: BTreeMap<String, (u64, Option<String>)> = BTreeMap::new();
    let mut packages: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
    let mut users: BTreeMap<String, (u64, Option<UserRecord>)> = BTreeMap::new();
    let mut groups: BTreeMap<String, (u64, Option<GroupRecord>)> = BTreeMap::new();
    let mut services: BTreeMap<String, (u64, ServiceEntry)> = BTreeMap::new();
    for &n in undone.iter().rev() {
        let g = store.load(n)?;
        for e in g.paths {
            paths.entry(e.path).or_insert((n, e.state));
        }
        for s in g.sysctls {
            sysctls.entry(s.key).or_insert((n, s.live));
        }
        for p in g.packages {
            packages.entry(p.name).or_insert((n, p.installed));
        }
        for u in g.users {
            users.entry(u.name).or_insert((n, u.previous));
        }
        for gr in g.groups {
            groups.entry(gr.name).or_insert((n, gr.previous));
        }
        for sv in g.services {
            services.entry(sv.name.clone()).or_insert((n, sv));
        }
    }
    let targets: BTreeSet<Target> = paths
        .keys()
        .map(|p| Target::Path(p.clone()))
        .chain(sysctls.keys().map(|k| Target::Sysctl(k.clone())))
        .chain(packages.keys().map(|k| Target::Package(k.clone())))
        .chain(users.keys().map(|k| Target::User(k.clone())))
        .chain(groups.keys().map(|k| Target::Group(k.clone())))
        .chain(services.keys().map(|k| Target::Service(k.clone())))
        .collect();
    let recorded = if targets.is_empty() {
        None
    } else {
        let header = Header {
            kind: GenerationKind::Rollback,
            node: None,
            commit: None,
            plan_digest: None,
            rollback_of: Some(target),
        };
        Some(store.record(&lock, host, header, &targets)?)
    };
    // Removals deepest first (files before their directories), then creations shallowest
    // first (directories before their files).
    let depth = |p: &str| p.split('/').filter(|s| !s.is_empty()).count();
    let mut order: Vec<(&String, &(u64, PathState))> = paths.iter().collect();
    order.sort_by(|a, b| {
        let absent = |s: &PathState| matches!(s, PathState::Absent);
        match (absent(&a.1.1), absent(&b.1.1)) {
            (true, false) => std::cmp::Ordering::Less,
            (false, true) => std::cmp::Ordering::Greater,
            (true, true) => depth(b.0).cmp(&depth(a.0)).then(b.0.cmp(a.0)),
            (false, false) => depth(a.0).cmp(&depth(b.0)).then(a.0.cmp(b.0)),
        }
    });
    let mut entries = Vec::new();
    let mut totals = RestoreTotals::default();
    // Packages first (they own paths and may create accounts), then groups that existed
    // (users may need them), users, and last the groups that did not exist (a group cannot
    // be deleted while it is some user's primary group); then paths and sysctls.
    for (name, (n, installed)) in &packages {
        let t = Instant::now();
        let result = restore_package(host, name, installed);
        entries.push(restore_entry(
            format!("package:{name}"),
            *n,
            result,
            t,
            &mut totals,
        ));
    }
    let account_result = |changed: Result<bool, String>, existed: bool| {
        changed.map(|c| match (c, existed) {
            (false, _) => RestoreOutcome::Unchanged,
            (true, true) => RestoreOutcome::Restored,
            (true, false) => RestoreOutcome::Removed,
        })
    };
    for (name, (n, previous)) in groups.iter().filter(|(_, (_, p))| p.is_some()) {
        let t = Instant::now();
        let result = account_result(
            crate::accounts::restore_group(host, name, previous.as_ref()),
            true,
        );
        entries.push(restore_entry(
            format!("group:{name}"),
            *n,
            result,
            t,
            &mut totals,
        ));
    }
    for (name, (n, previous)) in &users {
        let t = Instant::now();
        let result = account_result(
            crate::accounts::restore_user(host, name, previous.as_ref()),
            previous.is_some(),
        );
        entries.push(restore_entry(
            format!("user:{name}"),
            *n,
            result,
            t,
            &mut totals,
        ));
    }
    for (name, (n, _)) in groups.iter().filter(|(_, (_, p))| p.is_none()) {
        let t = Instant::now();
        let result = account_result(crate::accounts::restore_group(host, name, None), false);
        entries.push(restore_entry(
            format!("group:{name}"),
            *n,
            result,
            t,
            &mut totals,
        ));
    }
    // Services that must not run are stopped before their files change; the others are
    // started (or restarted, when one of their files was restored) after.
    let mut stopped: BTreeMap<&str, Result<bool, String>> = BTreeMap::new();
    for (name, (_, entry)) in services.iter().filter(|(_, (_, e))| !e.running) {
        stopped.insert(name, crate::services::stop_for_rollback(host, name, entry));
    }
    let mut restored_paths: Vec<String> = Vec::new();
    for (path, (n, state)) in order {
        let t = Instant::now();
        let result = restore_path(host, store, *n, path, state);
        if matches!(
            result,
            Ok(RestoreOutcome::Restored | RestoreOutcome::Removed)
        ) {
            restored_paths.push(path.clone());
        }
        entries.push(restore_entry(path.clone(), *n, result, t, &mut totals));
    }
    for (name, (n, entry)) in &services {
        let t = Instant::now();
        let result = match stopped.remove(name.as_str()) {
            Some(stop) => stop.and_then(|changed| {
                crate::services::restore_after_paths(host, entry, &restored_paths)
                    .map(|c| c || changed)
            }),
            None => crate::services::restore_after_paths(host, entry, &restored_paths),
        }
        .map(|changed| {
            if changed {
                RestoreOutcome::Restored
            } else {
                RestoreOutcome::Unchanged
            }
        });
        entries.push(restore_entry(
            format!("service:{name}"),
            *n,
            result,
            t,
            &mut totals,
        ));
    }
    for (key, (n, live)) in &sysctls {
        let t = Instant::now();
        let result = restore_sysctl(host, key, live.as_deref());
        entries.push(restore_entry(
            format!("sysctl:{key}"),
            *n,
            result,
            t,
            &mut totals,
        ));
    }
    let mut warnings = Vec::new();
    if let Some(r) = recorded {
        let finished = Finished {
            finished_at: crate::time::rfc3339(host.now()),
            changed: totals.restored + totals.removed,
            failed: totals.failed,
        };
        // The host has changed by now: report it even if the bookkeeping fails.
        if let Err(e) = store.finish(r, &finished) {
            warnings.push(format!("cannot mark generation {r} finished: {e}"));
        }
    }
    if let Err(e) = store.prune(&lock, keep) {
        warnings.push(format!("cannot prune old generations: {e}"));
    }
    Ok(RollbackReport {
        format: ROLLBACK_FORMAT,
        generation: target,
        undone,
        recorded,
        entries,
        totals,
        duration_ms: millis(started),
        warnings,
    })
}

fn kept_range(numbers: &[u64]) -> String {
    match (numbers.first(), numbers.last()) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (Some(a), Some(b)) => format!("{a}..{b}"),
        _ => "none".to_owned(),
    }
}

pub(crate) fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn restore_entry(
    target: String,
    generation: u64,
    result: Result<RestoreOutcome, String>,
    started: Instant,
    totals: &mut RestoreTotals,
) -> RestoreEntry {
    let (outcome, reason) = match result {
        Ok(o) => (o, None),
        Err(e) => (RestoreOutcome::Failed, Some(e)),
    };
    match outcome {
        RestoreOutcome::Unchanged => totals.unchanged += 1,
        RestoreOutcome::Restored => totals.restored += 1,
        RestoreOutcome::Removed => totals.removed += 1,
        RestoreOutcome::Failed => totals.failed += 1,
    }
    RestoreEntry {
        target,
        generation,
        outcome,
        reason,
        duration_ms: millis(started),
    }
}

fn parse_mode(mode: &str) -> Result<u32, String> {
    u32::from_str_radix(mode, 8).map_err(|_| format!("invalid recorded mode `{mode}`"))
}

/// Removes whatever is at `path` (an empty directory, a file, a link).
fn remove_any(host: &dyn Host, path: &str, kind: EntryKind) -> Result<(), String> {
    let result = if kind == EntryKind::Directory {
        host.remove_dir(path)
    } else {
        host.remove_file(path)
    };
    result.map_err(|e| {
        if e.io_kind() == Some(io::ErrorKind::DirectoryNotEmpty) {
            format!("{path} is a directory that is not empty; it was not removed")
        } else {
            e.to_string()
        }
    })
}

fn restore_path(
    host: &dyn Host,
    store: &Store,
    number: u64,
    path: &str,
    state: &PathState,
) -> Result<RestoreOutcome, String> {
    let e = |e: HostError| e.to_string();
    let current = host.stat(path).map_err(e)?;
    match state {
        PathState::Absent => match current {
            None => Ok(RestoreOutcome::Unchanged),
            Some(m) => remove_any(host, path, m.kind).map(|()| RestoreOutcome::Removed),
        },
        PathState::File {
            mode,
            uid,
            gid,
            sha256: digest,
            ..
        } => {
            let mode = parse_mode(mode)?;
            if let Some(m) = current.filter(|m| m.kind == EntryKind::File) {
                let same_content = sha256(&host.read_file(path).map_err(e)?) == *digest;
                if same_content {
                    return set_meta(host, path, m, mode, *uid, *gid);
                }
            }
            if let Some(m) = current.filter(|m| m.kind == EntryKind::Directory) {
                remove_any(host, path, m.kind)?;
            }
            let bytes = store.blob(number, digest)?;
            let attrs = FileAttrs {
                mode,
                uid: Some(*uid),
                gid: Some(*gid),
            };
            host.write_file_atomic(path, &bytes, attrs).map_err(e)?;
            Ok(RestoreOutcome::Restored)
        }
        PathState::Directory { mode, uid, gid, .. } => {
            let mode = parse_mode(mode)?;
            match current {
                Some(m) if m.kind == EntryKind::Directory => {
                    set_meta(host, path, m, mode, *uid, *gid)
                }
                other => {
                    if let Some(m) = other {
                        remove_any(host, path, m.kind)?;
                    }
                    host.create_dir(path, mode).map_err(e)?;
                    if let Some(m) = host.stat(path).map_err(e)? {
                        set_meta(host, path, m, mode, *uid, *gid)?;
                    }
                    Ok(RestoreOutcome::Restored)
                }
            }
        }
        PathState::Symlink { target, uid, gid } => {
            if let Some(m) = current.filter(|m| m.kind == EntryKind::Symlink)
                && host.read_link(path).map_err(e)? == *target
            {
                return set_link_owner(host, path, m.uid, m.gid, *uid, *gid, false);
            }
            if let Some(m) = current.filter(|m| m.kind == EntryKind::Directory) {
                remove_any(host, path, m.kind)?;
            }
            host.symlink_atomic(path, target).map_err(e)?;
            let m = host
                .stat(path)
                .map_err(e)?
                .ok_or_else(|| format!("{path} vanished after it was restored"))?;
            set_link_owner(host, path, m.uid, m.gid, *uid, *gid, true)
        }
        PathState::Other { .. } => {
            Err("a device, socket or FIFO was recorded here; rollback cannot recreate it".into())
        }
    }
}

/// Puts back mode and owner of an existing file or directory.
fn set_meta(
    host: &dyn Host,
    path: &str,
    current: crate::host::Meta,
    mode: u32,
    uid: u32,
    gid: u32,
) -> Result<RestoreOutcome, String> {
    let mut changed = false;
    if current.uid != uid || current.gid != gid {
        host.set_owner(path, Some(uid), Some(gid))
            .map_err(|e| e.to_string())?;
        changed = true;
    }
    // After chown, which may clear setuid/setgid bits.
    if changed || current.mode != mode {
        host.set_mode(path, mode).map_err(|e| e.to_string())?;
        changed = changed || current.mode != mode;
    }
    Ok(if changed {
        RestoreOutcome::Restored
    } else {
        RestoreOutcome::Unchanged
    })
}

fn set_link_owner(
    host: &dyn Host,
    path: &str,
    have_uid: u32,
    have_gid: u32,
    uid: u32,
    gid: u32,
    changed: bool,
) -> Result<RestoreOutcome, String> {
    if have_uid != uid || have_gid != gid {
        host.set_owner(path, Some(uid), Some(gid))
            .map_err(|e| e.to_string())?;
        return Ok(RestoreOutcome::Restored);
    }
    Ok(if changed {
        RestoreOutcome::Restored
    } else {
        RestoreOutcome::Unchanged
    })
}

/// Puts a package back to its recorded versions with dnf (the old version must still be
/// available in a repository).
fn restore_package(
    host: &dyn Host,
    name: &str,
    installed: &[String],
) -> Result<RestoreOutcome, String> {
    use state::PackageEnsure;
    let current = crate::packages::installed_versions(host, name)?;
    if current == installed {
        return Ok(RestoreOutcome::Unchanged);
    }
    match installed {
        [] => crate::packages::set_package(host, name, &PackageEnsure::Absent)
            .map(|()| RestoreOutcome::Removed),
        [one] => {
            crate::packages::set_package(host, name, &PackageEnsure::Version(one.clone()))?;
            let now = crate::packages::installed_versions(host, name)?;
            if now.len() == 1 && crate::packages::evr_matches(one, &now[0]) {
                Ok(RestoreOutcome::Restored)
            } else {
                Err(format!(
                    "dnf ran, but {name} is now {} instead of {one}",
                    if now.is_empty() {
                        "not installed".to_owned()
                    } else {
                        now.join(", ")
                    }
                ))
            }
        }
        several => Err(format!(
            "several versions were installed ({}); rollback restores a single version only",
            several.join(", ")
        )),
    }
}

fn restore_sysctl(
    host: &dyn Host,
    key: &str,
    live: Option<&str>,
) -> Result<RestoreOutcome, String> {
    let current = host.read_sysctl(key).map_err(|e| e.to_string())?;
    match live {
        None => {
            if current.is_none() {
                return Ok(RestoreOutcome::Unchanged);
            }
            host.remove_sysctl(key).map_err(|e| e.to_string())?;
            Ok(RestoreOutcome::Removed)
        }
        Some(value) => {
            if current.as_deref().map(normalize_sysctl) == Some(normalize_sysctl(value)) {
                return Ok(RestoreOutcome::Unchanged);
            }
            host.write_sysctl(key, value.trim_end_matches('\n'))
                .map_err(|e| e.to_string())?;
            Ok(RestoreOutcome::Restored)
        }
    }
}
