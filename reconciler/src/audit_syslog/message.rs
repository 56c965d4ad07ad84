//! One audit entry as an RFC 5424 syslog message, pure: the header (PRI, VERSION 1,
//! TIMESTAMP, HOSTNAME, APP-NAME, PROCID, MSGID = the action), one structured data element
//! `[audit@32473 ...]` whose values are escaped per RFC 5424 §6.3.3, and a short human MSG.
//! The entry's free-form `details` are never sent.

use super::settings::Facility;
use chrono::SecondsFormat;
use store::AuditEntry;

pub const APP_NAME: &str = "centossrv";
/// The structured data element's SD-ID. 32473 is the private enterprise number reserved
/// for documentation (RFC 5612); the element's parameters are described in docs/audit.md.
pub const SD_ID: &str = "audit@32473";
/// Longest parameter value and MSG text sent (bytes, before escaping); longer ones are cut
/// at a character boundary. The entry's `seq` and `hash` identify it in full in the log.
pub const MAX_VALUE: usize = 1024;

/// Severity of an entry: `warning` (4) when its outcome is `failed`, `denied` or `stale`,
/// `notice` (5) otherwise.
pub fn severity(outcome: &str) -> u8 {
    match outcome {
        "failed" | "denied" | "stale" => 4,
        _ => 5,
    }
}

/// The message for `entry`, sent from `hostname` by process `procid`.
pub fn format(entry: &AuditEntry, facility: Facility, hostname: &str, procid: u32) -> String {
    let record = &entry.record;
    let pri = u32::from(facility.code()) * 8 + u32::from(severity(&record.outcome));
    let mut out = format!(
        "<{pri}>1 {} {} {APP_NAME} {procid} {} [{SD_ID}",
        entry.at.to_rfc3339_opts(SecondsFormat::Micros, true),
        header_field(hostname, 255),
        header_field(&record.action, 32),
    );
    let seq = entry.seq.to_string();
    let mut params: Vec<(&str, &str)> = vec![
        ("seq", &seq),
        ("action", &record.action),
        ("actor", &record.actor),
        ("target", &record.target),
        ("outcome", &record.outcome),
    ];
    if let Some(commit) = &record.commit {
        params.push(("commit", commit));
    }
    params.push(("hash", &entry.hash));
    for (name, value) in params {
        out.push(' ');
        out.push_str(name);
        out.push_str("=\"");
        escape_into(&mut out, cut(value, MAX_VALUE));
        out.push('"');
    }
    out.push_str("] ");
    let text = match &record.commit {
        Some(commit) => format!(
            "{} {} {} at {commit}: {}",
            record.actor, record.action, record.target, record.outcome
        ),
        None => format!(
            "{} {} {}: {}",
            record.actor, record.action, record.target, record.outcome
        ),
    };
    out.extend(cut(&text, MAX_VALUE).chars().map(printable));
    out
}

/// A header field (HOSTNAME, MSGID): printable US-ASCII only (others become `_`), at most
/// `max` characters, `-` (the NILVALUE) when empty.
fn header_field(text: &str, max: usize) -> String {
    let field: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    if field.is_empty() { "-".into() } else { field }
}

/// A PARAM-VALUE's content: `"`, `\` and `]` escaped with a backslash (RFC 5424 §6.3.3);
/// control characters, which would let a value forge a line in line-based sinks, replaced.
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(printable(c));
    }
}

fn printable(c: char) -> char {
    if c.is_control() { '\u{FFFD}' } else { c }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use store::AuditRecord;

    fn entry(actor: &str, target: &str, outcome: &str, commit: Option<&str>) -> AuditEntry {
        AuditEntry {
            seq: 7,
            at: DateTime::parse_from_rfc3339("2026-11-24T17:00:00.123456Z")
                .map(|t| t.with_timezone(&Utc))
                .expect("valid time"),
            record: AuditRecord {
                actor: actor.into(),
                action: "plan.approve".into(),
                target: target.into(),
                commit: commit.map(str::to_owned),
                outcome: outcome.into(),
                details: serde_json::json!({"token": "never sent"}),
            },
            prev_hash: "sha256:00".into(),
            hash: "sha256:ab".into(),
        }
    }

    #[test]
    fn an_entry_as_a_message() {
        let msg = format(
            &entry("reconciler", "web-1", "ok", Some("c0ffee")),
            Facility::DEFAULT,
            "ctl.example.net",
            42,
        );
        assert_eq!(
            msg,
            "<37>1 2026-11-24T17:00:00.123456Z ctl.example.net centossrv 42 plan.approve \
             [audit@32473 seq=\"7\" action=\"plan.approve\" actor=\"reconciler\" \
             target=\"web-1\" outcome=\"ok\" commit=\"c0ffee\" hash=\"sha256:ab\"] \
             reconciler plan.approve web-1 at c0ffee: ok"
        );
        assert!(!msg.contains("never sent"), "details are not forwarded");
        let failed = format(
            &entry("a", "b", "failed", None),
            "local0".parse().expect("facility"),
            "",
            1,
        );
        assert!(failed.starts_with("<132>1 "), "{failed}");
        assert!(failed.contains(" - centossrv 1 "), "{failed}");
        assert!(!failed.contains("commit="), "{failed}");
    }

    #[test]
    fn values_are_escaped_and_cut() {
        for (actor, escaped) in [
            (r#"a"b"#, r#"actor="a\"b""#),
            (r"a\b", r#"actor="a\\b""#),
            ("a]b", r#"actor="a\]b""#),
            (r#"x"]\"#, r#"actor="x\"\]\\""#),
            ("line\nforged", "actor=\"line\u{FFFD}forged\""),
        ] {
            let msg = format(&entry(actor, "t", "ok", None), Facility::DEFAULT, "h", 1);
            assert!(msg.contains(escaped), "{actor:?}: {msg}");
            assert!(!msg.contains('\n'), "{msg}");
        }
        let long = "é".repeat(MAX_VALUE);
        let msg = format(&entry(&long, "t", "ok", None), Facility::DEFAULT, "h", 1);
        assert!(
            msg.contains(&format!("actor=\"{}\"", "é".repeat(MAX_VALUE / 2))),
            "cut at a boundary"
        );
        assert_eq!(header_field("plan approve\u{e9}", 32), "plan_approve_");
        assert_eq!(header_field(&"x".repeat(40), 32).len(), 32);
    }
}
