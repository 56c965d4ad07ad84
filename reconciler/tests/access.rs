//! Access control on the whole service as `centossrv serve` builds it
//! (`serve::app::router`): the access matrix (every route x every caller gets exactly the
//! status the table `auth::rbac::RULES` allows), sign-in through the API and the form,
//! the session cookie's reach, login rate limits per user and per address, nothing secret
//! in the database, and `docs/access.md` generated from the table.

#[path = "web_support/mod.rs"]
mod web_support;

use reconciler::auth::rbac::{self, Access, RULES, Rule};
use reconciler::auth::{Auth, AuthConfig, Role, limiter::Limits, password};
use reconciler::http::{ApiState, Control};
use reconciler::metrics::Metrics;
use reconciler::serve::app::{Parts, router};
use reconciler::web::WebState;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use store::Store;
use web_support::FixedLive;
use web_support::seed::{HEAD, seed};

const PASSWORD: &str = "matrix password 0123456789";

/// The callers: anonymous, a user without a role, and one user per role.
const CALLERS: [(&str, Option<Option<Role>>); 6] = [
    ("anonymous", None),
    ("norole", Some(None)),
    ("viewer", Some(Some(Role::Viewer))),
    ("auditor", Some(Some(Role::Auditor))),
    ("operator", Some(Some(Role::Operator))),
    ("admin", Some(Some(Role::Admin))),
];

fn phc() -> &'static str {
    static PHC: OnceLock<String> = OnceLock::new();
    PHC.get_or_init(|| password::hash(PASSWORD).expect("hash"))
}

struct Fixture {
    addr: SocketAddr,
    store: Store,
    dir: tempfile::TempDir,
    /// Caller name -> (API token text, token id).
    tokens: BTreeMap<&'static str, (String, String)>,
    _events: tokio::sync::mpsc::Receiver<reconciler::engine::Event>,
    _forge_events: tokio::sync::mpsc::Receiver<reconciler::forge::ForgeEvent>,
}

async fn fixture(anonymous_read: bool, limits: Limits) -> Fixture {
    reconciler::tls::ring_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = web_support::sqlite(dir.path()).await;
    seed(&store, 5, 10).await;
    let mut tokens = BTreeMap::new();
    for (name, role) in CALLERS {
        let Some(role) = role else { continue };
        let user = format!("matrix-{name}");
        store.create_user(&user, Some(phc())).await.expect("user");
        if let Some(role) = role {
            store
                .bind_role(&format!("user:{user}"), "cli", role.as_str())
                .await
                .expect("bind");
        }
        let (record, text) = store
            .create_api_token(&user, "matrix", Duration::from_secs(3600))
            .await
            .expect("token");
        tokens.insert(name, (text, record.id));
    }
    store
        .create_user("victim", Some(phc()))
        .await
        .expect("victim");
    store
        .set_hold("web-002", "seeded", "matrix")
        .await
        .expect("hold");
    let auth = Auth::new(
        store.clone(),
        AuthConfig {
            anonymous_read,
            secure_cookie: false,
            limits,
            ..AuthConfig::default()
        },
    );
    let live = Arc::new(FixedLive {
        commit: Some(HEAD.to_owned()),
        connected: vec!["web-001".into()],
    });
    let (events, rx) = tokio::sync::mpsc::channel(256);
    let (forge_events, forge_rx) = tokio::sync::mpsc::channel(16);
    let link = reconciler::link::router(reconciler::link::LinkState::new(
        store.clone(),
        events.clone(),
        reconciler::link::LinkConfig::default(),
    ));
    let forge_hooks = reconciler::forge::webhook::router(
        reconciler::forge::webhook::ForgeHookConfig {
            github_secret: Some(reconciler::secret::Secret::new("matrix hook secret")),
            gitlab_secret: Some(reconciler::secret::Secret::new("matrix hook token")),
        },
        forge_events,
        store.clone(),
    );
    let app = router(Parts {
        api: ApiState {
            store: store.clone(),
            live: live.clone(),
            metrics: Metrics::new(),
            auth: None,
            control: Some(Control {
                events,
                poller: None,
            }),
        },
        web: WebState::new(store.clone(), live),
        auth,
        link: Some(link),
        hooks: vec![forge_hooks],
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve");
    });
    Fixture {
        _forge_events: forge_rx,
        addr,
        store,
        dir,
        tokens,
        _events: rx,
    }
}

/// An `application/x-www-form-urlencoded` body (as a browser's form sends).
fn form_body(request: reqwest::RequestBuilder, form: &[(&str, String)]) -> reqwest::RequestBuilder {
    request
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(form).expect("form"))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A request that succeeds for an allowed caller, and the status it succeeds with.
struct Sample {
    path: String,
    json: Option<serde_json::Value>,
    form: Option<Vec<(&'static str, String)>>,
    success: u16,
}

/// Path, JSON body, form body, success status.
type SampleParts = (
    String,
    Option<serde_json::Value>,
    Option<Vec<(&'static str, String)>>,
    u16,
);

fn sample(rule: &Rule, own_token: &str) -> Sample {
    let json = |v: serde_json::Value| Some(v);
    let (path, body, form, success): SampleParts = match (rule.method, rule.path) {
        ("POST", "/api/v1/login") => (
            rule.path.into(),
            json(serde_json::json!({"user": "matrix-viewer", "password": PASSWORD})),
            None,
            200,
        ),
        ("POST", "/api/v1/tokens") => (
            rule.path.into(),
            json(serde_json::json!({"label": "t"})),
            None,
            201,
        ),
        ("DELETE", "/api/v1/tokens/{id}") => {
            (format!("/api/v1/tokens/{own_token}"), None, None, 204)
        }
        ("POST", "/api/v1/sync") => (rule.path.into(), None, None, 202),
        ("POST", "/api/v1/enrollment-tokens") => {
            (rule.path.into(), json(serde_json::json!({})), None, 201)
        }
        ("PUT", "/api/v1/nodes/{name}/hold") => (
            "/api/v1/nodes/web-001/hold".into(),
            json(serde_json::json!({"reason": "disk swap"})),
            None,
            200,
        ),
        ("DELETE", "/api/v1/nodes/{name}/hold") => {
            ("/api/v1/nodes/web-002/hold".into(), None, None, 204)
        }
        ("POST", "/api/v1/nodes/{name}/release") => {
            ("/api/v1/nodes/web-002/release".into(), None, None, 202)
        }
        ("POST", "/api/v1/users") => (
            rule.path.into(),
            json(serde_json::json!({"name": "newbie", "password": PASSWORD, "role": "viewer"})),
            None,
            201,
        ),
        ("DELETE", "/api/v1/users/{name}") => ("/api/v1/users/victim".into(), None, None, 204),
        ("PUT", "/api/v1/users/{name}/role") => (
            "/api/v1/users/victim/role".into(),
            json(serde_json::json!({"role": "viewer"})),
            None,
            204,
        ),
        ("GET", "/api/v1/plans") => (format!("/api/v1/plans?commit={HEAD}"), None, None, 200),
        ("GET", "/api/v1/runs/{id}") => ("/api/v1/runs/1".into(), None, None, 200),
        ("POST", "/login") => (
            "/login".into(),
            None,
            Some(vec![
                ("user", "matrix-viewer".to_owned()),
                ("password", PASSWORD.to_owned()),
                ("next", "/nodes".to_owned()),
            ]),
            303,
        ),
        ("POST", "/logout") => ("/logout".into(), None, None, 303),
        ("GET", "/favicon.ico") => ("/favicon.ico".into(), None, None, 204),
        ("GET", "/nodes/{name}/blame") => (
            "/nodes/web-001/blame?resource=file%3A%2Fetc%2Fmotd".into(),
            None,
            None,
            200,
        ),
        (_, path) => (
            path.replace("{name}", "web-001").replace("{sha}", HEAD),
            None,
            None,
            200,
        ),
    };
    Sample {
        path,
        json: body,
        form,
        success,
    }
}

/// The status `caller` must get on `rule`.
fn expected(rule: &Rule, caller: Option<Option<Role>>, anonymous_read: bool, success: u16) -> u16 {
    let roles: Option<Vec<Role>> = caller.map(|r| r.into_iter().collect());
    if rbac::allows(rule.access, roles.as_deref(), anonymous_read) {
        return success;
    }
    match (roles, rule.access) {
        (None, Access::Page(_)) => 303,
        (None, _) => 401,
        (Some(_), _) => 403,
    }
}

async fn send(f: &Fixture, rule: &Rule, caller: &str) -> (u16, String) {
    let own = f
        .tokens
        .get(caller)
        .or_else(|| f.tokens.get("viewer"))
        .expect("token");
    let s = sample(rule, &own.1);
    let method = reqwest::Method::from_bytes(rule.method.as_bytes()).expect("method");
    let mut request = client().request(method, format!("http://{}{}", f.addr, s.path));
    if let Some((text, _)) = f.tokens.get(caller) {
        request = request.bearer_auth(text);
    }
    if let Some(json) = s.json {
        request = request.json(&json);
    }
    if let Some(form) = s.form {
        request = form_body(request, &form);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    // The event stream never ends: read no body from it.
    let body = if rule.path == "/events" {
        String::new()
    } else {
        response.text().await.unwrap_or_default()
    };
    (status, body)
}

/// The OpenAPI document the service serves.
fn openapi() -> &'static serde_json::Value {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    DOC.get_or_init(|| {
        serde_json::to_value(reconciler::http::api::openapi()).expect("document as JSON")
    })
}

/// Problems of an API answer against the document: the status must be documented for the
/// operation and a JSON body must match its schema; errors must be `ErrorBody`.
fn contract_problems(rule: &Rule, status: u16, body: &str) -> Vec<String> {
    if !rule.path.starts_with("/api/") || rule.path == "/api/openapi.json" {
        return Vec::new();
    }
    let doc = openapi();
    let schema = if status >= 400 {
        serde_json::json!({"$ref": "#/components/schemas/ErrorBody"})
    } else {
        let op = &doc["paths"][rule.path][rule.method.to_lowercase()];
        if !op.is_object() {
            return vec![format!(
                "{} {} is not in the OpenAPI document",
                rule.method, rule.path
            )];
        }
        let response = &op["responses"][status.to_string()];
        if !response.is_object() {
            return vec![format!("status {status} is not documented")];
        }
        match response["content"]["application/json"]["schema"].clone() {
            serde_json::Value::Null => {
                return if body.is_empty() {
                    Vec::new()
                } else {
                    vec![format!("undocumented body: {body}")]
                };
            }
            schema => schema,
        }
    };
    let Ok(instance) = serde_json::from_str::<serde_json::Value>(body) else {
        return vec![format!("not JSON: {body}")];
    };
    let root = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "allOf": [schema],
        "components": doc["components"],
    });
    let validator = jsonschema::validator_for(&root).expect("a valid schema");
    validator
        .iter_errors(&instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

async fn check_matrix(anonymous_read: bool) {
    let mut failures = Vec::new();
    let mut checked = 0;
    for rule in RULES {
        if let Access::Credential(what) = rule.access {
            // Roles play no part: every caller gets the handler's answer to a request
            // without its credential, the same for all, never a success. (The generic push
            // webhook is not mounted here; `tests/source_tracking.rs` tests it.)
            if rule.path == reconciler::webhook::PATH {
                continue;
            }
            let f = fixture(anonymous_read, Limits::default()).await;
            let mut seen = Vec::new();
            for (caller, _) in CALLERS {
                let (got, _) = send(&f, rule, caller).await;
                checked += 1;
                seen.push((caller, got));
            }
            if seen.iter().any(|(_, s)| *s < 400 || *s != seen[0].1) {
                failures.push(format!(
                    "{} {} ({what}): every caller must get the same refusal: {seen:?}",
                    rule.method, rule.path
                ));
            }
            continue;
        }
        let writes = rule.method != "GET";
        let mut shared = None;
        for (caller, role) in CALLERS {
            // A write changes the state: each caller gets a fresh service.
            if writes || shared.is_none() {
                shared = Some(fixture(anonymous_read, Limits::default()).await);
            }
            let f = shared.as_ref().expect("fixture");
            let success = sample(rule, "").success;
            let want = expected(rule, role, anonymous_read, success);
            let (got, body) = send(f, rule, caller).await;
            checked += 1;
            for problem in contract_problems(rule, got, &body) {
                failures.push(format!(
                    "{} {} as {caller}: {problem}",
                    rule.method, rule.path
                ));
            }
            if got != want {
                failures.push(format!(
                    "{} {} as {caller}: got {got}, want {want}: {}",
                    rule.method,
                    rule.path,
                    body[body.find("<main").unwrap_or(0)..]
                        .chars()
                        .take(300)
                        .collect::<String>()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_caller_as_the_table_says() {
    check_matrix(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_read_opens_reads_and_nothing_else() {
    check_matrix(true).await;
}

#[tokio::test]
async fn every_api_route_is_in_the_table_and_only_served_routes_are() {
    let doc = reconciler::http::api::openapi();
    let mut missing = Vec::new();
    for (path, item) in &doc.paths.paths {
        let full = if path.starts_with("/api/v1")
            || path.starts_with("/healthz")
            || path.starts_with("/readyz")
            || path.starts_with("/metrics")
        {
            path.clone()
        } else {
            format!("/api/v1{path}")
        };
        for (method, op) in [
            ("GET", item.get.is_some()),
            ("POST", item.post.is_some()),
            ("PUT", item.put.is_some()),
            ("DELETE", item.delete.is_some()),
            ("PATCH", item.patch.is_some()),
        ] {
            if op
                && rbac::lookup(
                    &reqwest::Method::from_bytes(method.as_bytes()).expect("m"),
                    &full,
                )
                .is_none()
            {
                missing.push(format!("{method} {full}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "API routes missing from the access table: {missing:?}"
    );
    // No duplicate rows.
    for (i, a) in RULES.iter().enumerate() {
        for b in &RULES[i + 1..] {
            assert!(
                !(a.method == b.method && a.path == b.path),
                "twice: {} {}",
                a.method,
                a.path
            );
        }
    }
}

#[tokio::test]
async fn docs_access_matrix_is_generated_from_the_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/access.md");
    let doc = std::fs::read_to_string(&path).expect("docs/access.md");
    let begin = "<!-- matrix:begin (generated from reconciler/src/auth/rbac.rs; UPDATE_DOCS=1 cargo test -p reconciler --test access) -->\n";
    let end = "<!-- matrix:end -->";
    let start = doc.find(begin).expect("begin marker") + begin.len();
    let stop = doc.find(end).expect("end marker");
    let generated = rbac::markdown_matrix();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        let updated = format!("{}{}{}", &doc[..start], generated, &doc[stop..]);
        std::fs::write(&path, updated).expect("write docs");
        return;
    }
    assert_eq!(
        &doc[start..stop],
        generated,
        "docs/access.md is out of date: UPDATE_DOCS=1 cargo test -p reconciler --test access"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_by_form_sets_a_cookie_for_pages_only_and_sign_in_is_audited() {
    let f = fixture(false, Limits::default()).await;
    let c = client();
    let base = format!("http://{}", f.addr);
    // Without a session the audit page sends to the sign-in form, keeping the way back.
    let r = c.get(format!("{base}/audit")).send().await.expect("get");
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login?next=%2Faudit");
    // An open redirect is not followed after signing in.
    let r = c
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("user", "matrix-auditor"),
                ("password", PASSWORD),
                ("next", "//evil.example/"),
            ])
            .expect("form"),
        )
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/");
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().expect("pair").to_owned();
    let r = c
        .get(format!("{base}/audit"))
        .header("cookie", &session)
        .send()
        .await
        .expect("audit");
    assert_eq!(r.status(), 200);
    let page = r.text().await.expect("body");
    assert!(
        page.contains("auth.login"),
        "the sign-in is in the audit log"
    );
    assert!(
        page.contains("Signed in as <strong>matrix-auditor</strong> (auditor)"),
        "the page says who is signed in"
    );
    // The cookie does not authenticate the API (no cross-site writes).
    let r = c
        .post(format!("{base}/api/v1/sync"))
        .header("cookie", &session)
        .send()
        .await
        .expect("sync");
    assert_eq!(r.status(), 401);
    let r = c
        .get(format!("{base}/api/v1/fleet"))
        .header("cookie", &session)
        .send()
        .await
        .expect("fleet");
    assert_eq!(r.status(), 401);
    // A wrong password shows the form again with 401.
    let r = c
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("user", "matrix-auditor"),
                ("password", "wrong password here"),
            ])
            .expect("form"),
        )
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 401);
    assert!(
        r.text()
            .await
            .expect("body")
            .contains("Invalid user name or password")
    );
    // A session token from the API works as a bearer token; a tampered one does not.
    let r = c
        .post(format!("{base}/api/v1/login"))
        .json(&serde_json::json!({"user": "matrix-operator", "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["roles"], serde_json::json!(["operator"]));
    let token = body["token"].as_str().expect("token").to_owned();
    let r = c
        .post(format!("{base}/api/v1/sync"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sync");
    assert_eq!(r.status(), 202);
    let mut tampered = token.clone();
    tampered.pop();
    let r = c
        .post(format!("{base}/api/v1/sync"))
        .bearer_auth(&tampered)
        .send()
        .await
        .expect("sync");
    assert_eq!(r.status(), 401);
    // Role changes apply to live sessions at once.
    f.store
        .unbind_role("user:matrix-operator", "cli")
        .await
        .expect("unbind");
    let r = c
        .post(format!("{base}/api/v1/sync"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sync");
    assert_eq!(r.status(), 403);
    // Disabled users' sessions stop.
    f.store
        .set_user_disabled("matrix-operator", true)
        .await
        .expect("disable");
    let r = c
        .get(format!("{base}/api/v1/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("whoami");
    assert_eq!(r.status(), 401);
    let outcomes: Vec<String> = f
        .store
        .audit_list(None, 1000)
        .await
        .expect("audit")
        .items
        .into_iter()
        .filter(|e| e.record.action == "auth.login")
        .map(|e| format!("{} {}", e.record.target, e.record.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            "matrix-auditor ok",
            "matrix-auditor denied",
            "matrix-operator ok"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_failures_are_limited_per_user_and_per_address() {
    let f = fixture(
        false,
        Limits {
            window: Duration::from_secs(600),
            per_user: 3,
            per_address: 6,
        },
    )
    .await;
    let c = client();
    let url = format!("http://{}/api/v1/login", f.addr);
    let login = |user: &'static str, password: &'static str| {
        c.post(&url)
            .json(&serde_json::json!({"user": user, "password": password}))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(
            login("matrix-viewer", "wrong wrong wrong")
                .await
                .expect("send")
                .status(),
            401
        );
    }
    // Over the user's limit, even the right password is refused, with Retry-After.
    let r = login("matrix-viewer", PASSWORD).await.expect("send");
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("header")
        .parse()
        .expect("secs");
    assert!(retry > 500 && retry <= 600, "{retry}");
    // Another user from the same address still gets in until the address's limit.
    assert_eq!(
        login("matrix-auditor", PASSWORD)
            .await
            .expect("send")
            .status(),
        200
    );
    for user in ["nobody-1", "nobody-2", "nobody-3"] {
        assert_eq!(
            login(user, "wrong wrong wrong")
                .await
                .expect("send")
                .status(),
            401
        );
    }
    // 6 failures from this address: everyone is refused from here.
    assert_eq!(
        login("matrix-admin", PASSWORD)
            .await
            .expect("send")
            .status(),
        429
    );
    let limited = f
        .store
        .audit_list(None, 1000)
        .await
        .expect("audit")
        .items
        .iter()
        .filter(|e| e.record.action == "auth.login" && e.record.outcome == "limited")
        .count();
    assert_eq!(limited, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_or_token_text_is_stored() {
    let f = fixture(false, Limits::default()).await;
    let c = client();
    let base = format!("http://{}", f.addr);
    let admin = &f.tokens["admin"].0;
    let secret_pw = "another very secret passphrase";
    let r = c
        .post(format!("{base}/api/v1/users"))
        .bearer_auth(admin)
        .json(&serde_json::json!({"name": "erin", "password": secret_pw, "role": "operator"}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), 201);
    let r = c
        .post(format!("{base}/api/v1/tokens"))
        .bearer_auth(admin)
        .json(&serde_json::json!({"label": "ci", "days": 7}))
        .send()
        .await
        .expect("token");
    assert_eq!(r.status(), 201);
    let created: serde_json::Value = r.json().await.expect("json");
    let new_token = created["token"].as_str().expect("text").to_owned();
    // The new token works and says who it is.
    let who: serde_json::Value = c
        .get(format!("{base}/api/v1/whoami"))
        .bearer_auth(&new_token)
        .send()
        .await
        .expect("whoami")
        .json()
        .await
        .expect("json");
    assert_eq!(who["user"], "matrix-admin");
    f.store.close().await;
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(f.dir.path()).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            bytes.extend(std::fs::read(&path).expect("read"));
        }
    }
    let hay = String::from_utf8_lossy(&bytes);
    for secret in [secret_pw, PASSWORD, new_token.as_str()] {
        assert!(
            !hay.contains(secret),
            "`{secret}` found in the database files"
        );
    }
    for (text, _) in f.tokens.values() {
        assert!(
            !hay.contains(text.as_str()),
            "a token's text is in the database"
        );
    }
    assert!(
        hay.contains("$argon2id$"),
        "passwords are stored as Argon2id hashes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_refused_with_the_apis_error_shape() {
    let f = fixture(false, Limits::default()).await;
    let c = client();
    let admin = &f.tokens["admin"].0;
    let url = format!("http://{}/api/v1/users", f.addr);
    for (body, says) in [
        ("{\"name\": \"x\",", "EOF"),
        (
            "{\"name\": \"x\", \"rights\": \"all\"}",
            "unknown field `rights`",
        ),
        ("{\"name\": 7}", "invalid type"),
    ] {
        let r = c
            .post(&url)
            .bearer_auth(admin)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 400, "{body}");
        let json: serde_json::Value = r.json().await.expect("a JSON error");
        assert_eq!(json["error"]["code"], "bad_request", "{json}");
        let message = json["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{body}: {message}");
    }
    // Nothing was created.
    assert_eq!(f.store.user("x").await.expect("read"), None);
}
