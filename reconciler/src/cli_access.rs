//! `centossrv user ...` and `centossrv token ...`: users, role bindings and API tokens,
//! straight on the store (how the first admin is made, and what an admin does without the
//! API). Passwords are read from a file or stdin, never from the command line; a token's
//! text is printed once. Every change is audited with `$USER` (or `--actor`) as actor.

use crate::auth::{Role, password};
use crate::cli_link::StoreArgs;
use clap::{Args, Subcommand};
use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use store::{AuditRecord, Store};

/// Who acts, for the audit log.
#[derive(Debug, Args)]
pub struct ActorArgs {
    /// Who makes the change, for the audit log (default: $USER).
    #[arg(long, value_name = "NAME")]
    pub actor: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user: local (with a password) or from the directory (LDAP, no password).
    Add {
        name: String,
        /// Bind the user to this role.
        #[arg(long, value_enum)]
        role: Option<Role>,
        /// Read the password from this file (first line).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["password_stdin", "directory"])]
        password_file: Option<PathBuf>,
        /// Read the password from standard input (first line).
        #[arg(long, conflicts_with = "directory")]
        password_stdin: bool,
        /// A directory (LDAP) user: signs in with the directory's password.
        #[arg(long)]
        directory: bool,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// List users with their roles.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Bind a user (or `group:NAME`) to a role; `none` removes the binding.
    Role {
        /// A user name, or `group:NAME` for a directory group.
        subject: String,
        /// viewer, auditor, operator, admin or none.
        role: String,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Set a new password (from a file or stdin).
    Passwd {
        name: String,
        #[arg(long, value_name = "FILE", conflicts_with = "password_stdin")]
        password_file: Option<PathBuf>,
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Disable a user: no sign-in, their tokens stop working.
    Disable {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Enable a disabled user.
    Enable {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Delete a user with their tokens and CLI role binding.
    Delete {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        actor: ActorArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user and print it (once: only its hash is stored).
    Create {
        /// The user the token acts as.
        #[arg(long)]
        user: String,
        /// What the token is for.
        #[arg(long)]
        label: String,
        /// Days until it expires (1 to 366).
        #[arg(long, default_value_t = 90)]
        days: u32,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// List tokens (ids, users, labels, expiry; never their text).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a token by id.
    Revoke {
        id: String,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        actor: ActorArgs,
    },
}

/// Why a command failed (exit 1: refused input; 2: the store or the system).
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Io(String),
}

fn runtime_run(f: impl std::future::Future<Output = Result<(), CliError>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ CliError::Input(_)) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn actor(a: &ActorArgs) -> String {
    let name = a
        .actor
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "operator".into());
    format!("cli:{name}")
}

async fn audit(
    store: &Store,
    actor: &str,
    action: &str,
    target: &str,
    details: serde_json::Value,
) -> Result<(), CliError> {
    store
        .audit_append(&AuditRecord {
            actor: actor.to_owned(),
            action: action.into(),
            target: target.into(),
            commit: None,
            outcome: "ok".into(),
            details,
        })
        .await?;
    Ok(())
}

fn read_password(file: Option<&PathBuf>, stdin: bool) -> Result<String, CliError> {
    let text = match (file, stdin) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map_err(|e| CliError::Io(format!("{}: {e}", path.display())))?,
        (None, true) => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| CliError::Io(format!("standard input: {e}")))?;
            s
        }
        (None, false) => {
            return Err(CliError::Input(
                "give --password-file FILE or --password-stdin (or --directory for an LDAP user)"
                    .into(),
            ));
        }
    };
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

fn hash(password: &str) -> Result<String, CliError> {
    password::hash(password).map_err(|e| CliError::Input(e.to_string()))
}

pub fn user(command: &UserCommand) -> ExitCode {
    runtime_run(async {
        match command {
            UserCommand::Add {
                name,
                role,
                password_file,
                password_stdin,
                directory,
                store,
                actor: who,
            } => {
                store::check_user_name(name).map_err(|e| CliError::Input(e.to_string()))?;
                let phc = if *directory {
                    None
                } else {
                    Some(hash(&read_password(
                        password_file.as_ref(),
                        *password_stdin,
                    )?)?)
                };
                let store = store.open().await?;
                store
                    .create_user(name, phc.as_deref())
                    .await
                    .map_err(|e| match e {
                        store::StoreError::Invalid { .. } => CliError::Input(e.to_string()),
                        other => CliError::Store(other),
                    })?;
                if let Some(role) = role {
                    store
                        .bind_role(&format!("user:{name}"), "cli", role.as_str())
                        .await?;
                }
                audit(
                    &store,
                    &actor(who),
                    "user.create",
                    name,
                    serde_json::json!({"role": role, "local": phc.is_some()}),
                )
                .await?;
                println!(
                    "created {} user `{name}`{}",
                    if phc.is_some() { "local" } else { "directory" },
                    role.map(|r| format!(" with role {r}")).unwrap_or_default()
                );
                store.close().await;
                Ok(())
            }
            UserCommand::List { store } => {
                let store = store.open().await?;
                let users = store.users().await?;
                let bindings = store.role_bindings().await?;
                println!("{:<24} {:<10} {:<9} ROLES", "USER", "KIND", "STATE");
                for u in &users {
                    let subject = format!("user:{}", u.name);
                    let roles: Vec<String> = bindings
                        .iter()
                        .filter(|b| b.subject == subject)
                        .map(|b| format!("{} ({})", b.role, b.origin))
                        .collect();
                    println!(
                        "{:<24} {:<10} {:<9} {}",
                        u.name,
                        if u.password_hash.is_some() {
                            "local"
                        } else {
                            "directory"
                        },
                        if u.disabled { "disabled" } else { "active" },
                        if roles.is_empty() {
                            "-".to_owned()
                        } else {
                            roles.join(", ")
                        }
                    );
                }
                for b in bindings.iter().filter(|b| b.subject.starts_with("group:")) {
                    println!(
                        "{:<24} {:<10} {:<9} {} ({})",
                        b.subject, "group", "-", b.role, b.origin
                    );
                }
                store.close().await;
                Ok(())
            }
            UserCommand::Role {
                subject,
                role,
                store,
                actor: who,
            } => {
                let subject_key = if let Some(group) = subject.strip_prefix("group:") {
                    if group.is_empty() {
                        return Err(CliError::Input("`group:` needs a group name".into()));
                    }
                    subject.clone()
                } else {
                    store::check_user_name(subject).map_err(|e| CliError::Input(e.to_string()))?;
                    format!("user:{subject}")
                };
                let role = if role == "none" {
                    None
                } else {
                    Some(Role::parse(role).ok_or_else(|| {
                        CliError::Input(format!(
                            "unknown role `{role}` (viewer, auditor, operator, admin, none)"
                        ))
                    })?)
                };
                let store = store.open().await?;
                match role {
                    Some(r) => store.bind_role(&subject_key, "cli", r.as_str()).await?,
                    None => {
                        store.unbind_role(&subject_key, "cli").await?;
                    }
                }
                audit(
                    &store,
                    &actor(who),
                    "user.role",
                    &subject_key,
                    serde_json::json!({"role": role}),
                )
                .await?;
                println!(
                    "{subject_key}: {}",
                    role.map_or("no role (CLI binding removed)".to_owned(), |r| format!(
                        "role {r}"
                    ))
                );
                store.close().await;
                Ok(())
            }
            UserCommand::Passwd {
                name,
                password_file,
                password_stdin,
                store,
                actor: who,
            } => {
                let phc = hash(&read_password(password_file.as_ref(), *password_stdin)?)?;
                let store = store.open().await?;
                if !store.set_password_hash(name, &phc).await? {
                    return Err(CliError::Input(format!("no user `{name}`")));
                }
                audit(
                    &store,
                    &actor(who),
                    "user.password",
                    name,
                    serde_json::json!({}),
                )
                .await?;
                println!("password of `{name}` changed");
                store.close().await;
                Ok(())
            }
            UserCommand::Disable {
                name,
                store,
                actor: who,
            }
            | UserCommand::Enable {
                name,
                store,
                actor: who,
            } => {
                let disable = matches!(command, UserCommand::Disable { .. });
                let store = store.open().await?;
                if !store.set_user_disabled(name, disable).await? {
                    return Err(CliError::Input(format!("no user `{name}`")));
                }
                audit(
                    &store,
                    &actor(who),
                    if disable {
                        "user.disable"
                    } else {
                        "user.enable"
                    },
                    name,
                    serde_json::json!({}),
                )
                .await?;
                println!("`{name}` {}", if disable { "disabled" } else { "enabled" });
                store.close().await;
                Ok(())
            }
            UserCommand::Delete {
                name,
                store,
                actor: who,
            } => {
                let store = store.open().await?;
                if !store.delete_user(name).await? {
                    return Err(CliError::Input(format!("no user `{name}`")));
                }
                audit(
                    &store,
                    &actor(who),
                    "user.delete",
                    name,
                    serde_json::json!({}),
                )
                .await?;
                println!("deleted `{name}` with their tokens");
                store.close().await;
                Ok(())
            }
        }
    })
}

pub fn token(command: &TokenCommand) -> ExitCode {
    runtime_run(async {
        match command {
            TokenCommand::Create {
                user,
                label,
                days,
                store,
                actor: who,
            } => {
                if !(1..=366).contains(days) {
                    return Err(CliError::Input("--days must be 1 to 366".into()));
                }
                let store = store.open().await?;
                if store.user(user).await?.is_none() {
                    return Err(CliError::Input(format!(
                        "no user `{user}` (create it with `centossrv user add`)"
                    )));
                }
                let (record, text) = store
                    .create_api_token(user, label, Duration::from_secs(u64::from(*days) * 86_400))
                    .await
                    .map_err(|e| match e {
                        store::StoreError::Invalid { .. } => CliError::Input(e.to_string()),
                        other => CliError::Store(other),
                    })?;
                audit(
                    &store,
                    &actor(who),
                    "token.create",
                    user,
                    serde_json::json!({"id": record.id, "label": label, "days": days}),
                )
                .await?;
                eprintln!(
                    "token {} for `{user}`, expires {} (shown once; store it now):",
                    record.id,
                    record
                        .expires_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
                println!("{text}");
                store.close().await;
                Ok(())
            }
            TokenCommand::List { store } => {
                let store = store.open().await?;
                println!(
                    "{:<18} {:<20} {:<21} {:<9} LABEL",
                    "ID", "USER", "EXPIRES", "STATE"
                );
                let now = chrono::Utc::now();
                for t in store.api_tokens(None).await? {
                    let state = if t.revoked_at.is_some() {
                        "revoked"
                    } else if t.expires_at <= now {
                        "expired"
                    } else {
                        "active"
                    };
                    println!(
                        "{:<18} {:<20} {:<21} {:<9} {}",
                        t.id,
                        t.user,
                        t.expires_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        state,
                        t.label
                    );
                }
                store.close().await;
                Ok(())
            }
            TokenCommand::Revoke {
                id,
                store,
                actor: who,
            } => {
                let store = store.open().await?;
                if !store.revoke_api_token(id).await? {
                    return Err(CliError::Input(format!("no active token `{id}`")));
                }
                audit(
                    &store,
                    &actor(who),
                    "token.revoke",
                    id,
                    serde_json::json!({"id": id}),
                )
                .await?;
                println!("revoked {id}");
                store.close().await;
                Ok(())
            }
        }
    })
}
