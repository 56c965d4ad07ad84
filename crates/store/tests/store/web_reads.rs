//! Reads for the status page: the audit log newest first, and the activity mark that moves
//! with every change the overview shows.

use super::support::each_backend;
use super::{append, commit, desired, drift_change, node, package};
use state::ObservedState;
use store::{ActivityMark, ResourceResult, RunStatus};

#[tokio::test]
async fn audit_pages_newest_first_without_gaps_or_repeats() {
    each_backend(|db| async move {
        let store = db.open().await;
        let empty = store.audit_list_newest(None, 10).await.expect("list");
        assert!(empty.items.is_empty());
        assert_eq!(empty.next, None);
        append(&store, 7).await;
        let mut seen = Vec::new();
        let mut before = None;
        let mut pages = 0;
        loop {
            let page = store.audit_list_newest(before, 3).await.expect("list");
            assert!(page.items.len() <= 3);
            seen.extend(page.items.iter().map(|e| e.seq));
            pages += 1;
            match page.next {
                Some(next) => before = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, vec![7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(pages, 3);
        // The entries read back are the ones the oldest-first listing returns.
        let newest = store.audit_list_newest(None, 1).await.expect("list");
        let oldest_first = store.audit_list(Some(6), 1).await.expect("list");
        assert_eq!(newest.items, oldest_first.items);
        assert_eq!(newest.next, Some(7));
    })
    .await;
}

#[tokio::test]
async fn the_activity_mark_moves_with_each_change_the_overview_shows() {
    each_backend(|db| async move {
        let store = db.open().await;
        let mut last = store.activity_mark().await.expect("mark");
        assert_eq!(last, ActivityMark::default());

        store
            .upsert_nodes(&[node("web-1", &[("role", "web")])])
            .await
            .expect("nodes");
        moved(
            &mut last,
            store.activity_mark().await.expect("mark"),
            "a new node",
        );
        assert_eq!(last.nodes, 1);
        assert_eq!(last.reported_nodes, 0);

        store
            .record_observed(&ObservedState::new("web-1"))
            .await
            .expect("observed");
        moved(
            &mut last,
            store.activity_mark().await.expect("mark"),
            "a first report",
        );
        assert_eq!(last.reported_nodes, 1);

        store.record_commit(&commit("c1")).await.expect("commit");
        store
            .set_desired("c1", &[desired("web-1", None, vec![package("nginx")])])
            .await
            .expect("desired");
        store
            .approve_plan("c1", "web-1", "sha256:aa", "reconciler")
            .await
            .expect("approve");
        moved(
            &mut last,
            store.activity_mark().await.expect("mark"),
            "an approval",
        );

        let run = store
            .start_apply_run("web-1", "c1", "sha256:aa")
            .await
            .expect("start");
        moved(
            &mut last,
            store.activity_mark().await.expect("mark"),
            "a started run",
        );

        store
            .record_drift_event("web-1", Some("c1"), &drift_change("/etc/motd", false, None))
            .await
            .expect("drift");
        moved(
            &mut last,
            store.activity_mark().await.expect("mark"),
            "a drift event",
        );

        store
            .finish_apply_run(run, RunStatus::Applied, None, &[] as &[ResourceResult])
            .await
            .expect("finish");
        append(&store, 1).await;
        moved(
            &mut last,
            store.activity_mark().await.expect("mark"),
            "an audit entry",
        );
        assert_eq!(last.audit_seq, 1);

        // Reading changes nothing.
        assert_eq!(store.activity_mark().await.expect("mark"), last);
    })
    .await;
}

fn moved(last: &mut ActivityMark, now: ActivityMark, what: &str) {
    assert_ne!(now, *last, "the mark did not move after {what}");
    *last = now;
}
