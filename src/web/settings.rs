//! Placeholder: filled in by the settings work.

use axum::Router;

use crate::http::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}
