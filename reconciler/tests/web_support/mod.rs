//! Shared by the status page's tests: a seeded fleet ([`seed`]) and the page router on a
//! real socket.

#![allow(dead_code)] // each test binary uses a part

pub mod seed;

use reconciler::http::LiveView;
use reconciler::web::{WebState, router};
use std::net::SocketAddr;
use std::sync::Arc;
use store::Store;

/// A live view with fixed answers.
#[derive(Debug, Default)]
pub struct FixedLive {
    pub commit: Option<String>,
    pub connected: Vec<String>,
}

impl LiveView for FixedLive {
    fn connected(&self) -> Vec<String> {
        self.connected.clone()
    }
    fn current_commit(&self) -> Option<String> {
        self.commit.clone()
    }
    fn queue_depth(&self) -> usize {
        0
    }
    fn ready(&self) -> bool {
        true
    }
}

/// `GET url` (reqwest needs the process's rustls provider even for plain HTTP).
pub async fn fetch(url: &str) -> reqwest::Response {
    reconciler::tls::ring_provider();
    reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// The status page (and nothing else) on 127.0.0.1, port chosen by the system.
pub async fn serve(state: WebState) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        axum::serve(listener, router(state)).await.expect("serve");
    });
    addr
}

/// A fresh SQLite store in `dir`.
pub async fn sqlite(dir: &std::path::Path) -> Store {
    Store::open_data_dir(dir).await.expect("SQLite store")
}

/// Pages over `store` with `commit` in force.
pub fn state(store: Store, commit: &str) -> WebState {
    WebState::new(
        store,
        Arc::new(FixedLive {
            commit: Some(commit.to_owned()),
            connected: vec!["web-001".into()],
        }),
    )
}
