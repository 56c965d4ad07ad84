//! The status page's handlers over a real socket and a seeded SQLite store: status codes,
//! counts, filters, keyset pages, escaping of hostile names, no secret on any page, security
//! headers, static assets, the live event stream and the blame view.

mod web_support;

use reconciler::web::{Activity, WebState};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use web_support::seed::{self, BROKEN, HEAD, HOSTILE_LABEL, HOSTILE_NAME, OLD, SECRET};
use web_support::{FixedLive, fetch, serve, sqlite, state};

const NODES: usize = 50;
const AUDIT: usize = 120;

struct Page {
    status: u16,
    content_type: String,
    csp: String,
    body: String,
}

async fn get(addr: SocketAddr, path: &str) -> Page {
    let r = fetch(&format!("http://{addr}{path}")).await;
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    Page {
        status: r.status().as_u16(),
        content_type: header("content-type"),
        csp: header("content-security-policy"),
        body: r.text().await.expect("body"),
    }
}

/// A seeded fleet served; the temp dir lives as long as the test.
async fn fleet() -> (SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = sqlite(dir.path()).await;
    seed::seed(&store, NODES, AUDIT).await;
    (serve(state(store, HEAD)).await, dir)
}

/// Every value of `attr="..."` in `html`, unescaped.
fn attr_values(html: &str, attr: &str) -> Vec<String> {
    let needle = format!("{attr}=\"");
    html.match_indices(&needle)
        .map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            unescape(&rest[..rest.find('"').expect("closing quote")])
        })
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The `href` of the link marked `rel="next"`, if any.
fn next_link(html: &str) -> Option<String> {
    let at = html.find("rel=\"next\"")?;
    let start = html[..at].rfind("href=\"")? + 6;
    let end = start + html[start..].find('"')?;
    Some(unescape(&html[start..end]))
}

fn expected_nodes(role: Option<&str>, state: Option<&str>) -> Vec<String> {
    (0..NODES)
        .filter(|&i| role.is_none_or(|r| seed::role(i) == r))
        .filter(|&i| state.is_none_or(|s| seed::intended_state(i) == s))
        .map(seed::name)
        .collect()
}

#[tokio::test]
async fn the_overview_counts_nodes_by_state_and_links_to_each() {
    let (addr, _dir) = fleet().await;
    let page = get(addr, "/").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.content_type, "text/html; charset=utf-8");
    let count = |state: &str| {
        let unknown_extra = usize::from(state == "unknown"); // the hostile node never reported
        expected_nodes(None, Some(state)).len() + unknown_extra
    };
    for (state, class) in [
        ("unknown", "b-none"),
        ("failed", "b-bad"),
        ("stale", "b-warn"),
        ("drifted", "b-warn"),
        ("pending", "b-info"),
        ("converged", "b-ok"),
    ] {
        let card = format!(
            "<a href=\"/nodes?state={state}\"><span class=\"n\">{}</span><span class=\"badge {class}\">{state}</span></a>",
            count(state)
        );
        assert!(page.body.contains(&card), "no card {card} in {}", page.body);
    }
    assert!(
        page.body
            .contains("<span class=\"n\">51</span>nodes in all")
    );
    // The commit in force and the last compile, with their pages linked.
    assert!(page.body.contains(&format!("href=\"/commits/{HEAD}\"")));
    assert!(page.body.contains("Newest audit entries"));
    assert!(page.body.contains("data-live"));
}

#[tokio::test]
async fn node_filters_by_label_and_state_select_exactly_the_matching_nodes() {
    let (addr, _dir) = fleet().await;
    for (query, role, state) in [
        (
            "label=role%3Dweb&state=drifted",
            Some("web"),
            Some("drifted"),
        ),
        ("state=failed", None, Some("failed")),
        ("label=role%3Ddb", Some("db"), None),
        ("label=role%3Ddb%2C+env%3Dprod&state=", Some("db"), None),
    ] {
        let page = get(addr, &format!("/nodes?{query}")).await;
        assert_eq!(page.status, 200, "{query}: {}", page.body);
        let mut want = expected_nodes(role, state);
        if query.contains("env") {
            want.retain(|n| {
                let i: usize = n[4..].parse().expect("index");
                seed::env(i) == "prod"
            });
        }
        let got = attr_values(&page.body, "data-node");
        assert_eq!(got, want, "{query}");
        if let Some(state) = state {
            assert!(
                attr_values(&page.body, "data-state")
                    .iter()
                    .all(|s| s == state)
            );
        }
    }
    let none = get(addr, "/nodes?label=role%3Dnothing").await;
    assert_eq!(none.status, 200);
    assert!(none.body.contains("No node matches these filters."));
}

#[tokio::test]
async fn node_pages_follow_next_links_through_every_node_once_keeping_filters() {
    let (addr, _dir) = fleet().await;
    for (start, want) in [
        ("/nodes?limit=7".to_owned(), {
            let mut all = expected_nodes(None, None);
            all.insert(0, HOSTILE_NAME.to_owned());
            all
        }),
        (
            "/nodes?limit=3&label=role%3Dweb".to_owned(),
            expected_nodes(Some("web"), None),
        ),
    ] {
        let mut seen = Vec::new();
        let mut next = Some(start.clone());
        let mut pages = 0;
        while let Some(path) = next {
            let page = get(addr, &path).await;
            assert_eq!(page.status, 200, "{path}");
            seen.extend(attr_values(&page.body, "data-node"));
            next = next_link(&page.body);
            if let Some(n) = &next {
                assert!(n.contains("limit="), "the page size is kept: {n}");
                if start.contains("label") {
                    assert!(n.contains("label=role%3Dweb"), "the filter is kept: {n}");
                }
            }
            pages += 1;
            assert!(pages < 100, "pagination does not end");
        }
        assert_eq!(seen, want, "{start}");
        assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), seen.len());
    }
}

#[tokio::test]
async fn hostile_names_and_labels_are_escaped_everywhere() {
    let (addr, _dir) = fleet().await;
    let list = get(addr, "/nodes").await;
    // The name as one percent-encoded path segment (what the list links to).
    let node_path = "/nodes/%3Cscript%3Ealert%28%22name%22%29%3C%2Fscript%3E";
    assert!(HOSTILE_NAME.starts_with("<script>alert(\"name\")"));
    let detail = get(addr, node_path).await;
    assert_eq!(detail.status, 200, "{}", detail.body);
    let broken = get(addr, &format!("/commits/{BROKEN}")).await;
    let audit = get(addr, "/audit").await;
    for (what, page) in [
        ("list", &list),
        ("detail", &detail),
        ("commit", &broken),
        ("audit", &audit),
    ] {
        for raw in [
            "<script>alert",
            "<img src=x",
            "<b>bold</b>",
            "<i>not markup</i>",
            "<evil>",
        ] {
            assert!(!page.body.contains(raw), "{what}: raw `{raw}` on the page");
        }
    }
    assert!(
        list.body
            .contains("&lt;script&gt;alert(&quot;name&quot;)&lt;/script&gt;")
    );
    assert!(
        list.body
            .contains("role=&quot;&gt;&lt;img src=x onerror=alert(1)&gt;")
    );
    assert!(list.body.contains(&format!("href=\"{node_path}\"")));
    assert!(detail.body.contains(&unescape_not(HOSTILE_LABEL)));
    assert!(broken.body.contains("nodes/&lt;evil&gt;.yaml"));
    assert!(audit.body.contains("&lt;i&gt;not markup&lt;/i&gt;"));
    for page in [&list, &detail, &broken, &audit] {
        assert!(page.csp.contains("script-src 'self'"), "CSP: {}", page.csp);
    }
}

/// `text` as maud escapes it.
fn unescape_not(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[tokio::test]
async fn a_node_page_shows_resources_last_run_drift_and_no_secret() {
    let (addr, _dir) = fleet().await;
    // web-003 is drifted: its motd has mode 0666.
    let page = get(addr, "/nodes/web-003").await;
    assert_eq!(page.status, 200);
    let body = &page.body;
    assert!(body.contains("<h1>Node web-003</h1>"));
    assert!(body.contains("<span class=\"badge b-warn\">drifted</span>"));
    assert!(body.contains("3 resources desired at"));
    assert!(body.contains("would update"), "the motd differs: {body}");
    assert!(body.contains("<code>mode</code>: 0666 → 0644"));
    assert!(body.contains("Per-resource results"));
    assert!(body.contains("id=\"drift\""));
    assert!(body.contains("CentOS Stream"));
    // The generations the agent reported, newest first; never as a raw fact.
    let generations = body.find("id=\"generations\"").expect("generations table");
    let g2 = body[generations..]
        .find("<td class=\"num\">2</td>")
        .expect("generation 2");
    let g1 = body[generations..]
        .find("<td class=\"num\">1</td>")
        .expect("generation 1");
    assert!(g2 < g1, "newest first");
    assert!(body.contains("centossrv-agent rollback [N]"));
    assert!(!body.contains("<dt>centossrv_generations</dt>"));
    // A failed node shows the failing resource with its reason.
    let failed = get(addr, "/nodes/web-001").await;
    assert!(failed.body.contains("read-only file system"));
    assert!(
        failed.body.contains("interrupted"),
        "an unfinished generation is shown"
    );
    assert!(
        failed
            .body
            .contains("<span class=\"badge b-bad\">failed</span>")
    );
    // A node that never reported says so instead of inventing a state.
    let unknown = get(addr, "/nodes/web-000").await;
    assert!(unknown.body.contains("the agent has not reported"));
    assert!(unknown.body.contains("No apply run yet."));
    for path in ["/", "/nodes", "/nodes/web-003", "/nodes/web-006", "/audit"] {
        let page = get(addr, path).await;
        assert!(!page.body.contains(SECRET), "{path} shows the secret");
        assert!(!page.body.contains("hunter2"), "{path} shows the secret");
    }
}

#[tokio::test]
async fn a_blame_page_shows_one_resource_history_newest_first() {
    let (addr, dir) = fleet().await;
    // The node page links each of its resources to the resource's history.
    let node = get(addr, "/nodes/web-003").await;
    let href = "/nodes/web-003/blame?resource=file%3A%2Fetc%2Fmotd";
    assert!(
        attr_values(&node.body, "href").contains(&href.to_owned()),
        "{}",
        node.body
    );
    let page = get(addr, href).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.content_type, "text/html; charset=utf-8");
    let body = &page.body;
    assert!(body.contains("History of <code>file:/etc/motd</code> on <a href=\"/nodes/web-003\">"));
    assert!(body.contains("<table id=\"blame\">"));
    assert!(body.contains("3 entries, newest first"), "{body}");
    // web-003: desired from OLD on (the same at HEAD), applied at HEAD, then drifted.
    let drift = body.find("class=\"blame-drift\"").expect("a drift row");
    let apply = body.find("class=\"blame-apply\"").expect("an apply row");
    let commit = body.find("class=\"blame-commit\"").expect("a commit row");
    assert!(drift < apply && apply < commit, "newest first");
    assert_eq!(
        body.matches("class=\"blame-commit\"").count(),
        1,
        "HEAD changed nothing"
    );
    assert!(body.contains(&format!("href=\"/commits/{OLD}\"")));
    assert!(body.contains(">added</span>"));
    assert!(body.contains("<code>mode</code>: 0666 → 0644"));
    assert!(body.contains("plan approved by reconciler"));
    assert!(body.contains("id=\"git-note\""), "no repository: said so");
    assert!(!body.contains("id=\"older\""), "nothing cut");
    // A run whose resource failed shows the reason.
    let failed = get(addr, href.replace("web-003", "web-001").as_str()).await;
    assert!(
        failed.body.contains("read-only file system"),
        "{}",
        failed.body
    );
    // A bound cuts older entries and says so, with a link to more.
    let store = sqlite(dir.path()).await;
    store
        .record_drift_event("web-003", Some(HEAD), &seed::drift_change())
        .await
        .expect("drift");
    let cut = get(addr, &format!("{href}&limit=1")).await;
    assert_eq!(cut.status, 200);
    assert!(cut.body.contains("id=\"older\""), "{}", cut.body);
    assert!(cut.body.contains("limit=4"));
    assert_eq!(cut.body.matches("class=\"blame-drift\"").count(), 1);
    assert!(
        !cut.body.contains("class=\"blame-apply\""),
        "older than the cut"
    );
    // The sensitive file's history never shows its content.
    let token = get(addr, "/nodes/web-003/blame?resource=file:/etc/app/token").await;
    assert_eq!(token.status, 200, "{}", token.body);
    assert!(!token.body.contains(SECRET) && !token.body.contains("hunter2"));
}

/// Runs git in `dir` as "Bob Merger"; returns its output.
fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .env("GIT_AUTHOR_NAME", "Bob Merger")
        .env("GIT_AUTHOR_EMAIL", "bob@example.org")
        .env("GIT_COMMITTER_NAME", "GitLab")
        .env("GIT_COMMITTER_EMAIL", "gitlab@example.org")
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

#[tokio::test]
async fn with_the_repository_a_blame_page_names_authors_and_merge_requests() {
    use state::{DESIRED_FORMAT, DesiredResource, DesiredState, Ensure, FileSpec, Origin, Spec};
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = dir.path().join("fleet");
    std::fs::create_dir(&repo).expect("mkdir");
    git(&repo, &["init", "-q"]);
    let mut shas = Vec::new();
    for (i, message) in [
        "Initial <b>fleet</b>",
        "Merge branch 'motd' into 'main'\n\nNew motd\n\nSee merge request ops/fleet!7",
    ]
    .into_iter()
    .enumerate()
    {
        std::fs::write(repo.join("motd"), format!("{i}\n")).expect("write");
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", message]);
        shas.push(git(&repo, &["rev-parse", "HEAD"]));
    }
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    let store = sqlite(&data).await;
    store
        .upsert_node(&store::NodeUpsert {
            name: "web-1".into(),
            labels: Default::default(),
            in_inventory: true,
        })
        .await
        .expect("node");
    for (i, sha) in shas.iter().enumerate() {
        let content = format!("motd {i}\n");
        store
            .record_commit(&store::CommitRecord {
                sha: sha.clone(),
                ok: true,
                diagnostics: serde_json::json!({"format": 1, "diagnostics": []}),
                compiled_at: chrono::Utc::now() + chrono::Duration::seconds(i as i64),
            })
            .await
            .expect("commit");
        let motd = DesiredResource {
            id: state::ResourceId::new(state::ResourceKind::File, "/etc/motd"),
            spec: Spec::File(FileSpec {
                path: "/etc/motd".into(),
                ensure: Ensure::Present,
                sha256: Some(state::digest::sha256(content.as_bytes())),
                content: Some(Arc::from(content)),
                mode: None,
                owner: None,
                group: None,
                sensitive: false,
            }),
            requires: Vec::new(),
            notify: Vec::new(),
            origin: Origin {
                role: "base".into(),
                file: "roles/base.yaml".into(),
                line: 1,
            },
        };
        let desired = DesiredState {
            format: DESIRED_FORMAT,
            node: "web-1".into(),
            commit: None,
            labels: Default::default(),
            resources: vec![Arc::new(motd)],
        };
        store.set_desired(sha, &[desired]).await.expect("desired");
    }
    let web = WebState::new(store, Arc::new(FixedLive::default())).with_repository(repo);
    let addr = serve(web).await;
    let page = get(addr, "/nodes/web-1/blame?resource=file%3A%2Fetc%2Fmotd").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let body = &page.body;
    assert!(!body.contains("id=\"git-note\""), "{body}");
    assert!(body.contains("Merge request ops/fleet!7."), "{body}");
    assert!(
        body.contains("Author Bob Merger &lt;bob@example.org&gt;"),
        "{body}"
    );
    assert!(
        body.contains("committed by GitLab &lt;gitlab@example.org&gt;"),
        "{body}"
    );
    assert!(body.contains("Initial &lt;b&gt;fleet&lt;/b&gt;"), "{body}");
    assert_eq!(body.matches("class=\"blame-commit\"").count(), 2);
    assert!(!body.contains("<b>"), "commit messages are text");
    assert!(body.contains(">added</span>") && body.contains(">changed</span>"));
}

#[tokio::test]
async fn blame_errors_are_pages_with_close_names_and_hostile_input_is_escaped() {
    let (addr, _dir) = fleet().await;
    for (path, status, want) in [
        ("/nodes/web-003/blame", 400, "say which resource"),
        (
            "/nodes/no-such-node/blame?resource=file:/etc/motd",
            404,
            "no node named",
        ),
        (
            "/nodes/web-003/blame?resource=file:/etc/mtod",
            404,
            "Did you mean",
        ),
        (
            "/nodes/web-003/blame?resource=motd",
            404,
            "is not a resource id",
        ),
        (
            "/nodes/web-003/blame?resource=file:/etc/motd&limit=0",
            400,
            "limit",
        ),
        (
            "/nodes/web-003/blame?resource=x&color=red",
            400,
            "unknown query parameter",
        ),
    ] {
        let page = get(addr, path).await;
        assert_eq!(page.status, status, "{path}: {}", page.body);
        assert_eq!(page.content_type, "text/html; charset=utf-8", "{path}");
        assert!(page.body.contains("role=\"alert\""), "{path}");
        assert!(page.body.contains(want), "{path}: {}", page.body);
    }
    let typo = get(addr, "/nodes/web-003/blame?resource=file:/etc/mtod").await;
    assert!(
        attr_values(&typo.body, "href")
            .contains(&"/nodes/web-003/blame?resource=file%3A%2Fetc%2Fmotd".to_owned()),
        "{}",
        typo.body
    );
    let node = "/nodes/%3Cscript%3Ealert%28%22name%22%29%3C%2Fscript%3E";
    let ok = get(addr, &format!("{node}/blame?resource=file%3A%2Fetc%2Fmotd")).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let bad = get(addr, &format!("{node}/blame?resource=%3Cscript%3Ex%3Ay")).await;
    assert_eq!(bad.status, 404, "{}", bad.body);
    for page in [&ok, &bad] {
        assert!(!page.body.contains("<script>alert"), "{}", page.body);
        assert!(!page.body.contains("<script>x"), "{}", page.body);
        assert!(page.csp.contains("script-src 'self'"));
    }
    assert!(
        ok.body
            .contains("&lt;script&gt;alert(&quot;name&quot;)&lt;/script&gt;")
    );
}

#[tokio::test]
async fn a_commit_page_lists_diagnostics_with_locations() {
    let (addr, _dir) = fleet().await;
    let page = get(addr, &format!("/commits/{BROKEN}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<code>roles/db.yaml:3:5</code>"));
    assert!(page.body.contains("hint: did you mean `packages`?"));
    assert!(
        page.body
            .contains("<span class=\"badge b-bad\">failed</span>")
    );
    let clean = get(addr, &format!("/commits/{HEAD}")).await;
    assert!(clean.body.contains("No diagnostics"));
    assert!(
        clean
            .body
            .contains("yes: the engine works towards this commit")
    );
}

#[tokio::test]
async fn the_audit_page_pages_newest_first_under_the_chain_verdict() {
    let (addr, _dir) = fleet().await;
    let mut seqs = Vec::new();
    let mut next = Some("/audit".to_owned());
    while let Some(path) = next {
        let page = get(addr, &path).await;
        assert_eq!(page.status, 200);
        assert!(
            page.body.contains(&format!("All {AUDIT} entries link up")),
            "verdict: {}",
            page.body
        );
        let rows: Vec<i64> = page
            .body
            .match_indices("<th scope=\"row\" class=\"num\">")
            .map(|(i, m)| {
                let rest = &page.body[i + m.len()..];
                rest[..rest.find('<').expect("end")].parse().expect("seq")
            })
            .collect();
        assert!(rows.len() <= 50);
        seqs.extend(rows);
        next = next_link(&page.body);
    }
    assert_eq!(seqs, (1..=AUDIT as i64).rev().collect::<Vec<_>>());
}

#[tokio::test]
async fn wrong_requests_get_html_errors_with_their_status() {
    let (addr, _dir) = fleet().await;
    for (path, status) in [
        ("/nodes/no-such-node", 404),
        ("/commits/feedface", 404),
        ("/nodes?state=bogus", 400),
        ("/nodes?label=novalue", 400),
        ("/nodes?label=a%3D1&label=a%3D2", 400),
        ("/nodes?limit=0", 400),
        ("/nodes?color=red", 400),
        ("/audit?before=-3", 400),
    ] {
        let page = get(addr, path).await;
        assert_eq!(page.status, status, "{path}: {}", page.body);
        assert_eq!(page.content_type, "text/html; charset=utf-8", "{path}");
        assert!(page.body.contains("role=\"alert\""), "{path}");
    }
    let prs = get(addr, "/prs").await;
    assert_eq!(prs.status, 200);
    assert!(prs.body.contains("No pull request reports."));
    let css = get(addr, "/static/v1/style.css").await;
    assert_eq!(css.status, 200);
    assert_eq!(css.content_type, "text/css; charset=utf-8");
    let js = get(addr, "/static/v1/live.js").await;
    assert_eq!(js.content_type, "text/javascript; charset=utf-8");
    assert!(js.body.contains("EventSource"));
}

#[tokio::test]
async fn the_event_stream_says_changed_after_the_store_changes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = sqlite(dir.path()).await;
    seed::seed(&store, 5, 3).await;
    let live: Arc<FixedLive> = Arc::new(FixedLive::default());
    let mut st = WebState::new(store.clone(), live.clone());
    st.activity = Arc::new(Activity::new(
        store.clone(),
        live,
        Duration::from_millis(100),
    ));
    let addr = serve(st).await;
    let mut response = fetch(&format!("http://{addr}/events")).await;
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    // Let the watcher take its first mark, then change something.
    tokio::time::sleep(Duration::from_millis(400)).await;
    store
        .upsert_nodes(&[store::NodeUpsert {
            name: "late-1".into(),
            labels: Default::default(),
            in_inventory: true,
        }])
        .await
        .expect("node");
    let received = tokio::time::timeout(Duration::from_secs(10), async {
        let mut text = String::new();
        while let Some(chunk) = response.chunk().await.expect("read") {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("event: changed") {
                return text;
            }
        }
        text
    })
    .await
    .expect("an event within 10 s");
    assert!(received.contains("event: changed\ndata: 1"), "{received}");
}
