//! The status page over a seeded fleet, for load tests (`docs/benchmarks.md`):
//!
//! ```text
//! cargo run --release -p reconciler --example web_bench -- 10000 [DATABASE_URL]
//! wrk -t2 -c8 -d20s --latency http://127.0.0.1:PORT/
//! ```
//!
//! Seeds NODES nodes in every state (see `tests/web_support/seed.rs`) into a fresh SQLite
//! database in a temporary directory (or into DATABASE_URL, which must name an empty
//! database), prints `serving http://ADDR`, and serves until Ctrl-C.

#[path = "../tests/web_support/seed.rs"]
mod seed;

use reconciler::web::{WebState, router};
use std::sync::Arc;
use std::time::Instant;
use store::Store;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let nodes: usize = args.next().as_deref().unwrap_or("10000").parse()?;
    let dir = tempfile::tempdir()?;
    let store = match args.next() {
        Some(url) => Store::open(&url).await?,
        None => Store::open_data_dir(dir.path()).await?,
    };
    let started = Instant::now();
    seed::seed(&store, nodes, nodes).await;
    eprintln!(
        "seeded {nodes} nodes and {nodes} audit entries in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // A live view with a commit in force, as a running engine has.
    let state = WebState::new(store, Arc::new(InForce));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("serving http://{}", listener.local_addr()?);
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// The engine's view: the seeded head in force, nothing connected.
struct InForce;

impl reconciler::http::LiveView for InForce {
    fn connected(&self) -> Vec<String> {
        Vec::new()
    }
    fn current_commit(&self) -> Option<String> {
        Some(seed::HEAD.to_owned())
    }
    fn queue_depth(&self) -> usize {
        0
    }
    fn ready(&self) -> bool {
        true
    }
}
