//! The store's one test suite: every test runs on SQLite and, with DATABASE_URL set, on
//! PostgreSQL.

mod access;
mod enrollment;
mod pr_reports;
mod resource_history;
mod status;
mod support;
mod web_reads;

use chrono::{DateTime, Utc};
use serde_json::json;
use state::{
    Action, Cause, Change, DESIRED_FORMAT, DesiredResource, DesiredState, Ensure, FileSpec,
    ObservedState, Origin, PackageEnsure, PackageSpec, PropertyChange, ResourceId, ResourceKind,
    Spec,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;
use store::{
    AuditRecord, AuditVerdict, BackendKind, BreakKind, CommitRecord, NodeFilter, NodeUpsert,
    Outcome, Pruned, ResourceResult, RunStatus, Store, StoreError,
};
use support::each_backend;

const SECRET: &str = "S3CRET-hunter2-do-not-store";

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn node(name: &str, pairs: &[(&str, &str)]) -> NodeUpsert {
    NodeUpsert {
        name: name.into(),
        labels: labels(pairs),
        in_inventory: true,
    }
}

fn commit(sha: &str) -> CommitRecord {
    CommitRecord {
        sha: sha.into(),
        ok: true,
        diagnostics: json!({"format": 1, "diagnostics": []}),
        compiled_at: DateTime::parse_from_rfc3339("2026-11-24T10:00:00.25Z")
            .expect("valid time")
            .with_timezone(&Utc),
    }
}

fn file(path: &str, content: &str, sensitive: bool) -> DesiredResource {
    DesiredResource {
        id: ResourceId::new(ResourceKind::File, path),
        spec: Spec::File(FileSpec {
            path: path.into(),
            ensure: Ensure::Present,
            content: Some(Arc::from(content)),
            sha256: Some(state::digest::sha256(content.as_bytes())),
            mode: Some("0640".into()),
            owner: Some("root".into()),
            group: None,
            sensitive,
        }),
        requires: Vec::new(),
        notify: Vec::new(),
        origin: Origin {
            role: "base".into(),
            file: "roles/base.yaml".into(),
            line: 3,
        },
    }
}

fn package(name: &str) -> DesiredResource {
    DesiredResource {
        id: ResourceId::new(ResourceKind::Package, name),
        spec: Spec::Package(PackageSpec {
            name: name.into(),
            ensure: PackageEnsure::Present,
        }),
        requires: Vec::new(),
        notify: Vec::new(),
        origin: Origin {
            role: "base".into(),
            file: "roles/base.yaml".into(),
            line: 9,
        },
    }
}

fn desired(node: &str, commit: Option<&str>, resources: Vec<DesiredResource>) -> DesiredState {
    DesiredState {
        format: DESIRED_FORMAT,
        node: node.into(),
        commit: commit.map(str::to_owned),
        labels: labels(&[("role", "web")]),
        resources: resources.into_iter().map(Arc::new).collect(),
    }
}

fn record(actor: &str, n: usize) -> AuditRecord {
    AuditRecord {
        actor: actor.into(),
        action: "plan.approve".into(),
        target: format!("web-{n}"),
        commit: Some("c1".into()),
        outcome: "ok".into(),
        details: json!({"digest": format!("sha256:{n:064}"), "n": n}),
    }
}

async fn append(store: &Store, n: usize) {
    for i in 1..=n {
        store
            .audit_append(&record("alice", i))
            .await
            .expect("append");
    }
}

async fn broken(store: &Store) -> (i64, BreakKind) {
    match store.audit_verify().await.expect("verify runs") {
        AuditVerdict::Broken(b) => {
            eprintln!("verify: {b}");
            (b.seq, b.kind)
        }
        AuditVerdict::Intact { entries, .. } => panic!("tampering not seen ({entries} entries)"),
    }
}

#[tokio::test]
async fn migrations_run_once_and_reopen_cleanly() {
    each_backend(|db| async move {
        let first = db.open().await;
        first
            .upsert_node(&node("web-1", &[]))
            .await
            .expect("upsert");
        first.close().await;
        let second = db.open().await;
        assert!(second.node("web-1").await.expect("read").is_some());
        second.close().await;
        assert_eq!(db.count("SELECT COUNT(*) FROM _sqlx_migrations").await, 6);
        assert_eq!(
            db.count("SELECT COUNT(*) FROM audit_head").await,
            1,
            "the head row is created once"
        );
    })
    .await;
}

#[tokio::test]
async fn nodes_round_trip_with_labels_filters_and_pages() {
    each_backend(|db| async move {
        let store = db.open().await;
        let mut nodes: Vec<NodeUpsert> = (0..25)
            .map(|i| {
                let role = if i % 2 == 0 { "web" } else { "db" };
                let env = if i % 5 == 0 { "prod" } else { "stage" };
                node(&format!("n{i:02}"), &[("role", role), ("env", env)])
            })
            .collect();
        nodes[3].in_inventory = false;
        store.upsert_nodes(&nodes).await.expect("upsert");

        let n4 = store.node("n04").await.expect("read").expect("exists");
        assert_eq!(n4.labels, labels(&[("role", "web"), ("env", "stage")]));
        assert!(n4.in_inventory);
        assert_eq!(n4.reported_at, None);
        assert!(
            !store
                .node("n03")
                .await
                .expect("read")
                .expect("exists")
                .in_inventory
        );
        assert!(store.node("nope").await.expect("read").is_none());

        // Labels are replaced, not merged.
        let updated = store
            .upsert_node(&node("n04", &[("role", "db")]))
            .await
            .expect("upsert");
        assert_eq!(updated.labels, labels(&[("role", "db")]));
        assert_eq!(updated.id, n4.id);
        assert_eq!(updated.created_at, n4.created_at);

        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .list_nodes(&NodeFilter::default(), after.as_deref(), 10)
                .await
                .expect("list");
            assert!(page.items.len() <= 10);
            seen.extend(page.items.iter().map(|n| n.name.clone()));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let all: Vec<String> = (0..25).map(|i| format!("n{i:02}")).collect();
        assert_eq!(seen, all);

        let web_prod = NodeFilter {
            labels: labels(&[("role", "web"), ("env", "prod")]),
            in_inventory: None,
        };
        let page = store.list_nodes(&web_prod, None, 100).await.expect("list");
        let names: Vec<&str> = page.items.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["n00", "n10", "n20"]);
        assert!(page.next.is_none());
        assert!(page.items.iter().all(|n| n.labels["role"] == "web"));

        let outside = NodeFilter {
            labels: BTreeMap::new(),
            in_inventory: Some(false),
        };
        let page = store.list_nodes(&outside, None, 100).await.expect("list");
        let names: Vec<&str> = page.items.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["n03"]);

        let err = store
            .upsert_node(&node("", &[]))
            .await
            .expect_err("empty name refused");
        assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
        assert_eq!(db.count("SELECT COUNT(*) FROM nodes").await, 25);
    })
    .await;
}

#[tokio::test]
async fn observed_states_round_trip_and_discover_nodes() {
    each_backend(|db| async move {
        let store = db.open().await;
        assert!(store.observed("web-9").await.expect("read").is_none());
        let mut observed = ObservedState::new("web-9");
        observed.observed_at = Some("2026-11-24T17:00:00Z".into());
        observed
            .facts
            .insert("os".into(), json!({"id": "centos", "version": "9"}));
        observed.facts.insert("memory_mb".into(), json!(2048));
        let pkg = package("nginx");
        observed.resources.insert(pkg.id.clone(), pkg.spec.clone());
        store.record_observed(&observed).await.expect("record");

        let stored = store
            .observed("web-9")
            .await
            .expect("read")
            .expect("present");
        assert_eq!(stored.state, observed);
        let discovered = store.node("web-9").await.expect("read").expect("created");
        assert!(!discovered.in_inventory, "known only from its agent");
        assert_eq!(discovered.reported_at, Some(stored.reported_at));
        assert_eq!(discovered.facts.as_ref(), Some(&observed.facts));

        // The next report replaces the last one; the inventory flag stays as declared.
        store
            .upsert_node(&node("web-9", &[]))
            .await
            .expect("upsert");
        let mut newer = ObservedState::new("web-9");
        newer.observed_at = Some("2026-11-24T17:05:00Z".into());
        store.record_observed(&newer).await.expect("record");
        let stored = store
            .observed("web-9")
            .await
            .expect("read")
            .expect("present");
        assert_eq!(stored.state, newer);
        assert!(
            store
                .node("web-9")
                .await
                .expect("read")
                .expect("node")
                .in_inventory
        );

        let mut future = ObservedState::new("web-9");
        future.format += 1;
        let err = store
            .record_observed(&future)
            .await
            .expect_err("unknown format");
        assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
        let kept = store.observed("web-9").await.expect("read").expect("kept");
        assert_eq!(kept.state, newer);
    })
    .await;
}

#[tokio::test]
async fn commits_round_trip() {
    each_backend(|db| async move {
        let store = db.open().await;
        let c = commit("c0ffee");
        store.record_commit(&c).await.expect("record");
        assert_eq!(store.commit("c0ffee").await.expect("read"), Some(c.clone()));
        let failed = CommitRecord {
            ok: false,
            diagnostics: json!({"diagnostics": [{"code": "E0001", "message": "bad"}]}),
            ..c
        };
        store.record_commit(&failed).await.expect("re-record");
        assert_eq!(store.commit("c0ffee").await.expect("read"), Some(failed));
        assert!(store.commit("beef").await.expect("read").is_none());
        let err = store
            .record_commit(&commit("not a sha; DROP TABLE commits"))
            .await
            .expect_err("refused");
        assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    })
    .await;
}

#[tokio::test]
async fn desired_states_round_trip_and_are_stored_once_per_distinct_document() {
    each_backend(|db| async move {
        let store = db.open().await;
        store
            .upsert_nodes(&[node("a", &[]), node("b", &[]), node("c", &[])])
            .await
            .expect("upsert");
        store.record_commit(&commit("c1")).await.expect("commit");
        store.record_commit(&commit("c2")).await.expect("commit");
        let shared = vec![package("nginx"), file("/etc/motd", "hello\n", false)];
        let states = vec![
            desired("a", Some("c1"), shared.clone()),
            desired("b", None, shared.clone()),
            desired("c", None, vec![package("postgresql")]),
        ];
        let summary = store.set_desired("c1", &states).await.expect("store");
        assert_eq!((summary.nodes, summary.new_blobs), (3, 2));
        let again: Vec<DesiredState> = states
            .iter()
            .map(|s| DesiredState {
                commit: None,
                ..s.clone()
            })
            .collect();
        let summary = store.set_desired("c2", &again).await.expect("store");
        assert_eq!((summary.nodes, summary.new_blobs), (3, 0));
        assert_eq!(db.count("SELECT COUNT(*) FROM blobs").await, 2);
        assert_eq!(db.count("SELECT COUNT(*) FROM desired_states").await, 6);

        let b = store
            .desired_for("c2", "b")
            .await
            .expect("read")
            .expect("present");
        assert_eq!(
            b,
            DesiredState {
                commit: Some("c2".into()),
                ..states[1].clone()
            }
        );
        assert_eq!(
            store.desired_digest("c1", "a").await.expect("read"),
            store.desired_digest("c2", "b").await.expect("read")
        );
        assert!(
            store
                .desired_for("c1", "zzz")
                .await
                .expect("read")
                .is_none()
        );
        assert!(store.desired_for("c9", "a").await.expect("read").is_none());

        let err = store
            .set_desired("c1", &[desired("ghost", None, Vec::new())])
            .await
            .expect_err("unknown node");
        assert!(
            matches!(&err, StoreError::UnknownNode { name } if name == "ghost"),
            "{err}"
        );
        let err = store
            .set_desired("c9", &[desired("a", None, Vec::new())])
            .await
            .expect_err("unknown commit");
        assert!(matches!(err, StoreError::UnknownCommit { .. }), "{err}");
        let err = store
            .set_desired("c1", &[desired("a", Some("c2"), Vec::new())])
            .await
            .expect_err("commit mismatch");
        assert!(matches!(err, StoreError::CommitMismatch { .. }), "{err}");
        let mut future = desired("a", None, Vec::new());
        future.format = DESIRED_FORMAT + 1;
        let err = store
            .set_desired("c1", &[future])
            .await
            .expect_err("unknown format");
        assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
        // Nothing of the failed batches was stored.
        assert_eq!(db.count("SELECT COUNT(*) FROM desired_states").await, 6);
    })
    .await;
}

#[tokio::test]
async fn approvals_are_append_only_and_the_newest_is_in_force() {
    each_backend(|db| async move {
        let store = db.open().await;
        store.upsert_node(&node("a", &[])).await.expect("upsert");
        store.record_commit(&commit("c1")).await.expect("commit");
        store.record_commit(&commit("c2")).await.expect("commit");
        let err = store
            .approve_plan("c1", "a", "sha256:01", "alice")
            .await
            .expect_err("no desired state yet");
        assert!(matches!(err, StoreError::NoDesiredState { .. }), "{err}");
        assert!(store.approved_digest("a").await.expect("read").is_none());

        store
            .set_desired("c1", &[desired("a", None, vec![package("nginx")])])
            .await
            .expect("store");
        store
            .set_desired("c2", &[desired("a", None, vec![package("httpd")])])
            .await
            .expect("store");
        let first = store
            .approve_plan("c1", "a", "sha256:01", "alice")
            .await
            .expect("approve");
        assert_eq!(store.approved_digest("a").await.expect("read"), Some(first));
        let second = store
            .approve_plan("c2", "a", "sha256:02", "bob")
            .await
            .expect("approve");
        assert_eq!(
            store.approved_digest("a").await.expect("read"),
            Some(second.clone())
        );
        assert_eq!(second.commit, "c2");
        assert_eq!(second.approved_by, "bob");
        assert_eq!(db.count("SELECT COUNT(*) FROM plan_approvals").await, 2);
    })
    .await;
}

#[tokio::test]
async fn apply_runs_keep_per_resource_results() {
    each_backend(|db| async move {
        let store = db.open().await;
        store.upsert_node(&node("a", &[])).await.expect("upsert");
        let run = store
            .start_apply_run("a", "c1", "sha256:aa")
            .await
            .expect("start");
        let open = store.apply_run(run).await.expect("read").expect("present");
        assert_eq!((open.status, open.finished_at), (None, None));
        assert!(open.results.is_empty());

        let results = vec![
            ResourceResult {
                resource: "package:nginx".parse().expect("id"),
                action: Some(Action::Create),
                outcome: Outcome::Changed,
                reason: None,
                duration_ms: 1200,
            },
            ResourceResult {
                resource: "file:/etc/motd".parse().expect("id"),
                action: None,
                outcome: Outcome::Unchanged,
                reason: None,
                duration_ms: 1,
            },
            ResourceResult {
                resource: "service:nginx".parse().expect("id"),
                action: Some(Action::Restart),
                outcome: Outcome::Failed,
                reason: Some("Job for nginx.service failed".into()),
                duration_ms: 30,
            },
            ResourceResult {
                resource: "service:php-fpm".parse().expect("id"),
                action: Some(Action::Restart),
                outcome: Outcome::Skipped,
                reason: Some("every resource that notifies it failed".into()),
                duration_ms: 0,
            },
            // Stored as its verb and read back (both backends).
            ResourceResult {
                resource: "service:haproxy".parse().expect("id"),
                action: Some(Action::Reload),
                outcome: Outcome::Changed,
                reason: None,
                duration_ms: 4,
            },
        ];
        store
            .finish_apply_run(run, RunStatus::Failed, Some("1 resource failed"), &results)
            .await
            .expect("finish");
        let done = store.apply_run(run).await.expect("read").expect("present");
        assert_eq!(done.status, Some(RunStatus::Failed));
        assert_eq!(done.message.as_deref(), Some("1 resource failed"));
        assert!(done.finished_at.expect("finished") >= done.started_at);
        assert_eq!(done.results, results);
        assert_eq!((done.node.as_str(), done.commit.as_str()), ("a", "c1"));

        let err = store
            .finish_apply_run(run, RunStatus::Applied, None, &[])
            .await
            .expect_err("finishes once");
        assert!(matches!(err, StoreError::RunFinished { .. }), "{err}");
        let err = store
            .finish_apply_run(run + 1000, RunStatus::Applied, None, &[])
            .await
            .expect_err("no such run");
        assert!(matches!(err, StoreError::UnknownRun { .. }), "{err}");
        let err = store
            .start_apply_run("ghost", "c1", "sha256:aa")
            .await
            .expect_err("unknown node");
        assert!(matches!(err, StoreError::UnknownNode { .. }), "{err}");

        let second = store
            .start_apply_run("a", "c2", "sha256:bb")
            .await
            .expect("start");
        store
            .finish_apply_run(second, RunStatus::Stale, None, &[])
            .await
            .expect("finish");
        let runs = store.apply_runs_for("a", 10).await.expect("list");
        assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), [second, run]);
        assert_eq!(runs[1].results, results);
        assert!(store.apply_run(run + 1000).await.expect("read").is_none());
    })
    .await;
}

fn drift_change(path: &str, sensitive: bool, diff: Option<&str>) -> Change {
    Change {
        id: ResourceId::new(ResourceKind::File, path),
        action: Action::Update,
        cause: Cause::Drift,
        properties: vec![PropertyChange {
            name: "content".into(),
            before: Some("sha256:11".into()),
            after: Some("sha256:22".into()),
            cause: Cause::Drift,
        }],
        diff: diff.map(str::to_owned),
        destructive: false,
        sensitive,
        triggered_by: Vec::new(),
        unobserved: false,
    }
}

#[tokio::test]
async fn drift_events_list_by_node_and_page() {
    each_backend(|db| async move {
        let store = db.open().await;
        store
            .upsert_nodes(&[node("a", &[]), node("b", &[])])
            .await
            .expect("upsert");
        let mut ids = Vec::new();
        for i in 0..5 {
            let who = if i % 2 == 0 { "a" } else { "b" };
            let change = drift_change(&format!("/etc/f{i}"), false, Some("-old\n+new\n"));
            let event = store
                .record_drift_event(who, Some("c1"), &change)
                .await
                .expect("record");
            assert_eq!(event.change, change);
            ids.push(event.id);
        }
        let page = store.list_drift(None, None, 2).await.expect("list");
        assert_eq!(
            page.items.iter().map(|e| e.id).collect::<Vec<_>>(),
            &ids[..2]
        );
        let page2 = store.list_drift(None, page.next, 2).await.expect("list");
        assert_eq!(
            page2.items.iter().map(|e| e.id).collect::<Vec<_>>(),
            &ids[2..4]
        );
        let page3 = store.list_drift(None, page2.next, 2).await.expect("list");
        assert_eq!(
            page3.items.iter().map(|e| e.id).collect::<Vec<_>>(),
            &ids[4..]
        );
        assert!(page3.next.is_none());

        let of_a = store.list_drift(Some("a"), None, 100).await.expect("list");
        assert_eq!(of_a.items.len(), 3);
        assert!(of_a.items.iter().all(|e| e.node == "a"));
        let first = &of_a.items[0];
        assert_eq!(first.resource.to_string(), "file:/etc/f0");
        assert_eq!(first.commit.as_deref(), Some("c1"));
        assert_eq!(first.change.diff.as_deref(), Some("-old\n+new\n"));
    })
    .await;
}

#[tokio::test]
async fn no_secret_byte_reaches_any_table() {
    each_backend(|db| async move {
        let store = db.open().await;
        store
            .upsert_node(&node("vault-1", &[]))
            .await
            .expect("upsert");
        store.record_commit(&commit("c1")).await.expect("commit");
        let secret_file = format!("password={SECRET}\n");
        let state = desired(
            "vault-1",
            None,
            vec![
                file("/etc/app/secret.env", &secret_file, true),
                file("/etc/motd", "welcome\n", false),
            ],
        );
        store
            .set_desired("c1", std::slice::from_ref(&state))
            .await
            .expect("store");

        // The agent reports sensitive content (it should not, but the store must hold).
        let mut observed = ObservedState::converged(&state);
        let leaked = file("/etc/app/secret.env", &secret_file, true);
        observed
            .resources
            .insert(leaked.id.clone(), leaked.spec.clone());
        store.record_observed(&observed).await.expect("record");

        // A sensitive drift change built with a diff anyway.
        let diff = format!("-password=old\n+password={SECRET}\n");
        store
            .record_drift_event(
                "vault-1",
                Some("c1"),
                &drift_change("/etc/app/secret.env", true, Some(&diff)),
            )
            .await
            .expect("record");
        store.close().await;

        let dump = db.dump().await;
        assert!(
            dump.iter().any(|(table, _)| table == "blobs"),
            "the dump sees the tables"
        );
        let hex: String = SECRET.bytes().map(|b| format!("{b:02x}")).collect();
        for (table, text) in &dump {
            assert!(!text.contains(SECRET), "the secret reached `{table}`");
            assert!(
                !text.to_lowercase().contains(&hex),
                "the secret reached `{table}` in hex"
            );
        }

        // What is stored still says which content is desired: its digest.
        let store = db.open().await;
        let back = store
            .desired_for("c1", "vault-1")
            .await
            .expect("read")
            .expect("present");
        assert_eq!(
            back,
            DesiredState {
                commit: Some("c1".into()),
                ..state.redacted()
            }
        );
        let Spec::File(f) = &back.resources[0].spec else {
            panic!("a file")
        };
        assert_eq!(f.content, None);
        assert_eq!(
            f.sha256,
            Some(state::digest::sha256(secret_file.as_bytes()))
        );
        let Spec::File(motd) = &back.resources[1].spec else {
            panic!("a file")
        };
        assert_eq!(
            motd.content.as_deref(),
            Some("welcome\n"),
            "only sensitive content is redacted"
        );
    })
    .await;
}

#[tokio::test]
async fn audit_entries_chain_list_and_verify() {
    each_backend(|db| async move {
        let store = db.open().await;
        assert!(matches!(
            store.audit_verify().await.expect("verify"),
            AuditVerdict::Intact { entries: 0, .. }
        ));
        let mut appended = Vec::new();
        for i in 1..=5 {
            appended.push(
                store
                    .audit_append(&record("alice", i))
                    .await
                    .expect("append"),
            );
        }
        assert_eq!(appended[0].seq, 1);
        assert_eq!(appended[0].prev_hash, store::audit_chain::GENESIS_HASH);
        for pair in appended.windows(2) {
            assert_eq!(pair[1].prev_hash, pair[0].hash);
        }
        let mut listed = Vec::new();
        let mut after = None;
        loop {
            let page = store.audit_list(after, 2).await.expect("list");
            listed.extend(page.items);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(listed, appended);
        assert_eq!(
            store.audit_verify().await.expect("verify"),
            AuditVerdict::Intact {
                entries: 5,
                head: appended[4].hash.clone()
            }
        );
    })
    .await;
}

#[tokio::test]
async fn audit_entries_cannot_be_changed_through_sql_while_the_guards_stand() {
    each_backend(|db| async move {
        let store = db.open().await;
        append(&store, 3).await;
        for sql in [
            "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2",
            "DELETE FROM audit_log WHERE seq = 3",
        ] {
            let err = db.try_exec(sql).await.expect("refused");
            assert!(err.contains("append-only"), "{err}");
        }
        if db.kind == BackendKind::Postgres {
            let err = db.try_exec("TRUNCATE audit_log").await.expect("refused");
            assert!(err.contains("append-only"), "{err}");
        }
        assert!(matches!(
            store.audit_verify().await.expect("verify"),
            AuditVerdict::Intact { entries: 3, .. }
        ));
    })
    .await;
}

#[tokio::test]
async fn audit_verify_names_an_altered_entry() {
    each_backend(|db| async move {
        let store = db.open().await;
        append(&store, 5).await;
        db.drop_audit_guards().await;
        db.exec("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
            .await;
        assert_eq!(broken(&store).await, (3, BreakKind::Altered));
        db.exec("UPDATE audit_log SET actor = 'alice' WHERE seq = 3")
            .await;
        assert!(matches!(
            store.audit_verify().await.expect("verify"),
            AuditVerdict::Intact { .. }
        ));

        db.exec("UPDATE audit_log SET details = '{\"n\":99}' WHERE seq = 4")
            .await;
        assert_eq!(broken(&store).await, (4, BreakKind::Altered));
    })
    .await;
}

#[tokio::test]
async fn audit_verify_names_a_rewritten_entry_even_with_a_recomputed_hash() {
    each_backend(|db| async move {
        let store = db.open().await;
        append(&store, 5).await;
        let entry = store.audit_list(Some(1), 1).await.expect("list").items.remove(0);
        assert_eq!(entry.seq, 2);
        db.drop_audit_guards().await;
        // Rewrite entry 2's content and hash consistently (the chain's formula is public).
        let forged = format!(
            r#"{{"v":1,"seq":2,"at":"{}","actor":"mallory","action":"plan.approve","target":"web-2","commit":"c1","outcome":"ok","details":{{"digest":"sha256:{:064}","n":2}}}}"#,
            entry.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            2
        );
        let hash = state::digest::sha256(
            format!("centossrv-audit\n{}\n{forged}", entry.prev_hash).as_bytes(),
        );
        db.exec(&format!(
            "UPDATE audit_log SET actor = 'mallory', content = '{forged}', hash = '{hash}' WHERE seq = 2"
        ))
        .await;
        assert_eq!(broken(&store).await, (2, BreakKind::Altered));
    })
    .await;
}

#[tokio::test]
async fn audit_verify_names_a_removed_entry() {
    each_backend(|db| async move {
        let store = db.open().await;
        append(&store, 5).await;
        db.drop_audit_guards().await;
        db.exec("DELETE FROM audit_log WHERE seq = 3").await;
        assert_eq!(broken(&store).await, (3, BreakKind::Removed));
        db.exec("DELETE FROM audit_log WHERE seq = 1").await;
        assert_eq!(broken(&store).await, (1, BreakKind::Removed));
    })
    .await;
    each_backend(|db| async move {
        let store = db.open().await;
        append(&store, 5).await;
        db.drop_audit_guards().await;
        db.exec("DELETE FROM audit_log WHERE seq = 5").await;
        assert_eq!(
            broken(&store).await,
            (5, BreakKind::Removed),
            "a removed tail shows"
        );
    })
    .await;
}

#[tokio::test]
async fn audit_verify_names_reordered_entries() {
    each_backend(|db| async move {
        let store = db.open().await;
        append(&store, 5).await;
        db.drop_audit_guards().await;
        db.exec(
            "UPDATE audit_log SET seq = -2 WHERE seq = 2; \
             UPDATE audit_log SET seq = 2 WHERE seq = 4; \
             UPDATE audit_log SET seq = 4 WHERE seq = -2;",
        )
        .await;
        assert_eq!(broken(&store).await, (2, BreakKind::Reordered));
    })
    .await;
}

#[tokio::test]
async fn concurrent_appends_form_one_valid_chain() {
    each_backend(|db| async move {
        // Two handles (two pools, as two processes would have), eight writers.
        let stores = [db.open().await, db.open().await];
        let mut tasks = Vec::new();
        for w in 0..8 {
            let store = stores[w % 2].clone();
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..25 {
                    let entry = store
                        .audit_append(&record(&format!("writer{w}"), i))
                        .await
                        .expect("append");
                    seqs.push(entry.seq);
                }
                seqs
            }));
        }
        let mut all = BTreeSet::new();
        for task in tasks {
            for seq in task.await.expect("writer") {
                assert!(all.insert(seq), "sequence number {seq} given twice");
            }
        }
        assert_eq!(all, (1..=200).collect::<BTreeSet<i64>>());
        assert!(matches!(
            stores[0].audit_verify().await.expect("verify"),
            AuditVerdict::Intact { entries: 200, .. }
        ));
    })
    .await;
}

#[tokio::test]
async fn ten_thousand_nodes_in_one_batch() {
    each_backend(|db| async move {
        let store = db.open().await;
        let kind = match db.kind {
            BackendKind::Sqlite => "SQLite",
            BackendKind::Postgres => "PostgreSQL",
        };
        let nodes: Vec<NodeUpsert> = (0..10_000)
            .map(|i| node(&format!("node{i:05}"), &[("rack", &format!("r{}", i % 40)), ("role", "web")]))
            .collect();
        let started = Instant::now();
        store.upsert_nodes(&nodes).await.expect("upsert");
        let upserted = started.elapsed();
        store.record_commit(&commit("c1")).await.expect("commit");
        // Forty distinct states (one per rack), as a fleet of a few roles has.
        let states: Vec<DesiredState> = (0..10_000)
            .map(|i| {
                desired(
                    &format!("node{i:05}"),
                    None,
                    vec![
                        package("nginx"),
                        file("/etc/rack", &format!("r{}\n", i % 40), false),
                    ],
                )
            })
            .collect();
        let started = Instant::now();
        let summary = store.set_desired("c1", &states).await.expect("store");
        let stored = started.elapsed();
        eprintln!(
            "{kind}: upsert_nodes 10,000 nodes in {upserted:?}; set_desired 10,000 nodes in {stored:?}"
        );
        assert_eq!((summary.nodes, summary.new_blobs), (10_000, 40));
        assert_eq!(db.count("SELECT COUNT(*) FROM desired_states").await, 10_000);
        assert_eq!(db.count("SELECT COUNT(*) FROM node_labels").await, 20_000);
        let back = store.desired_for("c1", "node04321").await.expect("read").expect("present");
        assert_eq!(back, DesiredState { commit: Some("c1".into()), ..states[4321].clone() });
        let rack = NodeFilter {
            labels: labels(&[("rack", "r7")]),
            in_inventory: Some(true),
        };
        assert_eq!(store.list_nodes(&rack, None, 1000).await.expect("list").items.len(), 250);
    })
    .await;
}

#[tokio::test]
async fn connection_errors_never_show_the_password() {
    let err = Store::open("postgres://app:hunter2@127.0.0.1:1/centossrv")
        .await
        .expect_err("nothing listens on port 1");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("app:***@127.0.0.1:1"), "{text}");
    let err = Store::open("postgres://app:hunter2@127.0.0.1:notaport/x")
        .await
        .expect_err("bad port");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2"), "{text}");
    let err = Store::open("mysql://app:hunter2@db/x")
        .await
        .expect_err("unsupported");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(matches!(err, StoreError::UnsupportedUrl { .. }));
}

#[tokio::test]
async fn the_data_dir_holds_the_embedded_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open_data_dir(dir.path()).await.expect("open");
    store.upsert_node(&node("a", &[])).await.expect("upsert");
    store.close().await;
    assert!(dir.path().join(store::SQLITE_FILE_NAME).is_file());
    let again = Store::open_data_dir(dir.path()).await.expect("reopen");
    assert_eq!(again.backend_kind(), BackendKind::Sqlite);
    assert!(again.node("a").await.expect("read").is_some());
}

#[tokio::test]
async fn pruning_keeps_recent_and_pinned_commits_and_referenced_documents() {
    each_backend(|db| async move {
        let store = db.open().await;
        store.upsert_node(&node("a", &[])).await.expect("upsert");
        for (i, sha) in ["c1", "c2", "c3", "c4"].into_iter().enumerate() {
            let mut c = commit(sha);
            c.compiled_at += chrono::Duration::minutes(i as i64);
            store.record_commit(&c).await.expect("commit");
            let state = desired("a", None, vec![package(&format!("pkg{i}"))]);
            store.set_desired(sha, &[state]).await.expect("store");
        }
        store
            .approve_plan("c1", "a", "sha256:01", "alice")
            .await
            .expect("approve");
        store
            .approve_plan("c2", "a", "sha256:02", "alice")
            .await
            .expect("approve");
        let mut observed = ObservedState::new("a");
        let pkg = package("pkg1");
        observed.resources.insert(pkg.id.clone(), pkg.spec.clone());
        store.record_observed(&observed).await.expect("observe");
        assert_eq!(db.count("SELECT COUNT(*) FROM blobs").await, 5);

        // Keep the two newest (c3, c4) and the pinned c1; c2 goes, with its approval and its
        // document; the observed state's document stays.
        let pruned = store.prune_commits(2, &["c1"]).await.expect("prune");
        assert_eq!(
            pruned,
            Pruned {
                commits: 1,
                desired_states: 1,
                blobs: 1
            }
        );
        assert!(store.commit("c2").await.expect("read").is_none());
        assert!(store.desired_for("c2", "a").await.expect("read").is_none());
        assert!(store.desired_for("c1", "a").await.expect("read").is_some());
        assert_eq!(
            store
                .approved_digest("a")
                .await
                .expect("read")
                .map(|a| a.commit),
            Some("c1".into())
        );
        assert!(store.observed("a").await.expect("read").is_some());
        assert_eq!(db.count("SELECT COUNT(*) FROM blobs").await, 4);
    })
    .await;
}

#[tokio::test]
async fn a_store_never_prints_its_password() {
    each_backend(|db| async move {
        if db.kind != BackendKind::Postgres {
            return;
        }
        // Trust authentication ignores the password, so any will do.
        let Some((scheme, rest)) = db.url.split_once("://") else {
            panic!("a URL")
        };
        let Some((user, host)) = rest.split_once('@') else {
            return; // DATABASE_URL without a user: nothing to put a password on.
        };
        let user = user.split(':').next().unwrap_or(user);
        let url = format!("{scheme}://{user}:hunter2@{host}");
        let store = Store::open(&url).await.expect("opens");
        let text = format!("{store:?}");
        assert!(!text.contains("hunter2"), "{text}");
    })
    .await;
}

#[tokio::test]
async fn mixed_concurrent_writers_wait_for_each_other_instead_of_failing() {
    each_backend(|db| async move {
        let stores = [db.open().await, db.open().await];
        let nodes: Vec<NodeUpsert> = (0..500).map(|i| node(&format!("m{i:03}"), &[])).collect();
        stores[0].upsert_nodes(&nodes).await.expect("upsert");
        for c in 0..4 {
            stores[0]
                .record_commit(&commit(&format!("c{c}")))
                .await
                .expect("commit");
        }
        let mut tasks = Vec::new();
        for w in 0..4usize {
            let store = stores[w % 2].clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..20 {
                    store
                        .audit_append(&record("auditor", i))
                        .await
                        .expect("append");
                }
            }));
        }
        for c in 0..4usize {
            let store = stores[c % 2].clone();
            tasks.push(tokio::spawn(async move {
                let states: Vec<DesiredState> = (0..500)
                    .map(|i| desired(&format!("m{i:03}"), None, vec![package(&format!("p{c}"))]))
                    .collect();
                store
                    .set_desired(&format!("c{c}"), &states)
                    .await
                    .expect("set_desired");
            }));
        }
        for (w, store) in stores.iter().enumerate() {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..20 {
                    let mut observed = ObservedState::new(format!("m{:03}", i * 2 + w));
                    observed.facts.insert("n".into(), json!(i));
                    store
                        .record_observed(&observed)
                        .await
                        .expect("record_observed");
                }
            }));
        }
        for task in tasks {
            task.await.expect("writer");
        }
        assert_eq!(db.count("SELECT COUNT(*) FROM desired_states").await, 2000);
        assert!(matches!(
            stores[1].audit_verify().await.expect("verify"),
            AuditVerdict::Intact { entries: 80, .. }
        ));
    })
    .await;
}

#[tokio::test]
async fn facts_alone_update_a_known_node_without_marking_it_reported() {
    each_backend(|db| async move {
        let store = db.open().await;
        let facts: BTreeMap<String, serde_json::Value> = [
            ("kernel".to_owned(), json!("6.1.0")),
            ("cpus".to_owned(), json!(2)),
        ]
        .into();
        assert!(
            !store.record_facts("ghost", &facts).await.expect("facts"),
            "an unknown node is not created by facts"
        );
        assert!(store.node("ghost").await.expect("read").is_none());
        store
            .upsert_node(&node("web-1", &[]))
            .await
            .expect("upsert");
        assert!(store.record_facts("web-1", &facts).await.expect("facts"));
        let stored = store.node("web-1").await.expect("read").expect("node");
        assert_eq!(stored.facts.as_ref(), Some(&facts));
        assert_eq!(stored.reported_at, None, "facts are not an observed state");
        assert!(matches!(
            store.record_facts("bad\nname", &facts).await,
            Err(StoreError::Invalid { .. })
        ));
        store.close().await;
    })
    .await;
}
