//! One resource's history on one node, for `centossrv blame`: its desired form at each
//! compiled commit, the apply runs that concern it with its result, its drift events; all
//! newest first and bounded.

use crate::support::each_backend;
use crate::{desired, drift_change, file, node, package};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use state::{Action, ResourceId, ResourceKind};
use store::{CommitRecord, Outcome, ResourceResult, RunStatus, Store};

fn motd() -> ResourceId {
    ResourceId::new(ResourceKind::File, "/etc/motd")
}

fn commit_at(sha: &str, minute: i64) -> CommitRecord {
    let base: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-11-24T10:00:00Z")
        .expect("valid time")
        .with_timezone(&Utc);
    CommitRecord {
        sha: sha.into(),
        ok: true,
        diagnostics: json!({"format": 1, "diagnostics": []}),
        compiled_at: base + Duration::minutes(minute),
    }
}

/// Commits c1..c5 (one a minute): motd absent, added, unchanged (the package changed),
/// changed, changed (sensitive now).
async fn five_commits(store: &Store) {
    store
        .upsert_nodes(&[node("web-1", &[]), node("web-2", &[])])
        .await
        .expect("nodes");
    let versions: [Vec<_>; 5] = [
        vec![package("nginx")],
        vec![package("nginx"), file("/etc/motd", "hello\n", false)],
        vec![package("httpd"), file("/etc/motd", "hello\n", false)],
        vec![package("httpd"), file("/etc/motd", "hello again\n", false)],
        vec![package("httpd"), file("/etc/motd", "secret motd\n", true)],
    ];
    for (i, resources) in versions.into_iter().enumerate() {
        let sha = format!("c{}", i + 1);
        store
            .record_commit(&commit_at(&sha, i as i64))
            .await
            .expect("commit");
        store
            .set_desired(
                &sha,
                &[
                    desired("web-1", None, resources),
                    desired("web-2", None, vec![package("nginx")]),
                ],
            )
            .await
            .expect("desired");
    }
}

#[tokio::test]
async fn history_lists_the_resource_at_each_commit_newest_first() {
    each_backend(|db| async move {
        let store = db.open().await;
        five_commits(&store).await;
        let all = store
            .resource_history("web-1", &motd(), 10)
            .await
            .expect("history");
        assert!(!all.more);
        let shas: Vec<&str> = all.items.iter().map(|v| v.commit.as_str()).collect();
        assert_eq!(shas, ["c5", "c4", "c3", "c2", "c1"]);
        assert!(all.items[4].resource.is_none(), "absent at c1");
        assert_eq!(
            all.items[3].resource, all.items[2].resource,
            "same at c2 and c3"
        );
        assert_ne!(
            all.items[2].resource, all.items[1].resource,
            "changed at c4"
        );
        // Stored redacted: the sensitive version keeps only its digest.
        let newest = all.items[0].resource.as_ref().expect("present at c5");
        match &newest.spec {
            state::Spec::File(f) => {
                assert_eq!(f.content, None);
                assert!(f.sha256.is_some());
            }
            other => panic!("not a file: {other:?}"),
        }
        assert!(
            all.items
                .windows(2)
                .all(|w| w[0].compiled_at > w[1].compiled_at)
        );

        let bounded = store
            .resource_history("web-1", &motd(), 2)
            .await
            .expect("history");
        assert!(bounded.more, "older commits exist");
        assert_eq!(bounded.items, all.items[..2]);

        // Another node, an unknown node, a resource the node never had.
        let other = store
            .resource_history("web-2", &motd(), 10)
            .await
            .expect("history");
        assert_eq!(other.items.len(), 5);
        assert!(other.items.iter().all(|v| v.resource.is_none()));
        let unknown = store
            .resource_history("nope", &motd(), 10)
            .await
            .expect("history");
        assert!(unknown.items.is_empty() && !unknown.more);
    })
    .await;
}

#[tokio::test]
async fn runs_carry_the_resource_result_and_who_approved() {
    each_backend(|db| async move {
        let store = db.open().await;
        five_commits(&store).await;
        let result = |id: ResourceId, outcome: Outcome| ResourceResult {
            resource: id,
            action: (outcome == Outcome::Changed).then_some(Action::Update),
            outcome,
            reason: None,
            duration_ms: 5,
        };
        // Run 1 at c2: motd changed. Run 2 at c3: only the package (motd not in its results).
        // Run 3 at c4: stale, no results. Run 4 at c4: motd failed. Run 5 on another node.
        let r1 = store
            .approve_and_start_run("c2", "web-1", "sha256:d1", "alice")
            .await
            .expect("run");
        store
            .finish_apply_run(
                r1,
                RunStatus::Applied,
                None,
                &[
                    result(
                        ResourceId::new(ResourceKind::Package, "nginx"),
                        Outcome::Unchanged,
                    ),
                    result(motd(), Outcome::Changed),
                ],
            )
            .await
            .expect("finish");
        let r2 = store
            .approve_and_start_run("c3", "web-1", "sha256:d2", "reconciler")
            .await
            .expect("run");
        store
            .finish_apply_run(
                r2,
                RunStatus::Applied,
                None,
                &[result(
                    ResourceId::new(ResourceKind::Package, "httpd"),
                    Outcome::Changed,
                )],
            )
            .await
            .expect("finish");
        let r3 = store
            .approve_and_start_run("c4", "web-1", "sha256:d3", "reconciler")
            .await
            .expect("run");
        store
            .finish_apply_run(r3, RunStatus::Stale, Some("the node changed"), &[])
            .await
            .expect("finish");
        let r4 = store
            .approve_and_start_run("c4", "web-1", "sha256:d4", "bob")
            .await
            .expect("run");
        let mut failed = result(motd(), Outcome::Failed);
        failed.reason = Some("read-only file system".into());
        store
            .finish_apply_run(r4, RunStatus::Failed, Some("1 failed"), &[failed.clone()])
            .await
            .expect("finish");
        let r5 = store
            .approve_and_start_run("c4", "web-2", "sha256:d5", "bob")
            .await
            .expect("run");
        store
            .finish_apply_run(r5, RunStatus::Applied, None, &[])
            .await
            .expect("finish");

        let runs = store
            .resource_runs("web-1", &motd(), 10)
            .await
            .expect("runs");
        assert!(!runs.more);
        let ids: Vec<i64> = runs.items.iter().map(|r| r.run.id).collect();
        assert_eq!(
            ids,
            [r4, r3, r1],
            "run 2 does not concern motd; run 5 is another node's"
        );
        assert_eq!(runs.items[0].result, Some(failed));
        assert_eq!(runs.items[0].run.status, Some(RunStatus::Failed));
        assert_eq!(runs.items[0].approved_by.as_deref(), Some("bob"));
        assert_eq!(runs.items[1].result, None, "a stale run has no results");
        assert_eq!(
            runs.items[1].run.message.as_deref(),
            Some("the node changed")
        );
        assert_eq!(runs.items[2].run.commit, "c2");
        assert_eq!(
            runs.items[2].result.as_ref().map(|r| r.outcome),
            Some(Outcome::Changed)
        );
        assert_eq!(runs.items[2].approved_by.as_deref(), Some("alice"));

        let bounded = store
            .resource_runs("web-1", &motd(), 2)
            .await
            .expect("runs");
        assert!(bounded.more);
        assert_eq!(bounded.items, runs.items[..2]);
        let none = store
            .resource_runs("nope", &motd(), 10)
            .await
            .expect("runs");
        assert!(none.items.is_empty() && !none.more);
    })
    .await;
}

#[tokio::test]
async fn drift_of_one_resource_newest_first() {
    each_backend(|db| async move {
        let store = db.open().await;
        five_commits(&store).await;
        let mut ids = Vec::new();
        for (node, path) in [
            ("web-1", "/etc/motd"),
            ("web-1", "/etc/hosts"),
            ("web-2", "/etc/motd"),
            ("web-1", "/etc/motd"),
            ("web-1", "/etc/motd"),
        ] {
            let event = store
                .record_drift_event(node, Some("c4"), &drift_change(path, false, None))
                .await
                .expect("drift");
            ids.push(event.id);
        }
        let drift = store
            .resource_drift("web-1", &motd(), 10)
            .await
            .expect("drift");
        assert!(!drift.more);
        let got: Vec<i64> = drift.items.iter().map(|e| e.id).collect();
        assert_eq!(got, [ids[4], ids[3], ids[0]]);
        assert!(
            drift
                .items
                .iter()
                .all(|e| e.resource == motd() && e.node == "web-1")
        );
        let bounded = store
            .resource_drift("web-1", &motd(), 1)
            .await
            .expect("drift");
        assert!(bounded.more);
        assert_eq!(bounded.items, drift.items[..1]);
    })
    .await;
}
