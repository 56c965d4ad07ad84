//! The engine against a real Git repository, a real store and the real agent library on
//! sandbox roots, with the network left out: each "agent" is a task that answers the
//! engine's frames by calling the same functions `centossrv-agent run` calls.

mod common;

use common::{git, write};
use reconciler::engine::{ConnId, Engine, EngineConfig, Event};
use reconciler::source::tracker::{Location, RemoteAuth, SourceConfig, Tracker};
use state::wire::{AgentMessage, PROTOCOL_VERSION, ServerMessage};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use store::Store;
use tokio::sync::mpsc;

const NODES: [&str; 3] = ["web-01", "web-02", "web-03"];

fn fleet(root: &Path, motd: &str, stale: &str) {
    write(
        root,
        "centossrv.yaml",
        &format!(
            "apiVersion: centossrv.io/v1\nkind: Fleet\nmetadata: {{name: t}}\nspec:\n  staleApply: {stale}\n"
        ),
    );
    for n in NODES {
        write(
            root,
            &format!("nodes/{n}.yaml"),
            &format!(
                "apiVersion: centossrv.io/v1\nkind: Node\nmetadata:\n  name: {n}\n  labels: {{role: web}}\n"
            ),
        );
    }
    write(
        root,
        "roles/web.yaml",
        "apiVersion: centossrv.io/v1\nkind: Role\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {role: web}}\n  resources:\n    - file: /etc/motd\n      template: files/motd.j2\n    - file: /etc/secret\n      content: hunter2\n      sensitive: true\n",
    );
    write(
        root,
        "files/motd.j2",
        &format!("{motd} {{{{ node.name }}}}\n"),
    );
}

/// One in-process agent: answers Observe and Apply with the agent library on `root`.
fn spawn_agent(
    node: &'static str,
    conn: ConnId,
    root: PathBuf,
    events: mpsc::Sender<Event>,
    tamper: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let (tx, mut rx) = mpsc::channel::<ServerMessage>(16);
    tokio::spawn(async move {
        events
            .send(Event::AgentConnected {
                node: node.to_owned(),
                conn,
                tx,
            })
            .await
            .expect("engine running");
        while let Some(message) = rx.recv().await {
            let root = root.clone();
            // A hand edit between the engine's observation and the apply, once.
            let tamper = matches!(message, ServerMessage::Apply { .. })
                && tamper.swap(false, Ordering::SeqCst);
            let reply = tokio::task::spawn_blocking(move || answer(&root, message, tamper))
                .await
                .expect("agent task");
            if let Some(message) = reply {
                let event = Event::AgentMessage {
                    node: node.to_owned(),
                    conn,
                    message,
                };
                if events.send(event).await.is_err() {
                    return;
                }
            }
        }
    })
}

fn answer(root: &Path, message: ServerMessage, tamper: bool) -> Option<AgentMessage> {
    let host = agent::RealHost::new(root).expect("host");
    let generations = agent::Store::new(agent::Store::default_dir(root));
    match message {
        ServerMessage::Observe {
            request, desired, ..
        } => {
            let (observation, plan) = agent::apply::plan_now(&host, &desired);
            Some(AgentMessage::Observed {
                v: PROTOCOL_VERSION,
                request,
                observed: observation.state,
                plan,
            })
        }
        ServerMessage::Apply {
            request,
            desired,
            approved_digest,
            ..
        } => {
            if tamper {
                std::fs::write(root.join("etc/motd"), "edited by hand\n").expect("edit");
            }
            let options = agent::ApplyOptions {
                expect_digest: Some(approved_digest),
                keep: 10,
            };
            let report = agent::apply(&host, &generations, &desired, &options).expect("apply");
            Some(AgentMessage::Applied {
                v: PROTOCOL_VERSION,
                request: Some(request),
                report: Box::new(report),
            })
        }
        ServerMessage::Welcome { .. } | ServerMessage::Goodbye { .. } => None,
    }
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

struct Fixture {
    _dir: tempfile::TempDir,
    work: PathBuf,
    roots: Vec<PathBuf>,
    store: Store,
    events: mpsc::Sender<Event>,
    tamper: Vec<Arc<AtomicBool>>,
}

async fn start(stale: &str) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let bare = dir.path().join("fleet.git");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    git(
        dir.path(),
        &["init", "-q", "--bare", bare.to_str().expect("utf-8")],
    );
    git(&work, &["init", "-q"]);
    git(
        &work,
        &["remote", "add", "origin", bare.to_str().expect("utf-8")],
    );
    fleet(&work, "v1", stale);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "v1"]);
    // Reviewed on a branch first: nothing is applied from it.
    git(&work, &["push", "-q", "origin", "HEAD:refs/heads/feature"]);
    let store = Store::open_data_dir(dir.path()).await.expect("store");
    let source = Arc::new(
        Tracker::new(SourceConfig {
            location: Location::parse(bare.to_str().expect("utf-8"), RemoteAuth::None),
            branch: "main".into(),
            data_dir: dir.path().to_owned(),
        })
        .expect("tracker"),
    );
    let config = EngineConfig {
        tick: Duration::from_millis(200),
        ..EngineConfig::default()
    };
    let engine = Engine::new(store.clone(), source, config);
    let (events, rx) = mpsc::channel(1024);
    tokio::spawn(engine.run(rx));
    let mut roots = Vec::new();
    let mut tamper = Vec::new();
    for (i, node) in NODES.into_iter().enumerate() {
        let root = dir.path().join(node);
        std::fs::create_dir_all(root.join("etc")).expect("mkdir");
        let flag = Arc::new(AtomicBool::new(false));
        spawn_agent(
            node,
            i as u64 + 1,
            root.clone(),
            events.clone(),
            Arc::clone(&flag),
        );
        roots.push(root);
        tamper.push(flag);
    }
    Fixture {
        _dir: dir,
        work,
        roots,
        store,
        events,
        tamper,
    }
}

async fn runs(store: &Store, node: &str) -> Vec<store::ApplyRun> {
    store.apply_runs_for(node, 100).await.expect("runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_applies_from_a_branch_then_main_converges_once() {
    let f = start("hold").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for root in &f.roots {
        assert!(!root.join("etc/motd").exists(), "applied from a branch");
    }
    git(&f.work, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
    f.events.send(Event::SourceChanged).await.expect("send");
    wait_for("every node applied", async || {
        f.roots
            .iter()
            .all(|r| std::fs::read_to_string(r.join("etc/motd")).is_ok())
    })
    .await;
    for (node, root) in NODES.iter().zip(&f.roots) {
        assert_eq!(
            std::fs::read_to_string(root.join("etc/motd")).expect("motd"),
            format!("v1 {node}\n")
        );
        assert_eq!(
            std::fs::read_to_string(root.join("etc/secret")).expect("secret"),
            "hunter2"
        );
    }
    wait_for("runs recorded", async || {
        let mut all = true;
        for node in NODES {
            let r = runs(&f.store, node).await;
            all &= r.len() == 1 && r[0].status == Some(store::RunStatus::Applied);
        }
        all
    })
    .await;
    // The same head again changes nothing.
    f.events.send(Event::SourceChanged).await.expect("send");
    tokio::time::sleep(Duration::from_millis(600)).await;
    for node in NODES {
        assert_eq!(runs(&f.store, node).await.len(), 1, "{node} applied twice");
    }
    // A new commit applies again, once per node; the store never holds the secret.
    fleet(&f.work, "v2", "hold");
    git(&f.work, &["commit", "-qam", "v2"]);
    git(&f.work, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
    f.events.send(Event::SourceChanged).await.expect("send");
    wait_for("v2 everywhere", async || {
        f.roots.iter().zip(NODES).all(|(r, n)| {
            std::fs::read_to_string(r.join("etc/motd")).ok() == Some(format!("v2 {n}\n"))
        })
    })
    .await;
    let verdict = f.store.audit_verify().await.expect("verify");
    assert!(format!("{verdict:?}").contains("Intact"), "{verdict:?}");
    let db = std::fs::read(f._dir.path().join(store::SQLITE_FILE_NAME)).expect("db");
    assert!(
        !db.windows(7).any(|w| w == b"hunter2"),
        "the secret reached the database"
    );
}

async fn stale_apply(mode: &str) -> Fixture {
    let f = start(mode).await;
    f.tamper[0].store(true, Ordering::SeqCst);
    git(&f.work, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
    f.events.send(Event::SourceChanged).await.expect("send");
    wait_for("the others applied", async || {
        f.roots[1..].iter().all(|r| r.join("etc/motd").exists())
    })
    .await;
    wait_for("the first node's run finished", async || {
        runs(&f.store, NODES[0])
            .await
            .iter()
            .any(|r| r.status == Some(store::RunStatus::Stale))
    })
    .await;
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_changed_after_its_plan_is_stale_and_held_for_an_operator() {
    let f = stale_apply("hold").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let r = runs(&f.store, NODES[0]).await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(
        r[0].message.as_deref().unwrap_or("").contains("stale"),
        "{r:?}"
    );
    assert_eq!(
        std::fs::read_to_string(f.roots[0].join("etc/motd")).expect("motd"),
        "edited by hand\n",
        "a held node must not be touched"
    );
    let audit = f.store.audit_list(None, 1000).await.expect("audit");
    assert!(
        audit
            .items
            .iter()
            .any(|e| e.record.action == "apply.hold" && e.record.target == NODES[0]),
        "hold not audited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_changed_after_its_plan_is_replanned_when_the_fleet_says_so() {
    let f = stale_apply("replan").await;
    wait_for("re-planned and applied", async || {
        std::fs::read_to_string(f.roots[0].join("etc/motd"))
            .ok()
            .as_deref()
            == Some("v1 web-01\n")
    })
    .await;
    let r = runs(&f.store, NODES[0]).await;
    let statuses: Vec<_> = r.iter().map(|r| r.status).collect();
    assert!(
        statuses.contains(&Some(store::RunStatus::Stale)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&Some(store::RunStatus::Applied)),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_does_not_compile_is_recorded_and_never_dispatched() {
    let f = start("hold").await;
    git(&f.work, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
    f.events.send(Event::SourceChanged).await.expect("send");
    wait_for("v1 everywhere", async || {
        f.roots.iter().zip(NODES).all(|(r, n)| {
            std::fs::read_to_string(r.join("etc/motd")).ok() == Some(format!("v1 {n}\n"))
        })
    })
    .await;
    // A broken role and a changed template in one commit: nothing of it may reach a node.
    write(&f.work, "files/motd.j2", "v2 {{ node.name }}\n");
    write(
        &f.work,
        "roles/web.yaml",
        "apiVersion: centossrv.io/v1\nkind: Role\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {role: web}}\n  resources:\n    - file: relative/path\n      content: x\n",
    );
    git(&f.work, &["commit", "-qam", "broken"]);
    git(&f.work, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
    let broken = String::from_utf8(
        std::process::Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(&f.work)
            .output()
            .expect("git")
            .stdout,
    )
    .expect("utf-8")
    .trim()
    .to_owned();
    f.events.send(Event::SourceChanged).await.expect("send");
    wait_for("the broken commit recorded", async || {
        f.store.commit(&broken).await.ok().flatten().is_some()
    })
    .await;
    let record = f
        .store
        .commit(&broken)
        .await
        .expect("read")
        .expect("commit");
    assert!(!record.ok, "{record:?}");
    assert!(
        record.diagnostics.to_string().contains("roles/web.yaml"),
        "{}",
        record.diagnostics
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    for (root, node) in f.roots.iter().zip(NODES) {
        assert_eq!(
            std::fs::read_to_string(root.join("etc/motd")).expect("motd"),
            format!("v1 {node}\n"),
            "the last good commit stays in force"
        );
        assert!(
            runs(&f.store, node)
                .await
                .iter()
                .all(|r| r.commit != broken),
            "{node} has a run of the broken commit"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_outside_the_inventory_gets_nothing() {
    let f = start("hold").await;
    git(&f.work, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
    f.events.send(Event::SourceChanged).await.expect("send");
    let (tx, mut rx) = mpsc::channel::<ServerMessage>(16);
    f.events
        .send(Event::AgentConnected {
            node: "stranger".into(),
            conn: 99,
            tx,
        })
        .await
        .expect("send");
    wait_for("the fleet applied", async || {
        f.roots.iter().all(|r| r.join("etc/motd").exists())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(rx.try_recv().is_err(), "a discovered node was sent a frame");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_releases_a_held_apply_and_it_is_replanned_and_applied() {
    let f = stale_apply("hold").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        std::fs::read_to_string(f.roots[0].join("etc/motd")).expect("motd"),
        "edited by hand\n"
    );
    f.events
        .send(Event::Release {
            node: NODES[0].into(),
            actor: "user:olga".into(),
        })
        .await
        .expect("send");
    wait_for("released, re-planned and applied", async || {
        std::fs::read_to_string(f.roots[0].join("etc/motd"))
            .ok()
            .as_deref()
            == Some("v1 web-01\n")
    })
    .await;
    wait_for("the release audited", async || {
        f.store
            .audit_list(None, 1000)
            .await
            .expect("audit")
            .items
            .iter()
            .any(|e| {
                e.record.action == "apply.release"
                    && e.record.actor == "user:olga"
                    && e.record.outcome == "ok"
            })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_break_glass_hold_keeps_applies_off_a_node_until_lifted() {
    let f = start("hold").await;
    f.store
        .set_hold(NODES[1], "disk replacement", "user:olga")
        .await
        .expect("hold");
    f.events
        .send(Event::HoldChanged {
            node: NODES[1].into(),
        })
        .await
        .expect("send");
    git(&f.work, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
    f.events.send(Event::SourceChanged).await.expect("send");
    wait_for("the others applied", async || {
        [0, 2].iter().all(|&i| f.roots[i].join("etc/motd").exists())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        !f.roots[1].join("etc/motd").exists(),
        "a held node was applied to"
    );
    assert!(
        runs(&f.store, NODES[1]).await.is_empty(),
        "a run on a held node"
    );
    assert!(f.store.clear_hold(NODES[1]).await.expect("lift"));
    f.events
        .send(Event::HoldChanged {
            node: NODES[1].into(),
        })
        .await
        .expect("send");
    wait_for("applied once the hold is lifted", async || {
        std::fs::read_to_string(f.roots[1].join("etc/motd"))
            .ok()
            .as_deref()
            == Some("v1 web-02\n")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_bindings_follow_access_yaml_and_a_broken_file_fails_its_commit() {
    let f = start("hold").await;
    f.store
        .bind_role("user:root", "cli", "admin")
        .await
        .expect("cli binding");
    write(
        &f.work,
        "access.yaml",
        "bindings:\n  - user: alice\n    role: operator\n  - group: fleet-ops\n    role: admin\n",
    );
    git(&f.work, &["add", "-A"]);
    git(&f.work, &["commit", "-qm", "access"]);
    git(&f.work, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
    f.events.send(Event::SourceChanged).await.expect("send");
    let bindings = async || -> Vec<(String, String, String)> {
        f.store
            .role_bindings()
            .await
            .expect("bindings")
            .into_iter()
            .map(|b| (b.subject, b.origin, b.role))
            .collect()
    };
    let want = vec![
        (
            "group:fleet-ops".to_owned(),
            "git".to_owned(),
            "admin".to_owned(),
        ),
        (
            "user:alice".to_owned(),
            "git".to_owned(),
            "operator".to_owned(),
        ),
        ("user:root".to_owned(), "cli".to_owned(), "admin".to_owned()),
    ];
    wait_for("the bindings of access.yaml", async || {
        bindings().await == want
    })
    .await;
    // A broken file fails the commit like any manifest problem (file:line:column), and
    // nothing changes.
    write(
        &f.work,
        "access.yaml",
        "bindings:\n  - user: alice\n    role: superuser\n",
    );
    git(&f.work, &["commit", "-qam", "broken access"]);
    git(&f.work, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
    f.events.send(Event::SourceChanged).await.expect("send");
    let head = common::rev_parse(&f.work, "HEAD");
    wait_for("the broken commit recorded", async || {
        f.store
            .commit(&head)
            .await
            .expect("commit")
            .is_some_and(|c| {
                !c.ok && {
                    let d = c.diagnostics.to_string();
                    d.contains("E0601") && d.contains("unknown role `superuser`")
                }
            })
    })
    .await;
    assert_eq!(bindings().await, want);
    // Removing the file removes the Git bindings, never the CLI's.
    git(&f.work, &["rm", "-q", "access.yaml"]);
    git(&f.work, &["commit", "-qm", "no access file"]);
    git(&f.work, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
    f.events.send(Event::SourceChanged).await.expect("send");
    wait_for("only the CLI binding left", async || {
        bindings().await == vec![("user:root".to_owned(), "cli".to_owned(), "admin".to_owned())]
    })
    .await;
}
