//! The staff web page, the Issue Tracker (SPEC §9), served by the daemon
//! itself: server-rendered HTML from askama templates compiled into the
//! binary, one small script (`static/app.js`) for live updates and
//! shortcuts, no front-end build.
//!
//! I keep this apart from `http/` (the JSON API) because the two answer in
//! different languages — JSON errors there, sentences on a page here — but
//! the decisions are the same: page handlers call the same store functions
//! as the API handlers (`Store::transition`, `reply`, …), which ask the
//! same `domain` rules, so a permission is decided in one place. Templates
//! only show what they are given; the buttons a viewer sees come from
//! `domain::state::allowed`, the function the state machine itself uses.
//!
//! Security (SPEC §9): sessions and CSRF in `session`; every response from
//! here carries a strict Content-Security-Policy (no inline script or
//! style), `frame-ancestors 'none'`, `nosniff` and no caching of pages.

pub mod admin;
pub mod assets;
pub mod issue;
pub mod page;
pub mod session;
pub mod settings;
pub mod signin;
pub mod tracker;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;

use crate::http::AppState;

/// Largest urlencoded form a page posts (replies and comments included).
pub const FORM_LIMIT: usize = 1024 * 1024;

/// The policy on every page: our own script and style only, images from
/// us (attachments) and data: thumbnails, no framing, forms only to us.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Every page route.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(signin::router())
        .merge(tracker::router())
        .merge(issue::router())
        .merge(settings::router())
        .merge(admin::router())
        .route("/assets/{file}", get(assets::serve))
        .layer(middleware::from_fn(security_headers))
}

/// Headers every HTML response carries.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}
