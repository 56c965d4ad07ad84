//! The pull request service in process, on GitLab: a real fleet repository (merge request
//! heads under `refs/merge-requests/N/head`, as GitLab publishes them), a SQLite store with
//! the nodes' observed states, the real GitLab client against the strict fake GitLab.
//! Events go straight into the service's channel (the webhook parsing has its own tests).

use forge_fake::gitlab::FakeGitLab;
use reconciler::engine::{CommitSource, Live};
use reconciler::forge::gitlab::{GitLab, GitLabConfig};
use reconciler::forge::{Actor, ChangeRequestAction, ForgeEvent};
use reconciler::pr::{PrConfig, PrService};
use reconciler::secret::Secret;
use reconciler::source::tracker::{Location, SourceConfig, Tracker};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::Store;
use tokio::sync::mpsc;

const NODES: [&str; 3] = ["web-01", "web-02", "web-03"];

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn fleet(root: &Path, motd: &str, legacy: &str) {
    write(
        root,
        "centossrv.yaml",
        "apiVersion: centossrv.io/v1\nkind: Fleet\nmetadata: {name: t}\n",
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
        &format!(
            "apiVersion: centossrv.io/v1\nkind: Role\nmetadata: {{name: web}}\nspec:\n  selector: {{matchLabels: {{role: web}}}}\n  resources:\n    - file: /etc/motd\n      content: \"{motd}\\n\"\n    - file: /etc/legacy.conf\n      {legacy}\n"
        ),
    );
}

/// Waits for `check` (polling every 20 ms) up to 20 s.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    repo: std::path::PathBuf,
    fake: FakeGitLab,
    store: Store,
    live: Live,
    events: mpsc::Sender<ForgeEvent>,
    base: String,
}

async fn setup() -> Setup {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("reconciler=info")
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("fleet");
    std::fs::create_dir_all(&repo).expect("mkdir");
    git(&repo, &["init", "-q"]);
    fleet(&repo, "v1", "content: \"old\\n\"");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "v1"]);
    let base = git(&repo, &["rev-parse", "HEAD"]);
    std::fs::create_dir_all(dir.path().join("data")).expect("mkdir");
    let store = Store::open_data_dir(&dir.path().join("data"))
        .await
        .expect("store");
    // Every node reported exactly what v1 says.
    let compiled = model::compile(&reconciler::source::read_dir(&repo).expect("read"));
    for (name, desired) in compiled.model.desired() {
        let mut observed = state::ObservedState::new(name);
        for r in &desired.resources {
            observed.resources.insert(r.id.clone(), r.spec.clone());
        }
        store.record_observed(&observed).await.expect("observed");
    }
    let tracker = Tracker::new(SourceConfig {
        location: Location::Local(repo.clone()),
        branch: "main".into(),
        data_dir: dir.path().join("data"),
    })
    .expect("tracker");
    let fake = FakeGitLab::start("ops/fleet").await;
    let gitlab = GitLab::new(GitLabConfig {
        api_url: fake.base_url(),
        ..GitLabConfig::new("ops/fleet", Secret::new(fake.token()))
    })
    .expect("client");
    let live = Live::default();
    let (events, rx) = mpsc::channel(64);
    let service = PrService::new(
        Arc::new(gitlab),
        Arc::new(tracker) as Arc<dyn CommitSource>,
        store.clone(),
        live.clone(),
        PrConfig {
            coalesce: Duration::from_millis(50),
            retry_after: Duration::from_millis(500),
            ..PrConfig::default()
        },
    );
    tokio::spawn(service.run(rx));
    Setup {
        _dir: dir,
        repo,
        fake,
        store,
        live,
        events,
        base,
    }
}

impl Setup {
    /// Commits the work tree on a branch and publishes it as merge request `iid`'s head.
    fn push_mr(&self, iid: u64, message: &str) -> String {
        git(&self.repo, &["add", "-A"]);
        git(&self.repo, &["commit", "-qm", message]);
        let head = git(&self.repo, &["rev-parse", "HEAD"]);
        git(
            &self.repo,
            &[
                "update-ref",
                &format!("refs/merge-requests/{iid}/head"),
                &head,
            ],
        );
        head
    }

    async fn event(&self, iid: u64, action: ChangeRequestAction, head: &str) {
        self.events
            .send(ForgeEvent::ChangeRequest {
                number: iid,
                action,
                head_sha: head.to_owned(),
                base_sha: String::new(),
                base_ref: "main".into(),
            })
            .await
            .expect("send");
    }

    fn plan_notes(&self, iid: u64) -> Vec<String> {
        self.fake
            .notes(iid)
            .into_iter()
            .map(|(_, b)| b)
            .filter(|b| b.starts_with(report::markdown::MARKER_PREFIX))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_note_per_merge_request_edited_on_every_push() {
    let s = setup().await;
    git(&s.repo, &["checkout", "-qb", "feature"]);
    fleet(&s.repo, "v2", "content: \"old\\n\"");
    let h1 = s.push_mr(1, "motd v2");
    s.fake.add_merge_request(1, &h1, &s.base, "main", "motd v2");
    s.event(1, ChangeRequestAction::Opened, &h1).await;
    until("the plan note", || s.plan_notes(1).len() == 1).await;
    let note = s.plan_notes(1).remove(0);
    assert!(
        note.contains(&h1[..7]) && note.contains("/etc/motd"),
        "{note}"
    );
    until("a status", || {
        s.fake.statuses().iter().any(|st| st.sha == h1)
    })
    .await;
    let status = s
        .fake
        .statuses()
        .into_iter()
        .find(|st| st.sha == h1)
        .expect("status");
    assert_eq!(status.state, "success", "{status:?}");
    assert_eq!(status.name, "centossrv/plan");
    assert!(s.fake.labels(1).is_empty());
    until("the report kept", || {
        futures_now(s.store.pr_report("gitlab", 1)).is_some()
    })
    .await;
    let stored = s
        .store
        .pr_report("gitlab", 1)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(stored.head_sha, h1);
    let parsed: Result<report::Report, _> = serde_json::from_str(&stored.report);
    assert!(parsed.is_ok(), "{parsed:?}");

    // A destructive push: labelled, and the note says what is new since the last push.
    fleet(&s.repo, "v2", "state: absent");
    let h2 = s.push_mr(1, "remove legacy");
    s.fake.set_head(1, &h2);
    s.event(1, ChangeRequestAction::Pushed, &h2).await;
    until("the note on the second push", || {
        s.plan_notes(1)
            .first()
            .is_some_and(|n| n.contains(&h2[..7]))
    })
    .await;
    let note = s.plan_notes(1).remove(0);
    assert!(note.contains(&format!("Since `{}`", &h1[..7])), "{note}");
    assert!(note.contains("destructive"), "{note}");
    until("the destructive label", || {
        s.fake.labels(1) == vec!["centossrv: destructive".to_owned()]
    })
    .await;

    // A burst of three pushes is planned for the last one; still one note; label gone.
    let mut last = String::new();
    for i in 3..6 {
        fleet(&s.repo, &format!("v{i}"), "content: \"old\\n\"");
        last = s.push_mr(1, &format!("v{i}"));
        s.fake.set_head(1, &last);
        s.event(1, ChangeRequestAction::Pushed, &last).await;
    }
    until("the note on the last push", || {
        s.plan_notes(1)
            .first()
            .is_some_and(|n| n.contains(&last[..7]))
    })
    .await;
    until("the label removed", || s.fake.labels(1).is_empty()).await;
    assert_eq!(s.fake.notes(1).len(), 1, "one note, edited in place");
    let statuses = s.fake.statuses().len();
    assert!(statuses <= 4, "a burst is coalesced: {statuses} statuses");

    // A head that does not compile fails the status.
    write(
        &s.repo,
        "roles/broken.yaml",
        "apiVersion: centossrv.io/v1\nkind: Role\nmetadata: {name: broken}\nspec: [\n",
    );
    let h6 = s.push_mr(1, "broken");
    s.fake.set_head(1, &h6);
    s.event(1, ChangeRequestAction::Pushed, &h6).await;
    until("a failed status", || {
        s.fake
            .statuses()
            .iter()
            .any(|st| st.sha == h6 && st.state == "failed")
    })
    .await;
    let note = s.plan_notes(1).remove(0);
    assert!(note.contains("roles/broken.yaml"), "{note}");

    // Closed: forgotten.
    s.fake.close(1, false);
    s.event(1, ChangeRequestAction::Closed, &h6).await;
    until("the report forgotten", || {
        futures_now(s.store.pr_report("gitlab", 1)).is_none()
    })
    .await;
    assert_eq!(s.fake.violations(), Vec::<String>::new());
}

/// Runs a store read to completion from a sync closure (inside the multi-thread runtime).
fn futures_now<T>(f: impl std::future::Future<Output = store::Result<Option<T>>>) -> Option<T> {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f)).expect("store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_opens_the_issue_refreshes_open_plans_and_closes_when_clean() {
    let s = setup().await;
    git(&s.repo, &["checkout", "-qb", "docs"]);
    write(&s.repo, "README.md", "docs\n");
    let h = s.push_mr(2, "docs");
    s.fake.add_merge_request(2, &h, &s.base, "main", "docs");
    s.event(2, ChangeRequestAction::Opened, &h).await;
    until("the plan note", || s.plan_notes(2).len() == 1).await;
    assert!(
        !s.plan_notes(2)[0].contains("drift"),
        "{}",
        s.plan_notes(2)[0]
    );
    until("nothing to report yet", || s.fake.issues().is_empty()).await;

    // web-02's motd edited by hand: the store holds the new observation, the engine
    // publishes the drift.
    let mut observed = s
        .store
        .observed("web-02")
        .await
        .expect("read")
        .expect("there")
        .state;
    let motd = observed
        .resources
        .keys()
        .find(|id| id.name == "/etc/motd")
        .cloned()
        .expect("motd");
    if let Some(state::Spec::File(file)) = observed.resources.get_mut(&motd) {
        let text = "hand edit\n";
        file.content = Some(Arc::from(text));
        file.sha256 = Some(state::digest::sha256(text.as_bytes()));
    }
    s.store.record_observed(&observed).await.expect("record");
    let desired = model::compile(&reconciler::source::read_git(&s.repo, &s.base).expect("read"));
    let desired = desired
        .model
        .desired_for("web-02")
        .expect("desired")
        .clone();
    let plan = state::plan(Some(&desired), Some(&observed), Some(&desired));
    assert!(plan.has_host_changes());
    s.live.set_drift("web-02", Some(plan.changes.clone()));

    until("the drift issue", || {
        s.fake.issues().iter().any(|i| {
            i.open
                && i.description
                    .as_deref()
                    .is_some_and(|d| d.contains("web-02"))
        })
    })
    .await;
    let issue = s.fake.issues().remove(0);
    assert_eq!(issue.labels, vec!["centossrv: drift".to_owned()]);
    until("the open plan mentions the drift", || {
        s.plan_notes(2)
            .first()
            .is_some_and(|n| n.contains("reverts drift") && n.contains("web-02"))
    })
    .await;

    // Fixed by hand: the issue closes; drift again later: the same issue reopens.
    s.live.set_drift("web-02", None);
    until("the drift issue closed", || {
        s.fake.issues().iter().all(|i| !i.open)
    })
    .await;
    s.live.set_drift("web-03", Some(plan.changes.clone()));
    until("the same issue reopened", || {
        let issues = s.fake.issues();
        issues.len() == 1 && issues[0].open
    })
    .await;
    assert_eq!(s.fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comment_commands_need_write_access_and_are_audited() {
    let s = setup().await;
    git(&s.repo, &["checkout", "-qb", "feature"]);
    fleet(&s.repo, "v2", "content: \"old\\n\"");
    let h = s.push_mr(3, "v2");
    s.fake.add_merge_request(3, &h, &s.base, "main", "v2");
    s.fake.set_access_level(7, 20); // reporter
    s.fake.set_access_level(8, 30); // developer
    let comment = |id: u64, login: &str, body: &str| ForgeEvent::Comment {
        number: 3,
        comment_id: 100 + id,
        author: Actor {
            login: login.into(),
            id,
        },
        body: body.into(),
    };
    s.events
        .send(comment(7, "reporter", "/centossrv plan"))
        .await
        .expect("send");
    s.events
        .send(comment(8, "dev", "/centossrv help"))
        .await
        .expect("send");
    until("the help answer", || {
        s.fake
            .notes(3)
            .iter()
            .any(|(_, b)| b.contains("centossrv commands"))
    })
    .await;
    s.events
        .send(comment(8, "dev", "/centossrv plan"))
        .await
        .expect("send");
    until("planned on the developer's command", || {
        s.plan_notes(3).len() == 1
    })
    .await;
    let audit = s.store.audit_list(None, 1000).await.expect("audit").items;
    let commands: Vec<(String, String)> = audit
        .iter()
        .filter(|e| e.record.action == "pr.command")
        .map(|e| (e.record.actor.clone(), e.record.outcome.clone()))
        .collect();
    assert_eq!(
        commands,
        vec![
            ("gitlab:reporter".to_owned(), "denied".to_owned()),
            ("gitlab:dev".to_owned(), "ok".to_owned()),
            ("gitlab:dev".to_owned(), "ok".to_owned()),
        ]
    );
    assert_eq!(s.fake.violations(), Vec::<String>::new());
}
