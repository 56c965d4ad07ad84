//! Benchmark of the plan pipeline: compile base and head, plan every node against its
//! observed state, group change sets, render Markdown, JSON and text.
//!
//!     cargo run --release -p report --example bench_plan -- [--sizes 1000,10000,50000] [--resources 200]
//!
//! The synthetic fleet: N nodes in 3 data centers, 20 roles selecting every node with
//! `resources/20` resources each (files with inline content, templated files, packages,
//! services, sysctls). Head changes one template and bumps one package; 10% of the nodes
//! have a hand-edited file (drift). Observed states are "converged on base" plus the drift.

use model::Snapshot;

// The allocator `centossrv` uses (reconciler/src/main.rs), so that the figures are its.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use state::{ObservedState, Spec};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

const ROLES: usize = 20;

fn fleet(nodes: usize, resources: usize, head: bool) -> Snapshot {
    let mut s = Snapshot::new(Some(if head { "h".repeat(40) } else { "b".repeat(40) }));
    for i in 0..nodes {
        let dc = ["fra1", "ams1", "lon1"][i % 3];
        s.insert(
            format!("nodes/n{i:06}.yaml"),
            format!(
                "apiVersion: centossrv.io/v1\nkind: Node\nmetadata:\n  name: n{i:06}\n  labels: {{tier: app, dc: {dc}}}\nspec:\n  address: 10.{}.{}.{}\n  vars: {{workers: {}}}\n",
                i / 65536,
                (i / 256) % 256,
                i % 256,
                1 + i % 8
            )
            .into_bytes(),
        );
    }
    let per_role = resources / ROLES;
    for r in 0..ROLES {
        let mut role = format!(
            "apiVersion: centossrv.io/v1\nkind: Role\nmetadata: {{name: role-{r:02}}}\nspec:\n  selector:\n    matchLabels: {{tier: app}}\n  vars: {{port: {}}}\n  resources:\n",
            8000 + r
        );
        for k in 0..per_role {
            match k % 5 {
                0 => {
                    let version = if head && r == 0 && k == 0 {
                        "2.0-1.el9"
                    } else {
                        "1.0-1.el9"
                    };
                    let _ = write!(
                        role,
                        "    - package: pkg-{r}-{k}\n      version: \"{version}\"\n"
                    );
                }
                1 => {
                    let _ = write!(
                        role,
                        "    - file: /etc/r{r}/t{k}.conf\n      template: files/r{r}.conf.j2\n      mode: \"0644\"\n      notify: [service:svc-{r}]\n"
                    );
                }
                2 => {
                    let _ = write!(
                        role,
                        "    - file: /etc/r{r}/s{k}.conf\n      content: |\n        # static file {k} of role {r}\n        key{k} = value{k}\n      mode: \"0640\"\n"
                    );
                }
                3 => {
                    let _ = write!(role, "    - sysctl: net.r{r}.k{k}\n      value: {k}\n");
                }
                _ => {
                    let _ = write!(
                        role,
                        "    - directory: /srv/r{r}/d{k}\n      mode: \"0755\"\n"
                    );
                }
            }
        }
        let _ = write!(role, "    - service: svc-{r}\n      enabled: true\n");
        s.insert(format!("roles/role-{r:02}.yaml"), role.into_bytes());
        let listen = if head && r == 1 {
            "0.0.0.0"
        } else {
            "127.0.0.1"
        };
        s.insert(
            format!("files/r{r}.conf.j2"),
            format!("# role {r}\nlisten = {listen}:{{{{ port }}}}\nworkers = {{{{ workers }}}}\n\n\n\n\nnode = {{{{ node.name }}}}\n").into_bytes(),
        );
    }
    s
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// User plus system CPU time of this process so far (all threads), in ms.
fn cpu_ms() -> f64 {
    // Fields 14 and 15 of /proc/self/stat, in clock ticks (100 per second on Linux); the
    // command name (field 2) is in parentheses and may contain spaces.
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
            Some((ticks(11)? + ticks(12)?) * 10.0)
        })
        .unwrap_or(0.0)
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let sizes: Vec<usize> = arg("--sizes")
        .unwrap_or_else(|| "1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let resources: usize = arg("--resources")
        .and_then(|r| r.parse().ok())
        .unwrap_or(200);
    println!(
        "| nodes | resources/node | compile base+head ms | plan ms | change sets ms | render md+json+text ms | total ms | CPU ms | change sets | md chars | peak RSS MB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for nodes in sizes {
        let base_snap = fleet(nodes, resources, false);
        let head_snap = fleet(nodes, resources, true);

        let cpu_before = cpu_ms();
        let t = Instant::now();
        // Both revisions from their snapshots, at the same time (as `centossrv plan` does).
        let (head, base) = report::fleet::compile_revisions(&head_snap, Some(&base_snap));
        let base = base.expect("base compiled");
        let compile_ms = ms(t);
        let cpu_compile = cpu_ms() - cpu_before;
        assert!(
            !head.has_errors(),
            "{:?}",
            &head.diagnostics[..head.diagnostics.len().min(3)]
        );
        let per_node = head
            .model
            .desired()
            .next()
            .map_or(0, |(_, d)| d.resources.len());

        // Observed: converged on base, 10% with a hand-edited static file (not timed: the
        // agents' work).
        let drifted: state::ResourceId = "file:/etc/r0/s2.conf".parse().expect("id");
        let mut observed = BTreeMap::new();
        for (i, (name, d)) in base.model.desired().enumerate() {
            let mut o = ObservedState::converged(d);
            if i.is_multiple_of(10)
                && let Some(Spec::File(f)) = o.resources.get_mut(&drifted)
            {
                let text = "edited by hand\n";
                f.content = Some(text.into());
                f.sha256 = Some(state::digest::sha256(text.as_bytes()));
            }
            observed.insert(name.to_owned(), o);
        }

        let cpu_before = cpu_ms();
        let t = Instant::now();
        let plans = report::fleet::plan_fleet(&head, Some(&base), &observed);
        let plan_ms = ms(t);

        let t = Instant::now();
        let labels = report::fleet::labels(&head);
        let built = report::build(report::ReportInput {
            head: head.model.commit.as_deref(),
            base: base.model.commit.as_deref(),
            pr: Some(1),
            plans: &plans,
            labels: &labels,
            diagnostics: &head.diagnostics,
            link: None,
        });
        let group_ms = ms(t);

        let t = Instant::now();
        let md = report::markdown(&built, report::Budget::GitHub);
        let json = report::json::json(&built);
        let text = report::text::text(&built, false);
        let render_ms = ms(t);
        std::hint::black_box((&json, &text));
        let cpu = cpu_compile + cpu_ms() - cpu_before;

        println!(
            "| {nodes} | {per_node} | {compile_ms:.0} | {plan_ms:.0} | {group_ms:.0} | {render_ms:.0} | {:.0} | {cpu:.0} | {} | {} | {:.0} |",
            compile_ms + plan_ms + group_ms + render_ms,
            built.change_sets.len(),
            md.chars().count(),
            peak_rss_mb()
        );
    }
}
