//! The centossrv control plane as a library; the `centossrv` binary is a thin wrapper over
//! [`cli::run`].

pub mod cli;
pub mod diagnostics_output;
pub mod engine;
pub mod http;
pub mod masterless;
pub mod metrics;
pub mod observed_dir;
pub mod source;
