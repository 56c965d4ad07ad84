//! The status page over a seeded fleet, for load tests (`docs/benchmarks.md`):
//!
//! ```text
//! cargo run --release -p reconciler --example web_bench -- 10000 [DATABASE_URL]
//! wrk -t2 -c8 -d20s --latency -H "Authorization: Bearer TOKEN" http://127.0.0.1:PORT/
//! ```
//!
//! Seeds NODES nodes in every state (see `tests/web_support/seed.rs`) into a fresh SQLite
//! database in a temporary directory (or into DATABASE_URL, which must name an empty
//! database), creates a viewer with an API token, prints `serving http://ADDR` and
//! `token TOKEN`, and serves the whole service as `centossrv serve` does (every request
//! through the access gate, sign-in required) until Ctrl-C.

#[path = "../tests/web_support/seed.rs"]
mod seed;

use reconciler::web::WebState;
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
    store.create_user("bench-viewer", None).await?;
    store
        .bind_role("user:bench-viewer", "cli", "viewer")
        .await?;
    let (_, token) = store
        .create_api_token(
            "bench-viewer",
            "bench",
            std::time::Duration::from_secs(86_400),
        )
        .await?;
    // A live view with a commit in force, as a running engine has.
    let live = Arc::new(InForce);
    let web = WebState::new(store.clone(), live.clone());
    let mut api = reconciler::http::ApiState::new(store.clone());
    api.live = live;
    let auth = reconciler::auth::Auth::new(store, reconciler::auth::AuthConfig::default());
    let app = reconciler::serve::app::router(reconciler::serve::app::Parts {
        api,
        web,
        auth,
        link: None,
        hooks: Vec::new(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("serving http://{}", listener.local_addr()?);
    println!("token {token}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
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
