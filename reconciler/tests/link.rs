//! The agent link end to end: real TLS (certificates from `certs init`), real sockets on
//! 127.0.0.1, a real store; the engine's side is the event channel.
#![allow(clippy::unwrap_used)]

mod link_support;

use futures_util::{SinkExt as _, StreamExt as _};
use link_support::{Backend, Server, Ws, backends};
use reconciler::engine::Event;
use reconciler::link::{LinkConfig, LinkStats};
use state::wire::{AgentMessage, PROTOCOL_VERSION, ServerMessage, decode, encode};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

fn hello(node: &str) -> Message {
    Message::text(encode(&AgentMessage::Hello {
        v: PROTOCOL_VERSION,
        node: node.into(),
        agent_version: "0.0.0".into(),
        cached_commit: None,
    }))
}

fn heartbeat() -> Message {
    Message::text(encode(&AgentMessage::Heartbeat {
        v: PROTOCOL_VERSION,
        facts: BTreeMap::from([("os".to_owned(), serde_json::json!("centos"))]),
        observed: None,
    }))
}

/// The next text frame from the server, decoded.
async fn server_message(ws: &mut Ws) -> ServerMessage {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("the connection is open")
            .expect("a frame");
        if let Message::Text(text) = frame {
            return decode(text.as_str()).unwrap();
        }
    }
}

/// Reads until the server closes; the close code it sent, if any.
async fn closed(ws: &mut Ws) -> Option<CloseCode> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("the server did not close the connection within 5 s"),
            Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| f.code),
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Connects `node` with `credential`, says hello, expects Welcome; returns the socket and
/// the conn id the engine was told about (with the sender it got).
async fn hello_ok(
    server: &mut Server,
    credential: &str,
    node: &str,
) -> (Ws, u64, tokio::sync::mpsc::Sender<ServerMessage>) {
    let mut ws = server.connect(Some(credential)).await.expect("connects");
    ws.send(hello(node)).await.unwrap();
    match server_message(&mut ws).await {
        ServerMessage::Welcome {
            node: welcomed,
            heartbeat_seconds,
            ..
        } => {
            assert_eq!(welcomed, node);
            assert!(heartbeat_seconds >= 1);
        }
        other => panic!("expected Welcome, got {other:?}"),
    }
    let (conn, tx) = match server.event().await {
        Event::AgentConnected {
            node: connected,
            conn,
            tx,
        } => {
            assert_eq!(connected, node);
            (conn, tx)
        }
        other => panic!("expected AgentConnected, got {other:?}"),
    };
    match server.event().await {
        Event::AgentMessage {
            conn: c,
            message: AgentMessage::Hello { node: n, .. },
            ..
        } => assert_eq!((c, n.as_str()), (conn, node)),
        other => panic!("expected the Hello, got {other:?}"),
    }
    (ws, conn, tx)
}

#[tokio::test]
async fn an_enrolled_agent_connects_and_frames_flow_both_ways() {
    for backend in backends() {
        let mut server = Server::start(backend, LinkConfig::default()).await;
        let token = server
            .store
            .create_enrollment_token(Duration::from_secs(60), "alice", None)
            .await
            .unwrap();
        let (status, body) = server.enroll("web-1", &token).await;
        assert_eq!(status, 200, "{body}");
        let response: state::wire::EnrollResponse = serde_json::from_str(&body).unwrap();
        assert_eq!(response.node, "web-1");
        let credential = response.credential;

        let (mut ws, conn, tx) = hello_ok(&mut server, &credential, "web-1").await;
        ws.send(heartbeat()).await.unwrap();
        match server.event().await {
            Event::AgentMessage {
                node,
                conn: c,
                message: AgentMessage::Heartbeat { facts, .. },
            } => {
                assert_eq!((node.as_str(), c), ("web-1", conn));
                assert_eq!(facts["os"], "centos");
            }
            other => panic!("expected the heartbeat, got {other:?}"),
        }
        // The engine's messages reach the agent.
        tx.send(ServerMessage::Goodbye {
            v: PROTOCOL_VERSION,
            reason: "test".into(),
        })
        .await
        .unwrap();
        assert_eq!(
            server_message(&mut ws).await,
            ServerMessage::Goodbye {
                v: PROTOCOL_VERSION,
                reason: "test".into()
            }
        );
        ws.close(None).await.unwrap();
        match server.event().await {
            Event::AgentDisconnected { node, conn: c } => {
                assert_eq!((node.as_str(), c), ("web-1", conn))
            }
            other => panic!("expected AgentDisconnected, got {other:?}"),
        }

        // Audited, without the token or the credential.
        let entries = server.store.audit_list(None, 100).await.unwrap().items;
        let enroll = entries
            .iter()
            .find(|e| e.record.action == "node.enroll")
            .expect("an enrollment entry");
        assert_eq!(
            (
                enroll.record.outcome.as_str(),
                enroll.record.target.as_str()
            ),
            ("ok", "web-1")
        );
        let all = serde_json::to_string(
            &entries
                .iter()
                .map(|e| format!("{:?}", e.record))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert!(!all.contains(&token[5..]) && !all.contains(&credential[5..]));
        server.stop().await;
    }
}

#[tokio::test]
async fn bad_enrollments_are_refused_and_audited() {
    for backend in backends() {
        let server = Server::start(backend, LinkConfig::default()).await;
        let token = server
            .store
            .create_enrollment_token(Duration::from_secs(60), "alice", None)
            .await
            .unwrap();
        assert_eq!(server.enroll("web-1", &token).await.0, 200);
        let (status, body) = server.enroll("web-2", &token).await;
        assert_eq!(status, 401, "a reused token: {body}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"]["code"], "token_used");
        let (status, body) = server.enroll("web-2", "cset_nonsense").await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("token_unknown"), "{body}");

        let fresh = server
            .store
            .create_enrollment_token(Duration::from_secs(60), "alice", None)
            .await
            .unwrap();
        let (status, body) = server.enroll("../etc", &fresh).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("invalid_node_name"), "{body}");
        let (status, _) = server
            .post(state::wire::ENROLL_PATH, b"{\"v\":1,\"node\":")
            .await;
        assert_eq!(status, 400);
        let big = vec![b' '; state::wire::MAX_ENROLL_BYTES + 1];
        let (status, _) = server.post(state::wire::ENROLL_PATH, &big).await;
        assert_eq!(status, 413);
        // The unused fresh token still works: refusals did not consume it.
        assert_eq!(server.enroll("web-2", &fresh).await.0, 200);
        let expiring = server
            .store
            .create_enrollment_token(Duration::from_millis(1), "alice", None)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (status, body) = server.enroll("web-3", &expiring).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("token_expired"), "{body}");
        // A token for a new machine cannot take over web-1; one bound to web-1 enrolls
        // nothing else, and re-enrolls web-1.
        let unbound = server
            .store
            .create_enrollment_token(Duration::from_secs(60), "alice", None)
            .await
            .unwrap();
        let (status, body) = server.enroll("web-1", &unbound).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("node_enrolled"), "{body}");
        let bound = server
            .store
            .create_enrollment_token(Duration::from_secs(60), "alice", Some("web-1"))
            .await
            .unwrap();
        let (status, body) = server.enroll("web-4", &bound).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("token_for_other_node"), "{body}");
        assert_eq!(server.enroll("web-1", &bound).await.0, 200);

        let entries = server.store.audit_list(None, 100).await.unwrap().items;
        let outcomes: Vec<&str> = entries
            .iter()
            .filter(|e| e.record.action == "node.enroll")
            .map(|e| e.record.outcome.as_str())
            .collect();
        assert_eq!(
            outcomes,
            [
                "ok", "denied", "denied", "denied", "denied", "denied", "ok", "denied", "denied",
                "denied", "ok"
            ]
        );
        let text = format!("{entries:?}");
        assert!(!text.contains(&token[5..]) && !text.contains(&fresh[5..]));
        server.stop().await;
    }
}

#[tokio::test]
async fn connections_without_a_valid_credential_are_refused_before_the_upgrade() {
    let mut server = Server::start(Backend::Sqlite, LinkConfig::default()).await;
    let credential = server.enrolled("web-1").await;
    let wrong = format!("csnc_{}", "A".repeat(43));
    for attempt in [None, Some("csnc_short"), Some(wrong.as_str())] {
        match server.connect(attempt).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401, "{attempt:?}")
            }
            Err(e) => panic!("expected 401, got {e}"),
            Ok(_) => panic!("connected with {attempt:?}"),
        }
    }
    assert_eq!(LinkStats::get(&server.stats.refused_connects), 3);
    // A revoked credential stops working.
    server.store.revoke_node_credentials("web-1").await.unwrap();
    assert!(server.connect(Some(&credential)).await.is_err());
    assert!(
        server.events.try_recv().is_err(),
        "the engine heard of no connection"
    );
    let denied = server
        .store
        .audit_list(None, 100)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.record.action == "node.connect" && e.record.outcome == "denied")
        .count();
    assert_eq!(denied, 4);
    server.stop().await;
}

#[tokio::test]
async fn a_hello_naming_another_node_is_closed() {
    let mut server = Server::start(Backend::Sqlite, LinkConfig::default()).await;
    let credential = server.enrolled("web-1").await;
    server.enrolled("db-1").await;
    let mut ws = server.connect(Some(&credential)).await.unwrap();
    ws.send(hello("db-1")).await.unwrap();
    assert_eq!(closed(&mut ws).await, Some(CloseCode::Policy));
    // Not a hello first: closed too.
    let mut ws = server.connect(Some(&credential)).await.unwrap();
    ws.send(heartbeat()).await.unwrap();
    assert_eq!(closed(&mut ws).await, Some(CloseCode::Policy));
    assert_eq!(LinkStats::get(&server.stats.refused_frames), 2);
    assert!(server.events.try_recv().is_err(), "no AgentConnected");
    server.stop().await;
}

#[tokio::test]
async fn malformed_wrong_version_and_binary_frames_close_the_connection() {
    let mut server = Server::start(Backend::Sqlite, LinkConfig::default()).await;
    let credential = server.enrolled("web-1").await;
    let bad = [
        (Message::text("{not json"), CloseCode::Policy),
        (
            Message::text(r#"{"type":"heartbeat","v":2,"facts":{}}"#),
            CloseCode::Policy,
        ),
        (
            Message::text(r#"{"type":"format_disk","v":1}"#),
            CloseCode::Policy,
        ),
        (Message::binary(vec![1, 2, 3]), CloseCode::Unsupported),
        (hello("web-1"), CloseCode::Policy),
    ];
    for (n, (frame, code)) in bad.into_iter().enumerate() {
        let (mut ws, conn, _tx) = hello_ok(&mut server, &credential, "web-1").await;
        ws.send(frame).await.unwrap();
        assert_eq!(closed(&mut ws).await, Some(code));
        match server.event().await {
            Event::AgentDisconnected { conn: c, .. } => assert_eq!(c, conn),
            other => panic!("expected AgentDisconnected, got {other:?}"),
        }
        assert_eq!(LinkStats::get(&server.stats.refused_frames), n as u64 + 1);
    }
    server.stop().await;
}

#[tokio::test]
async fn the_newest_connection_of_a_node_wins() {
    let mut server = Server::start(Backend::Sqlite, LinkConfig::default()).await;
    let credential = server.enrolled("web-1").await;
    let (mut old, old_conn, _old_tx) = hello_ok(&mut server, &credential, "web-1").await;
    let (mut new, new_conn, _new_tx) = hello_ok(&mut server, &credential, "web-1").await;
    assert_ne!(old_conn, new_conn);
    assert!(matches!(
        server_message(&mut old).await,
        ServerMessage::Goodbye { .. }
    ));
    assert_eq!(closed(&mut old).await, Some(CloseCode::Policy));
    match server.event().await {
        Event::AgentDisconnected { conn, .. } => assert_eq!(conn, old_conn),
        other => panic!("expected the old connection's end, got {other:?}"),
    }
    new.send(heartbeat()).await.unwrap();
    match server.event().await {
        Event::AgentMessage { conn, .. } => assert_eq!(conn, new_conn),
        other => panic!("expected a frame of the new connection, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn a_silent_agent_is_disconnected_after_three_heartbeats() {
    let config = LinkConfig {
        heartbeat: Duration::from_millis(200),
        ..LinkConfig::default()
    };
    let mut server = Server::start(Backend::Sqlite, config).await;
    let credential = server.enrolled("web-1").await;
    // The client never reads again, so it never answers the server's pings.
    let (_ws, conn, _tx) = hello_ok(&mut server, &credential, "web-1").await;
    let started = std::time::Instant::now();
    match server.event().await {
        Event::AgentDisconnected { conn: c, .. } => assert_eq!(c, conn),
        other => panic!("expected AgentDisconnected, got {other:?}"),
    }
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(500), "{waited:?}");
    assert_eq!(LinkStats::get(&server.stats.timed_out), 1);
    server.stop().await;
}

#[tokio::test]
async fn an_agent_that_never_says_hello_is_closed() {
    let config = LinkConfig {
        hello_timeout: Duration::from_millis(200),
        ..LinkConfig::default()
    };
    let mut server = Server::start(Backend::Sqlite, config).await;
    let credential = server.enrolled("web-1").await;
    let mut ws = server.connect(Some(&credential)).await.unwrap();
    assert_eq!(closed(&mut ws).await, Some(CloseCode::Policy));
    assert!(server.events.try_recv().is_err(), "no AgentConnected");
    server.stop().await;
}
