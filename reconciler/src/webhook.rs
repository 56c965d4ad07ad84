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
        seen: DeliveryMemory::default(),
    });
    Router::new()
        .route(PATH, post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// The signature header value for `body` under `secret`: `sha256=<hex>` (the form of
/// GitHub's `X-Hub-Signature-256` too).
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
    seen: DeliveryMemory,
}

/// Why a webhook delivery was refused: the HTTP status, a stable code (also what the audit
/// log records) and a message for the sender. Shared by this webhook and the forge webhooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status,
            code,
            message: message.into(),
        }
    }

    /// 401 `bad_signature`.
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Refusal::new(StatusCode::UNAUTHORIZED, "bad_signature", message)
    }

    /// 400 `malformed`.
    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Refusal::new(StatusCode::BAD_REQUEST, "malformed", message)
    }

    pub(crate) fn into_response(self) -> Response {
        error(self.status, self.code, &self.message)
    }
}

/// The last [`DELIVERY_MEMORY`] delivery ids, shared by the requests of one route.
#[derive(Debug, Default)]
pub(crate) struct DeliveryMemory(Mutex<Deliveries>);

impl DeliveryMemory {
    /// `true` when `id` is new (and now remembered).
    pub(crate) fn remember(&self, id: &str) -> bool {
        self.lock().insert(id)
    }

    /// Forgets `id`, so that a redelivery of a delivery that could not be handled is handled.
    pub(crate) fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Deliveries> {
        match self.0.lock() {
            Ok(seen) => seen,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
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

    fn remove(&mut self, id: &str) {
        if self.set.remove(id)
            && let Some(at) = self.order.iter().rposition(|seen| seen == id)
        {
            self.order.remove(at);
        }
    }
}

fn new_mac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; this never fails.
    match <Hmac<Sha256> as KeyInit>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

/// The body, or the refusal for one too large ([`MAX_BODY`], 413 `payload_too_large`, not read
/// further) or unreadable (400 `bad_body`).
pub(crate) fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Refusal> {
    match body {
        Ok(body) => Ok(body),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {MAX_BODY} bytes"),
        )),
        Err(rejection) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            format!("cannot read the body: {}", rejection.body_text()),
        )),
    }
}

/// The delivery id in header `name`: `None` when absent; refused (400 `bad_delivery`) unless
/// it is 1 to 200 visible ASCII characters.
pub(crate) fn delivery_id(headers: &HeaderMap, name: &str) -> Result<Option<String>, Refusal> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(id) if !id.is_empty() && id.len() <= MAX_DELIVERY_ID => Ok(Some(id.to_owned())),
        _ => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "bad_delivery",
            format!("{name} must be 1 to {MAX_DELIVERY_ID} visible ASCII characters"),
        )),
    }
}

async fn receive(
    State(hook): State<Arc<Hook>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match read_body(body) {
        Ok(body) => body,
        Err(refusal) => return refusal.into_response(),
    };
    if let Err(refusal) = verify(
        hook.secret.expose().as_bytes(),
        &headers,
        SIGNATURE_HEADER,
        &body,
    ) {
        tracing::warn!(reason = refusal.message, "webhook refused");
        return refusal.into_response();
    }
    let delivery = match delivery_id(&headers, DELIVERY_HEADER) {
        Ok(delivery) => delivery,
        Err(refusal) => return refusal.into_response(),
    };
    if let Some(id) = &delivery
        && !hook.seen.remember(id)
    {
        tracing::debug!(delivery = id, "duplicate webhook delivery");
        return status(StatusCode::ACCEPTED, "duplicate", delivery.as_deref());
    }
    tracing::info!(
        delivery = delivery.as_deref().unwrap_or("-"),
        "push webhook"
    );
    hook.poller.poke();
    status(StatusCode::ACCEPTED, "accepted", delivery.as_deref())
}

/// Checks header `name` (`sha256=<hex HMAC-SHA256 of body under secret>`) in constant time;
/// refused as 401 `bad_signature` when missing, malformed or not matching.
pub(crate) fn verify(
    secret: &[u8],
    headers: &HeaderMap,
    name: &str,
    body: &[u8],
) -> Result<(), Refusal> {
    let header = headers
        .get(name)
        .ok_or_else(|| Refusal::unauthorized(format!("missing {name} header")))?;
    let signature = header
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("sha256="))
        .and_then(decode_hex)
        .ok_or_else(|| Refusal::unauthorized(format!("{name} must be `sha256=<64 hex digits>`")))?;
    let mut mac = new_mac(secret);
    mac.update(body);
    mac.verify_slice(&signature)
        .map_err(|_| Refusal::unauthorized("signature does not match the body"))
}

/// `presented == secret`, compared in constant time (as HMACs under the secret, so neither
/// the position of the first difference nor the length of `presented` shows in the timing).
pub(crate) fn token_matches(secret: &[u8], presented: &[u8]) -> bool {
    let mut expected = new_mac(secret);
    expected.update(secret);
    let expected = expected.finalize().into_bytes();
    let mut mac = new_mac(secret);
    mac.update(presented);
    mac.verify_slice(&expected).is_ok()
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

/// `{"status": status, "delivery": delivery}` with `code`.
pub(crate) fn status(code: StatusCode, status: &str, delivery: Option<&str>) -> Response {
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
        let check = |secret: &[u8], headers: &HeaderMap, body: &[u8]| {
            verify(secret, headers, SIGNATURE_HEADER, body)
        };
        assert_eq!(check(b"secret", &headers, b"body"), Ok(()));
        assert!(check(b"secret", &headers, b"body!").is_err());
        assert!(check(b"other", &headers, b"body").is_err());
        assert!(check(b"secret", &HeaderMap::new(), b"body").is_err());
    }

    #[test]
    fn tokens_compare_by_value() {
        assert!(token_matches(b"hunter2", b"hunter2"));
        assert!(!token_matches(b"hunter2", b"hunter3"));
        assert!(!token_matches(b"hunter2", b"hunter2 "));
        assert!(!token_matches(b"hunter2", b""));
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

    #[test]
    fn forgotten_deliveries_are_new_again() {
        let seen = DeliveryMemory::default();
        assert!(seen.remember("a"));
        assert!(!seen.remember("a"));
        seen.forget("a");
        assert!(seen.remember("a"));
        seen.forget("b");
        assert_eq!(seen.lock().order.len(), 1);
    }
}
