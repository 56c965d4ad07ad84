//! Pull requests as change control, end to end: the real `centossrv serve` configured for
//! GitHub against the strict fake GitHub (every request checked against GitHub's OpenAPI
//! description), three real agents, webhooks signed like GitHub signs them.
//!
//! Open a PR -> one plan comment and a check run; push twice more -> still one comment,
//! edited, showing what moved (and the destructive label while the plan removes a file);
//! merge -> the agents apply; a hand edit -> the drift issue opens and the other open PR's
//! comment says merging reverts it; the edit undone -> the drift issue closes. Bad signature,
//! replayed delivery, oversized body and a command from a reader are refused and audited.

use super::harness::{git, wait_showing, write};
use super::{CONVERGE, Db, Fleet, NODES, head};
use forge_fake::github::FakeGitHub;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

const SECRET: &str = "e2e-webhook-secret";
const TOKEN: &str = "ghp_e2etoken0123456789";
const MARKER: &str = "<!-- centossrv-plan: ";

/// A GitHub webhook delivery to the reconciler, signed; returns the HTTP status.
struct Hooks {
    url: String,
    ca: String,
    dir: std::path::PathBuf,
    next: std::cell::Cell<u64>,
}

impl Hooks {
    fn post_raw(&self, event: &str, delivery: &str, body: &[u8], signature: &str) -> u16 {
        let file = self.dir.join(format!("hook-{delivery}.json"));
        std::fs::write(&file, body).expect("write body");
        let out = Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--cacert",
                &self.ca,
            ])
            .args(["-H", "Content-Type: application/json"])
            .args(["-H", &format!("X-GitHub-Event: {event}")])
            .args(["-H", &format!("X-GitHub-Delivery: {delivery}")])
            .args(["-H", &format!("X-Hub-Signature-256: {signature}")])
            .args(["--data-binary", &format!("@{}", file.display())])
            .arg(&self.url)
            .output()
            .expect("run curl");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("curl: {}", String::from_utf8_lossy(&out.stderr)))
    }

    fn post(&self, event: &str, payload: &Value) -> u16 {
        let body = serde_json::to_vec(payload).expect("json");
        let n = self.next.get() + 1;
        self.next.set(n);
        self.post_raw(event, &format!("delivery-{n}"), &body, &sign(&body))
    }
}

fn sign(body: &[u8]) -> String {
    // GitHub's `X-Hub-Signature-256` has the generic webhook's format.
    reconciler::webhook::sign(SECRET.as_bytes(), body)
}

/// A real `pull_request` example payload from `@octokit/webhooks-examples`, pointed at our PR.
fn pull_request_payload(action: &str, number: u64, head: &str, base: &str, merged: bool) -> Value {
    let examples: Value = serde_json::from_str(include_str!(
        "../../forge-fake/data/github-webhook-examples.json"
    ))
    .expect("vendored examples");
    let mut payload = examples_of(&examples, "pull_request")
        .into_iter()
        .find(|p| p["action"] == "opened")
        .expect("an opened example");
    payload["action"] = json!(action);
    payload["number"] = json!(number);
    let pr = &mut payload["pull_request"];
    pr["number"] = json!(number);
    pr["head"]["sha"] = json!(head);
    pr["base"]["sha"] = json!(base);
    pr["base"]["ref"] = json!("main");
    pr["merged"] = json!(merged);
    pr["state"] = json!(if action == "closed" { "closed" } else { "open" });
    payload
}

fn comment_payload(number: u64, login: &str, id: u64, body: &str) -> Value {
    let examples: Value = serde_json::from_str(include_str!(
        "../../forge-fake/data/github-webhook-examples.json"
    ))
    .expect("vendored examples");
    let mut payload = examples_of(&examples, "issue_comment")
        .into_iter()
        .find(|p| p["action"] == "created" && p["issue"].get("pull_request").is_some())
        .or_else(|| {
            examples_of(&examples, "issue_comment")
                .into_iter()
                .find(|p| p["action"] == "created")
                .map(|mut p| {
                    p["issue"]["pull_request"] = json!({"url": "https://api.github.com/x"});
                    p
                })
        })
        .expect("an issue_comment example");
    payload["issue"]["number"] = json!(number);
    payload["comment"]["body"] = json!(body);
    payload["comment"]["id"] = json!(id);
    payload["comment"]["user"]["login"] = json!(login);
    payload["comment"]["user"]["id"] = json!(id + 1000);
    payload["sender"]["login"] = json!(login);
    payload["sender"]["id"] = json!(id + 1000);
    payload
}

/// The examples of one event, whatever the vendored file's exact layout (an array of
/// `{name, examples}` as in the npm package, or an object by event name).
fn examples_of(all: &Value, event: &str) -> Vec<Value> {
    let list = match all {
        Value::Array(items) => items
            .iter()
            .find(|e| e["name"] == event)
            .map(|e| e["examples"].clone()),
        Value::Object(map) => map
            .get("events")
            .and_then(|events| events.get(event))
            .or_else(|| map.get(event))
            .map(|e| e.get("examples").cloned().unwrap_or_else(|| e.clone())),
        _ => None,
    };
    match list {
        Some(Value::Array(items)) => items,
        _ => panic!("no {event} examples in the vendored file"),
    }
}

fn rev(work: &Path, rev: &str) -> String {
    super::harness::run(
        Command::new("git")
            .args(["rev-parse", rev])
            .current_dir(work),
    )
    .trim()
    .to_owned()
}

fn push_ref(f: &Fleet, refname: &str) {
    git(
        &f.work,
        &["push", "-q", "-f", "origin", &format!("HEAD:{refname}")],
    );
}

fn commit_all(f: &Fleet, message: &str) -> String {
    git(&f.work, &["add", "-A"]);
    git(&f.work, &["commit", "-qm", message]);
    head(&f.work)
}

fn plan_comments(fake: &FakeGitHub, number: u64) -> Vec<String> {
    fake.comments(number)
        .into_iter()
        .map(|(_, body)| body)
        .filter(|b| b.starts_with(MARKER))
        .collect()
}

/// The fleet setting that keeps drift until someone undoes it (reported, not enforced).
fn report_drift(work: &Path) {
    write(
        work,
        "centossrv.yaml",
        "apiVersion: centossrv.io/v1\nkind: Fleet\nmetadata: {name: e2e}\nspec:\n  drift: {mode: report}\n  staleApply: replan\n",
    );
}

fn private_file(dir: &Path, name: &str, text: &str) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path.display().to_string()
}

#[test]
fn pull_requests_are_planned_on_github_and_drift_is_reported() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let fake = rt.block_on(FakeGitHub::start("acme", "fleet"));
    fake.accept_token(TOKEN);
    fake.set_permission("alice", "write");
    fake.set_permission("mallory", "read");

    let f = Fleet::new(Db::Sqlite);
    // Drift is reported, not enforced, so it stays until someone undoes it.
    report_drift(&f.work);
    git(&f.work, &["commit", "-qam", "report drift"]);
    f.push("main");
    let base = head(&f.work);
    let token = private_file(f.dir.path(), "gh-token", TOKEN);
    let secret = private_file(f.dir.path(), "gh-hook", SECRET);
    let (mut server, addr) = f.serve_with(
        0,
        &[
            "--forge",
            "github",
            "--forge-url",
            &fake.base_url(),
            "--forge-repository",
            "acme/fleet",
            "--forge-token-file",
            &token,
            "--forge-webhook-secret-file",
            &secret,
            "--forge-coalesce",
            "100ms",
        ],
    );
    let mut agents: Vec<_> = NODES
        .iter()
        .map(|n| {
            let t = f.token();
            f.agent(n, &addr, Some(&t))
        })
        .collect();
    wait_showing("main applied everywhere", CONVERGE, &[&server], || {
        NODES
            .iter()
            .all(|n| f.motd(n).as_deref() == Some(&format!("v1 {n}\n")))
    });
    let hooks = Hooks {
        url: format!("https://{addr}/api/v1/webhooks/github"),
        ca: f.tls.join("ca.pem").display().to_string(),
        dir: f.dir.path().to_owned(),
        next: std::cell::Cell::new(0),
    };

    // PR 1 opened: one comment and one check run on its head.
    git(&f.work, &["checkout", "-qb", "feature"]);
    write(&f.work, "files/motd.j2", "v2 {{ node.name }}\n");
    let h1 = commit_all(&f, "motd v2");
    push_ref(&f, "refs/heads/feature");
    push_ref(&f, "refs/pull/1/head");
    fake.add_pull(1, &h1, &base, "main", "motd v2");
    assert_eq!(
        hooks.post(
            "pull_request",
            &pull_request_payload("opened", 1, &h1, &base, false)
        ),
        202
    );
    wait_showing("the plan comment of PR 1", CONVERGE, &[&server], || {
        plan_comments(&fake, 1).len() == 1
    });
    let first = plan_comments(&fake, 1).remove(0);
    assert!(first.contains(&h1[..7]), "{first}");
    assert!(first.contains("/etc/motd"), "{first}");
    assert!(!first.contains("hunter2"), "a secret in the comment");
    wait_showing("a check run on PR 1's head", CONVERGE, &[&server], || {
        fake.statuses().iter().any(|s| s.head_sha == h1)
    });

    // Two more pushes: the first adds a destructive change, the second takes it back.
    write(
        &f.work,
        "roles/web.yaml",
        "apiVersion: centossrv.io/v1\nkind: Role\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {role: web}}\n  resources:\n    - directory: /etc/app\n    - file: /etc/motd\n      template: files/motd.j2\n    - file: /etc/app/secret.env\n      state: absent\n",
    );
    let h2 = commit_all(&f, "drop the secret file");
    push_ref(&f, "refs/pull/1/head");
    fake.set_pull_head(1, &h2);
    assert_eq!(
        hooks.post(
            "pull_request",
            &pull_request_payload("synchronize", 1, &h2, &base, false)
        ),
        202
    );
    wait_showing(
        "PR 1's comment shows the second push",
        CONVERGE,
        &[&server],
        || {
            plan_comments(&fake, 1)
                .first()
                .is_some_and(|c| c.contains(&h2[..7]))
        },
    );
    let second = plan_comments(&fake, 1).remove(0);
    assert!(
        second.contains(&format!("Since `{}`", &h1[..7])),
        "{second}"
    );
    assert!(second.contains("destructive"), "{second}");
    wait_showing("the destructive label", CONVERGE, &[&server], || {
        fake.labels(1).iter().any(|l| l == "centossrv: destructive")
    });

    super::fleet(&f.work, "v3");
    report_drift(&f.work);
    let h3 = commit_all(&f, "motd v3, secret file kept");
    push_ref(&f, "refs/pull/1/head");
    fake.set_pull_head(1, &h3);
    assert_eq!(
        hooks.post(
            "pull_request",
            &pull_request_payload("synchronize", 1, &h3, &base, false)
        ),
        202
    );
    wait_showing(
        "PR 1's comment shows the third push",
        CONVERGE,
        &[&server],
        || {
            plan_comments(&fake, 1)
                .first()
                .is_some_and(|c| c.contains(&h3[..7]))
        },
    );
    assert_eq!(
        plan_comments(&fake, 1).len(),
        1,
        "one comment, edited in place"
    );
    assert_eq!(fake.comments(1).len(), 1, "no other comment either");
    wait_showing(
        "the destructive label removed",
        CONVERGE,
        &[&server],
        || !fake.labels(1).iter().any(|l| l == "centossrv: destructive"),
    );

    // PR 2, open while the fleet drifts.
    git(&f.work, &["checkout", "-q", "main"]);
    git(&f.work, &["checkout", "-qb", "extra"]);
    write(&f.work, "README.md", "docs\n");
    let p2 = commit_all(&f, "docs");
    push_ref(&f, "refs/pull/2/head");
    fake.add_pull(2, &p2, &base, "main", "docs");
    assert_eq!(
        hooks.post(
            "pull_request",
            &pull_request_payload("opened", 2, &p2, &base, false)
        ),
        202
    );
    wait_showing("the plan comment of PR 2", CONVERGE, &[&server], || {
        plan_comments(&fake, 2).len() == 1
    });

    // Merge PR 1: the agents apply it.
    git(&f.work, &["checkout", "-q", "feature"]);
    f.push("main");
    let merged = rev(&f.work, "HEAD");
    fake.close_pull(1, true);
    assert_eq!(
        hooks.post(
            "pull_request",
            &pull_request_payload("closed", 1, &h3, &base, true)
        ),
        202
    );
    let push = json!({"ref": "refs/heads/main", "before": base, "after": merged,
        "repository": {"full_name": "acme/fleet"}, "pusher": {"name": "alice"}});
    let _ = hooks.post("push", &push);
    wait_showing("v3 applied everywhere", CONVERGE, &[&server], || {
        NODES
            .iter()
            .all(|n| f.motd(n).as_deref() == Some(&format!("v3 {n}\n")))
    });

    // A hand edit: the drift issue opens; PR 2's comment says merging reverts it.
    std::fs::write(f.root("web-02").join("etc/motd"), "hand edit\n").expect("edit");
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_showing(
            "the drift issue opened",
            CONVERGE,
            &[&server, &agents[1]],
            || {
                fake.issues().iter().any(|i| {
                    i.open
                        && i.labels.iter().any(|l| l == "centossrv: drift")
                        && i.body.contains("web-02")
                })
            },
        );
    }));
    if let Err(panic) = opened {
        let db = f.store(&rt);
        eprintln!(
            "web-02 motd now: {:?}\ndrift events: {:#?}",
            f.motd("web-02"),
            rt.block_on(db.list_drift(Some("web-02"), None, 100))
                .map(|p| p.items)
        );
        std::panic::resume_unwind(panic);
    }
    wait_showing(
        "PR 2's comment mentions the drift",
        CONVERGE,
        &[&server],
        || {
            plan_comments(&fake, 2)
                .first()
                .is_some_and(|c| c.contains("reverts drift") && c.contains("web-02"))
        },
    );

    // Undone by hand: the issue closes.
    std::fs::write(f.root("web-02").join("etc/motd"), "v3 web-02\n").expect("fix");
    wait_showing("the drift issue closed", CONVERGE, &[&server], || {
        fake.issues()
            .iter()
            .filter(|i| i.labels.iter().any(|l| l == "centossrv: drift"))
            .all(|i| !i.open)
    });
    assert_eq!(
        fake.issues()
            .iter()
            .filter(|i| i.labels.iter().any(|l| l == "centossrv: drift"))
            .count(),
        1,
        "one drift issue, reused"
    );

    // Refusals: each answered and audited.
    let body = serde_json::to_vec(&pull_request_payload("synchronize", 2, &p2, &base, false))
        .expect("json");
    assert_eq!(
        hooks.post_raw("pull_request", "bad-sig", &body, "sha256=00"),
        401
    );
    assert_eq!(
        hooks.post_raw("pull_request", "replayed", &body, &sign(&body)),
        202
    );
    assert_eq!(
        hooks.post_raw("pull_request", "replayed", &body, &sign(&body)),
        202
    );
    let big = vec![b' '; 2 * 1024 * 1024];
    assert_eq!(
        hooks.post_raw("pull_request", "big", &big, &sign(&big)),
        413
    );
    let before = fake.comments(2).len();
    assert_eq!(
        hooks.post(
            "issue_comment",
            &comment_payload(2, "mallory", 901, "/centossrv plan")
        ),
        202
    );
    assert_eq!(
        hooks.post(
            "issue_comment",
            &comment_payload(2, "alice", 902, "/centossrv help")
        ),
        202
    );
    wait_showing("the help answer to alice", CONVERGE, &[&server], || {
        fake.comments(2).len() == before + 1
    });
    let db = f.store(&rt);
    wait_showing("refusals audited", CONVERGE, &[&server], || {
        let mut entries = Vec::new();
        let mut after = None;
        while let Ok(page) = rt.block_on(db.audit_list(after, 1000)) {
            entries.extend(page.items);
            match page.next {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
        let has = |action: &str, outcome: &str| {
            entries
                .iter()
                .any(|e| e.record.action == action && e.record.outcome.contains(outcome))
        };
        has("pr.command", "denied") && has("pr.command", "ok") && has("webhook.refused", "")
    });
    let verdict = rt.block_on(db.audit_verify()).expect("verify");
    assert!(format!("{verdict:?}").contains("Intact"), "{verdict:?}");

    for agent in &mut agents {
        agent.stop();
    }
    server.stop();
    let violations = fake.violations();
    assert!(
        violations.is_empty(),
        "contract violations: {violations:#?}"
    );
    rt.block_on(db.close());
}
