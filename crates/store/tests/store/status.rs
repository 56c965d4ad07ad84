//! Derived node states, commit listings, approvals per commit, recent drift and ping.

use super::support::each_backend;
use super::{commit, desired, drift_change, node, package};
use chrono::Duration;
use state::ObservedState;
use std::collections::BTreeSet;
use store::{CommitRecord, NodeFilter, NodeState, ResourceResult, RunStatus, Store};

fn commit_at(sha: &str, minutes: i64) -> CommitRecord {
    let mut c = commit(sha);
    c.compiled_at += Duration::minutes(minutes);
    c
}

async fn report(store: &Store, name: &str) {
    store
        .record_observed(&ObservedState::new(name))
        .await
        .expect("record observed");
}

async fn run(store: &Store, name: &str, sha: &str, status: RunStatus) -> i64 {
    let id = store
        .start_apply_run(name, sha, "sha256:aa")
        .await
        .expect("start");
    store
        .finish_apply_run(id, status, None, &[] as &[ResourceResult])
        .await
        .expect("finish");
    id
}

async fn state_of(store: &Store, name: &str) -> NodeState {
    store
        .node_status(name)
        .await
        .expect("read")
        .expect("known")
        .state
}

#[tokio::test]
async fn node_states_follow_runs_drift_and_approvals() {
    each_backend(|db| async move {
        let store = db.open().await;
        let names = [
            "unknown",
            "failed",
            "stale",
            "drifted",
            "pending",
            "converged",
        ];
        store
            .upsert_nodes(&names.map(|n| node(n, &[("role", "web")])))
            .await
            .expect("upsert");
        store.record_commit(&commit_at("c1", 0)).await.expect("c1");
        store.record_commit(&commit_at("c2", 5)).await.expect("c2");
        for sha in ["c1", "c2"] {
            store
                .set_desired(
                    sha,
                    &names.map(|n| desired(n, None, vec![package("nginx")])),
                )
                .await
                .expect("desired");
        }
        for name in &names[1..] {
            report(&store, name).await;
        }
        assert_eq!(state_of(&store, "converged").await, NodeState::Converged);

        // failed: applied before, the last run failed (drift does not matter then).
        run(&store, "failed", "c1", RunStatus::Applied).await;
        run(&store, "failed", "c2", RunStatus::Failed).await;
        store
            .record_drift_event("failed", Some("c2"), &drift_change("/etc/a", false, None))
            .await
            .expect("drift");
        run(&store, "stale", "c2", RunStatus::Stale).await;
        // drifted: drift after the last successful run; drift before it does not count.
        store
            .record_drift_event("drifted", Some("c1"), &drift_change("/etc/a", false, None))
            .await
            .expect("drift");
        run(&store, "drifted", "c1", RunStatus::Applied).await;
        assert_eq!(state_of(&store, "drifted").await, NodeState::Converged);
        store
            .record_drift_event("drifted", Some("c1"), &drift_change("/etc/b", false, None))
            .await
            .expect("drift");
        // pending: approved at c2, applied c1; converged: approved and applied c1.
        run(&store, "pending", "c1", RunStatus::Applied).await;
        store
            .approve_plan("c2", "pending", "sha256:02", "alice")
            .await
            .expect("approve");
        store
            .approve_plan("c1", "converged", "sha256:01", "alice")
            .await
            .expect("approve");
        run(&store, "converged", "c1", RunStatus::Applied).await;
        // A run still in progress does not change the state.
        store
            .start_apply_run("converged", "c2", "sha256:bb")
            .await
            .expect("start");

        for name in names {
            let status = store.node_status(name).await.expect("read").expect("known");
            assert_eq!(status.state.as_str(), name, "{status:?}");
            assert_eq!(
                status.node.labels.get("role").map(String::as_str),
                Some("web")
            );
        }
        let drifted = store
            .node_status("drifted")
            .await
            .expect("read")
            .expect("known");
        assert_eq!(drifted.drift_since_applied, 1);
        assert_eq!(drifted.applied_commit.as_deref(), Some("c1"));
        let pending = store
            .node_status("pending")
            .await
            .expect("read")
            .expect("known");
        assert_eq!(pending.approval.expect("approval").commit, "c2");
        let failed = store
            .node_status("failed")
            .await
            .expect("read")
            .expect("known");
        let last = failed.last_run.expect("a run");
        assert_eq!(
            (last.commit.as_str(), last.status),
            ("c2", Some(RunStatus::Failed))
        );
        assert!(store.node_status("nobody").await.expect("read").is_none());

        let counts = store.node_state_counts().await.expect("counts");
        assert_eq!(counts.len(), NodeState::ALL.len());
        assert!(counts.values().all(|n| *n == 1), "{counts:?}");

        for state in NodeState::ALL {
            let page = store
                .list_node_status(&NodeFilter::default(), Some(state), None, 10)
                .await
                .expect("list");
            let got: Vec<&str> = page.items.iter().map(|s| s.node.name.as_str()).collect();
            assert_eq!(got, vec![state.as_str()]);
        }
        store.ping().await.expect("ping");
    })
    .await;
}

#[tokio::test]
async fn node_states_page_by_name_with_label_filters() {
    each_backend(|db| async move {
        let store = db.open().await;
        let nodes: Vec<_> = (0..25)
            .map(|i| {
                let parity = if i % 2 == 0 { "even" } else { "odd" };
                node(&format!("n{i:02}"), &[("parity", parity), ("dc", "x")])
            })
            .collect();
        store.upsert_nodes(&nodes).await.expect("upsert");
        let filter = NodeFilter {
            labels: [
                ("parity".to_owned(), "even".to_owned()),
                ("dc".into(), "x".into()),
            ]
            .into(),
            in_inventory: None,
        };
        let mut seen = BTreeSet::new();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .list_node_status(&filter, Some(NodeState::Unknown), after.as_deref(), 4)
                .await
                .expect("page");
            assert!(page.items.len() <= 4);
            for s in page.items {
                assert_eq!(s.node.labels["parity"], "even");
                assert!(seen.insert(s.node.name), "each node once");
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen.len(), 13);
        let none = store
            .list_node_status(&filter, Some(NodeState::Converged), None, 100)
            .await
            .expect("page");
        assert!(none.items.is_empty() && none.next.is_none());
    })
    .await;
}

#[tokio::test]
async fn commits_list_newest_first_in_pages() {
    each_backend(|db| async move {
        let store = db.open().await;
        for (i, sha) in ["a1", "b2", "c3", "d4", "e5"].iter().enumerate() {
            let minutes = i64::try_from(i).expect("small");
            store
                .record_commit(&commit_at(sha, minutes))
                .await
                .expect("record");
        }
        // Same compiled_at as c3: ties are broken by sha, descending.
        store
            .record_commit(&commit_at("c4", 2))
            .await
            .expect("record");
        let mut got = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store.list_commits(after.as_deref(), 2).await.expect("page");
            got.extend(page.items.into_iter().map(|c| c.sha));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(got, ["e5", "d4", "c4", "c3", "b2", "a1"]);
        let first = store.list_commits(None, 1).await.expect("page");
        assert_eq!(first.items[0], commit_at("e5", 4));
        assert!(
            store
                .list_commits(Some("nope"), 10)
                .await
                .expect("page")
                .items
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn approvals_per_commit_and_recent_drift() {
    each_backend(|db| async move {
        let store = db.open().await;
        store
            .upsert_nodes(&[node("a", &[]), node("b", &[]), node("c", &[])])
            .await
            .expect("upsert");
        store.record_commit(&commit_at("c1", 0)).await.expect("c1");
        store.record_commit(&commit_at("c2", 1)).await.expect("c2");
        for sha in ["c1", "c2"] {
            store
                .set_desired(
                    sha,
                    &["a", "b", "c"].map(|n| desired(n, None, vec![package("nginx")])),
                )
                .await
                .expect("desired");
        }
        store
            .approve_plan("c1", "b", "sha256:b1", "x")
            .await
            .expect("approve");
        store
            .approve_plan("c1", "a", "sha256:a1", "x")
            .await
            .expect("approve");
        store
            .approve_plan("c1", "a", "sha256:a2", "y")
            .await
            .expect("approve");
        store
            .approve_plan("c2", "c", "sha256:c2", "x")
            .await
            .expect("approve");
        let page = store
            .approvals_for_commit("c1", None, 1)
            .await
            .expect("page");
        assert_eq!(page.items.len(), 1);
        assert_eq!(
            (page.items[0].node.as_str(), page.items[0].digest.as_str()),
            ("a", "sha256:a2")
        );
        let rest = store
            .approvals_for_commit("c1", page.next.as_deref(), 10)
            .await
            .expect("page");
        let got: Vec<(&str, &str)> = rest
            .items
            .iter()
            .map(|a| (a.node.as_str(), a.digest.as_str()))
            .collect();
        assert_eq!(got, [("b", "sha256:b1")]);
        assert!(rest.next.is_none());

        for path in ["/etc/1", "/etc/2", "/etc/3"] {
            store
                .record_drift_event("a", Some("c1"), &drift_change(path, false, None))
                .await
                .expect("drift");
        }
        store
            .record_drift_event("b", None, &drift_change("/etc/9", false, None))
            .await
            .expect("drift");
        let recent = store.recent_drift("a", 2).await.expect("recent");
        let paths: Vec<String> = recent.iter().map(|e| e.resource.to_string()).collect();
        assert_eq!(paths, ["file:/etc/3", "file:/etc/2"]);
    })
    .await;
}

#[tokio::test]
async fn apply_runs_page_newest_first() {
    each_backend(|db| async move {
        let store = db.open().await;
        store
            .upsert_nodes(&[node("a", &[]), node("b", &[])])
            .await
            .expect("upsert");
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(run(&store, "a", "c1", RunStatus::Applied).await);
            run(&store, "b", "c1", RunStatus::Failed).await;
        }
        ids.reverse();
        let mut got = Vec::new();
        let mut before = None;
        loop {
            let page = store.apply_runs_page("a", before, 2).await.expect("page");
            assert!(page.items.iter().all(|r| r.node == "a"));
            got.extend(page.items.iter().map(|r| r.id));
            match page.next {
                Some(next) => before = Some(next),
                None => break,
            }
        }
        assert_eq!(got, ids);
    })
    .await;
}
