//! The fleet compiler: repository files in, a validated model and one desired state per node
//! out, every problem reported at once as a diagnostic. Pure: no IO, no async, no logging.

pub mod access;
pub mod compile;
pub mod diagnostic;
mod layout;
pub mod loader;
pub mod lower;
pub mod manifest;
pub mod order;
mod reuse;
pub mod schema;
pub mod selector;
pub mod snapshot;
pub mod template;
pub mod yaml;

pub use compile::{Compiled, Model, NodeInfo, RoleInfo, compile, compile_pair};
pub use diagnostic::{Code, Diagnostic, Severity};
pub use snapshot::Snapshot;
