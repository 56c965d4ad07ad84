//! Plan reports: the fleet-wide [`Report`] is computed once from node plans and compile
//! diagnostics, then rendered by one of several printers (Markdown for pull requests, JSON
//! for machines, text for terminals). Pure: no IO.

pub mod build;
pub mod changeset;
pub mod fleet;
pub mod json;
pub mod markdown;
pub mod summary;
pub mod text;

pub use build::{Delta, ErrorLine, REPORT_FORMAT, Report, ReportInput, build, delta};
pub use changeset::ChangeSet;
pub use markdown::{Budget, markdown};
