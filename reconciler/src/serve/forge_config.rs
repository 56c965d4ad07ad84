//! The `[forge]` part of `centossrv serve`'s configuration: which forge, which repository,
//! its credentials and the webhook secret, resolved into [`ForgeSettings`] with every problem
//! reported. Secrets come from files (refused when group or others may read them) or, for the
//! token and webhook secret, from `CENTOSSRV_FORGE_TOKEN` / `CENTOSSRV_FORGE_WEBHOOK_SECRET`.

use crate::forge::ForgeKind;
use crate::secret::{self, Secret};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Flags of `centossrv serve` for the forge; each also reads `CENTOSSRV_<NAME>`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ForgeArgs {
    /// Plan pull requests on this forge (`github` or `gitlab`).
    #[arg(long, env = "CENTOSSRV_FORGE", value_name = "KIND")]
    pub forge: Option<String>,
    /// The forge's API base URL [default: https://api.github.com, https://gitlab.com/api/v4;
    /// GitHub Enterprise: https://HOST/api/v3].
    #[arg(long, env = "CENTOSSRV_FORGE_URL", value_name = "URL")]
    pub forge_url: Option<String>,
    /// The fleet repository on the forge: `owner/repo` (GitHub), `group/project` or a
    /// project id (GitLab).
    #[arg(long, env = "CENTOSSRV_FORGE_REPOSITORY", value_name = "NAME")]
    pub forge_repository: Option<String>,
    /// File holding an access token (GitHub token, GitLab project access token).
    #[arg(long, env = "CENTOSSRV_FORGE_TOKEN_FILE", value_name = "FILE")]
    pub forge_token_file: Option<PathBuf>,
    /// GitHub App id (with --github-app-key-file and --github-installation-id, instead of a token).
    #[arg(long, env = "CENTOSSRV_GITHUB_APP_ID", value_name = "ID")]
    pub github_app_id: Option<u64>,
    /// The GitHub App's private key (PEM).
    #[arg(long, env = "CENTOSSRV_GITHUB_APP_KEY_FILE", value_name = "FILE")]
    pub github_app_key_file: Option<PathBuf>,
    /// The App's installation id on the fleet repository's account.
    #[arg(long, env = "CENTOSSRV_GITHUB_INSTALLATION_ID", value_name = "ID")]
    pub github_installation_id: Option<u64>,
    /// File holding the forge webhook's secret (GitHub) or token (GitLab).
    #[arg(long, env = "CENTOSSRV_FORGE_WEBHOOK_SECRET_FILE", value_name = "FILE")]
    pub forge_webhook_secret_file: Option<PathBuf>,
    /// Base URL of the status page, for links in comments and statuses.
    #[arg(long, env = "CENTOSSRV_STATUS_PAGE_URL", value_name = "URL")]
    pub status_page_url: Option<String>,
    /// How long pull request events are gathered before planning [default: 200ms].
    #[arg(long, env = "CENTOSSRV_FORGE_COALESCE", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub forge_coalesce: Option<Duration>,
}

/// The `[forge]` table of the config file (keys as the flags without `forge_`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgeFile {
    kind: Option<String>,
    url: Option<String>,
    repository: Option<String>,
    token_file: Option<PathBuf>,
    app_id: Option<u64>,
    app_key_file: Option<PathBuf>,
    installation_id: Option<u64>,
    webhook_secret_file: Option<PathBuf>,
    status_page_url: Option<String>,
    coalesce: Option<String>,
}

/// How the reconciler authenticates to the forge.
#[derive(Clone)]
pub enum ForgeAuth {
    Token(Secret),
    GitHubApp {
        app_id: u64,
        private_key: Secret,
        installation_id: u64,
    },
}

impl std::fmt::Debug for ForgeAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForgeAuth::Token(_) => f.write_str("Token(***)"),
            ForgeAuth::GitHubApp {
                app_id,
                installation_id,
                ..
            } => f
                .debug_struct("GitHubApp")
                .field("app_id", app_id)
                .field("installation_id", installation_id)
                .finish_non_exhaustive(),
        }
    }
}

/// The validated forge settings.
#[derive(Debug, Clone)]
pub struct ForgeSettings {
    pub kind: ForgeKind,
    /// API base URL (the kind's public default when not given).
    pub url: String,
    pub repository: String,
    pub auth: ForgeAuth,
    /// GitHub's webhook secret / GitLab's webhook token.
    pub webhook_secret: Secret,
    pub status_page_url: Option<String>,
    pub coalesce: Duration,
}

impl ForgeSettings {
    /// Flags/env over the `[forge]` table; `Ok(None)` when no forge is configured. Problems
    /// are appended to `problems`.
    pub fn resolve(
        args: &ForgeArgs,
        file: Option<ForgeFile>,
        problems: &mut Vec<String>,
    ) -> Option<ForgeSettings> {
        let file = file.unwrap_or_default();
        let kind = args.forge.clone().or(file.kind);
        let url = args.forge_url.clone().or(file.url);
        let repository = args.forge_repository.clone().or(file.repository);
        let token_file = args.forge_token_file.clone().or(file.token_file);
        let app_id = args.github_app_id.or(file.app_id);
        let app_key = args.github_app_key_file.clone().or(file.app_key_file);
        let installation = args.github_installation_id.or(file.installation_id);
        let hook_file = args
            .forge_webhook_secret_file
            .clone()
            .or(file.webhook_secret_file);
        let link = args.status_page_url.clone().or(file.status_page_url);
        let coalesce = match (args.forge_coalesce, file.coalesce) {
            (Some(d), _) => d,
            (None, Some(text)) => humantime::parse_duration(&text).unwrap_or_else(|e| {
                problems.push(format!("forge coalesce `{text}`: {e}"));
                Duration::from_millis(200)
            }),
            (None, None) => Duration::from_millis(200),
        };
        let Some(kind) = kind else {
            if repository.is_some()
                || token_file.is_some()
                || app_id.is_some()
                || hook_file.is_some()
            {
                problems.push("forge settings given without `--forge github|gitlab`".into());
            }
            return None;
        };
        let before = problems.len();
        let kind = match kind.as_str() {
            "github" => ForgeKind::Github,
            "gitlab" => ForgeKind::Gitlab,
            other => {
                problems.push(format!("unknown forge `{other}` (github or gitlab)"));
                return None;
            }
        };
        let url = url.unwrap_or_else(|| match kind {
            ForgeKind::Github => "https://api.github.com".into(),
            ForgeKind::Gitlab => "https://gitlab.com/api/v4".into(),
        });
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            problems.push(format!("forge URL `{url}` is not http(s)"));
        }
        if let Some(link) = &link
            && !(link.starts_with("https://") || link.starts_with("http://"))
        {
            problems.push(format!("status page URL `{link}` is not http(s)"));
        }
        let repository = repository.unwrap_or_default();
        match kind {
            ForgeKind::Github => {
                let parts: Vec<&str> = repository.split('/').collect();
                if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
                    problems.push(format!(
                        "forge repository `{repository}`: give it as owner/repo"
                    ));
                }
            }
            ForgeKind::Gitlab => {
                if repository.is_empty() || repository.starts_with('/') || repository.ends_with('/')
                {
                    problems.push(format!(
                        "forge repository `{repository}`: give a project id or group/project path"
                    ));
                }
            }
        }
        let read = |what: &str, path: &PathBuf, problems: &mut Vec<String>| {
            secret::read_file(path)
                .map_err(|e| problems.push(format!("{what}: {e}")))
                .ok()
        };
        let auth = match (token_file, app_id, app_key, installation) {
            (Some(path), None, None, None) => read("forge token", &path, problems)
                .map(|s| ForgeAuth::Token(Secret::new(s.expose().trim()))),
            (None, None, None, None) => match secret::load(None, "CENTOSSRV_FORGE_TOKEN") {
                Ok(Some(s)) => Some(ForgeAuth::Token(Secret::new(s.expose().trim()))),
                Ok(None) => {
                    problems.push(
                        "forge credentials: give --forge-token-file (or a GitHub App)".into(),
                    );
                    None
                }
                Err(e) => {
                    problems.push(format!("forge token: {e}"));
                    None
                }
            },
            (None, Some(app_id), Some(key), Some(installation_id)) if kind == ForgeKind::Github => {
                read("GitHub App key", &key, problems).map(|private_key| ForgeAuth::GitHubApp {
                    app_id,
                    private_key,
                    installation_id,
                })
            }
            (None, _, _, _) if kind == ForgeKind::Github => {
                problems.push("a GitHub App needs --github-app-id, --github-app-key-file and --github-installation-id".into());
                None
            }
            _ => {
                problems.push(match kind {
                    ForgeKind::Github => "give a forge token or a GitHub App, not both".into(),
                    ForgeKind::Gitlab => "GitLab takes a token only (--forge-token-file)".into(),
                });
                None
            }
        };
        let webhook_secret =
            match secret::load(hook_file.as_deref(), "CENTOSSRV_FORGE_WEBHOOK_SECRET") {
                Ok(Some(s)) => Some(Secret::new(s.expose().trim())),
                Ok(None) => {
                    problems.push(
                        "a forge needs its webhook secret: --forge-webhook-secret-file".into(),
                    );
                    None
                }
                Err(e) => {
                    problems.push(format!("forge webhook secret: {e}"));
                    None
                }
            };
        if problems.len() > before {
            return None;
        }
        Some(ForgeSettings {
            kind,
            url,
            repository,
            auth: auth?,
            webhook_secret: webhook_secret?,
            status_page_url: link,
            coalesce,
        })
    }
}
