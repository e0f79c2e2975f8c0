//! What every page shares: the top bar's data (`Chrome`), rendering a
//! template into a response, and `PageError`, which shows a refusal as a
//! sentence on a page (SPEC §9: never a stack trace or raw JSON).

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::session::Viewer;
use crate::http::AppState;
use crate::store::StoreError;

/// The top bar of every signed-in page and what the page's script needs.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub name: String,
    pub staff_id: i64,
    pub is_admin: bool,
    pub unread_notifications: i64,
    pub csrf: String,
    /// The current top-bar link: `issues`, `settings`, `staff`,
    /// `rejected`, `broadcasts`, or "" for none.
    pub nav: &'static str,
    /// The live-event id the page was rendered at: its script resumes the
    /// stream from here, so nothing between render and connect is lost.
    pub event_id: i64,
    pub css: &'static str,
    pub js: &'static str,
}

impl Chrome {
    /// Loads the badges and the stream position for `viewer`.
    pub async fn load(
        state: &AppState,
        viewer: &Viewer,
        nav: &'static str,
    ) -> Result<Chrome, PageError> {
        // The hub's head, read before the page's data: an event committed
        // while the page renders is replayed, never missed.
        let event_id = state.hub.head();
        let (unread_notifications, _unread_issues) = state.store.badges(viewer.staff.id).await?;
        Ok(Chrome {
            name: viewer.staff.name.clone(),
            staff_id: viewer.staff.id,
            is_admin: viewer.is_admin(),
            unread_notifications,
            csrf: viewer.csrf.clone(),
            nav,
            event_id,
            css: super::assets::url("app.css"),
            js: super::assets::url("app.js"),
        })
    }

    /// `aria-current="page"` for the current link.
    pub fn current(&self, nav: &str) -> &'static str {
        if self.nav == nav { "page" } else { "false" }
    }
}

/// Renders a template as an HTML response.
pub fn render<T: Template>(t: &T) -> Response {
    render_status(StatusCode::OK, t)
}

/// Renders a template with a status (a refusal shown on its page).
pub fn render_status<T: Template>(status: StatusCode, t: &T) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a page");
            PageError::internal().into_response()
        }
    }
}

/// A page that could not be shown or an action that was refused, as one
/// sentence for a person.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
}

impl PageError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        PageError {
            status,
            message: message.into(),
        }
    }
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "There is nothing here.")
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "Only an admin may open this page.")
    }
    pub fn csrf() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "This form has expired or came from another site. Reload the page and try again.",
        )
    }
    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "That is too much to send at once.",
        )
    }
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong on our side. It has been logged; try again in a moment.",
        )
    }
}

/// The sentence for a rule the store refused (SPEC §2–§5 codes).
pub fn sentence(code: &str, fallback: &str) -> String {
    match code {
        "already_assigned" => "Someone else has already taken this issue.".into(),
        "unknown_assignee" => "That person is not active staff; choose someone else.".into(),
        "forbidden" => "You are not allowed to do that.".into(),
        "not_assignee" => {
            "Only the assignee can close this issue. Take it or reassign it first.".into()
        }
        "issue_closed" => "This issue is closed. Reopen it first.".into(),
        "not_closed" => "This issue is not closed.".into(),
        "customer_has_open_issue" => {
            "This customer already has an open issue; continue there.".into()
        }
        "contact_opted_out" => {
            "The customer has opted out of messages on this channel (they texted STOP).".into()
        }
        "both_have_open_issues" => {
            "Both customers have an open issue. Close one of them first, then merge.".into()
        }
        "channel_unavailable" => "That channel is not configured on this server.".into(),
        "body_too_long" => "The message is too long.".into(),
        "edit_window_expired" => "Comments can only be changed within 5 hours.".into(),
        _ => {
            let mut s = fallback.trim().to_string();
            if let Some(first) = s.get(..1) {
                let upper = first.to_uppercase();
                s.replace_range(..1, &upper);
            }
            if !s.ends_with('.') {
                s.push('.');
            }
            s
        }
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => PageError::not_found(),
            StoreError::Rule(r) => PageError::new(
                crate::http::error::refusal_status(r.kind),
                sentence(r.code, &r.message),
            ),
            other => {
                tracing::error!(error = %other, "page store error");
                PageError::internal()
            }
        }
    }
}

impl From<crate::http::error::ApiError> for PageError {
    fn from(e: crate::http::error::ApiError) -> Self {
        PageError::new(e.status, sentence(e.code, &e.message))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    message: &'a str,
    css: &'static str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            status: self.status.as_u16(),
            message: &self.message,
            css: super::assets::url("app.css"),
        };
        match page.render() {
            Ok(html) => (self.status, Html(html)).into_response(),
            Err(_) => (self.status, self.message).into_response(),
        }
    }
}
