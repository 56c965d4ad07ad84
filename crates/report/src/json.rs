//! The JSON printer: the [`Report`](crate::Report) itself, versioned by its `format` field.
//! Documented in `docs/plan-report.md`.

use crate::Report;

/// Pretty JSON with a trailing newline.
pub fn json(report: &Report) -> String {
    let mut text = serde_json::to_string_pretty(report).unwrap_or_default();
    text.push('\n');
    text
}
