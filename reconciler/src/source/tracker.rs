//! Follows one branch of the fleet repository: a local repository (its ref is read directly,
//! nothing is fetched) or a remote URL fetched with gix into a bare mirror
//! `DATA_DIR/source.git`. Commits are then read from that same repository with
//! [`super::read_git`], so the engine sees exactly what was fetched.
//!
//! Transports: `file://`, `ssh://` and scp-like `user@host:path` through the `ssh` program
//! (a key file becomes `core.sshCommand = ssh -i KEY -o IdentitiesOnly=yes -o BatchMode=yes`),
//! and `https://` through reqwest + rustls with the ring provider (installed as the process
//! default here) and the system's trust roots. Credentials are handed to gix through a
//! callback, never through the URL, and never prompted for.

use super::SourceError;
use crate::secret::Secret;
use model::Snapshot;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// The name of the bare mirror of a remote source under the data directory.
pub const MIRROR_DIR: &str = "source.git";

/// How to authenticate to a remote.
#[derive(Debug, Clone, Default)]
pub enum RemoteAuth {
    /// Anonymous (public https, `file://`, ssh with the user's own agent and keys).
    #[default]
    None,
    /// HTTP(S) basic authentication; a token is a password with any user name.
    Basic { username: String, password: Secret },
    /// An ssh private key file, passed to `ssh -i`.
    SshKey(PathBuf),
}

impl RemoteAuth {
    /// Credentials from an https secret: `user:password`, or a bare token (sent with the user
    /// name `x-access-token`, which GitHub, GitLab and Gitea accept with a token).
    pub fn from_http_secret(secret: &Secret) -> RemoteAuth {
        match secret.expose().split_once(':') {
            Some((user, password)) if !user.is_empty() => RemoteAuth::Basic {
                username: user.to_owned(),
                password: Secret::new(password),
            },
            _ => RemoteAuth::Basic {
                username: "x-access-token".to_owned(),
                password: secret.clone(),
            },
        }
    }
}

/// Where the tracked repository is.
#[derive(Debug, Clone)]
pub enum Location {
    /// A repository on this machine, bare or with a work tree.
    Local(PathBuf),
    /// A remote URL (`https://`, `ssh://`, `user@host:path`, `file://`).
    Remote { url: String, auth: RemoteAuth },
}

impl Location {
    /// A URL-looking `spec` (`scheme://...` or scp-like `host:path` with the colon before any
    /// slash) is a remote; anything else is a local path.
    pub fn parse(spec: &str, auth: RemoteAuth) -> Location {
        if is_url_like(spec) {
            Location::Remote {
                url: spec.to_owned(),
                auth,
            }
        } else {
            Location::Local(PathBuf::from(spec))
        }
    }
}

fn is_url_like(spec: &str) -> bool {
    if spec.contains("://") {
        return true;
    }
    match (spec.find(':'), spec.find('/')) {
        (Some(colon), slash) => {
            colon > 0 && !spec.starts_with('.') && slash.is_none_or(|slash| colon < slash)
        }
        (None, _) => false,
    }
}

/// What to track.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub location: Location,
    /// The branch (`main` or `refs/heads/main`).
    pub branch: String,
    /// The reconciler's data directory; a remote's mirror lives in `DATA_DIR/source.git`.
    pub data_dir: PathBuf,
}

/// Follows the configured branch. Cheap to share (`Arc<Tracker>`); every call opens the
/// repository afresh, so refs moved by other processes are always seen.
#[derive(Debug)]
pub struct Tracker {
    config: SourceConfig,
    /// `refs/heads/<branch>`.
    full_ref: String,
    /// The repository commits are read from: the local path or the mirror.
    repo_path: PathBuf,
}

impl Tracker {
    /// Checks the configuration and, for a remote, creates (or reopens) the bare mirror. Does
    /// not contact the remote.
    pub fn new(config: SourceConfig) -> Result<Tracker, SourceError> {
        let branch = config
            .branch
            .strip_prefix("refs/heads/")
            .unwrap_or(&config.branch);
        let full_ref = format!("refs/heads/{branch}");
        if branch.is_empty() || gix::refs::FullName::try_from(full_ref.as_str()).is_err() {
            return Err(SourceError::Config {
                message: format!("`{}` is not a valid branch name", config.branch),
            });
        }
        let repo_path = match &config.location {
            Location::Local(path) => {
                gix::open(path).map_err(|e| SourceError::OpenRepo {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                path.clone()
            }
            Location::Remote { url, auth } => {
                check_remote(url, auth)?;
                if url.starts_with("https://") || url.starts_with("http://") {
                    install_ring_provider();
                }
                open_or_init_mirror(&config.data_dir.join(MIRROR_DIR))?
            }
        };
        Ok(Tracker {
            config,
            full_ref,
            repo_path,
        })
    }

    /// The configuration this tracker was built from.
    pub fn config(&self) -> &SourceConfig {
        &self.config
    }

    /// The repository commits are read from (the local repository or the mirror).
    pub fn repo_path(&self) -> &Path {
        &self.repo_path
    }

    /// Fetches the branch when the source is remote, then returns its commit id; `Ok(None)`
    /// when the repository has no branch at all yet (a freshly created, empty repository).
    /// Blocking: call it from `spawn_blocking` in async code.
    pub fn resolve_head(&self) -> Result<Option<String>, SourceError> {
        if let Location::Remote { url, auth } = &self.config.location {
            match self.fetch(url, auth, &self.full_ref)? {
                Fetched::NoBranches => return Ok(None),
                Fetched::Missing => return Err(self.branch_missing()),
                Fetched::Done => {}
            }
        }
        self.read_ref()
    }

    /// The commit `git_ref` points at (a pull request's `refs/pull/N/head`), fetched into the
    /// mirror first when the source is remote; `Ok(None)` when the ref does not exist.
    /// Blocking.
    pub fn resolve_ref(&self, git_ref: &str) -> Result<Option<String>, SourceError> {
        if gix::refs::FullName::try_from(git_ref).is_err() || !git_ref.starts_with("refs/") {
            return Err(SourceError::Config {
                message: format!("`{git_ref}` is not a full ref name"),
            });
        }
        if let Location::Remote { url, auth } = &self.config.location
            && self.fetch(url, auth, git_ref)? != Fetched::Done
        {
            return Ok(None);
        }
        let repo = gix::open(&self.repo_path).map_err(|e| SourceError::OpenRepo {
            path: self.repo_path.clone(),
            message: e.to_string(),
        })?;
        let rev_err = |message: String| SourceError::Revision {
            rev: git_ref.to_owned(),
            message,
        };
        match repo
            .try_find_reference(git_ref)
            .map_err(|e| rev_err(e.to_string()))?
        {
            Some(mut reference) => Ok(Some(
                reference
                    .peel_to_commit()
                    .map_err(|e| rev_err(e.to_string()))?
                    .id
                    .to_string(),
            )),
            None => Ok(None),
        }
    }

    /// Reads every file of `commit` from the tracked repository (the mirror for a remote),
    /// exactly as `centossrv plan --rev` reads a commit.
    pub fn read_commit(&self, commit: &str) -> Result<Snapshot, SourceError> {
        super::read_git(&self.repo_path, commit)
    }

    fn read_ref(&self) -> Result<Option<String>, SourceError> {
        let open_err = |e: gix::Error| SourceError::OpenRepo {
            path: self.repo_path.clone(),
            message: e.to_string(),
        };
        let repo = gix::open(&self.repo_path).map_err(open_err)?;
        let rev_err = |message: String| SourceError::Revision {
            rev: self.full_ref.clone(),
            message,
        };
        match repo
            .try_find_reference(self.full_ref.as_str())
            .map_err(|e| rev_err(e.to_string()))?
        {
            Some(mut reference) => {
                let id = reference
                    .peel_to_commit()
                    .map_err(|e| rev_err(e.to_string()))?
                    .id;
                Ok(Some(id.to_string()))
            }
            None => {
                let has_branches = repo
                    .references()
                    .map_err(|e| rev_err(e.to_string()))?
                    .local_branches()
                    .map_err(|e| rev_err(e.to_string()))?
                    .next()
                    .is_some();
                if has_branches || matches!(self.config.location, Location::Remote { .. }) {
                    Err(self.branch_missing())
                } else {
                    Ok(None)
                }
            }
        }
    }

    fn branch_missing(&self) -> SourceError {
        let repo = match &self.config.location {
            Location::Local(path) => path.display().to_string(),
            Location::Remote { url, .. } => redact_url(url),
        };
        SourceError::BranchMissing {
            repo,
            branch: self.full_ref["refs/heads/".len()..].to_owned(),
        }
    }

    /// Fetches `wanted` (the branch, or a pull request's ref) into the mirror under the same
    /// name.
    fn fetch(&self, url: &str, auth: &RemoteAuth, wanted: &str) -> Result<Fetched, SourceError> {
        use gix::remote::Direction;
        let shown = redact_url(url);
        let mut repo = gix::open(&self.repo_path).map_err(|e| SourceError::Mirror {
            path: self.repo_path.clone(),
            message: e.to_string(),
        })?;
        if let RemoteAuth::SshKey(key) = auth {
            let mut config = repo.config_snapshot_mut();
            let command = format!(
                "ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes",
                shell_quote(&key.to_string_lossy())
            );
            config
                .set_value(&gix::config::tree::Core::SSH_COMMAND, command.as_str())
                .map_err(|e| SourceError::Config {
                    message: e.to_string(),
                })?;
            config.commit().map_err(|e| SourceError::Config {
                message: e.to_string(),
            })?;
        }
        let refspec = format!("+{wanted}:{wanted}");
        let remote = repo
            .remote_at(url)
            .and_then(|remote| remote.with_refspecs([refspec.as_str()], Direction::Fetch))
            .map_err(|e| SourceError::Config {
                message: format!("bad remote URL {shown}: {}", redact_text(&e.to_string())),
            })?;
        let connection = remote
            .connect(Direction::Fetch)
            .map_err(|e| classify(&shown, &e))?;
        let basic = match auth {
            RemoteAuth::Basic { username, password } => Some((username.clone(), password.clone())),
            _ => None,
        };
        // Never fall back to git's credential helpers or a terminal prompt: a service has no
        // one to ask. Without configured credentials, an auth challenge fails at once.
        let connection = connection.with_credentials(move |action| {
            use gix::credentials::helper::Action;
            match (action, &basic) {
                (Action::Get(context), Some((username, password))) => {
                    Ok(Some(gix::credentials::protocol::Outcome {
                        identity: gix::sec::identity::Account {
                            username: username.clone(),
                            password: password.expose().to_owned(),
                            oauth_refresh_token: None,
                        },
                        next: context.into(),
                    }))
                }
                _ => Ok(None),
            }
        });
        // List every branch of the remote (not only ours), so that "no branch at all" (an empty
        // repository) and "not this branch" can be told apart.
        let options = gix::remote::ref_map::Options {
            prefix_from_spec_as_filter_on_remote: false,
            ..Default::default()
        };
        let prepare = connection
            .prepare_fetch(gix::progress::Discard, options)
            .map_err(|e| classify(&shown, &e))?;
        let ref_map = prepare.ref_map();
        let any_branch = ref_map.remote_refs.iter().any(|r| {
            let (name, _, _) = r.unpack();
            name.starts_with(b"refs/heads/")
        });
        if !any_branch {
            return Ok(Fetched::NoBranches);
        }
        if ref_map.mappings.is_empty() {
            return Ok(Fetched::Missing);
        }
        prepare
            .receive(gix::progress::Discard, &AtomicBool::new(false))
            .map_err(|e| SourceError::Fetch {
                url: shown.clone(),
                branch: wanted
                    .strip_prefix("refs/heads/")
                    .unwrap_or(wanted)
                    .to_owned(),
                message: redact_text(&chain(&e)),
            })?;
        Ok(Fetched::Done)
    }
}

/// What a fetch found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fetched {
    /// The remote has no branch at all (a new, empty repository).
    NoBranches,
    /// The remote has branches but not the wanted ref.
    Missing,
    Done,
}

/// An error and its causes on one line, `outer: cause: root cause`, repeats dropped.
fn chain(error: &gix::Error) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut cause = std::error::Error::source(error);
    while let Some(error) = cause {
        let text = error.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = error.source();
    }
    parts.join(": ")
}

/// Sorts a connect or handshake failure into "authentication failed" or "unreachable".
fn classify(shown_url: &str, error: &gix::Error) -> SourceError {
    let message = redact_text(&chain(error));
    let lower = message.to_lowercase();
    if error.is_unauthenticated()
        || error.is_permission_denied()
        || lower.contains("permission denied (publickey")
        || lower.contains("authentication failed")
    {
        SourceError::AuthFailed {
            url: shown_url.to_owned(),
            message,
        }
    } else {
        SourceError::Unreachable {
            url: shown_url.to_owned(),
            message,
        }
    }
}

fn check_remote(url: &str, auth: &RemoteAuth) -> Result<(), SourceError> {
    let shown = redact_url(url);
    let parsed = gix::url::parse(url).map_err(|e| SourceError::Config {
        message: format!("bad remote URL {shown}: {}", redact_text(&e.to_string())),
    })?;
    use gix::url::Scheme;
    let scheme = &parsed.scheme;
    match (scheme, auth) {
        (Scheme::File | Scheme::Ssh | Scheme::Https, RemoteAuth::None) => Ok(()),
        (Scheme::Http, RemoteAuth::None) => Ok(()),
        (Scheme::Https, RemoteAuth::Basic { .. }) => Ok(()),
        (Scheme::Ssh, RemoteAuth::SshKey(key)) => {
            if key.is_file() {
                Ok(())
            } else {
                Err(SourceError::Config {
                    message: format!("ssh key {} is not a readable file", key.display()),
                })
            }
        }
        (Scheme::Http, RemoteAuth::Basic { .. }) => Err(SourceError::Config {
            message: format!("refusing to send credentials over plain http to {shown}; use https"),
        }),
        (_, RemoteAuth::Basic { .. }) => Err(SourceError::Config {
            message: format!("a token or password only applies to https remotes, not {shown}"),
        }),
        (_, RemoteAuth::SshKey(_)) => Err(SourceError::Config {
            message: format!("an ssh key only applies to ssh remotes, not {shown}"),
        }),
        (other, _) => Err(SourceError::Config {
            message: format!("unsupported URL scheme `{other}` in {shown}"),
        }),
    }
}

fn open_or_init_mirror(path: &Path) -> Result<PathBuf, SourceError> {
    let mirror_err = |message: String| SourceError::Mirror {
        path: path.to_owned(),
        message,
    };
    if path.exists() {
        let repo = gix::open(path).map_err(|e| mirror_err(e.to_string()))?;
        if !repo.is_bare() {
            return Err(mirror_err("exists but is not a bare repository".to_owned()));
        }
    } else {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| mirror_err(e.to_string()))?;
        }
        gix::init_bare(path).map_err(|e| mirror_err(e.to_string()))?;
    }
    Ok(path.to_owned())
}

/// Makes ring the process-wide rustls provider (reqwest is built without one); a provider
/// installed earlier by someone else is kept.
pub fn install_ring_provider() {
    crate::tls::ring_provider();
}

fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// `scheme://user:secret@host/...` -> `scheme://user:***@host/...`; for http(s) a lone
/// user-info part (a token) becomes `***`. Query strings are dropped.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let scheme = &url[..scheme_end];
    let rest_start = scheme_end + 3;
    let authority_end = url[rest_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| rest_start + i);
    let mut out = url.to_owned();
    if let Some(at) = url[rest_start..authority_end].rfind('@') {
        let userinfo = &url[rest_start..rest_start + at];
        let replacement = match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***"),
            None if scheme.starts_with("http") => "***".to_owned(),
            None => userinfo.to_owned(),
        };
        out.replace_range(rest_start..rest_start + at, &replacement);
    }
    if let Some(q) = out.find('?') {
        out.truncate(q);
    }
    out
}

/// Applies [`redact_url`] to every `scheme://` URL inside an error message.
fn redact_text(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            if word.contains("://") {
                let start = word.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(0);
                let end = word
                    .rfind(|c: char| !matches!(c, '"' | '\'' | ')' | ',' | '.' | '`'))
                    .map_or(word.len(), |i| i + 1);
                if start < end {
                    return format!(
                        "{}{}{}",
                        &word[..start],
                        redact_url(&word[start..end]),
                        &word[end..]
                    );
                }
            }
            word.to_owned()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_like_specs_are_remote() {
        for spec in [
            "https://example.com/fleet.git",
            "file:///srv/fleet.git",
            "ssh://git@example.com/fleet.git",
            "git@example.com:org/fleet.git",
        ] {
            assert!(is_url_like(spec), "{spec}");
        }
        for spec in ["/srv/fleet.git", "fleet", "./a:b", "dir/a:b"] {
            assert!(!is_url_like(spec), "{spec}");
        }
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("https://user:pw@example.com/x.git"),
            "https://user:***@example.com/x.git"
        );
        assert_eq!(
            redact_url("https://ghp_token@example.com/x.git?a=b"),
            "https://***@example.com/x.git"
        );
        assert_eq!(
            redact_url("ssh://git@example.com/x.git"),
            "ssh://git@example.com/x.git"
        );
        assert_eq!(
            redact_text("cannot reach \"https://u:pw@h/x\" now"),
            "cannot reach \"https://u:***@h/x\" now"
        );
    }

    #[test]
    fn a_bare_token_gets_a_user_name() {
        let auth = RemoteAuth::from_http_secret(&Secret::new("tok"));
        assert!(
            matches!(auth, RemoteAuth::Basic { ref username, ref password } if username == "x-access-token" && password.expose() == "tok")
        );
        let auth = RemoteAuth::from_http_secret(&Secret::new("bob:pw:x"));
        assert!(
            matches!(auth, RemoteAuth::Basic { ref username, ref password } if username == "bob" && password.expose() == "pw:x")
        );
    }
}
