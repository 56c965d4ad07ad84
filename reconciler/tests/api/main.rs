//! The REST API on a real socket over a real store (SQLite, and PostgreSQL when
//! DATABASE_URL is set): every route's status and body, every body against the schema the
//! OpenAPI document declares for it, every documented route exercised, JSON errors, metrics
//! in the Prometheus text format, and pagination over 2,500 nodes.

mod support;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use state::{
    Action, Cause, Change, DESIRED_FORMAT, DesiredResource, DesiredState, ObservedState, Origin,
    PackageEnsure, PackageSpec, PropertyChange, ResourceId, ResourceKind, Spec,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use store::{AuditRecord, CommitRecord, NodeUpsert, Outcome, ResourceResult, RunStatus, Store};
use support::{FakeLive, Reply, each_backend, get, serve};

fn node(name: &str, pairs: &[(&str, &str)]) -> NodeUpsert {
    NodeUpsert {
        name: name.into(),
        labels: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        in_inventory: true,
    }
}

fn package(name: &str) -> DesiredResource {
    DesiredResource {
        id: ResourceId::new(ResourceKind::Package, name),
        spec: Spec::Package(PackageSpec {
            name: name.into(),
            ensure: PackageEnsure::Present,
        }),
        requires: Vec::new(),
        notify: Vec::new(),
        origin: Origin {
            role: "base".into(),
            file: "roles/base.yaml".into(),
            line: 9,
        },
    }
}

fn commit(sha: &str, at: &str, errors: u64, warnings: u64) -> CommitRecord {
    CommitRecord {
        sha: sha.into(),
        ok: errors == 0,
        diagnostics: json!({
            "format": 1, "ok": errors == 0, "errors": errors, "warnings": warnings,
            "diagnostics": [{"code": "W001", "severity": "warning", "message": "unused var",
                             "file": "nodes/web-1.yaml", "line": 3, "column": 1}]
        }),
        compiled_at: DateTime::parse_from_rfc3339(at)
            .expect("a time")
            .with_timezone(&Utc),
    }
}

fn drift(path: &str) -> Change {
    Change {
        id: ResourceId::new(ResourceKind::File, path),
        action: Action::Update,
        cause: Cause::Drift,
        properties: vec![PropertyChange {
            name: "mode".into(),
            before: Some("0644".into()),
            after: Some("0640".into()),
            cause: Cause::Drift,
        }],
        diff: None,
        destructive: false,
        sensitive: false,
        triggered_by: Vec::new(),
        unobserved: false,
    }
}

async fn run(
    store: &Store,
    node: &str,
    sha: &str,
    status: RunStatus,
    results: &[ResourceResult],
) -> i64 {
    let id = store
        .start_apply_run(node, sha, "sha256:abc")
        .await
        .expect("start");
    store
        .finish_apply_run(id, status, Some("done"), results)
        .await
        .expect("finish");
    id
}

const NAMES: [&str; 5] = ["app-1", "db-1", "new-1", "web-1", "web-2"];

/// A small fleet with one node in each state but `stale`: new-1 unknown (never reported),
/// db-1 failed, web-1 drifted, web-2 pending (approved at c2, applied c1), app-1 converged.
/// Returns the id of web-1's run.
async fn seed(store: &Store) -> i64 {
    store
        .upsert_nodes(&[
            node("web-1", &[("role", "web"), ("env", "prod")]),
            node("web-2", &[("role", "web"), ("env", "staging")]),
            node("db-1", &[("role", "db"), ("env", "prod")]),
            node("new-1", &[("role", "web"), ("env", "prod")]),
            node("app-1", &[("role", "app"), ("env", "prod")]),
        ])
        .await
        .expect("nodes");
    for name in ["web-1", "web-2", "db-1", "app-1"] {
        let mut observed = ObservedState::new(name);
        observed.observed_at = Some("2026-11-24T17:00:00Z".into());
        observed
            .facts
            .insert("os".into(), json!({"id": "centos", "version": "9"}));
        let pkg = package("nginx");
        observed.resources.insert(pkg.id.clone(), pkg.spec.clone());
        store.record_observed(&observed).await.expect("observed");
    }
    store
        .record_commit(&commit("c1", "2026-11-24T10:00:00Z", 0, 1))
        .await
        .expect("c1");
    store
        .record_commit(&commit("c2", "2026-11-24T11:00:00Z", 0, 0))
        .await
        .expect("c2");
    for sha in ["c1", "c2"] {
        let states: Vec<DesiredState> = NAMES
            .iter()
            .map(|n| DesiredState {
                format: DESIRED_FORMAT,
                node: (*n).into(),
                commit: None,
                labels: BTreeMap::new(),
                resources: vec![Arc::new(package("nginx"))],
            })
            .collect();
        store.set_desired(sha, &states).await.expect("desired");
    }
    for (n, sha) in [
        ("web-1", "c1"),
        ("web-2", "c2"),
        ("db-1", "c1"),
        ("app-1", "c1"),
    ] {
        store
            .approve_plan(sha, n, &format!("sha256:{n}-{sha}"), "alice")
            .await
            .expect("approve");
    }
    let results = [
        ResourceResult {
            resource: ResourceId::new(ResourceKind::Package, "nginx"),
            action: Some(Action::Create),
            outcome: Outcome::Changed,
            reason: None,
            duration_ms: 1200,
        },
        ResourceResult {
            resource: ResourceId::new(ResourceKind::File, "/etc/motd"),
            action: None,
            outcome: Outcome::Unchanged,
            reason: None,
            duration_ms: 2,
        },
    ];
    let web1_run = run(store, "web-1", "c1", RunStatus::Applied, &results).await;
    run(store, "web-2", "c1", RunStatus::Applied, &results).await;
    run(store, "app-1", "c1", RunStatus::Applied, &results).await;
    let failed = [ResourceResult {
        resource: ResourceId::new(ResourceKind::Package, "postgresql"),
        action: Some(Action::Create),
        outcome: Outcome::Failed,
        reason: Some("dnf: no match".into()),
        duration_ms: 900,
    }];
    run(store, "db-1", "c1", RunStatus::Failed, &failed).await;
    for path in ["/etc/motd", "/etc/issue"] {
        store
            .record_drift_event("web-1", Some("c1"), &drift(path))
            .await
            .expect("drift");
    }
    for (i, action) in ["commit.compile", "plan.approve", "apply.start"]
        .iter()
        .enumerate()
    {
        store
            .audit_append(&AuditRecord {
                actor: "alice".into(),
                action: (*action).into(),
                target: "fleet".into(),
                commit: Some("c1".into()),
                outcome: "ok".into(),
                details: json!({"n": i}),
            })
            .await
            .expect("audit");
    }
    web1_run
}

fn live() -> Arc<FakeLive> {
    Arc::new(FakeLive {
        connected: vec!["web-1".into(), "db-1".into()],
        commit: Some("c2".into()),
        queue: 3,
        ..FakeLive::default()
    })
}

/// Checks responses against the OpenAPI document served by the router.
struct Contract {
    doc: Value,
    /// Path templates requested so far.
    seen: BTreeSet<String>,
}

impl Contract {
    async fn load(addr: SocketAddr) -> Contract {
        let reply = get(addr, "/api/openapi.json").await;
        assert_eq!(reply.status, 200);
        assert!(reply.content_type.starts_with("application/json"));
        let doc = reply.json();
        assert!(
            doc["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1")),
            "OpenAPI 3.1: {}",
            doc["openapi"]
        );
        Contract {
            doc,
            seen: BTreeSet::new(),
        }
    }

    /// `GET path` (documented as `template`) and checks the reply's status and its body
    /// against the schema the document declares for that status.
    async fn get(&mut self, addr: SocketAddr, template: &str, path: &str, status: u16) -> Reply {
        let reply = get(addr, path).await;
        assert_eq!(reply.status, status, "GET {path}: {}", reply.body);
        self.seen.insert(template.to_owned());
        let operation = &self.doc["paths"][template]["get"];
        assert!(operation.is_object(), "`{template}` is not in the document");
        let response = &operation["responses"][status.to_string()];
        assert!(
            response.is_object(),
            "GET {template}: status {status} is not documented"
        );
        let content = response["content"].as_object().expect("a documented body");
        let media = reply.content_type.split(';').next().unwrap_or("").trim();
        let schema = content
            .iter()
            .find(|(declared, _)| declared.split(';').next().unwrap_or("").trim() == media)
            .map(|(_, c)| &c["schema"])
            .unwrap_or_else(|| panic!("GET {template}: `{media}` not documented: {content:?}"));
        if media == "application/json" {
            self.validate(template, schema, &reply.json());
        }
        reply
    }

    /// Validates `instance` against `schema`, its `$ref`s resolved in the document's
    /// components.
    fn validate(&self, what: &str, schema: &Value, instance: &Value) {
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "allOf": [schema],
            "components": self.doc["components"],
        });
        let validator = jsonschema::validator_for(&root).expect("a valid schema");
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what}: body does not match its schema: {errors:#?}\nbody: {instance:#}\nschema: {schema:#}"
        );
    }

    /// Every documented read route was requested. The routes that need a signed-in caller
    /// (tags `access` and `control`) are checked against the document, as every caller,
    /// by `tests/access.rs` (the access matrix).
    fn all_documented_routes_seen(&self) {
        let documented: BTreeSet<String> = self.doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .filter(|(_, item)| {
                item.as_object().is_some_and(|ops| {
                    ops.values().any(|op| {
                        op["tags"].as_array().is_some_and(|tags| {
                            !tags.iter().any(|t| t == "access" || t == "control")
                        })
                    })
                })
            })
            .map(|(path, _)| path.clone())
            .collect();
        assert_eq!(
            documented, self.seen,
            "documented routes vs routes exercised"
        );
    }
}

#[tokio::test]
async fn every_route_answers_as_its_openapi_document_says() {
    each_backend(|store| async move {
        let web1_run = seed(&store).await;
        let addr = serve(store, live()).await;
        let mut api = Contract::load(addr).await;

        let fleet = api.get(addr, "/api/v1/fleet", "/api/v1/fleet", 200).await.json();
        assert_eq!(fleet["nodes"], 5);
        assert_eq!(
            fleet["states"],
            json!({"unknown": 1, "failed": 1, "stale": 0, "drifted": 1, "pending": 1, "converged": 1})
        );
        assert_eq!(fleet["current_commit"]["sha"], "c2");
        assert_eq!(fleet["latest_commit"]["sha"], "c2");
        assert_eq!(fleet["connected_agents"], 2);
        assert_eq!(fleet["queue_depth"], 3);

        let nodes = api.get(addr, "/api/v1/nodes", "/api/v1/nodes", 200).await.json();
        let states: Vec<(String, String)> = nodes["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|n| (n["name"].as_str().unwrap_or("").to_owned(), n["state"].as_str().unwrap_or("").to_owned()))
            .collect();
        let expected: Vec<(String, String)> = [
            ("app-1", "converged"),
            ("db-1", "failed"),
            ("new-1", "unknown"),
            ("web-1", "drifted"),
            ("web-2", "pending"),
        ]
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
        assert_eq!(states, expected);
        assert!(nodes["next"].is_null());

        let prod_web = api
            .get(addr, "/api/v1/nodes", "/api/v1/nodes?label=role%3Dweb&label=env=prod", 200)
            .await
            .json();
        let names: Vec<&str> = prod_web["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|n| n["name"].as_str())
            .collect();
        assert_eq!(names, ["new-1", "web-1"]);
        let failed = api
            .get(addr, "/api/v1/nodes", "/api/v1/nodes?state=failed", 200)
            .await
            .json();
        assert_eq!(failed["items"][0]["name"], "db-1");
        assert_eq!(failed["items"].as_array().map(Vec::len), Some(1));
        assert_eq!(failed["items"][0]["last_run"]["status"], "failed");

        let web1 = api
            .get(addr, "/api/v1/nodes/{name}", "/api/v1/nodes/web-1", 200)
            .await
            .json();
        assert_eq!(web1["state"], "drifted");
        assert_eq!(web1["labels"], json!({"env": "prod", "role": "web"}));
        assert_eq!(web1["facts"]["os"]["id"], "centos");
        assert!(web1["observed"]["resources"].is_object(), "{web1:#}");
        assert_eq!(web1["latest_run"]["id"], web1_run);
        assert_eq!(web1["latest_run"]["results"][0]["resource"], "package:nginx");
        assert_eq!(web1["latest_run"]["results"][0]["outcome"], "changed");
        assert_eq!(web1["latest_run"]["results"][1]["action"], Value::Null);
        assert_eq!(web1["recent_drift"][0]["resource"], "file:/etc/issue");
        assert_eq!(web1["drift_since_applied"], 2);
        assert_eq!(web1["approval"]["digest"], "sha256:web-1-c1");
        let unknown = api
            .get(addr, "/api/v1/nodes/{name}", "/api/v1/nodes/new-1", 200)
            .await
            .json();
        assert_eq!(unknown["state"], "unknown");
        assert!(unknown["observed"].is_null() && unknown["latest_run"].is_null());

        let runs = api
            .get(addr, "/api/v1/nodes/{name}/runs", "/api/v1/nodes/db-1/runs?limit=5", 200)
            .await
            .json();
        assert_eq!(runs["items"][0]["results"][0]["reason"], "dnf: no match");
        assert!(runs["next"].is_null());
        let web1_runs = api
            .get(addr, "/api/v1/nodes/{name}/runs", "/api/v1/nodes/web-1/runs?limit=1", 200)
            .await
            .json();
        assert_eq!(web1_runs["items"][0]["id"], web1_run);
        let older = api
            .get(
                addr,
                "/api/v1/nodes/{name}/runs",
                &format!("/api/v1/nodes/web-1/runs?before={web1_run}"),
                200,
            )
            .await
            .json();
        assert_eq!(older["items"].as_array().map(Vec::len), Some(0));
        let drift = api
            .get(addr, "/api/v1/nodes/{name}/drift", "/api/v1/nodes/web-1/drift?limit=1", 200)
            .await
            .json();
        assert_eq!(drift["items"][0]["resource"], "file:/etc/motd");
        assert_eq!(drift["items"][0]["properties"][0]["after"], "0640");
        let after = drift["next"].as_i64().expect("a next page");
        let rest = api
            .get(
                addr,
                "/api/v1/nodes/{name}/drift",
                &format!("/api/v1/nodes/web-1/drift?after={after}"),
                200,
            )
            .await
            .json();
        assert_eq!(rest["items"][0]["resource"], "file:/etc/issue");
        assert!(rest["next"].is_null());

        let commits = api.get(addr, "/api/v1/commits", "/api/v1/commits?limit=1", 200).await.json();
        assert_eq!(commits["items"][0]["sha"], "c2");
        assert_eq!(commits["next"], "c2");
        let older = api
            .get(addr, "/api/v1/commits", "/api/v1/commits?after=c2", 200)
            .await
            .json();
        assert_eq!(older["items"][0]["sha"], "c1");
        assert_eq!(older["items"][0]["warnings"], 1);
        let c1 = api
            .get(addr, "/api/v1/commits/{sha}", "/api/v1/commits/c1", 200)
            .await
            .json();
        assert_eq!(c1["ok"], true);
        assert_eq!(c1["diagnostics"]["diagnostics"][0]["code"], "W001");

        let plans = api.get(addr, "/api/v1/plans", "/api/v1/plans?commit=c1", 200).await.json();
        let approved: Vec<(&str, &str)> = plans["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|a| (a["node"].as_str().unwrap_or(""), a["digest"].as_str().unwrap_or("")))
            .collect();
        assert_eq!(
            approved,
            [("app-1", "sha256:app-1-c1"), ("db-1", "sha256:db-1-c1"), ("web-1", "sha256:web-1-c1")]
        );

        let one = api
            .get(addr, "/api/v1/runs/{id}", &format!("/api/v1/runs/{web1_run}"), 200)
            .await
            .json();
        assert_eq!(one["node"], "web-1");
        assert_eq!(one["results"].as_array().map(Vec::len), Some(2));

        let audit = api.get(addr, "/api/v1/audit", "/api/v1/audit?limit=2", 200).await.json();
        assert_eq!(audit["items"][0]["seq"], 1);
        assert_eq!(audit["items"][1]["prev_hash"], audit["items"][0]["hash"]);
        assert_eq!(audit["next"], 2);
        let tail = api.get(addr, "/api/v1/audit", "/api/v1/audit?after=2", 200).await.json();
        assert_eq!(tail["items"][0]["action"], "apply.start");
        let verify = api
            .get(addr, "/api/v1/audit/verify", "/api/v1/audit/verify", 200)
            .await
            .json();
        assert_eq!(verify["intact"], true);
        assert_eq!(verify["entries"], 3);

        let health = api.get(addr, "/healthz", "/healthz", 200).await.json();
        assert_eq!(health["status"], "ok");
        let ready = api.get(addr, "/readyz", "/readyz", 200).await.json();
        assert_eq!(ready["status"], "ready");
        let metrics = api.get(addr, "/metrics", "/metrics", 200).await;
        assert!(metrics.body.contains("centossrv_connected_agents 2"), "{}", metrics.body);

        api.all_documented_routes_seen();
    })
    .await;
}

#[tokio::test]
async fn errors_are_json_with_stable_codes_and_name_the_parameter() {
    each_backend(|store| async move {
        seed(&store).await;
        let live = live();
        let addr = serve(store, live.clone()).await;
        let mut api = Contract::load(addr).await;
        for (template, path, status, code, mention) in [
            (
                "/api/v1/nodes/{name}",
                "/api/v1/nodes/nobody",
                404,
                "not_found",
                "nobody",
            ),
            (
                "/api/v1/nodes/{name}/runs",
                "/api/v1/nodes/nobody/runs",
                404,
                "not_found",
                "nobody",
            ),
            (
                "/api/v1/nodes/{name}/drift",
                "/api/v1/nodes/nobody/drift",
                404,
                "not_found",
                "nobody",
            ),
            (
                "/api/v1/commits/{sha}",
                "/api/v1/commits/deadbeef",
                404,
                "not_found",
                "deadbeef",
            ),
            (
                "/api/v1/runs/{id}",
                "/api/v1/runs/999999",
                404,
                "not_found",
                "999999",
            ),
            (
                "/api/v1/runs/{id}",
                "/api/v1/runs/abc",
                400,
                "bad_request",
                "`id`",
            ),
            (
                "/api/v1/plans",
                "/api/v1/plans?commit=zzz",
                404,
                "not_found",
                "zzz",
            ),
            (
                "/api/v1/plans",
                "/api/v1/plans",
                400,
                "bad_request",
                "`commit`",
            ),
            (
                "/api/v1/nodes",
                "/api/v1/nodes?limit=0",
                400,
                "bad_request",
                "`limit`",
            ),
            (
                "/api/v1/nodes",
                "/api/v1/nodes?limit=1001",
                400,
                "bad_request",
                "`limit`",
            ),
            (
                "/api/v1/nodes",
                "/api/v1/nodes?limit=ten",
                400,
                "bad_request",
                "`limit`",
            ),
            (
                "/api/v1/nodes",
                "/api/v1/nodes?label=role",
                400,
                "bad_request",
                "`label`",
            ),
            (
                "/api/v1/nodes",
                "/api/v1/nodes?state=happy",
                400,
                "bad_request",
                "`state`",
            ),
            (
                "/api/v1/nodes",
                "/api/v1/nodes?colour=red",
                400,
                "bad_request",
                "`colour`",
            ),
            (
                "/api/v1/nodes",
                "/api/v1/nodes?after=a&after=b",
                400,
                "bad_request",
                "`after`",
            ),
            (
                "/api/v1/audit",
                "/api/v1/audit?after=-1",
                400,
                "bad_request",
                "`after`",
            ),
            (
                "/api/v1/nodes/{name}/drift",
                "/api/v1/nodes/web-1/drift?after=x",
                400,
                "bad_request",
                "`after`",
            ),
        ] {
            let body = api.get(addr, template, path, status).await.json();
            assert_eq!(body["error"]["code"], code, "{path}: {body}");
            let message = body["error"]["message"].as_str().expect("a message");
            assert!(
                message.contains(mention),
                "{path}: `{message}` should name {mention}"
            );
        }

        let unrouted = get(addr, "/api/v1/nothing-here").await;
        assert_eq!(unrouted.status, 404);
        assert_eq!(unrouted.json()["error"]["code"], "not_found");

        live.not_ready.store(true, Ordering::SeqCst);
        let not_ready = api.get(addr, "/readyz", "/readyz", 503).await.json();
        assert_eq!(not_ready["error"]["code"], "not_ready");
        assert!(
            not_ready["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("engine"))
        );
        let health = api.get(addr, "/healthz", "/healthz", 200).await;
        assert_eq!(health.status, 200, "liveness does not depend on readiness");
    })
    .await;
}

#[tokio::test]
async fn readiness_fails_when_the_store_does_not_answer() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = Store::open_data_dir(dir.path()).await.expect("store");
    let addr = serve(store.clone(), live()).await;
    assert_eq!(get(addr, "/readyz").await.status, 200);
    store.close().await;
    let reply = get(addr, "/readyz").await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.json()["error"]["code"], "not_ready");
    let internal = get(addr, "/api/v1/fleet").await;
    assert_eq!(internal.status, 500);
    let body = internal.json();
    assert_eq!(body["error"]["code"], "internal");
    assert!(
        !body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("pool"),
        "no detail leaks: {body}"
    );
}

/// Strict check of the text format: every line a HELP, TYPE, UNIT or EOF comment or a
/// `name{labels} value` sample; `# EOF` last.
fn check_exposition(text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "OpenMetrics ends with # EOF");
    for line in &lines {
        if let Some(comment) = line.strip_prefix("# ") {
            let kind = comment.split(' ').next().unwrap_or("");
            assert!(
                ["HELP", "TYPE", "UNIT", "EOF"].contains(&kind),
                "bad comment `{line}`"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample `{line}`"));
        assert!(value.parse::<f64>().is_ok(), "bad value in `{line}`");
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in `{line}`"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unterminated labels in `{line}`");
        }
    }
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_every_metric() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = Store::open_data_dir(dir.path()).await.expect("store");
    let addr = serve(store, live()).await;
    let reply = get(addr, "/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .content_type
            .starts_with("application/openmetrics-text"),
        "{}",
        reply.content_type
    );
    check_exposition(&reply.body);
    let scrape = prometheus_parse::Scrape::parse(reply.body.lines().map(|l| Ok(l.to_owned())))
        .expect("parses as Prometheus text");
    let names: BTreeSet<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    for name in [
        "centossrv_connected_agents",
        "centossrv_plan_duration_seconds_count",
        "centossrv_apply_duration_seconds_count",
        "centossrv_drift_events_total",
        "centossrv_engine_queue_depth",
        "centossrv_commits_total",
        "centossrv_frames_rejected_total",
    ] {
        assert!(names.contains(name), "no {name} in {names:?}");
    }
    let queue = scrape
        .samples
        .iter()
        .find(|s| s.metric == "centossrv_engine_queue_depth")
        .expect("queue depth");
    assert!(
        matches!(queue.value, prometheus_parse::Value::Gauge(v) if v == 3.0),
        "{queue:?}"
    );
}

#[tokio::test]
async fn pages_return_every_one_of_2500_nodes_exactly_once() {
    each_backend(|store| async move {
        let nodes: Vec<NodeUpsert> = (0..2500)
            .map(|i| {
                let rack = format!("r{}", i % 3);
                node(&format!("node-{i:05}"), &[("rack", rack.as_str())])
            })
            .collect();
        store.upsert_nodes(&nodes).await.expect("nodes");
        let addr = serve(store, live()).await;
        for (query, expected) in [("limit=1000", 2500), ("limit=333&label=rack=r1", 833)] {
            let mut seen = BTreeSet::new();
            let mut pages = 0;
            let mut path = format!("/api/v1/nodes?{query}");
            loop {
                let reply = get(addr, &path).await;
                assert_eq!(reply.status, 200, "{}", reply.body);
                let page = reply.json();
                pages += 1;
                for n in page["items"].as_array().expect("items") {
                    let name = n["name"].as_str().expect("a name").to_owned();
                    assert!(seen.insert(name.clone()), "{name} returned twice");
                }
                match page["next"].as_str() {
                    Some(next) => path = format!("/api/v1/nodes?{query}&after={next}"),
                    None => break,
                }
            }
            assert_eq!(seen.len(), expected, "{query}");
            assert!(pages >= 3, "{query}: {pages} pages");
        }
    })
    .await;
}
