//! Branch tracking, the poller and the push webhook against real repositories (built with the
//! `git` CLI in temporary directories) and a real HTTP server on 127.0.0.1.

use reconciler::engine::Event;
use reconciler::poller::{self, PollerHandle};
use reconciler::secret::Secret;
use reconciler::source::{Location, RemoteAuth, SourceConfig, SourceError, Tracker};
use reconciler::webhook;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "protocol.file.allow=always",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A bare "server" repository and a working clone that pushes to it.
struct Fixture {
    dir: tempfile::TempDir,
    bare: PathBuf,
    work: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let bare = dir.path().join("fleet.git");
        let work = dir.path().join("work");
        git(dir.path(), &["init", "--bare", "-q", "fleet.git"]);
        git(dir.path(), &["clone", "-q", "fleet.git", "work"]);
        let fixture = Fixture { dir, bare, work };
        fixture.commit("README", "first\n");
        fixture
    }

    /// Commits `path` with `text` and pushes `main`; returns the new commit id.
    fn commit(&self, path: &str, text: &str) -> String {
        let file = self.work.join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(&file, text).expect("write");
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", path]);
        git(&self.work, &["push", "-q", "origin", "HEAD:main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    fn file_url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn remote_tracker(&self, branch: &str) -> Tracker {
        Tracker::new(SourceConfig {
            location: Location::Remote {
                url: self.file_url(),
                auth: RemoteAuth::None,
            },
            branch: branch.to_owned(),
            data_dir: self.data_dir(),
        })
        .expect("tracker")
    }
}

fn local_tracker(path: &Path, branch: &str) -> Result<Tracker, SourceError> {
    Tracker::new(SourceConfig {
        location: Location::Local(path.to_owned()),
        branch: branch.to_owned(),
        data_dir: PathBuf::from("/nonexistent-unused"),
    })
}

#[test]
fn local_bare_path_sees_a_new_commit_after_a_push() {
    let fx = Fixture::new();
    let tracker = local_tracker(&fx.bare, "main").expect("tracker");
    let first = git(&fx.work, &["rev-parse", "HEAD"]);
    assert_eq!(tracker.resolve_head().expect("head"), Some(first.clone()));
    let second = fx.commit("nodes/a.yaml", "x: 1\n");
    assert_ne!(first, second);
    assert_eq!(tracker.resolve_head().expect("head"), Some(second.clone()));
    let snapshot = tracker.read_commit(&second).expect("snapshot");
    assert_eq!(snapshot.commit.as_deref(), Some(second.as_str()));
    // Nothing was mirrored for a local source.
    assert!(!fx.data_dir().exists());
}

#[test]
fn local_work_tree_path_reads_the_branch_not_the_checkout() {
    let fx = Fixture::new();
    let tracker = local_tracker(&fx.work, "refs/heads/main").expect("tracker");
    let head = git(&fx.work, &["rev-parse", "HEAD"]);
    // Uncommitted work-tree changes are invisible: only the ref counts.
    std::fs::write(fx.work.join("README"), "dirty\n").expect("write");
    assert_eq!(tracker.resolve_head().expect("head"), Some(head));
}

#[test]
fn file_remote_fetches_into_the_mirror_and_reads_the_new_commit() {
    let fx = Fixture::new();
    let tracker = fx.remote_tracker("main");
    let mirror = fx.data_dir().join("source.git");
    assert_eq!(tracker.repo_path(), mirror);
    let first = git(&fx.work, &["rev-parse", "HEAD"]);
    assert_eq!(tracker.resolve_head().expect("head"), Some(first.clone()));
    assert!(mirror.join("objects").is_dir() && !mirror.join(".git").exists());

    let second = fx.commit("files/motd", "hello fleet\n");
    assert_eq!(tracker.resolve_head().expect("head"), Some(second.clone()));
    // The mirror's branch moved (read with git, independently of gix).
    assert_eq!(git(&mirror, &["rev-parse", "refs/heads/main"]), second);
    let snapshot = tracker.read_commit(&second).expect("snapshot");
    assert_eq!(snapshot.commit.as_deref(), Some(second.as_str()));
    let paths: Vec<&str> = snapshot.files.keys().map(String::as_str).collect();
    assert_eq!(paths, ["README", "files/motd"]);
    assert_eq!(&*snapshot.files["files/motd"], b"hello fleet\n".as_slice());
    // The old commit is still readable.
    assert!(
        !tracker
            .read_commit(&first)
            .expect("old")
            .files
            .contains_key("files/motd")
    );

    // A force-push (history rewritten) is followed too.
    git(&fx.work, &["reset", "-q", "--hard", &first]);
    std::fs::write(fx.work.join("other"), "y\n").expect("write");
    git(&fx.work, &["add", "-A"]);
    git(&fx.work, &["commit", "-q", "-m", "rewrite"]);
    git(&fx.work, &["push", "-q", "-f", "origin", "HEAD:main"]);
    let rewritten = git(&fx.work, &["rev-parse", "HEAD"]);
    assert_eq!(tracker.resolve_head().expect("head"), Some(rewritten));

    // A second tracker reopens the existing mirror.
    let again = fx.remote_tracker("main");
    assert!(again.resolve_head().expect("head").is_some());
}

#[test]
fn missing_branch_is_a_clear_error_locally_and_remotely() {
    let fx = Fixture::new();
    let err = local_tracker(&fx.bare, "prod")
        .expect("tracker")
        .resolve_head()
        .expect_err("no such branch");
    assert!(matches!(err, SourceError::BranchMissing { .. }), "{err:?}");
    assert!(
        err.to_string().contains("branch `prod` does not exist"),
        "{err}"
    );

    let err = fx
        .remote_tracker("prod")
        .resolve_head()
        .expect_err("no such branch");
    assert!(matches!(err, SourceError::BranchMissing { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!(
            "branch `prod` does not exist in {}",
            fx.file_url()
        )),
        "{err}"
    );
}

#[test]
fn empty_repository_has_no_head_yet() {
    let dir = tempfile::tempdir().expect("tempdir");
    git(dir.path(), &["init", "--bare", "-q", "empty.git"]);
    let tracker = local_tracker(&dir.path().join("empty.git"), "main").expect("tracker");
    assert_eq!(tracker.resolve_head().expect("head"), None);
    let tracker = Tracker::new(SourceConfig {
        location: Location::Remote {
            url: format!("file://{}", dir.path().join("empty.git").display()),
            auth: RemoteAuth::None,
        },
        branch: "main".to_owned(),
        data_dir: dir.path().join("data"),
    })
    .expect("tracker");
    assert_eq!(tracker.resolve_head().expect("head"), None);
}

#[test]
fn unreachable_remotes_are_clear_errors_without_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::new(SourceConfig {
        location: Location::Remote {
            url: format!("file://{}", dir.path().join("nope.git").display()),
            auth: RemoteAuth::None,
        },
        branch: "main".to_owned(),
        data_dir: dir.path().join("data"),
    })
    .expect("tracker");
    let err = tracker.resolve_head().expect_err("unreachable");
    assert!(matches!(err, SourceError::Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("cannot reach Git remote file://"),
        "{err}"
    );

    // A closed port over https, with a password in the URL: the error never shows it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let tracker = Tracker::new(SourceConfig {
        location: Location::Remote {
            url: format!("https://bob:hunter2@127.0.0.1:{port}/fleet.git"),
            auth: RemoteAuth::None,
        },
        branch: "main".to_owned(),
        data_dir: dir.path().join("data2"),
    })
    .expect("tracker");
    let err = tracker.resolve_head().expect_err("unreachable");
    let text = err.to_string();
    assert!(matches!(err, SourceError::Unreachable { .. }), "{err:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(
        text.contains(&format!("https://bob:***@127.0.0.1:{port}/fleet.git")),
        "{text}"
    );
}

#[test]
fn bad_configurations_are_refused_up_front() {
    let dir = tempfile::tempdir().expect("tempdir");
    let remote = |url: &str, auth: RemoteAuth, branch: &str| {
        Tracker::new(SourceConfig {
            location: Location::Remote {
                url: url.to_owned(),
                auth,
            },
            branch: branch.to_owned(),
            data_dir: dir.path().join("data"),
        })
        .expect_err("refused")
        .to_string()
    };
    let token = RemoteAuth::from_http_secret(&Secret::new("tok"));
    assert!(
        remote("https://h/x.git", RemoteAuth::None, "bad..name")
            .contains("not a valid branch name")
    );
    assert!(remote("http://h/x.git", token.clone(), "main").contains("plain http"));
    assert!(remote("ssh://git@h/x.git", token, "main").contains("only applies to https"));
    assert!(
        remote(
            "https://h/x.git",
            RemoteAuth::SshKey(dir.path().join("k")),
            "main"
        )
        .contains("only applies to ssh")
    );
    let err = local_tracker(&dir.path().join("missing"), "main").expect_err("no repo");
    assert!(matches!(err, SourceError::OpenRepo { .. }), "{err:?}");
}

/// Waits for the next event, failing after `secs` seconds.
async fn next_event(rx: &mut mpsc::Receiver<Event>, secs: u64) -> Event {
    tokio::time::timeout(Duration::from_secs(secs), rx.recv())
        .await
        .expect("an event in time")
        .expect("channel open")
}

/// Asserts that no event arrives within `ms` milliseconds.
async fn no_event(rx: &mut mpsc::Receiver<Event>, ms: u64) {
    if let Ok(event) = tokio::time::timeout(Duration::from_millis(ms), rx.recv()).await {
        panic!("unexpected event {event:?}");
    }
}

fn start_poller(fx: &Fixture, interval: Duration) -> (PollerHandle, mpsc::Receiver<Event>) {
    let (tx, rx) = mpsc::channel(16);
    let handle = poller::spawn(Arc::new(fx.remote_tracker("main")), interval, tx);
    (handle, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poller_sends_source_changed_once_per_new_head() {
    let fx = Fixture::new();
    let (handle, mut rx) = start_poller(&fx, Duration::from_millis(100));
    assert!(matches!(
        next_event(&mut rx, 10).await,
        Event::SourceChanged
    ));
    // Several polls of an unchanged head send nothing.
    let before = handle.polls();
    no_event(&mut rx, 800).await;
    assert!(
        handle.polls() >= before + 2,
        "it kept polling: {}",
        handle.polls()
    );

    let fx_ref = &fx;
    tokio::task::block_in_place(|| fx_ref.commit("a", "1\n"));
    assert!(matches!(
        next_event(&mut rx, 10).await,
        Event::SourceChanged
    ));
    no_event(&mut rx, 800).await;
    tokio::task::block_in_place(|| fx_ref.commit("b", "2\n"));
    assert!(matches!(
        next_event(&mut rx, 10).await,
        Event::SourceChanged
    ));
    no_event(&mut rx, 500).await;
    assert_eq!(handle.failures(), 0);
    handle.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poke_fetches_at_once_and_coalesces_bursts() {
    let fx = Fixture::new();
    let (handle, mut rx) = start_poller(&fx, Duration::from_secs(3600));
    assert!(matches!(
        next_event(&mut rx, 10).await,
        Event::SourceChanged
    ));
    assert_eq!(handle.polls(), 1);

    let fx_ref = &fx;
    tokio::task::block_in_place(|| fx_ref.commit("a", "1\n"));
    no_event(&mut rx, 300).await; // the hour-long interval would never notice
    handle.poke();
    assert!(matches!(
        next_event(&mut rx, 10).await,
        Event::SourceChanged
    ));

    // A burst of pokes: one wakes the poller, the rest collapse into at most one more fetch.
    let before = handle.polls();
    for _ in 0..100 {
        handle.poke();
    }
    // Wait for the first fetch to end (however slow the machine), then for a possible second.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while handle.polls() == before && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let fetches = handle.polls() - before;
    assert!(
        (1..=2).contains(&fetches),
        "{fetches} fetches for a burst of 100 pokes"
    );
    no_event(&mut rx, 100).await;
    handle.stop();
}

struct Server {
    base: String,
    client: reqwest::Client,
}

async fn serve(router: axum::Router) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    reconciler::source::tracker::install_ring_provider();
    Server {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
    }
}

impl Server {
    async fn post(&self, body: Vec<u8>, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
        let mut request = self
            .client
            .post(format!("{}{}", self.base, webhook::PATH))
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }
}

const SECRET: &str = "s3cret-webhook-key";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_authenticates_pokes_and_deduplicates() {
    let fx = Fixture::new();
    let (handle, mut rx) = start_poller(&fx, Duration::from_secs(3600));
    assert!(matches!(
        next_event(&mut rx, 10).await,
        Event::SourceChanged
    ));
    let server = serve(webhook::router(Some(Secret::new(SECRET)), handle.clone())).await;
    let fx_ref = &fx;

    // Valid signature: 202 and an immediate fetch that sees the new head.
    tokio::task::block_in_place(|| fx_ref.commit("a", "1\n"));
    let body = br#"{"ref":"refs/heads/main"}"#.to_vec();
    let sig = webhook::sign(SECRET.as_bytes(), &body);
    let (status, json) = server
        .post(
            body.clone(),
            &[
                ("X-Centossrv-Signature", &sig),
                ("X-Centossrv-Delivery", "d-1"),
            ],
        )
        .await;
    assert_eq!(status, 202, "{json}");
    assert_eq!(json["status"], "accepted");
    assert!(matches!(next_event(&mut rx, 5).await, Event::SourceChanged));

    // The same delivery again (a forge retry): accepted, but no new fetch.
    tokio::task::block_in_place(|| fx_ref.commit("b", "2\n"));
    let polls = handle.polls();
    let (status, json) = server
        .post(
            body.clone(),
            &[
                ("X-Centossrv-Signature", &sig),
                ("X-Centossrv-Delivery", "d-1"),
            ],
        )
        .await;
    assert_eq!(status, 202, "{json}");
    assert_eq!(json["status"], "duplicate");
    assert_eq!(json["delivery"], "d-1");
    no_event(&mut rx, 700).await;
    assert_eq!(handle.polls(), polls);

    // Wrong signature (other secret, or body changed after signing) and missing: 401.
    let bad = webhook::sign(b"other", &body);
    for headers in [
        vec![
            ("X-Centossrv-Signature", bad.as_str()),
            ("X-Centossrv-Delivery", "d-2"),
        ],
        vec![
            ("X-Centossrv-Signature", "sha256=zz"),
            ("X-Centossrv-Delivery", "d-3"),
        ],
        vec![("X-Centossrv-Delivery", "d-4")],
    ] {
        let (status, json) = server.post(body.clone(), &headers).await;
        assert_eq!(status, 401, "{json}");
        assert_eq!(json["error"]["code"], "bad_signature", "{json}");
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let (status, _) = server
        .post(b"tampered".to_vec(), &[("X-Centossrv-Signature", &sig)])
        .await;
    assert_eq!(status, 401);
    no_event(&mut rx, 300).await;

    // Over 1 MiB: 413 (the signature would be valid: size is checked first).
    let big = vec![b'x'; webhook::MAX_BODY + 1];
    let big_sig = webhook::sign(SECRET.as_bytes(), &big);
    let (status, json) = server
        .post(big, &[("X-Centossrv-Signature", &big_sig)])
        .await;
    assert_eq!(status, 413, "{json}");
    // Exactly 1 MiB is fine, and a new delivery id pokes again (the head moved: "b").
    let max = vec![b'x'; webhook::MAX_BODY];
    let max_sig = webhook::sign(SECRET.as_bytes(), &max);
    let (status, json) = server
        .post(
            max,
            &[
                ("X-Centossrv-Signature", &max_sig),
                ("X-Centossrv-Delivery", "d-5"),
            ],
        )
        .await;
    assert_eq!(status, 202, "{json}");
    assert!(matches!(next_event(&mut rx, 5).await, Event::SourceChanged));
    handle.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_is_not_mounted_without_a_secret() {
    let fx = Fixture::new();
    let (handle, _rx) = start_poller(&fx, Duration::from_secs(3600));
    let server = serve(webhook::router(None, handle.clone())).await;
    let body = b"{}".to_vec();
    let sig = webhook::sign(b"", &body);
    let (status, _) = server.post(body, &[("X-Centossrv-Signature", &sig)]).await;
    assert_eq!(status, 404);
    handle.stop();
}

/// An HTTP "forge" that answers every request with 401 and a Basic challenge.
async fn challenging_router() -> axum::Router {
    use axum::http::{StatusCode, header};
    axum::Router::new().fallback(|| async {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"fleet\"")],
            "authentication required",
        )
    })
}

fn remote_at(url: String, data_dir: PathBuf) -> Tracker {
    Tracker::new(SourceConfig {
        location: Location::Remote {
            url,
            auth: RemoteAuth::None,
        },
        branch: "main".to_owned(),
        data_dir,
    })
    .expect("tracker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_challenge_without_credentials_fails_at_once_as_auth_failed() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = challenging_router().await;
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = remote_at(format!("http://{addr}/fleet.git"), dir.path().join("data"));
    let err = tokio::task::spawn_blocking(move || tracker.resolve_head())
        .await
        .expect("join")
        .expect_err("401");
    assert!(matches!(err, SourceError::AuthFailed { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "authentication to Git remote http://{addr}/fleet.git failed"
        )),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_runs_tls_with_ring_and_refuses_an_untrusted_certificate() {
    reconciler::source::tracker::install_ring_provider();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("cert");
    let config = axum_server::tls_rustls::RustlsConfig::from_pem(
        cert.cert.pem().into_bytes(),
        cert.signing_key.serialize_pem().into_bytes(),
    )
    .await
    .expect("tls config");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = challenging_router().await;
    tokio::spawn(async move {
        axum_server::from_tcp_rustls(listener, config)
            .serve(router.into_make_service())
            .await
            .expect("serve")
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = remote_at(format!("https://{addr}/fleet.git"), dir.path().join("data"));
    let err = tokio::task::spawn_blocking(move || tracker.resolve_head())
        .await
        .expect("join")
        .expect_err("untrusted");
    let text = err.to_string();
    assert!(matches!(err, SourceError::Unreachable { .. }), "{err:?}");
    assert!(text.to_lowercase().contains("certificate"), "{text}");
}

#[test]
fn ssh_with_a_key_runs_the_ssh_program_and_reports_an_unreachable_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("id_ed25519");
    std::fs::write(&key, "not really a key\n").expect("key");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let url = format!("ssh://git@127.0.0.1:{port}/fleet.git");
    let tracker = Tracker::new(SourceConfig {
        location: Location::Remote {
            url: url.clone(),
            auth: RemoteAuth::SshKey(key),
        },
        branch: "main".to_owned(),
        data_dir: dir.path().join("data"),
    })
    .expect("tracker");
    let err = tracker.resolve_head().expect_err("closed port");
    let text = err.to_string();
    assert!(matches!(err, SourceError::Unreachable { .. }), "{err:?}");
    assert!(
        text.starts_with(&format!("cannot reach Git remote {url}")),
        "{text}"
    );
    assert!(
        text.contains("ssh: connect to host 127.0.0.1"),
        "ssh itself ran: {text}"
    );
}
