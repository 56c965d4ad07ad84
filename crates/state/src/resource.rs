//! Resource identities (`file:/etc/motd`) and the fully resolved spec of each resource type.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// The eight resource types a node can manage, in default apply order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    Package,
    Group,
    User,
    Directory,
    File,
    Symlink,
    Sysctl,
    Service,
}

impl ResourceKind {
    /// Every kind, in default apply order (packages first, services last).
    pub const ALL: [ResourceKind; 8] = [
        ResourceKind::Package,
        ResourceKind::Group,
        ResourceKind::User,
        ResourceKind::Directory,
        ResourceKind::File,
        ResourceKind::Symlink,
        ResourceKind::Sysctl,
        ResourceKind::Service,
    ];

    /// The keyword used in manifests and resource ids.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Package => "package",
            ResourceKind::Group => "group",
            ResourceKind::User => "user",
            ResourceKind::Directory => "directory",
            ResourceKind::File => "file",
            ResourceKind::Symlink => "symlink",
            ResourceKind::Sysctl => "sysctl",
            ResourceKind::Service => "service",
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ResourceKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        ResourceKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(())
    }
}

/// A resource's identity on a node: its type and name, written `type:name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceId {
    pub kind: ResourceKind,
    pub name: String,
}

impl ResourceId {
    pub fn new(kind: ResourceKind, name: impl Into<String>) -> Self {
        ResourceId {
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// Why a `type:name` reference could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseIdError {
    MissingColon,
    UnknownKind(String),
    EmptyName,
}

impl fmt::Display for ParseIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseIdError::MissingColon => f.write_str("expected `type:name`, e.g. `service:nginx`"),
            ParseIdError::UnknownKind(k) => write!(f, "unknown resource type `{k}`"),
            ParseIdError::EmptyName => f.write_str("the name after `type:` is empty"),
        }
    }
}

impl FromStr for ResourceId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, ParseIdError> {
        let (kind, name) = s.split_once(':').ok_or(ParseIdError::MissingColon)?;
        let kind = kind
            .parse()
            .map_err(|()| ParseIdError::UnknownKind(kind.to_owned()))?;
        if name.is_empty() {
            return Err(ParseIdError::EmptyName);
        }
        Ok(ResourceId::new(kind, name))
    }
}

impl Serialize for ResourceId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ResourceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether a resource should exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ensure {
    #[default]
    Present,
    Absent,
}

/// The resolved spec of one resource; the agent's whole instruction for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Spec {
    File(FileSpec),
    Directory(DirectorySpec),
    Symlink(SymlinkSpec),
    Package(PackageSpec),
    Service(ServiceSpec),
    User(UserSpec),
    Group(GroupSpec),
    Sysctl(SysctlSpec),
}

impl Spec {
    pub fn kind(&self) -> ResourceKind {
        match self {
            Spec::File(_) => ResourceKind::File,
            Spec::Directory(_) => ResourceKind::Directory,
            Spec::Symlink(_) => ResourceKind::Symlink,
            Spec::Package(_) => ResourceKind::Package,
            Spec::Service(_) => ResourceKind::Service,
            Spec::User(_) => ResourceKind::User,
            Spec::Group(_) => ResourceKind::Group,
            Spec::Sysctl(_) => ResourceKind::Sysctl,
        }
    }

    /// A copy safe to show anyone: sensitive file content replaced by nothing (the digest stays).
    pub fn redacted(&self) -> Spec {
        match self {
            Spec::File(f) if f.sensitive => Spec::File(FileSpec {
                content: None,
                ..f.clone()
            }),
            other => other.clone(),
        }
    }
}

/// A regular file. `content` is the exact bytes to write (UTF-8 text); `sha256` its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSpec {
    pub path: String,
    #[serde(default)]
    pub ensure: Ensure,
    /// The content to write; `None` when the content is not managed or has been redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Arc<str>>,
    /// `sha256:<hex>` of the content, present whenever the content is managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Content must never be shown: plans, reports and logs carry the digest only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectorySpec {
    pub path: String,
    #[serde(default)]
    pub ensure: Ensure,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymlinkSpec {
    pub path: String,
    #[serde(default)]
    pub ensure: Ensure,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// What version of a package should be installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageEnsure {
    /// Installed, any version.
    Present,
    /// The newest version the repositories offer.
    Latest,
    /// Not installed.
    Absent,
    /// Exactly this `version-release` (epoch optional), e.g. `1.20.1-14.el9`.
    Version(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageSpec {
    pub name: String,
    pub ensure: PackageEnsure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceState {
    Running,
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    No,
    Always,
    OnFailure,
}

/// What a service does when a resource that `notify`s it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyAction {
    /// Stop and start it again (the default).
    #[default]
    Restart,
    /// Ask the running process to reload its configuration (`ExecReload=`, or SIGHUP to the
    /// main process when the unit has none); the process keeps running.
    Reload,
}

impl NotifyAction {
    /// Whether this is the default (`restart`), which serialized states leave out.
    pub fn is_default(&self) -> bool {
        *self == NotifyAction::Restart
    }
}

/// A systemd unit file managed alongside the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitFile {
    pub content: Arc<str>,
    pub sha256: String,
}

/// How to tell that a running service is healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    Http { url: String },
    Tcp { address: String },
    Exec { command: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub probe: Probe,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub retries: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub name: String,
    pub state: ServiceState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<UnitFile>,
    #[serde(default)]
    pub restart: RestartPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// What a notification does to the running service. Not a property of the host: it is
    /// never observed, compared or planned as a change, only read by `plan()` to choose
    /// between a restart and a reload. Observed states carry the default.
    #[serde(default, skip_serializing_if = "NotifyAction::is_default")]
    pub on_notify: NotifyAction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSpec {
    pub name: String,
    #[serde(default)]
    pub ensure: Ensure,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Primary group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Supplementary groups, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub system: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSpec {
    pub name: String,
    #[serde(default)]
    pub ensure: Ensure,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub system: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysctlSpec {
    pub key: String,
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_id_round_trips() {
        let id: ResourceId = "file:/etc/nginx/nginx.conf".parse().expect("valid id");
        assert_eq!(id.kind, ResourceKind::File);
        assert_eq!(id.name, "/etc/nginx/nginx.conf");
        assert_eq!(id.to_string(), "file:/etc/nginx/nginx.conf");
        assert_eq!(
            "nginx".parse::<ResourceId>(),
            Err(ParseIdError::MissingColon)
        );
        assert_eq!(
            "svc:nginx".parse::<ResourceId>(),
            Err(ParseIdError::UnknownKind("svc".into()))
        );
        assert_eq!("file:".parse::<ResourceId>(), Err(ParseIdError::EmptyName));
    }
}
