//! Users, role bindings, API tokens and holds: what is stored is never a password or a
//! token's text.

use super::support::each_backend;
use std::time::Duration;
use store::{API_TOKEN_PREFIX, StoreError};

const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

#[tokio::test]
async fn users_are_created_once_and_deleted_with_their_tokens_and_cli_binding() {
    each_backend(|db| async move {
        let store = db.open().await;
        store.create_user("alice", Some(PHC)).await.expect("create");
        let again = store.create_user("alice", None).await;
        assert!(
            matches!(again, Err(StoreError::Invalid { .. })),
            "{again:?}"
        );
        assert!(store.create_user("bad name", None).await.is_err());
        store
            .create_user("dir.user", None)
            .await
            .expect("directory user");
        let alice = store.user("alice").await.expect("read").expect("alice");
        assert_eq!(alice.password_hash.as_deref(), Some(PHC));
        assert!(!alice.disabled);
        assert_eq!(
            store
                .users()
                .await
                .expect("list")
                .iter()
                .map(|u| u.name.as_str())
                .collect::<Vec<_>>(),
            ["alice", "dir.user"]
        );
        store
            .bind_role("user:alice", "cli", "operator")
            .await
            .expect("bind");
        store
            .bind_role("user:alice", "git", "viewer")
            .await
            .expect("bind");
        store
            .bind_role("user:alice", "cli", "admin")
            .await
            .expect("rebind");
        let (token, _text) = store
            .create_api_token("alice", "ci", Duration::from_secs(60))
            .await
            .expect("token");
        assert!(store.delete_user("alice").await.expect("delete"));
        assert!(!store.delete_user("alice").await.expect("delete again"));
        let bindings = store.role_bindings().await.expect("bindings");
        assert_eq!(bindings.len(), 1, "{bindings:?}");
        assert_eq!(bindings[0].origin, "git");
        assert_eq!(store.api_token(&token.id).await.expect("read"), None);
    })
    .await;
}

#[tokio::test]
async fn api_tokens_are_stored_hashed_and_stop_at_revocation_expiry_or_disabled_user() {
    each_backend(|db| async move {
        let store = db.open().await;
        store.create_user("bob", Some(PHC)).await.expect("create");
        let (record, text) = store
            .create_api_token("bob", "deploy", Duration::from_secs(3600))
            .await
            .expect("token");
        assert!(text.starts_with(API_TOKEN_PREFIX));
        let found = store.authenticate_api_token(&text).await.expect("auth");
        assert_eq!(found.as_ref().map(|t| t.user.as_str()), Some("bob"));
        // Nothing in the database holds the token's text.
        for (table, content) in db.dump().await {
            assert!(!content.contains(&text), "token text stored in {table}");
            assert!(
                !content.contains(&text[API_TOKEN_PREFIX.len()..]),
                "in {table}"
            );
        }
        assert_eq!(
            store
                .authenticate_api_token("csat_nope")
                .await
                .expect("auth"),
            None
        );
        let mut wrong = text.clone();
        wrong.pop();
        wrong.push(if text.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(
            store.authenticate_api_token(&wrong).await.expect("auth"),
            None
        );
        // Disabled users' tokens stop working, and work again when re-enabled.
        assert!(store.set_user_disabled("bob", true).await.expect("disable"));
        assert_eq!(
            store.authenticate_api_token(&text).await.expect("auth"),
            None
        );
        assert!(store.set_user_disabled("bob", false).await.expect("enable"));
        assert!(
            store
                .authenticate_api_token(&text)
                .await
                .expect("auth")
                .is_some()
        );
        assert!(store.revoke_api_token(&record.id).await.expect("revoke"));
        assert!(
            !store
                .revoke_api_token(&record.id)
                .await
                .expect("revoke twice")
        );
        assert_eq!(
            store.authenticate_api_token(&text).await.expect("auth"),
            None
        );
        let listed = store.api_tokens(Some("bob")).await.expect("list");
        assert_eq!(listed.len(), 1);
        assert!(listed[0].revoked_at.is_some());
        // Expiry: a token from one second ago no longer authenticates.
        let (_, short) = store
            .create_api_token("bob", "short", Duration::from_secs(1))
            .await
            .expect("token");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(
            store.authenticate_api_token(&short).await.expect("auth"),
            None
        );
        assert!(
            store
                .create_api_token("bob", "x", Duration::ZERO)
                .await
                .is_err()
        );
        assert!(store.api_tokens(None).await.expect("all").len() == 2);
    })
    .await;
}

#[tokio::test]
async fn git_bindings_are_replaced_as_a_whole_and_holds_round_trip() {
    each_backend(|db| async move {
        let store = db.open().await;
        store
            .bind_role("user:carol", "cli", "admin")
            .await
            .expect("bind");
        store
            .replace_role_bindings(
                "git",
                &[
                    ("user:dave".into(), "operator".into()),
                    ("group:ops".into(), "operator".into()),
                ],
            )
            .await
            .expect("replace");
        store
            .replace_role_bindings("git", &[("group:auditors".into(), "auditor".into())])
            .await
            .expect("replace");
        let bindings: Vec<_> = store
            .role_bindings()
            .await
            .expect("list")
            .into_iter()
            .map(|b| (b.subject, b.origin, b.role))
            .collect();
        assert_eq!(
            bindings,
            [
                (
                    "group:auditors".to_owned(),
                    "git".to_owned(),
                    "auditor".to_owned()
                ),
                (
                    "user:carol".to_owned(),
                    "cli".to_owned(),
                    "admin".to_owned()
                ),
            ]
        );
        let hold = store
            .set_hold("web-01", "disk swap", "erin")
            .await
            .expect("hold");
        store
            .set_hold("web-01", "disk swap, day 2", "erin")
            .await
            .expect("hold again");
        let holds = store.holds().await.expect("holds");
        assert_eq!(holds.len(), 1);
        assert_eq!(holds[0].reason, "disk swap, day 2");
        assert_eq!(holds[0].node, hold.node);
        assert!(store.clear_hold("web-01").await.expect("clear"));
        assert!(!store.clear_hold("web-01").await.expect("clear twice"));
        assert!(store.holds().await.expect("holds").is_empty());
    })
    .await;
}

#[tokio::test]
async fn forwarding_cursors_are_kept_per_destination() {
    each_backend(|db| async move {
        let store = db.open().await;
        assert_eq!(
            store.forward_cursor("syslog udp://a").await.expect("read"),
            None
        );
        store
            .set_forward_cursor("syslog udp://a", 7)
            .await
            .expect("save");
        store
            .set_forward_cursor("syslog udp://a", 12)
            .await
            .expect("save");
        store
            .set_forward_cursor("syslog tcp://b", 3)
            .await
            .expect("save");
        assert_eq!(
            store.forward_cursor("syslog udp://a").await.expect("read"),
            Some(12)
        );
        assert_eq!(
            store.forward_cursor("syslog tcp://b").await.expect("read"),
            Some(3)
        );
    })
    .await;
}
