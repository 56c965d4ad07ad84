//! Data-driven plan reports: each `test_data/<case>/` holds a fleet at `base/` and `head/`,
//! how the nodes look (`observed.json`), and the expected report in every format
//! (`expected.txt`, `expected.md`, `expected.json`), compared byte for byte.
//! `UPDATE_EXPECT=1 cargo test -p report --test cases` rewrites the expected files.
//!
//! `observed.json`: `{"unreported": [node...], "drift": {node: {resource-id: spec|null}}}`.
//! Every node not unreported is observed as converged to base (or to head when the case has
//! no base), then drift entries replace (spec) or remove (null) single observations.

use model::{Compiled, Snapshot};
use report::{Budget, ReportInput};
use serde::Deserialize;
use state::{ObservedState, Spec};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ObservedSpec {
    #[serde(default)]
    unreported: Vec<String>,
    #[serde(default)]
    drift: BTreeMap<String, BTreeMap<String, Option<Spec>>>,
}

fn read_repo(dir: &Path, commit: &str) -> Snapshot {
    let mut snapshot = Snapshot::new(Some(commit.to_owned()));
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .expect("prefix")
                    .to_string_lossy()
                    .replace('\\', "/");
                snapshot.insert(rel, std::fs::read(&path).expect("read"));
            }
        }
    }
    snapshot
}

fn observe(reference: &Compiled, spec: &ObservedSpec) -> BTreeMap<String, ObservedState> {
    let mut out = BTreeMap::new();
    for (name, desired) in reference.model.desired() {
        if spec.unreported.iter().any(|u| u == name) {
            continue;
        }
        out.insert(name.to_owned(), ObservedState::converged(desired));
    }
    for (node, changes) in &spec.drift {
        let observed = out
            .entry(node.clone())
            .or_insert_with(|| ObservedState::new(node.clone()));
        for (id, value) in changes {
            let id = id.parse().expect("resource id");
            match value {
                Some(spec) => {
                    observed.resources.insert(id, spec.clone());
                }
                None => {
                    observed.resources.remove(&id);
                }
            }
        }
    }
    out
}

/// The three renderings of one case.
fn render(
    head: &Compiled,
    base: Option<&Compiled>,
    observed: &BTreeMap<String, ObservedState>,
) -> [(String, String); 3] {
    let plans = report::fleet::plan_fleet(head, base, observed);
    let labels = report::fleet::labels(head);
    let built = report::build(ReportInput {
        head: head.model.commit.as_deref(),
        base: base.and_then(|b| b.model.commit.as_deref()),
        pr: Some(42),
        plans: &plans,
        labels: &labels,
        diagnostics: &head.diagnostics,
        link: Some("https://centossrv.example/plans/42"),
    });
    [
        ("expected.txt".into(), report::text::text(&built, false)),
        (
            "expected.md".into(),
            report::markdown(&built, Budget::GitHub),
        ),
        ("expected.json".into(), report::json::json(&built)),
    ]
}

fn check(dir: &Path, outputs: [(String, String); 3], failures: &mut Vec<String>) {
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    for (file, actual) in outputs {
        let path = dir.join(&file);
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        if expected != actual {
            if update {
                std::fs::write(&path, &actual).expect("write expected");
            } else {
                let line = expected
                    .lines()
                    .zip(actual.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or(expected.lines().count().min(actual.lines().count()));
                failures.push(format!(
                    "{}: differs from line {}:\n  expected: {:?}\n  actual:   {:?}",
                    path.display(),
                    line + 1,
                    expected.lines().nth(line),
                    actual.lines().nth(line)
                ));
            }
        }
    }
}

fn cases_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test_data")
}

#[test]
fn reports_match_expected_files() {
    let mut failures = Vec::new();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("test_data")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("head").is_dir())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 9,
        "expected at least 9 cases, found {}",
        cases.len()
    );
    for dir in cases {
        let head = model::compile(&read_repo(
            &dir.join("head"),
            "head000000000000000000000000000000000000",
        ));
        let base = dir.join("base").is_dir().then(|| {
            model::compile(&read_repo(
                &dir.join("base"),
                "base000000000000000000000000000000000000",
            ))
        });
        let spec: ObservedSpec = std::fs::read(dir.join("observed.json"))
            .map(|b| serde_json::from_slice(&b).expect("observed.json"))
            .unwrap_or_default();
        let observed = observe(base.as_ref().unwrap_or(&head), &spec);
        check(&dir, render(&head, base.as_ref(), &observed), &mut failures);
    }
    assert!(
        failures.is_empty(),
        "{} mismatches (UPDATE_EXPECT=1 to accept):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A synthetic fleet of `n` web nodes in three data centers; head bumps a package and
/// changes a template; every 10th node has drifted.
pub fn synthetic(n: usize) -> (Compiled, Compiled, BTreeMap<String, ObservedState>) {
    let mut base = Snapshot::new(Some("base000000000000000000000000000000000000".into()));
    let mut head = Snapshot::new(Some("head000000000000000000000000000000000000".into()));
    for i in 0..n {
        let dc = ["fra1", "ams1", "lon1"][i % 3];
        let node = format!(
            "apiVersion: centossrv.io/v1\nkind: Node\nmetadata:\n  name: web-{i:05}\n  labels: {{role: web, dc: {dc}}}\nspec:\n  address: 10.0.{}.{}\n",
            i / 250,
            i % 250
        );
        base.insert(format!("nodes/web-{i:05}.yaml"), node.clone().into_bytes());
        head.insert(format!("nodes/web-{i:05}.yaml"), node.into_bytes());
    }
    let role = |version: &str| {
        format!(
            "apiVersion: centossrv.io/v1\nkind: Role\nmetadata: {{name: web}}\nspec:\n  selector: {{matchLabels: {{role: web}}}}\n  resources:\n    - package: nginx\n      version: \"{version}\"\n    - file: /etc/nginx/nginx.conf\n      template: files/nginx.conf.j2\n      mode: \"0644\"\n      notify: [service:nginx]\n    - service: nginx\n      enabled: true\n"
        )
    };
    base.insert("roles/web.yaml", role("1.20.1-14.el9").into_bytes());
    head.insert("roles/web.yaml", role("1.24.0-1.el9").into_bytes());
    base.insert(
        "files/nginx.conf.j2",
        b"worker_processes 2;\nevents {}\nhttp {\n  sendfile on;\n}\nserver_name {{ node.name }};\n".to_vec(),
    );
    head.insert(
        "files/nginx.conf.j2",
        b"worker_processes auto;\nevents {}\nhttp {\n  sendfile on;\n}\nserver_name {{ node.name }};\n".to_vec(),
    );
    let base = model::compile(&base);
    let head = model::compile(&head);
    let mut observed = BTreeMap::new();
    for (name, desired) in base.model.desired() {
        let mut o = ObservedState::converged(desired);
        if name.ends_with('0') {
            let id = "file:/etc/nginx/nginx.conf".parse().expect("id");
            if let Some(Spec::File(f)) = o.resources.get_mut(&id) {
                f.mode = Some("0666".into());
            }
        }
        observed.insert(name.to_owned(), o);
    }
    (head, base, observed)
}

#[test]
fn five_thousand_nodes() {
    let (head, base, observed) = synthetic(5_000);
    let dir = cases_dir().join("synthetic-5000");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut failures = Vec::new();
    check(&dir, render(&head, Some(&base), &observed), &mut failures);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
