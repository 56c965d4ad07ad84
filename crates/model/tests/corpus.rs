//! The broken-repository corpus: every case under `test_data/broken/<case>/` is a fleet
//! repository (`repo/`) that must not compile cleanly, and `expected.txt` is the exact text of
//! its diagnostics. Cases too large to commit have no `repo/`: the harness builds them in
//! memory from a generator named like the case (see `GENERATED`).
//!
//! Run:    cargo test -p model --test corpus
//! Update: UPDATE_EXPECT=1 cargo test -p model --test corpus

use model::{Diagnostic, Severity, Snapshot, compile};
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// The corpus must not shrink below this many cases.
const MIN_CASES: usize = 45;

/// Builds the repository of a generated case.
type Generator = fn() -> Snapshot;

/// Cases built in memory: too large (or too pathological) to commit as files.
const GENERATED: &[(&str, Generator)] = &[
    ("gen-10mb-manifest", gen_10mb_manifest),
    ("gen-deep-flow-sequence", gen_deep_flow_sequence),
    ("gen-alias-bomb", gen_alias_bomb),
    ("gen-mapping-100-deep", gen_mapping_100_deep),
];

const NODE: &str = "apiVersion: centossrv.io/v1\nkind: Node\nmetadata:\n  name: web-01\n  labels:\n    role: web\n";

fn snapshot_of(files: &[(&str, Vec<u8>)]) -> Snapshot {
    let mut s = Snapshot::new(Some("corpus".into()));
    for (path, bytes) in files {
        s.insert(*path, bytes.clone());
    }
    s
}

/// A 10 MB node manifest: one valid header, then a long comment block.
fn gen_10mb_manifest() -> Snapshot {
    let mut text = String::from(NODE);
    let line = format!("# {}\n", "x".repeat(1021));
    while text.len() < 10 * 1024 * 1024 {
        text.push_str(&line);
    }
    snapshot_of(&[("nodes/web-01.yaml", text.into_bytes())])
}

/// 10,000 unclosed `[` in a role file.
fn gen_deep_flow_sequence() -> Snapshot {
    let text = format!(
        "apiVersion: centossrv.io/v1\nkind: Role\nmetadata:\n  name: web\nspec:\n  selector: {{}}\n  vars:\n    deep: {}\n",
        "[".repeat(10_000)
    );
    snapshot_of(&[("roles/web.yaml", text.into_bytes())])
}

/// "Billion laughs": ten levels of anchors, each aliasing the previous one ten times.
fn gen_alias_bomb() -> Snapshot {
    let mut text = String::from(
        "apiVersion: centossrv.io/v1\nkind: Role\nmetadata:\n  name: web\nspec:\n  selector: {}\n  vars:\n    l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for level in 1..10 {
        let prev = level - 1;
        let items = vec![format!("*l{prev}"); 10].join(", ");
        let _ = writeln!(text, "    l{level}: &l{level} [{items}]");
    }
    snapshot_of(&[("roles/web.yaml", text.into_bytes())])
}

/// A block mapping nested 100 levels deep inside a node's vars.
fn gen_mapping_100_deep() -> Snapshot {
    let mut text = String::from(NODE);
    text.push_str("spec:\n  vars:\n");
    for depth in 0..100 {
        let _ = writeln!(text, "{}k{depth}:", "  ".repeat(depth + 2));
    }
    let _ = writeln!(text, "{}leaf: 1", "  ".repeat(102));
    snapshot_of(&[("nodes/web-01.yaml", text.into_bytes())])
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data/broken")
}

/// Every file under `root`, by `/`-separated path relative to `root`, as bytes.
fn read_repo(root: &Path) -> Result<Snapshot, String> {
    let mut snapshot = Snapshot::new(Some("corpus".into()));
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            snapshot.insert(rel.join("/"), bytes);
        }
    }
    Ok(snapshot)
}

/// The diagnostics as committed in `expected.txt`: one line each, related locations indented.
fn render(diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        let _ = writeln!(out, "{d}");
        for r in &d.related {
            let _ = writeln!(
                out,
                "  related: {}:{}:{}: {}",
                r.file, r.line, r.column, r.message
            );
        }
    }
    out
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic payload)".into())
}

/// A line diff (longest common subsequence), `-` expected, `+` actual.
fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            let _ = writeln!(out, "    {}", a[i]);
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "  - {}", a[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "  + {}", b[j]);
            j += 1;
        }
    }
    if expected.ends_with('\n') != actual.ends_with('\n') || out.is_empty() {
        let _ = writeln!(out, "  (differs only in line endings or trailing newline)");
    }
    out
}

/// Checks one case; `Err` describes what is wrong with it.
fn run_case(name: &str, dir: &Path, update: bool) -> Result<(), String> {
    let repo = dir.join("repo");
    let generator = GENERATED.iter().find(|(n, _)| *n == name).map(|(_, g)| *g);
    let snapshot = match (repo.is_dir(), generator) {
        (true, None) => read_repo(&repo)?,
        (false, Some(generate)) => catch_unwind(generate)
            .map_err(|p| format!("the generator panicked: {}", panic_message(&*p)))?,
        (true, Some(_)) => {
            return Err("has a `repo/` folder but is also a generated case".into());
        }
        (false, None) => {
            return Err("has no `repo/` folder and no generator of that name".into());
        }
    };
    let compiled = catch_unwind(AssertUnwindSafe(|| compile(&snapshot)))
        .map_err(|p| format!("the compiler panicked: {}", panic_message(&*p)))?;
    let diagnostics = &compiled.diagnostics;
    let actual = render(diagnostics);

    let mut problems = Vec::new();
    let count = |s: Severity| diagnostics.iter().filter(|d| d.severity == s).count();
    if name.starts_with("warn-") {
        if count(Severity::Warning) == 0 {
            problems.push("a `warn-` case must produce at least one warning".to_owned());
        }
        if count(Severity::Error) > 0 {
            problems.push("a `warn-` case must produce no error".to_owned());
        }
    } else if count(Severity::Error) == 0 {
        problems.push("the case must produce at least one error".to_owned());
    }

    let expected_path = dir.join("expected.txt");
    if update {
        let current = std::fs::read(&expected_path).ok();
        if current.as_deref() != Some(actual.as_bytes()) {
            std::fs::write(&expected_path, &actual)
                .map_err(|e| format!("{}: {e}", expected_path.display()))?;
        }
    } else {
        match std::fs::read(&expected_path) {
            Err(_) => problems.push(format!(
                "no expected.txt; actual output:\n{}(run with UPDATE_EXPECT=1 to write it)",
                if actual.is_empty() {
                    "(no diagnostics)\n"
                } else {
                    &actual
                }
            )),
            Ok(expected) if expected != actual.as_bytes() => {
                let expected = String::from_utf8_lossy(&expected);
                problems.push(format!(
                    "diagnostics differ from expected.txt (- expected, + actual):\n{}",
                    diff(&expected, &actual)
                ));
            }
            Ok(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[test]
fn broken_repositories() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1");
    let root = corpus_dir();
    if update {
        for (name, _) in GENERATED {
            let _ = std::fs::create_dir_all(root.join(name));
        }
    }
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();

    let mut failures = Vec::new();
    for (name, _) in GENERATED {
        if !names.iter().any(|n| n == name) {
            failures.push(format!(
                "{name}: generated case has no folder (run with UPDATE_EXPECT=1)"
            ));
        }
    }
    for name in &names {
        if let Err(why) = run_case(name, &root.join(name), update) {
            failures.push(format!("{name}: {why}"));
        }
    }
    assert!(
        names.len() >= MIN_CASES,
        "the corpus has {} cases, fewer than {MIN_CASES}",
        names.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} corpus cases failed{}:\n\n{}",
        failures.len(),
        names.len(),
        if update {
            " (expected.txt files were updated)"
        } else {
            ""
        },
        failures.join("\n\n")
    );
}
