//! The centossrv control plane as a library; the `centossrv` binary is a thin wrapper over
//! [`cli::run`].

pub mod audit_syslog;
pub mod auth;
pub mod blame;
pub mod cli;
pub mod cli_access;
pub mod cli_audit;
pub mod cli_blame;
pub mod cli_link;
pub mod diagnostics_output;
pub mod engine;
pub mod forge;
pub mod http;
pub mod link;
pub mod masterless;
pub mod metrics;
pub mod observed_dir;
pub mod poller;
pub mod pr;
pub mod secret;
pub mod serve;
pub mod source;
pub mod tls;
pub mod up;
pub mod web;
pub mod webhook;
