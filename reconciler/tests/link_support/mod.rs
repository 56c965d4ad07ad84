//! A real link server for tests: certificates from `certs init`, a store (SQLite in a temp
//! directory, or a fresh PostgreSQL database), TLS on 127.0.0.1 port 0, the engine's event
//! channel; and clients: HTTPS requests and raw TLS streams by hand, WebSockets with
//! tokio-tungstenite, all trusting the test CA.
#![allow(dead_code, clippy::unwrap_used)]

use reconciler::engine::Event;
use reconciler::link::{self, LinkConfig, LinkState, LinkStats};
use reconciler::tls;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject as _;
use sqlx::Connection as _;
use state::wire::CONNECT_PATH;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use store::Store;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Which database a test server stores into.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// A fresh database created on DATABASE_URL's server.
    Postgres(String),
}

/// SQLite always; PostgreSQL too when DATABASE_URL is set.
pub fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::Sqlite];
    match std::env::var("DATABASE_URL") {
        Ok(url) => out.push(Backend::Postgres(url)),
        Err(_) => eprintln!("skipped PostgreSQL: DATABASE_URL not set"),
    }
    out
}

pub struct Server {
    pub addr: SocketAddr,
    pub events: mpsc::Receiver<Event>,
    pub stats: Arc<LinkStats>,
    pub store: Store,
    pub client: Arc<rustls::ClientConfig>,
    server: Option<tls::TlsServer>,
    pg: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Server {
    pub async fn start(backend: Backend, config: LinkConfig) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let certs = tls::init_certs(&dir.path().join("certs"), &[], false).unwrap();
        let server_config = tls::server_config(&certs.server_cert, &certs.server_key).unwrap();
        let (store, pg) = match backend {
            Backend::Sqlite => (Store::open_data_dir(dir.path()).await.unwrap(), None),
            Backend::Postgres(admin) => {
                let name = format!(
                    "link_test_{}_{}",
                    std::process::id(),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_nanos()
                );
                let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
                sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let (head, _) = admin.rsplit_once('/').unwrap();
                let store = Store::open(&format!("{head}/{name}")).await.unwrap();
                (store, Some((admin, name)))
            }
        };
        let (tx, events) = mpsc::channel(64);
        let state = LinkState::new(store.clone(), tx, config);
        let stats = state.stats.clone();
        let server = tls::serve(
            link::router(state),
            "127.0.0.1:0".parse().unwrap(),
            server_config,
        )
        .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_file_iter(&certs.ca_cert).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let client = rustls::ClientConfig::builder_with_provider(tls::ring_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Server {
            addr: server.addr,
            events,
            stats,
            store,
            client: Arc::new(client),
            server: Some(server),
            pg,
            _dir: dir,
        }
    }

    /// Stops the server and drops a PostgreSQL test database.
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown(Duration::from_secs(1)).await.unwrap();
        }
        self.store.close().await;
        if let Some((admin, name)) = self.pg.take() {
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }

    /// A TLS stream to the server, verified against the test CA as `localhost`.
    pub async fn tls(&self) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        TlsConnector::from(self.client.clone())
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap()
    }

    /// POSTs `body` to `path` over HTTPS; returns status and body.
    pub async fn post(&self, path: &str, body: &[u8]) -> (u16, String) {
        let mut stream = self.tls().await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        stream.flush().await.unwrap();
        let mut response = Vec::new();
        // The server may close without close_notify after the body; what was read counts.
        let _ = stream.read_to_end(&mut response).await;
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// Enrolls `node` with `token`: status and body.
    pub async fn enroll(&self, node: &str, token: &str) -> (u16, String) {
        let body = serde_json::json!({"v": 1, "node": node, "token": token}).to_string();
        self.post(state::wire::ENROLL_PATH, body.as_bytes()).await
    }

    /// Creates a token and enrolls `node` with it: the credential.
    pub async fn enrolled(&self, node: &str) -> String {
        let token = self
            .store
            .create_enrollment_token(Duration::from_secs(60), "test", None)
            .await
            .unwrap();
        let (status, body) = self.enroll(node, &token).await;
        assert_eq!(status, 200, "{body}");
        let response: state::wire::EnrollResponse = serde_json::from_str(&body).unwrap();
        response.credential
    }

    /// Opens the agent WebSocket with `credential` (none: no Authorization header).
    pub async fn connect(
        &self,
        credential: Option<&str>,
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let url = format!("wss://localhost:{}{CONNECT_PATH}", self.addr.port());
        let mut request = url.into_client_request().unwrap();
        if let Some(credential) = credential {
            request.headers_mut().insert(
                "authorization",
                format!("Bearer {credential}").parse().unwrap(),
            );
        }
        // tungstenite resolves `localhost`; the server listens on 127.0.0.1 only.
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        tokio_tungstenite::client_async_tls_with_config(
            request,
            tcp,
            None,
            Some(Connector::Rustls(self.client.clone())),
        )
        .await
        .map(|(ws, _)| ws)
    }

    /// The next engine event, waiting at most 5 s.
    pub async fn event(&mut self) -> Event {
        tokio::time::timeout(Duration::from_secs(5), self.events.recv())
            .await
            .expect("an engine event within 5 s")
            .expect("the link holds the sender")
    }
}

/// VmHWM (peak resident memory) of this process, in KiB.
pub fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
