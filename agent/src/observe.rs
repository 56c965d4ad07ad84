//! Observation: for each resource of a desired state (files, directories, symlinks,
//! sysctls, packages, users, groups, services), what is on the host now, in the `Spec`
//! vocabulary of `state::ObservedState`.

use crate::host::{EntryKind, Host, HostError, Meta, SYSCTL_PERSIST_PATH};
use state::digest::sha256;
use state::plan::MAX_DIFF_BYTES;
use state::{
    DesiredState, DirectorySpec, Ensure, FileSpec, ObservedState, ResourceId, ResourceKind, Spec,
    SymlinkSpec, SysctlSpec,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Suffix of an observed sysctl value whose live value is not what the agent persisted.
pub const NOT_PERSISTED: &str = " (not persisted)";
/// Observed value of a sysctl without a live value.
pub const NO_LIVE_VALUE: &str = "(no live value)";

/// Whether this agent build observes and applies resources of `kind`.
pub fn supported(kind: ResourceKind) -> bool {
    matches!(
        kind,
        ResourceKind::File
            | ResourceKind::Directory
            | ResourceKind::Symlink
            | ResourceKind::Sysctl
            | ResourceKind::Package
            | ResourceKind::User
            | ResourceKind::Group
            | ResourceKind::Service
    )
}

/// The failure reason for a resource of a type this build does not handle.
pub fn unsupported_reason(kind: ResourceKind) -> String {
    format!("resource type `{kind}` is not supported by this agent build yet")
}

/// What observing found: the state, and the resources that could not be observed (left out
/// of the state, with the reason).
#[derive(Debug, Clone)]
pub struct Observation {
    pub state: ObservedState,
    pub problems: BTreeMap<ResourceId, String>,
}

/// Observes every supported resource of `desired`.
pub fn observe(host: &dyn Host, desired: &DesiredState) -> Observation {
    observe_where(host, desired, |_| true)
}

/// Observes the resources of `desired` that `wanted` accepts.
pub fn observe_where(
    host: &dyn Host,
    desired: &DesiredState,
    wanted: impl Fn(&ResourceId) -> bool,
) -> Observation {
    let mut state = ObservedState::new(desired.node.clone());
    state.observed_at = Some(crate::time::rfc3339(host.now()));
    state.facts = facts(host);
    let mut problems = BTreeMap::new();
    // Read once, when the first sysctl needs it.
    let mut persisted: Option<Result<BTreeMap<String, String>, String>> = None;
    for r in desired.resources.iter().filter(|r| wanted(&r.id)) {
        let result = match &r.spec {
            Spec::File(d) => observe_file(host, d).map(Some).map_err(|e| e.to_string()),
            Spec::Directory(d) => observe_path(host, &d.path, ResourceKind::Directory)
                .map(Some)
                .map_err(|e| e.to_string()),
            Spec::Symlink(d) => observe_path(host, &d.path, ResourceKind::Symlink)
                .map(Some)
                .map_err(|e| e.to_string()),
            Spec::Sysctl(d) => {
                match persisted
                    .get_or_insert_with(|| persisted_sysctls(host).map_err(|e| e.to_string()))
                {
                    Ok(p) => observe_sysctl(host, &d.key, p)
                        .map(Some)
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.clone()),
                }
            }
            Spec::Package(d) => crate::packages::observe_package(host, d).map(|ensure| {
                Some(Spec::Package(state::PackageSpec {
                    name: d.name.clone(),
                    ensure,
                }))
            }),
            Spec::User(d) => crate::accounts::observe_user(host, d).map(|u| Some(Spec::User(u))),
            Spec::Group(d) => crate::accounts::observe_group(host, d).map(|g| Some(Spec::Group(g))),
            Spec::Service(d) => crate::services::observe(host, d).map(Some),
        };
        match result {
            Ok(Some(spec)) => {
                state.resources.insert(r.id.clone(), spec);
            }
            Ok(None) => {}
            Err(e) => {
                problems.insert(r.id.clone(), e);
            }
        }
    }
    Observation { state, problems }
}

/// Host facts: the agent's version and, when the root has one, the OS's pretty name.
fn facts(host: &dyn Host) -> BTreeMap<String, serde_json::Value> {
    let mut facts = BTreeMap::new();
    facts.insert(
        "agent".to_owned(),
        format!("centossrv-agent {}", env!("CARGO_PKG_VERSION")).into(),
    );
    if let Ok(text) = host.read_file("/etc/os-release") {
        let text = String::from_utf8_lossy(&text);
        if let Some(name) = text.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")) {
            facts.insert("os".to_owned(), name.trim_matches('"').to_owned().into());
        }
    }
    facts
}

/// The mode as four octal digits, as desired states write it (`0644`).
pub fn mode_string(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

/// The owner's name, or the uid as a string when the root's `etc/passwd` has no name for it.
pub fn owner_name(host: &dyn Host, uid: u32) -> String {
    host.user_name(uid).unwrap_or_else(|| uid.to_string())
}

/// The group's name, or the gid as a string when the root's `etc/group` has no name for it.
pub fn group_name(host: &dyn Host, gid: u32) -> String {
    host.group_name(gid).unwrap_or_else(|| gid.to_string())
}

fn observe_file(host: &dyn Host, desired: &FileSpec) -> Result<Spec, HostError> {
    let Some(meta) = host.stat(&desired.path)? else {
        return Ok(Spec::File(FileSpec {
            path: desired.path.clone(),
            ensure: Ensure::Absent,
            content: None,
            sha256: None,
            mode: None,
            owner: None,
            group: None,
            sensitive: desired.sensitive,
        }));
    };
    if meta.kind != EntryKind::File {
        return other_kind(host, &desired.path, meta);
    }
    let bytes = host.read_file(&desired.path)?;
    let digest = sha256(&bytes);
    let differs = desired.sha256.as_ref().is_some_and(|want| *want != digest);
    let content = if differs && !desired.sensitive && bytes.len() < MAX_DIFF_BYTES {
        String::from_utf8(bytes).ok().map(Arc::from)
    } else {
        None
    };
    Ok(Spec::File(FileSpec {
        path: desired.path.clone(),
        ensure: Ensure::Present,
        content,
        sha256: Some(digest),
        mode: Some(mode_string(meta.mode)),
        owner: Some(owner_name(host, meta.uid)),
        group: Some(group_name(host, meta.gid)),
        sensitive: desired.sensitive,
    }))
}

/// A directory or symlink resource (`want`) at `path`.
fn observe_path(host: &dyn Host, path: &str, want: ResourceKind) -> Result<Spec, HostError> {
    match host.stat(path)? {
        Some(meta) => other_kind(host, path, meta),
        None if want == ResourceKind::Directory => Ok(Spec::Directory(DirectorySpec {
            path: path.to_owned(),
            ensure: Ensure::Absent,
            mode: None,
            owner: None,
            group: None,
        })),
        None => Ok(Spec::Symlink(SymlinkSpec {
            path: path.to_owned(),
            ensure: Ensure::Absent,
            target: None,
        })),
    }
}

/// Describes whatever is at `path` by its own type, so a plan for a resource of another
/// type shows a type change. Special files are described as files without a digest.
fn other_kind(host: &dyn Host, path: &str, meta: Meta) -> Result<Spec, HostError> {
    Ok(match meta.kind {
        EntryKind::Directory => Spec::Directory(DirectorySpec {
            path: path.to_owned(),
            ensure: Ensure::Present,
            mode: Some(mode_string(meta.mode)),
            owner: Some(owner_name(host, meta.uid)),
            group: Some(group_name(host, meta.gid)),
        }),
        EntryKind::Symlink => Spec::Symlink(SymlinkSpec {
            path: path.to_owned(),
            ensure: Ensure::Present,
            target: Some(host.read_link(path)?),
        }),
        EntryKind::File | EntryKind::Other => Spec::File(FileSpec {
            path: path.to_owned(),
            ensure: Ensure::Present,
            content: None,
            sha256: None,
            mode: Some(mode_string(meta.mode)),
            owner: Some(owner_name(host, meta.uid)),
            group: Some(group_name(host, meta.gid)),
            sensitive: false,
        }),
    })
}

/// Whitespace-normalized sysctl value (`32768\t60999\n` -> `32768 60999`).
pub fn normalize_sysctl(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The sysctl values persisted in the agent's drop-in file (keys with `.` separators).
pub fn persisted_sysctls(host: &dyn Host) -> Result<BTreeMap<String, String>, HostError> {
    let bytes = match host.read_file(SYSCTL_PERSIST_PATH) {
        Ok(b) => b,
        Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => return Ok(BTreeMap::new()),
        Err(e) => return Err(e),
    };
    Ok(parse_sysctl_conf(&String::from_utf8_lossy(&bytes)))
}

/// Parses `key = value` lines (sysctl.d(5)); comments start with `#` or `;`.
pub fn parse_sysctl_conf(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            let k = k.trim().trim_start_matches('-');
            Some((canonical_sysctl_key(k), normalize_sysctl(v)))
        })
        .collect()
}

/// A sysctl key in its `.` form (`net/ipv4/ip_forward` -> `net.ipv4.ip_forward`); keys whose
/// segments contain dots keep the `/` form.
pub fn canonical_sysctl_key(key: &str) -> String {
    if key.contains('/') && !key.split('/').any(|s| s.contains('.')) {
        key.replace('/', ".")
    } else {
        key.to_owned()
    }
}

/// The observed value of a sysctl: its live value, marked ` (not persisted)` when the agent's
/// drop-in file does not hold the same value (so a plan shows a change until it does), or
/// `(no live value)` when it has none.
fn observe_sysctl(
    host: &dyn Host,
    key: &str,
    persisted: &BTreeMap<String, String>,
) -> Result<Spec, HostError> {
    let value = match host.read_sysctl(key)? {
        Some(live) => {
            let live = normalize_sysctl(&live);
            if persisted.get(&canonical_sysctl_key(key)) == Some(&live) {
                live
            } else {
                format!("{live}{NOT_PERSISTED}")
            }
        }
        None => NO_LIVE_VALUE.to_owned(),
    };
    Ok(Spec::Sysctl(SysctlSpec {
        key: key.to_owned(),
        value,
    }))
}
