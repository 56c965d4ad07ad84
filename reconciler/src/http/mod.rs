//! The reconciler's HTTP side: the REST API under `/api/v1` (reads, signing in, operators'
//! and admins' actions), its OpenAPI document,
//! health probes and Prometheus metrics (`docs/api.md`).

pub mod access;
pub mod api;
pub mod dto;
mod error;
mod handlers;
mod ops;
pub(crate) mod query;
mod state;

pub use error::{ApiError, error_response};
pub use state::{ApiState, Control, LiveView, NoLiveView};
