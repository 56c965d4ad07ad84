//! Reads observed states from a directory of `ObservedState` JSON files (one per node, the
//! format agents report), for `centossrv plan --observed DIR`.

use state::ObservedState;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Largest observed-state file read.
const MAX_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ObservedError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is larger than {MAX_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("{path}: not an ObservedState: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(
        "{path}: unsupported ObservedState format {format} (this release reads {})",
        state::OBSERVED_FORMAT
    )]
    Format { path: PathBuf, format: u32 },
    #[error("{path} and {other} both describe node `{node}`")]
    Duplicate {
        path: PathBuf,
        other: PathBuf,
        node: String,
    },
}

/// Every `*.json` file of `dir`, keyed by the node it describes.
pub fn read(dir: &Path) -> Result<BTreeMap<String, ObservedState>, ObservedError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ObservedError::Io { path, source }
    };
    let mut out = BTreeMap::new();
    let mut from: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .map(|e| e.map(|e| e.path()).map_err(io(dir)))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        if path.extension().and_then(|e| e.to_str()) != Some("json") || !path.is_file() {
            continue;
        }
        let len = std::fs::metadata(&path).map_err(io(&path))?.len();
        if len > MAX_BYTES {
            return Err(ObservedError::TooLarge { path });
        }
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let observed: ObservedState =
            serde_json::from_slice(&bytes).map_err(|e| ObservedError::Invalid {
                path: path.clone(),
                message: e.to_string(),
            })?;
        if observed.format != state::OBSERVED_FORMAT {
            return Err(ObservedError::Format {
                path,
                format: observed.format,
            });
        }
        if let Some(other) = from.get(&observed.node) {
            return Err(ObservedError::Duplicate {
                path,
                other: other.clone(),
                node: observed.node,
            });
        }
        from.insert(observed.node.clone(), path);
        out.insert(observed.node.clone(), observed);
    }
    Ok(out)
}
