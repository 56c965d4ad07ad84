//! The `centossrv` binary end to end: exit codes, output formats, directory and Git sources.

mod common;

use common::{NODE, ROLE, git, write};
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

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn plan_on_a_real_history_of_the_example_repo() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    copy_dir(&example_repo(), root);
    git(root, &["init", "-q"]);
    git(root, &["add", "-A"]);
    git(root, &["commit", "-qm", "base"]);
    let web = root.join("roles/web.yaml");
    let text = std::fs::read_to_string(&web).expect("read");
    let bumped = text.replacen("version: 1:1.20.1-20.el9", "version: \"1:1.24.0-1.el9\"", 1);
    assert_ne!(text, bumped, "example web role pins nginx 1:1.20.1-20.el9");
    std::fs::write(&web, bumped).expect("write");
    git(root, &["commit", "-qam", "bump nginx"]);

    // Observed: every node converged on the base revision, except one that never reported.
    let observed_dir = root.join(".observed");
    std::fs::create_dir_all(&observed_dir).expect("mkdir");
    let base = model::compile(&reconciler::source::read_git(root, "HEAD~1").expect("base"));
    for (name, desired) in base.model.desired() {
        if name == "web-ams1-01" {
            continue;
        }
        let observed = state::ObservedState::converged(desired);
        std::fs::write(
            observed_dir.join(format!("{name}.json")),
            serde_json::to_vec(&observed).expect("json"),
        )
        .expect("write");
    }

    let plan = |extra: &[&str]| {
        let mut args = vec![
            "plan",
            ".",
            "--base",
            "HEAD~1",
            "--head",
            "HEAD",
            "--observed",
            ".observed",
        ];
        args.extend_from_slice(extra);
        centossrv(&args, root)
    };
    let out = plan(&["--format", "json", "--detailed-exitcode"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["would_change"], 3);
    assert_eq!(report["unknown"], 1);
    let text = serde_json::to_string(&report["change_sets"]).expect("json");
    assert!(text.contains("1.24.0-1.el9"), "{text}");
    assert!(text.contains("\"status\":\"unknown\""), "{text}");

    let md = stdout(&plan(&["--format", "markdown", "--pr", "12"]));
    assert!(
        md.starts_with("<!-- centossrv-plan: {\"v\":1,\"pr\":12,"),
        "{md}"
    );
    assert!(
        md.contains("package nginx 1:1.20.1-20.el9→1:1.24.0-1.el9"),
        "{md}"
    );
    let txt = stdout(&plan(&["--color", "never"]));
    assert!(txt.contains("~ update package:nginx"), "{txt}");

    // Nothing changes between a revision and itself.
    let same = centossrv(
        &[
            "plan",
            ".",
            "--base",
            "HEAD",
            "--head",
            "HEAD",
            "--observed",
            ".observed",
            "--detailed-exitcode",
        ],
        root,
    );
    assert_eq!(
        same.status.code(),
        Some(2),
        "web-ams1-01 is unknown, so still planned"
    );
    // Once every node has applied head, nothing is left to do.
    let head = model::compile(&reconciler::source::read_git(root, "HEAD").expect("head"));
    for (name, desired) in head.model.desired() {
        let observed = state::ObservedState::converged(desired);
        std::fs::write(
            observed_dir.join(format!("{name}.json")),
            serde_json::to_vec(&observed).expect("json"),
        )
        .expect("write");
    }
    let same = centossrv(
        &[
            "plan",
            ".",
            "--base",
            "HEAD",
            "--head",
            "HEAD",
            "--observed",
            ".observed",
            "--detailed-exitcode",
        ],
        root,
    );
    assert_eq!(same.status.code(), Some(0), "{}", stdout(&same));

    // A later push: the report says what moved since the previous one.
    std::fs::write(
        root.join("previous.json"),
        &plan(&["--format", "json"]).stdout,
    )
    .expect("write");
    let lb = root.join("roles/lb.yaml");
    let text = std::fs::read_to_string(&lb).expect("read");
    std::fs::write(&lb, format!("{text}\n")).expect("write");
    std::fs::write(
        root.join("roles/web.yaml"),
        std::fs::read_to_string(&web).expect("read").replacen(
            "    - package: nginx",
            "    - package: telnet\n      state: absent\n    - package: nginx",
            1,
        ),
    )
    .expect("write");
    git(root, &["commit", "-qam", "remove telnet too"]);
    let md = stdout(&plan(&[
        "--format",
        "markdown",
        "--previous",
        "previous.json",
    ]));
    assert!(md.contains("**Since `"), "{md}");

    // Compile errors in head: a report with the error, exit 1.
    std::fs::write(root.join("roles/bad.yaml"), "apiVersion: centossrv.io/v1\nkind: Role\nmetadata: {name: bad}\nspec:\n  selector: {}\n  resources:\n    - file: etc/x\n").expect("write");
    git(root, &["add", "-A"]);
    git(root, &["commit", "-qm", "broken"]);
    let out = plan(&["--format", "markdown", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("`roles/bad.yaml:7:13` **E0207**"),
        "{}",
        stdout(&out)
    );
    // Bad observed input is an IO/usage error.
    std::fs::write(observed_dir.join("junk.json"), "{").expect("write");
    assert_eq!(plan(&[]).status.code(), Some(2));
}

/// A sandbox root for `centossrv apply`: an account database naming `root`, and the
/// directories the example fleet writes into without declaring them, except
/// `etc/yum.repos.d`: without it the fleet's repository file cannot be written, so dnf never
/// sees a repository on the network (what requires it is not applied).
fn sandbox_root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    for d in [
        "etc/modprobe.d",
        "etc/sysctl.d",
        "etc/default",
        "srv",
        "var/spool",
    ] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    write(&root, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\n");
    write(&root, "etc/group", "root:x:0:\n");
    root
}

#[test]
fn apply_compiles_and_applies_a_node_in_one_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = sandbox_root(dir.path());
    let root_arg = root.to_str().expect("utf-8");
    let repo = example_repo();
    let repo_arg = repo.to_str().expect("utf-8");
    let args = [
        "apply",
        "--node",
        "app-fra1-01",
        "--root",
        root_arg,
        "--format",
        "json",
        repo_arg,
    ];
    let first = centossrv(&args, dir.path());
    // Packages cannot be installed (no repositories) and services are not supported by the
    // agent yet: some resources fail, exit 2, as `centossrv-agent apply`.
    assert_eq!(first.status.code(), Some(2), "{}", stdout(&first));
    let report: serde_json::Value = serde_json::from_slice(&first.stdout).expect("a report");
    assert_eq!(report["node"], "app-fra1-01");
    assert_eq!(report["generation"], 1);

    // Every file the apply reports changed is on disk with its desired content, the
    // sensitive one included (the compiler's desired state carries its content), which the
    // report never shows.
    let compiled = model::compile(&reconciler::source::read_dir(&repo).expect("repo"));
    let desired = compiled.model.desired_for("app-fra1-01").expect("node");
    let outcome = |id: &str| {
        report["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| r["outcome"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_else(|| panic!("{id} not in the report"))
    };
    let mut written = Vec::new();
    for r in &desired.resources {
        let state::Spec::File(f) = &r.spec else {
            continue;
        };
        if outcome(&r.id.to_string()) != "changed" {
            continue;
        }
        let on_disk = std::fs::read(root.join(f.path.trim_start_matches('/'))).expect("written");
        assert_eq!(
            Some(state::digest::sha256(&on_disk)),
            f.sha256,
            "{}",
            f.path
        );
        written.push((f.path.clone(), f.sensitive, on_disk));
    }
    let paths: Vec<&str> = written.iter().map(|(p, _, _)| p.as_str()).collect();
    for expected in [
        "/etc/motd",
        "/etc/orders/orders.env",
        "/etc/orders/gunicorn.conf.py",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} not written: {paths:?}"
        );
    }
    let motd = std::fs::read_to_string(root.join("etc/motd")).expect("motd");
    assert!(motd.contains("app-fra1-01"), "{motd}");
    assert_eq!(
        outcome("file:/etc/yum.repos.d/prometheus-rpm.repo"),
        "failed",
        "no network repository in the sandbox"
    );
    let text = stdout(&first);
    for (path, sensitive, bytes) in &written {
        if *sensitive {
            let content = String::from_utf8_lossy(bytes);
            let line = content
                .lines()
                .find(|l| l.contains('='))
                .expect("a setting");
            assert!(!text.contains(line), "{path}'s content in the report");
        }
    }

    // Converged resources stay converged: the second run changes nothing.
    let second = centossrv(&args, dir.path());
    assert_eq!(second.status.code(), Some(2), "{}", stdout(&second));
    let again: serde_json::Value = serde_json::from_slice(&second.stdout).expect("a report");
    assert_eq!(again["totals"]["changed"], 0, "{}", stdout(&second));
    assert_eq!(again["totals"]["failed"], report["totals"]["failed"]);
}

#[test]
fn apply_refuses_unknown_nodes_and_broken_fleets_with_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = sandbox_root(dir.path());
    let root_arg = root.to_str().expect("utf-8");
    let repo = example_repo();
    let unknown = centossrv(
        &[
            "apply",
            "--node",
            "app-fra1-1",
            "--root",
            root_arg,
            repo.to_str().expect("utf-8"),
        ],
        dir.path(),
    );
    assert_eq!(unknown.status.code(), Some(1));
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(err.contains("did you mean `app-fra1-01`?"), "{err}");

    let broken = dir.path().join("broken");
    small_repo(&broken);
    write(
        &broken,
        "roles/web.yaml",
        "apiVersion: centossrv.io/v1\nkind: Role\n",
    );
    let out = centossrv(
        &[
            "apply",
            "--node",
            "web-01",
            "--root",
            root_arg,
            broken.to_str().expect("utf-8"),
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("roles/web.yaml"), "{err}");
    assert!(err.contains("nothing applied"), "{err}");
    assert!(!root.join("etc/motd").exists());
    assert!(!root.join("var/lib/centossrv-agent").exists());
}

#[test]
fn apply_reads_a_git_revision_and_writes_sensitive_content_it_never_prints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("repo");
    small_repo(&repo);
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "one"]);
    // The work tree is broken; the revision is not.
    write(&repo, "roles/web.yaml", "kind: [");
    let root = sandbox_root(dir.path());
    let args = |format: &'static str| {
        vec![
            "apply".to_owned(),
            "--node".to_owned(),
            "web-01".to_owned(),
            "--rev".to_owned(),
            "HEAD".to_owned(),
            "--root".to_owned(),
            root.display().to_string(),
            "--format".to_owned(),
            format.to_owned(),
            repo.display().to_string(),
        ]
    };
    let run = |format: &'static str| {
        let a = args(format);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        centossrv(&a, dir.path())
    };
    let out = run("text");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).starts_with("web-01: applied: 2 changed, 0 unchanged, 0 failed"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/motd")).expect("motd"),
        "v1 web-01\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/secret")).expect("secret"),
        "hunter2"
    );
    let again = run("json");
    assert_eq!(again.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).expect("json");
    assert_eq!(report["totals"]["changed"], 0);
    assert_eq!(report["commit"].as_str().map(str::len), Some(40));
    assert!(!stdout(&out).contains("hunter2") && !stdout(&again).contains("hunter2"));
}
