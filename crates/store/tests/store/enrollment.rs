//! Enrollment tokens and node credentials, on both backends.

use crate::support::each_backend;
use std::time::Duration;
use store::{NodeUpsert, StoreError, TokenRefusal};

fn refusal(result: Result<String, StoreError>) -> TokenRefusal {
    match result {
        Err(StoreError::TokenRefused { reason }) => reason,
        other => panic!("expected a refused token, got {other:?}"),
    }
}

#[tokio::test]
async fn a_token_is_redeemed_once_for_a_working_credential() {
    each_backend(|db| async move {
        let store = db.open().await;
        let token = store
            .create_enrollment_token(Duration::from_secs(3600), "alice", None)
            .await
            .expect("create");
        assert!(token.starts_with("cset_"), "{token}");
        let credential = store
            .redeem_enrollment_token(&token, "web-1")
            .await
            .expect("redeem");
        assert!(credential.starts_with("csnc_"), "{credential}");
        assert_eq!(
            store.authenticate_node(&credential).await.expect("auth"),
            Some("web-1".to_owned())
        );
        let node = store.node("web-1").await.expect("read").expect("created");
        assert!(
            !node.in_inventory,
            "a node first seen at enrollment is discovered"
        );

        assert_eq!(
            refusal(store.redeem_enrollment_token(&token, "web-1").await),
            TokenRefusal::Used
        );
        assert_eq!(
            refusal(store.redeem_enrollment_token(&token, "web-2").await),
            TokenRefusal::Used
        );
        assert!(store.node("web-2").await.expect("read").is_none());
        assert_eq!(
            refusal(
                store
                    .redeem_enrollment_token(
                        "cset_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                        "x"
                    )
                    .await
            ),
            TokenRefusal::Unknown
        );
        assert_eq!(
            refusal(store.redeem_enrollment_token("garbage", "x").await),
            TokenRefusal::Unknown
        );
        for wrong in ["", "csnc_x", &credential[..credential.len() - 1], &token] {
            assert_eq!(store.authenticate_node(wrong).await.expect("auth"), None);
        }
    })
    .await;
}

#[tokio::test]
async fn expired_tokens_and_bad_lifetimes_are_refused() {
    each_backend(|db| async move {
        let store = db.open().await;
        let token = store
            .create_enrollment_token(Duration::from_millis(1), "alice", None)
            .await
            .expect("create");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            refusal(store.redeem_enrollment_token(&token, "web-1").await),
            TokenRefusal::Expired
        );
        assert!(store.node("web-1").await.expect("read").is_none());
        for bad in [Duration::ZERO, Duration::from_secs(400 * 24 * 3600)] {
            assert!(matches!(
                store.create_enrollment_token(bad, "alice", None).await,
                Err(StoreError::Invalid { .. })
            ));
        }
    })
    .await;
}

#[tokio::test]
async fn concurrent_redemptions_of_one_token_have_one_winner() {
    each_backend(|db| async move {
        let store = db.open().await;
        let token = store
            .create_enrollment_token(Duration::from_secs(60), "alice", None)
            .await
            .expect("create");
        let mut tasks = Vec::new();
        for i in 0..10 {
            let (store, token) = (store.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                store
                    .redeem_enrollment_token(&token, &format!("node-{i}"))
                    .await
            }));
        }
        let mut winners = Vec::new();
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await.expect("task") {
                Ok(credential) => winners.push((i, credential)),
                Err(StoreError::TokenRefused {
                    reason: TokenRefusal::Used,
                }) => {}
                Err(e) => panic!("redemption {i} failed: {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "exactly one redemption wins");
        let (i, credential) = &winners[0];
        assert_eq!(
            store.authenticate_node(credential).await.expect("auth"),
            Some(format!("node-{i}"))
        );
        assert_eq!(db.count("SELECT COUNT(*) FROM node_credentials").await, 1);
        assert_eq!(db.count("SELECT COUNT(*) FROM nodes").await, 1);
    })
    .await;
}

#[tokio::test]
async fn re_enrolling_revokes_and_revocation_locks_out() {
    each_backend(|db| async move {
        let store = db.open().await;
        store
            .upsert_node(&NodeUpsert {
                name: "db-1".into(),
                labels: Default::default(),
                in_inventory: true,
            })
            .await
            .expect("upsert");
        let mut credentials = Vec::new();
        // The first enrollment with a token for any new node; the second, of the same
        // node, with a token bound to it (see `tokens_bound_to_a_node`).
        for bound in [None, Some("db-1")] {
            let token = store
                .create_enrollment_token(Duration::from_secs(60), "alice", bound)
                .await
                .expect("create");
            credentials.push(
                store
                    .redeem_enrollment_token(&token, "db-1")
                    .await
                    .expect("redeem"),
            );
        }
        let node = store.node("db-1").await.expect("read").expect("kept");
        assert!(
            node.in_inventory,
            "enrolling keeps an inventory node as it is"
        );
        assert_eq!(
            store
                .authenticate_node(&credentials[0])
                .await
                .expect("auth"),
            None
        );
        assert_eq!(
            store
                .authenticate_node(&credentials[1])
                .await
                .expect("auth"),
            Some("db-1".to_owned())
        );
        assert_eq!(
            store.revoke_node_credentials("db-1").await.expect("revoke"),
            1
        );
        assert_eq!(
            store
                .authenticate_node(&credentials[1])
                .await
                .expect("auth"),
            None
        );
        assert_eq!(
            store
                .revoke_node_credentials("nobody")
                .await
                .expect("revoke"),
            0
        );
    })
    .await;
}

#[tokio::test]
async fn no_token_or_credential_is_stored_in_plaintext() {
    each_backend(|db| async move {
        let store = db.open().await;
        let token = store
            .create_enrollment_token(Duration::from_secs(60), "alice", None)
            .await
            .expect("create");
        let credential = store
            .redeem_enrollment_token(&token, "web-1")
            .await
            .expect("redeem");
        store.close().await;
        let rows = db.dump().await;
        assert!(rows.iter().any(|(table, _)| table == "enrollment_tokens"));
        assert!(rows.iter().any(|(table, _)| table == "node_credentials"));
        for secret in [&token, &credential] {
            // The random part, so a prefix elsewhere does not hide a match.
            let random = &secret[5..];
            for (table, row) in &rows {
                assert!(!row.contains(random), "{table} holds a secret in plaintext");
            }
        }
    })
    .await;
}

/// A token valid for a minute, bound to `node` if given.
async fn token(store: &store::Store, node: Option<&str>) -> String {
    store
        .create_enrollment_token(Duration::from_secs(60), "alice", node)
        .await
        .expect("create")
}

/// A token for a new machine cannot take over an enrolled node: re-enrolling needs a token
/// bound to that node, and a bound token enrolls no other name.
#[tokio::test]
async fn tokens_bound_to_a_node() {
    each_backend(|db| async move {
        let store = db.open().await;
        let first = token(&store, None).await;
        let credential = store
            .redeem_enrollment_token(&first, "web-1")
            .await
            .expect("redeem");

        // Another unbound token, presented for the enrolled node: refused, and the node's
        // credential still works; the token is not used up and still enrolls a new node.
        let spare = token(&store, None).await;
        assert_eq!(
            refusal(store.redeem_enrollment_token(&spare, "web-1").await),
            TokenRefusal::NodeEnrolled
        );
        assert_eq!(
            store.authenticate_node(&credential).await.expect("auth"),
            Some("web-1".to_owned())
        );
        store
            .redeem_enrollment_token(&spare, "web-9")
            .await
            .expect("a new node");

        // A token bound to web-1 enrolls nothing else, and re-enrolls web-1.
        let bound = token(&store, Some("web-1")).await;
        for other in ["web-2", "web-9"] {
            assert_eq!(
                refusal(store.redeem_enrollment_token(&bound, other).await),
                TokenRefusal::OtherNode
            );
        }
        assert!(store.node("web-2").await.expect("read").is_none());
        let renewed = store
            .redeem_enrollment_token(&bound, "web-1")
            .await
            .expect("re-enroll");
        assert_eq!(
            store.authenticate_node(&credential).await.expect("auth"),
            None
        );
        assert_eq!(
            store.authenticate_node(&renewed).await.expect("auth"),
            Some("web-1".to_owned())
        );
        assert_eq!(
            refusal(store.redeem_enrollment_token(&bound, "web-1").await),
            TokenRefusal::Used
        );
        // After revocation, the node holds no current credential: a token for any new node
        // may enroll it again (as for a node whose credential was revoked on purpose).
        store
            .revoke_node_credentials("web-1")
            .await
            .expect("revoke");
        let again = token(&store, None).await;
        store
            .redeem_enrollment_token(&again, "web-1")
            .await
            .expect("enroll after revocation");

        // A bad name is refused when the token is created.
        assert!(matches!(
            store
                .create_enrollment_token(Duration::from_secs(60), "alice", Some("bad\nname"))
                .await,
            Err(StoreError::Invalid { .. })
        ));
    })
    .await;
}
