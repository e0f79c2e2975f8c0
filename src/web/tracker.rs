//! Placeholder: the Issue Tracker list (filled in by the tracker work).

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;

use super::page::{Chrome, PageError, render};
use super::session::Viewer;
use crate::http::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(tracker))
        .route("/issues", get(tracker))
}

#[derive(Template)]
#[template(path = "tracker.html")]
struct TrackerPage {
    chrome: Chrome,
}

async fn tracker(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    let chrome = Chrome::load(&state, &viewer, "issues").await?;
    Ok(render(&TrackerPage { chrome }))
}
