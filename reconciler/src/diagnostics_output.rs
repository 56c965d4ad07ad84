//! Printers for compiler diagnostics: human (rustc-like, with a source excerpt and the hint)
//! and JSON (versioned, for machines). One computed list, several renderers.

use codespan_reporting::diagnostic::{Diagnostic as Report, Label};
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term;
use model::{Diagnostic, Severity, Snapshot};
use serde::Serialize;
use std::collections::HashMap;
use std::ops::Range;

/// Version of the JSON output of `validate --format json`.
pub const JSON_FORMAT: u32 = 1;

/// Byte range of the token at 1-based `line`/`column` (in characters) of `text`. Column 0
/// means the whole line. `None` when the position is outside the text.
fn span(text: &str, line: u32, column: u32) -> Option<Range<usize>> {
    if line == 0 {
        return None;
    }
    let start_of_line = if line == 1 {
        0
    } else {
        text.match_indices('\n')
            .nth(usize::try_from(line).ok()? - 2)
            .map(|(i, _)| i + 1)?
    };
    let line_text = text[start_of_line..].split('\n').next().unwrap_or_default();
    let line_text = line_text.strip_suffix('\r').unwrap_or(line_text);
    if column == 0 {
        let trimmed = line_text.trim_start();
        let start = start_of_line + (line_text.len() - trimmed.len());
        return Some(start..start_of_line + line_text.len());
    }
    let col = usize::try_from(column).ok()? - 1;
    let offset = line_text
        .char_indices()
        .nth(col)
        .map(|(i, _)| i)
        .unwrap_or(line_text.len());
    let rest = &line_text[offset..];
    // Underline one token: up to whitespace, a `:` that ends a key, or a flow delimiter.
    let len = if rest.starts_with(['"', '\'']) {
        let quote = rest.as_bytes()[0] as char;
        rest[1..].find(quote).map_or(rest.len(), |i| i + 2)
    } else {
        rest.find(|c: char| c.is_whitespace() || matches!(c, ',' | ']' | '}'))
            .unwrap_or(rest.len())
    };
    let len = if rest[..len].ends_with(':') && len > 1 {
        len - 1
    } else {
        len
    };
    Some(start_of_line + offset..start_of_line + offset + len)
}

/// Renders diagnostics like rustc: header, source excerpt with the token underlined, hint.
pub fn human(snapshot: &Snapshot, diagnostics: &[Diagnostic]) -> String {
    let mut files = SimpleFiles::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut out = String::new();
    let config = term::Config::default();
    for d in diagnostics {
        let mut report = match d.severity {
            Severity::Error => Report::error(),
            Severity::Warning => Report::warning(),
        }
        .with_code(d.code.as_str())
        .with_message(&d.message);
        let mut labels = Vec::new();
        let mut notes = Vec::new();
        let mut locate = |file: &str, line: u32, column: u32, primary: bool, message: &str| {
            let text = snapshot
                .get(file)
                .map(|b| String::from_utf8_lossy(b).into_owned());
            let range = text.as_deref().and_then(|t| span(t, line, column));
            match (text, range) {
                (Some(text), Some(range)) => {
                    let id = *ids
                        .entry(file.to_owned())
                        .or_insert_with(|| files.add(file.to_owned(), text));
                    let label = if primary {
                        Label::primary(id, range)
                    } else {
                        Label::secondary(id, range)
                    };
                    labels.push(label.with_message(message));
                }
                _ => notes.push(if primary {
                    format!("in {file}")
                } else {
                    format!("{message}: {file}:{line}:{column}")
                }),
            }
        };
        locate(&d.file, d.line, d.column, true, "");
        for r in &d.related {
            locate(&r.file, r.line, r.column, false, &r.message);
        }
        if let Some(hint) = &d.hint {
            notes.push(format!("hint: {hint}"));
        }
        report = report.with_labels(labels).with_notes(notes);
        match term::emit_into_string(&config, &files, &report) {
            Ok(text) => out.push_str(&text),
            Err(_) => {
                out.push_str(&d.to_string());
                out.push('\n');
            }
        }
    }
    out
}

/// Counts for the closing line.
pub fn summary(diagnostics: &[Diagnostic]) -> (usize, usize) {
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    (errors, diagnostics.len() - errors)
}

#[derive(Serialize)]
struct JsonReport<'a> {
    format: u32,
    commit: Option<&'a str>,
    ok: bool,
    errors: usize,
    warnings: usize,
    nodes: usize,
    roles: usize,
    diagnostics: &'a [Diagnostic],
}

/// The machine-readable report of `validate --format json`.
pub fn json(compiled: &model::Compiled) -> String {
    let (errors, warnings) = summary(&compiled.diagnostics);
    let report = JsonReport {
        format: JSON_FORMAT,
        commit: compiled.model.commit.as_deref(),
        ok: errors == 0,
        errors,
        warnings,
        nodes: compiled.model.nodes.len(),
        roles: compiled.model.roles.len(),
        diagnostics: &compiled.diagnostics,
    };
    serde_json::to_string_pretty(&report).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::span;

    #[test]
    fn spans_cover_one_token() {
        let text = "a: 1\n  mode: 0644\nname: \"x y\"\n";
        assert_eq!(span(text, 2, 3).map(|r| &text[r]), Some("mode"));
        assert_eq!(span(text, 2, 9).map(|r| &text[r]), Some("0644"));
        assert_eq!(span(text, 3, 7).map(|r| &text[r]), Some("\"x y\""));
        assert_eq!(span(text, 9, 1), None);
    }
}
