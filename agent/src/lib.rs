//! The centossrv node agent: observes the host, re-derives the plan with the shared
//! `state::plan()`, applies desired state atomically, records generations and rolls back.
//! This build handles files, directories, symlinks, sysctls, packages (rpm/dnf), users and
//! groups (shadow-utils), and services (systemd, or the built-in supervisor; see
//! `README.md`).

pub mod accounts;
pub mod apply;
pub mod cli;
pub mod cli_services;
pub mod daemon;
pub mod facts;
pub mod generations;
pub mod host;
pub mod link;
pub mod observe;
pub mod output;
pub mod packages;
pub mod services;
pub mod supervisor;
pub mod time;
pub mod unit;
pub mod watch;

pub use apply::{ApplyOptions, ApplyReport, ApplyStatus, Outcome, apply};
pub use generations::{RollbackReport, Store, rollback};
pub use host::{Host, PackageOptions, RealHost};
pub use observe::{Observation, observe};
