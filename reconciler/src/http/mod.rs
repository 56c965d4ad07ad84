//! The reconciler's HTTP side: the read-only REST API under `/api/v1`, its OpenAPI document,
//! health probes and Prometheus metrics (`docs/api.md`).

pub mod api;
pub mod dto;
mod error;
mod handlers;
mod ops;
mod query;
mod state;

pub use error::ApiError;
pub use state::{ApiState, LiveView, NoLiveView};
