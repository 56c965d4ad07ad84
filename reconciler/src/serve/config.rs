//! `centossrv serve` configuration: a TOML file, environment variables and flags, resolved
//! once into a validated [`Config`] (flag over env over file over default), every problem
//! reported at once. Secrets (database URL with a password, webhook secret) may come from a
//! file, which must not be readable by group or others.

use super::forge_config::{ForgeArgs, ForgeFile, ForgeSettings};
use crate::audit_syslog::{Destination, Facility, SyslogSettings};
use crate::secret::Secret;
use crate::source::tracker::{Location, RemoteAuth};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Flags of `centossrv serve`; each also reads `CENTOSSRV_<NAME>` from the environment.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (keys as the flags, with `_`).
    #[arg(long, env = "CENTOSSRV_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on (HTTPS: API, agents, webhooks). Port 0 picks a free port.
    #[arg(long, env = "CENTOSSRV_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory for the embedded database and the Git mirror [default: /var/lib/centossrv].
    #[arg(long, env = "CENTOSSRV_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL (`postgres://user@host/db`); the embedded SQLite when absent.
    #[arg(
        long,
        env = "CENTOSSRV_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// File holding the PostgreSQL URL (for URLs with a password).
    #[arg(long, env = "CENTOSSRV_DATABASE_URL_FILE", value_name = "FILE")]
    pub database_url_file: Option<PathBuf>,
    /// The fleet repository: a local path (read in place) or a remote URL (mirrored).
    #[arg(long, env = "CENTOSSRV_REPO", value_name = "PATH|URL")]
    pub repo: Option<String>,
    /// The branch whose commits are applied [default: main].
    #[arg(long, env = "CENTOSSRV_BRANCH")]
    pub branch: Option<String>,
    /// How often the repository is checked for a new commit [default: 60s].
    #[arg(long, env = "CENTOSSRV_POLL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub poll: Option<Duration>,
    /// How often agents send a heartbeat [default: 30s].
    #[arg(long, env = "CENTOSSRV_HEARTBEAT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub heartbeat: Option<Duration>,
    /// Server certificate chain (PEM) [default: DATA_DIR/tls/server.pem].
    #[arg(long, env = "CENTOSSRV_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM) [default: DATA_DIR/tls/server-key.pem].
    #[arg(long, env = "CENTOSSRV_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// File holding the shared secret of the push webhook (no webhook without one).
    #[arg(long, env = "CENTOSSRV_WEBHOOK_SECRET_FILE", value_name = "FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// File holding an https token or `user:password` for a remote repository.
    #[arg(long, env = "CENTOSSRV_REPO_SECRET_FILE", value_name = "FILE")]
    pub repo_secret_file: Option<PathBuf>,
    /// ssh private key for an ssh remote.
    #[arg(long, env = "CENTOSSRV_REPO_SSH_KEY", value_name = "FILE")]
    pub repo_ssh_key: Option<PathBuf>,
    /// Status page and API reads without signing in (writes and the audit log always need
    /// a signed-in user with the right role).
    #[arg(long, env = "CENTOSSRV_ANONYMOUS_READ")]
    pub anonymous_read: bool,
    /// How long a session (sign-in) lasts [default: 15m].
    #[arg(long, env = "CENTOSSRV_SESSION_TTL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub session_ttl: Option<Duration>,
    /// File holding the key that signs session tokens (at least 32 bytes); without one a
    /// random key is made at start and sessions end when the service restarts.
    #[arg(long, env = "CENTOSSRV_SESSION_KEY_FILE", value_name = "FILE")]
    pub session_key_file: Option<PathBuf>,
    /// LDAP server for directory sign-in (`ldap://HOST:PORT` or `ldaps://...`).
    #[arg(long, env = "CENTOSSRV_LDAP_URL", value_name = "URL")]
    pub ldap_url: Option<String>,
    /// The DN to bind as, with `{user}`: `uid={user},ou=people,dc=example,dc=org`.
    #[arg(long, env = "CENTOSSRV_LDAP_USER_DN", value_name = "TEMPLATE")]
    pub ldap_user_dn: Option<String>,
    /// Where the directory's groups are (for `group:` role bindings).
    #[arg(long, env = "CENTOSSRV_LDAP_GROUP_BASE", value_name = "DN")]
    pub ldap_group_base: Option<String>,
    /// Forward each new audit entry to syslog (RFC 5424): `udp://HOST:PORT`,
    /// `tcp://HOST:PORT` (octet-counted frames) or `unix:PATH` (docs/audit.md).
    #[arg(long, env = "CENTOSSRV_AUDIT_SYSLOG", value_name = "URL")]
    pub audit_syslog: Option<String>,
    /// Syslog facility of forwarded audit entries [default: auth].
    #[arg(long, env = "CENTOSSRV_AUDIT_SYSLOG_FACILITY", value_name = "NAME")]
    pub audit_syslog_facility: Option<String>,
    #[command(flatten)]
    pub forge: ForgeArgs,
}

/// The settings a config file may hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    database_url_file: Option<PathBuf>,
    repo: Option<String>,
    branch: Option<String>,
    #[serde(default, with = "humantime_serde_opt")]
    poll: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    heartbeat: Option<Duration>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    webhook_secret_file: Option<PathBuf>,
    repo_secret_file: Option<PathBuf>,
    repo_ssh_key: Option<PathBuf>,
    anonymous_read: Option<bool>,
    #[serde(default, with = "humantime_serde_opt")]
    session_ttl: Option<Duration>,
    session_key_file: Option<PathBuf>,
    ldap: Option<crate::auth::ldap::LdapConfig>,
    audit_syslog: Option<String>,
    audit_syslog_facility: Option<String>,
    forge: Option<ForgeFile>,
}

mod humantime_serde_opt {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// The validated configuration.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `None`: the embedded SQLite in `data_dir`.
    pub database_url: Option<String>,
    pub repo: Location,
    pub branch: String,
    pub poll: Duration,
    pub heartbeat: Duration,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub webhook_secret: Option<Secret>,
    /// Pull request planning on a forge, when configured.
    pub forge: Option<ForgeSettings>,
    /// Signing in and access (`docs/access.md`).
    pub auth: crate::auth::AuthConfig,
    /// Audit forwarding to syslog, when configured.
    pub audit_syslog: Option<SyslogSettings>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(store::redact_url),
            )
            .field("repo", &self.repo)
            .field("branch", &self.branch)
            .field("poll", &self.poll)
            .field("heartbeat", &self.heartbeat)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<set>"),
            )
            .field("forge", &self.forge)
            .field("audit_syslog", &self.audit_syslog)
            .finish_non_exhaustive()
    }
}

/// Every problem found in the configuration.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError(pub Vec<String>);

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";
pub const DEFAULT_DATA_DIR: &str = "/var/lib/centossrv";

impl Config {
    /// Resolves flags/env over the config file over defaults.
    pub fn resolve(args: &ServeArgs) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let file = match &args.config {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => match toml::from_str::<FileConfig>(&text) {
                    Ok(f) => f,
                    Err(e) => {
                        problems.push(format!("{}: {e}", path.display()));
                        FileConfig::default()
                    }
                },
                Err(e) => {
                    problems.push(format!("{}: {e}", path.display()));
                    FileConfig::default()
                }
            },
            None => FileConfig::default(),
        };
        let listen = args.listen.or(file.listen).unwrap_or_else(|| {
            DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| ([127, 0, 0, 1], 8443).into())
        });
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let url_file = args.database_url_file.clone().or(file.database_url_file);
        let database_url = match (args.database_url.clone().or(file.database_url), url_file) {
            (Some(_), Some(_)) => {
                problems.push("give the database URL or a file holding it, not both".into());
                None
            }
            (Some(url), None) => Some(url),
            (None, Some(path)) => match crate::secret::read_file(&path) {
                Ok(url) => Some(url.expose().trim().to_owned()),
                Err(e) => {
                    problems.push(format!("database URL file: {e}"));
                    None
                }
            },
            (None, None) => None,
        };
        if let Some(url) = &database_url
            && !url.starts_with("postgres://")
            && !url.starts_with("postgresql://")
            && !url.starts_with("sqlite:")
        {
            problems.push(format!(
                "database URL `{}` is neither postgres:// nor sqlite:",
                store::redact_url(url)
            ));
        }
        let auth = match (
            args.repo_secret_file.clone().or(file.repo_secret_file),
            args.repo_ssh_key.clone().or(file.repo_ssh_key),
        ) {
            (Some(_), Some(_)) => {
                problems
                    .push("give an https secret or an ssh key for the repository, not both".into());
                RemoteAuth::None
            }
            (Some(path), None) => match crate::secret::read_file(&path) {
                Ok(s) => RemoteAuth::from_http_secret(&s),
                Err(e) => {
                    problems.push(format!("repository secret: {e}"));
                    RemoteAuth::None
                }
            },
            (None, Some(key)) => {
                if let Err(e) = crate::secret::read_file(&key) {
                    problems.push(format!("repository ssh key: {e}"));
                }
                RemoteAuth::SshKey(key)
            }
            (None, None) => RemoteAuth::None,
        };
        let repo = match args.repo.clone().or(file.repo) {
            Some(r) => match Location::parse(&r, auth) {
                Location::Local(path) if !path.exists() => {
                    problems.push(format!(
                        "repository `{r}` does not exist (and is not a URL)"
                    ));
                    None
                }
                location => Some(location),
            },
            None => {
                problems.push("no fleet repository: give --repo PATH|URL".into());
                None
            }
        };
        let branch = args
            .branch
            .clone()
            .or(file.branch)
            .unwrap_or_else(|| "main".into());
        if branch.is_empty() || branch.contains("..") || branch.starts_with('-') {
            problems.push(format!("`{branch}` is not a branch name"));
        }
        let poll = args.poll.or(file.poll).unwrap_or(Duration::from_secs(60));
        let heartbeat = args
            .heartbeat
            .or(file.heartbeat)
            .unwrap_or(Duration::from_secs(30));
        if poll < Duration::from_millis(100) {
            problems.push("poll interval under 100ms".into());
        }
        if heartbeat < Duration::from_secs(1) {
            problems.push("heartbeat under 1s".into());
        }
        let tls_cert = args
            .tls_cert
            .clone()
            .or(file.tls_cert)
            .unwrap_or_else(|| data_dir.join("tls/server.pem"));
        let tls_key = args
            .tls_key
            .clone()
            .or(file.tls_key)
            .unwrap_or_else(|| data_dir.join("tls/server-key.pem"));
        for (what, path) in [("TLS certificate", &tls_cert), ("TLS key", &tls_key)] {
            if !path.is_file() {
                problems.push(format!(
                    "{what} {} not found (create a dev CA and certificate with `centossrv certs init --dir DIR`)",
                    path.display()
                ));
            }
        }
        let webhook_file = args
            .webhook_secret_file
            .clone()
            .or(file.webhook_secret_file);
        let webhook_secret =
            match crate::secret::load(webhook_file.as_deref(), "CENTOSSRV_WEBHOOK_SECRET") {
                Ok(secret) => secret,
                Err(e) => {
                    problems.push(format!("webhook secret: {e}"));
                    None
                }
            };
        let forge = ForgeSettings::resolve(&args.forge, file.forge, &mut problems);
        let session_ttl = args
            .session_ttl
            .or(file.session_ttl)
            .unwrap_or(Duration::from_secs(15 * 60));
        if session_ttl < Duration::from_secs(60) || session_ttl > Duration::from_secs(24 * 3600) {
            problems.push("session TTL must be 1 minute to 24 hours".into());
        }
        let session_key = match args.session_key_file.clone().or(file.session_key_file) {
            Some(path) => match crate::secret::read_file(&path) {
                Ok(key) if key.expose().trim().len() >= 32 => {
                    Some(key.expose().trim().as_bytes().to_vec())
                }
                Ok(_) => {
                    problems.push(format!(
                        "session key file {}: at least 32 bytes needed",
                        path.display()
                    ));
                    None
                }
                Err(e) => {
                    problems.push(format!("session key: {e}"));
                    None
                }
            },
            None => None,
        };
        let ldap = match (args.ldap_url.clone(), args.ldap_user_dn.clone(), file.ldap) {
            (Some(url), Some(user_dn), file_ldap) => Some(crate::auth::ldap::LdapConfig {
                url,
                user_dn,
                group_base: args
                    .ldap_group_base
                    .clone()
                    .or_else(|| file_ldap.as_ref().and_then(|l| l.group_base.clone())),
                group_filter: file_ldap.as_ref().map_or_else(
                    || "(|(member={dn})(memberUid={user}))".into(),
                    |l| l.group_filter.clone(),
                ),
                timeout_secs: file_ldap.as_ref().map_or(5, |l| l.timeout_secs),
            }),
            (None, None, file_ldap) => file_ldap,
            _ => {
                problems.push("LDAP needs both --ldap-url and --ldap-user-dn".into());
                None
            }
        };
        if let Some(ldap) = &ldap {
            if !ldap.url.starts_with("ldap://") && !ldap.url.starts_with("ldaps://") {
                problems.push(format!(
                    "LDAP URL `{}` is neither ldap:// nor ldaps://",
                    ldap.url
                ));
            }
            if !ldap.user_dn.contains("{user}") {
                problems.push("the LDAP user DN template has no `{user}`".into());
            }
        }
        let access = crate::auth::AuthConfig {
            anonymous_read: args.anonymous_read || file.anonymous_read.unwrap_or(false),
            session_ttl,
            session_key,
            ldap,
            ..crate::auth::AuthConfig::default()
        };
        let audit_syslog = audit_syslog(
            args.audit_syslog.clone().or(file.audit_syslog),
            args.audit_syslog_facility
                .clone()
                .or(file.audit_syslog_facility),
            &mut problems,
        );
        match (problems.is_empty(), repo) {
            (true, Some(repo)) => Ok(Config {
                listen,
                data_dir,
                database_url,
                repo,
                branch,
                poll,
                heartbeat,
                tls_cert,
                tls_key,
                webhook_secret,
                forge,
                auth: access,
                audit_syslog,
            }),
            _ => Err(ConfigError(problems)),
        }
    }
}

/// The audit forwarding settings, when a destination is given.
fn audit_syslog(
    destination: Option<String>,
    facility: Option<String>,
    problems: &mut Vec<String>,
) -> Option<SyslogSettings> {
    let facility_given = facility.is_some();
    let facility = match facility.as_deref().map(str::parse::<Facility>) {
        Some(Ok(f)) => f,
        Some(Err(e)) => {
            problems.push(format!("audit syslog: {e}"));
            Facility::DEFAULT
        }
        None => Facility::DEFAULT,
    };
    let Some(destination) = destination else {
        if facility_given {
            problems.push("a syslog facility is set but no --audit-syslog destination".into());
        }
        return None;
    };
    match destination.parse::<Destination>() {
        Ok(destination) => Some(SyslogSettings {
            destination,
            facility,
        }),
        Err(e) => {
            problems.push(format!("audit syslog: {e}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_every_problem_at_once() {
        let args = ServeArgs {
            repo: Some("/does/not/exist".into()),
            branch: Some("-x".into()),
            heartbeat: Some(Duration::from_millis(10)),
            tls_cert: Some("/nope.pem".into()),
            tls_key: Some("/nope-key.pem".into()),
            database_url: Some("mysql://u:pw@h/db".into()),
            audit_syslog: Some("tls://siem:6514".into()),
            audit_syslog_facility: Some("local9".into()),
            ..ServeArgs::default()
        };
        let err = Config::resolve(&args).expect_err("invalid").to_string();
        for part in [
            "repository `/does/not/exist` does not exist",
            "`-x` is not a branch name",
            "heartbeat under 1s",
            "TLS certificate /nope.pem not found",
            "TLS key /nope-key.pem not found",
            "neither postgres:// nor sqlite:",
            "audit syslog: `tls://siem:6514`: unknown scheme `tls`",
            "audit syslog: unknown syslog facility `local9`",
        ] {
            assert!(err.contains(part), "{part} missing from:\n{err}");
        }
        assert!(!err.contains("pw"), "password leaked: {err}");
    }

    #[test]
    fn flags_override_the_file_and_secrets_files_must_be_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("c.pem");
        std::fs::write(&cert, "x").expect("write");
        let secret = dir.path().join("hook");
        std::fs::write(&secret, "s3cret\n").expect("write");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            format!(
                "repo = \"https://git.example.net/fleet.git\"\nbranch = \"prod\"\npoll = \"5m\"\naudit_syslog = \"udp://127.0.0.1:514\"\naudit_syslog_facility = \"local0\"\ntls_cert = \"{0}\"\ntls_key = \"{0}\"\nwebhook_secret_file = \"{1}\"\n",
                cert.display(),
                secret.display()
            ),
        )
        .expect("write");
        let args = ServeArgs {
            config: Some(file.clone()),
            branch: Some("main".into()),
            ..ServeArgs::default()
        };
        let err = Config::resolve(&args)
            .expect_err("world-readable secret")
            .to_string();
        assert!(err.contains("readable by group or other"), "{err}");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let config = Config::resolve(&args).expect("valid");
        assert_eq!(config.branch, "main");
        assert_eq!(config.poll, Duration::from_secs(300));
        assert!(
            matches!(&config.repo, Location::Remote { url, .. } if url == "https://git.example.net/fleet.git"),
            "{config:?}"
        );
        assert_eq!(
            config.webhook_secret.as_ref().map(Secret::expose),
            Some("s3cret")
        );
        assert!(!format!("{config:?}").contains("s3cret"));
        assert_eq!(
            config.audit_syslog,
            Some(SyslogSettings {
                destination: "udp://127.0.0.1:514".parse().expect("destination"),
                facility: "local0".parse().expect("facility"),
            })
        );
    }
}
