//! The status page in Debian's headless Chromium, driven over WebDriver (Debian's
//! `chromedriver`, the `fantoccini` client): the overview (and its live refresh when the
//! store changes), the node list filtered through its form, a node page, a resource's
//! history reached from it and the audit page render against a seeded fleet, served as
//! `centossrv serve` serves them (behind the access gate, with anonymous read on): the audit
//! page needs a sign-in, done through the form; keyboard focus starts at the skip link; the browser logs
//! no error (script errors, CSP violations, failed loads). Screenshots of each page are
//! written to `target/screenshots/`.
//!
//! Needs `chromium` and `chromium-driver` (`.ci/run` installs them); fails, saying so, when
//! they are missing.

mod web_support;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use reconciler::web::{Activity, WebState};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use web_support::seed::{self, HEAD};
use web_support::{FixedLive, fetch, sqlite};

const NODES: usize = 50;
const AUDITOR: &str = "audra";
const AUDITOR_PASSWORD: &str = "audra's long password";

/// The `url` crate's parse error, named through the `Url` reqwest re-exports.
type UrlError = <reqwest::Url as std::str::FromStr>::Err;

/// Finds a program on PATH.
fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// chromedriver, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn start_driver() -> Driver {
    let driver = which("chromedriver").unwrap_or_else(|| {
        panic!(
            "chromedriver not found on PATH: install Debian's `chromium` and `chromium-driver` \
             (apt-get install -y chromium chromium-driver); .ci/run does"
        )
    });
    let port = free_port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        reconciler::tls::ring_provider();
        if let Ok(r) = reqwest::get(format!("{url}/status")).await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver did not start in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Driver { child, url }
}

async fn browser(driver: &Driver) -> Client {
    let chromium = which("chromium").unwrap_or_else(|| {
        panic!(
            "chromium not found on PATH: install Debian's `chromium` (apt-get install -y chromium)"
        )
    });
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--no-first-run", "--hide-scrollbars",
                     "--window-size=1280,1000", "--force-color-profile=srgb"],
        }),
    );
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// chromedriver's browser log (console messages, script errors, failed loads, CSP
/// violations) since the last call.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &reqwest::Url,
        session_id: Option<&str>,
    ) -> Result<reqwest::Url, UrlError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }
    fn method_and_body(&self, _: &reqwest::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(r#"{"type":"browser"}"#.into()),
        )
    }
}

/// The error-level entries of the browser log since the last call.
async fn console_errors(client: &Client) -> Vec<Value> {
    let log = client
        .issue_cmd(BrowserLog)
        .await
        .expect("read the browser log");
    log.as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["level"] == "SEVERE" || e["level"] == "ERROR")
        .collect()
}

/// Fails on any error-level entry in the browser log.
async fn assert_no_console_errors(client: &Client, page: &str) {
    let errors = console_errors(client).await;
    assert!(errors.is_empty(), "{page}: console errors: {errors:#?}");
}

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).expect("create target/screenshots");
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    let path = screenshots_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).expect("write screenshot");
    eprintln!("screenshot: {}", path.display());
}

/// Evaluates `script` (a function body) until it returns true, or fails after `secs`.
async fn wait_true(client: &Client, script: &str, secs: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if client.execute(script, vec![]).await.expect("execute") == json!(true) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text_of(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}`: {e}"))
        .text()
        .await
        .expect("text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_in_headless_chromium() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = sqlite(dir.path()).await;
    seed::seed(&store, NODES, 120).await;
    let live: Arc<FixedLive> = Arc::new(FixedLive {
        commit: Some(HEAD.into()),
        connected: vec!["web-001".into(), "web-006".into()],
    });
    let mut st = WebState::new(store.clone(), live.clone());
    st.activity = Arc::new(Activity::new(
        store.clone(),
        live.clone(),
        Duration::from_millis(200),
    ));
    store
        .create_user(
            AUDITOR,
            Some(&reconciler::auth::password::hash(AUDITOR_PASSWORD).expect("hash")),
        )
        .await
        .expect("auditor");
    store
        .bind_role(&format!("user:{AUDITOR}"), "cli", "auditor")
        .await
        .expect("bind");
    let auth = reconciler::auth::Auth::new(
        store.clone(),
        reconciler::auth::AuthConfig {
            anonymous_read: true,
            secure_cookie: false,
            ..reconciler::auth::AuthConfig::default()
        },
    );
    let mut api = reconciler::http::ApiState::new(store.clone());
    api.live = live;
    let app = reconciler::serve::app::router(reconciler::serve::app::Parts {
        api,
        web: st,
        auth,
        link: None,
        hooks: Vec::new(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve");
    });
    let base = format!("http://{addr}");

    let driver = start_driver().await;
    let client = browser(&driver).await;
    let outcome = run(&client, &base, &store).await;
    let _ = client.close().await;
    drop(driver);
    outcome
}

async fn run(client: &Client, base: &str, store: &store::Store) {
    // The log check sees errors: a missing resource is one.
    client
        .goto(&format!("{base}/static/v1/missing.css"))
        .await
        .expect("open a missing resource");
    let seen = console_errors(client).await;
    assert!(
        seen.iter()
            .any(|e| e["message"].as_str().unwrap_or_default().contains("404")),
        "the browser log does not show a failed load: {seen:#?}"
    );

    // Overview.
    client.goto(&format!("{base}/")).await.expect("open /");
    assert_eq!(text_of(client, "h1").await, "Fleet overview");
    let total = text_of(client, ".cards li:first-child .n").await;
    assert_eq!(total, (NODES + 1).to_string());
    // The first Tab lands on the skip link.
    client
        .find(Locator::Css("body"))
        .await
        .expect("body")
        .send_keys("\u{E004}")
        .await
        .expect("press Tab");
    let focused = client
        .active_element()
        .await
        .expect("focus")
        .text()
        .await
        .expect("text");
    assert_eq!(focused, "Skip to content");
    client
        .execute(
            "document.activeElement.blur(); window.scrollTo(0, 0);",
            vec![],
        )
        .await
        .expect("blur");
    // Live refresh: a node added to the store shows up without a reload.
    wait_true(
        client,
        "return /Live/.test(document.getElementById('live-status').textContent);",
        10,
        "the event stream to open",
    )
    .await;
    client
        .execute("window.__sameDocument = true;", vec![])
        .await
        .expect("mark the document");
    store
        .upsert_nodes(&[store::NodeUpsert {
            name: "zz-late".into(),
            labels: [("role".to_owned(), "web".to_owned())].into(),
            in_inventory: true,
        }])
        .await
        .expect("add a node");
    wait_true(
        client,
        &format!(
            "return document.querySelector('.cards li:first-child .n').textContent === '{}' \
             && window.__sameDocument === true;",
            NODES + 2
        ),
        15,
        "the overview to refresh live",
    )
    .await;
    screenshot(client, "overview").await;
    assert_no_console_errors(client, "overview").await;

    // Phone width: the same page, readable at 390 px.
    client.set_window_size(390, 844).await.expect("resize");
    client.refresh().await.expect("reload");
    let overflow = client
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth;",
            vec![],
        )
        .await
        .expect("measure");
    assert_eq!(
        overflow,
        json!(true),
        "the overview scrolls sideways at phone width"
    );
    screenshot(client, "overview-phone").await;
    client.set_window_size(1280, 1000).await.expect("resize");

    // Node list, filtered through the form.
    client
        .find(Locator::LinkText("Nodes"))
        .await
        .expect("nav link")
        .click()
        .await
        .expect("open /nodes");
    client
        .find(Locator::Id("f-label"))
        .await
        .expect("label field")
        .send_keys("role=web")
        .await
        .expect("type");
    client
        .find(Locator::Id("f-state"))
        .await
        .expect("state field")
        .select_by_value("drifted")
        .await
        .expect("choose");
    client
        .find(Locator::Css("form.filters button[type=submit]"))
        .await
        .expect("button")
        .click()
        .await
        .expect("submit");
    wait_true(
        client,
        "return location.search.includes('state=drifted');",
        10,
        "the filtered list",
    )
    .await;
    let mut rows = Vec::new();
    for row in client
        .find_all(Locator::Css("#nodes tbody tr"))
        .await
        .expect("rows")
    {
        rows.push(
            row.attr("data-node")
                .await
                .expect("attr")
                .unwrap_or_default(),
        );
    }
    let want: Vec<String> = (0..NODES)
        .filter(|&i| seed::role(i) == "web" && seed::intended_state(i) == "drifted")
        .map(seed::name)
        .collect();
    assert!(!want.is_empty());
    assert_eq!(rows, want, "the filtered rows");
    assert_eq!(
        client
            .find(Locator::Id("f-label"))
            .await
            .expect("field")
            .prop("value")
            .await
            .expect("value")
            .as_deref(),
        Some("role=web"),
        "the form keeps the filter"
    );
    screenshot(client, "nodes").await;
    assert_no_console_errors(client, "nodes").await;

    // A node page, reached from the list.
    let first = want[0].clone();
    client
        .find(Locator::LinkText(&first))
        .await
        .expect("node link")
        .click()
        .await
        .expect("open the node");
    wait_true(
        client,
        &format!("return document.querySelector('h1').textContent === 'Node {first}';"),
        10,
        "the node page",
    )
    .await;
    assert!(text_of(client, "#resources").await.contains("would update"));
    assert!(text_of(client, "#results").await.contains("file:/etc/motd"));
    assert!(text_of(client, "#drift").await.contains("0666 → 0644"));
    screenshot(client, "node").await;
    assert_no_console_errors(client, "node").await;

    // The motd's history, reached from the node page's resource list.
    client
        .find(Locator::LinkText("file:/etc/motd"))
        .await
        .expect("resource link")
        .click()
        .await
        .expect("open the blame view");
    wait_true(
        client,
        "return document.querySelector('h1').textContent.startsWith('History of file:/etc/motd');",
        10,
        "the blame view",
    )
    .await;
    let rows = client
        .find_all(Locator::Css("#blame tbody tr"))
        .await
        .expect("rows");
    assert_eq!(rows.len(), 3, "{}", text_of(client, "#blame").await);
    assert!(text_of(client, "#blame").await.contains("0666 → 0644"));
    screenshot(client, "blame").await;
    assert_no_console_errors(client, "blame").await;

    // The audit page.
    client
        .find(Locator::LinkText("Audit log"))
        .await
        .expect("nav link")
        .click()
        .await
        .expect("open /audit");
    // Anonymous read does not open the audit log: the sign-in form comes first, and brings
    // the auditor back to the audit page.
    wait_true(
        client,
        "return document.querySelector('h1').textContent === 'Sign in';",
        10,
        "the sign-in form",
    )
    .await;
    assert_eq!(client.current_url().await.expect("url").path(), "/login",);
    screenshot(client, "login").await;
    assert_no_console_errors(client, "login").await;
    client
        .find(Locator::Css("#user"))
        .await
        .expect("user field")
        .send_keys(AUDITOR)
        .await
        .expect("type the user");
    client
        .find(Locator::Css("#password"))
        .await
        .expect("password field")
        .send_keys(AUDITOR_PASSWORD)
        .await
        .expect("type the password");
    client
        .find(Locator::Css("form.login button"))
        .await
        .expect("sign-in button")
        .click()
        .await
        .expect("sign in");
    wait_true(
        client,
        "return document.querySelector('h1').textContent === 'Audit log';",
        10,
        "the audit page",
    )
    .await;
    assert!(
        text_of(client, "#verdict")
            .await
            .contains("All 121 entries link up")
    );
    assert!(
        text_of(client, "form.session")
            .await
            .contains(&format!("Signed in as {AUDITOR} (auditor)"))
    );
    let rows = client
        .find_all(Locator::Css("#audit tbody tr"))
        .await
        .expect("rows");
    assert_eq!(rows.len(), 50);
    screenshot(client, "audit").await;
    assert_no_console_errors(client, "audit").await;

    // Without script, the overview is complete as served (the counts are in the HTML).
    let html = fetch(&format!("{base}/")).await.text().await.expect("body");
    assert!(html.contains(&format!(
        "<span class=\"n\">{}</span>nodes in all",
        NODES + 2
    )));
}
