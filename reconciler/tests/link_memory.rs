//! A 100 MB frame is refused from its header: the server never buffers it. Its own test
//! binary, so the process's peak memory (VmHWM) is this test's alone. The client streams
//! the frame in 64 KiB chunks over a raw TLS stream, so it never holds 100 MB either.
#![allow(clippy::unwrap_used)]

mod link_support;

use link_support::{Backend, Server, peak_rss_kib};
use reconciler::engine::Event;
use reconciler::link::{LinkConfig, LinkStats};
use state::wire::{AgentMessage, CONNECT_PATH, PROTOCOL_VERSION, encode};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const MASK: [u8; 4] = [0x11, 0x22, 0x33, 0x44];
const HUNDRED_MB: u64 = 100 * 1024 * 1024;

/// A masked client frame header (FIN, text) for `len` payload bytes.
fn header(len: u64) -> Vec<u8> {
    let mut out = vec![0x81];
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= u64::from(u16::MAX) {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(&MASK);
    out
}

fn masked(payload: &[u8]) -> Vec<u8> {
    payload
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ MASK[i % 4])
        .collect()
}

#[tokio::test]
async fn a_100_mb_frame_is_refused_without_buffering_it() {
    let mut server = Server::start(Backend::Sqlite, LinkConfig::default()).await;
    let credential = server.enrolled("web-1").await;

    let mut tls = server.tls().await;
    let request = format!(
        "GET {CONNECT_PATH} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {credential}\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");

    let hello = encode(&AgentMessage::Hello {
        v: PROTOCOL_VERSION,
        node: "web-1".into(),
        agent_version: "0.0.0".into(),
        cached_commit: None,
    });
    let mut frame = header(hello.len() as u64);
    frame.extend(masked(hello.as_bytes()));
    tls.write_all(&frame).await.unwrap();
    // Kept until the end: dropping the engine's sender would close the connection.
    let connected = server.event().await;
    assert!(matches!(connected, Event::AgentConnected { .. }));
    assert!(matches!(server.event().await, Event::AgentMessage { .. }));

    let before = peak_rss_kib();
    tls.write_all(&header(HUNDRED_MB)).await.unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut sent: u64 = 0;
    let write = async {
        while sent < HUNDRED_MB {
            if tls.write_all(&chunk).await.is_err() || tls.flush().await.is_err() {
                break;
            }
            sent += chunk.len() as u64;
        }
    };
    // The server closes; the client's writes then fail (or, at worst, all are sent).
    tokio::time::timeout(Duration::from_secs(60), write)
        .await
        .expect("streaming ends within 60 s");
    let disconnected = server.event().await;
    assert!(
        matches!(disconnected, Event::AgentDisconnected { .. }),
        "{disconnected:?}"
    );
    let after = peak_rss_kib();
    let grown_mib = (after.saturating_sub(before)) / 1024;
    eprintln!(
        "sent {} MiB of the 100 MiB frame before the server closed; peak RSS {} -> {} KiB \
         (+{grown_mib} MiB)",
        sent / (1024 * 1024),
        before,
        after
    );
    assert!(
        grown_mib < 20,
        "peak memory grew by {grown_mib} MiB for a refused 100 MB frame"
    );
    assert_eq!(LinkStats::get(&server.stats.refused_frames), 1);
    assert_eq!(LinkStats::get(&server.stats.oversized_frames), 1);
    assert!(sent < HUNDRED_MB, "the server read the whole frame");
    drop(connected);
    server.stop().await;
}
