//! The pull or merge request a commit message names: a GitHub merge commit
//! (`Merge pull request #N from owner/branch`), a GitHub squash merge (`Title (#N)` on the
//! first line) or a GitLab merge commit (`See merge request group/project!N`). Pure.

use serde::Serialize;

/// A pull (GitHub) or merge (GitLab) request named by a commit message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrRef {
    /// `github` or `gitlab`.
    pub forge: &'static str,
    pub number: u64,
    /// GitLab's `group/project` when the message names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

impl std::fmt::Display for PrRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.forge, &self.project) {
            ("gitlab", Some(p)) => write!(f, "{p}!{}", self.number),
            ("gitlab", None) => write!(f, "!{}", self.number),
            _ => write!(f, "#{}", self.number),
        }
    }
}

/// The request `message` names, if any (a merge commit's wording first, then a squash
/// merge's trailing `(#N)`).
pub fn pr_ref(message: &str) -> Option<PrRef> {
    let summary = message.lines().next().unwrap_or("").trim();
    if let Some(rest) = summary.strip_prefix("Merge pull request #")
        && let Some(number) = leading_number(rest)
        && rest[number.1..].starts_with(" from ")
    {
        return Some(PrRef {
            forge: "github",
            number: number.0,
            project: None,
        });
    }
    for line in message.lines() {
        if let Some(rest) = line.trim().strip_prefix("See merge request ")
            && let Some((project, number)) = rest.trim().rsplit_once('!')
            && let Ok(number) = number.parse::<u64>()
        {
            return Some(PrRef {
                forge: "gitlab",
                number,
                project: (!project.is_empty()).then(|| project.to_owned()),
            });
        }
    }
    let inner = summary.strip_suffix(')')?;
    let (_, tail) = inner.rsplit_once("(#")?;
    let number = tail.parse::<u64>().ok()?;
    Some(PrRef {
        forge: "github",
        number,
        project: None,
    })
}

/// The decimal number `text` starts with and how many bytes it took.
fn leading_number(text: &str) -> Option<(u64, usize)> {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text[..end].parse().ok().map(|n| (n, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_their_requests() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "Merge pull request #42 from alice/motd\n\nNew motd\n",
                Some("github #42"),
            ),
            ("Rotate the motd (#17)", Some("github #17")),
            (
                "Rotate the motd (#17)\n\n* squashed commit\n",
                Some("github #17"),
            ),
            (
                "Merge branch 'motd' into 'main'\n\nNew motd\n\nSee merge request ops/fleet!7",
                Some("gitlab ops/fleet!7"),
            ),
            (
                "Merge branch 'motd' into 'main'\n\nSee merge request group/sub/fleet!1234\n",
                Some("gitlab group/sub/fleet!1234"),
            ),
            (
                "Merge branch 'x'\n\nSee merge request !3",
                Some("gitlab !3"),
            ),
            ("Fix the motd", None),
            ("Merge pull request #abc from x", None),
            ("Merge pull request #12", None),
            ("Bump to (#x)", None),
            ("Refs (#12) in the middle", None),
            ("See merge request ops/fleet!x", None),
            ("", None),
        ];
        for (message, want) in cases {
            let got = pr_ref(message).map(|p| format!("{} {p}", p.forge));
            assert_eq!(got.as_deref(), *want, "message {message:?}");
        }
    }
}
