//! The store's one error type, and the redaction of passwords from database URLs.

use thiserror::Error;

/// Everything that can go wrong at the persistence boundary. Messages name the operation and
/// never contain a database password.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error(
        "unsupported database URL `{url}`: expected `sqlite://PATH` or `postgres://USER@HOST/DB`"
    )]
    UnsupportedUrl { url: String },
    #[error("invalid database URL `{url}`: {source}")]
    InvalidUrl {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot connect to `{url}`: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot migrate the database `{url}` to the current schema: {source}")]
    Migrate {
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("database error while trying to {op}: {source}")]
    Query {
        op: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("no node named `{name}` (nodes are created by upsert_node or record_observed)")]
    UnknownNode { name: String },
    #[error("no commit `{sha}` recorded (record_commit first)")]
    UnknownCommit { sha: String },
    #[error("no apply run with id {id}")]
    UnknownRun { id: i64 },
    #[error("apply run {id} is already finished")]
    RunFinished { id: i64 },
    #[error("no desired state for node `{node}` at commit `{commit}`")]
    NoDesiredState { commit: String, node: String },
    #[error(
        "a desired state compiled from commit `{inner}` cannot be stored under commit `{outer}`"
    )]
    CommitMismatch { outer: String, inner: String },
    #[error("enrollment refused: {reason}")]
    TokenRefused {
        reason: crate::enrollment::TokenRefusal,
    },
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },
    #[error("stored data is damaged ({what}): {detail}")]
    Corrupt { what: String, detail: String },
    #[error("cannot encode {what} as JSON: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Adds the operation's name to a sqlx error.
pub(crate) trait QueryContext<T> {
    fn ctx(self, op: &'static str) -> Result<T>;
}

impl<T> QueryContext<T> for std::result::Result<T, sqlx::Error> {
    fn ctx(self, op: &'static str) -> Result<T> {
        self.map_err(|source| StoreError::Query { op, source })
    }
}

/// `url` with any password replaced by `***`, safe for messages and logs.
///
/// Handles `scheme://user:password@host/...` and a `password=` query parameter.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                let start = rest_start + colon + 1;
                out.replace_range(start..rest_start + at, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let redacted: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{head}{}", redacted.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cr3t@db.example:5432/centossrv"),
            "postgres://app:***@db.example:5432/centossrv"
        );
        assert_eq!(
            redact_url("postgres://app:p%40ss:w@rd@db/x"),
            "postgres://app:***@db/x"
        );
        assert_eq!(
            redact_url("postgres://db/x?user=app&password=s3cr3t&sslmode=require"),
            "postgres://db/x?user=app&password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5432/postgres"),
            "postgres://postgres@127.0.0.1:5432/postgres"
        );
        assert_eq!(
            redact_url("sqlite:///var/lib/centossrv/store.db?mode=rwc"),
            "sqlite:///var/lib/centossrv/store.db?mode=rwc"
        );
    }
}
