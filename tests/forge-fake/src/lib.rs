//! Strict fake forges for tests: [`github`] checks every request against GitHub's own OpenAPI
//! description (a vendored subset of `@octokit/openapi`) and [`gitlab`] against the
//! documented fields of the GitLab endpoints the reconciler uses. Both keep state (change
//! requests, comments, statuses, labels, issues, permissions) so end-to-end tests can assert
//! on what a reviewer would see, and record every contract violation.

pub mod github;
pub mod gitlab;
