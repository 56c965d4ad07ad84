//! Audit forwarding to syslog: real UDP, TCP and local (datagram and stream) listeners receive what the forwarder sends
//! from a real store, parsed by an independent RFC 5424 parser (`syslog_loose`); entries
//! appended by another writer, escaping of `"`, `\` and `]`, octet-counting framing, and
//! no entry lost while the receiver is down or closes its connection. Also the real
//! `centossrv serve --audit-syslog` forwarding what another process appends.
#![allow(clippy::unwrap_used)]

mod audit_support;
mod common;

use audit_support::{TestDb, centossrv, each_backend};
use chrono::Utc;
use reconciler::audit_syslog::{Destination, Forwarder, SyslogSettings};
use std::path::{Path, PathBuf};
use std::time::Duration;
use store::{AuditEntry, AuditRecord, Store};
use syslog_loose::{ProcId, Protocol, SyslogFacility, SyslogSeverity, Variant};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream};

const WAIT: Duration = Duration::from_secs(15);

/// A syslog receiver on 127.0.0.1.
enum Receiver {
    Udp(UdpSocket),
    Tcp(TcpListener, Option<BufReader<TcpStream>>),
    /// A local datagram socket, like /dev/log.
    UnixDatagram(UnixDatagram, PathBuf),
    /// A local stream socket: the forwarder falls back to octet-counted frames.
    UnixStream(UnixListener, PathBuf, Option<BufReader<UnixStream>>),
}

impl Receiver {
    async fn udp() -> Receiver {
        Receiver::Udp(UdpSocket::bind("127.0.0.1:0").await.unwrap())
    }

    async fn tcp() -> Receiver {
        Receiver::Tcp(TcpListener::bind("127.0.0.1:0").await.unwrap(), None)
    }

    async fn unix_datagram(dir: &Path) -> Receiver {
        let path = dir.join("log.dgram");
        Receiver::UnixDatagram(UnixDatagram::bind(&path).unwrap(), path)
    }

    async fn unix_stream(dir: &Path) -> Receiver {
        let path = dir.join("log.stream");
        Receiver::UnixStream(UnixListener::bind(&path).unwrap(), path, None)
    }

    fn destination(&self) -> Destination {
        match self {
            Receiver::Udp(s) => format!("udp://{}", s.local_addr().unwrap()),
            Receiver::Tcp(l, _) => format!("tcp://{}", l.local_addr().unwrap()),
            Receiver::UnixDatagram(_, path) | Receiver::UnixStream(_, path, _) => {
                format!("unix:{}", path.display())
            }
        }
        .parse()
        .unwrap()
    }

    /// The next message (a datagram, or an octet-counted frame on the current connection,
    /// accepting one when there is none).
    async fn next(&mut self) -> String {
        tokio::time::timeout(WAIT, async {
            match self {
                Receiver::Udp(socket) => {
                    let mut buf = vec![0; 65_536];
                    let (n, _) = socket.recv_from(&mut buf).await.unwrap();
                    String::from_utf8(buf[..n].to_vec()).unwrap()
                }
                Receiver::Tcp(listener, stream) => {
                    if stream.is_none() {
                        *stream = Some(BufReader::new(listener.accept().await.unwrap().0));
                    }
                    read_frame(stream.as_mut().unwrap()).await
                }
                Receiver::UnixDatagram(socket, _) => {
                    let mut buf = vec![0; 65_536];
                    let n = socket.recv(&mut buf).await.unwrap();
                    String::from_utf8(buf[..n].to_vec()).unwrap()
                }
                Receiver::UnixStream(listener, _, stream) => {
                    if stream.is_none() {
                        *stream = Some(BufReader::new(listener.accept().await.unwrap().0));
                    }
                    read_frame(stream.as_mut().unwrap()).await
                }
            }
        })
        .await
        .expect("a forwarded message in time")
    }

    /// Closes the current TCP connection, as a restarting receiver would.
    fn hang_up(&mut self) {
        if let Receiver::Tcp(_, stream) = self {
            *stream = None;
        }
    }
}

/// `LEN SP MSG` (RFC 6587 octet counting).
async fn read_frame<S: AsyncRead + Unpin>(stream: &mut BufReader<S>) -> String {
    let mut len = Vec::new();
    stream.read_until(b' ', &mut len).await.unwrap();
    assert_eq!(
        len.pop(),
        Some(b' '),
        "a frame starts with its length and a space"
    );
    assert!(len.iter().all(u8::is_ascii_digit), "octet count {len:?}");
    let n: usize = std::str::from_utf8(&len).unwrap().parse().unwrap();
    let mut msg = vec![0; n];
    stream.read_exact(&mut msg).await.unwrap();
    String::from_utf8(msg).unwrap()
}

fn settings(destination: Destination) -> SyslogSettings {
    SyslogSettings {
        destination,
        facility: "local3".parse().unwrap(),
    }
}

fn record(
    actor: &str,
    action: &str,
    target: &str,
    commit: Option<&str>,
    outcome: &str,
) -> AuditRecord {
    AuditRecord {
        actor: actor.into(),
        action: action.into(),
        target: target.into(),
        commit: commit.map(str::to_owned),
        outcome: outcome.into(),
        details: serde_json::json!({"digest": "sha256:1234", "note": "details stay in the log"}),
    }
}

/// Entries worth forwarding: plain, failed, denied, and with `"`, `]`, `\` where a careless
/// formatter would break the structured data.
fn records() -> Vec<AuditRecord> {
    vec![
        record("reconciler", "plan.approve", "web-1", Some("c0ffee"), "ok"),
        record("agent:web-2", "node.enroll", "web-2", None, "denied"),
        record(
            r#"mal"lory]\"#,
            "apply.finish",
            r#"we]b-"3"\x"#,
            Some("c0ffee"),
            "failed",
        ),
        record(
            r"back\]slash",
            "forge.webhook.refused",
            "/api/v1/webhooks/github",
            None,
            "denied",
        ),
        record("alice", "enroll_token.create", "fleet", None, "ok"),
    ]
}

/// Parses `raw` with syslog_loose and checks every field against `entry`.
fn check(raw: &str, entry: &AuditEntry) {
    let context = format!("message {raw:?}");
    let msg = syslog_loose::parse_message_with_year_exact(raw, |_| 2026, Variant::RFC5424)
        .unwrap_or_else(|e| panic!("{context}: {e}"));
    let r = &entry.record;
    assert_eq!(msg.protocol, Protocol::RFC5424(1), "{context}");
    assert_eq!(msg.facility, Some(SyslogFacility::LOG_LOCAL3), "{context}");
    let severity = match r.outcome.as_str() {
        "ok" => SyslogSeverity::SEV_NOTICE,
        _ => SyslogSeverity::SEV_WARNING,
    };
    assert_eq!(msg.severity, Some(severity), "{context}");
    assert_eq!(
        msg.timestamp.map(|t| t.with_timezone(&Utc)),
        Some(entry.at),
        "{context}"
    );
    assert!(msg.hostname.is_some_and(|h| !h.is_empty()), "{context}");
    assert_eq!(msg.appname, Some("centossrv"), "{context}");
    assert_eq!(
        msg.procid,
        Some(ProcId::PID(i32::try_from(std::process::id()).unwrap())),
        "{context}"
    );
    assert_eq!(msg.msgid, Some(r.action.as_str()), "{context}");
    assert_eq!(msg.structured_data.len(), 1, "{context}");
    let sd = &msg.structured_data[0];
    assert_eq!(sd.id, "audit@32473", "{context}");
    let params: Vec<(String, String)> = sd.params().map(|(k, v)| ((*k).to_owned(), v)).collect();
    let mut want = vec![
        ("seq".to_owned(), entry.seq.to_string()),
        ("action".to_owned(), r.action.clone()),
        ("actor".to_owned(), r.actor.clone()),
        ("target".to_owned(), r.target.clone()),
        ("outcome".to_owned(), r.outcome.clone()),
    ];
    if let Some(commit) = &r.commit {
        want.push(("commit".to_owned(), commit.clone()));
    }
    want.push(("hash".to_owned(), entry.hash.clone()));
    assert_eq!(params, want, "{context}");
    assert!(
        msg.msg
            .starts_with(&format!("{} {} {}", r.actor, r.action, r.target)),
        "{context}"
    );
    assert!(msg.msg.ends_with(&format!(": {}", r.outcome)), "{context}");
    assert!(
        !raw.contains("details stay in the log") && !raw.contains("sha256:1234"),
        "{context}"
    );
    // The escapes themselves, as RFC 5424 §6.3.3 writes them.
    let escaped = r
        .actor
        .replace('\\', r"\\")
        .replace('"', r#"\""#)
        .replace(']', r"\]");
    assert!(raw.contains(&format!("actor=\"{escaped}\"")), "{context}");
}

#[tokio::test]
async fn every_transport_receives_each_new_entry_once_in_order() {
    for transport in ["udp", "tcp", "unix-datagram", "unix-stream"] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_data_dir(dir.path()).await.unwrap();
        // Already in the log when forwarding starts: not sent (it starts at the head).
        store
            .audit_append(&record("old", "old.entry", "fleet", None, "ok"))
            .await
            .unwrap();
        let mut receiver = match transport {
            "udp" => Receiver::udp().await,
            "tcp" => Receiver::tcp().await,
            "unix-datagram" => Receiver::unix_datagram(dir.path()).await,
            _ => Receiver::unix_stream(dir.path()).await,
        };
        let forwarder = Forwarder::at_head(store.clone(), settings(receiver.destination()))
            .await
            .unwrap();
        assert_eq!(forwarder.cursor(), 1);
        let task = forwarder.spawn();
        // Another writer (another pool, as another process) appends too.
        let other = Store::open_data_dir(dir.path()).await.unwrap();
        let mut entries = Vec::new();
        for (i, r) in records().iter().enumerate() {
            let writer = if i % 2 == 0 { &store } else { &other };
            entries.push(writer.audit_append(r).await.unwrap());
        }
        for entry in &entries {
            let raw = receiver.next().await;
            check(&raw, entry);
        }
        task.stop(Duration::from_secs(5)).await;
        other.close().await;
        store.close().await;
        eprintln!(
            "{transport}: {} entries forwarded and parsed",
            entries.len()
        );
    }
}

#[tokio::test]
async fn nothing_is_lost_while_the_tcp_receiver_is_down_or_hangs_up() {
    each_backend(|db: TestDb| async move {
        let store = db.open().await;
        // A port with nothing listening yet.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let destination: Destination = format!("tcp://127.0.0.1:{port}").parse().unwrap();
        let task = Forwarder::at_head(store.clone(), settings(destination))
            .await
            .unwrap()
            .spawn();
        let mut entries = Vec::new();
        for i in 0..3 {
            entries.push(
                store
                    .audit_append(&record(
                        "alice",
                        "plan.approve",
                        &format!("web-{i}"),
                        None,
                        "ok",
                    ))
                    .await
                    .unwrap(),
            );
        }
        // Connection refused for a while: the forwarder backs off and keeps its cursor.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let mut receiver =
            Receiver::Tcp(TcpListener::bind(("127.0.0.1", port)).await.unwrap(), None);
        for entry in &entries {
            check(&receiver.next().await, entry);
        }
        // The receiver restarts: its connection closes, the forwarder reconnects.
        receiver.hang_up();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut later = Vec::new();
        for i in 3..6 {
            later.push(
                store
                    .audit_append(&record(
                        "bob",
                        "apply.finish",
                        &format!("web-{i}"),
                        None,
                        "ok",
                    ))
                    .await
                    .unwrap(),
            );
        }
        for entry in &later {
            check(&receiver.next().await, entry);
        }
        task.stop(Duration::from_secs(5)).await;
        store.close().await;
    })
    .await;
}

/// A child process killed if the test fails before it stops it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[tokio::test]
async fn serve_forwards_what_any_process_appends() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("fleet");
    std::fs::create_dir_all(&repo).unwrap();
    common::write(&repo, "nodes/web-01.yaml", common::NODE);
    common::write(&repo, "roles/web.yaml", common::ROLE);
    common::write(&repo, "files/motd.j2", "hello\n");
    common::git(&repo, &["init", "-q"]);
    common::git(&repo, &["add", "."]);
    common::git(&repo, &["commit", "-qm", "fleet"]);
    let tls = dir.path().join("tls");
    let out = centossrv(&["certs", "init", "--dir", tls.to_str().unwrap()]);
    assert!(out.status.success());
    let data = dir.path().join("data");
    let mut receiver = Receiver::udp().await;
    let destination = receiver.destination().to_string();

    let serve_log = dir.path().join("serve.log");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_centossrv"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--poll", "1s"])
        .arg("--data-dir")
        .arg(&data)
        .arg("--repo")
        .arg(&repo)
        .arg("--tls-cert")
        .arg(tls.join("server.pem"))
        .arg("--tls-key")
        .arg(tls.join("server-key.pem"))
        .args([
            "--audit-syslog",
            &destination,
            "--audit-syslog-facility",
            "local3",
        ])
        .env_remove("CENTOSSRV_DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&serve_log).unwrap())
        .spawn()
        .unwrap();
    let mut serve = KillOnDrop(child);
    let stdout = serve.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .unwrap_or_else(|_| {
                panic!(
                    "serve did not start:\n{}",
                    std::fs::read_to_string(&serve_log).unwrap_or_default()
                )
            });
        if line.contains("listening on https://") {
            break;
        }
    }

    // Another process appends; serve forwards it.
    let out = centossrv(&[
        "enroll-token",
        "create",
        "--data-dir",
        data.to_str().unwrap(),
        "--created-by",
        "op\"e]r\\",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let raw = loop {
        let raw = receiver.next().await;
        if raw.contains(" enroll_token.create ") {
            break raw;
        }
    };
    assert!(!raw.contains(&token), "the token was forwarded");
    let reader = Store::open_data_dir(&data).await.unwrap();
    let mut entries = Vec::new();
    let mut after = None;
    loop {
        let page = reader.audit_list(after, 100).await.unwrap();
        entries.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    reader.close().await;
    let entry = entries
        .iter()
        .find(|e| e.record.action == "enroll_token.create")
        .unwrap();
    assert_eq!(entry.record.actor, "op\"e]r\\");
    // The message came from serve's process, not from the one that appended.
    let parsed =
        syslog_loose::parse_message_with_year_exact(&raw, |_| 2026, Variant::RFC5424).unwrap();
    assert_eq!(
        parsed.procid,
        Some(ProcId::PID(i32::try_from(serve.0.id()).unwrap()))
    );
    assert!(raw.contains(r#"actor="op\"e\]r\\""#), "{raw}");
    assert!(raw.contains(&format!("seq=\"{}\"", entry.seq)), "{raw}");

    rustix::process::kill_process(
        rustix::process::Pid::from_raw(i32::try_from(serve.0.id()).unwrap()).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = serve.0.wait().unwrap();
    assert!(status.success(), "serve stopped with {status}");
}

#[tokio::test]
async fn a_resumed_forwarder_sends_what_was_appended_while_it_was_stopped() {
    each_backend(|db: TestDb| async move {
        let store = db.open().await;
        store
            .audit_append(&record("old", "old.entry", "fleet", None, "ok"))
            .await
            .unwrap();
        let mut receiver = Receiver::udp().await;
        // First run: a new destination starts at the head.
        let task = Forwarder::resume(store.clone(), settings(receiver.destination()))
            .await
            .unwrap()
            .spawn();
        let first = store
            .audit_append(&record("alice", "first.run", "fleet", None, "ok"))
            .await
            .unwrap();
        check(&receiver.next().await, &first);
        task.stop(Duration::from_secs(5)).await;
        // Stopped: entries keep coming.
        let mut missed = Vec::new();
        for i in 0..3 {
            missed.push(
                store
                    .audit_append(&record("bob", "while.down", &format!("n{i}"), None, "ok"))
                    .await
                    .unwrap(),
            );
        }
        // Second run: it goes on after `first`, so the missed entries go out, in order,
        // and nothing is sent twice.
        let forwarder = Forwarder::resume(store.clone(), settings(receiver.destination()))
            .await
            .unwrap();
        assert_eq!(forwarder.cursor(), first.seq);
        let task = forwarder.spawn();
        for entry in &missed {
            check(&receiver.next().await, entry);
        }
        task.stop(Duration::from_secs(5)).await;
        let key = format!("syslog {}", receiver.destination());
        assert_eq!(
            store.forward_cursor(&key).await.unwrap(),
            Some(missed.last().unwrap().seq)
        );
        store.close().await;
    })
    .await;
}
