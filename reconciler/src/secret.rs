//! Secrets given to the reconciler (webhook secret, Git token or password): read from a file
//! (`--x-file`, refused when group or other may read it) or an environment variable, held in
//! a type whose `Debug` never shows the value.

use std::path::{Path, PathBuf};

/// A secret value. `Debug` prints `Secret(***)`; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value (trailing newlines, as left by `echo > file`, are the caller's business).
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "secret file {path} is readable by group or other users (mode {mode:04o}); run `chmod 600 {path}`"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("secret file {path} is empty")]
    EmptyFile { path: PathBuf },
    #[error("environment variable {name} is empty")]
    EmptyEnv { name: String },
    #[error("environment variable {name} is not valid UTF-8")]
    NotUnicode { name: String },
    #[error("secret file {path} is not valid UTF-8")]
    FileNotUnicode { path: PathBuf },
}

/// Reads a secret from `file` when given (it wins), else from the environment variable
/// `env_var`; `Ok(None)` when neither is set. One trailing newline (`\n` or `\r\n`) of a file is
/// removed; an empty value is an error, not "no secret".
pub fn load(file: Option<&Path>, env_var: &str) -> Result<Option<Secret>, SecretError> {
    if let Some(path) = file {
        return read_file(path).map(Some);
    }
    match std::env::var(env_var) {
        Ok(value) if value.is_empty() => Err(SecretError::EmptyEnv {
            name: env_var.to_owned(),
        }),
        Ok(value) => Ok(Some(Secret(value))),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(SecretError::NotUnicode {
            name: env_var.to_owned(),
        }),
    }
}

/// Reads a secret file, refusing one whose permissions let group or other users read or
/// write it (like garage's `secrets.rs`).
pub fn read_file(path: &Path) -> Result<Secret, SecretError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| SecretError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SecretError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let mut value = String::from_utf8(bytes).map_err(|_| SecretError::FileNotUnicode {
        path: path.to_owned(),
    })?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        return Err(SecretError::EmptyFile {
            path: path.to_owned(),
        });
    }
    Ok(Secret(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, name: &str, content: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, content).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    #[test]
    fn file_private_is_read_and_trailing_newline_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(dir.path(), "s", "hunter2\n", 0o600);
        let secret = load(Some(&path), "CENTOSSRV_TEST_UNSET_VAR").expect("load");
        assert_eq!(secret.as_ref().map(Secret::expose), Some("hunter2"));
        assert_eq!(format!("{secret:?}"), "Some(Secret(***))");
    }

    #[test]
    fn file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(dir.path(), "s", "hunter2", 0o644);
        let err = load(Some(&path), "X").expect_err("must refuse");
        assert!(
            matches!(err, SecretError::TooOpen { mode: 0o644, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"), "{err}");
        let path = write(dir.path(), "g", "hunter2", 0o640);
        assert!(matches!(read_file(&path), Err(SecretError::TooOpen { .. })));
    }

    #[test]
    fn empty_file_is_an_error_and_missing_env_is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(dir.path(), "s", "\n", 0o600);
        assert!(matches!(
            read_file(&path),
            Err(SecretError::EmptyFile { .. })
        ));
        assert!(
            load(None, "CENTOSSRV_TEST_SURELY_UNSET_1b9f")
                .expect("load")
                .is_none()
        );
    }
}
