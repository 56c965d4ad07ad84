//! Small pieces of markup the pages share: times, states, outcomes, short commit ids,
//! links whose path segments are percent-encoded.

use chrono::{DateTime, Utc};
use maud::{Markup, html};
use store::NodeState;

/// A time as `<time>`: machine-readable RFC 3339, shown in UTC to the minute.
pub fn time(at: &DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M UTC")) }
    }
}

/// An optional time, or a dash read out as "never".
pub fn time_or_never(at: Option<&DateTime<Utc>>) -> Markup {
    match at {
        Some(at) => time(at),
        None => html! { span aria-label="never" { "—" } },
    }
}

/// The badge class of a node state.
pub fn state_class(state: NodeState) -> &'static str {
    match state {
        NodeState::Converged => "b-ok",
        NodeState::Pending => "b-info",
        NodeState::Drifted | NodeState::Stale => "b-warn",
        NodeState::Failed => "b-bad",
        NodeState::Unknown => "b-none",
    }
}

/// A node state as a badge that spells the state out.
pub fn state_badge(state: NodeState) -> Markup {
    html! { span class={ "badge " (state_class(state)) } { (state.as_str()) } }
}

/// A word (an outcome, a run status, an audit outcome) as a badge coloured by its meaning.
pub fn word_badge(word: &str) -> Markup {
    let class = match word {
        "ok" | "applied" | "changed" | "unchanged" | "intact" | "passed" => "b-ok",
        "failed" | "denied" | "broken" | "error" => "b-bad",
        "stale" | "skipped" | "warning" | "held" => "b-warn",
        "running" | "pending" => "b-info",
        _ => "b-none",
    };
    html! { span class={ "badge " (class) } { (word) } }
}

/// The first 12 characters of a commit id (the full id in a title).
pub fn short_sha(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// A link to a commit's page showing its short id.
pub fn commit_link(sha: &str) -> Markup {
    html! {
        a href={ "/commits/" (segment(sha)) } class="mono" title=(sha) { (short_sha(sha)) }
    }
}

/// A link to a node's page.
pub fn node_link(name: &str) -> Markup {
    html! { a href={ "/nodes/" (segment(name)) } { (name) } }
}

/// `text` percent-encoded for one URL path segment (everything but RFC 3986's unreserved
/// characters).
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `path?query` from ordered pairs (`path` alone when there are none).
pub fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return path.to_owned();
    }
    match serde_urlencoded::to_string(pairs) {
        Ok(q) => format!("{path}?{q}"),
        Err(_) => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_encode_everything_but_unreserved() {
        assert_eq!(segment("web-01.example_1~"), "web-01.example_1~");
        assert_eq!(segment("a/b c?d#e%"), "a%2Fb%20c%3Fd%23e%25");
        assert_eq!(segment("<x>\"'"), "%3Cx%3E%22%27");
        assert_eq!(segment("é"), "%C3%A9");
    }

    #[test]
    fn queries_are_form_encoded() {
        assert_eq!(with_query("/nodes", &[]), "/nodes");
        assert_eq!(
            with_query("/nodes", &[("label", "role=web&x"), ("state", "drifted")]),
            "/nodes?label=role%3Dweb%26x&state=drifted"
        );
    }

    #[test]
    fn short_ids_never_split_a_character() {
        assert_eq!(short_sha("0123456789abcdef"), "0123456789ab");
        assert_eq!(short_sha("abc"), "abc");
        assert_eq!(
            short_sha("ééééééé"),
            "ééééééé".get(..12).unwrap_or("ééééééé")
        );
    }
}
