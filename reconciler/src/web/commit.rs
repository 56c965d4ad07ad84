//! `GET /commits/{sha}`: one compiled commit: result, counts, and every diagnostic with its
//! `file:line:column`, as the compiler recorded them (`validate --format json`). One
//! statement.

use super::WebState;
use super::error::PageError;
use super::format::{time, word_badge};
use super::layout::{Nav, page as shell};
use axum::extract::{Path, State};
use maud::{Markup, html};
use serde::Deserialize;

/// One diagnostic as stored; read leniently (an unknown field or a missing one is no error).
#[derive(Debug, Deserialize)]
struct StoredDiagnostic {
    #[serde(default)]
    code: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    file: String,
    #[serde(default)]
    line: u32,
    #[serde(default)]
    column: u32,
    #[serde(default)]
    message: String,
    #[serde(default)]
    hint: Option<String>,
}

impl StoredDiagnostic {
    /// `file:line:column`, leaving out what is 0 (the whole file, the whole line).
    fn location(&self) -> String {
        match (self.line, self.column) {
            (0, _) => self.file.clone(),
            (l, 0) => format!("{}:{l}", self.file),
            (l, c) => format!("{}:{l}:{c}", self.file),
        }
    }
}

pub async fn page(
    State(st): State<WebState>,
    Path(sha): Path<String>,
) -> Result<Markup, PageError> {
    let c = st
        .store
        .commit(&sha)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("No compiled commit “{sha}”.")))?;
    let number = |key: &str| c.diagnostics.get(key).and_then(serde_json::Value::as_u64);
    let diagnostics: Vec<StoredDiagnostic> = c
        .diagnostics
        .get("diagnostics")
        .and_then(|d| serde_json::from_value(d.clone()).ok())
        .unwrap_or_default();
    let in_force = st.live.current_commit().as_deref() == Some(c.sha.as_str());

    let body = html! {
        h1 { "Commit " code { (c.sha) } }
        dl class="facts" {
            dt { "Compile result" }
            dd { (word_badge(if c.ok { "ok" } else { "failed" })) }
            dt { "Errors" }
            dd { (number("errors").unwrap_or(0)) }
            dt { "Warnings" }
            dd { (number("warnings").unwrap_or(0)) }
            @if let Some(n) = number("nodes") {
                dt { "Nodes" }
                dd { (n) }
            }
            @if let Some(n) = number("roles") {
                dt { "Roles" }
                dd { (n) }
            }
            dt { "Compiled" }
            dd { (time(&c.compiled_at)) }
            dt { "In force" }
            dd { @if in_force { "yes: the engine works towards this commit" } @else { "no" } }
        }
        h2 id="diag-h" { "Diagnostics" }
        @if diagnostics.is_empty() {
            p class="notice ok" { "No diagnostics: the commit compiled cleanly." }
        } @else {
            (table(&diagnostics))
        }
    };
    Ok(shell(&format!("Commit {}", c.sha), Nav::None, body))
}

fn table(diagnostics: &[StoredDiagnostic]) -> Markup {
    html! {
        div class="table-wrap" role="region" aria-labelledby="diag-caption" tabindex="0" {
            table id="diagnostics" {
                caption id="diag-caption" { (diagnostics.len()) " diagnostics" }
                thead {
                    tr {
                        th scope="col" { "Severity" }
                        th scope="col" { "Location" }
                        th scope="col" { "Code" }
                        th scope="col" { "Message" }
                    }
                }
                tbody {
                    @for d in diagnostics {
                        tr {
                            td { (word_badge(&d.severity)) }
                            th scope="row" { code { (d.location()) } }
                            td { code { (d.code) } }
                            td {
                                (d.message)
                                @if let Some(h) = &d.hint { br; span class="hint" { "hint: " (h) } }
                            }
                        }
                    }
                }
            }
        }
    }
}
