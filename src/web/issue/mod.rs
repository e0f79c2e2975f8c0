//! The issue page (SPEC §9, "Issue page"): `GET /issues/{id}`, the state
//! machine's buttons, Watch/Unwatch, the live fragments, and (in
//! submodules) replies and comments (`compose`) and View Customer
//! (`customer`).
//!
//! Shape, and why:
//! - Every button is a plain CSRF form (`WebForm`) posting to
//!   `/issues/{id}/<action>`: it works without script, and the browser's
//!   back button and reload do the right thing (303 back to the page).
//! - The handlers call the store functions the JSON API calls
//!   (`transition`, `watch`, `mark_read`, …), so §2 is decided once, in
//!   `domain::state::apply`; the buttons shown come from
//!   `domain::state::offered`, which asks that same function.
//! - A refusal re-renders this page with the refusal as one sentence in a
//!   `role="alert"` element and the refusal's HTTP status (409/403/422), so
//!   a person sees why, and a test sees the status the API would give.
//! - Live updates fetch server-rendered fragments (`/head`, `/timeline`)
//!   made from the same partial templates as the page: one markup, escaped
//!   by askama, never assembled from customer text in script.

mod compose;
mod customer;
pub mod view;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::page::{Chrome, PageError, render_status};
use super::session::{Viewer, WebForm};
use crate::http::AppState;
use crate::store::{IssueAction, StoreError};
use view::{CustomerBlock, Head, HeadFragment, Row, RowsFragment};

/// How many timeline entries the page shows at once (the newest).
const PAGE_MESSAGES: i64 = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/issues/{id}", get(page))
        .route("/issues/{id}/head", get(head_fragment))
        .route("/issues/{id}/timeline", get(timeline_fragment))
        .route("/issues/{id}/read", post(mark_read))
        .route("/issues/{id}/take", post(take))
        .route("/issues/{id}/assign", post(assign))
        .route("/issues/{id}/unassign", post(unassign))
        .route("/issues/{id}/close", post(close))
        .route("/issues/{id}/resolve", post(resolve))
        .route("/issues/{id}/reopen", post(reopen))
        .route("/issues/{id}/watch", post(watch))
        .route("/issues/{id}/unwatch", post(unwatch))
        .merge(compose::router())
        .merge(customer::router())
}

/// A path id; anything else is "nothing here" (a page, not axum's text).
pub(crate) fn parse_id(raw: &str) -> Result<i64, PageError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(PageError::not_found)
}

#[derive(Template)]
#[template(path = "issue.html")]
struct IssuePage {
    chrome: Chrome,
    head: Head,
    rows: Vec<Row>,
    csrf: String,
    alert: Option<String>,
    /// `before` cursor for the older page, when there is one.
    earlier: Option<i64>,
    /// The newest message shown: live updates fetch what came after it.
    last_id: i64,
    can_reply: bool,
    is_sms: bool,
    accept: String,
    files_hint: String,
    reply_draft: String,
    comment_draft: String,
    customer: CustomerBlock,
}

/// What a re-rendered page carries besides the issue: a refusal and the
/// text the person had typed, so nothing they wrote is lost.
#[derive(Default)]
pub(crate) struct Extras {
    pub alert: Option<PageError>,
    pub reply_draft: String,
    pub comment_draft: String,
    pub before: Option<i64>,
}

/// Builds and renders the issue page for `viewer`.
///
/// The read marker is read before the issue is marked read, so the
/// "New messages" line sits where the viewer left off; opening the page
/// then marks it read (the store call of `POST /api/issues/{id}/read`).
pub(crate) async fn show(
    state: &AppState,
    viewer: &Viewer,
    id: i64,
    extras: Extras,
) -> Result<Response, PageError> {
    let chrome = Chrome::load(state, viewer, "issues").await?;
    let me = &viewer.staff;
    let issue = state.store.issue(id, me.id).await?;
    let marker = state.store.read_marker(id, me.id).await?;
    let (messages, earlier) = state
        .store
        .messages(id, extras.before, PAGE_MESSAGES)
        .await?;
    if extras.before.is_none() {
        state.store.mark_read(id, me.id).await?;
    }
    let watching = state.store.watchers(id).await?.contains(&me.id);
    let staff = state.store.list_staff().await?;
    let customer = state.store.customer(issue.customer.id, me.id).await?;
    let now = crate::store::now();
    let last_id = messages.last().map(|m| m.id).unwrap_or(0);
    let rows = view::rows(messages, me, Some(marker), now);
    let a = &state.attachments;
    let page = IssuePage {
        head: Head::new(&issue, me, watching, &staff, &viewer.csrf),
        rows,
        csrf: viewer.csrf.clone(),
        earlier,
        last_id,
        can_reply: issue.status.is_open(),
        is_sms: issue.channel == crate::domain::Channel::Sms,
        accept: a
            .allowed
            .iter()
            .map(|e| format!(".{e}"))
            .collect::<Vec<_>>()
            .join(","),
        files_hint: format!(
            "Up to {} files, {} MB each ({}). They go with the reply: as email \
             attachments, or by SMS as an MMS picture message.",
            a.max_files,
            a.max_bytes / (1024 * 1024),
            a.allowed.join(", ").to_uppercase()
        ),
        reply_draft: extras.reply_draft,
        comment_draft: extras.comment_draft,
        customer: CustomerBlock::new(customer, me, &format!("/issues/{id}")),
        chrome,
        alert: extras.alert.as_ref().map(|e| e.message.clone()),
    };
    let status = extras
        .alert
        .as_ref()
        .map(|e| e.status)
        .unwrap_or(StatusCode::OK);
    Ok(render_status(status, &page))
}

/// The page again with a refusal on it; a refusal that is not about the
/// issue (it is gone, the server failed) is shown as the error page.
pub(crate) async fn refused(
    state: &AppState,
    viewer: &Viewer,
    id: i64,
    error: PageError,
    extras: Extras,
) -> Response {
    if error.status == StatusCode::NOT_FOUND || error.status.is_server_error() {
        return error.into_response();
    }
    let extras = Extras {
        alert: Some(error),
        ..extras
    };
    match show(state, viewer, id, extras).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// Back to the issue after a change (303, so a reload does not repeat it).
pub(crate) fn back_to(id: i64, anchor: Option<i64>) -> Response {
    match anchor {
        Some(m) => Redirect::to(&format!("/issues/{id}#m{m}")).into_response(),
        None => Redirect::to(&format!("/issues/{id}")).into_response(),
    }
}

#[derive(Deserialize, Default)]
struct PageQuery {
    before: Option<String>,
}

async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Response, PageError> {
    let id = parse_id(&id)?;
    let before = q.before.as_deref().and_then(|b| b.parse::<i64>().ok());
    let extras = Extras {
        before,
        ..Extras::default()
    };
    show(&state, &viewer, id, extras).await
}

/// `GET /issues/{id}/head`: the header and buttons, for a live refresh.
async fn head_fragment(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = parse_id(&id)?;
    let me = &viewer.staff;
    let issue = state.store.issue(id, me.id).await?;
    let watching = state.store.watchers(id).await?.contains(&me.id);
    let staff = state.store.list_staff().await?;
    let head = Head::new(&issue, me, watching, &staff, &viewer.csrf);
    Ok(render_status(StatusCode::OK, &HeadFragment { head }))
}

#[derive(Deserialize, Default)]
struct TimelineQuery {
    after: Option<String>,
    message: Option<String>,
}

/// `GET /issues/{id}/timeline?after=N` (rows newer than N) or
/// `?message=M` (one row again, e.g. a reply whose delivery changed).
async fn timeline_fragment(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<TimelineQuery>,
) -> Result<Response, PageError> {
    let id = parse_id(&id)?;
    let me = &viewer.staff;
    let messages = match (&q.message, &q.after) {
        (Some(m), _) => {
            let m = state.store.message(parse_id(m)?).await?;
            if m.issue_id != id {
                return Err(PageError::not_found());
            }
            vec![m]
        }
        (None, after) => {
            let after = after
                .as_deref()
                .and_then(|a| a.parse::<i64>().ok())
                .unwrap_or(0);
            state.store.messages_after(id, after, PAGE_MESSAGES).await?
        }
    };
    let rows = view::rows(messages, me, None, crate::store::now());
    Ok(render_status(
        StatusCode::OK,
        &RowsFragment {
            rows,
            csrf: viewer.csrf.clone(),
        },
    ))
}

#[derive(Deserialize, Default)]
pub(crate) struct NoFields {}

/// `POST /issues/{id}/read`: the open page keeps the issue read.
async fn mark_read(
    State(state): State<AppState>,
    Path(id): Path<String>,
    WebForm { viewer, .. }: WebForm<NoFields>,
) -> Result<StatusCode, PageError> {
    let id = parse_id(&id)?;
    state.store.mark_read(id, viewer.staff.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The sentence for a refused state change. `already_assigned` names who
/// has the issue (read again, after the refusal).
async fn transition_refusal(
    state: &AppState,
    viewer: &Viewer,
    id: i64,
    e: StoreError,
) -> PageError {
    if let StoreError::Rule(r) = &e
        && r.code == "already_assigned"
        && let Ok(issue) = state.store.issue(id, viewer.staff.id).await
        && let Some(who) = issue.assignee
    {
        return PageError::new(
            StatusCode::CONFLICT,
            format!("{} has already taken this issue.", who.name),
        );
    }
    PageError::from(e)
}

/// One state machine action from the page, through the API's store call.
async fn act(state: &AppState, viewer: &Viewer, raw_id: &str, action: IssueAction) -> Response {
    let id = match parse_id(raw_id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    match state.store.transition(id, &viewer.staff, action).await {
        Ok(_) => {
            tracing::info!(
                issue_id = id,
                staff_id = viewer.staff.id,
                ?action,
                "issue action (page)"
            );
            back_to(id, None)
        }
        Err(e) => {
            let error = transition_refusal(state, viewer, id, e).await;
            refused(state, viewer, id, error, Extras::default()).await
        }
    }
}

async fn take(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: WebForm<NoFields>,
) -> Response {
    act(&state, &f.viewer, &id, IssueAction::Take).await
}

async fn unassign(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: WebForm<NoFields>,
) -> Response {
    act(&state, &f.viewer, &id, IssueAction::Unassign).await
}

async fn close(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: WebForm<NoFields>,
) -> Response {
    act(&state, &f.viewer, &id, IssueAction::Close).await
}

async fn resolve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: WebForm<NoFields>,
) -> Response {
    act(&state, &f.viewer, &id, IssueAction::Resolve).await
}

async fn reopen(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: WebForm<NoFields>,
) -> Response {
    act(&state, &f.viewer, &id, IssueAction::Reopen).await
}

#[derive(Deserialize, Default)]
struct AssignForm {
    #[serde(default)]
    assignee_id: String,
}

async fn assign(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: WebForm<AssignForm>,
) -> Response {
    match f.form.assignee_id.trim().parse::<i64>() {
        Ok(to) => act(&state, &f.viewer, &id, IssueAction::Assign(to)).await,
        Err(_) => match parse_id(&id) {
            Ok(issue) => {
                let e = PageError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Choose someone in the Assignee list first.",
                );
                refused(&state, &f.viewer, issue, e, Extras::default()).await
            }
            Err(e) => e.into_response(),
        },
    }
}

/// Watch or Unwatch: the store call of `POST`/`DELETE /api/issues/{id}/watch`.
async fn set_watch(state: &AppState, viewer: &Viewer, raw_id: &str, on: bool) -> Response {
    let id = match parse_id(raw_id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    match state.store.watch(id, viewer.staff.id, on).await {
        Ok(_) => back_to(id, None),
        Err(e) => refused(state, viewer, id, e.into(), Extras::default()).await,
    }
}

async fn watch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: WebForm<NoFields>,
) -> Response {
    set_watch(&state, &f.viewer, &id, true).await
}

async fn unwatch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: WebForm<NoFields>,
) -> Response {
    set_watch(&state, &f.viewer, &id, false).await
}
