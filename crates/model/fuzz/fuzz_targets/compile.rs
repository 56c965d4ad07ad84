//! Fuzzes the whole compiler: the input is a small repository of up to four files, separated
//! by `SEP`, assigned in order to `PATHS`. Checks that `model::compile` never panics and that
//! its output keeps the invariants the rest of centossrv relies on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use model::{Code, Snapshot, compile};
use state::{DesiredResource, DesiredState, ResourceId, Spec};
use std::collections::HashMap;
use std::sync::OnceLock;

/// Separates the files of one input. Also in `compile.dict`.
const SEP: &[u8] = b"\n--8<--\n";
/// Where the 1st, 2nd, 3rd and 4th file of an input go.
const PATHS: [&str; 4] = [
    "centossrv.yaml",
    "nodes/a.yaml",
    "roles/r.yaml",
    "files/t.j2",
];

/// `MODEL_FUZZ_PRINT=1` prints each input's diagnostics and resources (to look at seeds).
static PRINT: OnceLock<bool> = OnceLock::new();

fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while parts.len() + 1 < PATHS.len() {
        match rest.windows(SEP.len()).position(|w| w == SEP) {
            Some(i) => {
                parts.push(&rest[..i]);
                rest = &rest[i + SEP.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    parts
}

fuzz_target!(|data: &[u8]| {
    let mut snapshot = Snapshot::new(Some("0123456789abcdef0123456789abcdef01234567".into()));
    for (path, bytes) in PATHS.iter().zip(split(data)) {
        snapshot.insert(*path, bytes.to_vec());
    }
    let compiled = compile(&snapshot);
    if *PRINT.get_or_init(|| std::env::var_os("MODEL_FUZZ_PRINT").is_some()) {
        for d in &compiled.diagnostics {
            eprintln!("{d}");
        }
        for (name, state) in compiled.model.desired() {
            let ids: Vec<String> = state.resources.iter().map(|r| r.id.to_string()).collect();
            eprintln!("{name}: {}", ids.join(", "));
        }
    }

    // Every diagnostic is located in a file of the snapshot and says something.
    for d in &compiled.diagnostics {
        assert!(!d.file.is_empty(), "diagnostic without a file: {d:?}");
        assert!(!d.message.is_empty(), "diagnostic without a message: {d:?}");
        assert!(
            snapshot.files.contains_key(&d.file),
            "diagnostic in a file not in the snapshot: {d:?}"
        );
        assert_eq!(d.severity, d.code.severity(), "{d:?}");
        for r in &d.related {
            assert!(!r.file.is_empty() && !r.message.is_empty(), "{d:?}");
        }
        let _ = d.to_string();
    }
    // Sorted by location (file, line, column, code, message), without exact duplicates.
    let key = |d: &model::Diagnostic| (d.file.clone(), d.line, d.column, d.code, d.message.clone());
    for pair in compiled.diagnostics.windows(2) {
        assert!(
            key(&pair[0]) <= key(&pair[1]),
            "diagnostics out of order: {:?} before {:?}",
            pair[0],
            pair[1]
        );
        assert_ne!(pair[0], pair[1], "duplicate diagnostic");
    }
    serde_json::to_string(&compiled.diagnostics).expect("diagnostics serialize");

    // The inventory and the desired states agree.
    let desired: Vec<(&str, &DesiredState)> = compiled.model.desired().collect();
    assert_eq!(desired.len(), compiled.model.nodes.len());
    for (name, _) in &desired {
        assert!(compiled.model.nodes.contains_key(*name));
    }

    // A reported dependency cycle is made of real edges.
    for d in compiled
        .diagnostics
        .iter()
        .filter(|d| d.code == Code::Cycle)
    {
        check_cycle(&d.message, &desired);
    }

    if compiled.has_errors() {
        return;
    }
    for (name, state) in desired {
        assert_eq!(state.node, name);
        // Serializes, and reads back as the same state (the agent's side of the contract).
        let json = serde_json::to_string(state).expect("desired state serializes");
        let back: DesiredState = serde_json::from_str(&json).expect("desired state reads back");
        assert_eq!(
            &back, state,
            "desired state does not round-trip through JSON"
        );

        // Apply order: every `requires` target comes before its dependant, every `notify`
        // target after it; ids are unique.
        let mut at: HashMap<&ResourceId, usize> = HashMap::new();
        for (i, r) in state.resources.iter().enumerate() {
            assert!(
                at.insert(&r.id, i).is_none(),
                "{} declared twice on {name}",
                r.id
            );
            assert_eq!(
                r.id.kind,
                r.spec.kind(),
                "id and spec kinds differ: {}",
                r.id
            );
        }
        for (i, r) in state.resources.iter().enumerate() {
            for dep in &r.requires {
                let j = at
                    .get(dep)
                    .unwrap_or_else(|| panic!("{} requires missing {dep}", r.id));
                assert!(*j < i, "{} requires {dep}, which comes after it", r.id);
            }
            for n in &r.notify {
                let j = at
                    .get(n)
                    .unwrap_or_else(|| panic!("{} notifies missing {n}", r.id));
                assert!(*j > i, "{} notifies {n}, which comes before it", r.id);
            }
        }
    }
});

/// `message` is "dependency cycle: a -> b -> ... -> a (on ...)": each entry must depend on the
/// next (require it, be notified by it, or live under it as a managed directory) on some node.
/// Skipped when the ids cannot be told apart (a name containing " -> ").
fn check_cycle(message: &str, desired: &[(&str, &DesiredState)]) {
    let Some(rest) = message.strip_prefix("dependency cycle: ") else {
        panic!("cycle diagnostic with an unexpected message: {message}");
    };
    let text = rest.rsplit_once(" (on ").map_or(rest, |(t, _)| t);
    let find = |id: &ResourceId| -> Vec<&DesiredResource> {
        desired
            .iter()
            .filter_map(|(_, s)| s.resources.iter().map(|r| &**r).find(|r| &r.id == id))
            .collect()
    };
    let Ok(ids) = text
        .split(" -> ")
        .map(str::parse::<ResourceId>)
        .collect::<Result<Vec<_>, _>>()
    else {
        return;
    };
    if ids.len() < 2 || ids.iter().any(|id| find(id).is_empty()) {
        return;
    }
    assert_eq!(ids.first(), ids.last(), "cycle does not close: {message}");
    let path = |r: &DesiredResource| -> Option<String> {
        match &r.spec {
            Spec::File(f) => Some(f.path.clone()),
            Spec::Directory(d) => Some(d.path.clone()),
            Spec::Symlink(s) => Some(s.path.clone()),
            _ => None,
        }
    };
    for pair in ids.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let edge = find(a).iter().any(|ra| {
            ra.requires.contains(b)
                || matches!(path(ra), Some(p) if b.kind == state::ResourceKind::Directory
                    && p.starts_with(&format!("{}/", b.name)))
        }) || find(b).iter().any(|rb| rb.notify.contains(a));
        assert!(
            edge,
            "`{a}` does not depend on `{b}` in reported cycle: {message}"
        );
    }
}
