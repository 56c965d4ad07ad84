//! The `centossrv` binary end to end: exit codes, output formats, directory and Git sources.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn centossrv(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_centossrv"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run centossrv")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn example_repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../example-repo")
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.org",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .status()
        .expect("run git");
    assert!(status.success(), "git {args:?} failed");
}

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

const NODE: &str =
    "apiVersion: centossrv.io/v1\nkind: Node\nmetadata:\n  name: web-01\n  labels: {role: web}\n";
const ROLE: &str = "apiVersion: centossrv.io/v1\nkind: Role\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {role: web}}\n  resources:\n    - file: /etc/motd\n      template: files/motd.j2\n    - file: /etc/secret\n      content: hunter2\n      sensitive: true\n";

fn small_repo(root: &Path) {
    write(root, "nodes/web-01.yaml", NODE);
    write(root, "roles/web.yaml", ROLE);
    write(root, "files/motd.j2", "v1 {{ node.name }}\n");
}

#[test]
fn example_repo_validates_clean() {
    let out = centossrv(&["validate", "."], &example_repo());
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).starts_with("ok: "), "{}", stdout(&out));
}

#[test]
fn example_repo_renders_every_node_as_json_matching_its_roles() {
    let out = centossrv(&["validate", "--format", "json", "."], &example_repo());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["ok"], true);
    assert_eq!(report["format"], 1);
    let snapshot = reconciler::source::read_dir(&example_repo()).expect("read");
    let compiled = model::compile(&snapshot);
    assert!(compiled.model.nodes.len() >= 8);
    for (name, info) in &compiled.model.nodes {
        let out = centossrv(&["render", "--node", name, "."], &example_repo());
        assert_eq!(out.status.code(), Some(0));
        let desired: state::DesiredState =
            serde_json::from_slice(&out.stdout).expect("valid DesiredState JSON");
        assert_eq!(&desired.node, name);
        // Every resource comes from a role that selects the node, and every such role's
        // resources are there.
        for r in &desired.resources {
            assert!(
                info.roles.contains(&r.origin.role),
                "{name}: {} from {}",
                r.id,
                r.origin.role
            );
        }
        for role in &info.roles {
            assert!(
                desired.resources.iter().any(|r| &r.origin.role == role),
                "{name} lacks role {role}"
            );
        }
    }
}

#[test]
fn render_redacts_sensitive_content_and_validate_reports_errors_with_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    small_repo(dir.path());
    let out = centossrv(&["render", "--node", "web-01", "."], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(!text.contains("hunter2"), "secret leaked: {text}");
    assert!(text.contains("\"sensitive\": true"));
    assert!(text.contains("v1 web-01"));

    write(dir.path(), "files/motd.j2", "{{ missing }}\n");
    write(
        dir.path(),
        "nodes/db.yaml",
        "apiVersion: centossrv.io/v1\nkind: Nod\nmetadata: {name: db}\n",
    );
    let out = centossrv(&["validate", "."], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("error[E0102]: unknown kind `Nod`"), "{text}");
    assert!(text.contains("nodes/db.yaml:2:7"), "{text}");
    assert!(text.contains("did you mean `Node`?"), "{text}");
    assert!(text.contains("error[E0403]"), "{text}");
    assert!(text.contains("error: fleet has 2 errors"), "{text}");

    let out = centossrv(&["render", "--node", "web-01", "."], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
}

#[test]
fn usage_and_io_errors_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    small_repo(dir.path());
    assert_eq!(
        centossrv(&["validate", "no-such-dir"], dir.path())
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        centossrv(&["validate", "--bogus"], dir.path())
            .status
            .code(),
        Some(2)
    );
    let out = centossrv(&["render", "--node", "web-1", "."], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `web-01`?"));
    // Not a Git repository.
    assert_eq!(
        centossrv(&["validate", "--rev", "HEAD", "."], dir.path())
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn reads_revisions_from_the_object_database_not_the_work_tree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, "README.md", "not a fleet file\n");
    small_repo(&root.join("fleet"));
    git(root, &["init", "-q"]);
    git(root, &["add", "-A"]);
    git(root, &["commit", "-qm", "one"]);
    write(&root.join("fleet"), "files/motd.j2", "v2 {{ node.name }}\n");
    git(root, &["commit", "-qam", "two"]);
    // The work tree is broken now; revisions are unaffected.
    write(&root.join("fleet"), "roles/web.yaml", "kind: [");

    let render = |rev: &str| {
        let out = centossrv(&["render", "--node", "web-01", "--rev", rev, "fleet"], root);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<state::DesiredState>(&out.stdout).expect("json")
    };
    let motd = |d: &state::DesiredState| match &d.resources[0].spec {
        state::Spec::File(f) => f.content.as_deref().unwrap_or_default().to_owned(),
        other => panic!("unexpected {other:?}"),
    };
    let head = render("HEAD");
    let parent = render("HEAD~1");
    assert_eq!(motd(&head), "v2 web-01\n");
    assert_eq!(motd(&parent), "v1 web-01\n");
    assert_ne!(head.commit, parent.commit);
    assert_eq!(head.commit.as_deref().map(str::len), Some(40));
    assert_eq!(
        centossrv(&["validate", "fleet"], root).status.code(),
        Some(1)
    );
    assert_eq!(
        centossrv(&["validate", "--rev", "main", "fleet"], root)
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        centossrv(&["validate", "--rev", "nope", "fleet"], root)
            .status
            .code(),
        Some(2)
    );
}
