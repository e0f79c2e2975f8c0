//! Writing on an issue from the page: a reply to the customer (with files)
//! and private comments (add, edit, delete).
//!
//! The checks are the JSON API's own (`http::issues::check_body`,
//! `check_channel`; the store decides closed issues, opted-out contacts and
//! who may change a comment), so the page can never allow what the API
//! refuses. A refusal re-renders the issue page with the sentence and the
//! person's text still in the box.
//!
//! The reply form is `multipart/form-data` because it carries files. Its
//! CSRF token is checked before any file is read: from the
//! `X-CSRF-Token` header when a script sends one, else from the form's
//! first field, which the template puts first. Files are checked against
//! the attachment rules of SPEC §3.4 (`crate::attachments`) while they
//! stream in; a file over the size limit is never held whole in memory.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;

use super::{Extras, back_to, parse_id, refused};
use crate::domain::Channel;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::{NewAttachment, StoreError};
use crate::web::page::PageError;
use crate::web::session::{CSRF_HEADER, Viewer, WebForm, check_csrf};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/issues/{id}/reply",
            // Files are bounded by the attachment rules in the handler, not
            // by axum's 2 MB default for extractors.
            post(reply).layer(DefaultBodyLimit::disable()),
        )
        .route("/issues/{id}/comment", post(add_comment))
        .route("/messages/{id}/edit", post(edit_comment))
        .route("/messages/{id}/delete", post(delete_comment))
}

/// The API's body check, in a sentence a person reads.
fn body_refusal(e: ApiError) -> PageError {
    if e.code == "invalid_request" {
        PageError::new(e.status, "Write something first.")
    } else {
        e.into()
    }
}

/// A file from the reply form, checked.
struct Upload {
    filename: String,
    content_type: String,
    data: Vec<u8>,
}

/// What the reply form carried.
#[derive(Default)]
struct ReplyForm {
    body: String,
    files: Vec<Upload>,
}

/// Reads the multipart reply form: CSRF first, then the body and the files
/// under the attachment rules. `Err` is the refusal (CSRF, a refused file,
/// a malformed form); the body read so far is returned with it so the page
/// can keep it.
async fn read_reply_form(
    state: &AppState,
    viewer: &Viewer,
    headers: &HeaderMap,
    mut multipart: Multipart,
) -> Result<ReplyForm, (PageError, String)> {
    let rules = &state.attachments;
    let bad = |body: &str| {
        (
            PageError::bad_request("The form could not be read. Reload the page and try again."),
            body.to_string(),
        )
    };
    let mut form = ReplyForm::default();
    let mut csrf_ok = false;
    if headers.contains_key(CSRF_HEADER) {
        check_csrf(state, viewer, headers, None).map_err(|e| (e, String::new()))?;
        csrf_ok = true;
    }
    let mut index = 0usize;
    let mut refusals: Vec<String> = Vec::new();
    while let Some(mut field) = multipart.next_field().await.map_err(|_| bad(&form.body))? {
        let name = field.name().unwrap_or("").to_string();
        if !csrf_ok {
            // The token must come first, before anything is read.
            let token = if name == "csrf" {
                field.text().await.ok()
            } else {
                None
            };
            check_csrf(state, viewer, headers, Some(token.as_deref().unwrap_or("")))
                .map_err(|e| (e, String::new()))?;
            csrf_ok = true;
            continue;
        }
        match name.as_str() {
            "body" => {
                let mut raw = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(|_| bad(&form.body))? {
                    if raw.len() + chunk.len() > crate::web::FORM_LIMIT {
                        return Err((PageError::too_large(), String::new()));
                    }
                    raw.extend_from_slice(&chunk);
                }
                form.body = String::from_utf8_lossy(&raw).replace('\0', "");
            }
            "files" => {
                let raw_name = field.file_name().unwrap_or("").to_string();
                let content_type = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_string();
                let mut data = Vec::new();
                let mut size: u64 = 0;
                while let Some(chunk) = field.chunk().await.map_err(|_| bad(&form.body))? {
                    size += chunk.len() as u64;
                    if size <= rules.max_bytes {
                        data.extend_from_slice(&chunk);
                    } else {
                        data = Vec::new();
                    }
                }
                // An empty file input still sends one nameless, empty part.
                if raw_name.is_empty() && size == 0 {
                    continue;
                }
                let filename = crate::attachments::sanitize_filename(&raw_name, &content_type);
                if let Some(why) = rules.refusal(&filename, &content_type, size, index) {
                    refusals.push(format!("{filename}: {why}"));
                    // Refused: the reply will not be sent, keep nothing.
                    data = Vec::new();
                }
                index += 1;
                form.files.push(Upload {
                    filename,
                    content_type,
                    data,
                });
            }
            _ => {}
        }
    }
    if !csrf_ok {
        // An empty form: no token at all.
        check_csrf(state, viewer, headers, None).map_err(|e| (e, String::new()))?;
    }
    if !refusals.is_empty() {
        return Err((
            PageError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "The reply was not sent. Remove or replace these files: {}.",
                    refusals.join("; ")
                ),
            ),
            form.body,
        ));
    }
    Ok(form)
}

/// `POST /issues/{id}/reply`: the checks and store call of
/// `POST /api/issues/{id}/replies`, plus the files.
async fn reply(
    State(state): State<AppState>,
    Path(id): Path<String>,
    viewer: Viewer,
    headers: HeaderMap,
    multipart: Multipart,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let form = match read_reply_form(&state, &viewer, &headers, multipart).await {
        Ok(f) => f,
        // A forged or expired form gets no page of the issue.
        Err((e, _)) if e.status == StatusCode::FORBIDDEN => return e.into_response(),
        Err((e, body)) => {
            let extras = Extras {
                reply_draft: body,
                ..Extras::default()
            };
            return refused(&state, &viewer, id, e, extras).await;
        }
    };
    let checked = async {
        crate::http::issues::check_body(&form.body).map_err(body_refusal)?;
        let issue = state.store.issue(id, viewer.staff.id).await?;
        crate::http::issues::check_channel(&state, issue.channel, &form.body)?;
        let mut files = Vec::with_capacity(form.files.len());
        for f in &form.files {
            let sha = state.attachments.save(&f.data).await.map_err(|e| {
                tracing::error!(issue_id = id, error = %e, "saving a reply attachment");
                PageError::internal()
            })?;
            files.push(NewAttachment {
                filename: f.filename.clone(),
                content_type: f.content_type.clone(),
                size: f.data.len() as i64,
                sha256: Some(sha),
                refused: None,
            });
        }
        let channel: Option<Channel> = None;
        let message = state
            .store
            .reply_with_files(id, &viewer.staff, &form.body, channel, &files)
            .await?;
        Ok::<_, PageError>(message)
    }
    .await;
    match checked {
        Ok(message) => {
            state.outbox_wake.notify_one();
            tracing::info!(
                issue_id = id,
                message_id = message.id,
                staff_id = viewer.staff.id,
                files = form.files.len(),
                "reply queued (page)"
            );
            back_to(id, Some(message.id))
        }
        Err(e) => {
            let extras = Extras {
                reply_draft: form.body,
                ..Extras::default()
            };
            refused(&state, &viewer, id, e, extras).await
        }
    }
}

#[derive(Deserialize, Default)]
struct BodyForm {
    #[serde(default)]
    body: String,
}

/// `POST /issues/{id}/comment`: the store call of `POST /api/issues/{id}/comments`.
async fn add_comment(
    State(state): State<AppState>,
    Path(id): Path<String>,
    WebForm { viewer, form }: WebForm<BodyForm>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let result = match crate::http::issues::check_body(&form.body) {
        Err(e) => Err(body_refusal(e)),
        Ok(()) => state
            .store
            .add_comment(id, &viewer.staff, &form.body)
            .await
            .map_err(PageError::from),
    };
    match result {
        Ok(m) => back_to(id, Some(m.id)),
        Err(e) => {
            let extras = Extras {
                comment_draft: form.body,
                ..Extras::default()
            };
            refused(&state, &viewer, id, e, extras).await
        }
    }
}

/// A comment change refused by `may_change_comment`, as a sentence.
fn comment_refusal(e: StoreError) -> PageError {
    match &e {
        StoreError::Rule(r) if r.code == "forbidden" => PageError::new(
            StatusCode::FORBIDDEN,
            "Only the comment's author (within 5 hours) or an admin can change it.",
        ),
        StoreError::Rule(r) if r.code == "not_editable" => PageError::new(
            StatusCode::CONFLICT,
            "Only private comments can be changed; a sent reply cannot be unsent.",
        ),
        _ => PageError::from(e),
    }
}

/// The issue a message belongs to (for the page to return to).
async fn issue_of(state: &AppState, raw_id: &str) -> Result<(i64, i64), PageError> {
    let message_id = parse_id(raw_id)?;
    let m = state.store.message(message_id).await?;
    Ok((m.issue_id, message_id))
}

/// `POST /messages/{id}/edit`: the store call of `PATCH /api/messages/{id}`.
async fn edit_comment(
    State(state): State<AppState>,
    Path(id): Path<String>,
    WebForm { viewer, form }: WebForm<BodyForm>,
) -> Response {
    let (issue_id, message_id) = match issue_of(&state, &id).await {
        Ok(ids) => ids,
        Err(e) => return e.into_response(),
    };
    let result = match crate::http::issues::check_body(&form.body) {
        Err(e) => Err(body_refusal(e)),
        Ok(()) => state
            .store
            .edit_comment(message_id, &viewer.staff, &form.body)
            .await
            .map_err(comment_refusal),
    };
    match result {
        Ok(_) => back_to(issue_id, Some(message_id)),
        Err(e) => refused(&state, &viewer, issue_id, e, Extras::default()).await,
    }
}

/// `POST /messages/{id}/delete`: the store call of `DELETE /api/messages/{id}`.
async fn delete_comment(
    State(state): State<AppState>,
    Path(id): Path<String>,
    WebForm { viewer, .. }: WebForm<super::NoFields>,
) -> Response {
    let (issue_id, message_id) = match issue_of(&state, &id).await {
        Ok(ids) => ids,
        Err(e) => return e.into_response(),
    };
    match state
        .store
        .delete_comment(message_id, &viewer.staff)
        .await
        .map_err(comment_refusal)
    {
        Ok(()) => back_to(issue_id, None),
        Err(e) => refused(&state, &viewer, issue_id, e, Extras::default()).await,
    }
}
