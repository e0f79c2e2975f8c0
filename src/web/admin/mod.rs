//! The admin pages (SPEC §9 "Admin pages"): Staff, Rejected, Broadcasts.
//!
//! Each page calls the same store functions, and where the API has
//! checks of its own the same helpers (`http::people::check_new_staff`,
//! `http::broadcasts::send`), as the admin API, so a rule is decided once.
//! Who may open them is decided like the API's `Admin` extractor: the
//! signed-in person's role, read fresh from the database with the session
//! on every request, so a demotion takes effect at once. An agent gets a
//! 403 page, for GETs and posts alike.
//!
//! Posts answer with the page itself rather than a redirect where the
//! answer holds something shown once (a sign-in link, an API token); a
//! refusal is the page again with the API's refusal as a sentence.

mod broadcasts;
mod rejected;
mod staff;

use axum::Router;

use super::page::PageError;
use super::session::Viewer;
use crate::http::AppState;
use crate::http::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(staff::router())
        .merge(rejected::router())
        .merge(broadcasts::router())
}

/// The API's admin rule for a page: admins pass, anyone else gets 403.
fn require_admin(viewer: &Viewer) -> Result<(), PageError> {
    if viewer.is_admin() {
        Ok(())
    } else {
        Err(PageError::forbidden())
    }
}

/// A refusal of the API's checks as a sentence for this page: the API
/// names JSON fields in backticks; a person sees the form's words.
fn refusal(e: ApiError, fields: &[(&str, &str)]) -> PageError {
    if e.code != "invalid_request" {
        return PageError::from(e);
    }
    let mut text = e.message.clone();
    for (json, label) in fields {
        text = text.replace(&format!("`{json}`"), label);
    }
    let text = text.replace('`', "");
    PageError::new(e.status, super::page::sentence("", &text))
}

/// A time as people on the page read it, in UTC.
fn when(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn api_field_names_become_the_forms_words() {
        let e = ApiError::unprocessable("invalid_request", "`body` must not be empty");
        let p = refusal(e, &[("body", "the message")]);
        assert_eq!(p.message, "The message must not be empty.");
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}
