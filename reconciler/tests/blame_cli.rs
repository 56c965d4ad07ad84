//! `centossrv blame`, run as the real binary against a store written through the store's
//! API (SQLite, and PostgreSQL when DATABASE_URL is set) and a real Git repository: three
//! commits change a file (one a merged pull request, one a squash merge), one changes only
//! a package, with apply runs and a drift event in between.
#![allow(clippy::unwrap_used)]

use chrono::Utc;
use serde_json::Value;
use sqlx::Connection as _;
use state::{Action, Cause, Change, PropertyChange};
use state::{
    DESIRED_FORMAT, DesiredResource, DesiredState, Ensure, FileSpec, Origin, PackageEnsure,
    PackageSpec, ResourceId, ResourceKind, Spec,
};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use store::{CommitRecord, NodeUpsert, Outcome, ResourceResult, RunStatus, Store};

fn centossrv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_centossrv"))
        .arg("blame")
        .args(args)
        .env_remove("CENTOSSRV_DATABASE_URL")
        .output()
        .unwrap()
}

/// Runs git in `dir` as `who` (author and committer).
fn git(dir: &Path, who: &str, args: &[&str]) -> String {
    let email = format!("{}@example.org", who.to_lowercase().replace(' ', "."));
    let out = Command::new("git")
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .env("GIT_AUTHOR_NAME", who)
        .env("GIT_AUTHOR_EMAIL", &email)
        .env("GIT_COMMITTER_NAME", who)
        .env("GIT_COMMITTER_EMAIL", &email)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn write(dir: &Path, path: &str, text: &str) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The fleet's history in Git: initial, a merged pull request, a direct package bump, a
/// squash merge. Returns the four commit ids.
fn repository(dir: &Path) -> [String; 4] {
    git(dir, "Alice", &["init", "-q"]);
    write(dir, "roles/base.yaml", "motd: hello\n");
    git(dir, "Alice", &["add", "-A"]);
    git(dir, "Alice", &["commit", "-q", "-m", "Initial fleet"]);
    let c1 = git(dir, "Alice", &["rev-parse", "HEAD"]);
    git(dir, "Alice", &["checkout", "-q", "-b", "motd"]);
    write(dir, "roles/base.yaml", "motd: welcome\n");
    git(dir, "Alice", &["commit", "-q", "-am", "New motd"]);
    git(dir, "Alice", &["checkout", "-q", "main"]);
    git(
        dir,
        "Bob Merger",
        &[
            "merge",
            "-q",
            "--no-ff",
            "-m",
            "Merge pull request #42 from alice/motd\n\nNew motd",
            "motd",
        ],
    );
    let c2 = git(dir, "Alice", &["rev-parse", "HEAD"]);
    write(dir, "roles/base.yaml", "motd: welcome\nnginx: 1.26\n");
    git(dir, "Dan", &["commit", "-q", "-am", "Bump nginx"]);
    let pkg = git(dir, "Alice", &["rev-parse", "HEAD"]);
    write(
        dir,
        "roles/base.yaml",
        "motd: welcome\nmode: '0600'\nnginx: 1.26\n",
    );
    git(
        dir,
        "Carol",
        &["commit", "-q", "-am", "Tighten the motd's mode (#43)"],
    );
    let c3 = git(dir, "Alice", &["rev-parse", "HEAD"]);
    [c1, c2, pkg, c3]
}

fn motd(content: &str, mode: &str, line: u32) -> Arc<DesiredResource> {
    Arc::new(DesiredResource {
        id: ResourceId::new(ResourceKind::File, "/etc/motd"),
        spec: Spec::File(FileSpec {
            path: "/etc/motd".into(),
            ensure: Ensure::Present,
            content: Some(Arc::from(content)),
            sha256: Some(state::digest::sha256(content.as_bytes())),
            mode: Some(mode.into()),
            owner: Some("root".into()),
            group: None,
            sensitive: false,
        }),
        requires: Vec::new(),
        notify: Vec::new(),
        origin: Origin {
            role: "base".into(),
            file: "roles/base.yaml".into(),
            line,
        },
    })
}

fn nginx(version: &str) -> Arc<DesiredResource> {
    Arc::new(DesiredResource {
        id: ResourceId::new(ResourceKind::Package, "nginx"),
        spec: Spec::Package(PackageSpec {
            name: "nginx".into(),
            ensure: PackageEnsure::Version(version.into()),
        }),
        requires: Vec::new(),
        notify: Vec::new(),
        origin: Origin {
            role: "base".into(),
            file: "roles/base.yaml".into(),
            line: 2,
        },
    })
}

/// Records `sha` as compiled now with `resources` desired on web-1.
async fn compiled(store: &Store, sha: &str, resources: Vec<Arc<DesiredResource>>) {
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store
        .record_commit(&CommitRecord {
            sha: sha.into(),
            ok: true,
            diagnostics: serde_json::json!({"format": 1, "diagnostics": []}),
            compiled_at: Utc::now(),
        })
        .await
        .unwrap();
    let desired = DesiredState {
        format: DESIRED_FORMAT,
        node: "web-1".into(),
        commit: None,
        labels: Default::default(),
        resources,
    };
    store.set_desired(sha, &[desired]).await.unwrap();
}

async fn applied(store: &Store, sha: &str, digest: &str, outcome: Outcome) -> i64 {
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let run = store
        .approve_and_start_run(sha, "web-1", digest, "reconciler")
        .await
        .unwrap();
    store
        .finish_apply_run(
            run,
            RunStatus::Applied,
            None,
            &[ResourceResult {
                resource: ResourceId::new(ResourceKind::File, "/etc/motd"),
                action: Some(Action::Update),
                outcome,
                reason: None,
                duration_ms: 3,
            }],
        )
        .await
        .unwrap();
    run
}

/// The history, in the order it happened.
async fn seed(store: &Store, [c1, c2, pkg, c3]: &[String; 4]) -> (i64, i64, i64) {
    store
        .upsert_nodes(&[NodeUpsert {
            name: "web-1".into(),
            labels: Default::default(),
            in_inventory: true,
        }])
        .await
        .unwrap();
    compiled(store, c1, vec![nginx("1.24"), motd("hello\n", "0644", 3)]).await;
    let run1 = applied(store, c1, "sha256:01", Outcome::Changed).await;
    compiled(store, c2, vec![nginx("1.24"), motd("welcome\n", "0644", 3)]).await;
    let run2 = applied(store, c2, "sha256:02", Outcome::Changed).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let drift = store
        .record_drift_event(
            "web-1",
            Some(c2.as_str()),
            &Change {
                id: ResourceId::new(ResourceKind::File, "/etc/motd"),
                action: Action::Update,
                cause: Cause::Drift,
                properties: vec![PropertyChange {
                    name: "mode".into(),
                    before: Some("0666".into()),
                    after: Some("0644".into()),
                    cause: Cause::Drift,
                }],
                diff: None,
                destructive: false,
                sensitive: false,
                triggered_by: Vec::new(),
                unobserved: false,
            },
        )
        .await
        .unwrap();
    // Only the package changes (the motd's declaration moves a line: not a change).
    compiled(
        store,
        pkg,
        vec![nginx("1.26"), motd("welcome\n", "0644", 4)],
    )
    .await;
    compiled(store, c3, vec![nginx("1.26"), motd("welcome\n", "0600", 4)]).await;
    (run1, run2, drift.id)
}

fn json(out: &Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// An entry as `kind commit-or-id detail`.
fn summary(e: &Value) -> String {
    match e["kind"].as_str().unwrap() {
        "commit" => format!(
            "commit {} {}",
            &e["commit"].as_str().unwrap()[..7],
            e["change"].as_str().unwrap()
        ),
        "apply" => format!("apply {} {}", e["run"], e["outcome"].as_str().unwrap()),
        "drift" => format!("drift {}", e["id"]),
        other => panic!("unknown kind {other}"),
    }
}

/// Asserts the whole timeline through the binary with the store at `store_args`.
fn check(store_args: &[&str], repo: &Path, shas: &[String; 4], ids: (i64, i64, i64)) {
    let [c1, c2, _pkg, c3] = shas;
    let (run1, run2, drift) = ids;
    let repo = repo.to_str().unwrap();
    let mut args = vec![
        "web-1",
        "file:/etc/motd",
        "--repo",
        repo,
        "--format",
        "json",
    ];
    args.extend_from_slice(store_args);
    let timeline = json(&centossrv(&args));
    assert_eq!(timeline["format"], 1);
    assert_eq!(timeline["resource"], "file:/etc/motd");
    assert_eq!(timeline["truncated"], false);
    let entries = timeline["entries"].as_array().unwrap();
    let got: Vec<String> = entries.iter().map(summary).collect();
    assert_eq!(
        got,
        [
            format!("commit {} changed", &c3[..7]),
            format!("drift {drift}"),
            format!("apply {run2} changed"),
            format!("commit {} changed", &c2[..7]),
            format!("apply {run1} changed"),
            format!("commit {} added", &c1[..7]),
        ],
        "the package-only commit is not listed"
    );
    // The squash merge names its pull request; mode is the only property that changed.
    assert_eq!(entries[0]["pr"]["number"], 43);
    assert_eq!(entries[0]["git"]["author"]["name"], "Carol");
    assert_eq!(entries[0]["properties"][0]["name"], "mode");
    assert_eq!(entries[0]["properties"][0]["before"], "0644");
    assert_eq!(entries[0]["properties"][0]["after"], "0600");
    assert_eq!(entries[0]["properties"].as_array().unwrap().len(), 1);
    // The merge commit: who merged, which pull request, content by digest only.
    assert_eq!(entries[3]["pr"]["number"], 42);
    assert_eq!(entries[3]["pr"]["forge"], "github");
    assert_eq!(entries[3]["git"]["committer"]["name"], "Bob Merger");
    assert_eq!(entries[3]["git"]["merge"], true);
    let props: Vec<&str> = entries[3]["properties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(props, ["content", "sha256"]);
    assert_eq!(entries[3]["properties"][0]["after"], Value::Null);
    assert_eq!(entries[2]["approved_by"], "reconciler");
    assert_eq!(entries[1]["properties"][0]["before"], "0666");
    assert_eq!(entries[5]["pr"], Value::Null);
    assert_eq!(entries[5]["git"]["summary"], "Initial fleet");
    assert_eq!(timeline["current"]["origin"]["line"], 4);

    // Human output, bounded: the newest two of each source, the rest announced.
    let mut args = vec!["web-1", "file:/etc/motd", "--repo", repo, "--limit", "1"];
    args.extend_from_slice(store_args);
    let out = centossrv(&args);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("file:/etc/motd on web-1\n"), "{text}");
    assert!(
        text.contains(&format!("commit {}  changed", &c3[..12])),
        "{text}"
    );
    assert!(
        text.contains("github #43, author Carol <carol@example.org>"),
        "{text}"
    );
    assert!(text.contains("mode: 0644 -> 0600"), "{text}");
    assert!(text.contains("older entries not shown (before "), "{text}");
    assert!(
        !text.contains(&c1[..12]),
        "older than the newest run: {text}"
    );

    // Unknown node and resource: exit 1 with close names.
    for (node, resource, want) in [
        (
            "web-2",
            "file:/etc/motd",
            "no node named `web-2`; did you mean `web-1`?",
        ),
        ("web-1", "file:/etc/mtod", "did you mean `file:/etc/motd`?"),
        ("web-1", "/etc/motd", "is not a resource id"),
        ("web-1", "/etc/motd", "did you mean `file:/etc/motd`?"),
    ] {
        let mut args = vec![node, resource];
        args.extend_from_slice(store_args);
        let out = centossrv(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{node} {resource}: {stderr}");
        assert!(stderr.contains(want), "{node} {resource}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[tokio::test]
async fn blame_shows_commits_pull_requests_applies_and_drift_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("fleet");
    std::fs::create_dir(&repo).unwrap();
    let shas = repository(&repo);
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let store = Store::open_data_dir(&data).await.unwrap();
    let ids = seed(&store, &shas).await;
    store.close().await;
    check(&["--data-dir", data.to_str().unwrap()], &repo, &shas, ids);

    // With --data-dir and no --repo, the reconciler's mirror DIR/source.git is read.
    git(
        dir.path(),
        "Alice",
        &[
            "clone",
            "-q",
            "--bare",
            repo.to_str().unwrap(),
            data.join("source.git").to_str().unwrap(),
        ],
    );
    let out = centossrv(&[
        "web-1",
        "file:/etc/motd",
        "--data-dir",
        data.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let timeline = json(&out);
    assert_eq!(timeline["entries"][0]["git"]["author"]["name"], "Carol");
    assert_eq!(timeline.get("git_note"), None);

    let Ok(admin) = std::env::var("DATABASE_URL") else {
        eprintln!("skipped PostgreSQL: DATABASE_URL not set (blame ran on SQLite only)");
        return;
    };
    let name = format!(
        "blame_test_{}_{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or(0)
    );
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .unwrap();
    let (head, _) = admin.rsplit_once('/').unwrap();
    let url = format!("{head}/{name}");
    let store = Store::open(&url).await.unwrap();
    let ids = seed(&store, &shas).await;
    store.close().await;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        check(&["--database-url", &url], &repo, &shas, ids)
    }));
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn an_unreachable_or_missing_database_is_a_usage_error() {
    let out = centossrv(&[
        "web-1",
        "file:/etc/motd",
        "--database",
        "postgres://blame@127.0.0.1:1/none",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect"), "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let out = centossrv(&[
        "web-1",
        "file:/etc/motd",
        "--data-dir",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no store at"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!missing.exists(), "a read command creates no database");
    let out = centossrv(&["web-1"]);
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
}
