//! The built-in supervisor: runs services from their systemd unit files where there is no
//! systemd (containers, edge boxes, tests). `daemon` is the long-running process
//! (`centossrv-agent supervise`), `protocol` the control protocol the agent's
//! [`crate::services::SupervisorManager`] speaks to it, `process` the services it runs,
//! `config` what a unit file means to it, `health` the probes, `events` the event log.

pub mod config;
pub mod daemon;
pub mod events;
pub mod health;
mod process;
pub mod protocol;
