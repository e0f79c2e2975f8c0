//! Placeholder: filled in by the admin work.

use axum::Router;

use crate::http::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}
