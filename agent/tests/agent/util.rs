//! Test helpers: sandbox roots in temporary directories, desired-state builders, snapshots
//! of a root's tree.

use agent::{ApplyOptions, ApplyReport, RealHost, Store};
use state::digest::sha256;
use state::{
    DESIRED_FORMAT, DesiredResource, DesiredState, DirectorySpec, Ensure, FileSpec, Origin,
    PackageEnsure, PackageSpec, ResourceId, Spec, SymlinkSpec, SysctlSpec,
};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The directory temporary roots go in: tmpfs when there is one (fsync is free there, which
/// keeps the crash test fast), the system's temporary directory otherwise.
pub fn temp_base() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() && tempfile::tempdir_in(shm).is_ok() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// A sandbox root with `etc/` (passwd and group naming the test's own uid and gid `root`,
/// so ownership works without privileges) and a state directory outside the root.
#[derive(Debug)]
pub struct Sandbox {
    _dir: tempfile::TempDir,
    /// The temporary directory holding `root` and `state`, for other scratch files.
    pub base: PathBuf,
    pub root: PathBuf,
    pub state: PathBuf,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir_in(temp_base()).expect("tempdir");
        let root = dir.path().join("root");
        let state = dir.path().join("state");
        std::fs::create_dir_all(root.join("etc/sysctl.d")).expect("mkdir");
        let meta = std::fs::metadata(&root).expect("stat");
        let (uid, gid) = (meta.uid(), meta.gid());
        std::fs::write(
            root.join("etc/passwd"),
            format!("root:x:{uid}:{gid}:root:/root:/bin/bash\n"),
        )
        .expect("passwd");
        std::fs::write(root.join("etc/group"), format!("root:x:{gid}:\n")).expect("group");
        Sandbox {
            base: dir.path().to_path_buf(),
            _dir: dir,
            root,
            state,
        }
    }

    /// The sandbox as a host; services go to the systemd backend (`systemctl --root`),
    /// under which nothing of a sandbox runs.
    pub fn host(&self) -> RealHost {
        RealHost::new(&self.root)
            .expect("host")
            .with_service_manager(std::sync::Arc::new(agent::services::SystemdManager::new(
                "systemctl",
                &self.root,
            )))
    }

    pub fn store(&self) -> Store {
        Store::new(&self.state)
    }

    /// The real path of a host path.
    pub fn path(&self, host_path: &str) -> PathBuf {
        self.root.join(host_path.trim_start_matches('/'))
    }

    pub fn apply(&self, desired: &DesiredState) -> ApplyReport {
        agent::apply(
            &self.host(),
            &self.store(),
            desired,
            &ApplyOptions::default(),
        )
        .expect("apply runs")
    }

    pub fn write(&self, host_path: &str, content: &str, mode: u32) {
        let p = self.path(host_path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, content).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    pub fn read(&self, host_path: &str) -> String {
        std::fs::read_to_string(self.path(host_path)).expect("read")
    }

    pub fn mode(&self, host_path: &str) -> u32 {
        std::fs::symlink_metadata(self.path(host_path))
            .expect("stat")
            .mode()
            & 0o7777
    }

    pub fn exists(&self, host_path: &str) -> bool {
        std::fs::symlink_metadata(self.path(host_path)).is_ok()
    }

    /// Everything under the root: path -> (kind, mode, uid, gid, content or link target).
    pub fn snapshot(&self) -> BTreeMap<String, Entry> {
        let mut out = BTreeMap::new();
        walk(&self.root, &self.root, &mut out);
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub data: Vec<u8>,
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        let m = std::fs::symlink_metadata(&p).expect("stat");
        let rel = format!("/{}", p.strip_prefix(root).expect("inside").display());
        let (kind, data) = if m.file_type().is_symlink() {
            let t = std::fs::read_link(&p).expect("readlink");
            ("symlink", t.to_string_lossy().into_owned().into_bytes())
        } else if m.is_dir() {
            ("directory", Vec::new())
        } else {
            ("file", std::fs::read(&p).expect("read"))
        };
        out.insert(
            rel,
            Entry {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                data,
            },
        );
        if kind == "directory" {
            walk(root, &p, out);
        }
    }
}

pub fn file(path: &str, content: &str, mode: &str) -> Spec {
    Spec::File(FileSpec {
        path: path.into(),
        ensure: Ensure::Present,
        content: Some(Arc::from(content)),
        sha256: Some(sha256(content.as_bytes())),
        mode: Some(mode.into()),
        owner: None,
        group: None,
        sensitive: false,
    })
}

pub fn owned_file(path: &str, content: &str, mode: &str) -> Spec {
    match file(path, content, mode) {
        Spec::File(f) => Spec::File(FileSpec {
            owner: Some("root".into()),
            group: Some("root".into()),
            ..f
        }),
        other => other,
    }
}

pub fn absent_file(path: &str) -> Spec {
    Spec::File(FileSpec {
        path: path.into(),
        ensure: Ensure::Absent,
        content: None,
        sha256: None,
        mode: None,
        owner: None,
        group: None,
        sensitive: false,
    })
}

pub fn dir(path: &str, mode: &str) -> Spec {
    Spec::Directory(DirectorySpec {
        path: path.into(),
        ensure: Ensure::Present,
        mode: Some(mode.into()),
        owner: Some("root".into()),
        group: Some("root".into()),
    })
}

pub fn absent_dir(path: &str) -> Spec {
    Spec::Directory(DirectorySpec {
        path: path.into(),
        ensure: Ensure::Absent,
        mode: None,
        owner: None,
        group: None,
    })
}

pub fn link(path: &str, target: &str) -> Spec {
    Spec::Symlink(SymlinkSpec {
        path: path.into(),
        ensure: Ensure::Present,
        target: Some(target.into()),
    })
}

pub fn sysctl(key: &str, value: &str) -> Spec {
    Spec::Sysctl(SysctlSpec {
        key: key.into(),
        value: value.into(),
    })
}

pub fn package(name: &str) -> Spec {
    Spec::Package(PackageSpec {
        name: name.into(),
        ensure: PackageEnsure::Present,
    })
}

/// A running, enabled service without a unit file of its own.
pub fn service(name: &str) -> Spec {
    Spec::Service(state::ServiceSpec {
        name: name.into(),
        state: state::ServiceState::Running,
        enabled: Some(true),
        unit: None,
        restart: state::RestartPolicy::No,
        health_check: None,
        environment: BTreeMap::new(),
        on_notify: state::NotifyAction::Restart,
    })
}

pub fn id_of(spec: &Spec) -> ResourceId {
    let name = match spec {
        Spec::File(f) => f.path.clone(),
        Spec::Directory(d) => d.path.clone(),
        Spec::Symlink(l) => l.path.clone(),
        Spec::Package(p) => p.name.clone(),
        Spec::Service(s) => s.name.clone(),
        Spec::User(u) => u.name.clone(),
        Spec::Group(g) => g.name.clone(),
        Spec::Sysctl(s) => s.key.clone(),
    };
    ResourceId::new(spec.kind(), name)
}

pub fn resource(spec: Spec) -> DesiredResource {
    DesiredResource {
        id: id_of(&spec),
        spec,
        requires: Vec::new(),
        notify: Vec::new(),
        origin: Origin {
            role: "test".into(),
            file: "roles/test.yaml".into(),
            line: 1,
        },
    }
}

pub fn desired(specs: Vec<Spec>) -> DesiredState {
    desired_resources(specs.into_iter().map(resource).collect())
}

pub fn desired_resources(resources: Vec<DesiredResource>) -> DesiredState {
    DesiredState {
        format: DESIRED_FORMAT,
        node: "test-01".into(),
        commit: None,
        labels: BTreeMap::new(),
        resources: resources.into_iter().map(std::sync::Arc::new).collect(),
    }
}

/// Writes `desired` as JSON next to the sandbox and returns the file's path.
pub fn write_desired(dir: &Path, name: &str, desired: &DesiredState) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec(desired).expect("json")).expect("write desired");
    path
}

/// The outcome of resource `id` in `report`, with its reason ("" without one).
pub fn outcome_of(report: &agent::ApplyReport, id: &str) -> (agent::Outcome, String) {
    report
        .resources
        .iter()
        .find(|r| r.id.to_string() == id)
        .map(|r| (r.outcome, r.reason.clone().unwrap_or_default()))
        .expect("reported")
}
