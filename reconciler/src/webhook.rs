//! The generic push webhook, `POST /api/v1/webhooks/git`: any forge or CI job that can sign
//! its request body tells the reconciler "the branch moved", and the poller fetches at once.
//!
//! - Body: anything up to [`MAX_BODY`] bytes (it is only authenticated, not interpreted);
//!   larger bodies get 413 without being read further.
//! - `X-Centossrv-Signature: sha256=<hex HMAC-SHA256 of the raw body with the shared secret>`,
//!   checked in constant time; missing or wrong gives 401 `bad_signature`.
//! - `X-Centossrv-Delivery: <id>` (optional, at most 200 bytes): an id seen among the last
//!   [`DELIVERY_MEMORY`] accepted deliveries is answered 202 `{"status":"duplicate"}` and does
//!   not poke the poller again.
//! - Accepted: 202 `{"status":"accepted"}` and a poke.

use crate::poller::PollerHandle;
use crate::secret::Secret;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

/// The route.
pub const PATH: &str = "/api/v1/webhooks/git";
/// Largest accepted body.
pub const MAX_BODY: usize = 1024 * 1024;
/// How many delivery ids are remembered for de-duplication.
pub const DELIVERY_MEMORY: usize = 10_000;
/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-centossrv-signature";
/// The delivery id header.
pub const DELIVERY_HEADER: &str = "x-centossrv-delivery";
const MAX_DELIVERY_ID: usize = 200;

/// The webhook routes; an empty router when no secret is configured (the route is then not
/// mounted and answers 404), so an unauthenticated webhook cannot exist.
pub fn router(secret: Option<Secret>, poller: PollerHandle) -> Router {
    let Some(secret) = secret else {
        return Router::new();
    };
    let state = Arc::new(Hook {
        secret,
        poller,
        seen: Mutex::new(Deliveries::default()),
    });
    Router::new()
        .route(PATH, post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// The signature header value for `body` under `secret`: `sha256=<hex>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = new_mac(secret);
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::from("sha256=");
    for byte in digest.iter() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

#[derive(Debug)]
struct Hook {
    secret: Secret,
    poller: PollerHandle,
    seen: Mutex<Deliveries>,
}

/// The last [`DELIVERY_MEMORY`] delivery ids, oldest first out.
#[derive(Debug, Default)]
struct Deliveries {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Deliveries {
    /// `true` when `id` is new (and now remembered).
    fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() >= DELIVERY_MEMORY
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.set.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        true
    }
}

fn new_mac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; this never fails.
    match <Hmac<Sha256> as KeyInit>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

async fn receive(
    State(hook): State<Arc<Hook>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &format!("the body is larger than {MAX_BODY} bytes"),
            );
        }
        Err(rejection) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_body",
                &format!("cannot read the body: {}", rejection.body_text()),
            );
        }
    };
    if let Err(message) = verify(hook.secret.expose().as_bytes(), &headers, &body) {
        tracing::warn!(reason = message, "webhook refused");
        return error(StatusCode::UNAUTHORIZED, "bad_signature", message);
    }
    let delivery = match headers.get(DELIVERY_HEADER) {
        None => None,
        Some(value) => match value.to_str() {
            Ok(id) if !id.is_empty() && id.len() <= MAX_DELIVERY_ID => Some(id.to_owned()),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_delivery",
                    &format!(
                        "{DELIVERY_HEADER} must be 1 to {MAX_DELIVERY_ID} visible ASCII characters"
                    ),
                );
            }
        },
    };
    if let Some(id) = &delivery {
        let new = match hook.seen.lock() {
            Ok(mut seen) => seen.insert(id),
            Err(poisoned) => poisoned.into_inner().insert(id),
        };
        if !new {
            tracing::debug!(delivery = id, "duplicate webhook delivery");
            return status(StatusCode::ACCEPTED, "duplicate", delivery.as_deref());
        }
    }
    tracing::info!(
        delivery = delivery.as_deref().unwrap_or("-"),
        "push webhook"
    );
    hook.poller.poke();
    status(StatusCode::ACCEPTED, "accepted", delivery.as_deref())
}

fn verify(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<(), &'static str> {
    let header = headers
        .get(SIGNATURE_HEADER)
        .ok_or("missing X-Centossrv-Signature header")?;
    let hex = header
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("sha256="))
        .ok_or("X-Centossrv-Signature must be `sha256=<hex>`")?;
    let signature =
        decode_hex(hex).ok_or("X-Centossrv-Signature must be `sha256=<64 hex digits>`")?;
    let mut mac = new_mac(secret);
    mac.update(body);
    mac.verify_slice(&signature)
        .map_err(|_| "signature does not match the body")
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    hex.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

fn status(code: StatusCode, status: &str, delivery: Option<&str>) -> Response {
    let body = serde_json::json!({ "status": status, "delivery": delivery });
    (code, axum::Json(body)).into_response()
}

fn error(code: StatusCode, name: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "code": name, "message": message } });
    (code, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_round_trips_and_rejects_other_bodies() {
        let sig = sign(b"secret", b"body");
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE_HEADER, sig.parse().expect("header"));
        assert_eq!(verify(b"secret", &headers, b"body"), Ok(()));
        assert!(verify(b"secret", &headers, b"body!").is_err());
        assert!(verify(b"other", &headers, b"body").is_err());
        assert!(verify(b"secret", &HeaderMap::new(), b"body").is_err());
    }

    #[test]
    fn known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn delivery_memory_is_bounded() {
        let mut seen = Deliveries::default();
        for i in 0..DELIVERY_MEMORY + 5 {
            assert!(seen.insert(&i.to_string()));
        }
        assert_eq!(seen.set.len(), DELIVERY_MEMORY);
        assert!(seen.insert("0"), "the oldest ids are forgotten");
        assert!(!seen.insert(&(DELIVERY_MEMORY + 4).to_string()));
    }
}
