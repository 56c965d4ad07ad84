//! `centossrv serve`: the reconciler service. Resolves the configuration, opens the store,
//! starts the engine, the Git poller and the HTTPS listener (API, agents, webhook).

pub mod app;
pub mod config;
pub mod forge_config;
pub mod run;

pub use config::{Config, ConfigError, ServeArgs};
pub use run::{ServeError, serve};
