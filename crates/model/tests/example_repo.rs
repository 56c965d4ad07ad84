//! The example fleet in `example-repo/` compiles without a single diagnostic and means what
//! its README says: base everywhere, load balancers listing exactly the web servers, the
//! database secrets marked sensitive, and every node's resources in dependency order.

use model::manifest::{Resource, RoleDoc};
use model::{Compiled, Snapshot, compile};
use state::{DesiredState, ResourceId, ResourceKind, Spec};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../example-repo")
}

/// Every file under `dir`, keyed by its path relative to `root` with `/` separators.
fn read_tree(root: &Path, dir: &Path, snapshot: &mut Snapshot) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_tree(root, &path, snapshot);
        } else {
            let rel = path.strip_prefix(root).expect("under the root");
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let bytes =
                std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            snapshot.insert(rel.join("/"), bytes);
        }
    }
}

fn snapshot() -> Snapshot {
    let root = repo_root();
    let mut snapshot = Snapshot::new(None);
    read_tree(&root, &root, &mut snapshot);
    assert!(
        snapshot.get("centossrv.yaml").is_some(),
        "no centossrv.yaml under {}",
        root.display()
    );
    snapshot
}

/// Compiles the example and fails with every diagnostic when there is any.
fn compiled() -> Compiled {
    let compiled = compile(&snapshot());
    let all: Vec<String> = compiled
        .diagnostics
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        all.is_empty(),
        "example-repo has {} diagnostics:\n{}",
        all.len(),
        all.join("\n")
    );
    compiled
}

fn desired<'a>(compiled: &'a Compiled, node: &str) -> &'a DesiredState {
    compiled
        .model
        .desired_for(node)
        .unwrap_or_else(|| panic!("no desired state for {node}"))
}

fn nodes_with_role<'a>(compiled: &'a Compiled, role: &str) -> Vec<&'a str> {
    compiled
        .model
        .nodes
        .values()
        .filter(|n| n.labels.get("role").map(String::as_str) == Some(role))
        .map(|n| n.name.as_str())
        .collect()
}

fn file_content<'a>(state: &'a DesiredState, path: &str) -> &'a str {
    let id = ResourceId::new(ResourceKind::File, path);
    match state.get(&id).map(|r| &r.spec) {
        Some(Spec::File(f)) => f
            .content
            .as_deref()
            .unwrap_or_else(|| panic!("{path} on {} has no content", state.node)),
        other => panic!("{path} on {}: expected a file, found {other:?}", state.node),
    }
}

fn id_of(res: &Resource) -> ResourceId {
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

/// The roles as loaded, by name, to compare what they declare with what nodes get.
fn roles() -> BTreeMap<String, RoleDoc> {
    let mut diags = Vec::new();
    let loaded = model::loader::load(&snapshot(), &mut diags);
    assert!(diags.is_empty(), "{diags:?}");
    loaded
        .roles
        .into_iter()
        .map(|r| (r.doc.metadata.name.clone(), r.doc.clone()))
        .collect()
}

#[test]
fn compiles_without_diagnostics() {
    let compiled = compiled();
    let model = &compiled.model;
    assert_eq!(model.fleet.name, "shop-prod");
    assert_eq!(model.nodes.len(), 10, "{:?}", model.nodes.keys());
    let dcs: BTreeSet<&str> = model
        .nodes
        .values()
        .filter_map(|n| n.labels.get("dc").map(String::as_str))
        .collect();
    assert_eq!(dcs, BTreeSet::from(["ams1", "fra1"]));
    for role in &model.roles {
        assert!(!role.nodes.is_empty(), "role {} selects nothing", role.name);
    }
}

#[test]
fn every_node_gets_every_base_resource() {
    let compiled = compiled();
    let roles = roles();
    let base = roles.get("base").expect("a role named base");
    assert!(
        base.spec.selector.match_labels.is_empty()
            && base.spec.selector.match_expressions.is_empty(),
        "base must select every node"
    );
    let declared: BTreeSet<ResourceId> = base.spec.resources.iter().map(id_of).collect();
    assert!(declared.len() >= 10, "base declares only {declared:?}");
    for (name, state) in compiled.model.desired() {
        let info = &compiled.model.nodes[name];
        assert!(
            info.roles.iter().any(|r| r == "base"),
            "{name}: {:?}",
            info.roles
        );
        let have: BTreeSet<ResourceId> = state.resources.iter().map(|r| r.id.clone()).collect();
        let missing: Vec<String> = declared
            .difference(&have)
            .map(ToString::to_string)
            .collect();
        assert!(
            missing.is_empty(),
            "{name} lacks base resources {missing:?}"
        );
        let motd = file_content(state, "/etc/motd");
        assert!(motd.contains(name), "motd of {name}:\n{motd}");
    }
}

#[test]
fn load_balancers_list_exactly_the_web_servers() {
    let compiled = compiled();
    let web: BTreeMap<String, (String, String)> = nodes_with_role(&compiled, "web")
        .into_iter()
        .map(|n| {
            let info = &compiled.model.nodes[n];
            let address = info.address.clone().expect("web nodes have an address");
            (address, (n.to_owned(), info.labels["dc"].clone()))
        })
        .collect();
    assert!(web.len() >= 3, "{web:?}");
    let lbs = nodes_with_role(&compiled, "lb");
    assert_eq!(lbs.len(), 2);
    for lb in lbs {
        let lb_dc = &compiled.model.nodes[lb].labels["dc"];
        let cfg = file_content(desired(&compiled, lb), "/etc/haproxy/haproxy.cfg");
        let servers: Vec<Vec<&str>> = cfg
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(|w| w.first() == Some(&"server"))
            .collect();
        let listed: BTreeSet<String> = servers
            .iter()
            .map(|w| {
                let addr = w.get(2).unwrap_or_else(|| panic!("{lb}: bad line {w:?}"));
                addr.strip_suffix(":80")
                    .unwrap_or_else(|| panic!("{lb}: {addr} is not port 80"))
                    .to_owned()
            })
            .collect();
        assert_eq!(
            servers.len(),
            listed.len(),
            "{lb} lists a server twice:\n{cfg}"
        );
        let expected: BTreeSet<String> = web.keys().cloned().collect();
        assert_eq!(listed, expected, "{lb} haproxy.cfg:\n{cfg}");
        for w in &servers {
            let (name, dc) = &web[w[2].trim_end_matches(":80")];
            assert_eq!(w[1], name, "{lb}: server name of {}", w[2]);
            assert_eq!(
                w.contains(&"backup"),
                dc != lb_dc,
                "{lb} in {lb_dc}: only other-dc servers are backups: {w:?}"
            );
        }
    }
}

#[test]
fn database_secrets_are_sensitive() {
    let compiled = compiled();
    let dbs = nodes_with_role(&compiled, "db");
    assert!(!dbs.is_empty());
    for db in dbs {
        let state = desired(&compiled, db);
        let id = ResourceId::new(ResourceKind::File, "/var/lib/pgsql/.pgpass");
        let Some(Spec::File(f)) = state.get(&id).map(|r| &r.spec) else {
            panic!("{db} has no {id}")
        };
        assert!(f.sensitive, "{db}: {id} must be sensitive");
        assert_eq!(f.mode.as_deref(), Some("0600"));
        assert_eq!(f.owner.as_deref(), Some("postgres"));
        let content = f.content.as_deref().expect("rendered content");
        assert!(content.contains(":replication:replicator:"), "{content}");
        // Redaction keeps the digest and drops the secret.
        let Some(Spec::File(shown)) = state.redacted().get(&id).map(|r| r.spec.clone()) else {
            panic!("{db}: {id} vanished on redaction")
        };
        assert!(shown.content.is_none());
        assert_eq!(shown.sha256, f.sha256);

        let postgres = ResourceId::new(ResourceKind::Package, "postgresql-server");
        let Some(Spec::Package(p)) = state.get(&postgres).map(|r| &r.spec) else {
            panic!("{db} has no {postgres}")
        };
        assert!(
            matches!(p.ensure, state::PackageEnsure::Version(_)),
            "{db}: postgresql-server must be pinned, is {:?}",
            p.ensure
        );
    }
}

#[test]
fn resources_come_after_what_they_require() {
    let compiled = compiled();
    for (name, state) in compiled.model.desired() {
        let position: HashMap<&ResourceId, usize> = state
            .resources
            .iter()
            .enumerate()
            .map(|(i, r)| (&r.id, i))
            .collect();
        assert_eq!(
            position.len(),
            state.resources.len(),
            "{name}: duplicate ids"
        );
        let mut edges = 0;
        for (i, r) in state.resources.iter().enumerate() {
            for dep in &r.requires {
                let j = position
                    .get(dep)
                    .unwrap_or_else(|| panic!("{name}: {} requires missing {dep}", r.id));
                assert!(
                    j < &i,
                    "{name}: {} (#{i}) before its requirement {dep} (#{j})",
                    r.id
                );
                edges += 1;
            }
            for target in &r.notify {
                let j = position
                    .get(target)
                    .unwrap_or_else(|| panic!("{name}: {} notifies missing {target}", r.id));
                assert!(
                    i < *j,
                    "{name}: {} (#{i}) after the service it notifies {target} (#{j})",
                    r.id
                );
                edges += 1;
            }
        }
        assert!(edges > 0, "{name} has no requires/notify edges");
    }
}

#[test]
fn prometheus_scrapes_every_node() {
    let compiled = compiled();
    let expected: BTreeSet<String> = compiled
        .model
        .nodes
        .values()
        .map(|n| format!("{}:9100", n.address.as_deref().expect("an address")))
        .collect();
    let monitors = nodes_with_role(&compiled, "monitoring");
    assert_eq!(monitors.len(), 1);
    let config = file_content(
        desired(&compiled, monitors[0]),
        "/etc/prometheus/prometheus.yml",
    );
    // Targets are written `- targets: ["10.10.0.11:9100"]`; a template engine that
    // JSON-escaped `.yml` output would double the quotes.
    let listed: BTreeSet<String> = config
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- targets: [\"")?.strip_suffix("\"]"))
        .filter(|t| t.ends_with(":9100"))
        .map(str::to_owned)
        .collect();
    assert_eq!(listed, expected, "prometheus.yml:\n{config}");
    assert!(!config.contains("\"\""), "escaped output:\n{config}");
}
