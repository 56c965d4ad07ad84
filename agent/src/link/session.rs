//! One connected session: the WebSocket handshake (with `Authorization: Bearer`), `Hello` ->
//! `Welcome`, the queued offline reports, then the loop: answer `Observe` and `Apply`, send a
//! `Heartbeat` every `heartbeat_seconds` (observed state only when it changed), forward the
//! watch's drift and enforcement reports. Any malformed, oversized or unexpected server frame
//! ends the session (the caller reconnects).

use super::endpoint::{self, Stream};
use super::enforcer::Note;
use super::{Agent, CachedDesired, log};
use crate::apply::{self, ApplyOptions};
use crate::facts;
use state::wire::{
    AgentMessage, CONNECT_PATH, DriftReport, MAX_FRAME_BYTES, PROTOCOL_VERSION, ServerMessage,
    decode, encode,
};
use state::{ApplyStatus, ObservedState};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tungstenite::handshake::HandshakeError;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// How often the session loop wakes to check the watch, heartbeat and shutdown.
const POLL: Duration = Duration::from_millis(100);
/// How long the server may take to answer `Hello`.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(30);
/// The shortest heartbeat interval honoured (a server asking for 0 gets this).
const MIN_HEARTBEAT: Duration = Duration::from_secs(1);

/// How a session ended without an error of its own.
#[derive(Debug)]
pub enum End {
    Shutdown,
    Disconnected {
        /// The server had welcomed us (the backoff starts over).
        welcomed: bool,
        reason: String,
    },
}

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot connect to the reconciler at {server}: {source}")]
    Connect {
        server: String,
        #[source]
        source: io::Error,
    },
    #[error("the WebSocket handshake with {server} failed: {message}")]
    Handshake { server: String, message: String },
    /// 401/403 on the upgrade: the credential is not (or no longer) valid.
    #[error("the reconciler refused the credential (HTTP {status})")]
    Refused { status: u16 },
}

type Ws = WebSocket<Stream>;

fn is_timeout(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if matches!(io.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
}

fn connect(agent: &Agent, credential: &str) -> Result<Ws, SessionError> {
    let server = agent.config.server.authority();
    let stream = endpoint::connect(&agent.config.server, &agent.config.tls).map_err(|source| {
        SessionError::Connect {
            server: server.clone(),
            source,
        }
    })?;
    let handshake = |message: String| SessionError::Handshake {
        server: server.clone(),
        message,
    };
    let mut request = tungstenite::client::IntoClientRequest::into_client_request(
        agent.config.server.ws_url(CONNECT_PATH),
    )
    .map_err(|e| handshake(e.to_string()))?;
    let value = tungstenite::http::HeaderValue::from_str(&format!("Bearer {credential}"))
        .map_err(|_| handshake("the credential is not a valid header value".into()))?;
    request
        .headers_mut()
        .insert(tungstenite::http::header::AUTHORIZATION, value);
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES));
    let (ws, _) = match tungstenite::client::client_with_config(request, stream, Some(config)) {
        Ok(ok) => ok,
        Err(HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            let status = response.status().as_u16();
            if matches!(status, 401 | 403) {
                return Err(SessionError::Refused { status });
            }
            return Err(handshake(format!("HTTP {status}")));
        }
        Err(HandshakeError::Failure(e)) => return Err(handshake(e.to_string())),
        Err(HandshakeError::Interrupted(_)) => return Err(handshake("timed out".into())),
    };
    Ok(ws)
}

fn send(ws: &mut Ws, message: &AgentMessage) -> Result<(), String> {
    ws.send(Message::text(encode(message)))
        .map_err(|e| format!("cannot send: {e}"))
}

/// Reads one server message; `Ok(None)` when nothing arrived within the socket's timeout.
fn receive(ws: &mut Ws) -> Result<Option<ServerMessage>, String> {
    loop {
        match ws.read() {
            Ok(Message::Text(text)) => {
                return decode::<ServerMessage>(text.as_str())
                    .map(Some)
                    .map_err(|e| format!("refused a server frame: {e}"));
            }
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
            Ok(Message::Binary(_)) => {
                return Err("refused a binary frame (the protocol is text only)".into());
            }
            Ok(Message::Close(frame)) => {
                return Err(match frame {
                    Some(f) => format!("the server closed the connection: {}", f.reason),
                    None => "the server closed the connection".into(),
                });
            }
            Err(e) if is_timeout(&e) => return Ok(None),
            Err(e) => return Err(format!("connection lost: {e}")),
        }
    }
}

/// Runs one session until it breaks or `shutdown` is set.
pub fn run(
    agent: &mut Agent,
    credential: &str,
    shutdown: &AtomicBool,
) -> Result<End, SessionError> {
    let mut ws = connect(agent, credential)?;
    let node = agent.config.node.clone();
    let disconnected = |welcomed, reason: String| Ok(End::Disconnected { welcomed, reason });
    let hello = AgentMessage::Hello {
        v: PROTOCOL_VERSION,
        node: node.clone(),
        agent_version: agent.config.agent_version.clone(),
        cached_commit: agent.cached.as_ref().and_then(|c| c.commit.clone()),
    };
    if let Err(e) = send(&mut ws, &hello) {
        return disconnected(false, e);
    }
    // Welcome, within the socket's connect timeout (set by `endpoint::connect`).
    let _ = ws.get_ref().tcp().set_read_timeout(Some(WELCOME_TIMEOUT));
    let heartbeat = match receive(&mut ws) {
        Ok(Some(ServerMessage::Welcome {
            node: welcomed,
            heartbeat_seconds,
            ..
        })) if welcomed == node => Duration::from_secs(heartbeat_seconds).max(MIN_HEARTBEAT),
        Ok(Some(ServerMessage::Goodbye { reason, .. })) => {
            return disconnected(false, format!("the server said goodbye: {reason}"));
        }
        Ok(Some(other)) => {
            return disconnected(false, format!("expected welcome, got {}", kind(&other)));
        }
        Ok(None) => return disconnected(false, "no welcome from the server".into()),
        Err(e) => return disconnected(false, e),
    };
    let _ = ws.get_ref().tcp().set_read_timeout(Some(POLL));
    log(&node, "connected");

    // Reports of applies made while offline.
    match agent.cache.queued() {
        Ok(queued) if !queued.is_empty() => {
            let n = queued.len();
            for report in queued {
                let message = AgentMessage::Applied {
                    v: PROTOCOL_VERSION,
                    request: None,
                    report: Box::new(report),
                };
                if let Err(e) = send(&mut ws, &message) {
                    return disconnected(true, e);
                }
            }
            if let Err(e) = agent.cache.dequeue(n) {
                log(&node, &format!("cannot clear the sent reports: {e}"));
            }
            log(&node, &format!("sent {n} queued reports"));
        }
        Ok(_) => {}
        Err(e) => log(&node, &format!("cannot read the queued reports: {e}")),
    }

    let mut last_observed: Option<ObservedState> = None;
    let mut next_heartbeat = Instant::now();
    loop {
        if shutdown.load(Ordering::SeqCst) {
            let _ = ws.close(None);
            let _ = ws.flush();
            return Ok(End::Shutdown);
        }
        // The watch's news.
        let notes = agent
            .enforcer
            .as_ref()
            .map(super::enforcer::Enforcer::drain)
            .unwrap_or_default();
        if let Err(e) = forward(&mut ws, &node, notes) {
            return disconnected(true, e);
        }
        if Instant::now() >= next_heartbeat {
            next_heartbeat = Instant::now() + heartbeat;
            let observed = agent.cached.as_ref().map(|c| {
                let mut o = crate::observe::observe(&*agent.host, &c.desired).state;
                o.observed_at = Some(crate::time::rfc3339(std::time::SystemTime::now()));
                o
            });
            let changed = match (&observed, &last_observed) {
                (Some(new), Some(old)) => new.resources != old.resources || new.node != old.node,
                (Some(_), None) => true,
                (None, _) => false,
            };
            let mut facts = facts::collect(agent.host.canonical_root());
            if let Some(generations) = generations_fact(&agent.store) {
                facts.insert(GENERATIONS_FACT.to_owned(), generations);
            }
            let message = AgentMessage::Heartbeat {
                v: PROTOCOL_VERSION,
                facts,
                observed: if changed { observed.clone() } else { None },
            };
            if let Err(e) = send(&mut ws, &message) {
                return disconnected(true, e);
            }
            if changed {
                last_observed = observed;
            }
        }
        let message = match receive(&mut ws) {
            Ok(Some(m)) => m,
            Ok(None) => continue,
            Err(e) => return disconnected(true, e),
        };
        let answer = match message {
            ServerMessage::Observe {
                request, desired, ..
            } => match check(&node, &desired) {
                Ok(()) => {
                    let (observation, plan) = apply::plan_now(&*agent.host, &desired);
                    AgentMessage::Observed {
                        v: PROTOCOL_VERSION,
                        request,
                        observed: observation.state,
                        plan,
                    }
                }
                Err(e) => error(Some(request), e),
            },
            ServerMessage::Apply {
                request,
                desired,
                approved_digest,
                ..
            } => {
                let answer = handle_apply(agent, request, *desired, approved_digest);
                // What the apply changed shows in the next heartbeat.
                next_heartbeat = Instant::now();
                answer
            }
            ServerMessage::Goodbye { reason, .. } => {
                let _ = ws.close(None);
                return disconnected(true, format!("the server said goodbye: {reason}"));
            }
            ServerMessage::Welcome { .. } => {
                return disconnected(true, "unexpected second welcome".into());
            }
        };
        if let Err(e) = send(&mut ws, &answer) {
            return disconnected(true, e);
        }
    }
}

/// A desired state this agent may act on: its format, and this node's.
fn check(node: &str, desired: &state::DesiredState) -> Result<(), String> {
    apply::check_desired(desired).map_err(|e| e.to_string())?;
    if desired.node != node {
        return Err(format!(
            "the desired state is for node `{}`, this is `{node}`",
            desired.node
        ));
    }
    Ok(())
}

fn kind(m: &ServerMessage) -> &'static str {
    match m {
        ServerMessage::Welcome { .. } => "welcome",
        ServerMessage::Observe { .. } => "observe",
        ServerMessage::Apply { .. } => "apply",
        ServerMessage::Goodbye { .. } => "goodbye",
    }
}

fn error(request: Option<u64>, message: String) -> AgentMessage {
    AgentMessage::Error {
        v: PROTOCOL_VERSION,
        request,
        message,
    }
}

/// Sends the watch's drift events (one `Drift` frame) and enforcement reports.
fn forward(ws: &mut Ws, node: &str, notes: Vec<Note>) -> Result<(), String> {
    let mut drift: Vec<DriftReport> = Vec::new();
    for note in notes {
        match note {
            Note::Drift(d) => drift.push(d),
            Note::Report(report) => send(
                ws,
                &AgentMessage::Applied {
                    v: PROTOCOL_VERSION,
                    request: None,
                    report,
                },
            )?,
            Note::Error(e) => log(node, &e),
        }
    }
    if !drift.is_empty() {
        send(
            ws,
            &AgentMessage::Drift {
                v: PROTOCOL_VERSION,
                events: drift,
            },
        )?;
    }
    Ok(())
}

/// `Apply`: the watch is stopped first (it must not enforce the old state meanwhile), the
/// desired state applied only with the approved digest, cached unless stale, and watched.
fn handle_apply(
    agent: &mut Agent,
    request: u64,
    desired: state::DesiredState,
    approved_digest: String,
) -> AgentMessage {
    if let Err(e) = check(&agent.config.node, &desired) {
        return error(Some(request), e);
    }
    // What the old watch reported until now is stale news once this apply runs.
    let _ = agent.stop_watch();
    let options = ApplyOptions {
        expect_digest: Some(approved_digest.clone()),
        keep: agent.config.keep,
    };
    let answer = match apply::apply(&*agent.host, &agent.store, &desired, &options) {
        Ok(report) => {
            if report.status != ApplyStatus::Stale {
                let cached = CachedDesired {
                    approved_digest,
                    commit: desired.commit.clone(),
                    desired,
                };
                if let Err(e) = agent.cache.store_desired(&cached) {
                    log(
                        &agent.config.node,
                        &format!("cannot cache the desired state: {e}"),
                    );
                }
                agent.cached = Some(cached);
            }
            AgentMessage::Applied {
                v: PROTOCOL_VERSION,
                request: Some(request),
                report: Box::new(report),
            }
        }
        Err(e) => error(Some(request), format!("cannot apply: {e}")),
    };
    agent.restart_watch();
    answer
}

/// The fact under which a heartbeat reports the agent's newest generations (the status
/// page's node view shows them).
pub const GENERATIONS_FACT: &str = "centossrv_generations";
/// Generations reported per heartbeat, newest first.
const GENERATIONS_REPORTED: usize = 10;

/// The newest generations as JSON (what `centossrv-agent generations --format json` lists:
/// number, time, kind, commit, counts, how it finished); `None` if they cannot be read.
fn generations_fact(store: &crate::generations::Store) -> Option<serde_json::Value> {
    let mut list = store.list().ok()?;
    list.sort_by_key(|g| std::cmp::Reverse(g.number));
    list.truncate(GENERATIONS_REPORTED);
    serde_json::to_value(list).ok()
}
