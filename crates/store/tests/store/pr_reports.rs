//! Pull request reports and the bulk read of observed states the PR planner uses.

use crate::support::each_backend;
use serde_json::json;
use state::ObservedState;
use store::PrReport;

#[tokio::test]
async fn pr_reports_replace_and_forget() {
    each_backend(|db| async move {
        let store = db.open().await;
        assert_eq!(store.pr_report("github", 7).await.expect("read"), None);
        let first = PrReport {
            forge: "github".into(),
            number: 7,
            head_sha: "a".repeat(40),
            base_sha: Some("b".repeat(40)),
            report: r#"{"format":1}"#.into(),
        };
        store.save_pr_report(&first).await.expect("save");
        let second = PrReport {
            head_sha: "c".repeat(40),
            report: r#"{"format":1,"x":2}"#.into(),
            ..first.clone()
        };
        store.save_pr_report(&second).await.expect("replace");
        // The same number on the other forge is another pull request.
        let other = PrReport {
            forge: "gitlab".into(),
            ..first.clone()
        };
        store.save_pr_report(&other).await.expect("save");
        assert_eq!(
            store.pr_report("github", 7).await.expect("read"),
            Some(second)
        );
        assert_eq!(
            store.pr_report("gitlab", 7).await.expect("read"),
            Some(other)
        );
        store.delete_pr_report("github", 7).await.expect("delete");
        assert_eq!(store.pr_report("github", 7).await.expect("read"), None);
        assert!(store.pr_report("gitlab", 7).await.expect("read").is_some());
    })
    .await;
}

#[tokio::test]
async fn observed_all_reads_every_reported_node() {
    each_backend(|db| async move {
        let store = db.open().await;
        assert!(store.observed_all().await.expect("read").is_empty());
        let mut expected = std::collections::BTreeMap::new();
        for i in 0..30 {
            let mut observed = ObservedState::new(format!("web-{i:02}"));
            observed.observed_at = Some("2026-11-24T17:00:00Z".into());
            observed.facts.insert("n".into(), json!(i));
            store.record_observed(&observed).await.expect("record");
            expected.insert(observed.node.clone(), observed);
        }
        let all = store.observed_all().await.expect("read");
        assert_eq!(all.len(), 30);
        for (name, record) in &all {
            assert_eq!(&record.state, &expected[name], "{name}");
            let one = store.observed(name).await.expect("read").expect("present");
            assert_eq!(one, *record);
        }
    })
    .await;
}
