//! The stylesheet and the progressive-enhancement script, embedded in the binary. Their
//! paths carry a version, so browsers may cache them for a day.

use axum::http::header;
use axum::response::IntoResponse;

pub const STYLE_PATH: &str = "/static/v1/style.css";
pub const SCRIPT_PATH: &str = "/static/v1/live.js";

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/live.js");
const CACHE: &str = "public, max-age=86400";

pub async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        STYLE,
    )
}

pub async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        SCRIPT,
    )
}
