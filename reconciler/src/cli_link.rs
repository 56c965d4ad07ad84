//! The agent-link commands of `centossrv`: `certs init` (a development CA and server
//! certificate) and `enroll-token create` (a one-time token, printed once, audited).
//! Exit codes: 0 success, 2 usage or IO error.

use crate::tls;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use store::{AuditRecord, Store};

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Generate a development CA (ca.pem, ca-key.pem) and a server certificate signed by it
    /// (server.pem, server-key.pem) in DIR. Keys are written with mode 0600. For production,
    /// bring your own certificate chain and key.
    Init {
        /// Directory to write the four files to (created if missing).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// A DNS name or IP address the server certificate names (repeatable; default
        /// `localhost` and `127.0.0.1`).
        #[arg(long = "host", value_name = "NAME")]
        hosts: Vec<String>,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
}

/// Where the store is.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct StoreArgs {
    /// The data directory of the embedded SQLite store (DIR/centossrv.db).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A database URL (`sqlite://PATH?mode=rwc` or `postgres://USER@HOST/DB`).
    #[arg(
        long,
        visible_alias = "database",
        value_name = "URL",
        env = "CENTOSSRV_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
}

impl StoreArgs {
    pub async fn open(&self) -> Result<Store, store::StoreError> {
        match (&self.data_dir, &self.database_url) {
            (Some(dir), _) => Store::open_data_dir(dir).await,
            (None, Some(url)) => Store::open(url).await,
            (None, None) => Err(store::StoreError::Invalid {
                what: "store",
                detail: "give --data-dir or --database-url".into(),
            }),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum EnrollTokenCommand {
    /// Create a one-time enrollment token and print it (once: only its hash is stored).
    Create {
        /// How long the token is valid (`30m`, `24h`, `7d`; at most a year).
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// Who creates it, for the audit log (default: $USER).
        #[arg(long, value_name = "NAME")]
        created_by: Option<String>,
        /// Bind the token to this node name: only it can redeem the token, and it may
        /// re-enroll a node that is enrolled already (a token without `--node` enrolls new
        /// nodes only, so it cannot take over an enrolled node's identity).
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub fn certs(command: &CertsCommand) -> ExitCode {
    match command {
        CertsCommand::Init { dir, hosts, force } => match tls::init_certs(dir, hosts, *force) {
            Ok(files) => {
                println!(
                    "wrote {}, {} (CA) and {}, {} (server)",
                    files.ca_cert.display(),
                    files.ca_key.display(),
                    files.server_cert.display(),
                    files.server_key.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
    }
}

pub fn enroll_token(command: &EnrollTokenCommand) -> ExitCode {
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
    match command {
        EnrollTokenCommand::Create {
            ttl,
            created_by,
            node,
            store,
        } => runtime.block_on(async {
            let actor = created_by
                .clone()
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "operator".into());
            if let Some(node) = node
                && !state::wire::valid_node_name(node)
            {
                eprintln!(
                    "error: `{}` is not a node name: {}",
                    node.escape_debug(),
                    state::wire::NODE_NAME_RULE
                );
                return ExitCode::from(2);
            }
            match create(store, *ttl, &actor, node.as_deref()).await {
                Ok(token) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }),
    }
}

async fn create(
    store: &StoreArgs,
    ttl: Duration,
    actor: &str,
    node: Option<&str>,
) -> Result<String, store::StoreError> {
    let store = store.open().await?;
    let token = store.create_enrollment_token(ttl, actor, node).await?;
    store
        .audit_append(&AuditRecord {
            actor: actor.to_owned(),
            action: "enroll_token.create".into(),
            target: node.map_or_else(|| "fleet".to_owned(), |n| format!("node:{n}")),
            commit: None,
            outcome: "ok".into(),
            details: serde_json::json!({"ttl_seconds": ttl.as_secs(), "node": node}),
        })
        .await?;
    store.close().await;
    Ok(token)
}
