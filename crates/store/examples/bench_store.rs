//! Store benchmark: times the reconciler's bulk paths on SQLite or PostgreSQL and prints one
//! line per step.
//!
//! ```sh
//! cargo run --release -p store --example bench_store -- [--url URL] [--nodes N] [--commits C]
//! ```
//!
//! Without `--url` it uses a fresh SQLite file in a temp directory. With a PostgreSQL URL it
//! creates a database `store_bench_<pid>` on that server and drops it at the end.

use anyhow::{Context as _, Result, bail};
use sqlx::Connection as _;
use state::{
    DESIRED_FORMAT, DesiredResource, DesiredState, Ensure, FileSpec, ObservedState, Origin,
    PackageEnsure, PackageSpec, ResourceId, ResourceKind, Spec,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{AuditRecord, AuditVerdict, CommitRecord, NodeFilter, NodeUpsert, Store};

struct Args {
    url: Option<String>,
    nodes: usize,
    commits: usize,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        url: None,
        nodes: 10_000,
        commits: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => args.url = Some(value),
            "--nodes" => args.nodes = value.parse()?,
            "--commits" => args.commits = value.parse()?,
            other => bail!("unknown option {other}"),
        }
    }
    Ok(args)
}

fn resource(kind: ResourceKind, name: &str, spec: Spec) -> DesiredResource {
    DesiredResource {
        id: ResourceId::new(kind, name),
        spec,
        requires: Vec::new(),
        notify: Vec::new(),
        origin: Origin {
            role: "base".into(),
            file: "roles/base.yaml".into(),
            line: 1,
        },
    }
}

/// A node's state at commit `c`: 20 packages and 10 files shared by its role (40 roles),
/// plus one file naming the host, so every node has a document of its own (the worst case
/// for content addressing); one role's files change at each commit.
fn desired_state(node: usize, c: usize) -> DesiredState {
    let role = node % 40;
    let mut resources = Vec::new();
    for p in 0..20 {
        let name = format!("pkg-{role}-{p}");
        resources.push(resource(
            ResourceKind::Package,
            &name.clone(),
            Spec::Package(PackageSpec {
                name,
                ensure: PackageEnsure::Present,
            }),
        ));
    }
    let version = if role == c % 40 { c } else { 0 };
    for f in 0..11 {
        let path = format!("/etc/app{role}/file{f}.conf");
        let content = if f == 10 {
            format!("hostname = node{node:05}\n")
        } else {
            format!(
                "# role {role} file {f} version {version}\n{}",
                "setting = value\n".repeat(50)
            )
        };
        resources.push(resource(
            ResourceKind::File,
            &path.clone(),
            Spec::File(FileSpec {
                path,
                ensure: Ensure::Present,
                sha256: Some(state::digest::sha256(content.as_bytes())),
                content: Some(Arc::from(content)),
                mode: Some("0644".into()),
                owner: None,
                group: None,
                sensitive: false,
            }),
        ));
    }
    DesiredState {
        format: DESIRED_FORMAT,
        node: format!("node{node:05}"),
        commit: None,
        labels: BTreeMap::from([("role".to_owned(), format!("r{role}"))]),
        resources: resources.into_iter().map(Arc::new).collect(),
    }
}

fn line(step: &str, count: usize, took: Duration) {
    let per_second = count as f64 / took.as_secs_f64().max(1e-9);
    println!(
        "{step:<44} {count:>7} {:>10.1} ms {per_second:>12.0} /s",
        took.as_secs_f64() * 1e3
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let dir = tempfile::tempdir()?;
    let (url, admin) = match &args.url {
        None => (
            format!("sqlite://{}/bench.db?mode=rwc", dir.path().display()),
            None,
        ),
        Some(url) if url.starts_with("postgres") => {
            let name = format!("store_bench_{}", std::process::id());
            let mut admin = sqlx::PgConnection::connect(url).await?;
            sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
                .execute(&mut admin)
                .await?;
            let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
            (format!("{base}/{name}"), Some((admin, name)))
        }
        Some(url) => (url.clone(), None),
    };
    let result = run(&url, &args).await;
    if let Some((mut admin, name)) = admin {
        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
    }
    result
}

async fn run(url: &str, args: &Args) -> Result<()> {
    let store = Store::open(url).await?;
    println!(
        "backend: {:?}, {} nodes, {} commits",
        store.backend_kind(),
        args.nodes,
        args.commits
    );
    println!("{:<44} {:>7} {:>13} {:>14}", "step", "rows", "time", "rate");

    let nodes: Vec<NodeUpsert> = (0..args.nodes)
        .map(|i| NodeUpsert {
            name: format!("node{i:05}"),
            labels: BTreeMap::from([
                ("role".to_owned(), format!("r{}", i % 40)),
                ("dc".to_owned(), format!("dc{}", i % 3)),
            ]),
            in_inventory: true,
        })
        .collect();
    let t = Instant::now();
    store.upsert_nodes(&nodes).await?;
    line("upsert_nodes (one batch)", nodes.len(), t.elapsed());

    for c in 0..args.commits {
        let sha = format!("c{c:039}");
        store
            .record_commit(&CommitRecord {
                sha: sha.clone(),
                ok: true,
                diagnostics: serde_json::json!([]),
                compiled_at: chrono::Utc::now(),
            })
            .await?;
        let states: Vec<DesiredState> = (0..args.nodes).map(|n| desired_state(n, c)).collect();
        let t = Instant::now();
        let summary = store.set_desired(&sha, &states).await?;
        line(
            &format!(
                "set_desired commit {c} ({} new documents)",
                summary.new_blobs
            ),
            states.len(),
            t.elapsed(),
        );
    }

    let last = format!("c{:039}", args.commits.saturating_sub(1));
    let reads = args.nodes.min(1000);
    let t = Instant::now();
    for i in 0..reads {
        let node = format!("node{:05}", (i * 7919) % args.nodes);
        store.desired_for(&last, &node).await?.context("stored")?;
    }
    line("desired_for (one at a time)", reads, t.elapsed());

    let t = Instant::now();
    for i in 0..reads {
        let desired = desired_state((i * 7919) % args.nodes, 0);
        store
            .record_observed(&ObservedState::converged(&desired))
            .await?;
    }
    line("record_observed (one at a time)", reads, t.elapsed());

    let t = Instant::now();
    let mut listed = 0;
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list_nodes(&NodeFilter::default(), after.as_deref(), 1000)
            .await?;
        listed += page.items.len();
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    line(
        "list_nodes (pages of 1000, with labels)",
        listed,
        t.elapsed(),
    );

    let appends = 1000;
    let t = Instant::now();
    for i in 0..appends {
        store
            .audit_append(&AuditRecord {
                actor: "reconciler".into(),
                action: "apply.start".into(),
                target: format!("node{i:05}"),
                commit: Some(last.clone()),
                outcome: "ok".into(),
                details: serde_json::json!({"digest": format!("sha256:{i:064}")}),
            })
            .await?;
    }
    line("audit_append (one writer)", appends, t.elapsed());

    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..125 {
                store
                    .audit_append(&AuditRecord {
                        actor: format!("writer{w}"),
                        action: "plan.approve".into(),
                        target: format!("node{i:05}"),
                        commit: None,
                        outcome: "ok".into(),
                        details: serde_json::json!({}),
                    })
                    .await?;
            }
            Ok::<(), store::StoreError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    line("audit_append (8 concurrent writers)", 1000, t.elapsed());

    let t = Instant::now();
    let verdict = store.audit_verify().await?;
    let AuditVerdict::Intact { entries, .. } = verdict else {
        bail!("the audit chain is broken: {verdict:?}");
    };
    line("audit_verify", usize::try_from(entries)?, t.elapsed());
    store.close().await;
    Ok(())
}
