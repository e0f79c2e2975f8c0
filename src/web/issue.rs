//! Placeholder: filled in by the issue work.

use axum::Router;

use crate::http::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}
