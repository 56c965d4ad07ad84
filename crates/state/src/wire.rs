//! The agent link protocol: the versioned JSON messages an agent and the reconciler exchange
//! over one WebSocket (text frames, one message per frame), and the HTTP enrollment exchange
//! that precedes it. Pure: types, limits and the decode checks both sides run.
//!
//! Flow: an agent enrolls once (`POST /api/v1/agents/enroll` with [`EnrollRequest`], answered
//! with [`EnrollResponse`] holding a node credential), then connects to
//! `GET /api/v1/agents/connect` with `Authorization: Bearer <credential>`; the credential is
//! bound to the node name, so the server knows who is talking before the upgrade. The agent's
//! first frame is [`AgentMessage::Hello`]; the server answers [`ServerMessage::Welcome`]. The
//! server asks the agent to observe a desired state ([`ServerMessage::Observe`]) so that it
//! plans against exactly what the agent sees, approves that plan's digest and sends
//! [`ServerMessage::Apply`]; the agent re-observes, re-plans and applies only if the digest
//! matches, otherwise it answers with a `stale` report carrying its own plan.

use crate::{ApplyReport, DesiredState, NodePlan, ObservedState, ResourceId};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// Version of the protocol; both sides refuse a frame of another version.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest frame either side accepts. A desired state of 10,000 resources with file
/// content fits; anything larger is refused before it is buffered.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// The largest enrollment request body.
pub const MAX_ENROLL_BYTES: usize = 4 * 1024;

/// The WebSocket route agents connect to.
pub const CONNECT_PATH: &str = "/api/v1/agents/connect";
/// The HTTP route agents enroll at.
pub const ENROLL_PATH: &str = "/api/v1/agents/enroll";

/// What an agent sends to enroll: the node name it claims and the one-time token an operator
/// created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub v: u32,
    pub node: String,
    pub token: String,
}

/// The answer to a successful enrollment: the node's long-lived credential, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollResponse {
    pub v: u32,
    pub node: String,
    pub credential: String,
}

/// One frame from an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AgentMessage {
    /// First frame of a connection.
    Hello {
        v: u32,
        node: String,
        agent_version: String,
        /// The commit of the desired state the agent has cached and enforces, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cached_commit: Option<String>,
    },
    /// Sent on an interval; carries the facts and, when it changed since the last one the
    /// server acknowledged, the observed state of the cached desired state's resources.
    Heartbeat {
        v: u32,
        facts: BTreeMap<String, Json>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        observed: Option<ObservedState>,
    },
    /// The answer to [`ServerMessage::Observe`]: what the agent sees for that desired state,
    /// and the plan it derived from it with the shared `plan()`.
    Observed {
        v: u32,
        request: u64,
        observed: ObservedState,
        plan: NodePlan,
    },
    /// The answer to [`ServerMessage::Apply`] (status `stale` when the digest differed), or a
    /// report of an apply the agent made on its own while offline (`request` is `None`).
    Applied {
        v: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<u64>,
        report: Box<ApplyReport>,
    },
    /// Drift the agent's watch found (and, when enforcing, reverted).
    Drift { v: u32, events: Vec<DriftReport> },
    /// A request could not be handled at all (bad desired format, state directory locked).
    Error {
        v: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<u64>,
        message: String,
    },
}

/// One drifted property, as the agent's watch reports it (sensitive values as digests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftReport {
    pub resource: ResourceId,
    pub property: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// The agent reverted it (enforce mode).
    #[serde(default)]
    pub enforced: bool,
    /// RFC 3339.
    pub detected_at: String,
}

/// One frame from the reconciler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerMessage {
    /// The answer to `Hello`.
    Welcome {
        v: u32,
        node: String,
        heartbeat_seconds: u64,
    },
    /// Observe the resources of `desired` and answer with `Observed`. Changes nothing.
    Observe {
        v: u32,
        request: u64,
        desired: Box<DesiredState>,
    },
    /// Apply `desired` if, and only if, the plan re-derived now has `approved_digest`;
    /// answer with `Applied`. The agent caches `desired` and enforces it from then on.
    Apply {
        v: u32,
        request: u64,
        desired: Box<DesiredState>,
        approved_digest: String,
    },
    /// The server is closing the connection, and why.
    Goodbye { v: u32, reason: String },
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    TooLarge { bytes: usize, limit: usize },
    Malformed(String),
    Version { found: u32 },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLarge { bytes, limit } => {
                write!(f, "frame of {bytes} bytes exceeds the limit of {limit}")
            }
            FrameError::Malformed(e) => write!(f, "malformed frame: {e}"),
            FrameError::Version { found } => write!(
                f,
                "protocol version {found} is not supported (this side speaks {PROTOCOL_VERSION})"
            ),
        }
    }
}

impl std::error::Error for FrameError {}

/// Versioned messages expose their version for [`decode`].
pub trait Versioned {
    fn version(&self) -> u32;
}

impl Versioned for AgentMessage {
    fn version(&self) -> u32 {
        match self {
            AgentMessage::Hello { v, .. }
            | AgentMessage::Heartbeat { v, .. }
            | AgentMessage::Observed { v, .. }
            | AgentMessage::Applied { v, .. }
            | AgentMessage::Drift { v, .. }
            | AgentMessage::Error { v, .. } => *v,
        }
    }
}

impl Versioned for ServerMessage {
    fn version(&self) -> u32 {
        match self {
            ServerMessage::Welcome { v, .. }
            | ServerMessage::Observe { v, .. }
            | ServerMessage::Apply { v, .. }
            | ServerMessage::Goodbye { v, .. } => *v,
        }
    }
}

/// Decodes one frame: size first (before parsing), then JSON, then version.
pub fn decode<T: serde::de::DeserializeOwned + Versioned>(frame: &str) -> Result<T, FrameError> {
    if frame.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            bytes: frame.len(),
            limit: MAX_FRAME_BYTES,
        });
    }
    // The version is checked before the shape, so a newer peer gets "version" rather than
    // a confusing field error.
    #[derive(Deserialize)]
    struct Probe {
        v: Option<u32>,
    }
    if let Ok(Probe { v: Some(v) }) = serde_json::from_str::<Probe>(frame)
        && v != PROTOCOL_VERSION
    {
        return Err(FrameError::Version { found: v });
    }
    let message: T =
        serde_json::from_str(frame).map_err(|e| FrameError::Malformed(e.to_string()))?;
    match message.version() {
        PROTOCOL_VERSION => Ok(message),
        found => Err(FrameError::Version { found }),
    }
}

/// Encodes one frame.
pub fn encode<T: Serialize>(message: &T) -> String {
    // Serializing these types cannot fail: every map key is a string.
    serde_json::to_string(message).unwrap_or_else(|e| {
        format!(r#"{{"type":"error","v":{PROTOCOL_VERSION},"message":"encode: {e}"}}"#)
    })
}

/// What [`valid_node_name`] accepts, for error messages.
pub const NODE_NAME_RULE: &str =
    "a node name is 1-253 characters of [A-Za-z0-9._-], starting with a letter or digit";

/// A node name as the inventory allows it: 1-253 characters of `[A-Za-z0-9._-]`, starting
/// with a letter or digit. Enrollment and hello refuse anything else.
pub fn valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_checks_version() {
        let hello = AgentMessage::Hello {
            v: PROTOCOL_VERSION,
            node: "web-1".into(),
            agent_version: "0.0.0".into(),
            cached_commit: None,
        };
        let text = encode(&hello);
        assert_eq!(
            text,
            r#"{"type":"hello","v":1,"node":"web-1","agent_version":"0.0.0"}"#
        );
        assert_eq!(decode::<AgentMessage>(&text), Ok(hello));
        let newer = r#"{"type":"hello","v":2,"node":"web-1","agent_version":"9","x":1}"#;
        assert_eq!(
            decode::<AgentMessage>(newer),
            Err(FrameError::Version { found: 2 })
        );
    }

    #[test]
    fn refuses_unknown_fields_types_and_oversized_frames() {
        let extra = r#"{"type":"hello","v":1,"node":"a","agent_version":"0","admin":true}"#;
        assert!(matches!(
            decode::<AgentMessage>(extra),
            Err(FrameError::Malformed(_))
        ));
        let unknown = r#"{"type":"format_disk","v":1}"#;
        assert!(matches!(
            decode::<AgentMessage>(unknown),
            Err(FrameError::Malformed(_))
        ));
        let big = " ".repeat(MAX_FRAME_BYTES + 1);
        assert!(matches!(
            decode::<AgentMessage>(&big),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn node_names() {
        for ok in ["web-1", "db01.example.com", "a", "x_y"] {
            assert!(valid_node_name(ok), "{ok}");
        }
        for bad in ["", "-a", ".a", "a/b", "a b", "ä", &"a".repeat(254)] {
            assert!(!valid_node_name(bad), "{bad}");
        }
    }
}
