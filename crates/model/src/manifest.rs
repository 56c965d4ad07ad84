//! The fleet repository format as Rust types: the source of the JSON Schemas in `schema/`
//! and what the loader deserializes each document into.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// The only `apiVersion` this release reads.
pub const API_VERSION: &str = "centossrv.io/v1";

/// Names and labels of one object.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Unique among objects of the same kind. Lower-case letters, digits, `-` and `.`.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Key/value labels that role selectors match on.
    #[serde(default)]
    pub labels: BTreeMap<LabelKey, LabelValue>,
    /// Free-form notes for humans and tools; never interpreted.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// A label key such as `role` or `dc`.
pub type LabelKey = String;
/// A label value such as `web` or `fra1`.
pub type LabelValue = String;

/// Variables available to templates, by name. Values may be any YAML.
pub type Vars = BTreeMap<String, Json>;

macro_rules! document {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $spec:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct $name {
            /// Always `centossrv.io/v1`.
            #[schemars(extend("const" = "centossrv.io/v1"))]
            pub api_version: String,
            #[doc = concat!("Always `", $kind, "`.")]
            #[schemars(extend("const" = $kind))]
            pub kind: String,
            pub metadata: Metadata,
            #[serde(default)]
            pub spec: $spec,
        }
    };
}

document!(
    /// Fleet-wide settings: one per repository, in `centossrv.yaml`. Optional; defaults apply
    /// when absent.
    FleetDoc, "Fleet", FleetSpec
);
document!(
    /// One server of the inventory, usually in `nodes/<name>.yaml`.
    NodeDoc, "Node", NodeSpec
);
document!(
    /// A set of resources applied to every node its selector matches, usually in
    /// `roles/<name>.yaml`.
    RoleDoc, "Role", RoleSpec
);

/// Fleet-wide settings.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FleetSpec {
    /// Variables for every node; role and node vars override them.
    #[serde(default)]
    pub vars: Vars,
    /// What agents do when a node drifts from its desired state.
    #[serde(default)]
    pub drift: DriftSettings,
    /// What happens when a node changed between plan approval and apply.
    #[serde(default)]
    pub stale_apply: StaleApply,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DriftSettings {
    /// `report` records drift; `enforce` also reverts it. Default `report`.
    #[serde(default)]
    pub mode: DriftMode,
    /// How often agents re-observe what has no change events (packages, sysctls), e.g. `5m`.
    #[serde(default)]
    pub interval: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DriftMode {
    #[default]
    Report,
    Enforce,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StaleApply {
    /// Hold the apply until an operator approves the new plan.
    #[default]
    Hold,
    /// Re-plan and apply automatically.
    Replan,
}

/// One server.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeSpec {
    /// Host name or IP address the node is reached at; informational for templates.
    #[serde(default)]
    pub address: Option<String>,
    /// Node variables: the highest precedence.
    #[serde(default)]
    pub vars: Vars,
}

/// A role: which nodes, which variables, which resources.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RoleSpec {
    /// Which nodes get this role. `{}` selects every node.
    pub selector: Selector,
    /// Role variables, seen only by this role's templates; override fleet vars, overridden
    /// by node vars.
    #[serde(default)]
    pub vars: Vars,
    /// The resources, Ansible-style: the first key names the type and the resource.
    #[serde(default)]
    pub resources: Vec<Resource>,
}

/// A label selector, as in Kubernetes: every condition must hold.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Selector {
    /// Labels the node must have with exactly these values.
    #[serde(default)]
    pub match_labels: BTreeMap<LabelKey, LabelValue>,
    /// Set-based conditions on labels.
    #[serde(default)]
    pub match_expressions: Vec<SelectorRequirement>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SelectorRequirement {
    pub key: LabelKey,
    pub operator: SelectorOperator,
    /// Required for `In` and `NotIn`; must be absent for `Exists` and `DoesNotExist`.
    #[serde(default)]
    pub values: Vec<LabelValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// One resource of a role. The type key (`file:`, `package:`...) names the type and the
/// resource; the other keys configure it.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(untagged)]
pub enum Resource {
    File(FileRes),
    Directory(DirectoryRes),
    Symlink(SymlinkRes),
    Package(PackageRes),
    Service(ServiceRes),
    User(UserRes),
    Group(GroupRes),
    Sysctl(SysctlRes),
}

/// Present or absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EnsureDecl {
    #[default]
    Present,
    Absent,
}

/// A `type:name` reference to another resource on the same node, e.g. `service:nginx`.
pub type Reference = String;

/// A file mode as a quoted octal string, e.g. `"0644"`.
pub type Mode = String;

/// A managed regular file. Exactly one of `content`, `source`, `template` unless
/// `state: absent`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileRes {
    /// Absolute path of the file.
    pub file: String,
    #[serde(default)]
    pub state: EnsureDecl,
    /// The content, inline.
    pub content: Option<String>,
    /// A repository path whose bytes are copied verbatim, e.g. `files/motd`.
    pub source: Option<String>,
    /// A repository path of a Jinja2 template rendered per node, e.g. `files/nginx.conf.j2`.
    pub template: Option<String>,
    /// Octal permission bits as a quoted string, e.g. `"0644"`.
    #[schemars(regex(pattern = r"^0?[0-7]{3,4}$"))]
    pub mode: Option<Mode>,
    pub owner: Option<String>,
    pub group: Option<String>,
    /// Never show the content: plans, reports and logs carry its digest only.
    #[serde(default)]
    pub sensitive: bool,
    /// Resources applied before this one.
    #[serde(default)]
    pub requires: Vec<Reference>,
    /// Services restarted (or reloaded, per their `onNotify`) when this resource changes.
    #[serde(default)]
    pub notify: Vec<Reference>,
}

/// A managed directory.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DirectoryRes {
    /// Absolute path of the directory.
    pub directory: String,
    #[serde(default)]
    pub state: EnsureDecl,
    /// Octal permission bits as a quoted string, e.g. `"0755"`.
    #[schemars(regex(pattern = r"^0?[0-7]{3,4}$"))]
    pub mode: Option<Mode>,
    pub owner: Option<String>,
    pub group: Option<String>,
    #[serde(default)]
    pub requires: Vec<Reference>,
    #[serde(default)]
    pub notify: Vec<Reference>,
}

/// A managed symbolic link.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SymlinkRes {
    /// Absolute path of the link.
    pub symlink: String,
    /// What the link points to. Required unless `state: absent`.
    pub target: Option<String>,
    #[serde(default)]
    pub state: EnsureDecl,
    #[serde(default)]
    pub requires: Vec<Reference>,
    #[serde(default)]
    pub notify: Vec<Reference>,
}

/// An RPM package, installed and removed with dnf.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PackageRes {
    /// Package name, e.g. `nginx`.
    pub package: String,
    /// Exact `version-release` (epoch optional), e.g. `1.20.1-14.el9`. Excludes `state`.
    pub version: Option<String>,
    /// `present` (default), `latest` or `absent`.
    pub state: Option<PackageStateDecl>,
    #[serde(default)]
    pub requires: Vec<Reference>,
    #[serde(default)]
    pub notify: Vec<Reference>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PackageStateDecl {
    Present,
    Latest,
    Absent,
}

/// A systemd service (or, on hosts without systemd, a supervised process).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceRes {
    /// Unit name without `.service`, e.g. `nginx`.
    pub service: String,
    /// `running` (default) or `stopped`.
    pub state: Option<ServiceStateDecl>,
    /// Start at boot. Left as found when omitted.
    pub enabled: Option<bool>,
    /// The unit file, when centossrv manages it (`/etc/systemd/system/<name>.service`).
    pub unit: Option<UnitDecl>,
    /// Restart policy: `no` (default), `always` or `on-failure`.
    pub restart: Option<RestartDecl>,
    /// How to tell the service is healthy after a start or restart.
    pub health_check: Option<HealthCheckDecl>,
    /// Environment variables for the service's processes.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// What a change of a resource that `notify`s this service does to it while it runs:
    /// `restart` (default) or `reload` (`ExecReload=`, or SIGHUP to the main process when
    /// the unit has none). A change of its unit or drop-in (`restart`, `environment`,
    /// `healthCheck`) restarts it anyway.
    pub on_notify: Option<OnNotifyDecl>,
    #[serde(default)]
    pub requires: Vec<Reference>,
    #[serde(default)]
    pub notify: Vec<Reference>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnNotifyDecl {
    Restart,
    Reload,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ServiceStateDecl {
    Running,
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartDecl {
    No,
    Always,
    OnFailure,
}

/// A unit file body: exactly one of `content`, `source`, `template`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UnitDecl {
    pub content: Option<String>,
    pub source: Option<String>,
    pub template: Option<String>,
}

/// A health check: exactly one of `http`, `tcp`, `exec`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HealthCheckDecl {
    /// A URL that must answer 2xx, e.g. `http://127.0.0.1/healthz`.
    pub http: Option<String>,
    /// A `host:port` that must accept a connection.
    pub tcp: Option<String>,
    /// A command (argv) that must exit 0.
    pub exec: Option<Vec<String>>,
    /// Time between checks, e.g. `10s` (default).
    pub interval: Option<String>,
    /// Time one check may take, e.g. `2s` (default).
    pub timeout: Option<String>,
    /// Consecutive failures before the service counts as unhealthy (default 3).
    #[schemars(range(min = 1, max = 100))]
    pub retries: Option<u32>,
}

/// A local user account.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UserRes {
    /// Login name.
    pub user: String,
    #[serde(default)]
    pub state: EnsureDecl,
    pub uid: Option<u32>,
    /// Primary group.
    pub group: Option<String>,
    /// Supplementary groups.
    #[serde(default)]
    pub groups: Vec<String>,
    pub shell: Option<String>,
    pub home: Option<String>,
    pub comment: Option<String>,
    /// A system account (low uid, no aging).
    #[serde(default)]
    pub system: bool,
    #[serde(default)]
    pub requires: Vec<Reference>,
    #[serde(default)]
    pub notify: Vec<Reference>,
}

/// A local group.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupRes {
    /// Group name.
    pub group: String,
    #[serde(default)]
    pub state: EnsureDecl,
    pub gid: Option<u32>,
    #[serde(default)]
    pub system: bool,
    #[serde(default)]
    pub requires: Vec<Reference>,
    #[serde(default)]
    pub notify: Vec<Reference>,
}

/// A kernel parameter, set at runtime and persisted in `/etc/sysctl.d/`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SysctlRes {
    /// Parameter name, e.g. `net.core.somaxconn`.
    #[schemars(regex(pattern = r"^[a-z0-9_]+(\.[A-Za-z0-9_*-]+)+$"))]
    pub sysctl: String,
    pub value: SysctlValue,
    #[serde(default)]
    pub requires: Vec<Reference>,
    #[serde(default)]
    pub notify: Vec<Reference>,
}

/// A sysctl value: a string or an integer.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SysctlValue {
    Int(i64),
    Str(String),
}

/// The keys that name a resource's type, in the order they are tried. `group` is last:
/// files, directories and users also have a `group` attribute.
pub const TYPE_KEYS: [&str; 8] = [
    "file",
    "directory",
    "symlink",
    "package",
    "service",
    "user",
    "sysctl",
    "group",
];

/// The type key of a resource mapping: the one type key present other than `group`, or
/// `group` when it is the only one. `Err` lists what was found when that is not exactly one.
pub fn type_key_of<'a>(
    keys: impl Iterator<Item = &'a str>,
) -> Result<&'static str, Vec<&'static str>> {
    let present: Vec<&'static str> = {
        let keys: Vec<&str> = keys.collect();
        TYPE_KEYS.into_iter().filter(|t| keys.contains(t)).collect()
    };
    let primary: Vec<&'static str> = present.iter().copied().filter(|k| *k != "group").collect();
    match (primary.as_slice(), present.as_slice()) {
        ([one], _) => Ok(one),
        ([], ["group"]) => Ok("group"),
        _ => Err(primary),
    }
}

impl<'de> Deserialize<'de> for Resource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let map = serde_json::Map::<String, Json>::deserialize(d)?;
        let key = type_key_of(map.keys().map(String::as_str)).map_err(|found| {
            D::Error::custom(format!(
                "a resource needs exactly one type key, found {found:?}"
            ))
        })?;
        let value = Json::Object(map);
        let res = match key {
            "file" => serde_json::from_value(value).map(Resource::File),
            "directory" => serde_json::from_value(value).map(Resource::Directory),
            "symlink" => serde_json::from_value(value).map(Resource::Symlink),
            "package" => serde_json::from_value(value).map(Resource::Package),
            "service" => serde_json::from_value(value).map(Resource::Service),
            "user" => serde_json::from_value(value).map(Resource::User),
            "sysctl" => serde_json::from_value(value).map(Resource::Sysctl),
            _ => serde_json::from_value(value).map(Resource::Group),
        };
        res.map_err(D::Error::custom)
    }
}
