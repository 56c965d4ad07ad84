//! One authenticated agent connection: `Hello` check, `Welcome`, then frames in as engine
//! events and `ServerMessage`s out through a writer task; pings, the silence timeout, and
//! closing on any refused frame. Frame contents are never logged.

use super::LinkState;
use crate::engine::Event;
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use state::wire::{AgentMessage, FrameError, PROTOCOL_VERSION, ServerMessage, decode, encode};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long the writer gets to send a closing frame once the connection ends.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What the reader asks the writer to do besides forwarding the engine's messages.
#[derive(Debug)]
enum Control {
    Ping,
    /// Send `Goodbye` (when a reason for the agent is given), then a close frame, and stop.
    Close {
        code: u16,
        reason: &'static str,
        goodbye: Option<&'static str>,
    },
}

/// One thing read from the socket.
enum Incoming {
    Frame(AgentMessage),
    /// Ping or pong: the peer is alive.
    Alive,
    /// The peer closed or the connection broke.
    Ended,
    /// A frame the link refuses: why (for the log, never the content) and the close code.
    Refused {
        reason: &'static str,
        code: u16,
    },
}

async fn next(stream: &mut SplitStream<WebSocket>) -> Incoming {
    match stream.next().await {
        None | Some(Ok(Message::Close(_))) => Incoming::Ended,
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Incoming::Alive,
        Some(Ok(Message::Binary(_))) => Incoming::Refused {
            reason: "binary frame (the protocol is text)",
            code: close_code::UNSUPPORTED,
        },
        Some(Ok(Message::Text(text))) => match decode::<AgentMessage>(text.as_str()) {
            Ok(message) => Incoming::Frame(message),
            Err(FrameError::TooLarge { .. }) => Incoming::Refused {
                reason: "frame too large",
                code: close_code::SIZE,
            },
            Err(FrameError::Version { .. }) => Incoming::Refused {
                reason: "unsupported protocol version",
                code: close_code::POLICY,
            },
            // The parser's message can quote the frame; it is not logged.
            Err(FrameError::Malformed(_)) => Incoming::Refused {
                reason: "malformed frame",
                code: close_code::POLICY,
            },
        },
        Some(Err(e)) => {
            let inner = e.into_inner();
            match inner.downcast_ref::<tungstenite::Error>() {
                Some(tungstenite::Error::Capacity(_)) => Incoming::Refused {
                    reason: "frame too large (refused before it was read)",
                    code: close_code::SIZE,
                },
                Some(tungstenite::Error::Protocol(_) | tungstenite::Error::Utf8(_)) => {
                    Incoming::Refused {
                        reason: "WebSocket protocol violation",
                        code: close_code::PROTOCOL,
                    }
                }
                _ => Incoming::Ended,
            }
        }
    }
}

/// Drains the engine's messages and the reader's requests into frames, until told to close,
/// the engine drops its sender, or the socket fails.
async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut from_engine: mpsc::Receiver<ServerMessage>,
    mut control: mpsc::Receiver<Control>,
) {
    loop {
        let message = tokio::select! {
            biased;
            c = control.recv() => match c {
                Some(Control::Ping) => Message::Ping(Bytes::new()),
                Some(Control::Close { code, reason, goodbye }) => {
                    if let Some(goodbye) = goodbye {
                        let bye = ServerMessage::Goodbye {
                            v: PROTOCOL_VERSION,
                            reason: goodbye.to_owned(),
                        };
                        let _ = sink.send(Message::Text(encode(&bye).into())).await;
                    }
                    let frame = CloseFrame { code, reason: reason.into() };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    break;
                }
                None => break,
            },
            m = from_engine.recv() => match m {
                Some(m) => Message::Text(encode(&m).into()),
                None => {
                    let frame = CloseFrame {
                        code: close_code::NORMAL,
                        reason: "closed by the server".into(),
                    };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    break;
                }
            },
        };
        if sink.send(message).await.is_err() {
            break;
        }
    }
    let _ = sink.close().await;
}

/// Runs one connection of the authenticated `node` to its end.
pub(crate) async fn run(state: LinkState, node: String, peer: SocketAddr, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();

    // The first frame must be a Hello naming the credential's node.
    let first = tokio::time::timeout(state.config.hello_timeout, next(&mut stream)).await;
    let hello = match first {
        Ok(Incoming::Frame(first)) => {
            let names_node =
                matches!(&first, AgentMessage::Hello { node: claimed, .. } if *claimed == node);
            if names_node {
                Ok(first)
            } else if matches!(first, AgentMessage::Hello { .. }) {
                Err(("hello names another node", close_code::POLICY))
            } else {
                Err(("first frame is not a hello", close_code::POLICY))
            }
        }
        Ok(Incoming::Refused { reason, code }) => Err((reason, code)),
        Ok(Incoming::Alive) => Err(("first frame is not a hello", close_code::POLICY)),
        Ok(Incoming::Ended) => return,
        Err(_) => {
            tracing::warn!(%node, %peer, "agent sent no hello in time");
            let frame = CloseFrame {
                code: close_code::POLICY,
                reason: "no hello".into(),
            };
            let _ = sink.send(Message::Close(Some(frame))).await;
            return;
        }
    };
    let hello = match hello {
        Ok(hello) => hello,
        Err((reason, code)) => {
            state.frame_refused(code == close_code::SIZE);
            tracing::warn!(%node, %peer, reason, "agent connection closed");
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            let _ = sink.send(Message::Close(Some(frame))).await;
            return;
        }
    };
    let welcome = ServerMessage::Welcome {
        v: PROTOCOL_VERSION,
        node: node.clone(),
        heartbeat_seconds: state.config.heartbeat.as_secs().max(1),
    };
    if sink
        .send(Message::Text(encode(&welcome).into()))
        .await
        .is_err()
    {
        return;
    }

    let conn = state.next_conn();
    let mut replaced = state.register(&node, conn);
    state.stats.connections.fetch_add(1, Ordering::Relaxed);
    tracing::info!(%node, %peer, conn, "agent connected");
    let (to_agent, from_engine) = mpsc::channel(state.config.outbound_queue.max(1));
    let (control, control_rx) = mpsc::channel(4);
    let mut writer = tokio::spawn(write(sink, from_engine, control_rx));
    let mut writer_done = false;

    let connected = Event::AgentConnected {
        node: node.clone(),
        conn,
        tx: to_agent,
    };
    let first = Event::AgentMessage {
        node: node.clone(),
        conn,
        message: hello,
    };
    let engine_alive =
        state.events.send(connected).await.is_ok() && state.events.send(first).await.is_ok();

    let dead_after = state.config.dead_after();
    let mut ping = tokio::time::interval(state.config.heartbeat);
    ping.tick().await;
    let mut last_seen = Instant::now();
    let close = if !engine_alive {
        Some(Control::Close {
            code: close_code::AGAIN,
            reason: "server shutting down",
            goodbye: Some("the server is shutting down"),
        })
    } else {
        loop {
            tokio::select! {
                _ = &mut replaced => {
                    tracing::info!(%node, %peer, conn, "agent connection replaced by a newer one");
                    break Some(Control::Close {
                        code: close_code::POLICY,
                        reason: "replaced",
                        goodbye: Some("replaced by a newer connection of this node"),
                    });
                }
                _ = ping.tick() => {
                    if last_seen.elapsed() >= dead_after {
                        state.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%node, %peer, conn, "agent silent too long, closing");
                        break Some(Control::Close {
                            code: close_code::AWAY,
                            reason: "heartbeat timeout",
                            goodbye: None,
                        });
                    }
                    let _ = control.try_send(Control::Ping);
                }
                _ = &mut writer => {
                    writer_done = true;
                    break None;
                }
                incoming = next(&mut stream) => {
                    last_seen = Instant::now();
                    match incoming {
                        Incoming::Alive => {}
                        Incoming::Ended => break None,
                        Incoming::Frame(AgentMessage::Hello { .. }) => {
                            state.frame_refused(false);
                            tracing::warn!(%node, %peer, conn, reason = "second hello", "frame refused");
                            break Some(Control::Close {
                                code: close_code::POLICY,
                                reason: "second hello",
                                goodbye: None,
                            });
                        }
                        Incoming::Frame(message) => {
                            let event = Event::AgentMessage { node: node.clone(), conn, message };
                            if state.events.send(event).await.is_err() {
                                break Some(Control::Close {
                                    code: close_code::AGAIN,
                                    reason: "server shutting down",
                                    goodbye: Some("the server is shutting down"),
                                });
                            }
                        }
                        Incoming::Refused { reason, code } => {
                            state.frame_refused(code == close_code::SIZE);
                            tracing::warn!(%node, %peer, conn, reason, "frame refused, closing");
                            break Some(Control::Close { code, reason, goodbye: None });
                        }
                    }
                }
            }
        }
    };
    if let Some(close) = close {
        let _ = control.send(close).await;
    }
    drop(control);
    if !writer_done
        && tokio::time::timeout(CLOSE_GRACE, &mut writer)
            .await
            .is_err()
    {
        writer.abort();
    }
    state.unregister(&node, conn);
    tracing::info!(%node, %peer, conn, "agent disconnected");
    let _ = state
        .events
        .send(Event::AgentDisconnected { node, conn })
        .await;
}
