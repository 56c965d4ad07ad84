//! The host the agent manages, behind one trait: every access to the managed filesystem, the
//! account database and sysctls goes through [`Host`], so observe, apply and rollback are
//! logic over a small set of primitives. [`RealHost`] is the only implementation; it resolves
//! every host path (`/etc/motd`) under a root directory (`/` in production, a sandbox in
//! tests and dry runs).
//!
//! Sysctls are files too: the live value of `net.ipv4.ip_forward` is
//! `<root>/proc/sys/net/ipv4/ip_forward`, and the agent persists the values it manages in
//! `<root>/etc/sysctl.d/99-centossrv.conf`. Under a sandbox root both are plain files.

use std::fmt;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

/// The file in which the agent persists the sysctl values it manages (a host path).
pub const SYSCTL_PERSIST_PATH: &str = "/etc/sysctl.d/99-centossrv.conf";

/// Suffix of the temporary names used for atomic replacement, next to the final name.
pub const TEMP_SUFFIX: &str = ".centossrv-tmp";

/// What kind of directory entry a path is (symbolic links are not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    File,
    Directory,
    Symlink,
    /// A device, socket or FIFO.
    Other,
}

/// The metadata the agent manages of one directory entry (from `lstat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: EntryKind,
    /// Permission bits including setuid, setgid and sticky (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub len: u64,
}

/// Mode and ownership for a file written by [`Host::write_file_atomic`]. `None` owner or group
/// leaves the one the agent's process creates files with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileAttrs {
    pub mode: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Why a host operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("`{path}` is not an absolute path without `..` components")]
    InvalidPath { path: String },
    #[error("`{path}` resolves to {resolved}, outside the root {root}")]
    EscapesRoot {
        path: String,
        resolved: PathBuf,
        root: PathBuf,
    },
    #[error("invalid sysctl key `{key}`")]
    InvalidSysctlKey { key: String },
    #[error("unknown sysctl key `{key}` ({path} does not exist)")]
    UnknownSysctl { key: String, path: PathBuf },
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl HostError {
    /// The underlying IO error kind, if this is an IO error.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            HostError::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> HostError + 'a {
    move |source| HostError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The primitives observe, apply and rollback need from a host. Paths are host paths
/// (absolute, as in the desired state); implementations decide where they live.
pub trait Host: fmt::Debug {
    /// The directory host paths are resolved under (`/` on a real host).
    fn root(&self) -> &Path;
    /// The current time.
    fn now(&self) -> SystemTime;
    /// `lstat`: `None` when nothing is at `path`.
    fn stat(&self, path: &str) -> Result<Option<Meta>, HostError>;
    fn read_file(&self, path: &str) -> Result<Vec<u8>, HostError>;
    fn read_link(&self, path: &str) -> Result<String, HostError>;
    /// Replaces whatever file or symlink is at `path` with a regular file holding `content`,
    /// atomically: a temporary file next to it is written, synced, given its mode and owner,
    /// renamed over `path`, and the directory is synced. Readers see the old or the new file,
    /// never a mix, even if the process is killed.
    fn write_file_atomic(
        &self,
        path: &str,
        content: &[u8],
        attrs: FileAttrs,
    ) -> Result<(), HostError>;
    /// `chmod` (never follows a final symlink: callers only use it on files and directories).
    fn set_mode(&self, path: &str, mode: u32) -> Result<(), HostError>;
    /// `lchown`; `None` keeps the current owner or group.
    fn set_owner(&self, path: &str, uid: Option<u32>, gid: Option<u32>) -> Result<(), HostError>;
    /// Creates one directory (the parent must exist) with exactly `mode`.
    fn create_dir(&self, path: &str, mode: u32) -> Result<(), HostError>;
    /// Removes a file, symlink or special file.
    fn remove_file(&self, path: &str) -> Result<(), HostError>;
    /// Removes an empty directory.
    fn remove_dir(&self, path: &str) -> Result<(), HostError>;
    /// Points `path` at `target` atomically (temporary link renamed over `path`).
    fn symlink_atomic(&self, path: &str, target: &str) -> Result<(), HostError>;
    /// User name of `uid` in the root's `etc/passwd`.
    fn user_name(&self, uid: u32) -> Option<String>;
    /// Group name of `gid` in the root's `etc/group`.
    fn group_name(&self, gid: u32) -> Option<String>;
    /// Uid of the user `name` in the root's `etc/passwd`.
    fn user_id(&self, name: &str) -> Option<u32>;
    /// Gid of the group `name` in the root's `etc/group`.
    fn group_id(&self, name: &str) -> Option<u32>;
    /// The raw live value of a sysctl (the content of its `/proc/sys` file), `None` when it
    /// has none.
    fn read_sysctl(&self, key: &str) -> Result<Option<String>, HostError>;
    /// Sets the live value of a sysctl.
    fn write_sysctl(&self, key: &str, value: &str) -> Result<(), HostError>;
    /// Removes a live sysctl value: only meaningful under a sandbox root (rollback of a key
    /// that had no value); a no-op on a real host, where the kernel owns `/proc/sys`.
    fn remove_sysctl(&self, key: &str) -> Result<(), HostError>;
    /// Runs one of the host's tools (`rpm`, `dnf`, `useradd`...) to completion, with
    /// `LC_ALL=C` and `HOME` set to the agent's private tool directory (see
    /// [`Host::tool_dir`]). An error only when it cannot be started.
    fn run_tool(&self, program: &str, args: &[String]) -> Result<ToolOutput, HostError>;
    /// A private directory for tool configuration: `.rpmmacros` pinning `%_dbpath` to
    /// `/var/lib/rpm` (so rpm and dnf agree whatever rpm's build default is) and a minimal
    /// `dnf.conf` for roots without one.
    fn tool_dir(&self) -> Result<PathBuf, HostError>;
    /// The package options given on the command line.
    fn package_options(&self) -> &PackageOptions;
    /// Forget cached account names: `etc/passwd` or `etc/group` changed.
    fn accounts_changed(&self);
}

/// What a tool run by [`Host::run_tool`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    /// The exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl ToolOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Package manager options of the agent (`--repo NAME=URL`, `--nogpgcheck`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageOptions {
    /// Extra repositories (name, URL) added with dnf's `--repofrompath`, on top of the
    /// root's own repository configuration.
    pub repos: Vec<(String, String)>,
    /// Pass `--nogpgcheck` to dnf.
    pub nogpgcheck: bool,
}

/// The host path of a sysctl's live value, as sysctl(8) maps it: `net.ipv4.ip_forward` ->
/// `/proc/sys/net/ipv4/ip_forward`. A key containing `/` uses `/` as its separator and may
/// then contain dots (`net/ipv4/conf/eth0.100/rp_filter`). Every segment must be non-empty,
/// not `.` or `..`, and made of letters, digits, `_`, `-`, `:`, `@` (and `.` in the `/` form).
pub fn sysctl_path(key: &str) -> Result<String, HostError> {
    let invalid = || HostError::InvalidSysctlKey {
        key: key.to_owned(),
    };
    let slash_form = key.contains('/');
    let separator = if slash_form { '/' } else { '.' };
    let mut path = String::from("/proc/sys");
    for segment in key.split(separator) {
        let ok = !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment.chars().all(|c| {
                c.is_ascii_alphanumeric()
                    || matches!(c, '_' | '-' | ':' | '@')
                    || (slash_form && c == '.')
            });
        if !ok {
            return Err(invalid());
        }
        path.push('/');
        path.push_str(segment);
    }
    Ok(path)
}

/// Users and groups of the root's account database, read once.
#[derive(Debug, Default)]
struct Accounts {
    users: Vec<(String, u32)>,
    groups: Vec<(String, u32)>,
}

impl Accounts {
    fn parse(text: &str) -> Vec<(String, u32)> {
        text.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| {
                let mut fields = l.split(':');
                let name = fields.next()?.trim();
                let id = fields.nth(1)?.trim().parse().ok()?;
                (!name.is_empty()).then(|| (name.to_owned(), id))
            })
            .collect()
    }
}

/// The host under a root directory: `/` on a real node, any directory as a sandbox.
#[derive(Debug)]
pub struct RealHost {
    root: PathBuf,
    /// The canonical root, to check that resolved paths stay inside a sandbox.
    canonical_root: PathBuf,
    sandbox: bool,
    accounts: Mutex<Option<Arc<Accounts>>>,
    packages: PackageOptions,
    tool_dir: OnceLock<Result<PathBuf, String>>,
}

impl Drop for RealHost {
    fn drop(&mut self) {
        if let Some(Ok(dir)) = self.tool_dir.get() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

impl RealHost {
    /// A host rooted at `root`, which must be an existing directory.
    pub fn new(root: impl Into<PathBuf>) -> Result<RealHost, HostError> {
        let root = root.into();
        let canonical_root = root
            .canonicalize()
            .map_err(io_err("resolve the root", &root))?;
        if !canonical_root.is_dir() {
            return Err(HostError::Io {
                op: "use as root",
                path: root,
                source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            });
        }
        let sandbox = canonical_root != Path::new("/");
        Ok(RealHost {
            root,
            canonical_root,
            sandbox,
            accounts: Mutex::new(None),
            packages: PackageOptions::default(),
            tool_dir: OnceLock::new(),
        })
    }

    /// Sets the package manager options.
    pub fn with_package_options(mut self, options: PackageOptions) -> RealHost {
        self.packages = options;
        self
    }

    /// The canonical root directory (absolute, symlinks resolved).
    pub fn canonical_root(&self) -> &Path {
        &self.canonical_root
    }

    /// Whether the root is a sandbox (not `/`).
    pub fn is_sandbox(&self) -> bool {
        self.sandbox
    }

    /// Where `path` lives on this machine. Under a sandbox root, the deepest existing
    /// ancestor of the final component must resolve inside the root (symlinked parents may
    /// not lead out of it); the final component is never followed.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, HostError> {
        let p = Path::new(path);
        if !p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(HostError::InvalidPath {
                path: path.to_owned(),
            });
        }
        let relative = p.strip_prefix("/").unwrap_or(p);
        if relative.as_os_str().is_empty() {
            return Ok(self.canonical_root.clone());
        }
        let full = self.canonical_root.join(relative);
        if self.sandbox {
            let mut ancestor = full.parent();
            while let Some(a) = ancestor {
                match a.canonicalize() {
                    Ok(resolved) => {
                        if !resolved.starts_with(&self.canonical_root) {
                            return Err(HostError::EscapesRoot {
                                path: path.to_owned(),
                                resolved,
                                root: self.canonical_root.clone(),
                            });
                        }
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => ancestor = a.parent(),
                    Err(e) => return Err(io_err("resolve", a)(e)),
                }
            }
        }
        Ok(full)
    }

    fn accounts(&self) -> Arc<Accounts> {
        let mut cached = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        cached
            .get_or_insert_with(|| {
                let read = |p: &str| {
                    self.resolve(p)
                        .ok()
                        .and_then(|p| fs::read_to_string(p).ok())
                        .unwrap_or_default()
                };
                Arc::new(Accounts {
                    users: Accounts::parse(&read("/etc/passwd")),
                    groups: Accounts::parse(&read("/etc/group")),
                })
            })
            .clone()
    }

    fn make_tool_dir() -> Result<PathBuf, String> {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("centossrv-agent-tools-{}-{n}", std::process::id()));
        let result = (|| {
            if dir.exists() {
                fs::remove_dir_all(&dir)?;
            }
            fs::DirBuilder::new().mode(0o700).create(&dir)?;
            fs::write(dir.join(".rpmmacros"), "%_dbpath /var/lib/rpm\n")?;
            fs::write(dir.join("dnf.conf"), "[main]\n")?;
            Ok::<_, io::Error>(())
        })();
        result
            .map(|()| dir.clone())
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))
    }

    fn sync_parent(full: &Path) -> Result<(), HostError> {
        let parent = full.parent().unwrap_or(Path::new("/"));
        File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io_err("sync directory", parent))
    }
}

/// The temporary name next to `full` used while replacing it atomically.
fn temp_path(full: &Path) -> PathBuf {
    let name = full
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = format!(".{name}{TEMP_SUFFIX}");
    let temp = if temp.len() > 255 {
        let digest = state::digest::sha256(name.as_bytes());
        format!(".{}{TEMP_SUFFIX}", &digest[7..39])
    } else {
        temp
    };
    full.with_file_name(temp)
}

fn remove_if_exists(path: &Path) -> Result<(), HostError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

impl Host for RealHost {
    fn root(&self) -> &Path {
        &self.root
    }

    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn stat(&self, path: &str) -> Result<Option<Meta>, HostError> {
        let full = self.resolve(path)?;
        let m = match fs::symlink_metadata(&full) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("stat", &full)(e)),
        };
        let t = m.file_type();
        let kind = if t.is_symlink() {
            EntryKind::Symlink
        } else if t.is_dir() {
            EntryKind::Directory
        } else if t.is_file() {
            EntryKind::File
        } else {
            EntryKind::Other
        };
        Ok(Some(Meta {
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            len: m.len(),
        }))
    }

    fn read_file(&self, path: &str) -> Result<Vec<u8>, HostError> {
        let full = self.resolve(path)?;
        fs::read(&full).map_err(io_err("read", &full))
    }

    fn read_link(&self, path: &str) -> Result<String, HostError> {
        let full = self.resolve(path)?;
        fs::read_link(&full)
            .map(|t| t.to_string_lossy().into_owned())
            .map_err(io_err("read link", &full))
    }

    fn write_file_atomic(
        &self,
        path: &str,
        content: &[u8],
        attrs: FileAttrs,
    ) -> Result<(), HostError> {
        let full = self.resolve(path)?;
        let temp = temp_path(&full);
        // A temporary file left by an interrupted run is garbage: nothing refers to it.
        remove_if_exists(&temp)?;
        let write = || -> Result<(), HostError> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)
                .map_err(io_err("create", &temp))?;
            f.write_all(content).map_err(io_err("write", &temp))?;
            let m = f.metadata().map_err(io_err("stat", &temp))?;
            let uid = attrs.uid.filter(|u| *u != m.uid());
            let gid = attrs.gid.filter(|g| *g != m.gid());
            if uid.is_some() || gid.is_some() {
                std::os::unix::fs::fchown(&f, uid, gid).map_err(io_err("chown", &temp))?;
            }
            // After chown, which clears setuid and setgid bits.
            f.set_permissions(Permissions::from_mode(attrs.mode))
                .map_err(io_err("chmod", &temp))?;
            f.sync_all().map_err(io_err("sync", &temp))?;
            fs::rename(&temp, &full).map_err(io_err("rename into place", &full))
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
        Self::sync_parent(&full)
    }

    fn set_mode(&self, path: &str, mode: u32) -> Result<(), HostError> {
        let full = self.resolve(path)?;
        fs::set_permissions(&full, Permissions::from_mode(mode)).map_err(io_err("chmod", &full))
    }

    fn set_owner(&self, path: &str, uid: Option<u32>, gid: Option<u32>) -> Result<(), HostError> {
        let full = self.resolve(path)?;
        std::os::unix::fs::lchown(&full, uid, gid).map_err(io_err("chown", &full))
    }

    fn create_dir(&self, path: &str, mode: u32) -> Result<(), HostError> {
        let full = self.resolve(path)?;
        fs::DirBuilder::new()
            .mode(mode)
            .create(&full)
            .map_err(io_err("create directory", &full))?;
        // The umask may have removed bits.
        fs::set_permissions(&full, Permissions::from_mode(mode)).map_err(io_err("chmod", &full))?;
        Self::sync_parent(&full)
    }

    fn remove_file(&self, path: &str) -> Result<(), HostError> {
        let full = self.resolve(path)?;
        fs::remove_file(&full).map_err(io_err("remove", &full))?;
        Self::sync_parent(&full)
    }

    fn remove_dir(&self, path: &str) -> Result<(), HostError> {
        let full = self.resolve(path)?;
        fs::remove_dir(&full).map_err(io_err("remove directory", &full))?;
        Self::sync_parent(&full)
    }

    fn symlink_atomic(&self, path: &str, target: &str) -> Result<(), HostError> {
        let full = self.resolve(path)?;
        let temp = temp_path(&full);
        remove_if_exists(&temp)?;
        std::os::unix::fs::symlink(target, &temp).map_err(io_err("create symlink", &temp))?;
        if let Err(e) = fs::rename(&temp, &full) {
            let _ = fs::remove_file(&temp);
            return Err(io_err("rename into place", &full)(e));
        }
        Self::sync_parent(&full)
    }

    fn user_name(&self, uid: u32) -> Option<String> {
        let accounts = self.accounts();
        let users = &accounts.users;
        users
            .iter()
            .find(|(_, id)| *id == uid)
            .map(|(n, _)| n.clone())
    }

    fn group_name(&self, gid: u32) -> Option<String> {
        let accounts = self.accounts();
        let groups = &accounts.groups;
        groups
            .iter()
            .find(|(_, id)| *id == gid)
            .map(|(n, _)| n.clone())
    }

    fn user_id(&self, name: &str) -> Option<u32> {
        let accounts = self.accounts();
        let users = &accounts.users;
        users.iter().find(|(n, _)| n == name).map(|(_, id)| *id)
    }

    fn group_id(&self, name: &str) -> Option<u32> {
        let accounts = self.accounts();
        let groups = &accounts.groups;
        groups.iter().find(|(n, _)| n == name).map(|(_, id)| *id)
    }

    fn read_sysctl(&self, key: &str) -> Result<Option<String>, HostError> {
        let full = self.resolve(&sysctl_path(key)?)?;
        match fs::read(&full) {
            Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &full)(e)),
        }
    }

    fn write_sysctl(&self, key: &str, value: &str) -> Result<(), HostError> {
        let path = sysctl_path(key)?;
        let full = self.resolve(&path)?;
        if self.sandbox {
            if let Some(parent) = full.parent() {
                fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
            }
            let mut text = value.to_owned();
            text.push('\n');
            return fs::write(&full, text).map_err(io_err("write", &full));
        }
        // The kernel's files: never create, write the value in one call.
        let mut f = match OpenOptions::new().write(true).open(&full) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(HostError::UnknownSysctl {
                    key: key.to_owned(),
                    path: full,
                });
            }
            Err(e) => return Err(io_err("open", &full)(e)),
        };
        f.write_all(value.as_bytes())
            .map_err(io_err("write", &full))
    }

    fn remove_sysctl(&self, key: &str) -> Result<(), HostError> {
        if !self.sandbox {
            return Ok(());
        }
        let full = self.resolve(&sysctl_path(key)?)?;
        remove_if_exists(&full)
    }

    fn run_tool(&self, program: &str, args: &[String]) -> Result<ToolOutput, HostError> {
        let home = self.tool_dir()?;
        let out = Command::new(program)
            .args(args)
            .env("HOME", &home)
            .env("LC_ALL", "C")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(io_err("run", Path::new(program)))?;
        Ok(ToolOutput {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    fn tool_dir(&self) -> Result<PathBuf, HostError> {
        self.tool_dir
            .get_or_init(Self::make_tool_dir)
            .clone()
            .map_err(|e| HostError::Io {
                op: "prepare",
                path: PathBuf::from("the agent's tool directory"),
                source: io::Error::other(e),
            })
    }

    fn package_options(&self) -> &PackageOptions {
        &self.packages
    }

    fn accounts_changed(&self) {
        *self.accounts.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_keys_map_to_proc_paths() {
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward").ok().as_deref(),
            Some("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            sysctl_path("net/ipv4/conf/eth0.100/rp_filter")
                .ok()
                .as_deref(),
            Some("/proc/sys/net/ipv4/conf/eth0.100/rp_filter")
        );
        for bad in [
            "",
            ".",
            "a..b",
            "../etc/passwd",
            "a/../b",
            "a b",
            "kernel.*",
            "/a",
        ] {
            assert!(sysctl_path(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn account_files_parse() {
        let users = Accounts::parse(
            "# c\nroot:x:0:0:root:/root:/bin/bash\nbad\nops:x:1500:1500::/home/ops:/bin/bash\n",
        );
        assert_eq!(users, vec![("root".into(), 0), ("ops".into(), 1500)]);
    }
}
