//! Test support: a store per backend (SQLite in a temp dir; PostgreSQL in a fresh database
//! when DATABASE_URL is set), the router on a real socket, a minimal HTTP/1.1 client.

use reconciler::http::{ApiState, LiveView, api};
use reconciler::metrics::Metrics;
use sqlx::Connection as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use store::Store;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A live view with fixed answers.
#[derive(Debug, Default)]
pub struct FakeLive {
    pub connected: Vec<String>,
    pub commit: Option<String>,
    pub queue: usize,
    pub not_ready: AtomicBool,
}

impl LiveView for FakeLive {
    fn connected(&self) -> Vec<String> {
        self.connected.clone()
    }
    fn current_commit(&self) -> Option<String> {
        self.commit.clone()
    }
    fn queue_depth(&self) -> usize {
        self.queue
    }
    fn ready(&self) -> bool {
        !self.not_ready.load(Ordering::SeqCst)
    }
}

/// The router serving on 127.0.0.1, port chosen by the system.
pub async fn serve(store: Store, live: Arc<FakeLive>) -> SocketAddr {
    let state = ApiState {
        store,
        live,
        metrics: Metrics::new(),
        auth: None,
        control: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        axum::serve(listener, api::router(state))
            .await
            .expect("serve");
    });
    addr
}

/// A response: status, content type, body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// `GET path` over a fresh connection.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let mut content_type = String::new();
    let mut chunked = false;
    for line in lines {
        let (name, value) = line.split_once(':').expect("a header");
        match name.to_ascii_lowercase().as_str() {
            "content-type" => content_type = value.trim().to_owned(),
            "transfer-encoding" => chunked = value.trim().eq_ignore_ascii_case("chunked"),
            _ => {}
        }
    }
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        content_type,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").expect("a chunk size");
        let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// `url` with its database name replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let (head, tail) = url.split_at(authority_start);
    let path_start = tail.find('/').unwrap_or(tail.len());
    let query_start = tail.find('?').unwrap_or(tail.len()).max(path_start);
    format!("{head}{}/{db}{}", &tail[..path_start], &tail[query_start..])
}

/// Runs `test` over a fresh SQLite store, then over a fresh PostgreSQL database if
/// DATABASE_URL is set (the database is dropped afterwards, also when the test fails).
pub async fn each_backend<F, Fut>(test: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = Store::open_data_dir(dir.path())
        .await
        .expect("SQLite store");
    test(store).await;

    let Ok(admin_url) = std::env::var("DATABASE_URL") else {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "skipped PostgreSQL: DATABASE_URL not set (the API tests ran on SQLite only)"
        );
        return;
    };
    let name = format!(
        "api_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("DATABASE_URL accepts connections");
    sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .expect("CREATE DATABASE");
    let url = with_database(&admin_url, &name);
    let store = Store::open(&url).await.expect("PostgreSQL store");
    let outcome = tokio::spawn(test(store)).await;
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("DROP DATABASE");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
