//! Properties of reports over random fleets: the GitHub Markdown always fits 65,536
//! characters and keeps the summary, totals, every error and the link line; change sets
//! never mix nodes whose plans differ.

use model::{Code, Diagnostic};
use proptest::prelude::*;
use report::{Budget, ReportInput};
use state::{
    Action, Cause, Change, NodePlan, NodeStatus, PropertyChange, ResourceId, ResourceKind,
};
use std::collections::BTreeMap;

/// A plan variant: a handful of changes, with diffs of various sizes.
fn variant(seed: u64, diff_lines: usize) -> Vec<Change> {
    let kinds = [
        ResourceKind::File,
        ResourceKind::Package,
        ResourceKind::Service,
        ResourceKind::User,
    ];
    let n = 1 + (seed % 7) as usize;
    (0..n)
        .map(|i| {
            let kind = kinds[(seed as usize + i) % kinds.len()];
            let id = ResourceId::new(kind, format!("/etc/app-{seed}/file-{i}.conf"));
            let diff = (kind == ResourceKind::File).then(|| {
                let mut d = format!(
                    "--- a{0}\n+++ b{0}\n@@ -1,{1} +1,{1} @@\n",
                    id.name, diff_lines
                );
                for l in 0..diff_lines {
                    d.push_str(&format!(
                        "-old line {l} of variant {seed}\n+new line {l} of variant {seed}\n"
                    ));
                }
                d
            });
            Change {
                id,
                action: [
                    Action::Create,
                    Action::Update,
                    Action::Delete,
                    Action::Restart,
                    Action::Reload,
                ][(seed as usize + i) % 5],
                cause: if (seed + i as u64).is_multiple_of(3) {
                    Cause::Drift
                } else {
                    Cause::Intent
                },
                properties: vec![PropertyChange {
                    name: "mode".into(),
                    before: Some("0644".into()),
                    after: Some(format!("06{}0", seed % 8)),
                    cause: Cause::Intent,
                }],
                diff,
                destructive: (seed + i as u64).is_multiple_of(5),
                sensitive: false,
                triggered_by: Vec::new(),
                unobserved: false,
            }
        })
        .collect()
}

/// Node plans, node labels, and which variant each node got.
type Fleet = (
    Vec<NodePlan>,
    BTreeMap<String, BTreeMap<String, String>>,
    Vec<usize>,
);

fn fleet(nodes: usize, variants: usize, diff_lines: usize) -> Fleet {
    let shapes: Vec<Vec<Change>> = (0..variants)
        .map(|v| variant(v as u64 * 7919, diff_lines))
        .collect();
    let mut plans = Vec::with_capacity(nodes);
    let mut labels = BTreeMap::new();
    let mut assigned = Vec::with_capacity(nodes);
    for i in 0..nodes {
        let v = (i * 31 + i / 7) % (variants + 1);
        let name = format!("node-{i:06}");
        let changes = if v == variants {
            Vec::new()
        } else {
            shapes[v].clone()
        };
        assigned.push(v);
        plans.push(NodePlan {
            node: name.clone(),
            status: if i.is_multiple_of(97) {
                NodeStatus::Unknown
            } else {
                NodeStatus::Known
            },
            changes,
            digest: String::new(),
        });
        labels.insert(
            name,
            BTreeMap::from([
                ("role".to_owned(), format!("r{}", i % 13)),
                ("dc".to_owned(), format!("dc{}", i % 3)),
            ]),
        );
    }
    (plans, labels, assigned)
}

fn errors(n: usize) -> Vec<Diagnostic> {
    (0..n)
        .map(|i| {
            Diagnostic::new(
                Code::UnknownKey,
                &format!("roles/role-{i}.yaml"),
                i as u32 + 1,
                3,
                format!("unknown key `x{i}`"),
            )
            .hint("did you mean `mode`?")
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn github_markdown_fits_and_keeps_essentials(
        nodes_exp in 0u32..=17,
        variants in 1usize..400,
        diff_lines in 0usize..200,
        error_count in 0usize..40,
    ) {
        let nodes = (1usize << nodes_exp).min(100_000);
        let (plans, labels, _) = fleet(nodes, variants, diff_lines);
        let diags = errors(error_count);
        let report = report::build(ReportInput {
            head: Some("0123456789abcdef0123456789abcdef01234567"),
            base: Some("fedcba9876543210fedcba9876543210fedcba98"),
            pr: Some(7),
            plans: &plans,
            labels: &labels,
            diagnostics: &diags,
            link: Some("https://centossrv.example/plans/7"),
        });
        let md = report::markdown(&report, Budget::GitHub);
        prop_assert!(md.chars().count() <= 65_536, "{} chars", md.chars().count());
        prop_assert!(md.starts_with("<!-- centossrv-plan: "));
        let summary = format!("### centossrv plan · `0123456` · {}", report::summary::count(nodes, "node"));
        prop_assert!(md.contains(&summary), "summary missing");
        let would = format!("**{} would change**", report::summary::thousands(report.would_change));
        prop_assert!(md.contains(&would), "totals missing");
        prop_assert!(md.contains("Base `fedcba9` → head `0123456`."));
        for d in &diags {
            let located = format!("`{}:{}:{}` **{}**", d.file, d.line, d.column, d.code);
            prop_assert!(md.contains(&located), "error {} missing", located);
        }
        prop_assert!(md.contains("Full plan: https://centossrv.example/plans/7"));
    }

    #[test]
    fn change_sets_never_mix_different_plans(nodes in 1usize..3000, variants in 1usize..50) {
        let (plans, labels, assigned) = fleet(nodes, variants, 3);
        let report = report::build(ReportInput {
            head: None, base: None, pr: None, plans: &plans, labels: &labels, diagnostics: &[], link: None,
        });
        let index: BTreeMap<&str, usize> = plans.iter().map(|p| p.node.as_str()).zip(assigned.iter().copied()).collect();
        let mut seen_variants = std::collections::BTreeSet::new();
        let mut covered = 0;
        for set in &report.change_sets {
            let v = index[set.nodes[0].as_str()];
            let status = plans.iter().find(|p| p.node == set.nodes[0]).map(|p| p.status);
            for n in &set.nodes {
                prop_assert_eq!(index[n.as_str()], v, "set {} mixes variants", set.id);
                prop_assert_eq!(plans.iter().find(|p| &p.node == n).map(|p| p.status), status);
            }
            seen_variants.insert((v, status));
            covered += set.nodes.len();
        }
        prop_assert_eq!(seen_variants.len(), report.change_sets.len(), "one variant split over sets");
        prop_assert_eq!(covered, plans.iter().filter(|p| !p.changes.is_empty()).count());
    }
}
