//! systemd unit files as the agent and the built-in supervisor read them: a small INI
//! parser (sections, `Key=Value`, comments, `\` continuations, drop-ins overriding the
//! unit), command-line splitting with systemd's quoting, and the agent's own drop-in
//! (`NAME.service.d/50-centossrv.conf`) that carries a service's restart policy,
//! environment and health check. Pure: text in, values out.

use state::{HealthCheck, RestartPolicy};
use std::collections::BTreeMap;
use std::time::Duration;

/// Where the agent writes unit files it manages (a host path).
pub const UNIT_DIR: &str = "/etc/systemd/system";
/// Where systemd looks for a unit file, in order of precedence (host paths).
pub const UNIT_SEARCH_PATH: [&str; 4] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];
/// The name of the agent's drop-in in `NAME.service.d/`.
pub const DROP_IN_NAME: &str = "50-centossrv.conf";
/// The section of the agent's drop-in systemd ignores (`X-` sections are for other tools).
pub const AGENT_SECTION: &str = "X-Centossrv";

/// The host path of the unit file of service `name` the agent manages.
pub fn unit_path(name: &str) -> String {
    format!("{UNIT_DIR}/{name}.service")
}

/// The host path of the drop-in directory of service `name`.
pub fn drop_in_dir(name: &str) -> String {
    format!("{UNIT_DIR}/{name}.service.d")
}

/// The host path of the agent's drop-in of service `name`.
pub fn drop_in_path(name: &str) -> String {
    format!("{}/{DROP_IN_NAME}", drop_in_dir(name))
}

/// Why a unit file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct UnitError {
    pub file: String,
    pub message: String,
}

/// One parsed unit file: `section -> [(key, value)]` in file order (a key may repeat).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unit {
    sections: BTreeMap<String, Vec<(String, String)>>,
}

impl Unit {
    /// Parses unit-file syntax (systemd.syntax(7)): `[Section]` headers, `Key=Value` lines,
    /// `#`/`;` comments, a trailing `\` joining the next line. `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Unit, UnitError> {
        let mut unit = Unit::default();
        unit.merge(file, text)?;
        Ok(unit)
    }

    /// Adds a drop-in's settings after the unit's own (later values win, as in systemd).
    pub fn merge(&mut self, file: &str, text: &str) -> Result<(), UnitError> {
        let err = |line: usize, message: String| UnitError {
            file: format!("{file}:{line}"),
            message,
        };
        let mut section: Option<String> = None;
        let mut pending = String::new();
        let mut pending_line = 0;
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let trimmed = raw.trim();
            if pending.is_empty() && (trimmed.starts_with('#') || trimmed.starts_with(';')) {
                continue;
            }
            if pending.is_empty() {
                pending_line = line_no;
            }
            if let Some(head) = trimmed.strip_suffix('\\') {
                pending.push_str(head);
                pending.push(' ');
                continue;
            }
            pending.push_str(trimmed);
            let line = std::mem::take(&mut pending);
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(name) = line.strip_prefix('[') {
                let Some(name) = name.strip_suffix(']') else {
                    return Err(err(pending_line, format!("bad section header `{line}`")));
                };
                section = Some(name.to_owned());
                self.sections.entry(name.to_owned()).or_default();
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(err(
                    pending_line,
                    format!("expected `Key=Value`, found `{line}`"),
                ));
            };
            let Some(section) = &section else {
                return Err(err(
                    pending_line,
                    "a setting before any [Section] header".to_owned(),
                ));
            };
            self.sections
                .entry(section.clone())
                .or_default()
                .push((key.trim().to_owned(), value.trim().to_owned()));
        }
        if !pending.trim().is_empty() {
            return Err(err(
                pending_line,
                "the file ends inside a `\\` continuation".to_owned(),
            ));
        }
        Ok(())
    }

    /// Every value of `key` in `section`, in order.
    pub fn values<'a>(&'a self, section: &str, key: &'a str) -> impl Iterator<Item = &'a str> {
        self.sections
            .get(section)
            .into_iter()
            .flatten()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The last value of `key` in `section` (a single-valued setting).
    pub fn last<'a>(&'a self, section: &str, key: &'a str) -> Option<&'a str> {
        self.values(section, key).last()
    }

    /// A list setting: values accumulate, an empty assignment resets the list.
    pub fn list<'a>(&'a self, section: &str, key: &'a str) -> Vec<&'a str> {
        let mut out = Vec::new();
        for v in self.values(section, key) {
            if v.is_empty() {
                out.clear();
            } else {
                out.push(v);
            }
        }
        out
    }

    pub fn has_section(&self, section: &str) -> bool {
        self.sections.contains_key(section)
    }

    /// The targets `[Install]` hooks the unit into (`WantedBy=` -> `.wants`, `RequiredBy=`
    /// -> `.requires`), as `(target, "wants" | "requires")`.
    pub fn install_targets(&self) -> Vec<(String, &'static str)> {
        let mut out = Vec::new();
        for (key, dir) in [("WantedBy", "wants"), ("RequiredBy", "requires")] {
            for v in self.list("Install", key) {
                for t in v.split_whitespace() {
                    out.push((t.to_owned(), dir));
                }
            }
        }
        out
    }
}

/// The links `systemctl enable` creates for a unit installed into `targets`: host paths
/// under [`UNIT_DIR`] (`/etc/systemd/system/multi-user.target.wants/NAME.service`).
pub fn enable_links(name: &str, targets: &[(String, &'static str)]) -> Vec<String> {
    targets
        .iter()
        .map(|(t, dir)| format!("{UNIT_DIR}/{t}.{dir}/{name}.service"))
        .collect()
}

/// The settings the agent manages in its drop-in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Managed {
    pub restart: RestartPolicy,
    pub environment: BTreeMap<String, String>,
    pub health_check: Option<HealthCheck>,
}

impl Managed {
    /// Nothing to say: the agent's drop-in is not needed.
    pub fn is_empty(&self) -> bool {
        self.restart == RestartPolicy::No
            && self.environment.is_empty()
            && self.health_check.is_none()
    }

    /// The drop-in's text. `restart: no` writes no `Restart=` (the unit's own stays in
    /// effect); the health check lives in an `[X-Centossrv]` section systemd ignores.
    pub fn render(&self, service: &str) -> String {
        let mut out = format!(
            "# Managed by centossrv-agent for service:{service}: restart policy, environment\n\
             # and health check. Local changes are reverted.\n[Service]\n"
        );
        match self.restart {
            RestartPolicy::No => {}
            RestartPolicy::Always => out.push_str("Restart=always\n"),
            RestartPolicy::OnFailure => out.push_str("Restart=on-failure\n"),
        }
        for (k, v) in &self.environment {
            out.push_str("Environment=");
            out.push_str(&quote(&format!("{k}={v}")));
            out.push('\n');
        }
        if let Some(h) = &self.health_check {
            out.push_str(&format!("\n[{AGENT_SECTION}]\nHealthCheck="));
            out.push_str(&serde_json::to_string(h).unwrap_or_default());
            out.push('\n');
        }
        out
    }

    /// Reads what the agent's drop-in says (the inverse of [`Managed::render`]).
    pub fn parse(file: &str, text: &str) -> Result<Managed, UnitError> {
        let unit = Unit::parse(file, text)?;
        let err = |message: String| UnitError {
            file: file.to_owned(),
            message,
        };
        let restart = match unit.last("Service", "Restart") {
            None | Some("no") => RestartPolicy::No,
            Some("always") => RestartPolicy::Always,
            Some("on-failure") => RestartPolicy::OnFailure,
            Some(other) => return Err(err(format!("unexpected Restart={other}"))),
        };
        let environment = environment(&unit, "").map_err(err)?;
        let health_check = unit
            .last(AGENT_SECTION, "HealthCheck")
            .map(|j| serde_json::from_str(j).map_err(|e| err(format!("bad HealthCheck= ({e})"))))
            .transpose()?;
        Ok(Managed {
            restart,
            environment,
            health_check,
        })
    }
}

/// `Environment=` assignments of the `[Service]` section, later ones winning, with
/// specifiers expanded for service `name` (see [`expand_specifiers`]).
pub fn environment(unit: &Unit, name: &str) -> Result<BTreeMap<String, String>, String> {
    let mut env = BTreeMap::new();
    for line in unit.list("Service", "Environment") {
        for word in split_words(line)? {
            let word = expand_specifiers(&word, name)?;
            let Some((k, v)) = word.split_once('=') else {
                return Err(format!("Environment= entry `{word}` is not NAME=VALUE"));
            };
            env.insert(k.to_owned(), v.to_owned());
        }
    }
    Ok(env)
}

/// Quotes a word for a unit file when it needs it (`"A=b c"`).
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | '\\' | '%'));
    if plain {
        return word.to_owned();
    }
    let mut out = String::from("\"");
    for c in word.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '%' => out.push_str("%%"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Expands the unit specifiers the supervisor knows (systemd.unit(5)): `%%`, `%n` (the
/// full unit name), `%N` and `%p` (the name without `.service`), `%i` (empty: no
/// templates). Any other specifier is an error naming it.
pub fn expand_specifiers(text: &str, name: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('n') => {
                out.push_str(name);
                out.push_str(".service");
            }
            Some('N' | 'p') => out.push_str(name),
            Some('i') => {}
            Some(other) => {
                return Err(format!(
                    "the specifier `%{other}` is not supported by the built-in supervisor"
                ));
            }
            None => return Err("a `%` at the end of a value".to_owned()),
        }
    }
    Ok(out)
}

/// Splits a command line or a list value into words with systemd's rules: whitespace
/// separates, `"..."` and `'...'` quote, `\` escapes (`\n`, `\t`, `\\`, `\"`, `\'`, `\ `).
/// `$$` stays `$$` and `%%` stays `%%` here: the caller expands them.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(words);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            match (quote, c) {
                (None, c) if c.is_whitespace() => break,
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (_, '\\') => match chars.next() {
                    Some('n') => word.push('\n'),
                    Some('t') => word.push('\t'),
                    Some(e @ ('\\' | '"' | '\'' | ' ')) => word.push(e),
                    Some(other) => return Err(format!("unsupported escape `\\{other}`")),
                    None => return Err("a `\\` at the end of the line".to_owned()),
                },
                (_, c) => word.push(c),
            }
        }
        if quote.is_some() {
            return Err(format!("unterminated quote in `{line}`"));
        }
        words.push(word);
    }
}

/// A unit's time span (`90`, `5s`, `500ms`, `1min 30s`, `infinity`), systemd.time(7).
pub fn parse_timespan(text: &str) -> Result<Option<Duration>, String> {
    let t = text.trim();
    if t == "infinity" {
        return Ok(None);
    }
    let mut total = Duration::ZERO;
    for part in t.split_whitespace() {
        let split = part
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(part.len());
        let (num, unit) = part.split_at(split);
        let n: u64 = num.parse().map_err(|_| format!("bad time span `{text}`"))?;
        let d = match unit {
            "" | "s" | "sec" | "second" | "seconds" => Duration::from_secs(n),
            "ms" | "msec" => Duration::from_millis(n),
            "us" | "usec" => Duration::from_micros(n),
            "m" | "min" | "minute" | "minutes" => Duration::from_secs(n * 60),
            "h" | "hr" | "hour" | "hours" => Duration::from_secs(n * 3600),
            _ => return Err(format!("bad time span `{text}`")),
        };
        total += d;
    }
    if t.is_empty() {
        return Err("empty time span".to_owned());
    }
    Ok(Some(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use state::Probe;

    #[test]
    fn parses_sections_lists_continuations_and_drop_ins() {
        let mut unit = Unit::parse(
            "web.service",
            "# comment\n[Unit]\nDescription=Web\n\n[Service]\nExecStart=/usr/bin/python3 \\\n  -m http.server 8080\nEnvironment=A=1 \"B=two words\"\nEnvironment=C=3\n[Install]\nWantedBy=multi-user.target\n",
        )
        .expect("parses");
        assert_eq!(
            unit.last("Service", "ExecStart"),
            Some("/usr/bin/python3  -m http.server 8080")
        );
        unit.merge(
            "override.conf",
            "[Service]\nEnvironment=\nEnvironment=D=4\n",
        )
        .expect("drop-in");
        assert_eq!(
            environment(&unit, "web").expect("env"),
            BTreeMap::from([("D".into(), "4".into())])
        );
        assert_eq!(
            unit.install_targets(),
            vec![("multi-user.target".to_owned(), "wants")]
        );
        assert_eq!(
            enable_links("web", &unit.install_targets()),
            vec!["/etc/systemd/system/multi-user.target.wants/web.service"]
        );
        let bad = Unit::parse("x.service", "Key=1\n").expect_err("no section");
        assert_eq!(
            bad.to_string(),
            "x.service:1: a setting before any [Section] header"
        );
        assert!(Unit::parse("x", "[Service]\nnonsense\n").is_err());
    }

    #[test]
    fn splits_words_like_systemd() {
        assert_eq!(
            split_words(r#"/bin/sh -c 'echo "hi there"; exit 3' a\ b"#).expect("split"),
            vec!["/bin/sh", "-c", "echo \"hi there\"; exit 3", "a b"]
        );
        assert!(split_words("\"open").is_err());
    }

    #[test]
    fn managed_drop_in_round_trips() {
        let managed = Managed {
            restart: RestartPolicy::OnFailure,
            environment: BTreeMap::from([
                ("GREETING".into(), "hello world, 100% $HOME".into()),
                ("PORT".into(), "8080".into()),
            ]),
            health_check: Some(HealthCheck {
                probe: Probe::Http {
                    url: "http://127.0.0.1:8080/".into(),
                },
                interval_ms: 500,
                timeout_ms: 200,
                retries: 3,
            }),
        };
        let text = managed.render("web");
        assert!(text.contains("Restart=on-failure\n"), "{text}");
        assert!(
            text.contains("Environment=\"GREETING=hello world, 100%% $HOME\"\n"),
            "{text}"
        );
        assert_eq!(Managed::parse("d", &text).expect("parse"), managed);
        assert!(Managed::default().is_empty());
        assert_eq!(
            Managed::parse("d", &Managed::default().render("web")).expect("parse"),
            Managed::default()
        );
    }

    #[test]
    fn time_spans() {
        assert_eq!(
            parse_timespan("1min 30s").expect("ok"),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_timespan("500ms").expect("ok"),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_timespan("infinity").expect("ok"), None);
        assert!(parse_timespan("soon").is_err());
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(text in "(\\PC|\n|\\\\|\\[|\\]|=|%|\"|')*") {
            if let Ok(unit) = Unit::parse("u", &text) {
                let _ = environment(&unit, "svc");
                let _ = unit.install_targets();
                for v in unit.values("Service", "ExecStart") {
                    let _ = split_words(v);
                }
            }
            let _ = split_words(&text);
            let _ = expand_specifiers(&text, "svc");
            let _ = parse_timespan(&text);
            let _ = Managed::parse("d", &text);
        }

        #[test]
        fn any_environment_round_trips_through_the_drop_in(
            env in proptest::collection::btree_map("[A-Za-z_][A-Za-z0-9_]{0,8}", "(\\PC|\t)*", 0..5),
            restart in proptest::sample::select(vec![RestartPolicy::No, RestartPolicy::Always, RestartPolicy::OnFailure]),
        ) {
            let managed = Managed { restart, environment: env, health_check: None };
            let text = managed.render("svc");
            proptest::prop_assert_eq!(Managed::parse("d", &text).ok(), Some(managed), "{}", text);
        }
    }
}
