//! Comment commands: `/centossrv plan` and `/centossrv help` on the first non-empty line of a
//! pull request comment. Anything else is not a command (so quoting one further down, or the
//! help text itself, triggers nothing).

/// A recognised command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Plan the pull request again now.
    Plan,
    /// Answer with the list of commands.
    Help,
    /// `/centossrv <word>` with a word that is not a command.
    Unknown(String),
}

/// The prefix every command starts with.
pub const PREFIX: &str = "/centossrv";

/// The command in `body`, if its first non-empty line is one.
pub fn parse(body: &str) -> Option<Command> {
    let line = body.lines().map(str::trim).find(|l| !l.is_empty())?;
    let rest = line.strip_prefix(PREFIX)?;
    if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
        return None; // `/centossrvx`
    }
    let mut words = rest.split_whitespace();
    Some(match words.next() {
        None | Some("help") => Command::Help,
        Some("plan") => Command::Plan,
        Some(other) => Command::Unknown(other.chars().take(40).collect()),
    })
}

/// The answer to `/centossrv help` (and to an unknown command, after a line naming it).
pub fn help_text(unknown: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(word) = unknown {
        let word: String = word
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == '-')
            .collect();
        out.push_str(&format!("Unknown command `{word}`.\n\n"));
    }
    out.push_str(
        "#### centossrv commands\n\n\
         Comment one of these as the first line of a comment (users with write access only):\n\n\
         | Command | What it does |\n\
         |---|---|\n\
         | `/centossrv plan` | Plans this pull request again against the nodes' current state and updates the plan comment. |\n\
         | `/centossrv help` | Shows this list. |\n\n\
         The plan comment is updated by itself on every push; nothing is applied before merge.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_on_the_first_line_only() {
        let cases: &[(&str, Option<Command>)] = &[
            ("/centossrv plan", Some(Command::Plan)),
            ("  \n  /centossrv   plan  please\nmore", Some(Command::Plan)),
            ("/centossrv help", Some(Command::Help)),
            ("/centossrv", Some(Command::Help)),
            ("/centossrv apply", Some(Command::Unknown("apply".into()))),
            ("/centossrvplan", None),
            ("please run\n/centossrv plan", None),
            ("> /centossrv plan", None),
            ("", None),
        ];
        for (body, want) in cases {
            assert_eq!(&parse(body), want, "{body:?}");
        }
    }

    #[test]
    fn help_text_is_not_a_command_and_echoes_no_markup() {
        let text = help_text(Some("<script>"));
        assert_eq!(parse(&text), None);
        assert!(text.contains("`script`"), "{text}");
    }
}
