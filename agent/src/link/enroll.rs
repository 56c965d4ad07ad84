//! Enrollment: one HTTPS `POST /api/v1/agents/enroll` with the node name and the one-time
//! token, answered with the node's credential. A minimal HTTP/1.1 exchange over the same
//! TLS connection code as the WebSocket (`Connection: close`, a `Content-Length` body of at
//! most [`MAX_RESPONSE_BYTES`]). The token is only ever in the request body: never logged,
//! never in an error message.

use super::endpoint::{self, Endpoint};
use state::wire::{ENROLL_PATH, EnrollRequest, EnrollResponse, PROTOCOL_VERSION};
use std::io::{self, Read as _, Write as _};
use std::sync::Arc;

/// The largest enrollment answer read.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Why enrollment failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The server could not be reached or the exchange broke off: worth retrying.
    #[error("cannot reach the reconciler at {server} to enroll: {source}")]
    Unreachable {
        server: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "enrollment refused (401): the enrollment token is wrong, expired or already used; ask an operator for a new one"
    )]
    Unauthorized,
    #[error(
        "enrollment refused (409): node `{node}` is already enrolled; restore its credential file or have an operator revoke the node and issue a new token"
    )]
    Conflict { node: String },
    #[error("enrollment failed: the reconciler answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("enrollment failed: the reconciler's answer is not valid: {0}")]
    BadResponse(String),
}

impl EnrollError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            EnrollError::Unreachable { .. } => true,
            EnrollError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// Enrolls `node` with `token`; returns the credential.
pub fn enroll(
    server: &Endpoint,
    tls: &Arc<rustls::ClientConfig>,
    node: &str,
    token: &str,
) -> Result<String, EnrollError> {
    let unreachable = |source| EnrollError::Unreachable {
        server: server.authority(),
        source,
    };
    let body = serde_json::to_string(&EnrollRequest {
        v: PROTOCOL_VERSION,
        node: node.to_owned(),
        token: token.to_owned(),
    })
    .map_err(|e| EnrollError::BadResponse(e.to_string()))?;
    let mut stream = endpoint::connect(server, tls).map_err(unreachable)?;
    let head = format!(
        "POST {ENROLL_PATH} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.authority(),
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()))
        .and_then(|()| stream.flush())
        .map_err(unreachable)?;
    drop(body);
    let mut response = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                response.extend_from_slice(&buf[..n]);
                if response.len() > MAX_RESPONSE_BYTES {
                    return Err(EnrollError::BadResponse(format!(
                        "larger than {MAX_RESPONSE_BYTES} bytes"
                    )));
                }
                if complete(&response) {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A server closing without TLS close_notify: what arrived is judged below.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !response.is_empty() => break,
            Err(e) => return Err(unreachable(e)),
        }
    }
    let (status, body) = parse_response(&response)?;
    match status {
        200 | 201 => {}
        401 | 403 => return Err(EnrollError::Unauthorized),
        409 => {
            return Err(EnrollError::Conflict {
                node: node.to_owned(),
            });
        }
        _ => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.chars().take(200).collect();
            return Err(EnrollError::Status { status, body: text });
        }
    }
    let answer: EnrollResponse =
        serde_json::from_slice(body).map_err(|e| EnrollError::BadResponse(e.to_string()))?;
    if answer.v != PROTOCOL_VERSION {
        return Err(EnrollError::BadResponse(format!(
            "protocol version {} (this agent speaks {PROTOCOL_VERSION})",
            answer.v
        )));
    }
    if answer.node != node {
        return Err(EnrollError::BadResponse(format!(
            "the credential is for node `{}`, not `{node}`",
            answer.node
        )));
    }
    if !super::cache::valid_credential(&answer.credential) {
        return Err(EnrollError::BadResponse(
            "the credential is empty, too long or not printable ASCII".into(),
        ));
    }
    Ok(answer.credential)
}

fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n")
}

fn content_length(head: &str) -> Option<usize> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())?
    })
}

/// Whether the whole response (head and a `Content-Length` body) has arrived.
fn complete(bytes: &[u8]) -> bool {
    let Some(end) = head_end(bytes) else {
        return false;
    };
    let head = String::from_utf8_lossy(&bytes[..end]);
    content_length(&head).is_some_and(|n| bytes.len() >= end + 4 + n)
}

/// Status code and body of an HTTP/1.1 response.
fn parse_response(bytes: &[u8]) -> Result<(u16, &[u8]), EnrollError> {
    let bad = |m: &str| EnrollError::BadResponse(m.to_owned());
    let end = head_end(bytes).ok_or_else(|| bad("no complete HTTP response head"))?;
    let head = std::str::from_utf8(&bytes[..end]).map_err(|_| bad("response head not UTF-8"))?;
    let status_line = head.lines().next().unwrap_or_default();
    let mut parts = status_line.split(' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(bad("no status line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(bad("not an HTTP/1 response"));
    }
    let status: u16 = code.parse().map_err(|_| bad("bad status code"))?;
    let chunked = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")
        })
    });
    if chunked {
        return Err(bad("chunked responses are not supported"));
    }
    let body = &bytes[end + 4..];
    let body = match content_length(head) {
        Some(n) if body.len() >= n => &body[..n],
        Some(_) => return Err(bad("the body is shorter than its Content-Length")),
        None => body,
    };
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhelloEXTRA";
        assert!(complete(ok));
        let (status, body) = parse_response(ok).expect("ok");
        assert_eq!((status, body), (200, &b"hello"[..]));
        assert!(!complete(
            b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nhello"
        ));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(parse_response(b"garbage").is_err());
        let (status, _) = parse_response(b"HTTP/1.1 409 Conflict\r\n\r\n").expect("409");
        assert_eq!(status, 409);
    }
}
