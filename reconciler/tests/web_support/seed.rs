//! A fleet in every state, written through the store's own API: `n` nodes (`web-001`...)
//! with labels, facts, a desired state at two commits, observations, approvals, apply runs
//! with per-resource results, drift events and audit entries; one node with a hostile name
//! and label. Used by the tests and by the 10,000-node benchmark (`examples/web_bench.rs`).

use chrono::{Duration, Utc};
use serde_json::json;
use state::{
    Action, Cause, Change, DESIRED_FORMAT, DesiredResource, DesiredState, Ensure, FileSpec,
    ObservedState, Origin, PackageEnsure, PackageSpec, PropertyChange, ResourceId, ResourceKind,
    Spec,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use store::{AuditRecord, CommitRecord, NodeUpsert, Outcome, ResourceResult, RunStatus, Store};

/// The older and the newer (in force) commit.
pub const OLD: &str = "1111111111111111111111111111111111111111";
pub const HEAD: &str = "2222222222222222222222222222222222222222";
/// A commit that failed to compile, with located diagnostics.
pub const BROKEN: &str = "3333333333333333333333333333333333333333";
/// A name and a label value that would run script if not escaped.
pub const HOSTILE_NAME: &str = "<script>alert(\"name\")</script>";
pub const HOSTILE_LABEL: &str = "\"><img src=x onerror=alert(1)>";
/// Content of a sensitive file: must never reach a page.
pub const SECRET: &str = "S3CRET-hunter2-never-shown";

/// What state each seeded node is built to be in, by its index.
pub fn intended_state(i: usize) -> &'static str {
    match i % 10 {
        0 => "unknown",
        1 => "failed",
        2 => "stale",
        3 | 4 => "drifted",
        5 => "pending",
        _ => "converged",
    }
}

pub fn name(i: usize) -> String {
    format!("web-{i:03}")
}

pub fn role(i: usize) -> &'static str {
    ["web", "db", "app"][i % 3]
}

pub fn env(i: usize) -> &'static str {
    if i.is_multiple_of(2) {
        "prod"
    } else {
        "staging"
    }
}

fn origin(line: u32) -> Origin {
    Origin {
        role: "base".into(),
        file: "roles/base.yaml".into(),
        line,
    }
}

fn resources() -> Vec<Arc<DesiredResource>> {
    let motd = "Welcome to the fleet\n";
    vec![
        Arc::new(DesiredResource {
            id: ResourceId::new(ResourceKind::Package, "nginx"),
            spec: Spec::Package(PackageSpec {
                name: "nginx".into(),
                ensure: PackageEnsure::Present,
            }),
            requires: Vec::new(),
            notify: Vec::new(),
            origin: origin(4),
        }),
        Arc::new(DesiredResource {
            id: ResourceId::new(ResourceKind::File, "/etc/motd"),
            spec: Spec::File(FileSpec {
                path: "/etc/motd".into(),
                ensure: Ensure::Present,
                content: Some(Arc::from(motd)),
                sha256: Some(state::digest::sha256(motd.as_bytes())),
                mode: Some("0644".into()),
                owner: Some("root".into()),
                group: Some("root".into()),
                sensitive: false,
            }),
            requires: Vec::new(),
            notify: Vec::new(),
            origin: origin(9),
        }),
        Arc::new(DesiredResource {
            id: ResourceId::new(ResourceKind::File, "/etc/app/token"),
            spec: Spec::File(FileSpec {
                path: "/etc/app/token".into(),
                ensure: Ensure::Present,
                content: Some(Arc::from(SECRET)),
                sha256: Some(state::digest::sha256(SECRET.as_bytes())),
                mode: Some("0600".into()),
                owner: Some("root".into()),
                group: Some("root".into()),
                sensitive: true,
            }),
            requires: Vec::new(),
            notify: Vec::new(),
            origin: origin(14),
        }),
    ]
}

fn desired(node: &str) -> DesiredState {
    DesiredState {
        format: DESIRED_FORMAT,
        node: node.to_owned(),
        commit: None,
        labels: BTreeMap::new(),
        resources: resources(),
    }
}

/// The drift every drifted node reports: its motd's mode is 0666.
pub fn drift_change() -> Change {
    Change {
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
    }
}

fn results(status: RunStatus) -> Vec<ResourceResult> {
    let ids: Vec<ResourceId> = resources().iter().map(|r| r.id.clone()).collect();
    ids.into_iter()
        .enumerate()
        .map(|(k, resource)| {
            let (outcome, reason) = match (status, k) {
                (RunStatus::Failed, 1) => (
                    Outcome::Failed,
                    Some("write /etc/motd: read-only file system".to_owned()),
                ),
                (RunStatus::Failed, 2) => (Outcome::Skipped, Some("an earlier step failed".into())),
                (_, 0) => (Outcome::Unchanged, None),
                _ => (Outcome::Changed, None),
            };
            ResourceResult {
                resource,
                action: (k > 0).then_some(Action::Update),
                outcome,
                reason,
                duration_ms: 12 + k as u64 * 7,
            }
        })
        .collect()
}

fn commit(sha: &str, minutes_ago: i64, diagnostics: serde_json::Value, ok: bool) -> CommitRecord {
    CommitRecord {
        sha: sha.into(),
        ok,
        diagnostics,
        compiled_at: Utc::now() - Duration::minutes(minutes_ago),
    }
}

/// Seeds `n` nodes (plus the hostile one) and `audit` audit entries.
pub async fn seed(store: &Store, n: usize, audit: usize) {
    let mut nodes: Vec<NodeUpsert> = (0..n)
        .map(|i| NodeUpsert {
            name: name(i),
            labels: [("role", role(i)), ("env", env(i))]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            in_inventory: true,
        })
        .collect();
    nodes.push(NodeUpsert {
        name: HOSTILE_NAME.into(),
        labels: [("role".to_owned(), HOSTILE_LABEL.to_owned())].into(),
        in_inventory: true,
    });
    store.upsert_nodes(&nodes).await.expect("nodes");

    store
        .record_commit(&commit(
            OLD,
            120,
            json!({"format": 1, "ok": true, "errors": 0, "warnings": 1, "nodes": n, "roles": 3,
                   "diagnostics": [{"code": "W101", "severity": "warning", "file": "roles/web.yaml",
                                    "line": 12, "column": 7, "message": "variable `port` is never used"}]}),
            true,
        ))
        .await
        .expect("commit");
    store
        .record_commit(&commit(
            BROKEN,
            90,
            json!({"format": 1, "ok": false, "errors": 2, "warnings": 0, "nodes": 0, "roles": 3,
                   "diagnostics": [
                     {"code": "E201", "severity": "error", "file": "roles/db.yaml", "line": 3,
                      "column": 5, "message": "unknown field `packges`", "hint": "did you mean `packages`?"},
                     {"code": "E305", "severity": "error", "file": "nodes/<evil>.yaml", "line": 0,
                      "column": 0, "message": "file name is not a node name: <b>bold</b>"}]}),
            false,
        ))
        .await
        .expect("commit");
    store
        .record_commit(&commit(
            HEAD,
            60,
            json!({"format": 1, "ok": true, "errors": 0, "warnings": 0, "nodes": n, "roles": 3,
                   "diagnostics": []}),
            true,
        ))
        .await
        .expect("commit");
    let states: Vec<DesiredState> = nodes.iter().map(|n| desired(&n.name)).collect();
    store.set_desired(OLD, &states).await.expect("desired");
    store.set_desired(HEAD, &states).await.expect("desired");

    for i in 0..n {
        let node = name(i);
        let intended = intended_state(i);
        if intended == "unknown" {
            continue;
        }
        let mut observed = ObservedState::converged(&desired(&node));
        observed.observed_at = Some(Utc::now().to_rfc3339());
        observed.facts.insert(
            "os".into(),
            json!({"id": "centos", "version": "9", "name": "CentOS Stream"}),
        );
        observed
            .facts
            .insert("kernel".into(), json!("5.14.0-503.el9.x86_64"));
        observed.facts.insert("cpus".into(), json!(4));
        // What the agent's heartbeat reports of its generations, newest first.
        observed.facts.insert(
            "centossrv_generations".into(),
            json!([
                {"number": 2, "created_at": "2026-11-24T10:05:00Z", "kind": "apply",
                 "commit": HEAD, "paths": 3, "sysctls": 0, "packages": 1, "accounts": 0,
                 "services": 0,
                 "finished": if intended == "failed" { serde_json::Value::Null } else {
                     json!({"finished_at": "2026-11-24T10:05:01Z", "changed": 2, "failed": 0}) }},
                {"number": 1, "created_at": "2026-11-23T09:00:00Z", "kind": "apply",
                 "commit": OLD, "paths": 3, "sysctls": 0, "packages": 1, "accounts": 0,
                 "services": 0,
                 "finished": {"finished_at": "2026-11-23T09:00:02Z", "changed": 3, "failed": 0}}
            ]),
        );
        if intended == "drifted"
            && let Some(Spec::File(f)) = observed
                .resources
                .get_mut(&ResourceId::new(ResourceKind::File, "/etc/motd"))
        {
            f.mode = Some("0666".into());
        }
        store.record_observed(&observed).await.expect("observed");
        let (approve_at, run_at, status) = match intended {
            "failed" => (HEAD, HEAD, RunStatus::Failed),
            "stale" => (HEAD, HEAD, RunStatus::Stale),
            "pending" => (OLD, OLD, RunStatus::Applied),
            _ => (HEAD, HEAD, RunStatus::Applied),
        };
        let digest = format!("sha256:{:064x}", i + 1);
        store
            .approve_plan(approve_at, &node, &digest, "reconciler")
            .await
            .expect("approve");
        let run = store
            .start_apply_run(&node, run_at, &digest)
            .await
            .expect("start");
        let message = match status {
            RunStatus::Failed => Some("1 of 3 resources failed"),
            RunStatus::Stale => Some("the node changed since the plan was approved"),
            _ => None,
        };
        store
            .finish_apply_run(run, status, message, &results(status))
            .await
            .expect("finish");
        match intended {
            "pending" => {
                store
                    .approve_plan(HEAD, &node, &digest, "reconciler")
                    .await
                    .expect("approve");
            }
            "drifted" => {
                store
                    .record_drift_event(&node, Some(HEAD), &drift_change())
                    .await
                    .expect("drift");
            }
            _ => {}
        }
    }

    let records: Vec<AuditRecord> = (0..audit)
        .map(|k| AuditRecord {
            actor: if k.is_multiple_of(5) {
                "alice".into()
            } else {
                "reconciler".into()
            },
            action: [
                "commit.compile",
                "plan.approve",
                "apply.finish",
                "node.enroll",
            ][k % 4]
                .into(),
            target: if k.is_multiple_of(4) {
                "fleet".into()
            } else {
                name(k % n.max(1))
            },
            commit: Some(HEAD.into()),
            outcome: if k % 7 == 3 {
                "failed".into()
            } else {
                "ok".into()
            },
            details: json!({"n": k, "note": "<i>not markup</i>"}),
        })
        .collect();
    for chunk in records.chunks(500) {
        store.audit_append_many(chunk).await.expect("audit");
    }
}
