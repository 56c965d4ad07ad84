//! Why a page could not be shown, as an HTML page with the matching status code.

use super::layout::{Nav, page};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

/// A page's failure. Store errors are logged in full and shown without detail.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("database: {0}")]
    Store(#[from] store::StoreError),
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, text) = match &self {
            PageError::NotFound(what) => (StatusCode::NOT_FOUND, "Not found", what.clone()),
            PageError::BadRequest(what) => (StatusCode::BAD_REQUEST, "Bad request", what.clone()),
            PageError::Store(e) => {
                tracing::error!(error = %e, "status page: store error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Server error",
                    "The database could not answer; the reconciler's log has the details."
                        .to_owned(),
                )
            }
        };
        let body = page(
            title,
            Nav::None,
            html! {
                h1 { (title) }
                p role="alert" { (text) }
                p { a href="/" { "Back to the overview" } }
            },
        );
        (status, body).into_response()
    }
}
