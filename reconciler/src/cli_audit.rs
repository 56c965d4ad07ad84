//! `centossrv audit verify` (walk the hash chain, name the first altered, removed or
//! reordered entry) and `centossrv audit export` (every entry as one JSON object per line,
//! read in pages, for SIEMs); see docs/audit.md. The database is found as `serve` finds it.
//! Exit codes: 0 intact (verify) or exported, 1 the chain is broken, 2 usage, database or
//! IO error.

use crate::cli::Format;
use chrono::SecondsFormat;
use clap::{Args, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use store::{AuditEntry, AuditVerdict, BreakKind, MAX_PAGE, Store, StoreError};

/// Version of the JSON printed by `audit verify --format json` and of each exported line.
pub const AUDIT_CLI_FORMAT: u32 = 1;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the audit log's hash chain from entry 1. Prints `intact: N entries, head HASH`
    /// (exit 0) or the first altered, removed or reordered entry (exit 1).
    Verify {
        #[command(flatten)]
        database: DatabaseArgs,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Write audit entries, oldest first, as one JSON object per line (for SIEMs).
    Export(ExportArgs),
}

/// Where the store is: as `centossrv serve` finds it (flag or environment over the serve
/// configuration file over the default data directory).
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// A database URL (`postgres://USER@HOST/DB` or `sqlite://PATH`).
    #[arg(
        long = "database",
        visible_alias = "database-url",
        env = "CENTOSSRV_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database: Option<String>,
    /// File holding the database URL (for URLs with a password).
    #[arg(long, env = "CENTOSSRV_DATABASE_URL_FILE", value_name = "FILE")]
    pub database_url_file: Option<PathBuf>,
    /// Data directory of the embedded SQLite store (DIR/centossrv.db) when no URL is given
    /// [default: /var/lib/centossrv].
    #[arg(long, env = "CENTOSSRV_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The `serve` configuration file; its database settings are used.
    #[arg(long, env = "CENTOSSRV_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    pub format: ExportFormat,
    /// Only entries after sequence number SEQ (pass the last `seq` you already have).
    #[arg(long, visible_alias = "after", value_name = "SEQ", default_value_t = 0)]
    pub since: i64,
    /// Write to FILE (replaced atomically once complete) instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// What can go wrong before a verdict or a complete export.
#[derive(Debug, thiserror::Error)]
pub enum AuditCliError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Usage(String),
    #[error("no audit log database at {path} (give --database URL or --data-dir DIR)")]
    NoDatabase { path: PathBuf },
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// The database settings of a `serve` configuration file; other keys are ignored.
#[derive(Debug, Default, Deserialize)]
struct ServeFileDatabase {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    database_url_file: Option<PathBuf>,
}

impl DatabaseArgs {
    /// Opens the store: a URL (given, or read from a private file) or the embedded SQLite
    /// in the data directory, which must exist (verification never creates a database).
    pub async fn open(&self) -> Result<Store, AuditCliError> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| AuditCliError::Io {
                    what: format!("read {}", path.display()),
                    source,
                })?;
                toml::from_str::<ServeFileDatabase>(&text)
                    .map_err(|e| AuditCliError::Usage(format!("{}: {e}", path.display())))?
            }
            None => ServeFileDatabase::default(),
        };
        let url = self.database.clone().or(file.database_url);
        let url_file = self.database_url_file.clone().or(file.database_url_file);
        let url = match (url, url_file) {
            (Some(_), Some(_)) => {
                return Err(AuditCliError::Usage(
                    "give the database URL or a file holding it, not both".into(),
                ));
            }
            (Some(url), None) => Some(url),
            (None, Some(path)) => Some(
                crate::secret::read_file(&path)
                    .map_err(|e| AuditCliError::Usage(format!("database URL file: {e}")))?
                    .expose()
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        if let Some(url) = url {
            return Ok(Store::open(&url).await?);
        }
        let data_dir = self
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(crate::serve::config::DEFAULT_DATA_DIR));
        let path = data_dir.join(store::SQLITE_FILE_NAME);
        if !path.is_file() {
            return Err(AuditCliError::NoDatabase { path });
        }
        Ok(Store::open_data_dir(&data_dir).await?)
    }
}

/// Runs an `audit` subcommand.
pub fn run(command: &AuditCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match command {
            AuditCommand::Verify { database, format } => verify(database, *format).await,
            AuditCommand::Export(args) => export(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn verify(database: &DatabaseArgs, format: Format) -> Result<ExitCode, AuditCliError> {
    let store = database.open().await?;
    let verdict = store.audit_verify().await;
    store.close().await;
    let verdict = verdict?;
    let text = match format {
        Format::Human => human_verdict(&verdict),
        Format::Json => {
            let mut json =
                serde_json::to_string(&json_verdict(&verdict)).map_err(|e| AuditCliError::Io {
                    what: "encode the verdict".into(),
                    source: e.into(),
                })?;
            json.push('\n');
            json
        }
    };
    write_stdout(&text)?;
    Ok(match verdict {
        AuditVerdict::Intact { .. } => ExitCode::SUCCESS,
        AuditVerdict::Broken(_) => ExitCode::from(1),
    })
}

fn kind_name(kind: BreakKind) -> &'static str {
    match kind {
        BreakKind::Altered => "altered",
        BreakKind::Removed => "removed",
        BreakKind::Reordered => "reordered",
    }
}

/// `intact: N entries, head HASH`, or `broken: entry SEQ KIND: DETAIL` with the expected
/// and found hashes on their own lines when the break is about a hash.
pub fn human_verdict(verdict: &AuditVerdict) -> String {
    match verdict {
        AuditVerdict::Intact { entries, head } => {
            format!("intact: {entries} entries, head {head}\n")
        }
        AuditVerdict::Broken(b) => {
            let mut text = format!(
                "broken: entry {} {}: {}\n",
                b.seq,
                kind_name(b.kind),
                b.detail
            );
            if let Some(expected) = &b.expected_hash {
                text.push_str(&format!("  expected hash: {expected}\n"));
            }
            if let Some(found) = &b.found_hash {
                text.push_str(&format!("  found hash:    {found}\n"));
            }
            text
        }
    }
}

#[derive(Debug, Serialize)]
struct JsonVerdict<'a> {
    format: u32,
    intact: bool,
    entries: Option<i64>,
    head: Option<&'a str>,
    broken: Option<JsonBreak<'a>>,
}

#[derive(Debug, Serialize)]
struct JsonBreak<'a> {
    seq: i64,
    kind: &'static str,
    detail: &'a str,
    expected_hash: Option<&'a str>,
    found_hash: Option<&'a str>,
}

fn json_verdict(verdict: &AuditVerdict) -> JsonVerdict<'_> {
    match verdict {
        AuditVerdict::Intact { entries, head } => JsonVerdict {
            format: AUDIT_CLI_FORMAT,
            intact: true,
            entries: Some(*entries),
            head: Some(head),
            broken: None,
        },
        AuditVerdict::Broken(b) => JsonVerdict {
            format: AUDIT_CLI_FORMAT,
            intact: false,
            entries: None,
            head: None,
            broken: Some(JsonBreak {
                seq: b.seq,
                kind: kind_name(b.kind),
                detail: &b.detail,
                expected_hash: b.expected_hash.as_deref(),
                found_hash: b.found_hash.as_deref(),
            }),
        },
    }
}

/// One exported entry; see docs/audit.md for the line format.
#[derive(Debug, Serialize)]
struct ExportLine<'a> {
    format: u32,
    seq: i64,
    at: String,
    actor: &'a str,
    action: &'a str,
    target: &'a str,
    commit: Option<&'a str>,
    outcome: &'a str,
    details: &'a serde_json::Value,
    prev_hash: &'a str,
    hash: &'a str,
}

/// `entry` as one line of JSON (no newline). `at` has microseconds and `Z`, exactly as in
/// the hashed content, so the hash can be recomputed from the line.
pub fn export_line(entry: &AuditEntry) -> Result<String, serde_json::Error> {
    serde_json::to_string(&ExportLine {
        format: AUDIT_CLI_FORMAT,
        seq: entry.seq,
        at: entry.at.to_rfc3339_opts(SecondsFormat::Micros, true),
        actor: &entry.record.actor,
        action: &entry.record.action,
        target: &entry.record.target,
        commit: entry.record.commit.as_deref(),
        outcome: &entry.record.outcome,
        details: &entry.record.details,
        prev_hash: &entry.prev_hash,
        hash: &entry.hash,
    })
}

async fn export(args: &ExportArgs) -> Result<ExitCode, AuditCliError> {
    let ExportFormat::Jsonl = args.format;
    if args.since < 0 {
        return Err(AuditCliError::Usage(format!(
            "--since {}: sequence numbers start at 1",
            args.since
        )));
    }
    let store = args.database.open().await?;
    let result = match &args.output {
        Some(path) => export_to_file(&store, args.since, path).await,
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            match write_entries(&store, args.since, &mut out).await {
                Err(AuditCliError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::BrokenPipe =>
                {
                    // `| head`: the reader has what it wanted.
                    Ok(0)
                }
                other => other,
            }
        }
    };
    store.close().await;
    let count = result?;
    eprintln!("exported {count} audit entries");
    Ok(ExitCode::SUCCESS)
}

/// Writes to a temporary file beside `path`, renamed over it once complete and durable.
async fn export_to_file(store: &Store, since: i64, path: &Path) -> Result<u64, AuditCliError> {
    let io = |what: &str| {
        let what = format!("{what} {}", path.display());
        move |source| AuditCliError::Io { what, source }
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(io("create a file beside"))?;
    let count = {
        let mut out = std::io::BufWriter::new(file.as_file_mut());
        let count = write_entries(store, since, &mut out).await?;
        out.flush().map_err(io("write"))?;
        count
    };
    file.as_file().sync_all().map_err(io("write"))?;
    file.persist(path)
        .map_err(|e| e.error)
        .map_err(io("replace"))?;
    Ok(count)
}

/// Reads the log page by page after `since` and writes one line per entry.
async fn write_entries(
    store: &Store,
    since: i64,
    out: &mut impl Write,
) -> Result<u64, AuditCliError> {
    let mut after = since;
    let mut count = 0u64;
    loop {
        let page = store.audit_list(Some(after), MAX_PAGE).await?;
        for entry in &page.items {
            let line = export_line(entry).map_err(|e| AuditCliError::Io {
                what: format!("encode audit entry {}", entry.seq),
                source: e.into(),
            })?;
            out.write_all(line.as_bytes())
                .and_then(|()| out.write_all(b"\n"))
                .map_err(|source| AuditCliError::Io {
                    what: "write the export".into(),
                    source,
                })?;
            count += 1;
            after = entry.seq;
        }
        if page.next.is_none() {
            break;
        }
    }
    out.flush().map_err(|source| AuditCliError::Io {
        what: "write the export".into(),
        source,
    })?;
    Ok(count)
}

fn write_stdout(text: &str) -> Result<(), AuditCliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(source) => Err(AuditCliError::Io {
            what: "write output".into(),
            source,
        }),
    }
}
