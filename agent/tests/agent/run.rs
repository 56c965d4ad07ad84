//! `centossrv-agent run` against a strict scripted reconciler: real TLS (a CA and server
//! certificate made here with rcgen), a real WebSocket (tungstenite on a std thread), the
//! real agent binary. Every frame the server receives is decoded with `state::wire::decode`;
//! anything unexpected fails the test.

use crate::util::{Sandbox, desired, file};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use state::wire::{
    AgentMessage, CONNECT_PATH, ENROLL_PATH, EnrollRequest, EnrollResponse, MAX_FRAME_BYTES,
    PROTOCOL_VERSION, ServerMessage, decode, encode,
};
use state::{ApplyStatus, DesiredState};
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

const TOKEN: &str = "enroll-token-5f2a9c7e1b";
const CREDENTIAL: &str = "node-credential-0d8e4a";
const NODE: &str = "web-1";

/// A CA, and a server configuration with a certificate for localhost signed by it.
struct Pki {
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "centossrv test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca");
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    let cert = params.signed_by(&key, &ca).expect("server cert");
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(cert.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .expect("server config");
    Pki {
        ca_pem: ca.pem(),
        server: Arc::new(server),
    }
}

type Tls = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

/// The scripted reconciler's listener.
struct Server {
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
}

/// One accepted request: enrollment, or the WebSocket upgrade.
enum Request {
    Enroll(EnrollRequest, Box<Tls>),
    Connect(Box<Session>),
}

struct Session {
    ws: WebSocket<Tls>,
    /// Heartbeats and drift frames seen while waiting for something else.
    pub heartbeats: Vec<AgentMessage>,
}

impl Server {
    fn bind(port: u16, tls: Arc<rustls::ServerConfig>) -> Server {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        Server { listener, tls }
    }

    fn port(&self) -> u16 {
        self.listener.local_addr().expect("addr").port()
    }

    /// Accepts the next connection within `timeout`, reads its HTTP head and routes it.
    fn accept(&self, timeout: Duration) -> Request {
        let end = Instant::now() + timeout;
        let tcp = loop {
            match self.listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < end, "no connection from the agent");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        tcp.set_nonblocking(false).expect("blocking");
        tcp.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let conn = rustls::ServerConnection::new(self.tls.clone()).expect("tls");
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tls.read_exact(&mut byte).expect("read the request head");
            head.push(byte[0]);
            assert!(head.len() < 16 * 1024, "request head too long");
        }
        let head = String::from_utf8(head).expect("utf-8 head");
        let mut lines = head.lines();
        let request_line = lines.next().expect("request line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        if request_line == format!("POST {ENROLL_PATH} HTTP/1.1") {
            let len: usize = header("content-length")
                .expect("content-length")
                .parse()
                .expect("length");
            assert!(len <= state::wire::MAX_ENROLL_BYTES);
            let mut body = vec![0u8; len];
            tls.read_exact(&mut body).expect("body");
            let request: EnrollRequest = serde_json::from_slice(&body).expect("enroll request");
            return Request::Enroll(request, Box::new(tls));
        }
        assert_eq!(request_line, format!("GET {CONNECT_PATH} HTTP/1.1"));
        assert_eq!(
            header("authorization").as_deref(),
            Some(format!("Bearer {CREDENTIAL}").as_str()),
            "the upgrade carries the credential"
        );
        let key = header("sec-websocket-key").expect("websocket key");
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        write!(
            tls,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .expect("101");
        tls.flush().expect("flush");
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_FRAME_BYTES))
            .max_frame_size(Some(MAX_FRAME_BYTES));
        Request::Connect(Box::new(Session {
            ws: WebSocket::from_raw_socket(tls, Role::Server, Some(config)),
            heartbeats: Vec::new(),
        }))
    }

    fn expect_connect(&self) -> Box<Session> {
        match self.accept(Duration::from_secs(30)) {
            Request::Connect(s) => s,
            Request::Enroll(..) => panic!("expected a connection, got an enrollment"),
        }
    }
}

fn respond(mut tls: Box<Tls>, status: &str, body: &str) {
    write!(
        tls,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("respond");
    tls.flush().expect("flush");
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

impl Session {
    /// The next frame, decoded strictly.
    fn next(&mut self) -> AgentMessage {
        loop {
            match self.ws.read().expect("read a frame") {
                Message::Text(text) => {
                    return decode::<AgentMessage>(text.as_str())
                        .unwrap_or_else(|e| panic!("bad frame from the agent: {e}: {text}"));
                }
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected frame from the agent: {other:?}"),
            }
        }
    }

    /// The next frame that is not a heartbeat or drift (those are checked and kept),
    /// within 20 s.
    fn next_answer(&mut self) -> AgentMessage {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            assert!(
                Instant::now() < end,
                "no answer from the agent, only {:?}",
                self.heartbeats.last()
            );
            match self.next() {
                m @ AgentMessage::Heartbeat { .. } => {
                    check_heartbeat(&m);
                    self.heartbeats.push(m);
                }
                m @ AgentMessage::Drift { .. } => self.heartbeats.push(m),
                m => return m,
            }
        }
    }

    fn send(&mut self, m: &ServerMessage) {
        self.ws.send(Message::text(encode(m))).expect("send");
    }

    fn hello_welcome(&mut self, cached_commit: Option<&str>) {
        match self.next() {
            AgentMessage::Hello {
                node,
                cached_commit: c,
                ..
            } => {
                assert_eq!(node, NODE);
                assert_eq!(c.as_deref(), cached_commit);
            }
            other => panic!("expected hello, got {other:?}"),
        }
        self.send(&ServerMessage::Welcome {
            v: PROTOCOL_VERSION,
            node: NODE.into(),
            heartbeat_seconds: 1,
        });
    }
}

fn check_heartbeat(m: &AgentMessage) {
    let AgentMessage::Heartbeat { facts, .. } = m else {
        panic!("expected a heartbeat, got {m:?}");
    };
    for key in ["hostname", "kernel", "cpu", "memory", "interfaces"] {
        assert!(facts.contains_key(key), "facts lack {key}: {facts:?}");
    }
    assert!(facts["cpu"]["count"].as_u64().is_some_and(|n| n >= 1));
}

struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    fn start(sandbox: &Sandbox, server: &str, extra: &[&str]) -> Agent {
        let log = sandbox.base.join(format!(
            "agent-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("time")
                .as_nanos()
        ));
        let child = Command::new(env!("CARGO_BIN_EXE_centossrv-agent"))
            .arg("run")
            .args(["--server", server, "--node", NODE])
            .arg("--ca")
            .arg(sandbox.base.join("ca.pem"))
            .arg("--root")
            .arg(&sandbox.root)
            .arg("--state-dir")
            .arg(&sandbox.state)
            .args(["--service-backend", "supervisor"])
            .args(extra)
            .env_remove("CENTOSSRV_ENROLL_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn the agent");
        Agent { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit status within 10 s.
    fn stop(mut self) -> std::process::ExitStatus {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < end, "agent did not stop:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn contains(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    for entry in walk(dir) {
        if std::fs::read(&entry)
            .map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
            .unwrap_or(false)
        {
            hits.push(entry);
        }
    }
    hits
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

fn motd_state() -> DesiredState {
    let mut d = desired(vec![file("/etc/motd", "managed by centossrv\n", "0644")]);
    d.node = NODE.into();
    d.commit = Some("c0ffee".into());
    d
}

#[test]
fn enroll_observe_apply_then_enforce_offline_and_report_after_reconnecting() {
    let sandbox = Sandbox::new();
    let pki = pki();
    std::fs::write(sandbox.base.join("ca.pem"), &pki.ca_pem).expect("ca");
    let token_file = sandbox.base.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token");
    let server = Server::bind(0, pki.server.clone());
    let port = server.port();
    let url = format!("wss://localhost:{port}");
    let token_arg = token_file.to_str().expect("utf-8").to_owned();
    let agent = Agent::start(
        &sandbox,
        &url,
        &["--enroll-file", &token_arg, "--offline-interval", "300ms"],
    );

    // Enrollment.
    let Request::Enroll(request, tls) = server.accept(Duration::from_secs(30)) else {
        panic!("expected enrollment first");
    };
    assert_eq!(
        request,
        EnrollRequest {
            v: PROTOCOL_VERSION,
            node: NODE.into(),
            token: TOKEN.into()
        }
    );
    respond(
        tls,
        "200 OK",
        &serde_json::to_string(&EnrollResponse {
            v: PROTOCOL_VERSION,
            node: NODE.into(),
            credential: CREDENTIAL.into(),
        })
        .expect("json"),
    );

    // Hello, welcome, heartbeat with facts (nothing cached yet: no observed state).
    let mut session = server.expect_connect();
    session.hello_welcome(None);
    let hb = session.next();
    check_heartbeat(&hb);
    assert!(matches!(hb, AgentMessage::Heartbeat { observed: None, .. }));
    let credential = sandbox.state.join("credential");
    assert_eq!(
        std::fs::read_to_string(&credential).expect("credential"),
        CREDENTIAL
    );
    assert_eq!(mode(&credential), 0o600);
    assert!(contains(&sandbox.state, TOKEN).is_empty());
    assert!(!agent.log().contains(TOKEN));

    // Observe: the agent's plan is the one the server derives from the observed state.
    let desired = motd_state();
    session.send(&ServerMessage::Observe {
        v: PROTOCOL_VERSION,
        request: 1,
        desired: Box::new(desired.clone()),
    });
    let (observed, plan) = match session.next_answer() {
        AgentMessage::Observed {
            request: 1,
            observed,
            plan,
            ..
        } => (observed, plan),
        other => panic!("expected observed 1, got {other:?}"),
    };
    let ours = state::plan(Some(&desired), Some(&observed), None);
    assert_eq!(ours.digest, plan.digest);
    assert!(plan.has_host_changes());

    // A wrong digest: stale, nothing changes.
    let before = sandbox.snapshot();
    session.send(&ServerMessage::Apply {
        v: PROTOCOL_VERSION,
        request: 2,
        desired: Box::new(desired.clone()),
        approved_digest: "sha256:0000".into(),
    });
    match session.next_answer() {
        AgentMessage::Applied {
            request: Some(2),
            report,
            ..
        } => {
            assert_eq!(report.status, ApplyStatus::Stale);
            assert_eq!(report.plan_digest, plan.digest);
        }
        other => panic!("expected applied 2, got {other:?}"),
    }
    assert_eq!(sandbox.snapshot(), before);
    assert!(!sandbox.state.join("desired.json").exists());

    // The approved digest: applied, cached (0600).
    session.send(&ServerMessage::Apply {
        v: PROTOCOL_VERSION,
        request: 3,
        desired: Box::new(desired.clone()),
        approved_digest: plan.digest.clone(),
    });
    match session.next_answer() {
        AgentMessage::Applied {
            request: Some(3),
            report,
            ..
        } => assert_eq!(report.status, ApplyStatus::Applied, "{report:?}"),
        other => panic!("expected applied 3, got {other:?}"),
    }
    assert_eq!(sandbox.read("/etc/motd"), "managed by centossrv\n");
    assert_eq!(mode(&sandbox.state.join("desired.json")), 0o600);
    // The next heartbeat carries the observed state, once.
    let observed = loop {
        if let AgentMessage::Heartbeat {
            observed: Some(o), ..
        } = session.next()
        {
            break o;
        }
    };
    assert_eq!(observed.resources.len(), 1);
    match session.next() {
        m @ AgentMessage::Heartbeat { observed: None, .. } => check_heartbeat(&m),
        other => panic!("expected a heartbeat without observed state, got {other:?}"),
    }

    // The reconciler goes away; the agent keeps enforcing the cached state.
    drop(session);
    drop(server);
    std::thread::sleep(Duration::from_millis(500));
    sandbox.write("/etc/motd", "edited by hand\n", 0o644);
    wait_for("the edit to be reverted", Duration::from_secs(15), || {
        sandbox.read("/etc/motd") == "managed by centossrv\n"
    });
    wait_for("a queued report", Duration::from_secs(5), || {
        sandbox.state.join("queued-reports.json").exists()
    });

    // Back: hello names the cached commit, then the queued report arrives.
    let server = Server::bind(port, pki.server.clone());
    let mut session = server.expect_connect();
    session.hello_welcome(Some("c0ffee"));
    match session.next_answer() {
        AgentMessage::Applied {
            request: None,
            report,
            ..
        } => {
            assert_eq!(report.status, ApplyStatus::Applied);
            assert!(report.totals.changed >= 1, "{report:?}");
        }
        other => panic!("expected a queued report, got {other:?}"),
    }
    wait_for("the queue to be cleared", Duration::from_secs(5), || {
        !sandbox.state.join("queued-reports.json").exists()
    });
    let status = agent.stop();
    assert!(status.success(), "{status:?}");
    drop(session);

    // A second start has a credential: it connects without enrolling.
    let agent = Agent::start(&sandbox, &url, &[]);
    let mut session = server.expect_connect();
    session.hello_welcome(Some("c0ffee"));
    check_heartbeat(&session.next());
    let status = agent.stop();
    assert!(status.success(), "{status:?}");
    assert!(contains(&sandbox.state, TOKEN).is_empty());
}

#[test]
fn enforce_mode_reverts_drift_while_offline_and_reports_drift_online() {
    let sandbox = Sandbox::new();
    let pki = pki();
    std::fs::write(sandbox.base.join("ca.pem"), &pki.ca_pem).expect("ca");
    std::fs::create_dir_all(&sandbox.state).expect("state");
    std::fs::write(sandbox.state.join("credential"), CREDENTIAL).expect("credential");
    let server = Server::bind(0, pki.server.clone());
    let port = server.port();
    let url = format!("wss://localhost:{port}");
    let agent = Agent::start(&sandbox, &url, &["--enforce", "--debounce", "50ms"]);
    let mut session = server.expect_connect();
    session.hello_welcome(None);
    let desired = motd_state();
    session.send(&ServerMessage::Observe {
        v: PROTOCOL_VERSION,
        request: 7,
        desired: Box::new(desired.clone()),
    });
    let AgentMessage::Observed { plan, .. } = session.next_answer() else {
        panic!("expected observed");
    };
    session.send(&ServerMessage::Apply {
        v: PROTOCOL_VERSION,
        request: 8,
        desired: Box::new(desired.clone()),
        approved_digest: plan.digest,
    });
    assert!(matches!(
        session.next_answer(),
        AgentMessage::Applied {
            request: Some(8),
            ..
        }
    ));
    // Online: drift is reported (and enforced).
    sandbox.write("/etc/motd", "edited online\n", 0o644);
    let drift = loop {
        match session.next() {
            AgentMessage::Drift { events, .. } => break events,
            m @ AgentMessage::Heartbeat { .. } => check_heartbeat(&m),
            AgentMessage::Applied { request: None, .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(drift[0].resource.to_string(), "file:/etc/motd");
    assert!(drift[0].enforced);
    wait_for("online enforcement", Duration::from_secs(10), || {
        sandbox.read("/etc/motd") == "managed by centossrv\n"
    });

    // Offline: the watch reverts the edit; its report is queued and sent on return.
    drop(session);
    drop(server);
    std::thread::sleep(Duration::from_millis(300));
    sandbox.write("/etc/motd", "edited offline\n", 0o644);
    wait_for("offline enforcement", Duration::from_secs(10), || {
        sandbox.read("/etc/motd") == "managed by centossrv\n"
    });
    wait_for("a queued report", Duration::from_secs(5), || {
        sandbox.state.join("queued-reports.json").exists()
    });
    let server = Server::bind(port, pki.server.clone());
    let mut session = server.expect_connect();
    session.hello_welcome(Some("c0ffee"));
    assert!(matches!(
        session.next_answer(),
        AgentMessage::Applied { request: None, .. }
    ));
    assert!(agent.stop().success());
}

#[test]
fn refuses_plaintext_without_the_flag_and_names_refused_enrollment() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.base.join("ca.pem"), pki().ca_pem).expect("ca");
    let agent = Agent::start(&sandbox, "ws://127.0.0.1:9", &["--enroll", "x"]);
    let mut agent = agent;
    let status = agent.child.wait().expect("wait");
    assert_eq!(status.code(), Some(1));
    let log = agent.log();
    assert!(log.contains("plaintext"), "{log}");
    assert!(log.contains("--allow-plaintext"), "{log}");

    // 401 on enrollment: a clear error and exit 1, no credential.
    let pki = pki();
    std::fs::write(sandbox.base.join("ca.pem"), &pki.ca_pem).expect("ca");
    let server = Server::bind(0, pki.server.clone());
    let url = format!("wss://localhost:{}", server.port());
    let mut agent = Agent::start(&sandbox, &url, &["--enroll", TOKEN]);
    let Request::Enroll(_, tls) = server.accept(Duration::from_secs(30)) else {
        panic!("expected enrollment");
    };
    respond(tls, "401 Unauthorized", r#"{"error":"bad token"}"#);
    let status = agent.child.wait().expect("wait");
    assert_eq!(status.code(), Some(1));
    let log = agent.log();
    assert!(log.contains("401") && log.contains("token"), "{log}");
    assert!(!log.contains(TOKEN));
    assert!(!sandbox.state.join("credential").exists());
}

#[test]
fn the_agent_drops_a_malformed_frame_and_reconnects() {
    let sandbox = Sandbox::new();
    let pki = pki();
    std::fs::write(sandbox.base.join("ca.pem"), &pki.ca_pem).expect("ca");
    std::fs::create_dir_all(&sandbox.state).expect("state");
    std::fs::write(sandbox.state.join("credential"), CREDENTIAL).expect("credential");
    let server = Server::bind(0, pki.server.clone());
    let url = format!("wss://localhost:{}", server.port());
    let agent = Agent::start(&sandbox, &url, &[]);
    let mut session = server.expect_connect();
    session.hello_welcome(None);
    // A desired state for another node is refused with an error answer.
    let mut other = motd_state();
    other.node = "db-1".into();
    session.send(&ServerMessage::Apply {
        v: PROTOCOL_VERSION,
        request: 5,
        desired: Box::new(other),
        approved_digest: "sha256:00".into(),
    });
    match session.next_answer() {
        AgentMessage::Error {
            request: Some(5),
            message,
            ..
        } => assert!(message.contains("db-1"), "{message}"),
        other => panic!("expected an error answer, got {other:?}"),
    }
    assert!(!sandbox.exists("/etc/motd"));
    session
        .ws
        .send(Message::text(r#"{"type":"format_disk","v":1}"#))
        .expect("send");
    // The agent hangs up and comes back.
    let mut session = server.expect_connect();
    session.hello_welcome(None);
    check_heartbeat(&session.next());
    assert!(
        agent.log().contains("refused a server frame"),
        "{}",
        agent.log()
    );
    assert!(agent.stop().success());
}
