//! The GitHub and GitLab webhooks (`reconciler::forge::webhook`) over real HTTP, driven by the
//! forges' own example payloads vendored in `tests/forge-fake/data/`
//! (`refresh-webhook-examples.sh` refreshes GitHub's; GitLab's name their source page):
//! every example is authenticated and posted, and the event that comes out (or its absence)
//! is checked against the payload's own fields. Refusals are checked for their status, for
//! nothing reaching the planner's channel, and for their audit entry in a SQLite store.
//!
//! The examples have no merged pull request and no comment on a pull request; those cases are
//! derived from an example by changing the one field that makes the difference
//! (`pull_request.merged`, `issue.pull_request`), and GitLab's merge request actions from its
//! one merge request example (`object_attributes.action`, `oldrev`).

use reconciler::forge::webhook::{
    AUDIT_REFUSED, AUDIT_SUPPRESSED, ForgeHookConfig, GITHUB_PATH, GITLAB_PATH, MAX_BODY,
    REFUSAL_AUDIT_PER_MINUTE, router,
};
use reconciler::forge::{Actor, ChangeRequestAction, ForgeEvent};
use reconciler::secret::Secret;
use reconciler::webhook::sign;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use store::{AuditEntry, Store};
use tokio::sync::mpsc;

const GITHUB_SECRET: &str = "gh-webhook-s3cret";
const GITLAB_SECRET: &str = "gl-webhook-t0ken";

fn data(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/forge-fake/data")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

fn github_examples(event: &str) -> Vec<Value> {
    let doc = data("github-webhook-examples.json");
    let examples = doc["events"][event]
        .as_array()
        .unwrap_or_else(|| panic!("no {event} examples"))
        .clone();
    assert!(!examples.is_empty(), "no {event} examples");
    examples
}

/// GitLab's examples as (X-Gitlab-Event, payload).
fn gitlab_examples() -> Vec<(String, Value)> {
    let doc = data("gitlab-webhook-examples.json");
    doc["examples"]
        .as_array()
        .expect("examples")
        .iter()
        .map(|e| {
            (
                e["event"].as_str().expect("event").to_owned(),
                e["payload"].clone(),
            )
        })
        .collect()
}

fn gitlab_example(event: &str, noteable_type: Option<&str>) -> Value {
    gitlab_examples()
        .into_iter()
        .find(|(name, payload)| {
            name == event
                && noteable_type.is_none_or(|t| payload["object_attributes"]["noteable_type"] == t)
        })
        .map(|(_, payload)| payload)
        .unwrap_or_else(|| panic!("no {event} example"))
}

fn str_at(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer}"))
        .to_owned()
}

fn u64_at(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no number at {pointer}"))
}

struct Harness {
    base: String,
    client: reqwest::Client,
    events: mpsc::Receiver<ForgeEvent>,
    store: Store,
    deliveries: AtomicU64,
    _dir: tempfile::TempDir,
}

async fn start(config: ForgeHookConfig, queue: usize) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_data_dir(dir.path()).await.expect("store");
    let (tx, events) = mpsc::channel(queue);
    let app = router(config, tx, store.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    reconciler::source::tracker::install_ring_provider();
    Harness {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        events,
        store,
        deliveries: AtomicU64::new(0),
        _dir: dir,
    }
}

fn both() -> ForgeHookConfig {
    ForgeHookConfig {
        github_secret: Some(Secret::new(GITHUB_SECRET)),
        gitlab_secret: Some(Secret::new(GITLAB_SECRET)),
    }
}

impl Harness {
    fn next_delivery(&self) -> String {
        let n = self.deliveries.fetch_add(1, Ordering::Relaxed);
        format!("delivery-{n}")
    }

    async fn post(&self, path: &str, body: Vec<u8>, headers: &[(&str, String)]) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Posts `payload` as GitHub would: signed, with a fresh delivery id.
    async fn github(&self, event: &str, payload: &Value) -> (u16, Value) {
        let body = serde_json::to_vec(payload).expect("json");
        let headers = [
            ("x-github-event", event.to_owned()),
            ("x-github-delivery", self.next_delivery()),
            ("x-hub-signature-256", sign(GITHUB_SECRET.as_bytes(), &body)),
        ];
        self.post(GITHUB_PATH, body, &headers).await
    }

    /// Posts `payload` as GitLab would: with the token and a fresh event UUID.
    async fn gitlab(&self, event: &str, payload: &Value) -> (u16, Value) {
        let body = serde_json::to_vec(payload).expect("json");
        let headers = [
            ("x-gitlab-event", event.to_owned()),
            ("x-gitlab-event-uuid", self.next_delivery()),
            ("x-gitlab-token", GITLAB_SECRET.to_owned()),
        ];
        self.post(GITLAB_PATH, body, &headers).await
    }

    /// The event sent for the last delivery, and that it was the only one.
    fn sent(&mut self) -> Option<ForgeEvent> {
        let event = self.events.try_recv().ok();
        assert!(
            self.events.try_recv().is_err(),
            "more than one event for one delivery"
        );
        event
    }

    async fn audit(&self) -> Vec<AuditEntry> {
        self.store
            .audit_list(None, 1000)
            .await
            .expect("audit list")
            .items
    }
}

fn accepted(status: u16, body: &Value) {
    assert_eq!(
        (status, &body["status"]),
        (202, &json!("accepted")),
        "{body}"
    );
}

fn ignored(status: u16, body: &Value) {
    assert_eq!(
        (status, &body["status"]),
        (202, &json!("ignored")),
        "{body}"
    );
}

#[tokio::test]
async fn github_pull_request_examples() {
    let mut h = start(both(), 16).await;
    let mut seen_actions = std::collections::BTreeSet::new();
    for example in github_examples("pull_request") {
        let action = str_at(&example, "/action");
        // Every closed example, as is and as a merged pull request.
        let mut variants = vec![example.clone()];
        if action == "closed" {
            let mut merged = example.clone();
            merged["pull_request"]["merged"] = json!(true);
            variants.push(merged);
        }
        for payload in variants {
            let (status, body) = h.github("pull_request", &payload).await;
            let expected = match action.as_str() {
                "opened" => Some(ChangeRequestAction::Opened),
                "synchronize" => Some(ChangeRequestAction::Pushed),
                "reopened" => Some(ChangeRequestAction::Reopened),
                "closed" if payload["pull_request"]["merged"] == json!(true) => {
                    Some(ChangeRequestAction::Merged)
                }
                "closed" => Some(ChangeRequestAction::Closed),
                _ => None,
            };
            match expected {
                Some(action) => {
                    accepted(status, &body);
                    seen_actions.insert(format!("{action:?}"));
                    assert_eq!(
                        h.sent(),
                        Some(ForgeEvent::ChangeRequest {
                            number: u64_at(&payload, "/number"),
                            action,
                            head_sha: str_at(&payload, "/pull_request/head/sha"),
                            base_sha: str_at(&payload, "/pull_request/base/sha"),
                            base_ref: str_at(&payload, "/pull_request/base/ref"),
                        })
                    );
                }
                None => {
                    ignored(status, &body);
                    assert_eq!(h.sent(), None, "{action} is not an event");
                }
            }
        }
    }
    assert_eq!(
        seen_actions.into_iter().collect::<Vec<_>>(),
        ["Closed", "Merged", "Opened", "Pushed", "Reopened"],
        "the examples cover every action"
    );
    assert!(
        h.audit().await.is_empty(),
        "accepted deliveries are not audited"
    );
}

#[tokio::test]
async fn github_push_ping_and_comment_examples() {
    let mut h = start(both(), 16).await;
    for payload in github_examples("push") {
        let (status, body) = h.github("push", &payload).await;
        accepted(status, &body);
        assert_eq!(
            h.sent(),
            Some(ForgeEvent::Push {
                git_ref: str_at(&payload, "/ref"),
                after: str_at(&payload, "/after"),
            })
        );
    }
    for payload in github_examples("ping") {
        let (status, body) = h.github("ping", &payload).await;
        assert_eq!(
            (status, &body["status"]),
            (200, &json!("accepted")),
            "{body}"
        );
        assert_eq!(h.sent(), None);
    }
    for example in github_examples("issue_comment") {
        // As published (comments on a plain issue), then as a comment on a pull request.
        assert!(example["issue"].get("pull_request").is_none());
        let (status, body) = h.github("issue_comment", &example).await;
        ignored(status, &body);
        assert_eq!(h.sent(), None);

        let mut on_pr = example.clone();
        on_pr["issue"]["pull_request"] =
            json!({ "url": "https://api.github.com/repos/o/r/pulls/1" });
        let (status, body) = h.github("issue_comment", &on_pr).await;
        if example["action"] == "created" {
            accepted(status, &body);
            assert_eq!(
                h.sent(),
                Some(ForgeEvent::Comment {
                    number: u64_at(&on_pr, "/issue/number"),
                    comment_id: u64_at(&on_pr, "/comment/id"),
                    author: Actor {
                        login: str_at(&on_pr, "/comment/user/login"),
                        id: u64_at(&on_pr, "/comment/user/id"),
                    },
                    body: str_at(&on_pr, "/comment/body"),
                })
            );
        } else {
            ignored(status, &body);
            assert_eq!(h.sent(), None, "edited and deleted comments are not events");
        }
    }
    // Events the reconciler does not follow.
    let (status, body) = h.github("star", &json!({"action": "created"})).await;
    ignored(status, &body);
    assert_eq!(h.sent(), None);
}

#[tokio::test]
async fn gitlab_example_payloads() {
    let mut h = start(both(), 16).await;
    let mut posted = 0;
    for (event, payload) in gitlab_examples() {
        let (status, body) = h.gitlab(&event, &payload).await;
        posted += 1;
        let kind = (
            event.as_str(),
            payload["object_attributes"]["noteable_type"].as_str(),
        );
        match kind {
            ("Push Hook", _) => {
                accepted(status, &body);
                assert_eq!(
                    h.sent(),
                    Some(ForgeEvent::Push {
                        git_ref: str_at(&payload, "/ref"),
                        after: str_at(&payload, "/after"),
                    })
                );
            }
            ("Note Hook", Some("MergeRequest")) => {
                accepted(status, &body);
                assert_eq!(
                    h.sent(),
                    Some(ForgeEvent::Comment {
                        number: u64_at(&payload, "/merge_request/iid"),
                        comment_id: u64_at(&payload, "/object_attributes/id"),
                        author: Actor {
                            login: str_at(&payload, "/user/username"),
                            id: u64_at(&payload, "/user/id"),
                        },
                        body: str_at(&payload, "/object_attributes/note"),
                    })
                );
            }
            ("Note Hook", _) => {
                ignored(status, &body);
                assert_eq!(h.sent(), None);
            }
            ("Merge Request Hook", _) => {
                assert_eq!(payload["object_attributes"]["action"], "open");
                accepted(status, &body);
                assert_eq!(
                    h.sent(),
                    Some(gitlab_mr_event(&payload, ChangeRequestAction::Opened))
                );
            }
            other => panic!("an example of an unexpected kind: {other:?}"),
        }
    }
    assert_eq!(posted, 4);
    assert!(h.audit().await.is_empty());
}

fn gitlab_mr_event(payload: &Value, action: ChangeRequestAction) -> ForgeEvent {
    ForgeEvent::ChangeRequest {
        number: u64_at(payload, "/object_attributes/iid"),
        action,
        head_sha: str_at(payload, "/object_attributes/last_commit/id"),
        // GitLab's merge request hook has no base commit: left to the planner.
        base_sha: String::new(),
        base_ref: str_at(payload, "/object_attributes/target_branch"),
    }
}

#[tokio::test]
async fn gitlab_merge_request_actions() {
    let mut h = start(both(), 16).await;
    let example = gitlab_example("Merge Request Hook", None);
    let cases: &[(&str, Option<&str>, Option<ChangeRequestAction>)] = &[
        ("open", None, Some(ChangeRequestAction::Opened)),
        (
            "update",
            Some("95790bf891e76fee5e1747ab589903a6a1f80f22"),
            Some(ChangeRequestAction::Pushed),
        ),
        // A title, label or description change: no new commits, no event.
        ("update", None, None),
        ("reopen", None, Some(ChangeRequestAction::Reopened)),
        ("close", None, Some(ChangeRequestAction::Closed)),
        ("merge", None, Some(ChangeRequestAction::Merged)),
        ("approved", None, None),
        ("unapproval", None, None),
    ];
    for (action, oldrev, expected) in cases {
        let mut payload = example.clone();
        payload["object_attributes"]["action"] = json!(action);
        if let Some(oldrev) = oldrev {
            payload["object_attributes"]["oldrev"] = json!(oldrev);
        }
        let (status, body) = h.gitlab("Merge Request Hook", &payload).await;
        match expected {
            Some(expected) => {
                accepted(status, &body);
                assert_eq!(
                    h.sent(),
                    Some(gitlab_mr_event(&payload, *expected)),
                    "{action}"
                );
            }
            None => {
                ignored(status, &body);
                assert_eq!(h.sent(), None, "{action} {oldrev:?}");
            }
        }
    }
    // An edited comment is not a new command.
    let mut edited = gitlab_example("Note Hook", Some("MergeRequest"));
    edited["object_attributes"]["action"] = json!("update");
    let (status, body) = h.gitlab("Note Hook", &edited).await;
    ignored(status, &body);
    assert_eq!(h.sent(), None);
    // Idempotency-Key (GitLab 17.4+, the same on retries) de-duplicates.
    let note = gitlab_example("Note Hook", Some("MergeRequest"));
    let body = serde_json::to_vec(&note).expect("json");
    for (round, expect) in [(0, "accepted"), (1, "duplicate")] {
        let headers = [
            ("x-gitlab-event", "Note Hook".to_owned()),
            ("x-gitlab-event-uuid", format!("uuid-{round}")),
            ("idempotency-key", "retry-key".to_owned()),
            ("x-gitlab-token", GITLAB_SECRET.to_owned()),
        ];
        let (status, answer) = h.post(GITLAB_PATH, body.clone(), &headers).await;
        assert_eq!(
            (status, &answer["status"]),
            (202, &json!(expect)),
            "{answer}"
        );
    }
    assert!(h.sent().is_some());
}

/// A refused delivery: its status and error code, and the reason in its audit entry.
struct Refused {
    name: &'static str,
    path: &'static str,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    status: u16,
    reason: &'static str,
}

fn github_refusals() -> Vec<Refused> {
    let payload = serde_json::to_vec(&github_examples("pull_request")[0]).expect("json");
    let good_sig = sign(GITHUB_SECRET.as_bytes(), &payload);
    let headers = |sig: Option<String>, event: Option<&str>, delivery: &str| {
        let mut h = vec![("x-github-delivery", delivery.to_owned())];
        if let Some(sig) = sig {
            h.push(("x-hub-signature-256", sig));
        }
        if let Some(event) = event {
            h.push(("x-github-event", event.to_owned()));
        }
        h
    };
    let big = vec![b' '; 2 * MAX_BODY];
    let big_sig = sign(GITHUB_SECRET.as_bytes(), &big);
    let malformed = b"{\"action\": \"opened\", \"number\": ".to_vec();
    let missing_field =
        br#"{"action":"opened","number":1,"pull_request":{"head":{"sha":"a","ref":"x"}}}"#.to_vec();
    vec![
        Refused {
            name: "signed with another secret",
            path: GITHUB_PATH,
            headers: headers(
                Some(sign(b"not-the-secret", &payload)),
                Some("pull_request"),
                "gh-1",
            ),
            body: payload.clone(),
            status: 401,
            reason: "bad_signature",
        },
        Refused {
            name: "signature of another body",
            path: GITHUB_PATH,
            headers: headers(
                Some(sign(GITHUB_SECRET.as_bytes(), b"{}")),
                Some("pull_request"),
                "gh-2",
            ),
            body: payload.clone(),
            status: 401,
            reason: "bad_signature",
        },
        Refused {
            name: "no signature",
            path: GITHUB_PATH,
            headers: headers(None, Some("pull_request"), "gh-3"),
            body: payload.clone(),
            status: 401,
            reason: "bad_signature",
        },
        Refused {
            name: "signature not hex",
            path: GITHUB_PATH,
            headers: headers(
                Some(format!("sha1={}", &good_sig[7..])),
                Some("pull_request"),
                "gh-4",
            ),
            body: payload.clone(),
            status: 401,
            reason: "bad_signature",
        },
        Refused {
            name: "no event header",
            path: GITHUB_PATH,
            headers: headers(Some(good_sig.clone()), None, "gh-5"),
            body: payload.clone(),
            status: 400,
            reason: "missing_event",
        },
        Refused {
            name: "2 MiB body",
            path: GITHUB_PATH,
            headers: headers(Some(big_sig), Some("pull_request"), "gh-6"),
            body: big,
            status: 413,
            reason: "payload_too_large",
        },
        Refused {
            name: "truncated JSON",
            path: GITHUB_PATH,
            headers: headers(
                Some(sign(GITHUB_SECRET.as_bytes(), &malformed)),
                Some("pull_request"),
                "gh-7",
            ),
            body: malformed,
            status: 400,
            reason: "malformed",
        },
        Refused {
            name: "no base branch",
            path: GITHUB_PATH,
            headers: headers(
                Some(sign(GITHUB_SECRET.as_bytes(), &missing_field)),
                Some("pull_request"),
                "gh-8",
            ),
            body: missing_field,
            status: 400,
            reason: "malformed",
        },
    ]
}

fn gitlab_refusals() -> Vec<Refused> {
    let payload = serde_json::to_vec(&gitlab_example("Merge Request Hook", None)).expect("json");
    let headers = |token: Option<&str>, event: Option<&str>, delivery: &str| {
        let mut h = vec![("x-gitlab-event-uuid", delivery.to_owned())];
        if let Some(token) = token {
            h.push(("x-gitlab-token", token.to_owned()));
        }
        if let Some(event) = event {
            h.push(("x-gitlab-event", event.to_owned()));
        }
        h
    };
    let mr = Some("Merge Request Hook");
    vec![
        Refused {
            name: "wrong token",
            path: GITLAB_PATH,
            headers: headers(Some("gl-webhook-t0keN"), mr, "gl-1"),
            body: payload.clone(),
            status: 401,
            reason: "bad_signature",
        },
        Refused {
            name: "token prefix",
            path: GITLAB_PATH,
            headers: headers(Some(&GITLAB_SECRET[..5]), mr, "gl-2"),
            body: payload.clone(),
            status: 401,
            reason: "bad_signature",
        },
        Refused {
            name: "no token",
            path: GITLAB_PATH,
            headers: headers(None, mr, "gl-3"),
            body: payload.clone(),
            status: 401,
            reason: "bad_signature",
        },
        Refused {
            name: "no event header",
            path: GITLAB_PATH,
            headers: headers(Some(GITLAB_SECRET), None, "gl-4"),
            body: payload.clone(),
            status: 400,
            reason: "missing_event",
        },
        Refused {
            name: "2 MiB body",
            path: GITLAB_PATH,
            headers: headers(Some(GITLAB_SECRET), mr, "gl-5"),
            body: vec![b' '; 2 * MAX_BODY],
            status: 413,
            reason: "payload_too_large",
        },
        Refused {
            name: "not JSON",
            path: GITLAB_PATH,
            headers: headers(Some(GITLAB_SECRET), mr, "gl-6"),
            body: b"object_kind=merge_request".to_vec(),
            status: 400,
            reason: "malformed",
        },
        Refused {
            name: "merge request without last commit",
            path: GITLAB_PATH,
            headers: headers(Some(GITLAB_SECRET), mr, "gl-7"),
            body: br#"{"object_kind":"merge_request","object_attributes":{"iid":1,"action":"open","target_branch":"main"}}"#.to_vec(),
            status: 400,
            reason: "malformed",
        },
        Refused {
            name: "kind disagrees with the header",
            path: GITLAB_PATH,
            headers: headers(Some(GITLAB_SECRET), Some("Push Hook"), "gl-8"),
            body: payload.clone(),
            status: 400,
            reason: "malformed",
        },
    ]
}

#[tokio::test]
async fn refusals_send_nothing_and_are_audited() {
    let mut h = start(both(), 16).await;
    let cases: Vec<Refused> = github_refusals()
        .into_iter()
        .chain(gitlab_refusals())
        .collect();
    for (i, case) in cases.iter().enumerate() {
        let (status, body) = h.post(case.path, case.body.clone(), &case.headers).await;
        assert_eq!(status, case.status, "{}: {body}", case.name);
        assert_eq!(body["error"]["code"], case.reason, "{}: {body}", case.name);
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}: a message says why",
            case.name
        );
        assert_eq!(h.sent(), None, "{}: nothing reaches the planner", case.name);
        let audit = h.audit().await;
        assert_eq!(audit.len(), i + 1, "{}: one audit entry", case.name);
        let entry = &audit[i].record;
        let actor = if case.path == GITHUB_PATH {
            "webhook:github"
        } else {
            "webhook:gitlab"
        };
        assert_eq!(
            (
                entry.actor.as_str(),
                entry.action.as_str(),
                entry.target.as_str(),
                entry.outcome.as_str()
            ),
            (actor, AUDIT_REFUSED, case.path, "denied"),
            "{}",
            case.name
        );
        assert_eq!(entry.details["reason"], case.reason, "{}", case.name);
        assert_eq!(entry.details["status"], case.status, "{}", case.name);
        assert_eq!(
            entry.details["delivery"], case.headers[0].1,
            "{}: the delivery id is kept",
            case.name
        );
        // Never the secret, a signature or the body.
        let text = entry.details.to_string();
        for (_, value) in &case.headers {
            if value.starts_with("sha") || value.starts_with("gl-webhook") {
                assert!(!text.contains(value.as_str()), "{}: {text}", case.name);
            }
        }
        for secret in [GITHUB_SECRET, GITLAB_SECRET, "merge_request", "opened"] {
            assert!(!text.contains(secret), "{}: {text}", case.name);
        }
    }
    match h.store.audit_verify().await.expect("verify") {
        store::AuditVerdict::Intact { entries, .. } => assert_eq!(entries, cases.len() as i64),
        broken => panic!("{broken:?}"),
    }
}

#[tokio::test]
async fn replayed_deliveries_are_answered_once() {
    let mut h = start(both(), 16).await;
    let payload = github_examples("push")[0].clone();
    let body = serde_json::to_vec(&payload).expect("json");
    let headers = [
        ("x-github-event", "push".to_owned()),
        (
            "x-github-delivery",
            "72d3162e-cc78-11e3-81ab-4c9367dc0958".to_owned(),
        ),
        ("x-hub-signature-256", sign(GITHUB_SECRET.as_bytes(), &body)),
    ];
    let (status, answer) = h.post(GITHUB_PATH, body.clone(), &headers).await;
    accepted(status, &answer);
    assert!(h.sent().is_some());
    for _ in 0..2 {
        let (status, answer) = h.post(GITHUB_PATH, body.clone(), &headers).await;
        assert_eq!(
            (status, &answer["status"]),
            (202, &json!("duplicate")),
            "{answer}"
        );
        assert_eq!(h.sent(), None);
    }
    let audit = h.audit().await;
    assert_eq!(audit.len(), 2);
    assert!(
        audit
            .iter()
            .all(|e| e.record.details["reason"] == "duplicate_delivery"
                && e.record.details["delivery"] == "72d3162e-cc78-11e3-81ab-4c9367dc0958")
    );

    // GitLab's route has its own memory: the same id there is new.
    let note = gitlab_example("Note Hook", Some("MergeRequest"));
    let body = serde_json::to_vec(&note).expect("json");
    let headers = [
        ("x-gitlab-event", "Note Hook".to_owned()),
        (
            "x-gitlab-event-uuid",
            "72d3162e-cc78-11e3-81ab-4c9367dc0958".to_owned(),
        ),
        ("x-gitlab-token", GITLAB_SECRET.to_owned()),
    ];
    let (status, answer) = h.post(GITLAB_PATH, body.clone(), &headers).await;
    accepted(status, &answer);
    let (status, answer) = h.post(GITLAB_PATH, body, &headers).await;
    assert_eq!((status, &answer["status"]), (202, &json!("duplicate")));
    assert!(h.sent().is_some());
}

#[tokio::test]
async fn a_full_planner_queue_answers_503_and_the_redelivery_is_taken() {
    let mut h = start(both(), 1).await;
    let pushes = github_examples("push");
    let post = |payload: &Value, delivery: &str| {
        let body = serde_json::to_vec(payload).expect("json");
        let headers = vec![
            ("x-github-event", "push".to_owned()),
            ("x-github-delivery", delivery.to_owned()),
            ("x-hub-signature-256", sign(GITHUB_SECRET.as_bytes(), &body)),
        ];
        (body, headers)
    };
    let (body, headers) = post(&pushes[0], "first");
    accepted_pair(h.post(GITHUB_PATH, body, &headers).await);
    let (body, headers) = post(&pushes[1], "second");
    let (status, answer) = h.post(GITHUB_PATH, body.clone(), &headers).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (503, &json!("busy")),
        "{answer}"
    );
    assert!(h.sent().is_some(), "the first event only");
    // The queue has room again: the redelivery (same id) is handled, not a duplicate.
    accepted_pair(h.post(GITHUB_PATH, body, &headers).await);
    assert_eq!(
        h.sent(),
        Some(ForgeEvent::Push {
            git_ref: str_at(&pushes[1], "/ref"),
            after: str_at(&pushes[1], "/after"),
        })
    );
}

fn accepted_pair((status, body): (u16, Value)) {
    accepted(status, &body);
}

#[tokio::test]
async fn a_flood_of_refusals_is_audited_up_to_the_budget() {
    let h = start(both(), 1).await;
    let body = b"{}".to_vec();
    let headers = [
        ("x-github-event", "push".to_owned()),
        ("x-hub-signature-256", sign(b"guess", &body)),
    ];
    let flood = REFUSAL_AUDIT_PER_MINUTE as usize + 25;
    for _ in 0..flood {
        let (status, _) = h.post(GITHUB_PATH, body.clone(), &headers).await;
        assert_eq!(status, 401);
    }
    let audit = h.audit().await;
    assert_eq!(audit.len(), REFUSAL_AUDIT_PER_MINUTE as usize);
    assert!(audit.iter().all(|e| e.record.action == AUDIT_REFUSED));
    assert!(!audit.iter().any(|e| e.record.action == AUDIT_SUPPRESSED));
    // GitLab's route has its own budget.
    let headers = [
        ("x-gitlab-event", "Push Hook".to_owned()),
        ("x-gitlab-token", "guess".to_owned()),
    ];
    let (status, _) = h.post(GITLAB_PATH, body, &headers).await;
    assert_eq!(status, 401);
    let audit = h.audit().await;
    assert_eq!(audit.len(), REFUSAL_AUDIT_PER_MINUTE as usize + 1);
    assert_eq!(
        audit.last().map(|e| e.record.actor.as_str()),
        Some("webhook:gitlab")
    );
}

#[tokio::test]
async fn unconfigured_routes_are_not_mounted() {
    let payload = github_examples("ping")[0].clone();
    let only_github = ForgeHookConfig {
        github_secret: Some(Secret::new(GITHUB_SECRET)),
        gitlab_secret: None,
    };
    let h = start(only_github, 4).await;
    let (status, _) = h.gitlab("Push Hook", &payload).await;
    assert_eq!(status, 404);
    let (status, _) = h.github("ping", &payload).await;
    assert_eq!(status, 200);

    let h = start(ForgeHookConfig::default(), 4).await;
    assert_eq!(h.github("ping", &payload).await.0, 404);
    assert_eq!(h.gitlab("Push Hook", &payload).await.0, 404);
    assert!(h.audit().await.is_empty());
}
