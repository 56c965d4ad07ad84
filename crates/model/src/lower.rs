//! Lowers each role's resource declarations into resolved specs (or a template to render per
//! node), checking everything that does not depend on which node the role lands on.

use crate::diagnostic::{Code, Diagnostic};
use crate::loader::Located;
use crate::manifest::{
    EnsureDecl, FileRes, HealthCheckDecl, OnNotifyDecl, PackageStateDecl, Resource, RestartDecl,
    RoleDoc, ServiceRes, ServiceStateDecl, SysctlValue, UnitDecl,
};
use crate::snapshot::Snapshot;
use crate::template::Templates;
use crate::yaml::Pos;
use state::digest::sha256;
use state::{
    DirectorySpec, Ensure, FileSpec, GroupSpec, HealthCheck, NotifyAction, PackageEnsure,
    PackageSpec, Probe, ResourceId, ResourceKind, RestartPolicy, ServiceSpec, ServiceState, Spec,
    SymlinkSpec, SysctlSpec, UnitFile, UserSpec,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// What a declaration becomes on every node it lands on.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// The same spec everywhere.
    Static(Spec),
    /// A file whose content is a template rendered per node.
    FileTemplate { base: FileSpec, template: String },
    /// A service whose unit file is a template rendered per node.
    UnitTemplate { base: ServiceSpec, template: String },
}

impl Body {
    /// The template to render per node, if the body has one.
    pub fn template(&self) -> Option<&str> {
        match self {
            Body::Static(_) => None,
            Body::FileTemplate { template, .. } | Body::UnitTemplate { template, .. } => {
                Some(template)
            }
        }
    }

    /// The spec with `text` (whose digest is `sha256`) as the rendered file content or unit
    /// file (a static body is returned as it is).
    pub fn with_rendered(&self, text: Arc<str>, sha256: String) -> Spec {
        match self {
            Body::Static(spec) => spec.clone(),
            Body::FileTemplate { base, .. } => Spec::File(FileSpec {
                sha256: Some(sha256),
                content: Some(text),
                ..base.clone()
            }),
            Body::UnitTemplate { base, .. } => Spec::Service(ServiceSpec {
                unit: Some(UnitFile {
                    sha256,
                    content: text,
                }),
                ..base.clone()
            }),
        }
    }
}

/// One lowered resource declaration of a role.
#[derive(Debug, Clone, PartialEq)]
pub struct Decl {
    pub id: ResourceId,
    pub body: Body,
    pub requires: Vec<ResourceId>,
    pub notify: Vec<ResourceId>,
    pub file: String,
    pub pos: Pos,
}

struct Ctx<'a> {
    role: &'a Located<RoleDoc>,
    snapshot: &'a Snapshot,
    templates: &'a Templates,
    diags: &'a mut Vec<Diagnostic>,
    index: usize,
}

impl Ctx<'_> {
    fn ptr(&self, field: &str) -> String {
        if field.is_empty() {
            format!("/spec/resources/{}", self.index)
        } else {
            format!("/spec/resources/{}/{field}", self.index)
        }
    }

    fn error(&mut self, code: Code, field: &str, message: impl Into<String>) -> &mut Diagnostic {
        let pos = self.role.value_pos(&self.ptr(field));
        self.diags.push(Diagnostic::new(
            code,
            &self.role.file,
            pos.line,
            pos.column,
            message,
        ));
        let last = self.diags.len() - 1;
        &mut self.diags[last]
    }

    fn path(&mut self, field: &str, path: &str) {
        let problem = if !path.starts_with('/') {
            Some("must be an absolute path")
        } else if path.split('/').any(|c| c == ".." || c == ".") {
            Some("must not contain `.` or `..` components")
        } else if path.len() > 1 && path.ends_with('/') {
            Some("must not end with `/`")
        } else if path.contains("//") {
            Some("must not contain `//`")
        } else if path.contains('\0') {
            Some("must not contain NUL")
        } else {
            None
        };
        if let Some(problem) = problem {
            self.error(
                Code::InvalidField,
                field,
                format!("path `{path}` {problem}"),
            );
        }
    }

    /// Reads a repository file for `source:`; reports missing or non-UTF-8 files.
    fn source(&mut self, field: &str, path: &str) -> Option<Arc<str>> {
        match self.snapshot.get(path) {
            None => {
                let hint = self.near_file(path);
                self.error(
                    Code::SourceMissing,
                    field,
                    format!("source file `{path}` is not in the repository"),
                )
                .hint = hint;
                None
            }
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => Some(Arc::from(text)),
                Err(e) => {
                    self.error(
                        Code::NotUtf8,
                        field,
                        format!(
                            "source file `{path}` is not valid UTF-8 (byte {})",
                            e.valid_up_to()
                        ),
                    );
                    None
                }
            },
        }
    }

    fn template(&mut self, field: &str, path: &str) -> bool {
        if self.snapshot.get(path).is_none() {
            let hint = self.near_file(path);
            self.error(
                Code::TemplateMissing,
                field,
                format!("template `{path}` is not in the repository"),
            )
            .hint = hint;
            return false;
        }
        if let Some(bytes) = self.snapshot.get(path)
            && crate::loader::decode(path, bytes, self.diags).is_none()
        {
            return false;
        }
        match self.templates.check(path) {
            Ok(()) => true,
            Err(d) => {
                self.diags.push(d);
                false
            }
        }
    }

    fn near_file(&self, path: &str) -> Option<String> {
        crate::diagnostic::did_you_mean(path, self.snapshot.files.keys().map(String::as_str))
            .map(|p| format!("did you mean `{p}`?"))
            .or_else(|| {
                (!path.starts_with("files/")).then(|| {
                    "paths are relative to the repository root, e.g. `files/motd`".to_owned()
                })
            })
    }

    fn mode(&mut self, mode: &Option<String>) -> Option<String> {
        mode.as_ref().map(|m| {
            if m.len() == 3 {
                format!("0{m}")
            } else {
                m.clone()
            }
        })
    }

    fn duration(&mut self, field: &str, value: &Option<String>, default: Duration) -> u64 {
        let Some(text) = value else {
            return u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
        };
        match humantime::parse_duration(text) {
            Ok(d) if !d.is_zero() => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            Ok(_) => {
                self.error(Code::InvalidField, field, "duration must be more than zero");
                0
            }
            Err(_) => {
                self.error(
                    Code::InvalidField,
                    field,
                    format!("`{text}` is not a duration"),
                )
                .hint = Some("write durations like `10s`, `500ms` or `2m`".into());
                0
            }
        }
    }

    fn refs(&mut self, field: &str, refs: &[String], notify: bool) -> Vec<ResourceId> {
        let mut out = Vec::new();
        for (i, r) in refs.iter().enumerate() {
            let f = format!("{field}/{i}");
            match r.parse::<ResourceId>() {
                Ok(id) => {
                    if notify && id.kind != ResourceKind::Service {
                        self.error(
                            Code::NotifyNotService,
                            &f,
                            format!("`notify` target `{id}` is not a service"),
                        )
                        .hint = Some(
                            "only services can be notified; use `requires` for ordering".into(),
                        );
                    } else {
                        out.push(id);
                    }
                }
                Err(e) => {
                    let kinds = || {
                        ResourceKind::ALL
                            .iter()
                            .map(|k| format!("`{}:`", k.as_str()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    let hint = match &e {
                        state::resource::ParseIdError::UnknownKind(k) => {
                            crate::diagnostic::did_you_mean(
                                k,
                                ResourceKind::ALL.iter().map(|k| k.as_str()),
                            )
                            .map(|k| format!("did you mean `{k}:`?"))
                            .unwrap_or_else(|| format!("the types are {}", kinds()))
                        }
                        state::resource::ParseIdError::MissingColon => {
                            // A bare name: suggest the role's resources of that name.
                            let same_name: Vec<String> = self
                                .role
                                .doc
                                .spec
                                .resources
                                .iter()
                                .map(resource_id)
                                .filter(|id| id.name == *r)
                                .map(|id| format!("`{id}`"))
                                .collect();
                            if same_name.is_empty() {
                                format!("prefix the type, one of {}", kinds())
                            } else {
                                format!("did you mean {}?", same_name.join(" or "))
                            }
                        }
                        _ => "write references as `type:name`, e.g. `service:nginx`".into(),
                    };
                    let hint = Some(hint);
                    self.error(Code::BadReference, &f, format!("`{r}`: {e}"))
                        .hint = hint;
                }
            }
        }
        out
    }
}

fn ensure(e: EnsureDecl) -> Ensure {
    match e {
        EnsureDecl::Present => Ensure::Present,
        EnsureDecl::Absent => Ensure::Absent,
    }
}

/// Lowers every resource of `role`; reports problems and skips what cannot be lowered.
pub fn lower_role(
    role: &Located<RoleDoc>,
    snapshot: &Snapshot,
    templates: &Templates,
    diags: &mut Vec<Diagnostic>,
    rejected: &mut std::collections::HashSet<ResourceId>,
) -> Vec<Decl> {
    let mut out = Vec::new();
    let mut seen: HashMap<ResourceId, Pos> = HashMap::new();
    for (index, res) in role.doc.spec.resources.iter().enumerate() {
        let mut ctx = Ctx {
            role,
            snapshot,
            templates,
            diags,
            index,
        };
        let before = ctx.diags.len();
        let lowered = lower_one(&mut ctx, res);
        let pos = role.pos(&ctx.ptr(""));
        let pos = role.value_pos(&ctx.ptr("")).min(pos);
        let (requires, notify) = common(res);
        let requires = ctx.refs("requires", requires, false);
        let notify = ctx.refs("notify", notify, true);
        if ctx.diags.len() > before {
            rejected.insert(resource_id(res));
            continue;
        }
        let Some((id, body)) = lowered else {
            rejected.insert(resource_id(res));
            continue;
        };
        if let Some(first) = seen.get(&id) {
            diags.push(
                Diagnostic::new(
                    Code::DuplicateResource,
                    &role.file,
                    pos.line,
                    pos.column,
                    format!(
                        "`{id}` is declared twice in role `{}`",
                        role.doc.metadata.name
                    ),
                )
                .related(
                    &role.file,
                    first.line,
                    first.column,
                    "first declared here",
                ),
            );
            continue;
        }
        seen.insert(id.clone(), pos);
        out.push(Decl {
            id,
            body,
            requires,
            notify,
            file: role.file.clone(),
            pos,
        });
    }
    out
}

/// The id a resource declaration has, before any check.
fn resource_id(res: &Resource) -> ResourceId {
    match res {
        Resource::File(r) => ResourceId::new(ResourceKind::File, &r.file),
        Resource::Directory(r) => ResourceId::new(ResourceKind::Directory, &r.directory),
        Resource::Symlink(r) => ResourceId::new(ResourceKind::Symlink, &r.symlink),
        Resource::Package(r) => ResourceId::new(ResourceKind::Package, &r.package),
        Resource::Service(r) => ResourceId::new(ResourceKind::Service, &r.service),
        Resource::User(r) => ResourceId::new(ResourceKind::User, &r.user),
        Resource::Group(r) => ResourceId::new(ResourceKind::Group, &r.group),
        Resource::Sysctl(r) => ResourceId::new(ResourceKind::Sysctl, &r.sysctl),
    }
}

fn common(res: &Resource) -> (&[String], &[String]) {
    match res {
        Resource::File(r) => (&r.requires, &r.notify),
        Resource::Directory(r) => (&r.requires, &r.notify),
        Resource::Symlink(r) => (&r.requires, &r.notify),
        Resource::Package(r) => (&r.requires, &r.notify),
        Resource::Service(r) => (&r.requires, &r.notify),
        Resource::User(r) => (&r.requires, &r.notify),
        Resource::Group(r) => (&r.requires, &r.notify),
        Resource::Sysctl(r) => (&r.requires, &r.notify),
    }
}

fn lower_one(ctx: &mut Ctx<'_>, res: &Resource) -> Option<(ResourceId, Body)> {
    match res {
        Resource::File(r) => lower_file(ctx, r),
        Resource::Directory(r) => {
            ctx.path("directory", &r.directory);
            let mode = ctx.mode(&r.mode);
            Some((
                ResourceId::new(ResourceKind::Directory, &r.directory),
                Body::Static(Spec::Directory(DirectorySpec {
                    path: r.directory.clone(),
                    ensure: ensure(r.state),
                    mode,
                    owner: r.owner.clone(),
                    group: r.group.clone(),
                })),
            ))
        }
        Resource::Symlink(r) => {
            ctx.path("symlink", &r.symlink);
            if r.state == EnsureDecl::Present && r.target.is_none() {
                ctx.error(Code::InvalidField, "", "a symlink needs a `target`");
            }
            if r.state == EnsureDecl::Absent && r.target.is_some() {
                ctx.error(
                    Code::InvalidField,
                    "target",
                    "an absent symlink has no `target`",
                );
            }
            Some((
                ResourceId::new(ResourceKind::Symlink, &r.symlink),
                Body::Static(Spec::Symlink(SymlinkSpec {
                    path: r.symlink.clone(),
                    ensure: ensure(r.state),
                    target: r.target.clone(),
                })),
            ))
        }
        Resource::Package(r) => {
            if r.package.trim().is_empty() || r.package.contains(char::is_whitespace) {
                ctx.error(
                    Code::InvalidField,
                    "package",
                    format!("`{}` is not a package name", r.package),
                );
            }
            let ensure = match (&r.version, r.state) {
                (Some(_), Some(_)) => {
                    ctx.error(
                        Code::InvalidField,
                        "state",
                        "give either `version` or `state`, not both",
                    )
                    .hint = Some("`version` implies the package is installed".into());
                    return None;
                }
                (Some(v), None) => {
                    if v.trim().is_empty() {
                        ctx.error(Code::InvalidField, "version", "`version` is empty");
                    }
                    PackageEnsure::Version(v.clone())
                }
                (None, Some(PackageStateDecl::Latest)) => PackageEnsure::Latest,
                (None, Some(PackageStateDecl::Absent)) => PackageEnsure::Absent,
                (None, Some(PackageStateDecl::Present) | None) => PackageEnsure::Present,
            };
            Some((
                ResourceId::new(ResourceKind::Package, &r.package),
                Body::Static(Spec::Package(PackageSpec {
                    name: r.package.clone(),
                    ensure,
                })),
            ))
        }
        Resource::Service(r) => lower_service(ctx, r),
        Resource::User(r) => {
            let mut groups = r.groups.clone();
            groups.sort();
            groups.dedup();
            if let Some(home) = &r.home {
                ctx.path("home", home);
            }
            Some((
                ResourceId::new(ResourceKind::User, &r.user),
                Body::Static(Spec::User(UserSpec {
                    name: r.user.clone(),
                    ensure: ensure(r.state),
                    uid: r.uid,
                    group: r.group.clone(),
                    groups,
                    shell: r.shell.clone(),
                    home: r.home.clone(),
                    comment: r.comment.clone(),
                    system: r.system,
                })),
            ))
        }
        Resource::Group(r) => Some((
            ResourceId::new(ResourceKind::Group, &r.group),
            Body::Static(Spec::Group(GroupSpec {
                name: r.group.clone(),
                ensure: ensure(r.state),
                gid: r.gid,
                system: r.system,
            })),
        )),
        Resource::Sysctl(r) => {
            let value = match &r.value {
                SysctlValue::Int(i) => i.to_string(),
                SysctlValue::Str(s) => s.clone(),
            };
            Some((
                ResourceId::new(ResourceKind::Sysctl, &r.sysctl),
                Body::Static(Spec::Sysctl(SysctlSpec {
                    key: r.sysctl.clone(),
                    value,
                })),
            ))
        }
    }
}

fn lower_file(ctx: &mut Ctx<'_>, r: &FileRes) -> Option<(ResourceId, Body)> {
    ctx.path("file", &r.file);
    let id = ResourceId::new(ResourceKind::File, &r.file);
    let mut base = FileSpec {
        path: r.file.clone(),
        ensure: ensure(r.state),
        content: None,
        sha256: None,
        mode: ctx.mode(&r.mode),
        owner: r.owner.clone(),
        group: r.group.clone(),
        sensitive: r.sensitive,
    };
    let given: Vec<&str> = [
        ("content", r.content.is_some()),
        ("source", r.source.is_some()),
        ("template", r.template.is_some()),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(k, _)| k)
    .collect();
    if r.state == EnsureDecl::Absent {
        if let Some(first) = given.first() {
            ctx.error(Code::InvalidField, first, "an absent file has no content");
            return None;
        }
        return Some((id, Body::Static(Spec::File(base))));
    }
    if given.len() > 1 {
        ctx.error(
            Code::InvalidField,
            given[1],
            format!(
                "give one of `content`, `source`, `template`; found {}",
                given.join(" and ")
            ),
        );
        return None;
    }
    if let Some(content) = &r.content {
        base.sha256 = Some(sha256(content.as_bytes()));
        base.content = Some(Arc::from(content.as_str()));
    } else if let Some(source) = &r.source {
        let text = ctx.source("source", source)?;
        base.sha256 = Some(sha256(text.as_bytes()));
        base.content = Some(text);
    } else if let Some(template) = &r.template {
        if !ctx.template("template", template) {
            return None;
        }
        return Some((
            id,
            Body::FileTemplate {
                base,
                template: template.clone(),
            },
        ));
    }
    // Neither: the file's metadata is managed and its content left alone.
    Some((id, Body::Static(Spec::File(base))))
}

fn lower_service(ctx: &mut Ctx<'_>, r: &ServiceRes) -> Option<(ResourceId, Body)> {
    if let Some(stripped) = r.service.strip_suffix(".service") {
        ctx.error(
            Code::InvalidField,
            "service",
            format!("write the unit name without `.service`: `{stripped}`"),
        );
    }
    if r.service.is_empty() || r.service.contains(['/', ' ']) {
        ctx.error(
            Code::InvalidField,
            "service",
            format!("`{}` is not a unit name", r.service),
        );
    }
    let health_check = r.health_check.as_ref().and_then(|h| health(ctx, h));
    let mut base = ServiceSpec {
        name: r.service.clone(),
        state: match r.state {
            Some(ServiceStateDecl::Stopped) => ServiceState::Stopped,
            _ => ServiceState::Running,
        },
        enabled: r.enabled,
        unit: None,
        restart: match r.restart {
            Some(RestartDecl::Always) => RestartPolicy::Always,
            Some(RestartDecl::OnFailure) => RestartPolicy::OnFailure,
            _ => RestartPolicy::No,
        },
        health_check,
        environment: r.environment.clone(),
        on_notify: match r.on_notify {
            Some(OnNotifyDecl::Reload) => NotifyAction::Reload,
            Some(OnNotifyDecl::Restart) | None => NotifyAction::Restart,
        },
    };
    let id = ResourceId::new(ResourceKind::Service, &r.service);
    let Some(UnitDecl {
        content,
        source,
        template,
    }) = &r.unit
    else {
        return Some((id, Body::Static(Spec::Service(base))));
    };
    match (content, source, template) {
        (Some(c), None, None) => {
            base.unit = Some(UnitFile {
                sha256: sha256(c.as_bytes()),
                content: Arc::from(c.as_str()),
            });
        }
        (None, Some(s), None) => {
            let text = ctx.source("unit/source", s)?;
            base.unit = Some(UnitFile {
                sha256: sha256(text.as_bytes()),
                content: text,
            });
        }
        (None, None, Some(t)) => {
            if !ctx.template("unit/template", t) {
                return None;
            }
            return Some((
                id,
                Body::UnitTemplate {
                    base,
                    template: t.clone(),
                },
            ));
        }
        _ => {
            let given: Vec<&str> = [
                ("content", content.is_some()),
                ("source", source.is_some()),
                ("template", template.is_some()),
            ]
            .into_iter()
            .filter(|(_, set)| *set)
            .map(|(k, _)| k)
            .collect();
            // At the second body when there are several, else at `unit`.
            let (field, found) = match given.get(1) {
                Some(second) => (format!("unit/{second}"), given.join(" and ")),
                None => ("unit".to_owned(), "none".to_owned()),
            };
            ctx.error(
                Code::InvalidField,
                &field,
                format!(
                    "give exactly one of `content`, `source`, `template` in `unit`; found {found}"
                ),
            );
            return None;
        }
    }
    Some((id, Body::Static(Spec::Service(base))))
}

fn health(ctx: &mut Ctx<'_>, h: &HealthCheckDecl) -> Option<HealthCheck> {
    let interval_ms = ctx.duration("healthCheck/interval", &h.interval, Duration::from_secs(10));
    let timeout_ms = ctx.duration("healthCheck/timeout", &h.timeout, Duration::from_secs(2));
    let probe = match (&h.http, &h.tcp, &h.exec) {
        (Some(url), None, None) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                ctx.error(
                    Code::InvalidField,
                    "healthCheck/http",
                    format!("`{url}` is not an http(s) URL"),
                );
            }
            Probe::Http { url: url.clone() }
        }
        (None, Some(address), None) => {
            if address
                .rsplit_once(':')
                .is_none_or(|(_, p)| p.parse::<u16>().is_err())
            {
                ctx.error(
                    Code::InvalidField,
                    "healthCheck/tcp",
                    format!("`{address}` is not `host:port`"),
                );
            }
            Probe::Tcp {
                address: address.clone(),
            }
        }
        (None, None, Some(command)) => {
            if command.is_empty() {
                ctx.error(
                    Code::InvalidField,
                    "healthCheck/exec",
                    "the command is empty",
                );
            }
            Probe::Exec {
                command: command.clone(),
            }
        }
        _ => {
            let given: Vec<&str> = [
                ("http", h.http.is_some()),
                ("tcp", h.tcp.is_some()),
                ("exec", h.exec.is_some()),
            ]
            .into_iter()
            .filter(|(_, set)| *set)
            .map(|(k, _)| k)
            .collect();
            // At the second probe when there are several, else at `healthCheck`.
            let (field, found) = match given.get(1) {
                Some(second) => (format!("healthCheck/{second}"), given.join(" and ")),
                None => ("healthCheck".to_owned(), "none".to_owned()),
            };
            ctx.error(
                Code::InvalidField,
                &field,
                format!(
                    "give exactly one of `http`, `tcp`, `exec` in `healthCheck`; found {found}"
                ),
            );
            return None;
        }
    };
    if timeout_ms > interval_ms {
        ctx.error(
            Code::InvalidField,
            "healthCheck/timeout",
            "`timeout` is longer than `interval`",
        );
    }
    Some(HealthCheck {
        probe,
        interval_ms,
        timeout_ms,
        retries: h.retries.unwrap_or(3),
    })
}
