//! The centossrv control plane as a library; the `centossrv` binary is a thin wrapper over
//! [`cli::run`].

pub mod cli;
pub mod diagnostics_output;
pub mod engine;
pub mod masterless;
pub mod observed_dir;
pub mod poller;
pub mod secret;
pub mod source;
pub mod webhook;
