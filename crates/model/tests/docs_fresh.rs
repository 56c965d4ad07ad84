//! `docs/diagnostics.md` is generated from the `Code` table. Regenerate with
//! `UPDATE_EXPECT=1 cargo test -p model --test docs_fresh`.

use model::Code;
use std::path::PathBuf;

fn generate() -> String {
    let mut out = String::from(
        "# Diagnostic codes\n\n\
         Generated from `crates/model/src/diagnostic.rs`; do not edit. Codes are stable: \
         a code is never reused for another meaning. `E` codes are errors (`validate` exits 1), \
         `W` codes are warnings (exit 0).\n\n| code | name | meaning |\n|---|---|---|\n",
    );
    for code in Code::ALL {
        out.push_str(&format!(
            "| `{}` | `{}` | {} |\n",
            code.as_str(),
            code.name(),
            code.description()
        ));
    }
    out
}

#[test]
fn diagnostics_doc_is_fresh() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/diagnostics.md");
    let text = generate();
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, &text).expect("write");
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == text,
        "docs/diagnostics.md is stale; run `UPDATE_EXPECT=1 cargo test -p model --test docs_fresh`"
    );
}

#[test]
fn codes_are_unique() {
    let mut seen = std::collections::HashSet::new();
    for code in Code::ALL {
        assert!(seen.insert(code.as_str()), "duplicate {}", code.as_str());
        assert!(seen.insert(code.name()), "duplicate {}", code.name());
    }
}
